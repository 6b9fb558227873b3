"""Gradient-descent optimizers (Keras: ``keras.optimizers``), with Keras 3's defaults and
update rules.

``apply(params, grads)`` updates every array of ``params`` in place from the matching
gradient. State (velocities, moments) is allocated once, on the first call, and
updated in place afterwards. One step, as Keras 3 orders it:

1. the learning rate of the step: a float, or a schedule
   (:mod:`fastconv.schedules`) evaluated at ``iterations`` (0 for the first step);
2. the gradients clipped: ``clipnorm`` (each gradient to that L2 norm at most),
   ``global_clipnorm`` (all of them together), or ``clipvalue`` (each element to
   ``[-v, v]``); at most one of the three;
3. weight decay, when ``weight_decay`` is set: ``w -= w * weight_decay * lr``;
4. the update rule, for a weight ``w`` with gradient ``g``:

   - ``SGD``: ``w -= lr * g``; with momentum ``v = momentum * v - lr * g`` then
     ``w += v`` (nesterov: ``w += momentum * v - lr * g``).
   - ``Adam``: ``m += (1 - beta_1) * (g - m)``, ``v += (1 - beta_2) * (g**2 - v)``,
     ``w -= lr * sqrt(1 - beta_2**t) / (1 - beta_1**t) * m / (sqrt(v) + epsilon)``
     (``amsgrad``: the running maximum of ``v`` in the denominator). ``AdamW`` is
     Adam with ``weight_decay=0.004``.
   - ``Nadam``: Adam with Nesterov momentum and the momentum schedule
     ``u_t = beta_1 * (1 - 0.5 * 0.96**t)``.
   - ``Adamax``: ``u = max(beta_2 * u, |g|)``, ``w -= lr * m / ((1 - beta_1**t) * (u +
     epsilon))``.
   - ``Adagrad``: ``a += g**2``, ``w -= lr * g / sqrt(a + epsilon)``.
   - ``Adadelta``: ``a = rho a + (1 - rho) g**2``, ``d = -sqrt(s + eps) / sqrt(a + eps)
     * g``, ``s = rho s + (1 - rho) d**2``, ``w += lr * d``.
   - ``Lion``: ``w -= lr * sign(beta_1 m + (1 - beta_1) g)``, then ``m = beta_2 m +
     (1 - beta_2) g``.
   - ``RMSprop``: ``v = rho * v + (1 - rho) * g**2``, ``w -= lr * g / sqrt(v +
     epsilon)`` (centered: ``v - mean_g**2`` under the root; momentum: accumulate the
     step first).
5. with ``use_ema``, the moving average ``e = m e + (1 - m) w`` (``m =
   ema_momentum``, 0 on the first step), copied into the weights every
   ``ema_overwrite_frequency`` steps and at the end of ``fit``
   (:meth:`Optimizer.finalize_variable_values`).

Each rule above is also a compiled kernel (``fastconv._elementwise``) that updates
every weight array in one call, in the same operation order as the NumPy code here
(so the same bits, for any thread count); the NumPy code runs where the compiled call
does not take the arrays (mixed dtypes, non-contiguous or shared arrays).
"""

from __future__ import annotations

import math
from typing import Any, List, Optional, Sequence

import numpy as np

from . import schedules as _schedules
from ._names import snake_case as _snake
from ._threads import get_num_threads
from .backends._args import fail

try:  # the compiled element-wise kernels, when the extension is built
    from . import _elementwise as _compiled
except ImportError:  # pragma: no cover - the NumPy code below does the same
    _compiled = None

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "Nadam", "Adamax", "Adagrad", "Adadelta",
           "Lion", "RMSprop", "get", "serialize", "deserialize", "schedules"]

schedules = _schedules


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


_BASE_DEFAULTS = {"weight_decay": None, "clipnorm": None, "clipvalue": None,
                  "global_clipnorm": None, "use_ema": False, "ema_momentum": 0.99,
                  "ema_overwrite_frequency": None, "loss_scale_factor": None,
                  "gradient_accumulation_steps": None}


class Optimizer:
    """Base class, with Keras 3's common arguments (see the module docstring for what
    each does in a step).

    ``learning_rate`` is a float or a :class:`fastconv.schedules.LearningRateSchedule`;
    reading ``optimizer.learning_rate`` gives the rate of the next step. Callbacks may
    assign a float to it, unless the optimizer was created with a schedule (TypeError,
    as in Keras). ``loss_scale_factor`` and ``gradient_accumulation_steps`` are taken
    for Keras's signature and must be None.
    """

    def __init__(self, learning_rate: Any, weight_decay: Optional[float] = None,
                 clipnorm: Optional[float] = None, clipvalue: Optional[float] = None,
                 global_clipnorm: Optional[float] = None, use_ema: bool = False,
                 ema_momentum: float = 0.99, ema_overwrite_frequency: Optional[int] = None,
                 loss_scale_factor: Any = None, gradient_accumulation_steps: Any = None,
                 name: Optional[str] = None, **kwargs: Any):
        if kwargs:
            raise TypeError(f"{type(self).__name__} got unexpected keyword argument(s) "
                            f"{sorted(kwargs)}")
        if isinstance(learning_rate, _schedules.LearningRateSchedule):
            self._learning_rate: Any = learning_rate
        elif isinstance(learning_rate, dict):  # a serialized schedule (a saved config)
            self._learning_rate = _schedules.deserialize(learning_rate)
        else:
            self._learning_rate = _positive("learning_rate", learning_rate)
        self.weight_decay = None if weight_decay is None else _positive(
            "weight_decay", weight_decay, allow_zero=True)
        clips = {"clipnorm": clipnorm, "clipvalue": clipvalue,
                 "global_clipnorm": global_clipnorm}
        given = [k for k, v in clips.items() if v is not None]
        if len(given) > 1:
            raise ValueError("Only one of `clipnorm`, `clipvalue` and `global_clipnorm` can "
                             f"be set. Received: {', '.join(f'{k}={clips[k]}' for k in given)}")
        self.clipnorm, self.clipvalue, self.global_clipnorm = (
            None if v is None else _positive(k, v) for k, v in clips.items())
        self.use_ema = bool(use_ema)
        if not 0 <= _positive("ema_momentum", ema_momentum, allow_zero=True) <= 1:
            raise fail("ema_momentum", "a number in [0, 1]", ema_momentum)
        self.ema_momentum = float(ema_momentum)
        if ema_overwrite_frequency is not None and (
                isinstance(ema_overwrite_frequency, bool)
                or not isinstance(ema_overwrite_frequency, (int, np.integer))
                or ema_overwrite_frequency < 1):
            raise fail("ema_overwrite_frequency", "a positive int or None",
                       ema_overwrite_frequency)
        self.ema_overwrite_frequency = ema_overwrite_frequency
        for key, value in (("loss_scale_factor", loss_scale_factor),
                           ("gradient_accumulation_steps", gradient_accumulation_steps)):
            if value is not None:
                raise NotImplementedError(f"fastconv's optimizers do not implement {key}")
        self.name = name or _snake(type(self).__name__)
        self.iterations = 0
        self._state: List[Any] = []
        self._ema: Optional[List[np.ndarray]] = None

    # -- the learning rate ------------------------------------------------------------
    @property
    def learning_rate(self) -> float:
        """The learning rate of the next step (a schedule evaluated at ``iterations``)."""
        lr = self._learning_rate
        if isinstance(lr, _schedules.LearningRateSchedule):
            return float(lr(self.iterations))
        return lr

    @learning_rate.setter
    def learning_rate(self, value: Any) -> None:
        if isinstance(value, _schedules.LearningRateSchedule):
            self._learning_rate = value
            return
        if isinstance(self._learning_rate, _schedules.LearningRateSchedule):
            raise TypeError("This optimizer was created with a `LearningRateSchedule` object "
                            "as its `learning_rate` constructor argument, hence its learning "
                            "rate is not settable. If you need the learning rate to be "
                            "settable, you should instantiate the optimizer with a float "
                            "`learning_rate` argument.")
        self._learning_rate = _positive("learning_rate", value, allow_zero=True)

    # -- one step ---------------------------------------------------------------------
    def apply(self, params: Sequence[np.ndarray], grads: Sequence[np.ndarray]) -> None:
        """Update each ``params[i]`` in place from ``grads[i]`` (same shape and dtype)."""
        if not self._state or len(self._state) != len(params):
            self._state = [self._new_state(p) for p in params]
        lr = self.learning_rate
        grads = self._clip(grads)
        self._update_all(params, grads, lr)
        if self.use_ema:
            self._update_ema(params)
        self.iterations += 1

    def _update_all(self, params, grads, lr) -> None:
        self._begin_step(lr)
        if _compiled is not None and len(params) and self._compiled_step(params, grads, lr):
            return
        if self.weight_decay:
            for p in params:
                p -= p * p.dtype.type(self.weight_decay) * p.dtype.type(lr)
        for p, g, s in zip(params, grads, self._state):
            self._update(p, g, s, lr)

    def _compiled_step(self, params, grads, lr) -> bool:
        """Weight decay and the update of every array in one compiled call; False
        (nothing changed) where the call does not take these arrays."""
        dt = params[0].dtype.type
        rule = self._rule(lr, dt)
        if rule is None:
            return False
        name, slots, coeffs, extra = rule
        decay = bool(self.weight_decay)
        c = [float(x) for x in coeffs] + [0.0] * (6 - len(coeffs))
        c += [float(dt(self.weight_decay)), float(dt(lr))] if decay else [0.0, 0.0]
        c += [float(x) for x in extra]
        try:
            _compiled.optimizer_update_many(
                name, params if type(params) is list else list(params),
                grads if type(grads) is list else list(grads), slots, tuple(c), decay,
                get_num_threads())
        except (TypeError, ValueError):  # checked before any array was changed
            return False
        return True

    def _begin_step(self, lr) -> None:
        """Compute the constants of this step that every array's update shares."""

    def _rule(self, lr, dt):
        """``(name, slots, coefficients, extra)`` of the compiled rule that does what
        :meth:`_update` does (see ``fastconv._elementwise.optimizer_update_many``), the
        coefficients rounded to ``dt`` as the NumPy code rounds them; None for none."""
        return None

    def _slots(self, *indices):
        """The lists, over the weight arrays, of the state entries ``indices``."""
        return [[s[i] for s in self._state] for i in indices]

    def _clip(self, grads):
        if self.clipnorm:
            return [_clip_by_norm(g, self.clipnorm) for g in grads]
        if self.global_clipnorm:
            norm = math.sqrt(sum(float(np.vdot(g, g)) for g in grads))
            scale = self.global_clipnorm * min(1.0 / norm if norm else math.inf,
                                               1.0 / self.global_clipnorm)
            if not math.isfinite(norm):
                scale = math.nan  # as Keras: an Inf or NaN norm makes every step NaN
            return [g * g.dtype.type(scale) for g in grads]
        if self.clipvalue:
            return [np.clip(g, -self.clipvalue, self.clipvalue) for g in grads]
        return grads

    def _update_ema(self, params) -> None:
        if self._ema is None or len(self._ema) != len(params):
            self._ema = [p.copy() for p in params]
        momentum = self.ema_momentum if self.iterations != 0 else 0.0
        for e, p in zip(self._ema, params):
            e *= e.dtype.type(momentum)
            e += e.dtype.type(1 - momentum) * p
        f = self.ema_overwrite_frequency
        if f and (self.iterations + 1) % f == 0:
            self._overwrite_with_ema(params)

    def _overwrite_with_ema(self, params) -> None:
        for e, p in zip(self._ema or [], params):
            p[...] = e

    def finalize_variable_values(self, params: Sequence[np.ndarray]) -> None:
        """At the end of ``fit``: with ``use_ema``, the weights take their moving averages."""
        if self.use_ema and self._ema is not None:
            self._overwrite_with_ema(params)

    def _new_state(self, p):
        return None

    def _update(self, p, g, state, lr):
        raise NotImplementedError

    # -- Keras's optimizer variables --------------------------------------------------
    def _keras_slots(self) -> List[tuple]:
        """The state entries Keras 3 keeps as optimizer variables, in its order: one
        tuple of keys per group; a group's entries are interleaved over the weight
        arrays (Adam: kernel momentum, kernel velocity, bias momentum, ...). The key
        None is the state itself."""
        return []

    def _keras_scalars(self) -> List[str]:
        """Attributes Keras keeps as scalar variables after the slots (Nadam's)."""
        return []

    def keras_variables(self, params: Sequence[np.ndarray]) -> List[np.ndarray]:
        """This optimizer's state as Keras 3's ``optimizer.variables`` for the weight
        arrays ``params`` (the model's trainable weights in Keras's order): the
        iteration count, the learning rate (unless it is a schedule), with
        ``use_ema`` the moving averages, then the rule's slots (zeros before the
        first step) and scalars. This is what ``optimizer/vars/`` of a ``.keras`` file
        holds."""
        state = (self._state if len(self._state) == len(params)
                 else [self._new_state(p) for p in params])
        out = [np.asarray(self.iterations, np.int64)]
        if not isinstance(self._learning_rate, _schedules.LearningRateSchedule):
            out.append(np.asarray(self._learning_rate, np.float32))
        if self.use_ema:
            out += (self._ema if self._ema is not None and len(self._ema) == len(params)
                    else [np.zeros_like(p) for p in params])
        for group in self._keras_slots():
            out += [s if key is None else s[key] for s in state for key in group]
        out += [np.asarray(getattr(self, name), np.float32) for name in self._keras_scalars()]
        return out

    def set_keras_variables(self, values: Sequence[np.ndarray],
                            params: Sequence[np.ndarray]) -> None:
        """Take the state :meth:`keras_variables` describes from ``values`` (read from
        a Keras file). ValueError, changing nothing, if their number or shapes are not
        those of this optimizer on ``params``."""
        saved = self._state, self._ema
        self._state = [self._new_state(p) for p in params]
        self._ema = [np.zeros_like(p) for p in params] if self.use_ema else None
        try:
            targets = self.keras_variables(params)  # views of the new state arrays
            if len(values) != len(targets):
                raise ValueError(f"optimizer {self.name!r} has {len(targets)} variables "
                                 f"for this model; the file holds {len(values)}")
            for i, (t, v) in enumerate(zip(targets, values)):
                if np.shape(v) != t.shape:
                    raise ValueError(f"optimizer variable {i} has shape {np.shape(v)}; "
                                     f"{self.name!r} expects {t.shape}")
        except ValueError:
            self._state, self._ema = saved
            raise
        for t, v in zip(targets, values):
            t[...] = v
        self.iterations = int(targets[0])
        if not isinstance(self._learning_rate, _schedules.LearningRateSchedule):
            self._learning_rate = float(targets[1])
        names = self._keras_scalars()
        for name, v in zip(names, targets[len(targets) - len(names):]):
            setattr(self, name, float(v))

    # -- config and state -------------------------------------------------------------
    def _base_config(self) -> dict:
        lr = self._learning_rate
        return {"name": self.name,
                "learning_rate": (_schedules.serialize(lr)
                                  if isinstance(lr, _schedules.LearningRateSchedule) else lr),
                "weight_decay": self.weight_decay, "clipnorm": self.clipnorm,
                "global_clipnorm": self.global_clipnorm, "clipvalue": self.clipvalue,
                "use_ema": self.use_ema, "ema_momentum": self.ema_momentum,
                "ema_overwrite_frequency": self.ema_overwrite_frequency,
                "loss_scale_factor": None, "gradient_accumulation_steps": None}

    def get_config(self) -> dict:
        """Keras's config: the common arguments, then the optimizer's own."""
        return self._base_config()

    @classmethod
    def from_config(cls, config: dict):
        return cls(**config)

    def get_state(self) -> dict:
        """A copy of what the next steps depend on: ``{"iterations", "slots", "extra"}``.

        ``slots`` holds, per weight, that weight's state (None, an array, or a tuple or
        dict of arrays: moments, velocities) copied, and ``extra`` the optimizer's
        other state (the EMA of the weights, Nadam's momentum product), so that
        ``set_state`` of it later resumes exactly where this call stood
        (BackupAndRestore uses it).
        """
        return {"iterations": int(self.iterations),
                "slots": [_copy_slot(s) for s in self._state],
                "extra": {"ema": None if self._ema is None else [e.copy() for e in self._ema],
                          **self._extra_state()}}

    def set_state(self, state: dict) -> None:
        """Restore what :meth:`get_state` returned (on an optimizer of the same config)."""
        if not isinstance(state, dict) or not {"iterations", "slots"} <= set(state) or not \
                set(state) <= {"iterations", "slots", "extra"}:
            raise fail("state", "a dict with keys 'iterations', 'slots' (and 'extra')", state)
        it = state["iterations"]
        if isinstance(it, bool) or not isinstance(it, (int, np.integer)) or it < 0:
            raise fail("state['iterations']", "an int >= 0", it)
        self.iterations = int(it)
        self._state = [_copy_slot(s) for s in state["slots"]]
        extra = dict(state.get("extra") or {})
        ema = extra.pop("ema", None)
        self._ema = None if ema is None else [np.array(e, copy=True) for e in ema]
        self._set_extra_state(extra)

    def _extra_state(self) -> dict:
        return {}

    def _set_extra_state(self, extra: dict) -> None:
        """Restore :meth:`_extra_state`."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(learning_rate={self._learning_rate!r})"


def _clip_by_norm(g, clipnorm):
    # Keras: g * clipnorm / max(||g||, clipnorm), with a zero gradient left alone.
    norm = math.sqrt(float(np.vdot(g, g)))
    return g * g.dtype.type(clipnorm) / g.dtype.type(max(norm, clipnorm))


def _adam_args(opt, beta_1, beta_2, epsilon) -> None:
    """beta_1, beta_2 and epsilon, checked, on ``opt`` (the Adam family)."""
    opt.beta_1, opt.beta_2 = _beta("beta_1", beta_1), _beta("beta_2", beta_2)
    opt.epsilon = _positive("epsilon", epsilon, allow_zero=True)


def _adam_config(opt) -> dict:
    return {**opt._base_config(), "beta_1": opt.beta_1, "beta_2": opt.beta_2,
            "epsilon": opt.epsilon}


def _beta(name, value):
    if not 0 <= _positive(name, value, allow_zero=True) < 1:
        raise fail(name, "a number in [0, 1)", value)
    return float(value)


class SGD(Optimizer):
    """Stochastic gradient descent, optionally with (Nesterov) momentum."""

    def __init__(self, learning_rate: Any = 0.01, momentum: float = 0.0,
                 nesterov: bool = False, **kwargs: Any):
        super().__init__(learning_rate, **kwargs)
        self.momentum = _positive("momentum", momentum, allow_zero=True)
        if self.momentum >= 1:
            raise fail("momentum", "a number in [0, 1)", momentum)
        self.nesterov = bool(nesterov)

    def _new_state(self, p):
        return np.zeros_like(p) if self.momentum else None

    def _rule(self, lr, dt):
        if not self.momentum:
            return "sgd", [], (dt(lr),), ()
        return ("nesterov" if self.nesterov else "momentum", [list(self._state)],
                (dt(lr), dt(self.momentum)), ())

    def _update(self, p, g, v, lr):
        lr = p.dtype.type(lr)
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

    def _keras_slots(self):
        return [(None,)] if self.momentum else []

    def get_config(self):
        return {**self._base_config(), "momentum": self.momentum, "nesterov": self.nesterov}


class Adam(Optimizer):
    """Adam (Kingma and Ba), with Keras's defaults and epsilon outside the root."""

    def __init__(self, learning_rate: Any = 0.001, beta_1: float = 0.9,
                 beta_2: float = 0.999, epsilon: float = 1e-7, amsgrad: bool = False,
                 **kwargs: Any):
        super().__init__(learning_rate, **kwargs)
        _adam_args(self, beta_1, beta_2, epsilon)
        self.amsgrad = bool(amsgrad)

    def _new_state(self, p):
        if self.amsgrad:
            return np.zeros_like(p), np.zeros_like(p), np.empty_like(p), np.zeros_like(p)
        return np.zeros_like(p), np.zeros_like(p), np.empty_like(p)

    def _begin_step(self, lr):
        t = self.iterations + 1
        self._alpha = lr * math.sqrt(1 - self.beta_2 ** t) / (1 - self.beta_1 ** t)

    def _rule(self, lr, dt):
        coeffs = (dt(1 - self.beta_1), dt(1 - self.beta_2), dt(self.epsilon), dt(self._alpha))
        if self.amsgrad:
            return "amsgrad", self._slots(0, 1, 3), coeffs, ()
        return "adam", self._slots(0, 1), coeffs, ()

    def _update(self, p, g, state, lr):
        m, v, tmp = state[:3]
        dt = p.dtype.type
        np.subtract(g, m, out=tmp)
        tmp *= dt(1 - self.beta_1)
        m += tmp
        np.multiply(g, g, out=tmp)
        tmp -= v
        tmp *= dt(1 - self.beta_2)
        v += tmp
        if self.amsgrad:
            v_hat = state[3]
            np.maximum(v_hat, v, out=v_hat)
            np.sqrt(v_hat, out=tmp)
        else:
            np.sqrt(v, out=tmp)
        tmp += dt(self.epsilon)
        np.divide(m, tmp, out=tmp)
        tmp *= dt(self._alpha)
        p -= tmp

    def _keras_slots(self):
        return [(0, 1)] + ([(3,)] if self.amsgrad else [])

    def get_config(self):
        return {**_adam_config(self), "amsgrad": self.amsgrad}


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov and Hutter): ``weight_decay=0.004``."""

    def __init__(self, learning_rate: Any = 0.001, weight_decay: float = 0.004,
                 beta_1: float = 0.9, beta_2: float = 0.999, epsilon: float = 1e-7,
                 amsgrad: bool = False, **kwargs: Any):
        if weight_decay is None:
            raise ValueError("Argument `weight_decay` must be a float. Received: "
                             "weight_decay=None")
        super().__init__(learning_rate, beta_1, beta_2, epsilon, amsgrad,
                         weight_decay=weight_decay, **kwargs)


class Nadam(Optimizer):
    """Adam with Nesterov momentum (Dozat), with Keras's momentum schedule."""

    def __init__(self, learning_rate: Any = 0.001, beta_1: float = 0.9,
                 beta_2: float = 0.999, epsilon: float = 1e-7, **kwargs: Any):
        super().__init__(learning_rate, **kwargs)
        _adam_args(self, beta_1, beta_2, epsilon)
        self._u_product = 1.0

    def _new_state(self, p):
        return np.zeros_like(p), np.zeros_like(p)

    def _begin_step(self, lr):
        t = self.iterations + 1
        b1 = self.beta_1
        self._u_t = b1 * (1.0 - 0.5 * 0.96 ** t)
        self._u_t1 = b1 * (1.0 - 0.5 * 0.96 ** (t + 1))
        self._u_product *= self._u_t            # the product of u_1 .. u_t

    def _coeffs(self, lr, dt):
        u_prod, u_prod_1 = self._u_product, self._u_product * self._u_t1
        t = self.iterations + 1
        return ((dt(1 - self.beta_1), dt(1 - self.beta_2), dt(self._u_t1), dt(1 - self._u_t),
                 dt(1 - u_prod_1), dt(1 - u_prod)),
                (dt(1 - self.beta_2 ** t), dt(lr), dt(self.epsilon)))

    def _rule(self, lr, dt):
        return ("nadam", self._slots(0, 1)) + self._coeffs(lr, dt)

    def _update(self, p, g, state, lr):
        m, v = state
        (c1, c2, u_t1, one_minus_u_t, d1, d0), (bc2, lr, eps) = self._coeffs(lr, p.dtype.type)
        m += (g - m) * c1
        v += (g * g - v) * c2
        m_hat = u_t1 * m / d1 + one_minus_u_t * g / d0
        v_hat = v / bc2
        p -= m_hat * lr / (np.sqrt(v_hat) + eps)

    def _extra_state(self):
        return {"u_product": self._u_product}

    def _set_extra_state(self, extra):
        self._u_product = float(extra.get("u_product", 1.0))

    def _keras_slots(self):
        return [(0, 1)]

    def _keras_scalars(self):
        return ["_u_product"]

    def get_config(self):
        return _adam_config(self)


class Adamax(Optimizer):
    """Adam on the infinity norm (Kingma and Ba, section 7)."""

    def __init__(self, learning_rate: Any = 0.001, beta_1: float = 0.9,
                 beta_2: float = 0.999, epsilon: float = 1e-7, **kwargs: Any):
        super().__init__(learning_rate, **kwargs)
        _adam_args(self, beta_1, beta_2, epsilon)

    def _new_state(self, p):
        return np.zeros_like(p), np.zeros_like(p)

    def _rule(self, lr, dt):
        return ("adamax", self._slots(0, 1), (dt(1 - self.beta_1), dt(self.beta_2), dt(lr),
                dt(1 - self.beta_1 ** (self.iterations + 1)), dt(self.epsilon)), ())

    def _update(self, p, g, state, lr):
        m, u = state
        dt = p.dtype.type
        m += (g - m) * dt(1 - self.beta_1)
        np.maximum(dt(self.beta_2) * u, np.abs(g), out=u)
        p -= dt(lr) * m / (dt(1 - self.beta_1 ** (self.iterations + 1)) * (u + dt(self.epsilon)))

    def _keras_slots(self):
        return [(0, 1)]

    def get_config(self):
        return _adam_config(self)


class Adagrad(Optimizer):
    """Adagrad (Duchi et al.): per-weight rates from the sum of squared gradients."""

    def __init__(self, learning_rate: Any = 0.001, initial_accumulator_value: float = 0.1,
                 epsilon: float = 1e-7, **kwargs: Any):
        super().__init__(learning_rate, **kwargs)
        self.initial_accumulator_value = _positive(
            "initial_accumulator_value", initial_accumulator_value, allow_zero=True)
        self.epsilon = _positive("epsilon", epsilon, allow_zero=True)

    def _new_state(self, p):
        return np.full_like(p, self.initial_accumulator_value)

    def _rule(self, lr, dt):
        return "adagrad", [list(self._state)], (dt(lr), dt(self.epsilon)), ()

    def _update(self, p, g, acc, lr):
        dt = p.dtype.type
        acc += g * g
        p -= dt(lr) * g / np.sqrt(acc + dt(self.epsilon))

    def _keras_slots(self):
        return [(None,)]

    def get_config(self):
        return {**self._base_config(),
                "initial_accumulator_value": self.initial_accumulator_value,
                "epsilon": self.epsilon}


class Adadelta(Optimizer):
    """Adadelta (Zeiler), with Keras's defaults (learning_rate 0.001, rho 0.95)."""

    def __init__(self, learning_rate: Any = 0.001, rho: float = 0.95, epsilon: float = 1e-7,
                 **kwargs: Any):
        super().__init__(learning_rate, **kwargs)
        self.rho = _beta("rho", rho)
        self.epsilon = _positive("epsilon", epsilon, allow_zero=True)

    def _new_state(self, p):
        return np.zeros_like(p), np.zeros_like(p)

    def _rule(self, lr, dt):
        rho = dt(self.rho)
        return "adadelta", self._slots(0, 1), (rho, 1 - rho, dt(self.epsilon), dt(lr)), ()

    def _update(self, p, g, state, lr):
        acc_grad, acc_delta = state
        dt = p.dtype.type
        rho, eps = dt(self.rho), dt(self.epsilon)
        acc_grad[...] = rho * acc_grad + (1 - rho) * (g * g)
        delta = -(np.sqrt(acc_delta + eps) * g) / np.sqrt(acc_grad + eps)
        acc_delta[...] = rho * acc_delta + (1 - rho) * (delta * delta)
        p += dt(lr) * delta

    def _keras_slots(self):
        return [(0, 1)]

    def get_config(self):
        return {**self._base_config(), "rho": self.rho, "epsilon": self.epsilon}


class Lion(Optimizer):
    """Lion (Chen et al.): the sign of an interpolated momentum."""

    def __init__(self, learning_rate: Any = 0.001, beta_1: float = 0.9, beta_2: float = 0.99,
                 **kwargs: Any):
        super().__init__(learning_rate, **kwargs)
        if not 0 < _positive("beta_1", beta_1, allow_zero=True) <= 1:
            raise fail("beta_1", "a number in (0, 1]", beta_1)
        self.beta_1, self.beta_2 = float(beta_1), _beta("beta_2", beta_2)

    def _new_state(self, p):
        return np.zeros_like(p)

    def _rule(self, lr, dt):
        return ("lion", [list(self._state)], (dt(lr), dt(self.beta_1), dt(1 - self.beta_1),
                                               dt(self.beta_2), dt(1 - self.beta_2)), ())

    def _update(self, p, g, m, lr):
        dt = p.dtype.type
        p -= dt(lr) * np.sign(m * dt(self.beta_1) + g * dt(1 - self.beta_1))
        m[...] = m * dt(self.beta_2) + g * dt(1 - self.beta_2)

    def _keras_slots(self):
        return [(None,)]

    def get_config(self):
        return {**self._base_config(), "beta_1": self.beta_1, "beta_2": self.beta_2}


class RMSprop(Optimizer):
    """RMSprop (Hinton), with Keras's defaults (rho 0.9, epsilon 1e-7 inside the root)."""

    def __init__(self, learning_rate: Any = 0.001, rho: float = 0.9, momentum: float = 0.0,
                 epsilon: float = 1e-7, centered: bool = False, **kwargs: Any):
        super().__init__(learning_rate, **kwargs)
        self.rho = _beta("rho", rho)
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

    def _rule(self, lr, dt):
        slots = [[s[key] for s in self._state] if use else None
                 for key, use in (("v", True), ("mg", self.centered), ("mom", self.momentum))]
        return ("rmsprop", slots, (dt(self.rho), dt(1 - self.rho), dt(self.epsilon), dt(lr),
                                   dt(self.momentum)), ())

    def _update(self, p, g, s, lr):
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
        tmp *= dt(lr)
        if self.momentum:
            mom = s["mom"]
            mom *= dt(self.momentum)
            mom += tmp
            p -= mom
        else:
            p -= tmp

    def _keras_slots(self):
        return ([("v",)] + ([("mom",)] if self.momentum else [])
                + ([("mg",)] if self.centered else []))

    def get_config(self):
        return {**self._base_config(), "rho": self.rho, "momentum": self.momentum,
                "epsilon": self.epsilon, "centered": self.centered}


_CLASSES = {c.__name__: c for c in (SGD, Adam, AdamW, Nadam, Adamax, Adagrad, Adadelta, Lion,
                                     RMSprop)}
_ALIASES = {name.lower(): c for name, c in _CLASSES.items()}


def get(identifier: Any) -> Optimizer:
    """An optimizer from a name ('sgd', 'adam', 'adamw', 'nadam', 'adamax', 'adagrad',
    'adadelta', 'lion', 'rmsprop'), a config dict or an Optimizer."""
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, str) and identifier.lower() in _ALIASES:
        return _ALIASES[identifier.lower()]()
    if isinstance(identifier, dict) and identifier.get("class_name") in _CLASSES:
        config = identifier.get("config", {})
        if not isinstance(config, dict):
            raise fail("optimizer['config']", "a dict", config, TypeError)
        return _CLASSES[identifier["class_name"]].from_config(config)
    raise fail("optimizer", f"one of {sorted(_ALIASES)} or a fastconv.optimizers.Optimizer",
               identifier, ValueError if isinstance(identifier, (str, dict)) else TypeError)


def serialize(opt: Optimizer) -> dict:
    if type(opt).__name__ not in _CLASSES:
        raise ValueError(f"Only built-in optimizers can be saved; received {opt!r}.")
    return {"class_name": type(opt).__name__, "config": opt.get_config()}


def deserialize(config: dict) -> Optimizer:
    """The optimizer :func:`serialize` wrote."""
    if not isinstance(config, dict):
        raise fail("config", "a dict", config, TypeError)
    return get(config)
