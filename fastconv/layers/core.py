"""Core layers: ``Dense``, ``Flatten``, ``Dropout``, the activation layers, ``Maxout``."""

from __future__ import annotations

import threading
from typing import Any, Optional, Sequence

import numpy as np

from .. import activations as _activations
from .. import ops
from .._random import child_seed
from .._threads import get_num_threads
from ..backends._args import check_dout, fail
from ..graph import empty
from .base import Ctx, Layer, _ActivationMixin, _data_format, _KernelBias, _positive_int

try:  # compiled element-wise kernels, when the extension is built
    from .. import _elementwise
except ImportError:  # pragma: no cover - the NumPy paths run
    _elementwise = None


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

    def forward(self, x, training=False, workspace=None):
        if self.data_format == "channels_first" and x.ndim > 2:
            x = np.moveaxis(x, 1, -1)
        return x.reshape(x.shape[0], -1), x.shape

    def backward(self, dout, shape, need_dx=True):
        dx = dout.reshape(shape)
        if self.data_format == "channels_first" and dx.ndim > 2:
            dx = np.moveaxis(dx, -1, 1)
        return dx, []

    def get_config(self):
        config = super().get_config()
        config["data_format"] = self.data_format
        return config


# Dense's matrix products, forward and backward, on the active backend: the compiled
# one cuts each product into blocks fixed by the shapes, each one single-threaded BLAS
# call on fastconv's own threads, so the bits depend neither on the thread count nor
# on concurrent calls. (NumPy's multi-threaded BLAS is 10-20% faster for these
# products alone, but its worker thread keeps spinning for a long while after each
# call and takes a core from the convolutions that follow: a Winograd forward ran 12.0
# ms right after a NumPy product, 6.0 alone.)
# A module attribute so that benchmarks/train_compare.py --overhead can count its
# time as kernel time.
_matmul = ops.matmul


class Dense(_ActivationMixin, _KernelBias, Layer):
    """``out = activation(x @ kernel + bias)`` on the last axis of ``x``.

    Weights: ``kernel`` (in, units), ``bias`` (units,). Input ``(N, ..., in)`` gives
    ``(N, ..., units)``: like Keras, a Dense after a 4-D output without Flatten acts
    on the channel axis, and ``summary()`` shows the resulting shape.
    """

    def __init__(self, units: int, activation: Any = None, use_bias: bool = True,
                 kernel_initializer: Any = "glorot_uniform", bias_initializer: Any = "zeros",
                 kernel_regularizer: Any = None, bias_regularizer: Any = None,
                 kernel_constraint: Any = None, bias_constraint: Any = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.units = _positive_int("units", units)
        self.activation = _activations.get(activation)
        self.use_bias = bool(use_bias)
        self._weight_args(kernel_initializer, bias_initializer, kernel_regularizer,
                          bias_regularizer, kernel_constraint, bias_constraint)

    def compute_output_shape(self, input_shape):
        return self._dense_shape(input_shape)

    _feature_axis = -1

    def build(self, input_shape):
        self.add_weight(name="kernel", shape=(input_shape[-1], self.units),
                        initializer=self.kernel_initializer,
                        regularizer=self.kernel_regularizer,
                        constraint=self.kernel_constraint)
        if self.use_bias:
            self.add_weight(name="bias", shape=(self.units,), initializer=self.bias_initializer,
                            regularizer=self.bias_regularizer,
                            constraint=self.bias_constraint)

    def forward(self, x, training=False, workspace=None):
        ctx = Ctx()
        ctx.x_shape, ctx.ws = x.shape, workspace
        x2 = x.reshape(-1, x.shape[-1])
        z = _matmul(x2, self.kernel)
        ctx.x2 = x2
        bias = self.bias if self.use_bias else None
        relu = self.activation is _activations.relu
        ctx.fused_relu = False
        if _elementwise is not None and z.dtype == self.kernel.dtype and z.flags.c_contiguous \
                and (relu or bias is not None):
            # Bias and ReLU in one compiled pass over the product, in place; the
            # ReLU's output keeps the sign of its input, all its backward needs.
            _elementwise.bias_act(z, bias, relu, get_num_threads())
            if relu:
                ctx.fused_relu = True
                ctx.out = z
                ctx.preact = None
                return z.reshape(x.shape[:-1] + (self.units,)), ctx
        elif bias is not None:
            z += bias
        return self._activate(z.reshape(x.shape[:-1] + (self.units,)), ctx), ctx

    def backward(self, dout, ctx, need_dx=True):
        if ctx.fused_relu:
            out = ctx.out
            shape = ctx.x_shape[:-1] + (self.units,)
            d2 = check_dout(dout, shape, out.dtype).reshape(out.shape)
            dz = empty(ctx.ws, "dz", out.shape, out.dtype)
            if self.use_bias:
                # ReLU's backward and the bias gradient in one compiled pass.
                db = empty(ctx.ws, "dbias", self.bias.shape, self.bias.dtype)
                _elementwise.column_sum(d2, out, dz, db, get_num_threads())
                return self._backward_z(dz, ctx, need_dx, db)
            _elementwise.relu_backward(d2.reshape(-1), out.reshape(-1), dz.reshape(-1),
                                       get_num_threads())
            return self._backward_z(dz, ctx, need_dx)
        return self._backward_z(self._deactivate(dout, ctx), ctx, need_dx)

    def backward_logits(self, dz, ctx, need_dx=True):
        return self._backward_z(dz, ctx, need_dx)

    def _backward_z(self, dz, ctx, need_dx, db=None):
        d2 = dz.reshape(-1, self.units)
        dk = empty(ctx.ws, "dkernel", self.kernel.shape, self.kernel.dtype)
        _matmul(ctx.x2.T, d2, out=dk)
        wg = [(self.kernel, dk)]
        if self.use_bias:
            if db is None:
                db = empty(ctx.ws, "dbias", self.bias.shape, self.bias.dtype)
                if _elementwise is not None and d2.dtype == db.dtype and d2.flags.c_contiguous:
                    _elementwise.column_sum(d2, None, None, db, get_num_threads())
                else:
                    np.add.reduce(d2, axis=0, out=db)
            wg.append((self.bias, db))
        if not need_dx:
            return None, wg
        dx = empty(ctx.ws, "dx", (d2.shape[0], self.kernel.shape[0]), d2.dtype)
        return _matmul(d2, self.kernel.T, out=dx).reshape(ctx.x_shape), wg

    def get_config(self):
        config = super().get_config()
        config.update({
            "units": self.units, "activation": _activations.serialize(self.activation),
            "use_bias": self.use_bias,
            **self._weight_config(),
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
        self._step_lock = threading.Lock()

    def forward(self, x, training=False, workspace=None):
        if not training or self.rate == 0:
            return x, None
        ctx = Ctx()
        ctx.ws = workspace
        if self.noise_shape is None and _elementwise is not None and x.flags.c_contiguous \
                and x.dtype in (np.float32, np.float64):
            # One compiled pass: mask drawn, applied and scaled together.
            out = empty(workspace, "out", x.shape, x.dtype)
            keep = ctx.keep8 = empty(workspace, "keep", x.shape, x.dtype)
            with self._step_lock:
                step = self._step
                self._step += 1
            _elementwise.dropout_forward(x.reshape(-1), out.reshape(-1), keep.reshape(-1),
                                         self.rate, self._key, step, get_num_threads())
            ctx.mask = keep
            return out, ctx
        ctx.keep8 = None
        shape = x.shape if self.noise_shape is None else tuple(
            x.shape[i] if s is None else s for i, s in enumerate(self.noise_shape))
        dtype = x.dtype if x.dtype in (np.float32, np.float64) else np.float32
        uniform = empty(workspace, "uniform", shape, dtype)
        with self._step_lock:
            self._rng.random(out=uniform, dtype=dtype)
        keep = ctx.mask = np.greater_equal(uniform, self.rate)
        out = np.multiply(x, keep, dtype=x.dtype)
        out *= x.dtype.type(1 / (1 - self.rate))
        return out, ctx

    def backward(self, dout, ctx, need_dx=True):
        if ctx is None:
            return dout, []
        if ctx.keep8 is not None and dout.flags.c_contiguous and dout.dtype == ctx.keep8.dtype:
            dx = empty(ctx.ws, "dx", dout.shape, dout.dtype)
            _elementwise.dropout_backward(dout.reshape(-1), ctx.keep8.reshape(-1),
                                          dx.reshape(-1), get_num_threads())
            return dx, []
        dx = np.multiply(dout, ctx.mask, dtype=dout.dtype)
        dx *= dout.dtype.type(1 / (1 - self.rate))
        return dx, []

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

    def forward(self, x, training=False, workspace=None):
        ctx = Ctx()
        return self._activate(x, ctx), ctx

    def backward(self, dout, ctx, need_dx=True):
        return self._deactivate(dout, ctx), []

    def backward_logits(self, dz, ctx, need_dx=True):
        return dz, []

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

    def forward(self, x, training=False, workspace=None):
        if self._plain():
            return ops.relu_forward(x)
        t = x.dtype.type(self.threshold)
        above = x >= t
        out = np.where(above, x, x.dtype.type(self.negative_slope) * (x - t))
        slope = np.where(above, 1, self.negative_slope).astype(x.dtype)
        if self.max_value is not None:
            capped = out > self.max_value
            out = np.where(capped, x.dtype.type(self.max_value), out)
            slope[capped] = 0
        return out, slope

    def backward(self, dout, ctx, need_dx=True):
        if self._plain():
            return ops.relu_backward(dout, ctx), []
        return dout * ctx, []

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


class Maxout(_KernelBias, Layer):
    """Maxout unit: ``out = max_k (x @ kernel[k] + bias[k])`` over ``num_pieces`` pieces.

    With ``num_pieces=2`` this is the lecture's ``max(w1.x + b1, w2.x + b2)`` (Keras 1's
    ``MaxoutDense``, whose weight layout this keeps). Weights: ``kernel``
    (num_pieces, in, units) and ``bias`` (num_pieces, units). Input ``(N, ..., in)`` gives
    ``(N, ..., units)``; the gradient of each output goes to the piece that won.
    """

    def __init__(self, units: int, num_pieces: int = 2, use_bias: bool = True,
                 kernel_initializer: Any = "glorot_uniform", bias_initializer: Any = "zeros",
                 kernel_regularizer: Any = None, bias_regularizer: Any = None,
                 kernel_constraint: Any = None, bias_constraint: Any = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.units = _positive_int("units", units)
        self.num_pieces = _positive_int("num_pieces", num_pieces)
        self.use_bias = bool(use_bias)
        self._weight_args(kernel_initializer, bias_initializer, kernel_regularizer,
                          bias_regularizer, kernel_constraint, bias_constraint)

    def compute_output_shape(self, input_shape):
        return self._dense_shape(input_shape)

    def build(self, input_shape):
        p, n, u = self.num_pieces, input_shape[-1], self.units
        # Glorot fans of one piece, (in, units), not of the 3-D array.
        init = self.kernel_initializer
        kernel = np.stack([np.asarray(init((n, u), dtype=self.dtype)) for _ in range(p)])
        self.add_weight(name="kernel", shape=(p, n, u),
                        initializer=lambda shape, dtype=None: kernel,
                        regularizer=self.kernel_regularizer,
                        constraint=self.kernel_constraint)
        if self.use_bias:
            self.add_weight(name="bias", shape=(p, u), initializer=self.bias_initializer,
                            regularizer=self.bias_regularizer,
                            constraint=self.bias_constraint)

    _feature_axis = -1

    def forward(self, x, training=False, workspace=None):
        p, u = self.num_pieces, self.units
        x2 = x.reshape(-1, x.shape[-1])
        n = x2.shape[1]
        wflat = self.kernel.transpose(1, 0, 2).reshape(n, p * u)
        z = ops.matmul(x2, wflat).reshape(-1, p, u)
        if self.use_bias:
            z += self.bias
        win = np.argmax(z, axis=1)
        out = np.take_along_axis(z, win[:, None, :], axis=1)[:, 0, :]
        return out.reshape(x.shape[:-1] + (u,)), (x.shape, x2, win, wflat)

    def backward(self, dout, ctx, need_dx=True):
        x_shape, x2, win, wflat = ctx
        p, u = self.num_pieces, self.units
        d2 = dout.reshape(-1, u)
        dz = np.zeros((d2.shape[0], p, u), dout.dtype)
        np.put_along_axis(dz, win[:, None, :], d2[:, None, :], axis=1)
        dzf = dz.reshape(-1, p * u)
        n = x2.shape[1]
        wg = [(self.kernel, ops.matmul(x2.T, dzf).reshape(n, p, u).transpose(1, 0, 2).copy())]
        if self.use_bias:
            wg.append((self.bias, dz.sum(axis=0)))
        return ops.matmul(dzf, wflat.T).reshape(x_shape), wg

    def get_config(self):
        config = super().get_config()
        config.update({
            "units": self.units, "num_pieces": self.num_pieces, "use_bias": self.use_bias,
            **self._weight_config(),
        })
        return config


class Lambda(Layer):
    """Wraps ``function(inputs)`` as a layer: ``Lambda(lambda x: x / 255)``.

    The function is traced on symbolic tensors like a subclass's ``call``, so it may use
    fastconv layers, activations, ``fastconv.keras.ops`` and ``+ - * /``, and it is
    differentiated. ``output_shape`` is not needed (the trace finds it). A model with a
    Lambda layer cannot be saved with its architecture (fastconv never stores code):
    save its weights, or write the function as a registered subclass of Layer.
    """

    def __init__(self, function: Any, output_shape: Any = None, arguments: Any = None,
                 **kwargs: Any):
        super().__init__(**kwargs)
        if not callable(function):
            raise fail("function", "a callable", function, TypeError)
        self.function = function
        self.arguments = dict(arguments or {})

    def call(self, inputs, training=None):
        return self.function(inputs, **self.arguments)

    def get_config(self):
        raise ValueError(f"Layer '{self.name}' (Lambda) holds Python code, which fastconv "
                         "does not save; save the weights (save_weights), or write the "
                         "function as a subclass of Layer registered with "
                         "keras.saving.register_keras_serializable().")
