"""``keras.utils``."""

from .._saving import register_keras_serializable  # noqa: F401
from ..utils import PyDataset, Sequence, set_random_seed, to_categorical  # noqa: F401
from ._namespace import module_getattr

__all__ = ["PyDataset", "Sequence", "register_keras_serializable", "set_random_seed",
           "to_categorical"]


__getattr__ = module_getattr(__name__)
