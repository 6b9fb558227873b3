"""``keras.utils``."""

from .._saving import register_keras_serializable  # noqa: F401
from ..image_dataset import (  # noqa: F401
    array_to_img,
    image_dataset_from_directory,
    img_to_array,
    load_img,
    save_img,
)
from ..utils import PyDataset, Sequence, set_random_seed, to_categorical  # noqa: F401
from ._namespace import module_getattr

__all__ = ["PyDataset", "Sequence", "register_keras_serializable", "set_random_seed",
           "to_categorical", "image_dataset_from_directory", "load_img", "img_to_array",
           "array_to_img", "save_img"]


__getattr__ = module_getattr(__name__)
