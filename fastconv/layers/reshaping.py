"""Layers that move, pad, crop or repeat pixels (Keras: ``keras.layers`` reshaping).

These are passes over memory with no arithmetic beyond copying (UpSampling2D's
bilinear mode interpolates), so NumPy slicing runs them on both backends.

- ``ZeroPadding2D(padding)``: zeros around the image; ``padding`` is an int, a pair
  ``(rows, cols)`` or ``((top, bottom), (left, right))``.
- ``Cropping2D(cropping)``: the same forms, removed from the borders.
- ``UpSampling2D(size, interpolation)``: each pixel repeated ``size`` times
  (``'nearest'``), or bilinear interpolation with half-pixel centres (``'bilinear'``,
  as Keras's JAX and TensorFlow backends resize).
- ``Reshape(target_shape)``: the sample's shape (one entry may be -1).
- ``Permute(dims)``: the sample's axes reordered (1-based, as in Keras).
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np

from ..backends._args import fail
from .base import Layer, _data_format


def _two_pairs(name, value):
    """Keras's int / (a, b) / ((t, b), (l, r)) forms as ((t, b), (l, r)) of ints >= 0."""
    def ok(v):
        return isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 0

    if ok(value):
        return ((int(value),) * 2,) * 2
    if isinstance(value, (tuple, list)) and len(value) == 2:
        if all(ok(v) for v in value):
            return ((int(value[0]),) * 2, (int(value[1]),) * 2)
        if all(isinstance(v, (tuple, list)) and len(v) == 2 and all(ok(e) for e in v)
               for v in value):
            return tuple((int(v[0]), int(v[1])) for v in value)
    raise fail(name, "an int >= 0, a pair of them, or ((top, bottom), (left, right))", value)


class _Spatial2D(Layer):
    """A layer on the two spatial axes of (N, H, W, C) or (N, C, H, W)."""

    def __init__(self, data_format: Optional[str] = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.data_format = _data_format(data_format)

    @property
    def _hw_axes(self):
        return (2, 3) if self.data_format == "channels_first" else (1, 2)

    def _check(self, input_shape):
        layout = ("(batch, channels, height, width)" if self.data_format == "channels_first"
                  else "(batch, height, width, channels)")
        self._need_ndim(input_shape, 4, layout)

    def get_config(self):
        config = super().get_config()
        config["data_format"] = self.data_format
        return config


class ZeroPadding2D(_Spatial2D):
    """Zeros around each image: ``(N, H, W, C) -> (N, H + top + bottom, W + left +
    right, C)``."""

    def __init__(self, padding: Any = (1, 1), data_format: Optional[str] = None,
                 **kwargs: Any):
        super().__init__(data_format, **kwargs)
        self.padding = _two_pairs("padding", padding)

    def compute_output_shape(self, input_shape):
        self._check(input_shape)
        out = list(input_shape)
        for axis, (a, b) in zip(self._hw_axes, self.padding):
            if out[axis] is not None:
                out[axis] += a + b
        return tuple(out)

    def _slices(self, shape):
        s = [slice(None)] * 4
        for axis, (a, b) in zip(self._hw_axes, self.padding):
            s[axis] = slice(a, shape[axis] - b)
        return tuple(s)

    def forward(self, x, training=False, workspace=None):
        pad = [(0, 0)] * 4
        for axis, p in zip(self._hw_axes, self.padding):
            pad[axis] = p
        out = np.pad(x, pad)
        return out, self._slices(out.shape)

    def backward(self, dout, slices, need_dx=True):
        return np.ascontiguousarray(dout[slices]), []

    def get_config(self):
        config = super().get_config()
        config["padding"] = [list(p) for p in self.padding]
        return config


class Cropping2D(_Spatial2D):
    """Rows and columns removed from the borders: ``(N, H, W, C) -> (N, H - top -
    bottom, W - left - right, C)``."""

    def __init__(self, cropping: Any = ((0, 0), (0, 0)), data_format: Optional[str] = None,
                 **kwargs: Any):
        super().__init__(data_format, **kwargs)
        self.cropping = _two_pairs("cropping", cropping)

    def compute_output_shape(self, input_shape):
        self._check(input_shape)
        out = list(input_shape)
        for axis, (a, b) in zip(self._hw_axes, self.cropping):
            if out[axis] is not None:
                if a + b >= out[axis]:
                    raise self._shape_error(
                        input_shape, f"cropping {a} + {b} leaves nothing of {out[axis]} "
                                     "pixels.")
                out[axis] -= a + b
        return tuple(out)

    def forward(self, x, training=False, workspace=None):
        s = [slice(None)] * 4
        for axis, (a, b) in zip(self._hw_axes, self.cropping):
            s[axis] = slice(a, x.shape[axis] - b)
        return np.ascontiguousarray(x[tuple(s)]), (x.shape, tuple(s))

    def backward(self, dout, ctx, need_dx=True):
        shape, s = ctx
        dx = np.zeros(shape, dout.dtype)
        dx[s] = dout
        return dx, []

    def get_config(self):
        config = super().get_config()
        config["cropping"] = [list(p) for p in self.cropping]
        return config


def _bilinear_taps(n_in, n_out):
    """For each output index: the two input indices and their weights (half-pixel
    centres, clamped at the edges, no antialiasing: Keras's upsampling resize)."""
    centre = (np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5
    centre = np.clip(centre, 0, n_in - 1)
    lo = np.floor(centre).astype(np.intp)
    hi = np.minimum(lo + 1, n_in - 1)
    frac = centre - lo
    return lo, hi, frac


class UpSampling2D(_Spatial2D):
    """Each image enlarged by ``size = (rows, cols)``: ``(N, H, W, C) -> (N, H * rows,
    W * cols, C)``, by repetition (``'nearest'``) or bilinear interpolation."""

    def __init__(self, size: Any = (2, 2), data_format: Optional[str] = None,
                 interpolation: str = "nearest", **kwargs: Any):
        super().__init__(data_format, **kwargs)
        if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
            size = (size, size)
        if not (isinstance(size, (tuple, list)) and len(size) == 2 and all(
                isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 1
                for v in size)):
            raise fail("size", "an int >= 1 or a pair of them", size)
        self.size = (int(size[0]), int(size[1]))
        if interpolation not in ("nearest", "bilinear"):
            raise fail("interpolation", "'nearest' or 'bilinear'", interpolation)
        self.interpolation = interpolation

    def compute_output_shape(self, input_shape):
        self._check(input_shape)
        out = list(input_shape)
        for axis, f in zip(self._hw_axes, self.size):
            if out[axis] is not None:
                out[axis] *= f
        return tuple(out)

    def forward(self, x, training=False, workspace=None):
        (ah, aw), (fh, fw) = self._hw_axes, self.size
        if self.interpolation == "nearest":
            return np.repeat(np.repeat(x, fh, axis=ah), fw, axis=aw), x.shape
        out = x
        taps = []
        for axis, f in ((ah, fh), (aw, fw)):
            lo, hi, frac = _bilinear_taps(out.shape[axis], out.shape[axis] * f)
            shape = [1] * 4
            shape[axis] = -1
            w = frac.astype(x.dtype).reshape(shape)
            out = (np.take(out, lo, axis=axis) * (1 - w) + np.take(out, hi, axis=axis) * w)
            taps.append((axis, lo, hi, w))
        return out.astype(x.dtype, copy=False), (x.shape, taps)

    def backward(self, dout, ctx, need_dx=True):
        (ah, aw), (fh, fw) = self._hw_axes, self.size
        if self.interpolation == "nearest":
            shape = ctx
            d = dout.reshape(tuple(s for s in dout.shape[:ah]) + (shape[ah], fh)
                             + dout.shape[ah + 1:])
            d = d.sum(axis=ah + 1)
            d = d.reshape(d.shape[:aw] + (shape[aw], fw) + d.shape[aw + 1:])
            return np.ascontiguousarray(d.sum(axis=aw + 1)), []
        shape, taps = ctx
        d = dout
        for axis, lo, hi, w in reversed(taps):
            n_in = shape[axis]
            moved = np.moveaxis(d, axis, 0)
            acc = np.zeros((n_in,) + moved.shape[1:], d.dtype)
            wv = np.moveaxis(w, axis, 0)
            np.add.at(acc, lo, moved * (1 - wv))
            np.add.at(acc, hi, moved * wv)
            d = np.moveaxis(acc, 0, axis)
        return np.ascontiguousarray(d), []

    def get_config(self):
        config = super().get_config()
        config.update({"size": list(self.size), "interpolation": self.interpolation})
        return config


class Reshape(Layer):
    """Each sample to ``target_shape`` (one entry may be -1): ``(N, ...) -> (N,
    *target_shape)``."""

    def __init__(self, target_shape: Sequence[int], **kwargs: Any):
        super().__init__(**kwargs)
        if not isinstance(target_shape, (tuple, list)) or not all(
                isinstance(v, (int, np.integer)) and not isinstance(v, bool)
                and (v >= 1 or v == -1) for v in target_shape) or list(
                target_shape).count(-1) > 1:
            raise fail("target_shape", "a tuple of ints >= 1 (one of them may be -1)",
                       target_shape)
        self.target_shape = tuple(int(v) for v in target_shape)

    def compute_output_shape(self, input_shape):
        rest = input_shape[1:]
        if None in rest:
            return (input_shape[0],) + tuple(None if v == -1 else v for v in self.target_shape)
        total = int(np.prod(rest))
        known = int(np.prod([v for v in self.target_shape if v != -1]))
        if -1 in self.target_shape:
            if known == 0 or total % known:
                raise self._shape_error(input_shape, f"{total} values per sample cannot take "
                                                     f"the shape {self.target_shape}.")
            return (input_shape[0],) + tuple(total // known if v == -1 else v
                                             for v in self.target_shape)
        if known != total:
            raise self._shape_error(input_shape, f"{total} values per sample cannot take the "
                                                 f"shape {self.target_shape} ({known}).")
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
    """The sample's axes reordered: ``dims`` is a permutation of 1..ndim-1 (the batch
    axis stays first), e.g. ``Permute((2, 1))`` swaps the two axes of (N, a, b)."""

    def __init__(self, dims: Sequence[int], **kwargs: Any):
        super().__init__(**kwargs)
        if not isinstance(dims, (tuple, list)) or sorted(dims) != list(range(1, len(dims) + 1)):
            raise fail("dims", "a permutation of 1, 2, ..., n (the batch axis is not "
                               "included)", dims)
        self.dims = tuple(int(d) for d in dims)

    def compute_output_shape(self, input_shape):
        if len(input_shape) != len(self.dims) + 1:
            raise self._shape_error(input_shape, f"dims {self.dims} need inputs of "
                                                 f"{len(self.dims) + 1} axes.")
        return (input_shape[0],) + tuple(input_shape[d] for d in self.dims)

    def forward(self, x, training=False, workspace=None):
        return np.ascontiguousarray(x.transpose((0,) + self.dims)), None

    def backward(self, dout, ctx, need_dx=True):
        inverse = np.argsort((0,) + self.dims)
        return np.ascontiguousarray(dout.transpose(inverse)), []

    def get_config(self):
        config = super().get_config()
        config["dims"] = list(self.dims)
        return config
