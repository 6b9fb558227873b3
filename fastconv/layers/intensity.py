"""Random intensity layers: ``RandomContrast`` and ``RandomBrightness`` (training only,
the identity otherwise, as in Keras 3), element-wise in NumPy (one pass each way).

Each image gets one draw (the same for all its pixels and channels) from the layer's
generator (``seed``, or one drawn from fastconv's global generator when the layer is
made, so ``set_random_seed`` reproduces them). The result is clipped to
``value_range``; the gradient is zero where the clip acted.
"""

from __future__ import annotations

import threading
from typing import Any, Optional, Sequence, Tuple

import numpy as np

from .._random import child_seed
from ..backends._args import fail
from .preprocessing import _ImageLayer, _number, _seed

__all__ = ["RandomContrast", "RandomBrightness"]


def _bounded_factor(name: str, value: Any, lo: float, hi: float) -> Tuple[float, float]:
    """Keras 3's ``_set_factor``: ``f`` gives ``(max(-|f|, lo), |f|)``, a pair is sorted;
    every number in [lo, hi]."""
    expected = f"a number in [{lo:g}, {hi:g}] or a pair of them"
    items = list(value) if isinstance(value, (list, tuple)) else [value]
    if len(items) not in (1, 2):
        raise fail(name, expected, value)
    nums = [_number(name, v) for v in items]
    if any(not lo <= v <= hi for v in nums):
        raise fail(name, expected, value)
    if len(nums) == 1:
        return max(-abs(nums[0]), lo), abs(nums[0])
    lower, upper = sorted(nums)
    return lower, upper


def _value_range(value: Any) -> Tuple[float, float]:
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise fail("value_range", "a pair (low, high)", value)
    lo, hi = sorted(_number("value_range", v) for v in value)
    return lo, hi


class _RandomIntensity(_ImageLayer):
    def __init__(self, factor: Any, value_range: Sequence[float] = (0, 255),
                 seed: Optional[int] = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.factor = _bounded_factor("factor", factor, *self._BOUNDS)
        self.value_range = _value_range(value_range)
        self.seed = _seed(seed)
        self._rng = np.random.default_rng(self.seed if self.seed is not None else child_seed())
        self._rng_lock = threading.Lock()

    def _draw(self, n: int, lower: float, upper: float, dtype) -> np.ndarray:
        with self._rng_lock:
            return self._rng.uniform(lower, upper, size=n).astype(dtype).reshape(n, 1, 1, 1)

    def _clip(self, z):
        lo, hi = (z.dtype.type(v) for v in self.value_range)
        inside = (z >= lo) & (z <= hi)
        return np.clip(z, lo, hi), inside

    def get_config(self):
        config = super().get_config()
        config.update({"factor": list(self.factor), "value_range": list(self.value_range),
                       "seed": self.seed})
        return config


class RandomContrast(_RandomIntensity):
    """In training, ``clip((x - mean) * c + mean, *value_range)`` per image, ``mean``
    over its height and width (per channel) and ``c`` drawn from
    ``[1 - factor[0], 1 + factor[1]]``.

    ``factor`` follows Keras 3.15 exactly: a single ``f`` in [0, 1] becomes ``(0, f)``,
    so ``c`` is drawn from ``[1, 1 + f]`` (contrast only raised); a pair ``(a, b)``
    gives ``[1 - a, 1 + b]``.
    """

    _BOUNDS = (0.0, 1.0)

    def forward(self, x, training=False, workspace=None):
        if not training:
            return x, None
        x = self._to_nhwc(x)
        c = self._draw(x.shape[0], 1 - self.factor[0], 1 + self.factor[1], x.dtype)
        mean = x.mean(axis=(1, 2), keepdims=True)
        out, inside = self._clip((x - mean) * c + mean)
        return self._from_nhwc(out), (c, inside)

    def backward(self, dout, ctx, need_dx=True):
        if ctx is None:
            return dout, []
        c, inside = ctx
        g = self._to_nhwc(dout) * inside
        m = g.shape[1] * g.shape[2]
        # d/dx of (x - mean) c + mean: c on the pixel, (1 - c) / m through the mean.
        dx = g * c + g.sum(axis=(1, 2), keepdims=True) * ((1 - c) / m)
        return self._from_nhwc(dx), []


class RandomBrightness(_RandomIntensity):
    """In training, ``clip(x + delta, *value_range)`` per image, ``delta`` drawn from
    ``factor`` (``f`` means ``(-f, f)``, each in [-1, 1]) times the width of
    ``value_range``."""

    _BOUNDS = (-1.0, 1.0)

    def forward(self, x, training=False, workspace=None):
        if not training:
            return x, None
        x = self._to_nhwc(x)
        span = self.value_range[1] - self.value_range[0]
        delta = self._draw(x.shape[0], *self.factor, np.float64) * span
        out, inside = self._clip(x + delta.astype(x.dtype))
        return self._from_nhwc(out), inside

    def backward(self, dout, inside, need_dx=True):
        if inside is None:
            return dout, []
        return self._from_nhwc(self._to_nhwc(dout) * inside), []
