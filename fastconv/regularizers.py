"""Weight penalties added to the loss and to the gradients (Keras: ``keras.regularizers``).

``L1(l1)``: ``l1 * sum(|w|)``, gradient ``l1 * sign(w)``.
``L2(l2)``: ``l2 * sum(w**2)``, gradient ``2 * l2 * w``.
``L1L2(l1, l2)``: both. ``l1``, ``l2`` and ``l1_l2`` are aliases, as in Keras.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from .backends._args import fail

__all__ = ["Regularizer", "L1", "L2", "L1L2", "l1", "l2", "l1_l2", "get", "serialize"]


class Regularizer:
    """Base class: ``__call__(w) -> penalty`` and ``gradient(w) -> d penalty / d w``."""

    def __call__(self, w: np.ndarray) -> float:
        raise NotImplementedError

    def gradient(self, w: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def get_config(self) -> dict:
        return {}


class L1L2(Regularizer):
    """``l1 * sum(|w|) + l2 * sum(w**2)``."""

    def __init__(self, l1: float = 0.0, l2: float = 0.0):
        for name, v in (("l1", l1), ("l2", l2)):
            if not np.isscalar(v) or not np.isfinite(v) or v < 0:
                raise fail(name, "a finite number >= 0", v)
        self.l1, self.l2 = float(l1), float(l2)

    def __call__(self, w):
        penalty = 0.0
        if self.l1:
            penalty += self.l1 * float(np.sum(np.abs(w)))
        if self.l2:
            penalty += self.l2 * float(np.sum(np.square(w)))
        return penalty

    def gradient(self, w):
        g = np.zeros_like(w)
        if self.l1:
            g += w.dtype.type(self.l1) * np.sign(w)
        if self.l2:
            g += w.dtype.type(2 * self.l2) * w
        return g

    def get_config(self):
        return {"l1": self.l1, "l2": self.l2}


class L1(L1L2):
    """``l1 * sum(|w|)`` (Keras default ``l1=0.01``)."""

    def __init__(self, l1: float = 0.01):
        super().__init__(l1=l1)

    def get_config(self):
        return {"l1": self.l1}


class L2(L1L2):
    """``l2 * sum(w**2)`` (Keras default ``l2=0.01``)."""

    def __init__(self, l2: float = 0.01):
        super().__init__(l2=l2)

    def get_config(self):
        return {"l2": self.l2}


l1, l2, l1_l2 = L1, L2, L1L2
_CLASSES = {"L1": L1, "L2": L2, "L1L2": L1L2}
_ALIASES = {"l1": L1, "l2": L2, "l1_l2": L1L2}


def get(identifier: Any, name: str = "regularizer") -> Optional[Regularizer]:
    """A regularizer from None, a name ('l1', 'l2', 'l1_l2'), a config dict or an object."""
    if identifier is None or isinstance(identifier, Regularizer):
        return identifier
    if isinstance(identifier, str) and identifier.lower() in _ALIASES:
        return _ALIASES[identifier.lower()]()
    if isinstance(identifier, dict) and identifier.get("class_name") in _CLASSES:
        return _CLASSES[identifier["class_name"]](**identifier.get("config", {}))
    raise fail(name, "None, 'l1', 'l2', 'l1_l2' or a fastconv.regularizers.Regularizer",
               identifier, TypeError)


def serialize(reg: Optional[Regularizer]) -> Any:
    if reg is None:
        return None
    if type(reg).__name__ not in _CLASSES:
        raise ValueError(f"Only built-in regularizers can be saved; received {reg!r}.")
    return {"class_name": type(reg).__name__, "config": reg.get_config()}
