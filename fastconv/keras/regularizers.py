"""``keras.regularizers`` (see :mod:`fastconv.regularizers`)."""

from .. import regularizers as _source
from ..regularizers import *  # noqa: F401,F403
from ._namespace import module_getattr

__all__ = list(_source.__all__)


__getattr__ = module_getattr(__name__, _source)
