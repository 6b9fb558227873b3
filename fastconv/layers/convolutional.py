"""Convolution layers: ``Conv2D``."""

from __future__ import annotations

from typing import Any, Optional

from .. import activations as _activations
from .. import ops
from ..backends._args import pair
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
                 kernel_regularizer: Any = None, bias_regularizer: Any = None,
                 kernel_constraint: Any = None, bias_constraint: Any = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.filters = _positive_int("filters", filters)
        self.kernel_size = pair(kernel_size, "kernel_size")
        self.strides = pair(strides, "strides")
        self.padding = _padding(padding)
        self.data_format = _data_format(data_format)
        self.dilation_rate = pair(dilation_rate, "dilation_rate")
        self.activation = _activations.get(activation)
        self.use_bias = bool(use_bias)
        self._weight_args(kernel_initializer, bias_initializer, kernel_regularizer,
                          bias_regularizer, kernel_constraint, bias_constraint)

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
        self.add_weight(name="kernel", shape=self.kernel_size + (C, self.filters),
                        initializer=self.kernel_initializer,
                        regularizer=self.kernel_regularizer,
                        constraint=self.kernel_constraint)
        if self.use_bias:
            self.add_weight(name="bias", shape=(self.filters,), initializer=self.bias_initializer,
                            regularizer=self.bias_regularizer,
                            constraint=self.bias_constraint)

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
