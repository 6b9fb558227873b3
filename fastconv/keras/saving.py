"""``keras.saving``."""

from .._saving import register_keras_serializable  # noqa: F401
from ..models import load_model, save_model  # noqa: F401
from ._namespace import missing

__all__ = ["load_model", "register_keras_serializable", "save_model"]


def __getattr__(name: str):
    if name.startswith("__"):
        raise AttributeError(name)
    raise missing(__name__, name)
