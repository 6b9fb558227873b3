"""``keras.utils``."""

from .._saving import register_keras_serializable  # noqa: F401
from ..utils import set_random_seed, to_categorical  # noqa: F401
from ._namespace import missing

__all__ = ["register_keras_serializable", "set_random_seed", "to_categorical"]


def __getattr__(name: str):
    if name.startswith("__"):
        raise AttributeError(name)
    raise missing(__name__, name)
