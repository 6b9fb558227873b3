"""``keras.models``."""

from ..models import Model, Sequential, clone_model, load_model, save_model  # noqa: F401
from ._namespace import missing

__all__ = ["Model", "Sequential", "clone_model", "load_model", "save_model"]


def __getattr__(name: str):
    if name.startswith("__"):
        raise AttributeError(name)
    raise missing(__name__, name)
