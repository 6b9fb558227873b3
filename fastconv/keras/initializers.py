"""``keras.initializers`` (see :mod:`fastconv.initializers`)."""

from .. import initializers as _source
from ..initializers import *  # noqa: F401,F403
from ._namespace import module_getattr

__all__ = list(_source.__all__)


__getattr__ = module_getattr(__name__, _source)
