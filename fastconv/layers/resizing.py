"""Image resizing and cropping layers: ``Resizing``, ``CenterCrop``, ``RandomCrop``.

Crops are slices; resizing runs on :func:`fastconv.ops.resize2d_forward` (compiled in
the Cython backend, Keras 3's half-pixel rule, no antialiasing). The backward pass is
exact: the resize's transpose, then the crop's (zeros outside the box).
"""

from __future__ import annotations

import threading
from typing import Any, Optional, Tuple

import numpy as np

from .. import ops
from .._random import child_seed
from .base import _positive_int
from .preprocessing import _choice, _ImageLayer, _seed

__all__ = ["Resizing", "CenterCrop", "RandomCrop"]


def _aspect_box(h: int, w: int, th: int, tw: int) -> Tuple[int, int, int, int]:
    """``(top, left, height, width)``: the largest centred box of (h, w) with the aspect
    ratio of (th, tw), with Keras's integer rounding (``smart_resize``)."""
    ch = max(min(h, int(float(w * th) / tw)), 1)
    cw = max(min(w, int(float(h * tw) / th)), 1)
    return int(float(h - ch) / 2), int(float(w - cw) / 2), ch, cw


class _CropResize(_ImageLayer):
    """Crop a box of each (N, H, W, C) batch, then resize it to (height, width)."""

    interpolation = "bilinear"

    def __init__(self, height: int, width: int, data_format: Optional[str] = None,
                 **kwargs: Any):
        super().__init__(data_format=data_format, **kwargs)
        self.height = _positive_int("height", height)
        self.width = _positive_int("width", width)

    def compute_output_shape(self, input_shape):
        super().compute_output_shape(input_shape)
        if self.data_format == "channels_first":
            return (input_shape[0], input_shape[1], self.height, self.width)
        return (input_shape[0], self.height, self.width, input_shape[3])

    def _box(self, h: int, w: int, training: bool) -> Tuple[int, int, int, int]:
        raise NotImplementedError

    def forward(self, x, training=False, workspace=None):
        x = self._to_nhwc(x)
        top, left, ch, cw = box = self._box(x.shape[1], x.shape[2], training)
        crop = x[:, top:top + ch, left:left + cw]
        if (ch, cw) == (self.height, self.width):
            return self._from_nhwc(np.ascontiguousarray(crop)), (x.shape, box, None)
        out, cache = ops.resize2d_forward(crop, (self.height, self.width), self.interpolation)
        return self._from_nhwc(out), (x.shape, box, cache)

    def backward(self, dout, ctx, need_dx=True):
        shape, (top, left, ch, cw), cache = ctx
        d = self._to_nhwc(dout)
        if cache is not None:
            d = ops.resize2d_backward(d, cache)
        dx = np.zeros(shape, dtype=d.dtype)
        dx[:, top:top + ch, left:left + cw] = d
        return self._from_nhwc(dx), []

    def get_config(self):
        config = super().get_config()
        config.update({"height": self.height, "width": self.width})
        return config


class Resizing(_CropResize):
    """Resize images to ``(height, width)``, in training and inference.

    Parameters
    ----------
    height, width : int
    interpolation : {'bilinear', 'nearest'}
    crop_to_aspect_ratio : bool
        First take the largest centred box with the target's aspect ratio, so the image
        is not distorted (Keras's ``smart_resize``).
    pad_to_aspect_ratio, fill_mode, fill_value, antialias
        Keras's; only their defaults (False, 'constant', 0, False) are implemented.
    data_format : {'channels_last', 'channels_first'}, optional

    ``(N, H, W, C)`` gives ``(N, height, width, C)``.
    """

    def __init__(self, height: int, width: int, interpolation: str = "bilinear",
                 crop_to_aspect_ratio: bool = False, pad_to_aspect_ratio: bool = False,
                 fill_mode: str = "constant", fill_value: float = 0.0, antialias: bool = False,
                 data_format: Optional[str] = None, **kwargs: Any):
        super().__init__(height, width, data_format=data_format, **kwargs)
        if interpolation in ("bicubic", "lanczos3", "lanczos5", "area"):
            raise NotImplementedError(f"fastconv's Resizing does not implement "
                                      f"interpolation={interpolation!r} yet")
        self.interpolation = _choice("interpolation", interpolation, ("bilinear", "nearest"))
        if pad_to_aspect_ratio or antialias or fill_mode != "constant" or fill_value != 0:
            raise NotImplementedError("fastconv's Resizing implements only "
                                      "pad_to_aspect_ratio=False and antialias=False")
        self.crop_to_aspect_ratio = bool(crop_to_aspect_ratio)

    def _box(self, h, w, training):
        if self.crop_to_aspect_ratio:
            return _aspect_box(h, w, self.height, self.width)
        return 0, 0, h, w

    def get_config(self):
        config = super().get_config()
        config.update({"interpolation": self.interpolation,
                       "crop_to_aspect_ratio": self.crop_to_aspect_ratio})
        return config


class CenterCrop(_CropResize):
    """The centred ``(height, width)`` box of each image, in training and inference; an
    image smaller than that is cropped to the target's aspect ratio and resized
    (bilinear), as Keras does. ``(N, H, W, C)`` gives ``(N, height, width, C)``."""

    def _box(self, h, w, training):
        if h >= self.height and w >= self.width:
            return (h - self.height) // 2, (w - self.width) // 2, self.height, self.width
        return _aspect_box(h, w, self.height, self.width)


class RandomCrop(_CropResize):
    """In training, one random ``(height, width)`` box for the whole batch (Keras 3
    draws one offset per call) when the images are larger than it in both axes;
    otherwise, and in inference, the centred box with the target's aspect ratio,
    resized (bilinear) to ``(height, width)``.

    Keras 3.15 returns the input unchanged in inference, whose shape then contradicts
    its own ``compute_output_shape``; fastconv keeps the declared shape (Keras 2's
    behaviour), so a model with RandomCrop predicts.
    """

    def __init__(self, height: int, width: int, seed: Optional[int] = None,
                 data_format: Optional[str] = None, **kwargs: Any):
        super().__init__(height, width, data_format=data_format, **kwargs)
        self.seed = _seed(seed)
        self._rng = np.random.default_rng(self.seed if self.seed is not None else child_seed())
        self._rng_lock = threading.Lock()

    def _box(self, h, w, training):
        if training and h > self.height and w > self.width:
            with self._rng_lock:
                top = int(self._rng.integers(0, h - self.height + 1))
                left = int(self._rng.integers(0, w - self.width + 1))
            return top, left, self.height, self.width
        return _aspect_box(h, w, self.height, self.width)

    def get_config(self):
        config = super().get_config()
        config["seed"] = self.seed
        return config
