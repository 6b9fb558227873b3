"""Regularisation layers: ``SpatialDropout2D``, ``GaussianNoise``, ``GaussianDropout``,
``ActivityRegularization`` (whose penalty a model's graph and trainer add to the loss:
see :mod:`fastconv._activity`).

The noise layers act in training only and are the identity otherwise, as in Keras.
Each draws from its own generator, seeded by ``seed`` or, without one, from
fastconv's global generator when the layer is made (so ``set_random_seed``
reproduces them). The noise is element-wise NumPy: one pass to draw, one to apply.
"""

from __future__ import annotations

import threading
from typing import Any, Optional

import numpy as np

from .. import regularizers as _regularizers
from .._random import child_seed
from ..backends._args import fail
from .base import Layer, _data_format
from .core import Dropout

__all__ = ["SpatialDropout2D", "GaussianNoise", "GaussianDropout", "ActivityRegularization"]


def _number(name: str, value: Any, lo: float, hi: float, hi_open: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise fail(name, f"a number in [{lo}, {hi}{')' if hi_open else ']'}", value, TypeError)
    if not lo <= value <= hi or (hi_open and value == hi):
        raise fail(name, f"a number in [{lo}, {hi}{')' if hi_open else ']'}", value)
    return float(value)


class SpatialDropout2D(Dropout):
    """Dropout of whole feature maps: in training each channel of each image is zeroed
    with probability ``rate`` (the others scaled by ``1 / (1 - rate)``), so one mask of
    shape (N, 1, 1, C) (channels_first: (N, C, 1, 1)) serves every pixel."""

    def __init__(self, rate: float, data_format: Optional[str] = None,
                 seed: Optional[int] = None, **kwargs: Any):
        data_format = _data_format(data_format)
        noise = (None, None, 1, 1) if data_format == "channels_first" else (None, 1, 1, None)
        super().__init__(rate, noise_shape=noise, seed=seed, **kwargs)
        self.data_format = data_format

    def compute_output_shape(self, input_shape):
        self._need_ndim(input_shape, 4, "(batch, height, width, channels)")
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        del config["noise_shape"]
        config["data_format"] = self.data_format
        return config


class _Noise(Layer):
    """A training-only noise layer with its own seeded generator."""

    def __init__(self, seed: Optional[int] = None, **kwargs: Any):
        super().__init__(**kwargs)
        if seed is not None and (isinstance(seed, bool) or not isinstance(
                seed, (int, np.integer))):
            raise fail("seed", "None or an int", seed, TypeError)
        self.seed = seed
        self._rng = np.random.default_rng(seed if seed is not None else child_seed())
        self._rng_lock = threading.Lock()

    def _normal(self, shape, dtype, mean, stddev):
        with self._rng_lock:
            noise = self._rng.standard_normal(shape, dtype=dtype)
        noise *= dtype.type(stddev)
        noise += dtype.type(mean)
        return noise

    def get_config(self):
        config = super().get_config()
        config["seed"] = self.seed
        return config


class GaussianNoise(_Noise):
    """In training, ``x + noise`` with noise drawn from N(0, stddev**2) per element;
    the identity otherwise. ``stddev`` in [0, 1], as Keras requires."""

    def __init__(self, stddev: float, seed: Optional[int] = None, **kwargs: Any):
        super().__init__(seed=seed, **kwargs)
        self.stddev = _number("stddev", stddev, 0, 1)

    def forward(self, x, training=False, workspace=None):
        if not training or self.stddev == 0:
            return x, None
        return x + self._normal(x.shape, x.dtype, 0.0, self.stddev), None

    def backward(self, dout, ctx, need_dx=True):
        return dout, []

    def get_config(self):
        config = super().get_config()
        config["stddev"] = self.stddev
        return config


class GaussianDropout(_Noise):
    """In training, ``x * noise`` with noise drawn from N(1, rate / (1 - rate)) per
    element (mean 1: no rescaling needed); the identity otherwise. ``rate`` in [0, 1)
    (Keras's 1 would be an infinite standard deviation)."""

    def __init__(self, rate: float, seed: Optional[int] = None, **kwargs: Any):
        super().__init__(seed=seed, **kwargs)
        self.rate = _number("rate", rate, 0, 1, hi_open=True)

    def forward(self, x, training=False, workspace=None):
        if not training or self.rate == 0:
            return x, None
        noise = self._normal(x.shape, x.dtype, 1.0, np.sqrt(self.rate / (1 - self.rate)))
        return x * noise, noise

    def backward(self, dout, noise, need_dx=True):
        return (dout if noise is None else dout * noise), []

    def get_config(self):
        config = super().get_config()
        config["rate"] = self.rate
        return config


class ActivityRegularization(Layer):
    """The identity, with ``activity_regularizer = L1L2(l1, l2)``: a model training it
    adds ``(l1 * sum |x| + l2 * sum x**2) / batch`` to its loss (and the gradient of
    that to the gradient of x), as Keras does."""

    def __init__(self, l1: float = 0.0, l2: float = 0.0, **kwargs: Any):
        kwargs.pop("activity_regularizer", None)  # from_config: l1 and l2 say it
        super().__init__(**kwargs)
        self.activity_regularizer = _regularizers.L1L2(l1, l2)
        self.l1, self.l2 = self.activity_regularizer.l1, self.activity_regularizer.l2

    def forward(self, x, training=False, workspace=None):
        return x, None

    def backward(self, dout, ctx, need_dx=True):
        return dout, []

    def get_config(self):
        config = super().get_config()
        config.pop("activity_regularizer", None)
        config.update({"l1": self.l1, "l2": self.l2})
        return config
