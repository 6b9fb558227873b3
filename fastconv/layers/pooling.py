"""Pooling layers: max, average and global pooling, 2-D and 1-D."""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

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


class _GlobalPooling2D(Layer):
    """Pooling over the whole image: (N, H, W, C) -> (N, C) (or (N, 1, 1, C) with
    ``keepdims=True``); channels_first images are (N, C, H, W)."""

    def __init__(self, data_format: Optional[str] = None, keepdims: bool = False,
                 **kwargs: Any):
        super().__init__(**kwargs)
        self.data_format = _data_format(data_format)
        self.keepdims = bool(keepdims)

    def _axes(self):
        return (2, 3) if self.data_format == "channels_first" else (1, 2)

    def compute_output_shape(self, input_shape):
        cf = self.data_format == "channels_first"
        self._need_ndim(input_shape, 4, "(batch, channels, height, width)" if cf
                        else "(batch, height, width, channels)")
        c = input_shape[1] if cf else input_shape[3]
        if not self.keepdims:
            return (input_shape[0], c)
        return (input_shape[0], c, 1, 1) if cf else (input_shape[0], 1, 1, c)

    def get_config(self):
        config = super().get_config()
        config.update({"data_format": self.data_format, "keepdims": self.keepdims})
        return config


class GlobalAveragePooling2D(_GlobalPooling2D):
    """The mean of each channel over the image (Keras: ``GlobalAveragePooling2D``).

    A pass over memory with one addition per element, so NumPy's reduction runs it on
    both backends; backward spreads ``dout / (H * W)`` over the image.
    """

    def forward(self, x, training=False, workspace=None):
        return x.mean(axis=self._axes(), keepdims=self.keepdims), x.shape

    def backward(self, dout, shape, need_dx=True):
        axes = self._axes()
        d = dout if self.keepdims else np.expand_dims(dout, axes)
        scale = dout.dtype.type(1 / (shape[axes[0]] * shape[axes[1]]))
        return np.broadcast_to(d * scale, shape).copy(), []


class GlobalMaxPooling2D(_GlobalPooling2D):
    """The maximum of each channel over the image (Keras: ``GlobalMaxPooling2D``); the
    gradient goes to the first maximum in row-major order, as MaxPooling2D's does."""

    def forward(self, x, training=False, workspace=None):
        axes = self._axes()
        moved = np.moveaxis(x, axes, (-2, -1))
        flat = moved.reshape(moved.shape[:-2] + (-1,))
        first = np.argmax(flat, axis=-1)  # NaN counts as the largest, as in max pooling
        out = np.take_along_axis(flat, first[..., None], axis=-1)[..., 0]
        if self.keepdims:
            out = np.expand_dims(out, axes)
        return out, (x.shape, first)

    def backward(self, dout, ctx, need_dx=True):
        shape, first = ctx
        axes = self._axes()
        d = np.squeeze(dout, axes) if self.keepdims else dout
        moved_shape = tuple(s for i, s in enumerate(shape) if i not in axes) + tuple(
            shape[a] for a in axes)
        flat = np.zeros(moved_shape[:-2] + (moved_shape[-2] * moved_shape[-1],), dout.dtype)
        np.put_along_axis(flat, first[..., None], d[..., None], axis=-1)
        return np.ascontiguousarray(np.moveaxis(flat.reshape(moved_shape), (-2, -1), axes)), []


GlobalAvgPool2D = GlobalAveragePooling2D
GlobalMaxPool2D = GlobalMaxPooling2D


def _int1(name, value):
    """Keras's 1-D size: an int or a 1-tuple."""
    if isinstance(value, (tuple, list)) and len(value) == 1:
        value = value[0]
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        from ..backends._args import fail
        raise fail(name, "a positive int", value)
    return int(value)


class _Pooling1D(Layer):
    """Pooling along the steps of (N, steps, C) (channels_first: (N, C, steps)), on the
    2-D pooling kernels with a height of 1."""

    _op = "max"

    def __init__(self, pool_size: Any = 2, strides: Any = None, padding: str = "valid",
                 data_format: Optional[str] = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.pool_size = _int1("pool_size", pool_size)
        self.strides = self.pool_size if strides is None else _int1("strides", strides)
        self.padding = _padding(padding)
        self.data_format = _data_format(data_format)
        self._fwd = ops.maxpool2d_forward if self._op == "max" else ops.avgpool2d_forward
        self._bwd = ops.maxpool2d_backward if self._op == "max" else ops.avgpool2d_backward

    def compute_output_shape(self, input_shape):
        cf = self.data_format == "channels_first"
        self._need_ndim(input_shape, 3, "(batch, channels, steps)" if cf
                        else "(batch, steps, channels)")
        n = input_shape[2] if cf else input_shape[1]
        if n is None:
            steps = None
        elif self.padding == "same":
            steps = -(-n // self.strides)
        elif n < self.pool_size:
            raise self._shape_error(input_shape, f"{n} steps are fewer than the pooling "
                                                 f"window of {self.pool_size} with "
                                                 "padding='valid'.")
        else:
            steps = (n - self.pool_size) // self.strides + 1
        if cf:
            return (input_shape[0], input_shape[1], steps)
        return (input_shape[0], steps, input_shape[2])

    def forward(self, x, training=False, workspace=None):
        if self.data_format == "channels_first":
            x = x.transpose(0, 2, 1)
        out, cache = self._fwd(x[:, None], (1, self.pool_size), (1, self.strides),
                               self.padding)
        out = out[:, 0]
        return (out.transpose(0, 2, 1) if self.data_format == "channels_first" else out), cache

    def backward(self, dout, ctx, need_dx=True):
        if self.data_format == "channels_first":
            dout = dout.transpose(0, 2, 1)
        dx = self._bwd(np.ascontiguousarray(dout)[:, None], ctx)[:, 0]
        return (dx.transpose(0, 2, 1) if self.data_format == "channels_first" else dx), []

    def get_config(self):
        config = super().get_config()
        config.update({"pool_size": self.pool_size, "strides": self.strides,
                       "padding": self.padding, "data_format": self.data_format})
        return config


class MaxPooling1D(_Pooling1D):
    """1-D max pooling (Keras: ``MaxPooling1D``)."""

    _op = "max"


class AveragePooling1D(_Pooling1D):
    """1-D average pooling (Keras: ``AveragePooling1D``; 'same' padding averages the
    non-padded elements)."""

    _op = "avg"


class _GlobalPooling1D(Layer):
    """Pooling over all the steps: (N, steps, C) -> (N, C) (or (N, 1, C) with
    ``keepdims``); channels_first sequences are (N, C, steps)."""

    def __init__(self, data_format: Optional[str] = None, keepdims: bool = False,
                 **kwargs: Any):
        super().__init__(**kwargs)
        self.data_format = _data_format(data_format)
        self.keepdims = bool(keepdims)

    @property
    def _axis(self):
        return 2 if self.data_format == "channels_first" else 1

    def compute_output_shape(self, input_shape):
        cf = self.data_format == "channels_first"
        self._need_ndim(input_shape, 3, "(batch, channels, steps)" if cf
                        else "(batch, steps, channels)")
        c = input_shape[1] if cf else input_shape[2]
        if not self.keepdims:
            return (input_shape[0], c)
        return (input_shape[0], c, 1) if cf else (input_shape[0], 1, c)

    def get_config(self):
        config = super().get_config()
        config.update({"data_format": self.data_format, "keepdims": self.keepdims})
        return config


class GlobalAveragePooling1D(_GlobalPooling1D):
    """The mean over the steps of each channel (Keras: ``GlobalAveragePooling1D``)."""

    def forward(self, x, training=False, workspace=None):
        return x.mean(axis=self._axis, keepdims=self.keepdims), x.shape

    def backward(self, dout, shape, need_dx=True):
        d = dout if self.keepdims else np.expand_dims(dout, self._axis)
        return np.broadcast_to(d * dout.dtype.type(1 / shape[self._axis]), shape).copy(), []


class GlobalMaxPooling1D(_GlobalPooling1D):
    """The maximum over the steps of each channel; the gradient goes to the first
    maximum (Keras: ``GlobalMaxPooling1D``)."""

    def forward(self, x, training=False, workspace=None):
        first = np.argmax(x, axis=self._axis)   # NaN counts as the largest
        out = np.take_along_axis(x, np.expand_dims(first, self._axis), axis=self._axis)
        return (out if self.keepdims else np.squeeze(out, self._axis)), (x.shape, first)

    def backward(self, dout, ctx, need_dx=True):
        shape, first = ctx
        d = dout if self.keepdims else np.expand_dims(dout, self._axis)
        dx = np.zeros(shape, dout.dtype)
        np.put_along_axis(dx, np.expand_dims(first, self._axis), d, axis=self._axis)
        return dx, []


MaxPool1D = MaxPooling1D
AvgPool1D = AveragePooling1D
GlobalAvgPool1D = GlobalAveragePooling1D
GlobalMaxPool1D = GlobalMaxPooling1D
