"""Keras-compatible layers with explicit forward and backward passes.

Each layer normalises its arguments in ``__init__`` (Keras's names and defaults),
creates its weights in ``build(input_shape)`` (Keras's shapes, so weights taken from a
Keras model load with ``set_weights``), and answers ``compute_output_shape`` and
``get_config``, so a model knows every shape before it sees data.

Training uses two methods per layer, in the CS231n manner:

- ``forward(x, training) -> out`` keeps what backward needs on the layer;
- ``backward(dout) -> dx`` returns the gradient with respect to the layer's input and
  stores each parameter's gradient in ``layer.grads[name]``.

Shapes are Keras's, with ``None`` for the batch axis: images are ``(N, H, W, C)``
(``data_format='channels_last'``, the default) or ``(N, C, H, W)``
(``'channels_first'``, handled by transposing at the layer's edges). Convolution and
pooling always run through :mod:`fastconv.ops`, so on the active backend.
"""

from __future__ import annotations

import re
import threading
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from . import activations as _activations
from . import initializers as _initializers
from . import ops
from . import regularizers as _regularizers
from ._random import child_seed
from ._threads import get_num_threads
from .backends._args import check_dout, fail, pair

__all__ = [
    "Layer", "InputLayer", "Input", "Conv2D", "MaxPooling2D", "AveragePooling2D", "Flatten",
    "Dense", "Dropout", "Activation", "ReLU", "LeakyReLU", "ELU", "Softmax",
    "BatchNormalization", "Maxout", "get_layer_class",
    # From fastconv.preprocessing, resolved by the module __getattr__ below.
    "Rescaling", "RandomFlip", "RandomTranslation", "RandomRotation",  # noqa: F822
]

try:  # compiled element-wise kernels (dropout), when the extension is built
    from . import _elementwise
except ImportError:  # pragma: no cover - Dropout then draws with NumPy
    _elementwise = None

Shape = Tuple[Optional[int], ...]

_name_counts: Dict[str, int] = {}

class _StepState(threading.local):
    """``step_buffers`` is True only inside a training step of Sequential (fit,
    train_on_batch; see Sequential._train_step), in the thread running it: layers then
    write their large outputs and input gradients into arrays they keep from one step
    to the next, instead of allocating new ones on every step. Nothing outside the
    step sees those arrays; everywhere else (predict, evaluate, a direct call of forward
    or backward, another thread) every result is a new array."""

    step_buffers = False


_step = _StepState()


def _kept(layer: Any, key: str, shape: Tuple[int, ...], dtype: Any) -> np.ndarray:
    """An uninitialised array: kept by ``layer`` under ``key`` within a training step
    (reallocated when the shape or dtype changes), a new one otherwise."""
    if not _step.step_buffers:
        return np.empty(shape, dtype)
    kept = layer.__dict__.get("_kept_arrays")
    if kept is None:
        kept = layer.__dict__["_kept_arrays"] = {}
    a = kept.get(key)
    if a is None or a.shape != shape or a.dtype != dtype:
        a = kept[key] = np.empty(shape, dtype)
    return a


def _snake(name: str) -> str:
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


def _unique_name(base: str) -> str:
    n = _name_counts.get(base, 0)
    _name_counts[base] = n + 1
    return base if n == 0 else f"{base}_{n}"


def _fmt(shape) -> str:
    return "(" + ", ".join("None" if s is None else str(s) for s in shape) + ("," if len(
        shape) == 1 else "") + ")"


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) \
            or value < 1:
        raise fail(name, "a positive int", value, TypeError if not isinstance(
            value, (int, np.integer)) else ValueError)
    return int(value)


def _padding(value: Any) -> str:
    if not isinstance(value, str) or value.lower() not in ("valid", "same"):
        raise fail("padding", "'valid' or 'same'", value)
    return value.lower()


def _data_format(value: Any) -> str:
    if value is None:
        return "channels_last"
    if value not in ("channels_last", "channels_first"):
        raise fail("data_format", "None, 'channels_last' or 'channels_first'", value)
    return value


class Layer:
    """Base class of all layers.

    Parameters
    ----------
    name : str, optional
        Unique by default ('dense', 'dense_1', ...).
    trainable : bool
        If False, the optimizer leaves the weights alone.
    dtype : str or dtype, optional
        float32 unless the model or this argument says otherwise.
    input_shape : tuple of int, optional
        The shape of one sample, for the first layer of a Sequential model.
    batch_size : int, optional
        Fixes the batch axis of ``input_shape`` (informational).
    """

    def __init__(self, name: Optional[str] = None, trainable: bool = True, dtype: Any = None,
                 input_shape: Optional[Sequence[int]] = None, batch_size: Optional[int] = None,
                 batch_input_shape: Optional[Sequence[Optional[int]]] = None, **kwargs: Any):
        if kwargs:
            raise TypeError(
                f"{type(self).__name__} got unexpected keyword argument(s) "
                f"{', '.join(sorted(kwargs))}"
            )
        if name is not None and not isinstance(name, str):
            raise fail("name", "a string", name, TypeError)
        self.name = name or _unique_name(_snake(type(self).__name__))
        self.trainable = bool(trainable)
        self.dtype = None if dtype is None else np.dtype(dtype)
        if self.dtype is not None and self.dtype not in (np.float32, np.float64):
            raise fail("dtype", "'float32' or 'float64'", dtype, TypeError)
        self._batch_input_shape: Optional[Shape] = None
        if batch_input_shape is not None:
            self._batch_input_shape = tuple(batch_input_shape)
        elif input_shape is not None:
            if isinstance(input_shape, (int, np.integer)):
                input_shape = (input_shape,)
            self._batch_input_shape = (batch_size,) + tuple(input_shape)
        if self._batch_input_shape is not None:
            for s in self._batch_input_shape[1:]:
                if s is not None and (not isinstance(s, (int, np.integer)) or s < 1):
                    raise fail("input_shape", "a tuple of positive ints",
                               tuple(self._batch_input_shape[1:]))
        self.built = False
        self.input_shape: Optional[Shape] = None
        self.output_shape: Optional[Shape] = None
        self._weight_names: List[str] = []
        self._weight_trainable: List[bool] = []
        self.regularizers: Dict[str, Any] = {}
        self.grads: Dict[str, np.ndarray] = {}

    # -- building ---------------------------------------------------------------------
    def add_weight(self, name: str, shape: Tuple[int, ...], initializer: Any,
                   regularizer: Any = None, trainable: bool = True) -> np.ndarray:
        """Create weight ``name`` from ``initializer(shape, dtype)`` and register it."""
        value = np.asarray(initializer(shape, dtype=self.dtype))
        if value.shape != tuple(shape):
            raise ValueError(
                f"The initializer of {self.name}.{name} returned shape {value.shape}; "
                f"expected {tuple(shape)}"
            )
        value = np.ascontiguousarray(value, dtype=self.dtype)
        setattr(self, name, value)
        self._weight_names.append(name)
        self._weight_trainable.append(trainable)
        if regularizer is not None:
            self.regularizers[name] = regularizer
        return value

    def build_for(self, input_shape: Shape, dtype: Any = np.float32) -> Shape:
        """Build for ``input_shape`` (batch axis included) and return the output shape.

        Errors name the layer and the shapes involved.
        """
        input_shape = tuple(input_shape)
        if self.dtype is None:
            self.dtype = np.dtype(dtype)
        output_shape = self.compute_output_shape(input_shape)
        if not self.built:
            self.build(input_shape)
            self.built = True
        self.input_shape, self.output_shape = input_shape, tuple(output_shape)
        return self.output_shape

    def build(self, input_shape: Shape) -> None:
        """Create the weights for ``input_shape``; layers without weights do nothing."""

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        return tuple(input_shape)

    def _shape_error(self, input_shape: Shape, message: str) -> ValueError:
        return ValueError(
            f"Layer '{self.name}' ({type(self).__name__}) cannot take input of shape "
            f"{_fmt(input_shape)}: {message}"
        )

    def _need_ndim(self, input_shape: Shape, ndim: int, layout: str) -> None:
        if len(input_shape) != ndim:
            hint = ""
            if ndim == 4 and len(input_shape) == 3:
                hint = (" Images need a channel axis: for grey images use "
                        f"input_shape={_fmt(tuple(input_shape[1:]) + (1,))}.")
            raise self._shape_error(input_shape, f"it expects {ndim}-D input {layout}.{hint}")

    # -- computing --------------------------------------------------------------------
    #: False when nothing needs the gradient with respect to this layer's input (the
    #: model's first weighted layer during training): layers that can then skip that
    #: part of backward (Conv2D, Dense) and return None.
    input_grad = True

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        raise NotImplementedError

    def backward(self, dout: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def call(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        """Keras's name for the forward computation."""
        return self.forward(x, training)

    def __call__(self, x: Any, training: bool = False) -> np.ndarray:
        x = np.asarray(x)
        dtype = self.dtype or (x.dtype if x.dtype in (np.float32, np.float64) else np.float32)
        x = np.asarray(x, dtype=dtype)
        if not self.built:
            self.build_for((None,) + x.shape[1:], dtype)
        return self.forward(x, training)

    # -- weights ----------------------------------------------------------------------
    @property
    def weights(self) -> List[np.ndarray]:
        """The weight arrays themselves, in Keras's order."""
        return [getattr(self, n) for n in self._weight_names]

    @property
    def trainable_weights(self) -> List[np.ndarray]:
        if not self.trainable:
            return []
        return [getattr(self, n) for n, t in zip(self._weight_names, self._weight_trainable)
                if t]

    @property
    def non_trainable_weights(self) -> List[np.ndarray]:
        ids = {id(w) for w in self.trainable_weights}
        return [w for w in self.weights if id(w) not in ids]

    def trainable_items(self) -> List[Tuple[str, np.ndarray]]:
        """``(name, array)`` of each trainable weight whose gradient backward stores."""
        if not self.trainable:
            return []
        return [(n, getattr(self, n)) for n, t in zip(self._weight_names, self._weight_trainable)
                if t]

    def get_weights(self) -> List[np.ndarray]:
        """Copies of the weights, in Keras's order."""
        return [w.copy() for w in self.weights]

    def set_weights(self, weights: Sequence[Any]) -> None:
        """Copy ``weights`` (same count and shapes as ``get_weights()``) into the layer."""
        mine = self.weights
        weights = list(weights)
        if len(weights) != len(mine):
            raise ValueError(
                f"Layer '{self.name}' ({type(self).__name__}) has {len(mine)} weight arrays "
                f"but {len(weights)} were given"
            )
        for name, w, new in zip(self._weight_names, mine, weights):
            new = np.asarray(new)
            if new.shape != w.shape:
                raise ValueError(
                    f"Weight {self.name}.{name} must have shape {w.shape}. Received: an "
                    f"array of shape {new.shape}"
                )
        for w, new in zip(mine, weights):
            # In place: the optimizer's state stays attached to the same arrays.
            np.copyto(w, np.asarray(new, dtype=w.dtype))

    def count_params(self) -> int:
        return int(sum(w.size for w in self.weights))

    def get_config(self) -> dict:
        config = {"name": self.name, "trainable": self.trainable,
                  "dtype": None if self.dtype is None else self.dtype.name}
        if self._batch_input_shape is not None:
            config["batch_input_shape"] = list(self._batch_input_shape)
        return config

    @classmethod
    def from_config(cls, config: dict) -> "Layer":
        return cls(**config)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={self.name!r}>"


class _ActivationMixin:
    """For layers ending in an activation: keeps the pre-activation output (the logits).

    ``backward`` = ``_backward_pre(activation backward)``; a model that fuses the loss
    with a softmax/sigmoid output calls ``_backward_pre`` with the logits' gradient.
    """

    activation: _activations.Activation

    def _activate(self, z):
        self._preact = z
        if self.activation is _activations.linear:
            return z
        out, self._act_cache = self.activation.forward(z)
        return out

    def _deactivate(self, dout):
        if self.activation is _activations.linear:
            return dout
        return self.activation.backward(dout, self._act_cache)


class InputLayer(Layer):
    """The model's input: ``shape`` of one sample (no batch axis)."""

    def __init__(self, shape: Optional[Sequence[int]] = None, batch_size: Optional[int] = None,
                 dtype: Any = None, name: Optional[str] = None,
                 batch_shape: Optional[Sequence[Optional[int]]] = None, **kwargs: Any):
        if shape is None and batch_shape is None:
            shape = kwargs.pop("input_shape", None)
            batch_shape = kwargs.pop("batch_input_shape", None)
        if shape is None and batch_shape is None:
            raise fail("shape", "a tuple of positive ints", None, TypeError)
        if batch_shape is None:
            if isinstance(shape, (int, np.integer)):
                shape = (shape,)
            batch_shape = (batch_size,) + tuple(shape)
        super().__init__(name=name, dtype=dtype, batch_input_shape=batch_shape, **kwargs)

    def forward(self, x, training=False):
        return x

    def backward(self, dout):
        return dout

    def get_config(self):
        return {"batch_shape": list(self._batch_input_shape), "name": self.name,
                "dtype": None if self.dtype is None else self.dtype.name}


def Input(shape: Optional[Sequence[int]] = None, batch_size: Optional[int] = None,
          dtype: Any = None, name: Optional[str] = None,
          batch_shape: Optional[Sequence[Optional[int]]] = None) -> InputLayer:
    """The input of a Sequential model: ``Sequential([Input(shape=(28, 28, 1)), ...])``.

    fastconv has no functional API, so this returns an :class:`InputLayer`.
    """
    return InputLayer(shape=shape, batch_size=batch_size, dtype=dtype, name=name,
                      batch_shape=batch_shape)


class Conv2D(_ActivationMixin, Layer):
    """2-D convolution, ``out = activation(conv(x, kernel) + bias)``.

    Parameters
    ----------
    filters : int
        Output channels ``C_out``.
    kernel_size : int or (int, int)
    strides, dilation_rate : int or (int, int), default (1, 1)
    padding : {'valid', 'same'}
    data_format : None, 'channels_last' or 'channels_first'
    activation, use_bias, kernel_initializer, bias_initializer, kernel_regularizer,
    bias_regularizer : as in Keras.

    Weights: ``kernel`` (KH, KW, C_in, C_out) and ``bias`` (C_out,), whatever the
    data format. Input (N, H, W, C_in) -> output (N, OH, OW, C_out) (channels_last).
    """

    def __init__(self, filters: int, kernel_size: Any, strides: Any = (1, 1),
                 padding: str = "valid", data_format: Optional[str] = None,
                 dilation_rate: Any = (1, 1), activation: Any = None, use_bias: bool = True,
                 kernel_initializer: Any = "glorot_uniform", bias_initializer: Any = "zeros",
                 kernel_regularizer: Any = None, bias_regularizer: Any = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.filters = _positive_int("filters", filters)
        self.kernel_size = pair(kernel_size, "kernel_size")
        self.strides = pair(strides, "strides")
        self.padding = _padding(padding)
        self.data_format = _data_format(data_format)
        self.dilation_rate = pair(dilation_rate, "dilation_rate")
        self.activation = _activations.get(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = _initializers.get(kernel_initializer, "kernel_initializer")
        self.bias_initializer = _initializers.get(bias_initializer, "bias_initializer")
        self.kernel_regularizer = _regularizers.get(kernel_regularizer, "kernel_regularizer")
        self.bias_regularizer = _regularizers.get(bias_regularizer, "bias_regularizer")

    def _hwc(self, input_shape):
        if self.data_format == "channels_first":
            return input_shape[2], input_shape[3], input_shape[1]
        return input_shape[1], input_shape[2], input_shape[3]

    def compute_output_shape(self, input_shape):
        layout = ("(batch, channels, height, width)" if self.data_format == "channels_first"
                  else "(batch, height, width, channels)")
        self._need_ndim(input_shape, 4, layout)
        H, W, C = self._hwc(input_shape)
        (kh, kw), (sh, sw), (dh, dw) = self.kernel_size, self.strides, self.dilation_rate
        eh, ew = dh * (kh - 1) + 1, dw * (kw - 1) + 1

        def size(n, e, s):
            if n is None:
                return None
            if self.padding == "same":
                return -(-n // s)
            return (n - e) // s + 1 if n >= e else 0

        OH, OW = size(H, eh, sh), size(W, ew, sw)
        if OH == 0 or OW == 0:
            msg = (f"the input is {H} pixel{'s' if H != 1 else ''} tall and {W} wide with {C} "
                   f"channel{'s' if C != 1 else ''}, smaller than the {eh}x{ew} kernel with "
                   "padding='valid'.")
            if self.data_format == "channels_last" and input_shape[1] is not None \
                    and input_shape[3] is not None and input_shape[1] < input_shape[3] \
                    and input_shape[1] <= 4:
                msg += (" With data_format='channels_last' the channels come last: did you "
                        "mean data_format='channels_first', or "
                        f"input_shape={_fmt((input_shape[2], input_shape[3], input_shape[1]))}?")
            raise self._shape_error(input_shape, msg)
        if self.data_format == "channels_first":
            return (input_shape[0], self.filters, OH, OW)
        return (input_shape[0], OH, OW, self.filters)

    def build(self, input_shape):
        C = self._hwc(input_shape)[2]
        if C is None:
            raise self._shape_error(input_shape, "the number of channels must be known.")
        self.add_weight("kernel", self.kernel_size + (C, self.filters), self.kernel_initializer,
                        self.kernel_regularizer)
        if self.use_bias:
            self.add_weight("bias", (self.filters,), self.bias_initializer, self.bias_regularizer)

    def forward(self, x, training=False):
        if self.data_format == "channels_first":
            x = x.transpose(0, 2, 3, 1)
        args = (x, self.kernel, self.bias if self.use_bias else None, self.strides,
                self.padding, self.dilation_rate)
        self._fused_relu = self.activation is _activations.relu
        if self._fused_relu:
            # Bias and ReLU applied in the convolution's output pass.
            out, self._cache = ops.conv2d_relu_forward(*args)
            self._preact = None
        else:
            z, self._cache = ops.conv2d_forward(*args)
            out = self._activate(z)
        if self.data_format == "channels_first":
            out = out.transpose(0, 3, 1, 2)
        return out

    def _store_grads(self, dx, dw, db):
        self.grads["kernel"] = dw
        if self.use_bias:
            self.grads["bias"] = db
        if dx is not None and self.data_format == "channels_first":
            dx = dx.transpose(0, 3, 1, 2)
        return dx

    def _backward_pre(self, dz):
        if self.data_format == "channels_first":
            dz = dz.transpose(0, 2, 3, 1)
        return self._store_grads(*ops.conv2d_backward(dz, self._cache, self.input_grad))

    def backward(self, dout):
        if self.data_format == "channels_first":
            # The activation saw channels-last arrays.
            dout = dout.transpose(0, 2, 3, 1)
        if self._fused_relu:
            return self._store_grads(
                *ops.conv2d_relu_backward(dout, self._cache, self.input_grad))
        dz = self._deactivate(dout)
        if self.data_format == "channels_first":
            dz = dz.transpose(0, 3, 1, 2)
        return self._backward_pre(dz)

    def _preact_external(self):
        if self._fused_relu:
            raise RuntimeError("a Conv2D with a ReLU activation has no separate logits")
        z = self._preact
        return z.transpose(0, 3, 1, 2) if self.data_format == "channels_first" else z

    def get_config(self):
        config = super().get_config()
        config.update({
            "filters": self.filters, "kernel_size": list(self.kernel_size),
            "strides": list(self.strides), "padding": self.padding,
            "data_format": self.data_format, "dilation_rate": list(self.dilation_rate),
            "activation": _activations.serialize(self.activation), "use_bias": self.use_bias,
            "kernel_initializer": _initializers.serialize(self.kernel_initializer),
            "bias_initializer": _initializers.serialize(self.bias_initializer),
            "kernel_regularizer": _regularizers.serialize(self.kernel_regularizer),
            "bias_regularizer": _regularizers.serialize(self.bias_regularizer),
        })
        return config


class _Pooling2D(Layer):
    _op = "max"

    def __init__(self, pool_size: Any = (2, 2), strides: Any = None, padding: str = "valid",
                 data_format: Optional[str] = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.pool_size = pair(pool_size, "pool_size")
        self.strides = self.pool_size if strides is None else pair(strides, "strides")
        self.padding = _padding(padding)
        self.data_format = _data_format(data_format)
        fwd = ops.maxpool2d_forward if self._op == "max" else ops.avgpool2d_forward
        bwd = ops.maxpool2d_backward if self._op == "max" else ops.avgpool2d_backward
        self._fwd, self._bwd = fwd, bwd

    def compute_output_shape(self, input_shape):
        cf = self.data_format == "channels_first"
        self._need_ndim(input_shape, 4, "(batch, channels, height, width)" if cf
                        else "(batch, height, width, channels)")
        H, W = (input_shape[2], input_shape[3]) if cf else (input_shape[1], input_shape[2])
        out = []
        for n, p, s in ((H, self.pool_size[0], self.strides[0]),
                        (W, self.pool_size[1], self.strides[1])):
            if n is None:
                out.append(None)
            elif self.padding == "same":
                out.append(-(-n // s))
            elif n < p:
                raise self._shape_error(
                    input_shape, f"the {H}x{W} image is smaller than the "
                    f"{self.pool_size[0]}x{self.pool_size[1]} pooling window with "
                    "padding='valid'.")
            else:
                out.append((n - p) // s + 1)
        if cf:
            return (input_shape[0], input_shape[1], out[0], out[1])
        return (input_shape[0], out[0], out[1], input_shape[3])

    def forward(self, x, training=False):
        if self.data_format == "channels_first":
            x = x.transpose(0, 2, 3, 1)
        out, self._cache = self._fwd(x, self.pool_size, self.strides, self.padding)
        return out.transpose(0, 3, 1, 2) if self.data_format == "channels_first" else out

    def backward(self, dout):
        if self.data_format == "channels_first":
            return self._bwd(dout.transpose(0, 2, 3, 1), self._cache).transpose(0, 3, 1, 2)
        return self._bwd(dout, self._cache)

    def get_config(self):
        config = super().get_config()
        config.update({"pool_size": list(self.pool_size), "strides": list(self.strides),
                       "padding": self.padding, "data_format": self.data_format})
        return config


class MaxPooling2D(_Pooling2D):
    """2-D max pooling on :func:`fastconv.ops.maxpool2d_forward` (strides default to the
    pool size; the gradient goes to the first maximum of each window)."""

    _op = "max"


class AveragePooling2D(_Pooling2D):
    """2-D average pooling on :func:`fastconv.ops.avgpool2d_forward` ('same' padding
    averages only the non-padded elements, as Keras does)."""

    _op = "avg"


class _ConvReLUMaxPool:
    """A ``Conv2D(activation='relu')`` and the ``MaxPooling2D`` right after it, run by
    :class:`fastconv.models.Sequential` as one op, :func:`fastconv.ops.conv2d_relu_maxpool_forward`.

    Not a layer: both layers stay in the model and keep their weights, gradients and
    configuration; only the convolution's full-size output, which nothing else reads,
    is never formed. Used for channels-last layers whose pooling has strides equal to
    its pool size and 'valid' padding (the Keras defaults).
    """

    def __init__(self, conv: Conv2D, pool: "MaxPooling2D"):
        self.conv, self.pool = conv, pool
        self.layers = (conv, pool)

    @staticmethod
    def fits(conv: Layer, pool: Layer) -> bool:
        return (isinstance(conv, Conv2D) and isinstance(pool, MaxPooling2D)
                and conv.activation is _activations.relu
                and conv.data_format == pool.data_format == "channels_last"
                and pool.strides == pool.pool_size and pool.padding == "valid")

    @property
    def input_grad(self) -> bool:
        return self.conv.input_grad

    @input_grad.setter
    def input_grad(self, value: bool) -> None:
        self.conv.input_grad = value

    _prepared = None

    def forward(self, x, training=False):
        conv = self.conv
        w = conv.kernel
        b = conv.bias if conv.use_bias else None
        settings = (conv.strides, conv.padding, conv.dilation_rate, self.pool.pool_size)
        prep = self._prepared
        if prep is not None and type(x) is np.ndarray and x.shape == prep[0] \
                and x.dtype is prep[1] and x.flags.c_contiguous and prep[2] is w \
                and prep[3] is b and prep[4] == settings and prep[5] is ops.active_module():
            # The same shapes, arrays and settings as the call that checked them: skip
            # the per-call argument checks.
            g, pg = prep[6]
            buffers = {}
            if _step.step_buffers and x.dtype == np.float32:  # what the fused kernels write
                buffers = {"out": _kept(self, "out", pg.out_shape, x.dtype),
                           "win": _kept(self, "win", pg.out_shape, np.int8)}
            out, self._cache = prep[5].conv2d_relu_maxpool_prepared(x, w, b, g, pg,
                                                                   **buffers)
            return out
        out, self._cache = ops.conv2d_relu_maxpool_forward(
            x, w, b, conv.strides, conv.padding, conv.dilation_rate, self.pool.pool_size)
        module = ops.active_module()
        self._prepared = None
        if hasattr(module, "conv2d_relu_maxpool_prepared") and type(x) is np.ndarray \
                and x.flags.c_contiguous and x.dtype in (np.float32, np.float64) \
                and w.dtype == x.dtype and w.flags.c_contiguous \
                and (b is None or (b.dtype == x.dtype and b.flags.c_contiguous)):
            # x, w and b went through the checks unchanged (no conversion, no copy).
            self._prepared = (x.shape, x.dtype, w, b, settings, module, self._cache.geom)
        return out

    def backward(self, dout):
        conv = self.conv
        return conv._store_grads(
            *ops.conv2d_relu_maxpool_backward(dout, self._cache, conv.input_grad))


class Flatten(Layer):
    """``(N, d1, d2, ...) -> (N, d1 * d2 * ...)``.

    With ``data_format='channels_first'`` the channel axis is moved last first, as Keras
    does, so a following Dense sees the same order in both formats.
    """

    def __init__(self, data_format: Optional[str] = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.data_format = _data_format(data_format)

    def compute_output_shape(self, input_shape):
        if len(input_shape) < 2:
            raise self._shape_error(input_shape, "it needs a batch axis and at least one more.")
        rest = input_shape[1:]
        return (input_shape[0], None if None in rest else int(np.prod(rest)))

    def forward(self, x, training=False):
        if self.data_format == "channels_first" and x.ndim > 2:
            x = np.moveaxis(x, 1, -1)
        self._shape = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, dout):
        dx = dout.reshape(self._shape)
        if self.data_format == "channels_first" and dx.ndim > 2:
            dx = np.moveaxis(dx, -1, 1)
        return dx

    def get_config(self):
        config = super().get_config()
        config["data_format"] = self.data_format
        return config


# Dense's matrix products: BLAS, through NumPy. A module attribute so that
# benchmarks/train_compare.py --overhead can count their time as kernel time.
_matmul = np.matmul


class Dense(_ActivationMixin, Layer):
    """``out = activation(x @ kernel + bias)`` on the last axis of ``x``.

    Weights: ``kernel`` (in, units), ``bias`` (units,). Input ``(N, ..., in)`` gives
    ``(N, ..., units)``: like Keras, a Dense after a 4-D output without Flatten acts
    on the channel axis, and ``summary()`` shows the resulting shape.
    """

    def __init__(self, units: int, activation: Any = None, use_bias: bool = True,
                 kernel_initializer: Any = "glorot_uniform", bias_initializer: Any = "zeros",
                 kernel_regularizer: Any = None, bias_regularizer: Any = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.units = _positive_int("units", units)
        self.activation = _activations.get(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = _initializers.get(kernel_initializer, "kernel_initializer")
        self.bias_initializer = _initializers.get(bias_initializer, "bias_initializer")
        self.kernel_regularizer = _regularizers.get(kernel_regularizer, "kernel_regularizer")
        self.bias_regularizer = _regularizers.get(bias_regularizer, "bias_regularizer")

    def compute_output_shape(self, input_shape):
        if len(input_shape) < 2 or input_shape[-1] is None:
            raise self._shape_error(input_shape, "the last axis must have a known size.")
        return tuple(input_shape[:-1]) + (self.units,)

    def build(self, input_shape):
        self.add_weight("kernel", (input_shape[-1], self.units), self.kernel_initializer,
                        self.kernel_regularizer)
        if self.use_bias:
            self.add_weight("bias", (self.units,), self.bias_initializer, self.bias_regularizer)
        # Gradients are written into these buffers every step instead of new arrays.
        self.grads = {n: np.empty_like(getattr(self, n)) for n in self._weight_names}

    def forward(self, x, training=False):
        self._x_shape = x.shape
        x2 = x.reshape(-1, x.shape[-1])
        z = _matmul(x2, self.kernel)
        self._x2 = x2
        bias = self.bias if self.use_bias else None
        relu = self.activation is _activations.relu
        self._fused_relu = False
        if _elementwise is not None and z.dtype == self.kernel.dtype and z.flags.c_contiguous \
                and (relu or bias is not None):
            # Bias and ReLU in one compiled pass over the product, in place; the
            # ReLU's output keeps the sign of its input, all its backward needs.
            _elementwise.bias_act(z, bias, relu, get_num_threads())
            if relu:
                self._fused_relu = True
                self._out = z
                self._preact = None
                return z.reshape(x.shape[:-1] + (self.units,))
        elif bias is not None:
            z += bias
        return self._activate(z.reshape(x.shape[:-1] + (self.units,)))

    def backward(self, dout):
        if self._fused_relu:
            shape = self._x_shape[:-1] + (self.units,)
            d2 = check_dout(dout, shape, self._out.dtype).reshape(self._out.shape)
            dz = _kept(self, "dz", self._out.shape, self._out.dtype)
            if self.use_bias:
                # ReLU's backward and the bias gradient in one compiled pass.
                _elementwise.column_sum(d2, self._out, dz, self.grads["bias"],
                                       get_num_threads())
                return self._backward_pre(dz, bias_done=True)
            _elementwise.relu_backward(d2.reshape(-1), self._out.reshape(-1),
                                       dz.reshape(-1), get_num_threads())
            return self._backward_pre(dz)
        return self._backward_pre(self._deactivate(dout))

    def _backward_pre(self, dz, bias_done=False):
        d2 = dz.reshape(-1, self.units)
        _matmul(self._x2.T, d2, out=self.grads["kernel"])
        if self.use_bias and not bias_done:
            db = self.grads["bias"]
            if _elementwise is not None and d2.dtype == db.dtype and d2.flags.c_contiguous:
                _elementwise.column_sum(d2, None, None, db, get_num_threads())
            else:
                np.add.reduce(d2, axis=0, out=db)
        if not self.input_grad:
            return None
        dx = _kept(self, "dx", (d2.shape[0], self.kernel.shape[0]), d2.dtype)
        return _matmul(d2, self.kernel.T, out=dx).reshape(self._x_shape)

    def _preact_external(self):
        if self._fused_relu:
            raise RuntimeError("a Dense layer with a ReLU activation has no separate logits")
        return self._preact

    def get_config(self):
        config = super().get_config()
        config.update({
            "units": self.units, "activation": _activations.serialize(self.activation),
            "use_bias": self.use_bias,
            "kernel_initializer": _initializers.serialize(self.kernel_initializer),
            "bias_initializer": _initializers.serialize(self.bias_initializer),
            "kernel_regularizer": _regularizers.serialize(self.kernel_regularizer),
            "bias_regularizer": _regularizers.serialize(self.bias_regularizer),
        })
        return config


class Dropout(Layer):
    """Inverted dropout: in training, zero each element with probability ``rate`` and
    scale the rest by ``1 / (1 - rate)``; the identity otherwise.

    ``seed`` fixes this layer's own generator; without it the seed is drawn from
    fastconv's global generator when the layer is made (see ``set_random_seed``).
    ``noise_shape`` (None entries mean the input's size) shares one mask along axes.
    """

    def __init__(self, rate: float, noise_shape: Optional[Sequence[Optional[int]]] = None,
                 seed: Optional[int] = None, **kwargs: Any):
        super().__init__(**kwargs)
        if isinstance(rate, bool) or not isinstance(rate, (int, float, np.floating)) \
                or not 0 <= rate < 1:
            raise fail("rate", "a number in [0, 1)", rate)
        self.rate = float(rate)
        self.noise_shape = None if noise_shape is None else tuple(noise_shape)
        self.seed = seed
        self._rng = np.random.default_rng(seed if seed is not None else child_seed())
        # Key of the compiled counter-based generator (see _elementwise.dropout_forward):
        # call number `_step` of this layer draws its mask from (key, _step).
        self._key = int(self._rng.integers(0, 2**63))
        self._step = 0
        self._uniform = None
        self._mask = None
        self._keep8 = None

    def forward(self, x, training=False):
        if not training or self.rate == 0:
            self._mask = None
            self._keep8 = None
            return x
        if self.noise_shape is None and _elementwise is not None and x.flags.c_contiguous \
                and x.dtype in (np.float32, np.float64):
            # One compiled pass: mask drawn, applied and scaled together.
            out = _kept(self, "out", x.shape, x.dtype)
            if self._keep8 is None or self._keep8.shape != x.shape \
                    or self._keep8.dtype != x.dtype:
                self._keep8 = np.empty_like(x)
            _elementwise.dropout_forward(x.reshape(-1), out.reshape(-1),
                                         self._keep8.reshape(-1), self.rate, self._key,
                                         self._step, get_num_threads())
            self._step += 1
            self._mask = self._keep8
            return out
        self._keep8 = None
        shape = x.shape if self.noise_shape is None else tuple(
            x.shape[i] if s is None else s for i, s in enumerate(self.noise_shape))
        dtype = x.dtype if x.dtype in (np.float32, np.float64) else np.float32
        if self._uniform is None or self._uniform.shape != shape \
                or self._uniform.dtype != dtype:
            # Reused each step: drawing into a buffer avoids one allocation per batch.
            self._uniform = np.empty(shape, dtype)
            self._keep = np.empty(shape, bool)
        self._rng.random(out=self._uniform, dtype=dtype)
        np.greater_equal(self._uniform, self.rate, out=self._keep)
        self._mask = self._keep
        out = np.multiply(x, self._keep, dtype=x.dtype)
        out *= x.dtype.type(1 / (1 - self.rate))
        return out

    def backward(self, dout):
        if self._mask is None:
            return dout
        if self._mask is self._keep8 and dout.flags.c_contiguous \
                and dout.dtype == self._keep8.dtype:
            dx = _kept(self, "dx", dout.shape, dout.dtype)
            _elementwise.dropout_backward(dout.reshape(-1), self._keep8.reshape(-1),
                                          dx.reshape(-1), get_num_threads())
            return dx
        dx = np.multiply(dout, self._mask, dtype=dout.dtype)
        dx *= dout.dtype.type(1 / (1 - self.rate))
        return dx

    def get_config(self):
        config = super().get_config()
        config.update({"rate": self.rate, "seed": self.seed,
                       "noise_shape": None if self.noise_shape is None
                       else list(self.noise_shape)})
        return config


class Activation(_ActivationMixin, Layer):
    """Applies ``activation`` (a name from :mod:`fastconv.activations` or a callable)."""

    def __init__(self, activation: Any, **kwargs: Any):
        super().__init__(**kwargs)
        self.activation = _activations.get(activation)

    def forward(self, x, training=False):
        return self._activate(x)

    def backward(self, dout):
        return self._deactivate(dout)

    def _backward_pre(self, dz):
        return dz

    def _preact_external(self):
        return self._preact

    def get_config(self):
        config = super().get_config()
        config["activation"] = _activations.serialize(self.activation)
        return config


class ReLU(Layer):
    """``min(max_value, x)`` for ``x >= threshold``, else ``negative_slope * (x - threshold)``.

    With the defaults this is plain ReLU on :func:`fastconv.ops.relu_forward`.
    """

    def __init__(self, max_value: Optional[float] = None, negative_slope: float = 0.0,
                 threshold: float = 0.0, **kwargs: Any):
        super().__init__(**kwargs)
        if max_value is not None and max_value < 0:
            raise fail("max_value", "None or a number >= 0", max_value)
        if negative_slope < 0:
            raise fail("negative_slope", "a number >= 0", negative_slope)
        self.max_value = None if max_value is None else float(max_value)
        self.negative_slope, self.threshold = float(negative_slope), float(threshold)

    def _plain(self):
        return self.max_value is None and self.negative_slope == 0 and self.threshold == 0

    def forward(self, x, training=False):
        if self._plain():
            out, self._cache = ops.relu_forward(x)
            return out
        t = x.dtype.type(self.threshold)
        above = x >= t
        out = np.where(above, x, x.dtype.type(self.negative_slope) * (x - t))
        slope = np.where(above, 1, self.negative_slope).astype(x.dtype)
        if self.max_value is not None:
            capped = out > self.max_value
            out = np.where(capped, x.dtype.type(self.max_value), out)
            slope[capped] = 0
        self._cache = slope
        return out

    def backward(self, dout):
        if self._plain():
            return ops.relu_backward(dout, self._cache)
        return dout * self._cache

    def get_config(self):
        config = super().get_config()
        config.update({"max_value": self.max_value, "negative_slope": self.negative_slope,
                       "threshold": self.threshold})
        return config


class LeakyReLU(Activation):
    """``x if x > 0 else negative_slope * x`` (Keras default 0.3; ``alpha`` also accepted)."""

    def __init__(self, negative_slope: float = 0.3, **kwargs: Any):
        if "alpha" in kwargs:
            negative_slope = kwargs.pop("alpha")
        super().__init__(_activations.LeakyReLUFunction(negative_slope), **kwargs)
        self.negative_slope = float(negative_slope)

    def get_config(self):
        config = Layer.get_config(self)
        config["negative_slope"] = self.negative_slope
        return config


class ELU(Activation):
    """``x if x > 0 else alpha * (exp(x) - 1)``."""

    def __init__(self, alpha: float = 1.0, **kwargs: Any):
        super().__init__(_activations.ELUFunction(alpha), **kwargs)
        self.alpha = float(alpha)

    def get_config(self):
        config = Layer.get_config(self)
        config["alpha"] = self.alpha
        return config


class Softmax(Activation):
    """Softmax along ``axis``."""

    def __init__(self, axis: int = -1, **kwargs: Any):
        super().__init__(_activations.SoftmaxFunction(axis), **kwargs)
        self.axis = int(axis)

    def get_config(self):
        config = Layer.get_config(self)
        config["axis"] = self.axis
        return config


class BatchNormalization(Layer):
    """Batch normalisation over every axis but ``axis`` (the channels).

    Training: ``y = gamma * (x - mean_B) / sqrt(var_B + epsilon) + beta`` with the batch's
    mean and (biased) variance, and ``moving = momentum * moving + (1 - momentum) * batch``.
    Inference uses the moving statistics. Weights, in Keras's order: ``gamma``, ``beta``
    (trainable), ``moving_mean``, ``moving_variance`` (not trainable), each ``(C,)``.
    """

    def __init__(self, axis: int = -1, momentum: float = 0.99, epsilon: float = 1e-3,
                 center: bool = True, scale: bool = True, beta_initializer: Any = "zeros",
                 gamma_initializer: Any = "ones", moving_mean_initializer: Any = "zeros",
                 moving_variance_initializer: Any = "ones", beta_regularizer: Any = None,
                 gamma_regularizer: Any = None, **kwargs: Any):
        super().__init__(**kwargs)
        if not isinstance(axis, (int, np.integer)) or isinstance(axis, bool):
            raise fail("axis", "an int", axis, TypeError)
        if not 0 <= momentum <= 1:
            raise fail("momentum", "a number in [0, 1]", momentum)
        if not epsilon > 0:
            raise fail("epsilon", "a number > 0", epsilon)
        self.axis, self.momentum, self.epsilon = int(axis), float(momentum), float(epsilon)
        self.center, self.scale = bool(center), bool(scale)
        self.beta_initializer = _initializers.get(beta_initializer, "beta_initializer")
        self.gamma_initializer = _initializers.get(gamma_initializer, "gamma_initializer")
        self.moving_mean_initializer = _initializers.get(moving_mean_initializer,
                                                         "moving_mean_initializer")
        self.moving_variance_initializer = _initializers.get(moving_variance_initializer,
                                                             "moving_variance_initializer")
        self.beta_regularizer = _regularizers.get(beta_regularizer, "beta_regularizer")
        self.gamma_regularizer = _regularizers.get(gamma_regularizer, "gamma_regularizer")

    def compute_output_shape(self, input_shape):
        if not -len(input_shape) < self.axis < len(input_shape) or self.axis % len(
                input_shape) == 0:
            raise self._shape_error(input_shape, f"axis={self.axis} is not a feature axis.")
        if input_shape[self.axis] is None:
            raise self._shape_error(input_shape, f"the size of axis {self.axis} must be known.")
        return tuple(input_shape)

    def build(self, input_shape):
        c = (input_shape[self.axis],)
        if self.scale:
            self.add_weight("gamma", c, self.gamma_initializer, self.gamma_regularizer)
        if self.center:
            self.add_weight("beta", c, self.beta_initializer, self.beta_regularizer)
        self.add_weight("moving_mean", c, self.moving_mean_initializer, trainable=False)
        self.add_weight("moving_variance", c, self.moving_variance_initializer, trainable=False)

    def _bshape(self, x):
        shape = [1] * x.ndim
        shape[self.axis] = x.shape[self.axis]
        return tuple(shape)

    def forward(self, x, training=False):
        axes = tuple(i for i in range(x.ndim) if i != self.axis % x.ndim)
        bs = self._bshape(x)
        dt = x.dtype.type
        if training:
            mean = x.mean(axis=axes)
            var = x.var(axis=axes)
            m = dt(self.momentum)
            self.moving_mean *= m
            self.moving_mean += (1 - m) * mean
            self.moving_variance *= m
            self.moving_variance += (1 - m) * var
        else:
            mean, var = self.moving_mean, self.moving_variance
        inv = (1 / np.sqrt(var + dt(self.epsilon))).astype(x.dtype)
        xhat = (x - mean.reshape(bs)) * inv.reshape(bs)
        self._cache = (xhat, inv, axes, bs, training)
        out = xhat * self.gamma.reshape(bs) if self.scale else xhat.copy()
        if self.center:
            out += self.beta.reshape(bs)
        return out

    def backward(self, dout):
        xhat, inv, axes, bs, training = self._cache
        if self.center:
            self.grads["beta"] = dout.sum(axis=axes)
        if self.scale:
            self.grads["gamma"] = (dout * xhat).sum(axis=axes)
            dxhat = dout * self.gamma.reshape(bs)
        else:
            dxhat = dout
        if not training:
            return dxhat * inv.reshape(bs)
        m = dout.size // dout.shape[self.axis]
        s1 = dxhat.sum(axis=axes).reshape(bs)
        s2 = (dxhat * xhat).sum(axis=axes).reshape(bs)
        return (inv.reshape(bs) / m) * (m * dxhat - s1 - xhat * s2)

    def get_config(self):
        config = super().get_config()
        config.update({
            "axis": self.axis, "momentum": self.momentum, "epsilon": self.epsilon,
            "center": self.center, "scale": self.scale,
            "beta_initializer": _initializers.serialize(self.beta_initializer),
            "gamma_initializer": _initializers.serialize(self.gamma_initializer),
            "moving_mean_initializer": _initializers.serialize(self.moving_mean_initializer),
            "moving_variance_initializer": _initializers.serialize(
                self.moving_variance_initializer),
            "beta_regularizer": _regularizers.serialize(self.beta_regularizer),
            "gamma_regularizer": _regularizers.serialize(self.gamma_regularizer),
        })
        return config


class Maxout(Layer):
    """Maxout unit: ``out = max_k (x @ kernel[k] + bias[k])`` over ``num_pieces`` pieces.

    With ``num_pieces=2`` this is the lecture's ``max(w1.x + b1, w2.x + b2)`` (Keras 1's
    ``MaxoutDense``, whose weight layout this keeps). Weights: ``kernel``
    (num_pieces, in, units) and ``bias`` (num_pieces, units). Input ``(N, ..., in)`` gives
    ``(N, ..., units)``; the gradient of each output goes to the piece that won.
    """

    def __init__(self, units: int, num_pieces: int = 2, use_bias: bool = True,
                 kernel_initializer: Any = "glorot_uniform", bias_initializer: Any = "zeros",
                 kernel_regularizer: Any = None, bias_regularizer: Any = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.units = _positive_int("units", units)
        self.num_pieces = _positive_int("num_pieces", num_pieces)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = _initializers.get(kernel_initializer, "kernel_initializer")
        self.bias_initializer = _initializers.get(bias_initializer, "bias_initializer")
        self.kernel_regularizer = _regularizers.get(kernel_regularizer, "kernel_regularizer")
        self.bias_regularizer = _regularizers.get(bias_regularizer, "bias_regularizer")

    def compute_output_shape(self, input_shape):
        if len(input_shape) < 2 or input_shape[-1] is None:
            raise self._shape_error(input_shape, "the last axis must have a known size.")
        return tuple(input_shape[:-1]) + (self.units,)

    def build(self, input_shape):
        p, n, u = self.num_pieces, input_shape[-1], self.units
        # Glorot fans of one piece, (in, units), not of the 3-D array.
        init = self.kernel_initializer
        kernel = np.stack([np.asarray(init((n, u), dtype=self.dtype)) for _ in range(p)])
        self.add_weight("kernel", (p, n, u), lambda shape, dtype=None: kernel,
                        self.kernel_regularizer)
        if self.use_bias:
            self.add_weight("bias", (p, u), self.bias_initializer, self.bias_regularizer)

    def forward(self, x, training=False):
        p, u = self.num_pieces, self.units
        self._x_shape = x.shape
        x2 = x.reshape(-1, x.shape[-1])
        n = x2.shape[1]
        wflat = self.kernel.transpose(1, 0, 2).reshape(n, p * u)
        z = (x2 @ wflat).reshape(-1, p, u)
        if self.use_bias:
            z += self.bias
        win = np.argmax(z, axis=1)
        out = np.take_along_axis(z, win[:, None, :], axis=1)[:, 0, :]
        self._x2, self._win, self._wflat = x2, win, wflat
        return out.reshape(x.shape[:-1] + (u,))

    def backward(self, dout):
        p, u = self.num_pieces, self.units
        d2 = dout.reshape(-1, u)
        dz = np.zeros((d2.shape[0], p, u), dout.dtype)
        np.put_along_axis(dz, self._win[:, None, :], d2[:, None, :], axis=1)
        dzf = dz.reshape(-1, p * u)
        n = self._x2.shape[1]
        self.grads["kernel"] = (self._x2.T @ dzf).reshape(n, p, u).transpose(1, 0, 2).copy()
        if self.use_bias:
            self.grads["bias"] = dz.sum(axis=0)
        return (dzf @ self._wflat.T).reshape(self._x_shape)

    def get_config(self):
        config = super().get_config()
        config.update({
            "units": self.units, "num_pieces": self.num_pieces, "use_bias": self.use_bias,
            "kernel_initializer": _initializers.serialize(self.kernel_initializer),
            "bias_initializer": _initializers.serialize(self.bias_initializer),
            "kernel_regularizer": _regularizers.serialize(self.kernel_regularizer),
            "bias_regularizer": _regularizers.serialize(self.bias_regularizer),
        })
        return config


_LAYERS = {c.__name__: c for c in (
    InputLayer, Conv2D, MaxPooling2D, AveragePooling2D, Flatten, Dense, Dropout, Activation,
    ReLU, LeakyReLU, ELU, Softmax, BatchNormalization, Maxout)}

# Keras 3's preprocessing layers live in fastconv.preprocessing, which builds on the
# Layer class above; they are importable from here as in Keras, and loadable from
# saved models, through a lazy lookup (an import at the top would be circular).
_PREPROCESSING = ("Rescaling", "RandomFlip", "RandomTranslation", "RandomRotation")


def __getattr__(name: str) -> Any:
    if name in _PREPROCESSING:
        from . import preprocessing

        return getattr(preprocessing, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

# Keras's other spellings.
Convolution2D = Conv2D
MaxPool2D = MaxPooling2D
AvgPool2D = AveragePooling2D


def get_layer_class(class_name: str) -> type:
    """The layer class saved under ``class_name``; only fastconv's own layers load."""
    if class_name in _PREPROCESSING:
        return __getattr__(class_name)
    if class_name not in _LAYERS:
        raise ValueError(
            f"Unknown layer class {class_name!r} in the saved model; fastconv knows "
            f"{sorted(set(_LAYERS) | set(_PREPROCESSING))}"
        )
    return _LAYERS[class_name]

