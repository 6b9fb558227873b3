"""``keras.utils``."""

from .._saving import register_keras_serializable  # noqa: F401
from ..image import array_to_img, img_to_array, load_img, save_img  # noqa: F401
from ..utils import set_random_seed, to_categorical  # noqa: F401
from ._namespace import module_getattr

__all__ = ["array_to_img", "img_to_array", "load_img", "register_keras_serializable",
           "save_img", "set_random_seed", "to_categorical"]


__getattr__ = module_getattr(__name__)
