"""``keras.optimizers.schedules`` (see :mod:`fastconv.schedules`)."""

from ... import schedules as _source
from ...schedules import *  # noqa: F401,F403
from .._namespace import module_getattr

__all__ = list(_source.__all__)


__getattr__ = module_getattr(__name__, _source)
