"""``keras.layers`` on fastconv's layers (see :mod:`fastconv.layers`)."""

from .. import layers as _layers
from ..layers import *  # noqa: F401,F403
from ..layers import AvgPool2D, Convolution2D, MaxPool2D  # noqa: F401
from ..preprocessing import *  # noqa: F401,F403
from ._namespace import module_getattr

__all__ = sorted(set(_layers.__all__) - {"get_layer_class"}
                 | {"AvgPool2D", "Convolution2D", "MaxPool2D"})


__getattr__ = module_getattr(__name__)
