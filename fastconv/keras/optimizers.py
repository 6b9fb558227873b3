"""``keras.optimizers`` (see :mod:`fastconv.optimizers`)."""

from .. import optimizers as _source
from ..optimizers import *  # noqa: F401,F403
from ._namespace import module_getattr

__all__ = list(_source.__all__)


__getattr__ = module_getattr(__name__, _source)
