"""``keras.models``."""

from ..models import Model, Sequential, clone_model, load_model, save_model  # noqa: F401
from ._namespace import module_getattr

__all__ = ["Model", "Sequential", "clone_model", "load_model", "save_model"]


__getattr__ = module_getattr(__name__)
