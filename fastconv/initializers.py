"""Weight initializers (Keras: ``keras.initializers``).

An initializer is any callable ``init(shape, dtype=None) -> ndarray``; the classes here
draw from fastconv's global generator (see :func:`fastconv.utils.set_random_seed`).
Fans follow Keras: for a Dense kernel ``(in, out)``, ``fan_in = in, fan_out = out``; for a
convolution kernel ``(KH, KW, C_in, C_out)``, ``fan_in = KH*KW*C_in`` and
``fan_out = KH*KW*C_out``.
"""

from __future__ import annotations

import math
from typing import Any, Optional, Sequence, Tuple

import numpy as np

from ._random import get_rng
from .backends._args import fail

__all__ = [
    "Initializer", "Zeros", "Ones", "Constant", "RandomNormal", "RandomUniform",
    "TruncatedNormal", "VarianceScaling", "GlorotUniform", "GlorotNormal", "HeNormal",
    "HeUniform", "LecunNormal", "LecunUniform", "Orthogonal", "Identity", "get", "serialize",
]


def _dtype(dtype):
    return np.dtype(dtype if dtype is not None else np.float32)


def _fans(shape: Sequence[int]) -> Tuple[float, float]:
    shape = tuple(shape)
    if len(shape) == 0:
        return 1.0, 1.0
    if len(shape) == 1:
        return float(shape[0]), float(shape[0])
    if len(shape) == 2:
        return float(shape[0]), float(shape[1])
    receptive = float(np.prod(shape[:-2]))
    return shape[-2] * receptive, shape[-1] * receptive


class Initializer:
    """Base class: ``__call__(shape, dtype=None)`` and ``get_config()``."""

    def __call__(self, shape, dtype=None) -> np.ndarray:
        raise NotImplementedError

    def get_config(self) -> dict:
        return {}


class Zeros(Initializer):
    """All zeros."""

    def __call__(self, shape, dtype=None):
        return np.zeros(shape, _dtype(dtype))


class Ones(Initializer):
    """All ones."""

    def __call__(self, shape, dtype=None):
        return np.ones(shape, _dtype(dtype))


class Constant(Initializer):
    """All ``value``."""

    def __init__(self, value: float = 0.0):
        self.value = float(value)

    def __call__(self, shape, dtype=None):
        return np.full(shape, self.value, _dtype(dtype))

    def get_config(self):
        return {"value": self.value}


class RandomNormal(Initializer):
    """Normal with ``mean`` and ``stddev`` (Keras defaults 0 and 0.05)."""

    def __init__(self, mean: float = 0.0, stddev: float = 0.05, seed: Optional[int] = None):
        self.mean, self.stddev, self.seed = float(mean), float(stddev), seed

    def _rng(self):
        return get_rng() if self.seed is None else np.random.default_rng(self.seed)

    def __call__(self, shape, dtype=None):
        return self._rng().normal(self.mean, self.stddev, shape).astype(_dtype(dtype))

    def get_config(self):
        return {"mean": self.mean, "stddev": self.stddev, "seed": self.seed}


class TruncatedNormal(RandomNormal):
    """Normal with values beyond two standard deviations redrawn."""

    def __call__(self, shape, dtype=None):
        rng = self._rng()
        z = rng.standard_normal(shape)
        bad = np.abs(z) > 2
        while bad.any():
            z[bad] = rng.standard_normal(int(bad.sum()))
            bad = np.abs(z) > 2
        return (self.mean + self.stddev * z).astype(_dtype(dtype))


class RandomUniform(Initializer):
    """Uniform on ``[minval, maxval)`` (Keras defaults -0.05 and 0.05)."""

    def __init__(self, minval: float = -0.05, maxval: float = 0.05, seed: Optional[int] = None):
        self.minval, self.maxval, self.seed = float(minval), float(maxval), seed

    def __call__(self, shape, dtype=None):
        rng = get_rng() if self.seed is None else np.random.default_rng(self.seed)
        return rng.uniform(self.minval, self.maxval, shape).astype(_dtype(dtype))

    def get_config(self):
        return {"minval": self.minval, "maxval": self.maxval, "seed": self.seed}


class VarianceScaling(Initializer):
    """Variance ``scale / n`` with ``n`` = fan_in, fan_out or their mean (``mode``).

    ``distribution``: 'truncated_normal' (stddev corrected for the truncation at two
    standard deviations, as Keras does), 'untruncated_normal' or 'uniform'
    (``limit = sqrt(3 * scale / n)``).
    """

    def __init__(self, scale: float = 1.0, mode: str = "fan_in",
                 distribution: str = "truncated_normal", seed: Optional[int] = None):
        if mode not in ("fan_in", "fan_out", "fan_avg"):
            raise fail("mode", "'fan_in', 'fan_out' or 'fan_avg'", mode)
        if distribution not in ("truncated_normal", "untruncated_normal", "uniform"):
            raise fail("distribution",
                       "'truncated_normal', 'untruncated_normal' or 'uniform'", distribution)
        self.scale, self.mode, self.distribution, self.seed = float(scale), mode, distribution, seed

    def __call__(self, shape, dtype=None):
        fan_in, fan_out = _fans(shape)
        n = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[self.mode]
        var = self.scale / max(1.0, n)
        if self.distribution == "uniform":
            limit = math.sqrt(3 * var)
            return RandomUniform(-limit, limit, self.seed)(shape, dtype)
        if self.distribution == "untruncated_normal":
            return RandomNormal(0.0, math.sqrt(var), self.seed)(shape, dtype)
        # 0.879... is the stddev of a standard normal truncated to [-2, 2].
        return TruncatedNormal(0.0, math.sqrt(var) / 0.87962566103423978, self.seed)(shape, dtype)

    def get_config(self):
        return {"scale": self.scale, "mode": self.mode, "distribution": self.distribution,
                "seed": self.seed}


def _preset(name, scale, mode, distribution, doc):
    def __init__(self, seed: Optional[int] = None):
        VarianceScaling.__init__(self, scale, mode, distribution, seed)

    def get_config(self):
        return {"seed": self.seed}

    return type(name, (VarianceScaling,), {"__init__": __init__, "get_config": get_config,
                                          "__doc__": doc})


GlorotUniform = _preset("GlorotUniform", 1.0, "fan_avg", "uniform",
                        "Uniform, limit ``sqrt(6 / (fan_in + fan_out))`` (Keras default).")
GlorotNormal = _preset("GlorotNormal", 1.0, "fan_avg", "truncated_normal",
                       "Truncated normal, stddev ``sqrt(2 / (fan_in + fan_out))``.")
HeNormal = _preset("HeNormal", 2.0, "fan_in", "truncated_normal",
                   "Truncated normal, stddev ``sqrt(2 / fan_in)``.")
HeUniform = _preset("HeUniform", 2.0, "fan_in", "uniform",
                    "Uniform, limit ``sqrt(6 / fan_in)``.")
LecunNormal = _preset("LecunNormal", 1.0, "fan_in", "truncated_normal",
                      "Truncated normal, stddev ``sqrt(1 / fan_in)``.")
LecunUniform = _preset("LecunUniform", 1.0, "fan_in", "uniform",
                       "Uniform, limit ``sqrt(3 / fan_in)``.")

class Orthogonal(Initializer):
    """``gain`` times a random orthogonal matrix: the Q of the QR factorisation of a
    standard normal (max(rows, cols), min(rows, cols)) matrix, its columns' signs fixed
    by R's diagonal, transposed when rows < cols; rows = the product of all but the last
    axis, cols = the last axis (so convolution kernels work)."""

    def __init__(self, gain: float = 1.0, seed: Optional[int] = None):
        self.gain, self.seed = float(gain), seed

    def __call__(self, shape, dtype=None):
        shape = tuple(shape)
        if len(shape) < 2:
            raise fail("shape", "at least 2-D for an Orthogonal initializer", shape)
        rows, cols = int(np.prod(shape[:-1])), shape[-1]
        rng = get_rng() if self.seed is None else np.random.default_rng(self.seed)
        a = rng.standard_normal((max(rows, cols), min(rows, cols)))
        q, r = np.linalg.qr(a)
        q *= np.sign(np.diag(r))
        if rows < cols:
            q = q.T
        return (self.gain * q.reshape(shape)).astype(_dtype(dtype))

    def get_config(self):
        return {"gain": self.gain, "seed": self.seed}


class Identity(Initializer):
    """``gain`` times the identity matrix (2-D shapes only; rectangular allowed)."""

    def __init__(self, gain: float = 1.0):
        self.gain = float(gain)

    def __call__(self, shape, dtype=None):
        shape = tuple(shape)
        if len(shape) != 2:
            raise fail("shape", "2-D for an Identity initializer", shape)
        return (self.gain * np.eye(*shape)).astype(_dtype(dtype))

    def get_config(self):
        return {"gain": self.gain}


_CLASSES = {c.__name__: c for c in (
    Zeros, Ones, Constant, RandomNormal, RandomUniform, TruncatedNormal, VarianceScaling,
    GlorotUniform, GlorotNormal, HeNormal, HeUniform, LecunNormal, LecunUniform, Orthogonal,
    Identity)}
_ALIASES = {
    "zeros": Zeros, "ones": Ones, "constant": Constant, "random_normal": RandomNormal,
    "random_uniform": RandomUniform, "truncated_normal": TruncatedNormal,
    "variance_scaling": VarianceScaling, "glorot_uniform": GlorotUniform,
    "glorot_normal": GlorotNormal, "he_normal": HeNormal, "he_uniform": HeUniform,
    "lecun_normal": LecunNormal, "lecun_uniform": LecunUniform, "orthogonal": Orthogonal,
    "identity": Identity,
    # Keras's other spellings
    "zero": Zeros, "one": Ones, "normal": RandomNormal, "uniform": RandomUniform,
    "IdentityInitializer": Identity, "OrthogonalInitializer": Orthogonal,
}

# Keras's lower-case function-style names of the classes.



def get(identifier: Any, name: str = "initializer"):
    """An initializer from a name ('glorot_uniform', ...), a config dict or a callable."""
    if isinstance(identifier, str):
        cls = _ALIASES.get(identifier) or _ALIASES.get(identifier.lower()) \
            or _CLASSES.get(identifier)
        if cls is None:
            raise fail(name, f"one of {sorted(_ALIASES)} or a callable(shape, dtype=None)",
                       identifier)
        return cls()
    if isinstance(identifier, dict) and identifier.get("class_name") in _CLASSES:
        return _CLASSES[identifier["class_name"]](**identifier.get("config", {}))
    if callable(identifier):
        return identifier
    raise fail(name, f"one of {sorted(_ALIASES)} or a callable(shape, dtype=None)",
               identifier, TypeError)


def serialize(init: Any) -> Any:
    """A JSON-able description of a built-in initializer; custom callables cannot be saved."""
    if type(init).__name__ in _CLASSES and isinstance(init, Initializer):
        return {"class_name": type(init).__name__, "config": init.get_config()}
    raise ValueError(f"Only built-in initializers can be saved; received {init!r}.")
