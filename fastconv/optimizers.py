"""Gradient-descent optimizers (Keras: ``keras.optimizers``), with Keras's defaults.

``apply(params, grads)`` updates every array of ``params`` in place from the matching
gradient. State (velocities, moments) is allocated once, on the first call, and
updated in place afterwards. Update rules, for a weight ``w`` with gradient ``g``:

- ``SGD``: ``w -= lr * g``; with momentum ``v = momentum * v - lr * g`` then ``w += v``
  (nesterov: ``w += momentum * v - lr * g``).
- ``Adam``: ``m += (1 - beta_1) * (g - m)``, ``v += (1 - beta_2) * (g**2 - v)``,
  ``w -= lr * sqrt(1 - beta_2**t) / (1 - beta_1**t) * m / (sqrt(v) + epsilon)``.
- ``RMSprop``: ``v = rho * v + (1 - rho) * g**2``, ``w -= lr * g / sqrt(v + epsilon)``
  (centered: ``v - mean_g**2`` under the root; momentum: accumulate the step first).
"""

from __future__ import annotations

import math
from typing import Any, List, Sequence

import numpy as np

from ._threads import get_num_threads
from .backends._args import fail

try:  # the compiled element-wise kernels, when the extension is built
    from . import _elementwise as _compiled
except ImportError:  # pragma: no cover - the NumPy code below does the same
    _compiled = None

__all__ = ["Optimizer", "SGD", "Adam", "RMSprop", "get", "serialize"]


def _positive(name, value, allow_zero=False):
    ok = isinstance(value, (int, float, np.floating, np.integer)) and math.isfinite(value) and (
        value >= 0 if allow_zero else value > 0)
    if not ok or isinstance(value, bool):
        raise fail(name, "a finite number " + (">= 0" if allow_zero else "> 0"), value)
    return float(value)


def _copy_slot(s):
    """A deep copy of one weight's optimizer state (None, array, tuple or dict of arrays)."""
    if s is None:
        return None
    if isinstance(s, tuple):
        return tuple(_copy_slot(a) for a in s)
    if isinstance(s, dict):
        return {k: _copy_slot(a) for k, a in s.items()}
    return np.array(s, copy=True)


class Optimizer:
    """Base class. ``learning_rate`` may be changed between steps (callbacks do)."""

    def __init__(self, learning_rate: float):
        self.learning_rate = _positive("learning_rate", learning_rate)
        self.iterations = 0
        self._state: List[Any] = []

    def apply(self, params: Sequence[np.ndarray], grads: Sequence[np.ndarray]) -> None:
        """Update each ``params[i]`` in place from ``grads[i]`` (same shape and dtype)."""
        if not self._state or len(self._state) != len(params):
            self._state = [self._new_state(p) for p in params]
        self.iterations += 1
        for p, g, s in zip(params, grads, self._state):
            self._update(p, g, s)

    def _new_state(self, p):
        return None

    def _update(self, p, g, state):
        raise NotImplementedError

    def get_config(self) -> dict:
        return {"learning_rate": self.learning_rate}

    def get_state(self) -> dict:
        """A copy of what the next steps depend on: ``{"iterations", "slots"}``.

        ``slots`` holds, per weight, that weight's state (None, an array, or a tuple or
        dict of arrays: moments, velocities) copied, so that ``set_state`` of it later
        resumes exactly where this call stood (BackupAndRestore uses it).
        """
        return {"iterations": int(self.iterations),
                "slots": [_copy_slot(s) for s in self._state]}

    def set_state(self, state: dict) -> None:
        """Restore what :meth:`get_state` returned (on an optimizer of the same config)."""
        if not isinstance(state, dict) or set(state) != {"iterations", "slots"}:
            raise fail("state", "a dict with keys 'iterations' and 'slots'", state)
        it = state["iterations"]
        if isinstance(it, bool) or not isinstance(it, (int, np.integer)) or it < 0:
            raise fail("state['iterations']", "an int >= 0", it)
        self.iterations = int(it)
        self._state = [_copy_slot(s) for s in state["slots"]]
        self._after_set_state()

    def _after_set_state(self) -> None:
        """Rebuild views of ``_state`` a subclass keeps (Adam's moment lists)."""


class SGD(Optimizer):
    """Stochastic gradient descent, optionally with (Nesterov) momentum."""

    def __init__(self, learning_rate: float = 0.01, momentum: float = 0.0,
                 nesterov: bool = False):
        super().__init__(learning_rate)
        self.momentum = _positive("momentum", momentum, allow_zero=True)
        if self.momentum >= 1:
            raise fail("momentum", "a number in [0, 1)", momentum)
        self.nesterov = bool(nesterov)

    def _new_state(self, p):
        return np.zeros_like(p) if self.momentum else None

    def _update(self, p, g, v):
        lr = p.dtype.type(self.learning_rate)
        if v is None:
            # Exactly w_new = w_old - lr * grad, as the lecture writes it.
            p -= lr * g
            return
        m = p.dtype.type(self.momentum)
        v *= m
        v -= lr * g
        if self.nesterov:
            p += m * v - lr * g
        else:
            p += v

    def get_config(self):
        return {"learning_rate": self.learning_rate, "momentum": self.momentum,
                "nesterov": self.nesterov}


class Adam(Optimizer):
    """Adam (Kingma and Ba), with Keras's defaults and epsilon outside the root."""

    def __init__(self, learning_rate: float = 0.001, beta_1: float = 0.9,
                 beta_2: float = 0.999, epsilon: float = 1e-7):
        super().__init__(learning_rate)
        for name, b in (("beta_1", beta_1), ("beta_2", beta_2)):
            if not 0 <= _positive(name, b, allow_zero=True) < 1:
                raise fail(name, "a number in [0, 1)", b)
        self.beta_1, self.beta_2 = float(beta_1), float(beta_2)
        self.epsilon = _positive("epsilon", epsilon, allow_zero=True)
        self._moments: tuple = ([], [])  # the m and v arrays of _state, for the compiled call

    def _new_state(self, p):
        return np.zeros_like(p), np.zeros_like(p), np.empty_like(p)

    def _after_set_state(self):
        self._moments = ([s[0] for s in self._state], [s[1] for s in self._state])

    def apply(self, params, grads):
        t = self.iterations + 1
        self._alpha = (self.learning_rate * math.sqrt(1 - self.beta_2 ** t)
                       / (1 - self.beta_1 ** t))
        if _compiled is not None and self._state and len(self._state) == len(params):
            # Every array in one compiled call (one parallel region per step). It checks
            # all of them before changing any; arrays it does not take (another dtype,
            # not contiguous) go through _update below, one by one.
            try:
                _compiled.adam_update_many(
                    params if type(params) is list else list(params),
                    grads if type(grads) is list else list(grads),
                    self._moments[0], self._moments[1], 1 - self.beta_1, 1 - self.beta_2,
                    self.epsilon, self._alpha, get_num_threads())
            except (TypeError, ValueError):
                pass
            else:
                self.iterations += 1
                return
        super().apply(params, grads)
        self._moments = ([s[0] for s in self._state], [s[1] for s in self._state])

    def _update(self, p, g, state):
        m, v, tmp = state
        if _compiled is not None and p.flags.c_contiguous and g.flags.c_contiguous \
                and g.dtype == p.dtype:
            # The same arithmetic in one compiled pass instead of eleven NumPy passes.
            _compiled.adam_update(p.reshape(-1), g.reshape(-1), m.reshape(-1), v.reshape(-1),
                                  1 - self.beta_1, 1 - self.beta_2, self.epsilon,
                                  self._alpha, get_num_threads())
            return
        dt = p.dtype.type
        np.subtract(g, m, out=tmp)
        tmp *= dt(1 - self.beta_1)
        m += tmp
        np.multiply(g, g, out=tmp)
        tmp -= v
        tmp *= dt(1 - self.beta_2)
        v += tmp
        np.sqrt(v, out=tmp)
        tmp += dt(self.epsilon)
        np.divide(m, tmp, out=tmp)
        tmp *= dt(self._alpha)
        p -= tmp

    def get_config(self):
        return {"learning_rate": self.learning_rate, "beta_1": self.beta_1,
                "beta_2": self.beta_2, "epsilon": self.epsilon}


class RMSprop(Optimizer):
    """RMSprop (Hinton), with Keras's defaults (rho 0.9, epsilon 1e-7 inside the root)."""

    def __init__(self, learning_rate: float = 0.001, rho: float = 0.9, momentum: float = 0.0,
                 epsilon: float = 1e-7, centered: bool = False):
        super().__init__(learning_rate)
        if not 0 <= _positive("rho", rho, allow_zero=True) < 1:
            raise fail("rho", "a number in [0, 1)", rho)
        self.rho = float(rho)
        self.momentum = _positive("momentum", momentum, allow_zero=True)
        self.epsilon = _positive("epsilon", epsilon, allow_zero=True)
        self.centered = bool(centered)

    def _new_state(self, p):
        return {
            "v": np.zeros_like(p),
            "mg": np.zeros_like(p) if self.centered else None,
            "mom": np.zeros_like(p) if self.momentum else None,
            "tmp": np.empty_like(p),
        }

    def _update(self, p, g, s):
        dt = p.dtype.type
        v, tmp = s["v"], s["tmp"]
        v *= dt(self.rho)
        np.multiply(g, g, out=tmp)
        tmp *= dt(1 - self.rho)
        v += tmp
        if self.centered:
            mg = s["mg"]
            mg *= dt(self.rho)
            mg += dt(1 - self.rho) * g
            np.multiply(mg, mg, out=tmp)
            np.subtract(v, tmp, out=tmp)
        else:
            tmp[...] = v
        tmp += dt(self.epsilon)
        np.sqrt(tmp, out=tmp)
        np.divide(g, tmp, out=tmp)
        tmp *= dt(self.learning_rate)
        if self.momentum:
            mom = s["mom"]
            mom *= dt(self.momentum)
            mom += tmp
            p -= mom
        else:
            p -= tmp

    def get_config(self):
        return {"learning_rate": self.learning_rate, "rho": self.rho,
                "momentum": self.momentum, "epsilon": self.epsilon, "centered": self.centered}


_CLASSES = {"SGD": SGD, "Adam": Adam, "RMSprop": RMSprop}
_ALIASES = {"sgd": SGD, "adam": Adam, "rmsprop": RMSprop}


def get(identifier: Any) -> Optimizer:
    """An optimizer from 'sgd', 'adam', 'rmsprop', a config dict or an Optimizer."""
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, str) and identifier.lower() in _ALIASES:
        return _ALIASES[identifier.lower()]()
    if isinstance(identifier, dict) and identifier.get("class_name") in _CLASSES:
        return _CLASSES[identifier["class_name"]](**identifier.get("config", {}))
    raise fail("optimizer", "'sgd', 'adam', 'rmsprop' or a fastconv.optimizers.Optimizer",
               identifier, ValueError if isinstance(identifier, str) else TypeError)


def serialize(opt: Optimizer) -> dict:
    if type(opt).__name__ not in _CLASSES:
        raise ValueError(f"Only built-in optimizers can be saved; received {opt!r}.")
    return {"class_name": type(opt).__name__, "config": opt.get_config()}
