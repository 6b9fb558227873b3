"""Noise layers active in training only (Keras: ``keras.layers`` regularization).

- ``SpatialDropout2D(rate)``: whole feature maps dropped (one draw per image and
  channel), the rest scaled by ``1 / (1 - rate)``.
- ``GaussianNoise(stddev)``: ``x + N(0, stddev**2)`` noise.
- ``GaussianDropout(rate)``: ``x * N(1, rate / (1 - rate))`` noise.

In inference each is the identity. Each draws from its own generator, seeded by
``seed`` or, without it, from fastconv's global generator when the layer is made
(:func:`fastconv.utils.set_random_seed` makes runs repeatable).
"""

from __future__ import annotations

import math
import threading
from typing import Any, Optional

import numpy as np

from .._random import child_seed
from ..backends._args import fail
from .base import Layer, _data_format
from .core import Dropout


class SpatialDropout2D(Dropout):
    """Dropout of whole channels: ``(N, H, W, C)`` shares one mask entry per ``(N, C)``."""

    def __init__(self, rate: float, data_format: Optional[str] = None,
                 seed: Optional[int] = None, **kwargs: Any):
        self.data_format = _data_format(data_format)
        noise = (None, None, 1, 1) if self.data_format == "channels_first" else (None, 1, 1,
                                                                                None)
        super().__init__(rate, noise_shape=noise, seed=seed, **kwargs)

    def compute_output_shape(self, input_shape):
        layout = ("(batch, channels, height, width)" if self.data_format == "channels_first"
                  else "(batch, height, width, channels)")
        self._need_ndim(input_shape, 4, layout)
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.pop("noise_shape", None)
        config["data_format"] = self.data_format
        return config


class _Noise(Layer):
    def __init__(self, seed: Optional[int] = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.seed = seed
        self._rng = np.random.default_rng(seed if seed is not None else child_seed())
        self._lock = threading.Lock()

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def _normal(self, shape, dtype):
        with self._lock:
            return self._rng.standard_normal(shape, dtype=dtype)

    def get_config(self):
        config = super().get_config()
        config["seed"] = self.seed
        return config


def _float_dtype(x):
    return x.dtype if x.dtype in (np.float32, np.float64) else np.float32


class GaussianNoise(_Noise):
    """Additive zero-mean Gaussian noise of standard deviation ``stddev``, in training."""

    def __init__(self, stddev: float, seed: Optional[int] = None, **kwargs: Any):
        super().__init__(seed, **kwargs)
        if isinstance(stddev, bool) or not isinstance(stddev, (int, float)) or not (
                math.isfinite(stddev) and stddev >= 0):
            raise fail("stddev", "a finite number >= 0", stddev)
        self.stddev = float(stddev)

    def forward(self, x, training=False, workspace=None):
        if not training or self.stddev == 0:
            return x, None
        noise = self._normal(x.shape, _float_dtype(x))
        noise *= noise.dtype.type(self.stddev)
        return x + noise, None

    def backward(self, dout, ctx, need_dx=True):
        return dout, []

    def get_config(self):
        config = super().get_config()
        config["stddev"] = self.stddev
        return config


class GaussianDropout(_Noise):
    """Multiplicative Gaussian noise of mean 1 and variance ``rate / (1 - rate)``, in
    training."""

    def __init__(self, rate: float, seed: Optional[int] = None, **kwargs: Any):
        super().__init__(seed, **kwargs)
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate < 1:
            raise fail("rate", "a number in [0, 1)", rate)
        self.rate = float(rate)

    def forward(self, x, training=False, workspace=None):
        if not training or self.rate == 0:
            return x, None
        noise = self._normal(x.shape, _float_dtype(x))
        noise *= noise.dtype.type(math.sqrt(self.rate / (1 - self.rate)))
        noise += 1
        return x * noise, noise

    def backward(self, dout, noise, need_dx=True):
        return (dout if noise is None else dout * noise), []

    def get_config(self):
        config = super().get_config()
        config["rate"] = self.rate
        return config
