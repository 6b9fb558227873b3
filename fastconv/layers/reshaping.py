"""Reshaping layers: ``UpSampling2D``, ``ZeroPadding2D``, ``Cropping2D``, ``Reshape``,
``Permute``.

UpSampling2D resamples on :func:`fastconv.ops.resize2d_forward` (compiled in the
Cython backend); the others only move memory, which NumPy slicing does at memory
speed, so they have no kernels of their own.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence, Tuple

import numpy as np

from .. import ops
from ..backends._args import fail, pair
from .base import Layer, _data_format

__all__ = ["UpSampling2D", "ZeroPadding2D", "Cropping2D", "Reshape", "Permute"]


def _spatial_axes(data_format: str) -> Tuple[int, int]:
    return (2, 3) if data_format == "channels_first" else (1, 2)


class _Image2D(Layer):
    """A layer on 4-D images in ``data_format``."""

    def _image_shape(self, input_shape):
        cf = self.data_format == "channels_first"
        self._need_ndim(input_shape, 4, "(batch, channels, height, width)" if cf
                        else "(batch, height, width, channels)")
        return _spatial_axes(self.data_format)

    def _inner(self, shape, margins):
        """The index of the part of an array of ``shape`` inside ``margins``."""
        index = [slice(None)] * 4
        for ax, (a, b) in zip(_spatial_axes(self.data_format), margins):
            index[ax] = slice(a, shape[ax] - b)
        return tuple(index)

    def get_config(self):
        config = super().get_config()
        config["data_format"] = self.data_format
        return config


class UpSampling2D(_Image2D):
    """Repeat (``interpolation='nearest'``) or bilinearly resample the rows and columns
    of images by the integer factors ``size``.

    Input ``(N, H, W, C)`` gives ``(N, H * size[0], W * size[1], C)`` (channels_first:
    ``(N, C, H, W)`` gives ``(N, C, H * size[0], W * size[1])``). 'bilinear' is Keras 3's
    (``jax.image.resize``): half-pixel centres, edge pixels clamped, no antialiasing.

    Parameters
    ----------
    size : int or (int, int), default (2, 2)
    data_format : {'channels_last', 'channels_first'}, optional
    interpolation : {'nearest', 'bilinear'}, default 'nearest'
    """

    def __init__(self, size: Any = (2, 2), data_format: Optional[str] = None,
                 interpolation: str = "nearest", **kwargs: Any):
        super().__init__(**kwargs)
        self.size = pair(size, "size")
        self.data_format = _data_format(data_format)
        if not isinstance(interpolation, str) or interpolation.lower() not in (
                "nearest", "bilinear"):
            raise fail("interpolation", "'nearest' or 'bilinear'", interpolation)
        self.interpolation = interpolation.lower()

    def compute_output_shape(self, input_shape):
        axes = self._image_shape(input_shape)
        out = list(input_shape)
        for ax, s in zip(axes, self.size):
            out[ax] = None if out[ax] is None else out[ax] * s
        return tuple(out)

    def forward(self, x, training=False, workspace=None):
        cf = self.data_format == "channels_first"
        if cf:
            x = x.transpose(0, 2, 3, 1)
        size = (x.shape[1] * self.size[0], x.shape[2] * self.size[1])
        out, cache = ops.resize2d_forward(x, size, self.interpolation)
        return (out.transpose(0, 3, 1, 2) if cf else out), cache

    def backward(self, dout, ctx, need_dx=True):
        if self.data_format == "channels_first":
            return ops.resize2d_backward(dout.transpose(0, 2, 3, 1), ctx).transpose(
                0, 3, 1, 2), []
        return ops.resize2d_backward(dout, ctx), []

    def get_config(self):
        config = super().get_config()
        config.update({"size": list(self.size), "interpolation": self.interpolation})
        return config


def _margins(value: Any, name: str) -> Tuple[Tuple[int, int], Tuple[int, int]]:
    """Keras's three spellings: an int, (rows, cols) symmetric, or
    ((top, bottom), (left, right)); every entry an int >= 0."""
    expected = ("an int >= 0, a pair of them (symmetric rows, cols) or "
                "((top, bottom), (left, right))")
    try:
        if isinstance(value, (tuple, list)) and len(value) == 2 and all(
                isinstance(v, (tuple, list)) for v in value):
            return pair(tuple(value[0]), name, 0), pair(tuple(value[1]), name, 0)
        h, w = pair(value if not isinstance(value, list) else tuple(value), name, 0)
    except (TypeError, ValueError):
        raise fail(name, expected, value) from None
    return (h, h), (w, w)


class ZeroPadding2D(_Image2D):
    """Zeros added around images: ``padding`` rows above and below, columns left and
    right (an int, a symmetric (rows, cols) pair, or ((top, bottom), (left, right))).

    ``(N, H, W, C)`` gives ``(N, H + top + bottom, W + left + right, C)``.
    """

    def __init__(self, padding: Any = (1, 1), data_format: Optional[str] = None,
                 **kwargs: Any):
        super().__init__(**kwargs)
        self.padding = _margins(padding, "padding")
        self.data_format = _data_format(data_format)

    def compute_output_shape(self, input_shape):
        out = list(input_shape)
        for ax, (a, b) in zip(self._image_shape(input_shape), self.padding):
            out[ax] = None if out[ax] is None else out[ax] + a + b
        return tuple(out)

    def forward(self, x, training=False, workspace=None):
        widths = [(0, 0)] * 4
        for ax, p in zip(_spatial_axes(self.data_format), self.padding):
            widths[ax] = p
        return np.pad(x, widths), None

    def backward(self, dout, ctx, need_dx=True):
        return np.ascontiguousarray(dout[self._inner(dout.shape, self.padding)]), []

    def get_config(self):
        config = super().get_config()
        config["padding"] = [list(p) for p in self.padding]
        return config


class Cropping2D(_Image2D):
    """Rows and columns removed at the edges of images: ``cropping`` as ZeroPadding2D's
    ``padding``. ``(N, H, W, C)`` gives ``(N, H - top - bottom, W - left - right, C)``,
    which must stay at least 1 by 1."""

    def __init__(self, cropping: Any = ((0, 0), (0, 0)), data_format: Optional[str] = None,
                 **kwargs: Any):
        super().__init__(**kwargs)
        self.cropping = _margins(cropping, "cropping")
        self.data_format = _data_format(data_format)

    def compute_output_shape(self, input_shape):
        out = list(input_shape)
        for ax, (a, b) in zip(self._image_shape(input_shape), self.cropping):
            if out[ax] is not None:
                if out[ax] - a - b < 1:
                    raise self._shape_error(
                        input_shape, f"cropping={[list(c) for c in self.cropping]} leaves "
                        "nothing of the image.")
                out[ax] = out[ax] - a - b
        return tuple(out)

    def forward(self, x, training=False, workspace=None):
        self.compute_output_shape((None,) + x.shape[1:])
        return np.ascontiguousarray(x[self._inner(x.shape, self.cropping)]), x.shape

    def backward(self, dout, shape, need_dx=True):
        dx = np.zeros(shape, dtype=dout.dtype)
        dx[self._inner(shape, self.cropping)] = dout
        return dx, []

    def get_config(self):
        config = super().get_config()
        config["cropping"] = [list(c) for c in self.cropping]
        return config


class Reshape(Layer):
    """``(N, *in) -> (N, *target_shape)``; one entry of ``target_shape`` may be -1,
    inferred from the others."""

    def __init__(self, target_shape: Sequence[int], **kwargs: Any):
        super().__init__(**kwargs)
        if isinstance(target_shape, (int, np.integer)):
            target_shape = (target_shape,)
        expected = "a tuple of positive ints, with at most one -1"
        if not isinstance(target_shape, (tuple, list)) or not all(
                isinstance(s, (int, np.integer)) and not isinstance(s, bool)
                for s in target_shape):
            raise fail("target_shape", expected, target_shape, TypeError)
        if sum(1 for s in target_shape if s == -1) > 1 or any(
                s < 1 and s != -1 for s in target_shape):
            raise fail("target_shape", expected, target_shape)
        self.target_shape = tuple(int(s) for s in target_shape)

    def compute_output_shape(self, input_shape):
        rest = input_shape[1:]
        if None in rest:
            if -1 in self.target_shape:
                return (input_shape[0],) + tuple(None if s == -1 else s
                                                 for s in self.target_shape)
            return (input_shape[0],) + self.target_shape
        size = int(np.prod(rest))
        known = int(np.prod([s for s in self.target_shape if s != -1]))
        if -1 in self.target_shape:
            if size % known:
                raise self._shape_error(input_shape, f"its {size} elements per sample do "
                                        f"not fill target_shape={self.target_shape}.")
            return (input_shape[0],) + tuple(size // known if s == -1 else s
                                             for s in self.target_shape)
        if size != known:
            raise self._shape_error(input_shape, f"its {size} elements per sample cannot "
                                    f"take target_shape={self.target_shape} ({known}).")
        return (input_shape[0],) + self.target_shape

    def forward(self, x, training=False, workspace=None):
        return x.reshape((x.shape[0],) + self.target_shape), x.shape

    def backward(self, dout, shape, need_dx=True):
        return dout.reshape(shape), []

    def get_config(self):
        config = super().get_config()
        config["target_shape"] = list(self.target_shape)
        return config


class Permute(Layer):
    """Permutes the axes of each sample: ``dims`` numbers them from 1 (the batch axis is
    0 and stays), so ``Permute((2, 1))`` turns ``(N, a, b)`` into ``(N, b, a)``."""

    def __init__(self, dims: Sequence[int], **kwargs: Any):
        super().__init__(**kwargs)
        expected = "a permutation of 1, 2, ..., n (the axes of one sample)"
        if not isinstance(dims, (tuple, list)) or not all(
                isinstance(d, (int, np.integer)) and not isinstance(d, bool) for d in dims):
            raise fail("dims", expected, dims, TypeError)
        if sorted(dims) != list(range(1, len(dims) + 1)):
            raise fail("dims", expected, dims)
        self.dims = tuple(int(d) for d in dims)

    def compute_output_shape(self, input_shape):
        if len(input_shape) != len(self.dims) + 1:
            raise self._shape_error(input_shape, f"dims={self.dims} permutes "
                                    f"{len(self.dims)} axes of each sample.")
        return (input_shape[0],) + tuple(input_shape[d] for d in self.dims)

    def forward(self, x, training=False, workspace=None):
        return np.ascontiguousarray(x.transpose((0,) + self.dims)), None

    def backward(self, dout, ctx, need_dx=True):
        return np.ascontiguousarray(dout.transpose(np.argsort((0,) + self.dims))), []

    def get_config(self):
        config = super().get_config()
        config["dims"] = list(self.dims)
        return config
