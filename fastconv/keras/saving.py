"""``keras.saving``."""

from .._saving import register_keras_serializable  # noqa: F401
from ..models import load_model, save_model  # noqa: F401
from ._namespace import module_getattr

__all__ = ["load_model", "register_keras_serializable", "save_model"]


__getattr__ = module_getattr(__name__)
