"""Keras-compatible layers with explicit forward and backward passes.

Each layer normalises its arguments in ``__init__`` (Keras's names and defaults),
creates its weights in ``build(input_shape)`` (Keras's shapes, so weights taken from a
Keras model load with ``set_weights``), and answers ``compute_output_shape`` and
``get_config``, so a model knows every shape before it sees data.

A layer holds its configuration and weights only. What one call needs for its
backward pass lives in the context that call returns, in the CS231n manner:

- ``forward(inputs, training=False, workspace=None) -> (outputs, ctx)``;
- ``backward(dout, ctx, need_dx=True) -> (dx, [(weight, gradient), ...])``, the
  gradient with respect to the inputs (None when ``need_dx`` is False and the layer
  can skip it) and one gradient per weight, which the model adds up over calls.

So one layer object can be called at several points of a model (shared weights), and
two threads can run one model at once. Calling a layer on symbolic tensors
(``keras.Input``) records a node of a graph (:mod:`fastconv.graph`); calling it on
arrays computes. A subclass that defines ``call(inputs, training=None)`` composing
other layers, activations, :mod:`fastconv.operations` and ``+ - * /`` is traced into a
graph of those calls, so it trains with no backward written by hand.

Shapes are Keras's, with ``None`` for the batch axis: images are ``(N, H, W, C)``
(``data_format='channels_last'``, the default) or ``(N, C, H, W)``
(``'channels_first'``, handled by transposing at the layer's edges). Convolution and
pooling always run through :mod:`fastconv.ops`, so on the active backend.
"""

from __future__ import annotations

from .base import (  # noqa: F401
    Ctx,
    Input,
    InputLayer,
    Layer,
    _data_format,
    _fmt,
    _name_counts,
    _name_lock,
    _snake,
    _unique_name,
)
from .convolutional import (
    Conv1D,
    Conv2D,
    Conv2DTranspose,
    Convolution1D,
    Convolution2D,
    Convolution2DTranspose,
    DepthwiseConv2D,
    SeparableConv2D,
    SeparableConvolution2D,
)
from .core import ELU, Activation, Dense, Dropout, Flatten, Lambda, LeakyReLU, Maxout, ReLU, Softmax
from .fused import _AddReLU, _BatchNormReLU, _ConvBatchNorm, _ConvBatchNormReLU, _ConvReLUMaxPool  # noqa: F401
from .intensity import RandomBrightness, RandomContrast
from .merging import (
    Add,
    Average,
    Concatenate,
    Maximum,
    Minimum,
    Multiply,
    Subtract,
    add,
    average,
    concatenate,
    maximum,
    minimum,
    multiply,
    subtract,
)
from .normalization import BatchNormalization, GroupNormalization, LayerNormalization
from .pooling import (
    AveragePooling1D,
    AveragePooling2D,
    AvgPool1D,
    AvgPool2D,
    GlobalAveragePooling1D,
    GlobalAveragePooling2D,
    GlobalAvgPool1D,
    GlobalAvgPool2D,
    GlobalMaxPool1D,
    GlobalMaxPool2D,
    GlobalMaxPooling1D,
    GlobalMaxPooling2D,
    MaxPool1D,
    MaxPool2D,
    MaxPooling1D,
    MaxPooling2D,
)
from .preprocessing import RandomFlip, RandomRotation, RandomTranslation, RandomZoom, Rescaling
from .regularization import (
    ActivityRegularization,
    GaussianDropout,
    GaussianNoise,
    SpatialDropout2D,
)
from .reshaping import Cropping2D, Permute, Reshape, UpSampling2D, ZeroPadding2D
from .resizing import CenterCrop, RandomCrop, Resizing

__all__ = [
    "Layer", "InputLayer", "Input", "Conv2D", "MaxPooling2D", "AveragePooling2D", "Flatten",
    "Dense", "Dropout", "Activation", "ReLU", "LeakyReLU", "ELU", "Softmax",
    "BatchNormalization", "Maxout", "Lambda", "Add", "Subtract", "Multiply", "Average", "Maximum",
    "Minimum", "Concatenate", "add", "subtract", "multiply", "average", "maximum",
    "minimum", "concatenate", "Rescaling", "RandomFlip", "RandomTranslation",
    "RandomRotation", "Convolution2D", "MaxPool2D", "AvgPool2D", "GlobalAveragePooling2D",
    "GlobalMaxPooling2D", "GlobalAvgPool2D", "GlobalMaxPool2D", "get_layer_class",
    "Conv2DTranspose", "Convolution2DTranspose", "DepthwiseConv2D", "SeparableConv2D",
    "SeparableConvolution2D", "Conv1D", "Convolution1D", "MaxPooling1D", "AveragePooling1D",
    "MaxPool1D", "AvgPool1D", "GlobalAveragePooling1D", "GlobalMaxPooling1D",
    "GlobalAvgPool1D", "GlobalMaxPool1D", "LayerNormalization", "SpatialDropout2D",
    "GaussianNoise", "GaussianDropout", "ZeroPadding2D", "Cropping2D", "UpSampling2D",
    "Reshape", "Permute",
    "GroupNormalization", "ActivityRegularization",
    "RandomZoom", "RandomContrast", "RandomBrightness", "RandomCrop", "CenterCrop",
    "Resizing",
]

_LAYERS = {c.__name__: c for c in (
    InputLayer, Conv2D, MaxPooling2D, AveragePooling2D, Flatten, Dense, Dropout, Activation,
    ReLU, LeakyReLU, ELU, Softmax, BatchNormalization, Maxout, Add, Subtract, Multiply,
    Average, Maximum, Minimum, Concatenate, GlobalAveragePooling2D, GlobalMaxPooling2D,
    Rescaling, RandomFlip, RandomTranslation,
    RandomRotation, Conv2DTranspose, DepthwiseConv2D, SeparableConv2D, Conv1D, MaxPooling1D,
    AveragePooling1D, GlobalAveragePooling1D, GlobalMaxPooling1D, LayerNormalization,
    SpatialDropout2D, GaussianNoise, GaussianDropout, ZeroPadding2D, Cropping2D, UpSampling2D,
    Reshape, Permute, GroupNormalization, ActivityRegularization, RandomZoom, RandomContrast,
    RandomBrightness, RandomCrop, CenterCrop, Resizing)}


def get_layer_class(class_name: str) -> type:
    """The layer class saved under ``class_name``; only fastconv's own layers load."""
    if class_name not in _LAYERS:
        raise ValueError(
            f"Unknown layer class {class_name!r} in the saved model; fastconv knows "
            f"{sorted(_LAYERS)}"
        )
    return _LAYERS[class_name]
