"""Convolution layers: ``Conv2D``, ``Conv2DTranspose``, ``DepthwiseConv2D``,
``SeparableConv2D`` and ``Conv1D``."""

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
)
from .pooling import _int1


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


class Conv2D(_ActivationMixin, _KernelBias, Layer):
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
        _set_conv_args(self, kernel_size, strides, padding, data_format, dilation_rate,
                       activation, use_bias)
        self._weight_args(kernel_initializer, bias_initializer, kernel_regularizer,
                          bias_regularizer)

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
        self._kernel_and_bias(input_shape, C, self.kernel_size + (C, self.filters), self.filters)

    @property
    def _feature_axis(self):
        return 1 if self.data_format == "channels_first" else -1

    def forward(self, x, training=False, workspace=None):
        cf = self.data_format == "channels_first"
        if cf:
            x = x.transpose(0, 2, 3, 1)
        args = (x, self.kernel, self.bias if self.use_bias else None, self.strides,
                self.padding, self.dilation_rate)
        ctx = Ctx()
        ctx.fused_relu = self.activation is _activations.relu
        if ctx.fused_relu:
            # Bias and ReLU applied in the convolution's output pass.
            out, ctx.cache = ops.conv2d_relu_forward(*args)
            ctx.preact = None
        else:
            z, ctx.cache = ops.conv2d_forward(*args)
            out = self._activate(z, ctx)
        if cf:
            out = out.transpose(0, 3, 1, 2)
        return out, ctx

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
        if self.data_format == "channels_first":
            # The activation saw channels-last arrays.
            dout = dout.transpose(0, 2, 3, 1)
        if ctx.fused_relu:
            return self._grads(*ops.conv2d_relu_backward(dout, ctx.cache, need_dx))
        return self._grads(*ops.conv2d_backward(self._deactivate(dout, ctx), ctx.cache,
                                                need_dx))

    def logits(self, ctx):
        z = super().logits(ctx)
        return z.transpose(0, 3, 1, 2) if self.data_format == "channels_first" else z

    def get_config(self):
        config = super().get_config()
        config.update({
            "filters": self.filters, "kernel_size": list(self.kernel_size),
            "strides": list(self.strides), "padding": self.padding,
            "data_format": self.data_format, "dilation_rate": list(self.dilation_rate),
            "activation": _activations.serialize(self.activation), "use_bias": self.use_bias,
            **self._weight_config(),
        })
        return config


Convolution2D = Conv2D


def _out_len(n, k_eff, s, padding):
    """Keras's output length of a 'valid' or 'same' convolution (None stays None)."""
    if n is None:
        return None
    if padding == "same":
        return -(-n // s)
    return (n - k_eff) // s + 1 if n >= k_eff else 0


class _Spatial(_ActivationMixin, _KernelBias, Layer):
    """What the convolutions below share: strides, padding, data format, dilation, the
    activation and the bias."""

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

    def _conv_hw(self, input_shape):
        H, W, C = self._hwc(input_shape)
        (kh, kw), (sh, sw), (dh, dw) = self.kernel_size, self.strides, self.dilation_rate
        oh = _out_len(H, dh * (kh - 1) + 1, sh, self.padding)
        ow = _out_len(W, dw * (kw - 1) + 1, sw, self.padding)
        if oh == 0 or ow == 0:
            raise self._shape_error(input_shape, f"the {H}x{W} image is smaller than the "
                                                 f"{kh}x{kw} kernel with padding='valid'.")
        return oh, ow, C

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
                 kernel_regularizer: Any = None, bias_regularizer: Any = None, **kwargs: Any):
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
                          bias_regularizer)

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


class DepthwiseConv2D(_Spatial):
    """Depthwise 2-D convolution: each input channel convolved with its own
    ``depth_multiplier`` filters, ``(N, H, W, C) -> (N, OH, OW, C * depth_multiplier)``.

    Weights: ``kernel`` (KH, KW, C, depth_multiplier) (Keras's ``depthwise_kernel``)
    and ``bias`` (C * depth_multiplier,); output channel ``c * M + m`` is input channel
    ``c``'s filter ``m``. Runs on :func:`fastconv.ops.depthwise_conv2d_forward`.
    """

    def __init__(self, kernel_size: Any, strides: Any = (1, 1), padding: str = "valid",
                 depth_multiplier: int = 1, data_format: Optional[str] = None,
                 dilation_rate: Any = (1, 1), activation: Any = None, use_bias: bool = True,
                 depthwise_initializer: Any = "glorot_uniform", bias_initializer: Any = "zeros",
                 depthwise_regularizer: Any = None, bias_regularizer: Any = None,
                 **kwargs: Any):
        super().__init__(**kwargs)
        self._common(kernel_size, strides, padding, data_format, dilation_rate, activation,
                     use_bias)
        self.depth_multiplier = _positive_int("depth_multiplier", depth_multiplier)
        self._weight_args(depthwise_initializer, bias_initializer, depthwise_regularizer,
                          bias_regularizer)

    def compute_output_shape(self, input_shape):
        oh, ow, c = self._conv_hw(input_shape)
        return self._shape(input_shape, oh, ow, None if c is None else c * self.depth_multiplier)

    def build(self, input_shape):
        C = self._hwc(input_shape)[2]
        self._kernel_and_bias(input_shape, C, self.kernel_size + (C, self.depth_multiplier),
                              None if C is None else C * self.depth_multiplier,
                              kernel_name="depthwise_kernel")

    def forward(self, x, training=False, workspace=None):
        ctx = Ctx()
        z, ctx.cache = ops.depthwise_conv2d_forward(
            self._in(x), self.depthwise_kernel, self.bias if self.use_bias else None,
            self.strides, self.padding, self.dilation_rate)
        return self._out(self._activate(z, ctx)), ctx

    def backward_logits(self, dz, ctx, need_dx=True, channels_last=False):
        if not channels_last:
            dz = self._in(dz)
        dx, dk, db = ops.depthwise_conv2d_backward(np.ascontiguousarray(dz), ctx.cache,
                                                   need_dx)
        wg = [(self.depthwise_kernel, dk)] + ([(self.bias, db)] if self.use_bias else [])
        return (None if dx is None else self._out(dx)), wg

    def get_config(self):
        config = super().get_config()
        w = self._weight_config()
        config.update({**self._common_config(), "depth_multiplier": self.depth_multiplier,
                       "depthwise_initializer": w["kernel_initializer"],
                       "bias_initializer": w["bias_initializer"],
                       "depthwise_regularizer": w["kernel_regularizer"],
                       "bias_regularizer": w["bias_regularizer"]})
        return config


class SeparableConv2D(_Spatial):
    """Depthwise then pointwise convolution (Xception's): ``(N, H, W, C) -> (N, OH, OW,
    filters)``.

    Weights, in Keras's order: ``depthwise_kernel`` (KH, KW, C, depth_multiplier),
    ``pointwise_kernel`` (1, 1, C * depth_multiplier, filters) and ``bias``
    (filters,). The pointwise step runs on the convolution kernels.
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
        self._common(kernel_size, strides, padding, data_format, dilation_rate, activation,
                     use_bias)
        self.depth_multiplier = _positive_int("depth_multiplier", depth_multiplier)
        self._weight_args(depthwise_initializer, bias_initializer, depthwise_regularizer,
                          bias_regularizer)
        self.pointwise_initializer = _initializers.get(pointwise_initializer,
                                                       "pointwise_initializer")
        self.pointwise_regularizer = _regularizers.get(pointwise_regularizer,
                                                       "pointwise_regularizer")

    def compute_output_shape(self, input_shape):
        oh, ow, _ = self._conv_hw(input_shape)
        return self._shape(input_shape, oh, ow, self.filters)

    def build(self, input_shape):
        C = self._hwc(input_shape)[2]
        if C is None:
            raise self._shape_error(input_shape, "the number of channels must be known.")
        m = self.depth_multiplier
        self.add_weight(name="depthwise_kernel", shape=self.kernel_size + (C, m),
                        initializer=self.kernel_initializer,
                        regularizer=self.kernel_regularizer)
        self.add_weight(name="pointwise_kernel", shape=(1, 1, C * m, self.filters),
                        initializer=self.pointwise_initializer,
                        regularizer=self.pointwise_regularizer)
        if self.use_bias:
            self.add_weight(name="bias", shape=(self.filters,), initializer=self.bias_initializer,
                            regularizer=self.bias_regularizer)

    def forward(self, x, training=False, workspace=None):
        ctx = Ctx()
        mid, ctx.dcache = ops.depthwise_conv2d_forward(
            self._in(x), self.depthwise_kernel, None, self.strides, self.padding,
            self.dilation_rate)
        z, ctx.pcache = ops.conv2d_forward(mid, self.pointwise_kernel,
                                           self.bias if self.use_bias else None)
        return self._out(self._activate(z, ctx)), ctx

    def backward_logits(self, dz, ctx, need_dx=True, channels_last=False):
        if not channels_last:
            dz = self._in(dz)
        dmid, dp, db = ops.conv2d_backward(np.ascontiguousarray(dz), ctx.pcache, True)
        dx, dk, _ = ops.depthwise_conv2d_backward(dmid, ctx.dcache, need_dx)
        wg = [(self.depthwise_kernel, dk), (self.pointwise_kernel, dp)]
        if self.use_bias:
            wg.append((self.bias, db))
        return (None if dx is None else self._out(dx)), wg

    def get_config(self):
        config = super().get_config()
        w = self._weight_config()
        config.update({
            "filters": self.filters, **self._common_config(),
            "depth_multiplier": self.depth_multiplier,
            "depthwise_initializer": w["kernel_initializer"],
            "pointwise_initializer": _initializers.serialize(self.pointwise_initializer),
            "bias_initializer": w["bias_initializer"],
            "depthwise_regularizer": w["kernel_regularizer"],
            "pointwise_regularizer": _regularizers.serialize(self.pointwise_regularizer),
            "bias_regularizer": w["bias_regularizer"]})
        return config


class Conv1D(_ActivationMixin, _KernelBias, Layer):
    """1-D convolution over sequences ``(N, steps, C) -> (N, out_steps, filters)``
    (channels_first: ``(N, C, steps)``), on the 2-D kernels with a height of 1.

    ``padding`` is 'valid', 'same' or 'causal' (zeros on the left only, so output step
    t sees input steps up to t). Weights: ``kernel`` (K, C, filters), ``bias``
    (filters,).
    """

    def __init__(self, filters: int, kernel_size: Any, strides: Any = 1,
                 padding: str = "valid", data_format: Optional[str] = None,
                 dilation_rate: Any = 1, groups: int = 1, activation: Any = None,
                 use_bias: bool = True, kernel_initializer: Any = "glorot_uniform",
                 bias_initializer: Any = "zeros", kernel_regularizer: Any = None,
                 bias_regularizer: Any = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.filters = _positive_int("filters", filters)
        self.kernel_size = _int1("kernel_size", kernel_size)
        self.strides = _int1("strides", strides)
        self.dilation_rate = _int1("dilation_rate", dilation_rate)
        if padding not in ("valid", "same", "causal"):
            raise fail("padding", "'valid', 'same' or 'causal'", padding)
        self.padding = padding
        if groups != 1:
            raise NotImplementedError("fastconv's Conv1D does not implement groups > 1 yet")
        self.data_format = _data_format(data_format)
        self.activation = _activations.get(activation)
        self.use_bias = bool(use_bias)
        self._weight_args(kernel_initializer, bias_initializer, kernel_regularizer,
                          bias_regularizer)

    def _lc(self, input_shape):
        cf = self.data_format == "channels_first"
        self._need_ndim(input_shape, 3, "(batch, channels, steps)" if cf
                        else "(batch, steps, channels)")
        return (input_shape[2], input_shape[1]) if cf else (input_shape[1], input_shape[2])

    def compute_output_shape(self, input_shape):
        n, _ = self._lc(input_shape)
        k = self.dilation_rate * (self.kernel_size - 1) + 1
        if self.padding == "causal":
            out = None if n is None else (n - 1) // self.strides + 1
        else:
            out = _out_len(n, k, self.strides, self.padding)
        if out == 0:
            raise self._shape_error(input_shape, f"{n} steps are fewer than the kernel's {k} "
                                                 "with padding='valid'.")
        if self.data_format == "channels_first":
            return (input_shape[0], self.filters, out)
        return (input_shape[0], out, self.filters)

    def build(self, input_shape):
        C = self._lc(input_shape)[1]
        self._kernel_and_bias(input_shape, C, (self.kernel_size, C, self.filters), self.filters)

    @property
    def _feature_axis(self):
        return 1 if self.data_format == "channels_first" else -1

    def _padding2d(self):
        if self.padding == "causal":
            return ((0, 0), (self.dilation_rate * (self.kernel_size - 1), 0))
        return self.padding

    def forward(self, x, training=False, workspace=None):
        if self.data_format == "channels_first":
            x = x.transpose(0, 2, 1)
        ctx = Ctx()
        z, ctx.cache = ops.conv2d_forward(x[:, None], self.kernel[None],
                                          self.bias if self.use_bias else None,
                                          (1, self.strides), self._padding2d(),
                                          (1, self.dilation_rate))
        out = self._activate(z[:, 0], ctx)
        return (out.transpose(0, 2, 1) if self.data_format == "channels_first" else out), ctx

    def logits(self, ctx):
        z = super().logits(ctx)
        return z.transpose(0, 2, 1) if self.data_format == "channels_first" else z

    def backward_logits(self, dz, ctx, need_dx=True, channels_last=False):
        if self.data_format == "channels_first" and not channels_last:
            dz = dz.transpose(0, 2, 1)
        dx, dw, db = ops.conv2d_backward(np.ascontiguousarray(dz)[:, None], ctx.cache, need_dx)
        wg = [(self.kernel, dw[0])] + ([(self.bias, db)] if self.use_bias else [])
        if dx is None:
            return None, wg
        dx = dx[:, 0]
        return (dx.transpose(0, 2, 1) if self.data_format == "channels_first" else dx), wg

    def backward(self, dout, ctx, need_dx=True):
        if self.data_format == "channels_first":
            dout = dout.transpose(0, 2, 1)
        return self.backward_logits(self._deactivate(dout, ctx), ctx, need_dx,
                                    channels_last=True)

    def get_config(self):
        config = super().get_config()
        config.update({
            "filters": self.filters, "kernel_size": [self.kernel_size],
            "strides": [self.strides], "padding": self.padding,
            "data_format": self.data_format, "dilation_rate": [self.dilation_rate],
            "groups": 1, "activation": _activations.serialize(self.activation),
            "use_bias": self.use_bias, **self._weight_config()})
        return config


Convolution1D = Conv1D
Convolution2DTranspose = Conv2DTranspose
SeparableConvolution2D = SeparableConv2D
