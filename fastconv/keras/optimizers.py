"""``keras.optimizers`` (see :mod:`fastconv.optimizers`)."""

from .. import optimizers as _source
from ..optimizers import *  # noqa: F401,F403
from ._namespace import missing

__all__ = list(_source.__all__)


def __getattr__(name: str):
    if name.startswith("__"):
        raise AttributeError(name)
    value = getattr(_source, name, None)
    if value is not None and not name.startswith("_"):
        return value
    raise missing(__name__, name)
