"""``keras.backend``: the global settings Keras programs set (see :mod:`fastconv.config`)."""

from ..config import (  # noqa: F401
    clear_session,
    epsilon,
    floatx,
    image_data_format,
    set_epsilon,
    set_floatx,
    set_image_data_format,
)
from ._namespace import module_getattr

__all__ = ["clear_session", "epsilon", "floatx", "image_data_format", "set_epsilon",
           "set_floatx", "set_image_data_format", "backend"]


def backend() -> str:
    """The name of the backend: ``'fastconv'``."""
    return "fastconv"


__getattr__ = module_getattr(__name__)
