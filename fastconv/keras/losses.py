"""``keras.losses`` (see :mod:`fastconv.losses`)."""

from .. import losses as _source
from ..losses import *  # noqa: F401,F403
from ._namespace import module_getattr

__all__ = list(_source.__all__)


__getattr__ = module_getattr(__name__, _source)
