"""Pooling layers: ``MaxPooling2D``, ``AveragePooling2D``."""

from __future__ import annotations

from typing import Any, Optional

from .. import ops
from ..backends._args import pair
from .base import Layer, _data_format, _padding


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

    def forward(self, x, training=False, workspace=None):
        if self.data_format == "channels_first":
            x = x.transpose(0, 2, 3, 1)
        out, cache = self._fwd(x, self.pool_size, self.strides, self.padding)
        return (out.transpose(0, 3, 1, 2) if self.data_format == "channels_first" else out), cache

    def backward(self, dout, ctx, need_dx=True):
        if self.data_format == "channels_first":
            return self._bwd(dout.transpose(0, 2, 3, 1), ctx).transpose(0, 3, 1, 2), []
        return self._bwd(dout, ctx), []

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


MaxPool2D = MaxPooling2D
AvgPool2D = AveragePooling2D
