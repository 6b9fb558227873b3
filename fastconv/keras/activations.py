"""``keras.activations`` (see :mod:`fastconv.activations`)."""

from .. import activations as _source
from ..activations import *  # noqa: F401,F403
from ._namespace import module_getattr

__all__ = list(_source.__all__)


__getattr__ = module_getattr(__name__, _source)
