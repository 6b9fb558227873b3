"""``keras.constraints`` (see :mod:`fastconv.constraints`)."""

from .. import constraints as _source
from ..constraints import *  # noqa: F401,F403
from ._namespace import module_getattr

__all__ = [n for n in _source.__all__ if n != "apply_constraints"]


__getattr__ = module_getattr(__name__, _source)
