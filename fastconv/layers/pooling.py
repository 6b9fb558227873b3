"""Pooling layers: ``MaxPooling2D``, ``AveragePooling2D``, their 1-D and global forms."""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from .. import ops
from ..backends._args import pair
from .base import Layer, _data_format, _padding, _single
from .convolutional import _steps_output


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

    Channels last, the sums are :func:`fastconv.ops.channel_sums` over each image's
    pixels (one pass, in double, compiled on the compiled backend); otherwise NumPy's
    mean. Backward spreads ``dout / (H * W)`` over the image.
    """

    def forward(self, x, training=False, workspace=None):
        if self.data_format == "channels_last" and x.ndim == 4 and x.size \
                and x.dtype in (np.float32, np.float64):
            N, H, W, C = x.shape
            s1, _ = ops.channel_sums(x.reshape(N, H * W, C))
            out = (s1 / (H * W)).astype(x.dtype)
            return (out.reshape(N, 1, 1, C) if self.keepdims else out), x.shape
        return x.mean(axis=self._axes(), keepdims=self.keepdims), x.shape

    def backward(self, dout, shape, need_dx=True):
        axes = self._axes()
        d = dout if self.keepdims else np.expand_dims(dout, axes)
        scale = dout.dtype.type(1 / np.prod([shape[a] for a in axes]))
        return np.broadcast_to(d * scale, shape).copy(), []


class GlobalMaxPooling2D(_GlobalPooling2D):
    """The maximum of each channel over the image (Keras: ``GlobalMaxPooling2D``); the
    gradient goes to the first maximum in row-major order, as MaxPooling2D's does."""

    def forward(self, x, training=False, workspace=None):
        axes = self._axes()
        ends = tuple(range(-len(axes), 0))
        moved = np.moveaxis(x, axes, ends)
        flat = moved.reshape(moved.shape[:-len(axes)] + (-1,))
        first = np.argmax(flat, axis=-1)  # NaN counts as the largest, as in max pooling
        out = np.take_along_axis(flat, first[..., None], axis=-1)[..., 0]
        if self.keepdims:
            out = np.expand_dims(out, axes)
        return out, (x.shape, first)

    def backward(self, dout, ctx, need_dx=True):
        shape, first = ctx
        axes = self._axes()
        d = np.squeeze(dout, axes) if self.keepdims else dout
        kept = tuple(s for i, s in enumerate(shape) if i not in axes)
        pooled = tuple(shape[a] for a in axes)
        flat = np.zeros(kept + (int(np.prod(pooled)),), dout.dtype)
        np.put_along_axis(flat, first[..., None], d[..., None], axis=-1)
        ends = tuple(range(-len(axes), 0))
        return np.ascontiguousarray(np.moveaxis(flat.reshape(kept + pooled), ends, axes)), []


GlobalAvgPool2D = GlobalAveragePooling2D
GlobalMaxPool2D = GlobalMaxPooling2D


class _Pooling1D(Layer):
    """Pooling over the steps of (N, steps, C) sequences ((N, C, steps) channels_first),
    on the 2-D pooling kernels with an image height of 1."""

    _op = "max"

    def __init__(self, pool_size: Any = 2, strides: Any = None, padding: str = "valid",
                 data_format: Optional[str] = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.pool_size = (_single("pool_size", pool_size),)
        self.strides = self.pool_size if strides is None else (_single("strides", strides),)
        self.padding = _padding(padding)
        self.data_format = _data_format(data_format)

    def compute_output_shape(self, input_shape):
        cf = self.data_format == "channels_first"
        channels = input_shape[1] if cf else input_shape[-1]
        return _steps_output(self, input_shape, channels, self.pool_size[0], self.strides[0])

    def _to_nlc(self, a):
        return a.transpose(0, 2, 1) if self.data_format == "channels_first" else a

    def forward(self, x, training=False, workspace=None):
        fwd = ops.maxpool2d_forward if self._op == "max" else ops.avgpool2d_forward
        out, cache = fwd(self._to_nlc(x)[:, None], (1, self.pool_size[0]),
                         (1, self.strides[0]), self.padding)
        return self._to_nlc(out[:, 0]), cache

    def backward(self, dout, ctx, need_dx=True):
        bwd = ops.maxpool2d_backward if self._op == "max" else ops.avgpool2d_backward
        return self._to_nlc(bwd(self._to_nlc(dout)[:, None], ctx)[:, 0]), []

    def get_config(self):
        config = super().get_config()
        config.update({"pool_size": list(self.pool_size), "strides": list(self.strides),
                       "padding": self.padding, "data_format": self.data_format})
        return config


class MaxPooling1D(_Pooling1D):
    """1-D max pooling (strides default to the pool size; the gradient goes to the first
    maximum of each window)."""

    _op = "max"


class AveragePooling1D(_Pooling1D):
    """1-D average pooling ('same' padding averages only the non-padded elements)."""

    _op = "avg"


MaxPool1D = MaxPooling1D
AvgPool1D = AveragePooling1D


class _GlobalPooling1D(_GlobalPooling2D):
    """Pooling over all the steps: (N, steps, C) -> (N, C) (or (N, 1, C) with
    ``keepdims=True``); channels_first sequences are (N, C, steps)."""

    def _axes(self):
        return (2,) if self.data_format == "channels_first" else (1,)

    def compute_output_shape(self, input_shape):
        cf = self.data_format == "channels_first"
        self._need_ndim(input_shape, 3, "(batch, channels, steps)" if cf
                        else "(batch, steps, channels)")
        c = input_shape[1] if cf else input_shape[2]
        if not self.keepdims:
            return (input_shape[0], c)
        return (input_shape[0], c, 1) if cf else (input_shape[0], 1, c)


class GlobalAveragePooling1D(_GlobalPooling1D, GlobalAveragePooling2D):
    """The mean of each channel over the steps (Keras: ``GlobalAveragePooling1D``)."""


class GlobalMaxPooling1D(_GlobalPooling1D, GlobalMaxPooling2D):
    """The maximum of each channel over the steps (Keras: ``GlobalMaxPooling1D``); the
    gradient goes to the first maximum."""


GlobalAvgPool1D = GlobalAveragePooling1D
GlobalMaxPool1D = GlobalMaxPooling1D
