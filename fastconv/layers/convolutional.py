"""Convolution layers: ``Conv2D``, ``DepthwiseConv2D``, ``SeparableConv2D``, ``Conv1D`` and
``Conv2DTranspose``."""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from .. import activations as _activations
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


def _weight_options(layer, **options):
    """Set each ``<weight>_initializer`` / ``<weight>_regularizer`` option on ``layer``."""
    for key, value in options.items():
        module = _initializers if key.endswith("_initializer") else _regularizers
        setattr(layer, key, module.get(value, key))


def _weight_options_config(layer, *keys) -> dict:
    return {key: (_initializers if key.endswith("_initializer") else _regularizers).serialize(
        getattr(layer, key)) for key in keys}


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
    bias_regularizer : as in Keras.

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
                 **kwargs: Any):
        super().__init__(**kwargs)
        self._window_args(kernel_size, strides, padding, data_format, dilation_rate)
        self.depth_multiplier = _positive_int("depth_multiplier", depth_multiplier)
        self.activation = _activations.get(activation)
        self.use_bias = bool(use_bias)
        _weight_options(self, depthwise_initializer=depthwise_initializer,
                        bias_initializer=bias_initializer,
                        depthwise_regularizer=depthwise_regularizer,
                        bias_regularizer=bias_regularizer)

    def compute_output_shape(self, input_shape):
        C = self._hwc(input_shape)[2] if len(input_shape) == 4 else None
        return self._output_shape(input_shape, None if C is None else C * self.depth_multiplier)

    def build(self, input_shape):
        C = self._in_channels(input_shape)
        self.add_weight(name="kernel", shape=self.kernel_size + (C, self.depth_multiplier),
                        initializer=self.depthwise_initializer,
                        regularizer=self.depthwise_regularizer)
        if self.use_bias:
            self.add_weight(name="bias", shape=(C * self.depth_multiplier,),
                            initializer=self.bias_initializer,
                            regularizer=self.bias_regularizer)

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
                                     "depthwise_regularizer", "bias_regularizer"),
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
    depthwise_regularizer, pointwise_regularizer, bias_regularizer : as in Keras.

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
                 bias_regularizer: Any = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.filters = _positive_int("filters", filters)
        self._window_args(kernel_size, strides, padding, data_format, dilation_rate)
        self.depth_multiplier = _positive_int("depth_multiplier", depth_multiplier)
        self.activation = _activations.get(activation)
        self.use_bias = bool(use_bias)
        _weight_options(self, depthwise_initializer=depthwise_initializer,
                        pointwise_initializer=pointwise_initializer,
                        bias_initializer=bias_initializer,
                        depthwise_regularizer=depthwise_regularizer,
                        pointwise_regularizer=pointwise_regularizer,
                        bias_regularizer=bias_regularizer)

    def compute_output_shape(self, input_shape):
        return self._output_shape(input_shape, self.filters)

    def build(self, input_shape):
        C = self._in_channels(input_shape)
        M = self.depth_multiplier
        self.add_weight(name="depthwise_kernel", shape=self.kernel_size + (C, M),
                        initializer=self.depthwise_initializer,
                        regularizer=self.depthwise_regularizer)
        self.add_weight(name="pointwise_kernel", shape=(1, 1, C * M, self.filters),
                        initializer=self.pointwise_initializer,
                        regularizer=self.pointwise_regularizer)
        if self.use_bias:
            self.add_weight(name="bias", shape=(self.filters,),
                            initializer=self.bias_initializer,
                            regularizer=self.bias_regularizer)

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
                                     "pointwise_regularizer", "bias_regularizer"),
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


def _set_conv_args(layer, kernel_size, strides, padding, data_format, dilation_rate,
                   activation, use_bias) -> None:
    """The arguments every 2-D convolution layer takes, checked, on ``layer``."""
    layer.kernel_size = pair(kernel_size, "kernel_size")
    layer.strides = pair(strides, "strides")
    layer.padding = _padding(padding)
    layer.data_format = _data_format(data_format)
    layer.dilation_rate = pair(dilation_rate, "dilation_rate")
    layer.activation = _activations.get(activation)
    layer.use_bias = bool(use_bias)


class _Spatial(_ActivationMixin, _KernelBias, Layer):
    """Conv2DTranspose's frame: strides, padding, data format, dilation, the activation
    and the bias, and the channels-last conversions at the layer's edges."""

    _common = _set_conv_args

    def _hwc(self, input_shape):
        layout = ("(batch, channels, height, width)" if self.data_format == "channels_first"
                  else "(batch, height, width, channels)")
        self._need_ndim(input_shape, 4, layout)
        if self.data_format == "channels_first":
            return input_shape[2], input_shape[3], input_shape[1]
        return input_shape[1], input_shape[2], input_shape[3]

    def _shape(self, input_shape, oh, ow, c):
        if self.data_format == "channels_first":
            return (input_shape[0], c, oh, ow)
        return (input_shape[0], oh, ow, c)

    def _in(self, x):
        return x.transpose(0, 2, 3, 1) if self.data_format == "channels_first" else x

    def _out(self, y):
        return y.transpose(0, 3, 1, 2) if self.data_format == "channels_first" else y

    @property
    def _feature_axis(self):
        return 1 if self.data_format == "channels_first" else -1

    def logits(self, ctx):
        return self._out(super().logits(ctx))

    def backward(self, dout, ctx, need_dx=True):
        return self.backward_logits(self._deactivate(self._in(dout), ctx), ctx, need_dx,
                                    channels_last=True)

    def _common_config(self):
        return {"kernel_size": list(self.kernel_size), "strides": list(self.strides),
                "padding": self.padding, "data_format": self.data_format,
                "dilation_rate": list(self.dilation_rate),
                "activation": _activations.serialize(self.activation),
                "use_bias": self.use_bias}


class Conv2DTranspose(_Spatial):
    """Transposed 2-D convolution (the gradient of a convolution with respect to its
    input), for decoders and U-Nets.

    Weights: ``kernel`` (KH, KW, filters, C_in), Keras's layout, and ``bias``
    (filters,). Output size per axis, Keras's rule: with ``output_padding`` None,
    ``'valid'`` gives ``(n - 1) * s + max(k, s)`` and ``'same'`` ``n * s`` (``k`` the
    dilated kernel size); with ``output_padding`` p, ``(n - 1) * s + k - 2 * pad + p``
    (``pad`` = ``k // 2`` for 'same', 0 for 'valid').

    It runs on the convolution kernels: the input spread out with ``s - 1`` zeros
    between pixels and padded, then a stride-1 convolution with the flipped kernel.
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
        self._common(kernel_size, strides, padding, data_format, dilation_rate, activation,
                     use_bias)
        self.output_padding = None if output_padding is None else pair(
            output_padding, "output_padding", minimum=0)
        if self.output_padding is not None and any(
                p >= s for p, s in zip(self.output_padding, self.strides)):
            raise fail("output_padding", f"smaller than the strides {self.strides}",
                       output_padding)
        self._weight_args(kernel_initializer, bias_initializer, kernel_regularizer,
                          bias_regularizer, kernel_constraint, bias_constraint)

    def _pads(self, axis):
        """(left, right) padding of the spread-out input along spatial ``axis``."""
        k = self.dilation_rate[axis] * (self.kernel_size[axis] - 1) + 1
        s = self.strides[axis]
        op = None if self.output_padding is None else self.output_padding[axis]
        if self.padding == "valid":
            op = max(k, s) - k if op is None else op
            return k - 1, k - 1 + op
        total = s + k - 2 if op is None else k + k % 2 - 2 + op
        left = min(total // 2 + total % 2, k - 1)
        return left, total - left

    def compute_output_shape(self, input_shape):
        H, W, C = self._hwc(input_shape)
        out = []
        for axis, n in enumerate((H, W)):
            k = self.dilation_rate[axis] * (self.kernel_size[axis] - 1) + 1
            lp, rp = self._pads(axis)
            out.append(None if n is None else (n - 1) * self.strides[axis] + 1 + lp + rp - k + 1)
        return self._shape(input_shape, out[0], out[1], self.filters)

    def build(self, input_shape):
        C = self._hwc(input_shape)[2]
        self._kernel_and_bias(input_shape, C, self.kernel_size + (self.filters, C), self.filters)

    def forward(self, x, training=False, workspace=None):
        x = self._in(x)
        n, h, w, c = x.shape
        (sh, sw), ((top, bottom), (left, right)) = self.strides, (self._pads(0), self._pads(1))
        spread = np.zeros((n, (h - 1) * sh + 1 + top + bottom, (w - 1) * sw + 1 + left + right,
                           c), x.dtype)
        spread[:, top:top + (h - 1) * sh + 1:sh, left:left + (w - 1) * sw + 1:sw] = x
        flipped = np.ascontiguousarray(self.kernel[::-1, ::-1].transpose(0, 1, 3, 2))
        ctx = Ctx()
        z, ctx.cache = ops.conv2d_forward(spread, flipped, self.bias if self.use_bias else None,
                                          1, "valid", self.dilation_rate)
        ctx.geom = (h, w, top, left)
        return self._out(self._activate(z, ctx)), ctx

    def backward_logits(self, dz, ctx, need_dx=True, channels_last=False):
        if not channels_last:
            dz = self._in(dz)
        dspread, dflipped, db = ops.conv2d_backward(np.ascontiguousarray(dz), ctx.cache, need_dx)
        wg = [(self.kernel, np.ascontiguousarray(dflipped.transpose(0, 1, 3, 2)[::-1, ::-1]))]
        if self.use_bias:
            wg.append((self.bias, db))
        if dspread is None:
            return None, wg
        h, w, top, left = ctx.geom
        sh, sw = self.strides
        dx = dspread[:, top:top + (h - 1) * sh + 1:sh, left:left + (w - 1) * sw + 1:sw]
        return self._out(np.ascontiguousarray(dx)), wg

    def get_config(self):
        config = super().get_config()
        config.update({"filters": self.filters, **self._common_config(),
                       "output_padding": None if self.output_padding is None
                       else list(self.output_padding), **self._weight_config()})
        return config


Convolution2DTranspose = Conv2DTranspose
