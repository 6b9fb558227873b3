"""Convolution layers: ``Conv2D``, ``DepthwiseConv2D``, ``SeparableConv2D``, ``Conv2DTranspose``,
``Conv1D``."""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from .. import activations as _activations
from .. import constraints as _constraints
from .. import initializers as _initializers
from .. import ops
from .. import regularizers as _regularizers
from ..backends._args import fail, pair
from .base import (
    Ctx,
    Layer,
    _ActivationMixin,
    _data_format,
    _fmt,
    _KernelBias,
    _padding,
    _positive_int,
    _single,
)


class _ConvWindow:
    """The window arguments of a 2-D convolution layer (kernel_size, strides, padding,
    data_format, dilation_rate), the output size they give (Keras's rule), the layout
    change at the layer's edges for channels_first, and their config."""

    def _window_args(self, kernel_size, strides, padding, data_format, dilation_rate):
        self.kernel_size = pair(kernel_size, "kernel_size")
        self.strides = pair(strides, "strides")
        self.padding = _padding(padding)
        self.data_format = _data_format(data_format)
        self.dilation_rate = pair(dilation_rate, "dilation_rate")

    def _window_config(self) -> dict:
        return {"kernel_size": list(self.kernel_size), "strides": list(self.strides),
                "padding": self.padding, "data_format": self.data_format,
                "dilation_rate": list(self.dilation_rate)}

    def _hwc(self, input_shape):
        if self.data_format == "channels_first":
            return input_shape[2], input_shape[3], input_shape[1]
        return input_shape[1], input_shape[2], input_shape[3]

    def _in_channels(self, input_shape):
        C = self._hwc(input_shape)[2]
        if C is None:
            raise self._shape_error(input_shape, "the number of channels must be known.")
        return C

    def _output_shape(self, input_shape, channels):
        """(N, OH, OW, channels) (or channels first) for ``input_shape``: 'same' gives
        ceil(n / stride), 'valid' (n - dilated window) // stride + 1."""
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
            return (input_shape[0], channels, OH, OW)
        return (input_shape[0], OH, OW, channels)

    @property
    def _feature_axis(self):
        return 1 if self.data_format == "channels_first" else -1

    def _to_nhwc(self, a):
        return a.transpose(0, 2, 3, 1) if self.data_format == "channels_first" else a

    def _from_nhwc(self, a):
        return a.transpose(0, 3, 1, 2) if self.data_format == "channels_first" else a


def _add_kernel_and_bias(layer, kernel_shape):
    """The ``kernel`` of ``kernel_shape`` and, with use_bias, the ``bias`` (filters,)."""
    layer.add_weight(name="kernel", shape=kernel_shape, initializer=layer.kernel_initializer,
                     regularizer=layer.kernel_regularizer, constraint=layer.kernel_constraint)
    if layer.use_bias:
        layer.add_weight(name="bias", shape=(layer.filters,), initializer=layer.bias_initializer,
                         regularizer=layer.bias_regularizer, constraint=layer.bias_constraint)


def _conv_forward(layer, x, kernel, strides, padding, dilation):
    """``layer.activation(conv(x, kernel) + layer.bias)`` on NHWC arrays, with the bias
    and a ReLU applied in the convolution's output pass; returns ``(out, ctx)``."""
    args = (x, kernel, layer.bias if layer.use_bias else None, strides, padding, dilation)
    ctx = Ctx()
    ctx.fused_relu = layer.activation is _activations.relu
    if ctx.fused_relu:
        out, ctx.cache = ops.conv2d_relu_forward(*args)
        ctx.preact = None
    else:
        z, ctx.cache = ops.conv2d_forward(*args)
        out = layer._activate(z, ctx)
    return out, ctx


def _conv_backward(layer, dout, ctx, need_dx):
    """``(dx, dkernel, dbias)`` of :func:`_conv_forward`, NHWC."""
    if ctx.fused_relu:
        return ops.conv2d_relu_backward(dout, ctx.cache, need_dx)
    return ops.conv2d_backward(layer._deactivate(dout, ctx), ctx.cache, need_dx)


class Conv2D(_ConvWindow, _ActivationMixin, _KernelBias, Layer):
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
                 kernel_regularizer: Any = None, bias_regularizer: Any = None,
                 kernel_constraint: Any = None, bias_constraint: Any = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.filters = _positive_int("filters", filters)
        self._window_args(kernel_size, strides, padding, data_format, dilation_rate)
        self.activation = _activations.get(activation)
        self.use_bias = bool(use_bias)
        self._weight_args(kernel_initializer, bias_initializer, kernel_regularizer,
                          bias_regularizer, kernel_constraint, bias_constraint)

    def compute_output_shape(self, input_shape):
        return self._output_shape(input_shape, self.filters)

    def build(self, input_shape):
        C = self._in_channels(input_shape)
        _add_kernel_and_bias(self, self.kernel_size + (C, self.filters))

    def forward(self, x, training=False, workspace=None):
        out, ctx = _conv_forward(self, self._to_nhwc(x), self.kernel, self.strides,
                                 self.padding, self.dilation_rate)
        return self._from_nhwc(out), ctx

    def _grads(self, dx, dw, db):
        wg = [(self.kernel, dw)]
        if self.use_bias:
            wg.append((self.bias, db))
        if dx is not None and self.data_format == "channels_first":
            dx = dx.transpose(0, 3, 1, 2)
        return dx, wg

    def backward_logits(self, dz, ctx, need_dx=True):
        """Backward from the gradient of the pre-activation output (layout of the output)."""
        if self.data_format == "channels_first":
            dz = dz.transpose(0, 2, 3, 1)
        return self._grads(*ops.conv2d_backward(dz, ctx.cache, need_dx))

    def backward(self, dout, ctx, need_dx=True):
        # The activation saw channels-last arrays.
        return self._grads(*_conv_backward(self, self._to_nhwc(dout), ctx, need_dx))

    def logits(self, ctx):
        z = super().logits(ctx)
        return z.transpose(0, 3, 1, 2) if self.data_format == "channels_first" else z

    def get_config(self):
        config = super().get_config()
        config.update({
            "filters": self.filters, **self._window_config(),
            "activation": _activations.serialize(self.activation), "use_bias": self.use_bias,
            **self._weight_config(),
        })
        return config


Convolution2D = Conv2D


def _option_module(key: str):
    """The module that reads a ``<weight>_initializer|_regularizer|_constraint`` option."""
    if key.endswith("_initializer"):
        return _initializers
    return _regularizers if key.endswith("_regularizer") else _constraints


def _weight_options(layer, **options):
    """Set each ``<weight>_initializer`` / ``_regularizer`` / ``_constraint`` option on
    ``layer``."""
    for key, value in options.items():
        setattr(layer, key, _option_module(key).get(value, key))


def _weight_options_config(layer, *keys) -> dict:
    return {key: _option_module(key).serialize(getattr(layer, key)) for key in keys}


def _depthwise_args(layer, kernel_size, strides, padding, data_format, dilation_rate,
                    depth_multiplier, activation, use_bias) -> None:
    """The arguments DepthwiseConv2D and SeparableConv2D share, checked, on ``layer``."""
    layer._window_args(kernel_size, strides, padding, data_format, dilation_rate)
    layer.depth_multiplier = _positive_int("depth_multiplier", depth_multiplier)
    layer.activation = _activations.get(activation)
    layer.use_bias = bool(use_bias)


class DepthwiseConv2D(_ConvWindow, _ActivationMixin, Layer):
    """Depthwise 2-D convolution: each input channel convolved with its own
    ``depth_multiplier`` filters, ``out = activation(depthwise(x, kernel) + bias)``.

    Parameters
    ----------
    kernel_size : int or (int, int)
    strides, dilation_rate : int or (int, int), default (1, 1)
    padding : {'valid', 'same'}
    depth_multiplier : int, default 1
        Filters per input channel, M.
    data_format : None, 'channels_last' or 'channels_first'
    activation, use_bias, depthwise_initializer, bias_initializer, depthwise_regularizer,
    bias_regularizer, depthwise_constraint, bias_constraint : as in Keras.

    Weights (Keras's names and order): ``kernel`` (KH, KW, C, M) and ``bias`` (C * M,).
    Input (N, H, W, C) -> output (N, OH, OW, C * M), output channel ``c * M + m`` from
    input channel c's filter m; OH and OW as Conv2D's. On
    :func:`fastconv.ops.depthwise_conv2d_forward`.
    """

    def __init__(self, kernel_size: Any, strides: Any = (1, 1), padding: str = "valid",
                 depth_multiplier: int = 1, data_format: Optional[str] = None,
                 dilation_rate: Any = (1, 1), activation: Any = None, use_bias: bool = True,
                 depthwise_initializer: Any = "glorot_uniform", bias_initializer: Any = "zeros",
                 depthwise_regularizer: Any = None, bias_regularizer: Any = None,
                 depthwise_constraint: Any = None, bias_constraint: Any = None,
                 **kwargs: Any):
        super().__init__(**kwargs)
        _depthwise_args(self, kernel_size, strides, padding, data_format, dilation_rate,
                        depth_multiplier, activation, use_bias)
        _weight_options(self, depthwise_initializer=depthwise_initializer,
                        bias_initializer=bias_initializer,
                        depthwise_regularizer=depthwise_regularizer,
                        bias_regularizer=bias_regularizer,
                        depthwise_constraint=depthwise_constraint,
                        bias_constraint=bias_constraint)

    def compute_output_shape(self, input_shape):
        C = self._hwc(input_shape)[2] if len(input_shape) == 4 else None
        return self._output_shape(input_shape, None if C is None else C * self.depth_multiplier)

    def build(self, input_shape):
        C = self._in_channels(input_shape)
        self.add_weight(name="kernel", shape=self.kernel_size + (C, self.depth_multiplier),
                        initializer=self.depthwise_initializer,
                        regularizer=self.depthwise_regularizer,
                        constraint=self.depthwise_constraint)
        if self.use_bias:
            self.add_weight(name="bias", shape=(C * self.depth_multiplier,),
                            initializer=self.bias_initializer,
                            regularizer=self.bias_regularizer, constraint=self.bias_constraint)

    def forward(self, x, training=False, workspace=None):
        ctx = Ctx()
        z, ctx.cache = ops.depthwise_conv2d_forward(
            self._to_nhwc(x), self.kernel, self.bias if self.use_bias else None, self.strides,
            self.padding, self.dilation_rate)
        return self._from_nhwc(self._activate(z, ctx)), ctx

    def backward(self, dout, ctx, need_dx=True):
        dz = self._deactivate(self._to_nhwc(dout), ctx)
        dx, dw, db = ops.depthwise_conv2d_backward(dz, ctx.cache, need_dx)
        wg = [(self.kernel, dw)] + ([(self.bias, db)] if self.use_bias else [])
        return (None if dx is None else self._from_nhwc(dx)), wg

    def get_config(self):
        config = super().get_config()
        config.update({
            **self._window_config(), "depth_multiplier": self.depth_multiplier,
            "activation": _activations.serialize(self.activation), "use_bias": self.use_bias,
            **_weight_options_config(self, "depthwise_initializer", "bias_initializer",
                                     "depthwise_regularizer", "bias_regularizer",
                                     "depthwise_constraint", "bias_constraint"),
        })
        return config


class SeparableConv2D(_ConvWindow, _ActivationMixin, Layer):
    """Depthwise separable 2-D convolution: a depthwise convolution (no bias) with the
    layer's window, then a 1x1 convolution to ``filters`` channels with the bias, then
    the activation.

    Parameters
    ----------
    filters : int
    kernel_size : int or (int, int)
    strides, dilation_rate : int or (int, int), default (1, 1)
        Of the depthwise step; the pointwise step has stride 1.
    padding : {'valid', 'same'}
    data_format : None, 'channels_last' or 'channels_first'
    depth_multiplier : int, default 1
    activation, use_bias, depthwise_initializer, pointwise_initializer, bias_initializer,
    depthwise_regularizer, pointwise_regularizer, bias_regularizer,
    depthwise_constraint, pointwise_constraint, bias_constraint : as in Keras.

    Weights (Keras's names and order): ``depthwise_kernel`` (KH, KW, C, M),
    ``pointwise_kernel`` (1, 1, C * M, filters), ``bias`` (filters,). Input
    (N, H, W, C) -> output (N, OH, OW, filters), OH and OW as Conv2D's. On
    :func:`fastconv.ops.depthwise_conv2d_forward` and the 1x1 case of
    :func:`fastconv.ops.conv2d_forward` (with the ReLU fused when it is the activation).
    """

    def __init__(self, filters: int, kernel_size: Any, strides: Any = (1, 1),
                 padding: str = "valid", data_format: Optional[str] = None,
                 dilation_rate: Any = (1, 1), depth_multiplier: int = 1,
                 activation: Any = None, use_bias: bool = True,
                 depthwise_initializer: Any = "glorot_uniform",
                 pointwise_initializer: Any = "glorot_uniform", bias_initializer: Any = "zeros",
                 depthwise_regularizer: Any = None, pointwise_regularizer: Any = None,
                 bias_regularizer: Any = None, depthwise_constraint: Any = None,
                 pointwise_constraint: Any = None, bias_constraint: Any = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.filters = _positive_int("filters", filters)
        _depthwise_args(self, kernel_size, strides, padding, data_format, dilation_rate,
                        depth_multiplier, activation, use_bias)
        _weight_options(self, depthwise_initializer=depthwise_initializer,
                        pointwise_initializer=pointwise_initializer,
                        bias_initializer=bias_initializer,
                        depthwise_regularizer=depthwise_regularizer,
                        pointwise_regularizer=pointwise_regularizer,
                        bias_regularizer=bias_regularizer,
                        depthwise_constraint=depthwise_constraint,
                        pointwise_constraint=pointwise_constraint,
                        bias_constraint=bias_constraint)

    def compute_output_shape(self, input_shape):
        return self._output_shape(input_shape, self.filters)

    def build(self, input_shape):
        C = self._in_channels(input_shape)
        M = self.depth_multiplier
        self.add_weight(name="depthwise_kernel", shape=self.kernel_size + (C, M),
                        initializer=self.depthwise_initializer,
                        regularizer=self.depthwise_regularizer,
                        constraint=self.depthwise_constraint)
        self.add_weight(name="pointwise_kernel", shape=(1, 1, C * M, self.filters),
                        initializer=self.pointwise_initializer,
                        regularizer=self.pointwise_regularizer,
                        constraint=self.pointwise_constraint)
        if self.use_bias:
            self.add_weight(name="bias", shape=(self.filters,),
                            initializer=self.bias_initializer,
                            regularizer=self.bias_regularizer, constraint=self.bias_constraint)

    def forward(self, x, training=False, workspace=None):
        ctx = Ctx()
        y, ctx.depthwise = ops.depthwise_conv2d_forward(
            self._to_nhwc(x), self.depthwise_kernel, None, self.strides, self.padding,
            self.dilation_rate)
        out, ctx.pointwise = _conv_forward(self, y, self.pointwise_kernel, 1, "valid", 1)
        return self._from_nhwc(out), ctx

    def backward(self, dout, ctx, need_dx=True):
        dy, dpw, db = _conv_backward(self, self._to_nhwc(dout), ctx.pointwise, True)
        dx, ddw, _ = ops.depthwise_conv2d_backward(dy, ctx.depthwise, need_dx)
        wg = [(self.depthwise_kernel, ddw), (self.pointwise_kernel, dpw)]
        if self.use_bias:
            wg.append((self.bias, db))
        return (None if dx is None else self._from_nhwc(dx)), wg

    def get_config(self):
        config = super().get_config()
        config.update({
            "filters": self.filters, **self._window_config(),
            "depth_multiplier": self.depth_multiplier,
            "activation": _activations.serialize(self.activation), "use_bias": self.use_bias,
            **_weight_options_config(self, "depthwise_initializer", "pointwise_initializer",
                                     "bias_initializer", "depthwise_regularizer",
                                     "pointwise_regularizer", "bias_regularizer",
                                     "depthwise_constraint", "pointwise_constraint",
                                     "bias_constraint"),
        })
        return config


SeparableConvolution2D = SeparableConv2D


def _steps_output(layer, input_shape, channels, window, stride):
    """Keras's output shape of a 1-D window over (N, steps, C) (or (N, C, steps)):
    'valid' (steps - window) // stride + 1, 'same' and 'causal' ceil(steps / stride)."""
    cf = layer.data_format == "channels_first"
    layer._need_ndim(input_shape, 3, "(batch, channels, steps)" if cf
                     else "(batch, steps, channels)")
    n = input_shape[2] if cf else input_shape[1]
    if n is None:
        out = None
    elif layer.padding == "valid":
        if n < window:
            raise layer._shape_error(
                input_shape, f"the {n} steps are fewer than the window of {window} with "
                "padding='valid'.")
        out = (n - window) // stride + 1
    else:
        out = -(-n // stride)
    return (input_shape[0], channels, out) if cf else (input_shape[0], out, channels)


class Conv1D(_ActivationMixin, _KernelBias, Layer):
    """1-D convolution over sequences, ``out = activation(conv(x, kernel) + bias)``, on
    the 2-D kernels with an image height of 1.

    Parameters
    ----------
    filters : int
    kernel_size, strides, dilation_rate : int or (int,)
    padding : {'valid', 'same', 'causal'}
        'causal' pads ``dilation_rate * (kernel_size - 1)`` zeros at the start only, so
        that ``out[t]`` depends on ``x[:t + 1]`` only (Keras's rule).
    data_format : None, 'channels_last' or 'channels_first'
    groups : int, default 1
        Only 1 is implemented.
    activation, use_bias, kernel_initializer, bias_initializer, kernel_regularizer,
    bias_regularizer : as in Keras.

    Weights: ``kernel`` (kernel_size, C_in, filters), ``bias`` (filters,). Input
    (N, steps, C_in) -> output (N, out_steps, filters) (channels_last).
    """

    def __init__(self, filters: int, kernel_size: Any, strides: Any = 1,
                 padding: str = "valid", data_format: Optional[str] = None,
                 dilation_rate: Any = 1, groups: int = 1, activation: Any = None,
                 use_bias: bool = True, kernel_initializer: Any = "glorot_uniform",
                 bias_initializer: Any = "zeros", kernel_regularizer: Any = None,
                 bias_regularizer: Any = None, kernel_constraint: Any = None,
                 bias_constraint: Any = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.filters = _positive_int("filters", filters)
        self.kernel_size = (_single("kernel_size", kernel_size),)
        self.strides = (_single("strides", strides),)
        if not isinstance(padding, str) or padding.lower() not in ("valid", "same", "causal"):
            raise fail("padding", "'valid', 'same' or 'causal'", padding)
        self.padding = padding.lower()
        self.data_format = _data_format(data_format)
        self.dilation_rate = (_single("dilation_rate", dilation_rate),)
        if _positive_int("groups", groups) != 1:
            raise NotImplementedError(f"fastconv's Conv1D has groups=1 only (got groups="
                                      f"{groups})")
        self.groups = 1
        self.activation = _activations.get(activation)
        self.use_bias = bool(use_bias)
        self._weight_args(kernel_initializer, bias_initializer, kernel_regularizer,
                          bias_regularizer, kernel_constraint, bias_constraint)

    @property
    def _window(self):
        return self.dilation_rate[0] * (self.kernel_size[0] - 1) + 1

    @property
    def _feature_axis(self):
        return 1 if self.data_format == "channels_first" else -1

    def compute_output_shape(self, input_shape):
        return _steps_output(self, input_shape, self.filters, self._window, self.strides[0])

    def build(self, input_shape):
        C = input_shape[1] if self.data_format == "channels_first" else input_shape[-1]
        if C is None:
            raise self._shape_error(input_shape, "the number of channels must be known.")
        _add_kernel_and_bias(self, self.kernel_size + (C, self.filters))

    def _to_nlc(self, a):
        return a.transpose(0, 2, 1) if self.data_format == "channels_first" else a

    def forward(self, x, training=False, workspace=None):
        padding = ((0, 0), (self._window - 1, 0)) if self.padding == "causal" else self.padding
        out, ctx = _conv_forward(self, self._to_nlc(x)[:, None], self.kernel[None],
                                 (1, self.strides[0]), padding, (1, self.dilation_rate[0]))
        return self._to_nlc(out[:, 0]), ctx

    def backward(self, dout, ctx, need_dx=True):
        dx, dw, db = _conv_backward(self, self._to_nlc(dout)[:, None], ctx, need_dx)
        wg = [(self.kernel, dw[0])] + ([(self.bias, db)] if self.use_bias else [])
        return (None if dx is None else self._to_nlc(dx[:, 0])), wg

    def get_config(self):
        config = super().get_config()
        config.update({
            "filters": self.filters, "kernel_size": list(self.kernel_size),
            "strides": list(self.strides), "padding": self.padding,
            "data_format": self.data_format, "dilation_rate": list(self.dilation_rate),
            "groups": self.groups, "activation": _activations.serialize(self.activation),
            "use_bias": self.use_bias, **self._weight_config(),
        })
        return config


Convolution1D = Conv1D


def _transpose_pads(k, s, d, padding, output_padding):
    """Zeros before and after the stride-dilated input of a transposed convolution along
    one axis (Keras's rule): with e = d*(k-1) + 1, 'valid' gives (e-1, e-1 + op), op
    defaulting to max(e, s) - e; 'same' splits s + e - 2 (or e + e%2 - 2 + op when
    output_padding is given), the larger half first but at most e-1 before."""
    e = d * (k - 1) + 1
    if padding == "valid":
        op = max(e, s) - e if output_padding is None else output_padding
        return e - 1, e - 1 + op
    total = s + e - 2 if output_padding is None else e + e % 2 - 2 + output_padding
    left = min(total // 2 + total % 2, e - 1)
    return left, total - left


class Conv2DTranspose(_ConvWindow, _ActivationMixin, _KernelBias, Layer):
    """Transposed 2-D convolution (the gradient of a Conv2D with respect to its input),
    ``out = activation(conv_transpose(x, kernel) + bias)``.

    Parameters
    ----------
    filters : int
    kernel_size : int or (int, int)
    strides, dilation_rate : int or (int, int), default (1, 1)
        Not both above 1 (Keras's rule).
    padding : {'valid', 'same'}
    output_padding : None, int or (int, int)
        Extra rows/columns at the bottom/right, each < its stride.
    data_format : None, 'channels_last' or 'channels_first'
    activation, use_bias, kernel_initializer, bias_initializer, kernel_regularizer,
    bias_regularizer : as in Keras.

    Weights (Keras's): ``kernel`` (KH, KW, filters, C_in) and ``bias`` (filters,).
    Output size per axis: 'valid' ``(n-1)*s + e + op`` (op default max(e, s) - e),
    'same' ``n*s`` (or ``(n-1)*s + e%2 + op`` with output_padding), e = d*(k-1) + 1.

    Notes
    -----
    When the windows do not overlap (strides == kernel_size, 'valid', no dilation or
    output padding: U-Net's ``Conv2DTranspose(f, 2, strides=2)``), each input pixel
    writes its own KH x KW block of the output: one matrix product
    (N*H*W, C_in) @ (C_in, KH*KW*filters), and the same two products as Dense backward.
    Other strided layers split the output into its s_h * s_w stride phases, each a
    stride-1 convolution of the input with a flipped sub-kernel on the existing kernels
    (:meth:`_phases`), so no multiplication by inserted zeros; their backward is one
    strided Conv2D of the output gradient, whose output is dx and whose weight gradient
    is dw (:meth:`_backward_strided`). At stride 1 it is one
    convolution with the flipped kernel, padded by :func:`_transpose_pads` (bias and
    ReLU fused).
    """

    def __init__(self, filters: int, kernel_size: Any, strides: Any = (1, 1),
                 padding: str = "valid", output_padding: Any = None,
                 data_format: Optional[str] = None, dilation_rate: Any = (1, 1),
                 activation: Any = None, use_bias: bool = True,
                 kernel_initializer: Any = "glorot_uniform", bias_initializer: Any = "zeros",
                 kernel_regularizer: Any = None, bias_regularizer: Any = None,
                 kernel_constraint: Any = None, bias_constraint: Any = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.filters = _positive_int("filters", filters)
        self._window_args(kernel_size, strides, padding, data_format, dilation_rate)
        self.output_padding = None if output_padding is None else pair(
            output_padding, "output_padding", 0)
        if self.output_padding is not None and any(
                op >= st for op, st in zip(self.output_padding, self.strides)):
            raise fail("output_padding", f"less than strides={self.strides} on each axis",
                       output_padding)
        if max(self.strides) > 1 and max(self.dilation_rate) > 1:
            raise fail("dilation_rate", f"(1, 1) when strides={self.strides} is above 1",
                       dilation_rate)
        self.activation = _activations.get(activation)
        self.use_bias = bool(use_bias)
        self._weight_args(kernel_initializer, bias_initializer, kernel_regularizer,
                          bias_regularizer, kernel_constraint, bias_constraint)

    def _pads(self):
        ops_ = self.output_padding or (None, None)
        return tuple(_transpose_pads(k, st, d, self.padding, op) for k, st, d, op in zip(
            self.kernel_size, self.strides, self.dilation_rate, ops_))

    def compute_output_shape(self, input_shape):
        layout = ("(batch, channels, height, width)" if self.data_format == "channels_first"
                  else "(batch, height, width, channels)")
        self._need_ndim(input_shape, 4, layout)
        H, W, _ = self._hwc(input_shape)
        sizes = []
        for n, k, st, d, (left, right) in zip((H, W), self.kernel_size, self.strides,
                                               self.dilation_rate, self._pads()):
            sizes.append(None if n is None else (n - 1) * st + left + right - d * (k - 1) + 1)
        if self.data_format == "channels_first":
            return (input_shape[0], self.filters) + tuple(sizes)
        return (input_shape[0],) + tuple(sizes) + (self.filters,)

    def build(self, input_shape):
        C = self._in_channels(input_shape)
        _add_kernel_and_bias(self, self.kernel_size + (self.filters, C))

    @property
    def _tiles(self) -> bool:
        """Whether the output is made of non-overlapping KH x KW blocks, one per input
        pixel."""
        return (self.strides == self.kernel_size and self.padding == "valid"
                and self.dilation_rate == (1, 1) and not any(self.output_padding or ()))

    def _block_matrix(self):
        """The kernel as (C_in, KH*KW*filters), columns in (i, j, f) order."""
        kh, kw, f, c = self.kernel.shape
        return self.kernel.transpose(3, 0, 1, 2).reshape(c, kh * kw * f)

    def _forward_tiles(self, x):
        N, H, W, C = x.shape
        kh, kw = self.kernel_size
        ctx = Ctx()
        ctx.x2 = x.reshape(N * H * W, C)
        blocks = ops.matmul(ctx.x2, self._block_matrix()).reshape(N, H, W, kh, kw, self.filters)
        z = blocks.transpose(0, 1, 3, 2, 4, 5).reshape(N, H * kh, W * kw, self.filters)
        if self.use_bias:
            z += self.bias
        return self._activate(z, ctx), ctx

    def _backward_tiles(self, dout, ctx, need_dx):
        dz = self._deactivate(dout, ctx)
        N, OH, OW, F = dz.shape
        kh, kw = self.kernel_size
        d2 = dz.reshape(N, OH // kh, kh, OW // kw, kw, F).transpose(0, 1, 3, 2, 4, 5)
        d2 = d2.reshape(ctx.x2.shape[0], kh * kw * F)
        C = ctx.x2.shape[1]
        dw = ops.matmul(ctx.x2.T, d2).reshape(C, kh, kw, F).transpose(1, 2, 3, 0)
        wg = [(self.kernel, np.ascontiguousarray(dw))]
        if self.use_bias:
            wg.append((self.bias, dz.sum(axis=(0, 1, 2))))
        if not need_dx:
            return None, wg
        dx = ops.matmul(d2, self._block_matrix().T).reshape(N, OH // kh, OW // kw, C)
        return self._from_nhwc(dx), wg

    def _phases(self, H, W, OH, OW):
        """The stride phases of a strided transposed convolution (dilation 1).

        Output pixel (oh, ow) reads only the taps i = (oh + ct) mod sh (mod sh), j
        likewise, ct and cl being the rows and columns the output is cropped by. So
        the outputs of one phase (rh, rw), every sh-th row from oh0 and every sw-th
        column from ow0, are a stride-1 convolution of x with the sub-kernel
        ``kernel[rh::sh, rw::sw]`` flipped: no multiplication by inserted zeros. Yields
        ``(rows, cols)``, each per axis ``(r, o0, count, lo, hi, before, after)``: the
        phase, its first output and count, the input slice [lo, hi) it reads and the
        zero padding it needs before and after (count = 0: no output; lo >= hi: no
        taps reach it, only the bias).
        """
        axes = []
        for n, out, k, st, (left, _) in zip((H, W), (OH, OW), self.kernel_size,
                                            self.strides, self._pads()):
            crop = k - 1 - left
            per_axis = []
            for r in range(st):
                taps = len(range(r, k, st))
                q0 = -((r - crop) // st)  # ceil((crop - r) / st)
                count = (crop + out - 1 - r) // st - q0 + 1
                first = q0 - (taps - 1)  # input rows q0 - taps + 1 ... q0 + count - 1
                last = q0 + count - 1
                lo, hi = max(first, 0), min(last, n - 1) + 1
                if taps == 0:
                    lo, hi = 0, 0
                per_axis.append((r, q0 * st + r - crop, count, lo, hi, max(0, -first),
                                 max(0, last - (n - 1))))
            axes.append(per_axis)
        for rows in axes[0]:
            for cols in axes[1]:
                if rows[2] > 0 and cols[2] > 0:
                    yield rows, cols

    def _forward_phases(self, x):
        N, H, W, C = x.shape
        _, OH, OW, F = self.compute_output_shape((N, H, W, C))
        (sh, sw), k = self.strides, self.kernel
        phases = list(self._phases(H, W, OH, OW))
        reached = [(rows, cols) for rows, cols in phases
                   if rows[3] < rows[4] and cols[3] < cols[4]]
        # Every output lies in exactly one phase; each phase's convolution adds the
        # bias itself, and only outputs that no tap reaches need it set apart.
        covered = len(reached) == len(phases)
        z = np.empty((N, OH, OW, F), dtype=x.dtype) if covered else np.zeros(
            (N, OH, OW, F), dtype=x.dtype)
        if not covered and self.use_bias:
            z += self.bias
        ctx = Ctx()
        ctx.x = x
        bias = self.bias if self.use_bias else None
        for rows, cols in reached:
            (rh, oh0, _, hlo, hhi, hb, ha), (rw, ow0, _, wlo, whi, wb, wa) = rows, cols
            sub = np.ascontiguousarray(k[rh::sh, rw::sw][::-1, ::-1].transpose(0, 1, 3, 2))
            out, _ = ops.conv2d_forward(x[:, hlo:hhi, wlo:whi], sub, bias, 1,
                                        ((hb, ha), (wb, wa)))
            z[:, oh0::sh, ow0::sw] = out
        return self._activate(z, ctx), ctx

    def _backward_strided(self, dout, ctx, need_dx):
        """The gradients of a strided layer from one strided Conv2D of dz with the
        kernel (KH, KW, filters, C_in) read as a convolution's: its output is dx (the
        adjoint of the forward), and its weight gradient against x is dw. Per axis the
        convolution pads dz by crop = e - 1 - left before (the rows the forward cropped)
        and enough after for n outputs; output rows no input reaches (output_padding
        past the last window) only have a bias gradient and are left out."""
        dz = self._deactivate(dout, ctx)
        x = ctx.x
        pads, limits = [], []
        for n, out, k, st, (left, _) in zip(x.shape[1:3], dz.shape[1:3], self.kernel_size,
                                            self.strides, self._pads()):
            crop = k - 1 - left  # (strided layers have dilation 1)
            after = (n - 1) * st + k - 1 - crop - (out - 1)
            pads.append((crop, max(after, 0)))
            limits.append(out + min(after, 0))
        dx, cache = ops.conv2d_forward(dz[:, :limits[0], :limits[1]], self.kernel, None,
                                       self.strides, tuple(pads))
        _, dw, _ = ops.conv2d_backward(x, cache, input_grad=False)
        wg = [(self.kernel, dw)] + ([(self.bias, dz.sum(axis=(0, 1, 2)))]
                                    if self.use_bias else [])
        return (self._from_nhwc(dx) if need_dx else None), wg

    def forward(self, x, training=False, workspace=None):
        x = self._to_nhwc(x)
        if self._tiles:
            out, ctx = self._forward_tiles(x)
        elif self.strides != (1, 1):
            out, ctx = self._forward_phases(x)
        else:
            flipped = np.ascontiguousarray(self.kernel[::-1, ::-1].transpose(0, 1, 3, 2))
            out, ctx = _conv_forward(self, x, flipped, 1, self._pads(), self.dilation_rate)
        return self._from_nhwc(out), ctx

    def backward(self, dout, ctx, need_dx=True):
        dout = self._to_nhwc(dout)
        if self._tiles:
            return self._backward_tiles(dout, ctx, need_dx)
        if self.strides != (1, 1):
            return self._backward_strided(dout, ctx, need_dx)
        dz, dflipped, db = _conv_backward(self, dout, ctx, need_dx)
        dw = np.ascontiguousarray(dflipped[::-1, ::-1].transpose(0, 1, 3, 2))
        wg = [(self.kernel, dw)] + ([(self.bias, db)] if self.use_bias else [])
        return (None if dz is None else self._from_nhwc(dz)), wg

    def get_config(self):
        config = super().get_config()
        config.update({
            "filters": self.filters, **self._window_config(),
            "output_padding": None if self.output_padding is None else list(
                self.output_padding),
            "activation": _activations.serialize(self.activation), "use_bias": self.use_bias,
            **self._weight_config(),
        })
        return config


Convolution2DTranspose = Conv2DTranspose
