"""``keras.optimizers`` (see :mod:`fastconv.optimizers`), with ``schedules``."""

from ... import optimizers as _source
from ...optimizers import *  # noqa: F401,F403
from .._namespace import module_getattr
from . import schedules  # noqa: F401  (the submodule, for `from ... import`)

__all__ = list(_source.__all__)


__getattr__ = module_getattr(__name__, _source)
