"""Learning-rate schedules (Keras: ``keras.optimizers.schedules``).

A schedule is called with the optimizer's step count (``optimizer.iterations``, the
number of updates made so far, so the first update uses ``schedule(0)``) and returns
the learning rate of that update, by Keras 3's formulas:

- ``ExponentialDecay``: ``lr0 * decay_rate ** (step / decay_steps)`` (the exponent
  floored with ``staircase``).
- ``PiecewiseConstantDecay``: ``values[0]`` up to and including ``boundaries[0]``,
  ``values[i]`` for ``boundaries[i-1] < step <= boundaries[i]``, ``values[-1]`` after.
- ``PolynomialDecay``: ``(lr0 - end) * (1 - s / decay_steps) ** power + end`` with
  ``s = min(step, decay_steps)``; with ``cycle``, ``decay_steps`` grows to the first
  multiple above ``step``.
- ``InverseTimeDecay``: ``lr0 / (1 + decay_rate * step / decay_steps)`` (floored with
  ``staircase``).
- ``CosineDecay``: ``lr0 * ((1 - alpha) * 0.5 * (1 + cos(pi * s / decay_steps)) +
  alpha)``, ``s = min(step, decay_steps)``; with ``warmup_target``, a linear ramp from
  ``lr0`` to ``warmup_target`` over ``warmup_steps`` first, then the cosine from
  ``warmup_target``.
- ``CosineDecayRestarts``: the cosine over periods ``first_decay_steps * t_mul**i``,
  each restart's peak ``m_mul**i`` times the first.

Each has ``get_config``/``from_config``; an optimizer saves its schedule with it.
"""

from __future__ import annotations

import math
from typing import Any, Optional, Sequence

from .backends._args import fail

__all__ = ["LearningRateSchedule", "ExponentialDecay", "PiecewiseConstantDecay",
           "PolynomialDecay", "InverseTimeDecay", "CosineDecay", "CosineDecayRestarts",
           "serialize", "deserialize", "get"]


def _number(name, value, positive=False, allow_none=False):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(
            value) or (positive and value <= 0):
        raise fail(name, "a finite number" + (" > 0" if positive else ""), value)
    return value


def _step(step):
    if isinstance(step, bool):
        raise fail("step", "a number >= 0", step, TypeError)
    step = float(step)
    if not step >= 0:
        raise fail("step", "a number >= 0", step)
    return step


class LearningRateSchedule:
    """Base class: ``schedule(step) -> learning rate``; subclasses define ``__call__``
    and ``get_config``."""

    def __call__(self, step):
        raise NotImplementedError(f"{type(self).__name__} must define __call__(step)")

    def get_config(self) -> dict:
        raise NotImplementedError(f"{type(self).__name__} must define get_config()")

    @classmethod
    def from_config(cls, config: dict):
        return cls(**config)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class _RateDecay(LearningRateSchedule):
    """The arguments ExponentialDecay and InverseTimeDecay share."""

    def __init__(self, initial_learning_rate: float, decay_steps: float, decay_rate: float,
                 staircase: bool = False, name: Optional[str] = None):
        self.initial_learning_rate = _number("initial_learning_rate", initial_learning_rate)
        self.decay_steps = _number("decay_steps", decay_steps, positive=True)
        self.decay_rate = _number("decay_rate", decay_rate)
        self.staircase, self.name = bool(staircase), name or type(self).__name__

    def _progress(self, step):
        p = _step(step) / self.decay_steps
        return math.floor(p) if self.staircase else p

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate,
                "decay_steps": self.decay_steps, "decay_rate": self.decay_rate,
                "staircase": self.staircase, "name": self.name}


class ExponentialDecay(_RateDecay):
    def __call__(self, step):
        return self.initial_learning_rate * self.decay_rate ** self._progress(step)


class PiecewiseConstantDecay(LearningRateSchedule):
    def __init__(self, boundaries: Sequence[float], values: Sequence[float],
                 name: str = "PiecewiseConstant"):
        boundaries, values = list(boundaries), list(values)
        if len(boundaries) != len(values) - 1:
            raise ValueError("The length of boundaries should be 1 less than the length of "
                             f"values. Received: boundaries={boundaries} of length "
                             f"{len(boundaries)}, and values={values} of length "
                             f"{len(values)}.")
        for i, b in enumerate(boundaries):
            _number(f"boundaries[{i}]", b)
        for i, v in enumerate(values):
            _number(f"values[{i}]", v)
        if any(b2 < b1 for b1, b2 in zip(boundaries, boundaries[1:])):
            raise fail("boundaries", "increasing numbers", boundaries)
        self.boundaries, self.values, self.name = boundaries, values, name

    def __call__(self, step):
        step = _step(step)
        for b, v in zip(self.boundaries, self.values):
            if step <= b:
                return v
        return self.values[-1]

    def get_config(self):
        return {"boundaries": self.boundaries, "values": self.values, "name": self.name}


class PolynomialDecay(LearningRateSchedule):
    def __init__(self, initial_learning_rate: float, decay_steps: float,
                 end_learning_rate: float = 0.0001, power: float = 1.0, cycle: bool = False,
                 name: str = "PolynomialDecay"):
        self.initial_learning_rate = _number("initial_learning_rate", initial_learning_rate)
        self.decay_steps = _number("decay_steps", decay_steps, positive=True)
        self.end_learning_rate = _number("end_learning_rate", end_learning_rate)
        self.power = _number("power", power)
        self.cycle, self.name = bool(cycle), name

    def __call__(self, step):
        step = _step(step)
        decay_steps = self.decay_steps
        if self.cycle:
            decay_steps = decay_steps * (1.0 if step == 0 else math.ceil(step / decay_steps))
        else:
            step = min(step, decay_steps)
        p = step / decay_steps
        return ((self.initial_learning_rate - self.end_learning_rate) * (1 - p) ** self.power
                + self.end_learning_rate)

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate,
                "decay_steps": self.decay_steps, "end_learning_rate": self.end_learning_rate,
                "power": self.power, "cycle": self.cycle, "name": self.name}


class InverseTimeDecay(_RateDecay):
    def __call__(self, step):
        return self.initial_learning_rate / (1 + self.decay_rate * self._progress(step))


def _cosine(fraction, alpha):
    return (1 - alpha) * 0.5 * (1.0 + math.cos(math.pi * fraction)) + alpha


class CosineDecay(LearningRateSchedule):
    def __init__(self, initial_learning_rate: float, decay_steps: float, alpha: float = 0.0,
                 name: str = "CosineDecay", warmup_target: Any = None, warmup_steps: float = 0):
        self.initial_learning_rate = _number("initial_learning_rate", initial_learning_rate)
        self.decay_steps = _number("decay_steps", decay_steps, positive=True)
        self.alpha = _number("alpha", alpha)
        self.warmup_target = _number("warmup_target", warmup_target, allow_none=True)
        self.warmup_steps = _number("warmup_steps", warmup_steps)
        if self.warmup_steps < 0:
            raise fail("warmup_steps", "a number >= 0", warmup_steps)
        self.name = name

    def __call__(self, step):
        step = _step(step)
        if self.warmup_target is None:
            s = min(step, self.decay_steps)
            return self.initial_learning_rate * _cosine(s / self.decay_steps, self.alpha)
        s = min(step, self.decay_steps + self.warmup_steps)
        if s < self.warmup_steps:
            delta = self.warmup_target - self.initial_learning_rate
            return delta * (s / self.warmup_steps) + self.initial_learning_rate
        return self.warmup_target * _cosine((s - self.warmup_steps) / self.decay_steps,
                                            self.alpha)

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate,
                "decay_steps": self.decay_steps, "alpha": self.alpha, "name": self.name,
                "warmup_target": self.warmup_target, "warmup_steps": self.warmup_steps}


class CosineDecayRestarts(LearningRateSchedule):
    def __init__(self, initial_learning_rate: float, first_decay_steps: float,
                 t_mul: float = 2.0, m_mul: float = 1.0, alpha: float = 0.0,
                 name: str = "SGDRDecay"):
        self.initial_learning_rate = _number("initial_learning_rate", initial_learning_rate)
        self.first_decay_steps = _number("first_decay_steps", first_decay_steps,
                                         positive=True)
        self.t_mul = _number("t_mul", t_mul, positive=True)
        self.m_mul = _number("m_mul", m_mul)
        self.alpha = _number("alpha", alpha)
        self.name = name

    def __call__(self, step):
        fraction = _step(step) / self.first_decay_steps
        if self.t_mul == 1.0:
            restart = math.floor(fraction)
            fraction -= restart
        else:
            restart = math.floor(math.log(1.0 - fraction * (1.0 - self.t_mul))
                                 / math.log(self.t_mul))
            done = (1.0 - self.t_mul ** restart) / (1.0 - self.t_mul)
            fraction = (fraction - done) / self.t_mul ** restart
        peak = self.m_mul ** restart
        cosine = 0.5 * peak * (1.0 + math.cos(math.pi * fraction))
        return self.initial_learning_rate * ((1 - self.alpha) * cosine + self.alpha)

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate,
                "first_decay_steps": self.first_decay_steps, "t_mul": self.t_mul,
                "m_mul": self.m_mul, "alpha": self.alpha, "name": self.name}


_CLASSES = {c.__name__: c for c in (ExponentialDecay, PiecewiseConstantDecay, PolynomialDecay,
                                     InverseTimeDecay, CosineDecay, CosineDecayRestarts)}


def serialize(schedule: LearningRateSchedule) -> dict:
    """``{"module", "class_name", "config", "registered_name"}``, as Keras writes it."""
    if type(schedule).__name__ not in _CLASSES:
        raise ValueError(f"Only built-in schedules can be saved; received {schedule!r}.")
    return {"module": "keras.optimizers.schedules", "class_name": type(schedule).__name__,
            "config": schedule.get_config(), "registered_name": None}


def deserialize(config: dict) -> LearningRateSchedule:
    """The schedule :func:`serialize` (or Keras) wrote."""
    if not isinstance(config, dict) or config.get("class_name") not in _CLASSES:
        raise fail("config", f"a serialized schedule, one of {sorted(_CLASSES)}", config)
    inner = config.get("config", {})
    if not isinstance(inner, dict):
        raise fail("config['config']", "a dict", inner, TypeError)
    return _CLASSES[config["class_name"]].from_config(inner)


def get(identifier: Any) -> LearningRateSchedule:
    if isinstance(identifier, LearningRateSchedule):
        return identifier
    return deserialize(identifier)
