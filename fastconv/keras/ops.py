"""``keras.ops``: tensor operations with gradients (see :mod:`fastconv.operations`)."""

from ..operations import (  # noqa: F401
    abs,
    add,
    clip,
    concatenate,
    convert_to_numpy,
    convert_to_tensor,
    divide,
    exp,
    log,
    matmul,
    max,
    maximum,
    mean,
    minimum,
    multiply,
    negative,
    relu,
    reshape,
    sigmoid,
    softmax,
    sqrt,
    square,
    subtract,
    sum,
    tanh,
    transpose,
)
from ._namespace import module_getattr

__all__ = ["abs", "add", "clip", "concatenate", "convert_to_numpy", "convert_to_tensor",
           "divide", "exp", "log", "matmul", "max", "maximum", "mean", "minimum", "multiply",
           "negative", "relu", "reshape", "sigmoid", "softmax", "sqrt", "square", "subtract",
           "sum", "tanh", "transpose"]


__getattr__ = module_getattr(__name__)
