"""``keras.metrics`` (see :mod:`fastconv.metrics`)."""

from .. import metrics as _source
from ..metrics import *  # noqa: F401,F403
from ._namespace import module_getattr

__all__ = list(_source.__all__)


__getattr__ = module_getattr(__name__, _source)
