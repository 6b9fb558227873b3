"""Weight constraints (Keras: ``keras.constraints``): projections applied to a weight
after every optimizer step, in place (the optimizer's slots stay attached to it).

A constraint is any callable ``c(w) -> array of w's shape``. Norms are taken over
``axis`` (Keras's default 0: for a Dense kernel (in, units), the weights into each
unit; for a convolution kernel pass ``axis=[0, 1, 2]``), and divided with Keras's
``epsilon = 1e-7`` added, so a zero vector stays zero.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np

from .backends._args import fail

__all__ = ["Constraint", "MaxNorm", "NonNeg", "UnitNorm", "MinMaxNorm", "max_norm",
           "non_neg", "unit_norm", "min_max_norm", "get", "serialize", "apply_constraints"]

_EPSILON = 1e-7


class Constraint:
    """Base class: ``__call__(w) -> projected w`` and ``get_config()``."""

    def __call__(self, w: np.ndarray) -> np.ndarray:
        return w

    def get_config(self) -> dict:
        return {}

    @classmethod
    def from_config(cls, config: dict) -> "Constraint":
        return cls(**config)


def _axis(value: Any):
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, (list, tuple)) and all(
            isinstance(a, (int, np.integer)) and not isinstance(a, bool) for a in value):
        return [int(a) for a in value]
    raise fail("axis", "an int or a list of ints", value, TypeError)


def _number(name: str, value: Any, minimum: float = 0.0) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not np.isfinite(value) or value < minimum:
        raise fail(name, f"a finite number >= {minimum}", value)
    return float(value)


class _Norm(Constraint):
    def _norms(self, w):
        axis = tuple(self.axis) if isinstance(self.axis, list) else self.axis
        return np.sqrt(np.sum(np.square(w), axis=axis, keepdims=True))

    def _rescale(self, w, norms, desired):
        return (w * (desired / (w.dtype.type(_EPSILON) + norms))).astype(w.dtype, copy=False)


class MaxNorm(_Norm):
    """Rescale each vector along ``axis`` whose norm exceeds ``max_value`` to it."""

    def __init__(self, max_value: float = 2, axis: Any = 0):
        self.max_value, self.axis = _number("max_value", max_value), _axis(axis)

    def __call__(self, w):
        norms = self._norms(w)
        return self._rescale(w, norms, np.clip(norms, 0, self.max_value))

    def get_config(self):
        return {"max_value": self.max_value, "axis": self.axis}


class NonNeg(Constraint):
    """``max(w, 0)``."""

    def __call__(self, w):
        return np.maximum(w, 0).astype(w.dtype, copy=False)


class UnitNorm(_Norm):
    """Each vector along ``axis`` divided by its norm."""

    def __init__(self, axis: Any = 0):
        self.axis = _axis(axis)

    def __call__(self, w):
        norms = self._norms(w)
        return (w / (w.dtype.type(_EPSILON) + norms)).astype(w.dtype, copy=False)

    def get_config(self):
        return {"axis": self.axis}


class MinMaxNorm(_Norm):
    """Each vector's norm moved to ``rate * clip(norm, min_value, max_value) +
    (1 - rate) * norm`` (rate 1: clipped into the interval)."""

    def __init__(self, min_value: float = 0.0, max_value: float = 1.0, rate: float = 1.0,
                 axis: Any = 0):
        self.min_value = _number("min_value", min_value)
        self.max_value = _number("max_value", max_value, self.min_value)
        self.rate, self.axis = _number("rate", rate), _axis(axis)

    def __call__(self, w):
        norms = self._norms(w)
        desired = self.rate * np.clip(norms, self.min_value, self.max_value) \
            + (1 - self.rate) * norms
        return self._rescale(w, norms, desired)

    def get_config(self):
        return {"min_value": self.min_value, "max_value": self.max_value, "rate": self.rate,
                "axis": self.axis}


# Keras's lower-case aliases of the classes.
max_norm, non_neg, unit_norm, min_max_norm = MaxNorm, NonNeg, UnitNorm, MinMaxNorm

_CLASSES = {c.__name__: c for c in (MaxNorm, NonNeg, UnitNorm, MinMaxNorm)}
_NAMES = {"max_norm": MaxNorm, "non_neg": NonNeg, "unit_norm": UnitNorm,
          "min_max_norm": MinMaxNorm}
_EXPECTED = f"None, one of {sorted(_NAMES)}, a config dict or a callable(w)"


def get(identifier: Any, name: str = "constraint") -> Optional[Any]:
    """A constraint from None, a name ('max_norm', 'MaxNorm', ...), a config dict or a
    callable."""
    if identifier is None:
        return None
    if isinstance(identifier, str):
        cls = _NAMES.get(identifier) or _CLASSES.get(identifier)
        if cls is None:
            raise fail(name, _EXPECTED, identifier)
        return cls()
    if isinstance(identifier, dict) and identifier.get("class_name") in _CLASSES:
        return _CLASSES[identifier["class_name"]].from_config(identifier.get("config", {}))
    if callable(identifier):
        return identifier
    raise fail(name, _EXPECTED, identifier, TypeError)


def serialize(constraint: Any) -> Any:
    """A JSON-able description of a built-in constraint (None stays None); custom
    callables cannot be saved."""
    if constraint is None:
        return None
    if type(constraint).__name__ in _CLASSES and isinstance(constraint, Constraint):
        return {"class_name": type(constraint).__name__, "config": constraint.get_config()}
    raise ValueError(f"Only built-in constraints can be saved; received {constraint!r}.")


def apply_constraints(items: Sequence) -> None:
    """Project each weight of ``items`` (``(layer, name, array)``) by its layer's
    constraint, in place; what Keras's optimizers do after each update."""
    for layer, name, arr in items:
        found = getattr(layer, "constraints", None)  # None: a layer pickled before them
        constraint = found.get(name) if found else None
        if constraint is not None:
            new = np.asarray(constraint(arr))
            if new.shape != arr.shape:
                raise ValueError(f"The constraint of {layer.name}.{name} returned shape "
                                 f"{new.shape}; expected {arr.shape}")
            np.copyto(arr, new, casting="same_kind")
