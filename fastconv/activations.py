"""Activation functions, each with its derivative (Keras: ``keras.activations``).

Every activation here is an :class:`Activation` object: calling it computes the
function (``activations.relu(x)``, as in Keras), and ``forward(x) -> (out, cache)`` /
``backward(dout, cache) -> dx`` are the pair a layer uses for backpropagation.

``relu`` runs on :func:`fastconv.ops.relu_forward`, so it uses the active backend.

A plain callable ``f(x)`` is accepted wherever an activation is (``Dense(...,
activation=f)``): it works for prediction, but training needs its derivative, so give
the callable an attribute ``gradient(x, out) -> d out / d x`` (element-wise).
"""

from __future__ import annotations

from typing import Any, Callable, Optional, Tuple

import numpy as np

from . import ops
from ._threads import get_num_threads
from .backends._args import fail

try:  # the compiled row softmax, when the extension is built
    from . import _elementwise as _compiled
except ImportError:  # pragma: no cover - the NumPy code below does the same
    _compiled = None

__all__ = [
    "Activation",
    "linear",
    "step",
    "sigmoid",
    "tanh",
    "relu",
    "leaky_relu",
    "elu",
    "softmax",
    "get",
    "serialize",
]


class Activation:
    """An activation function ``name`` with its forward and backward pass.

    Subclasses define ``forward(x) -> (out, cache)`` and ``backward(dout, cache)``;
    ``x``, ``out``, ``dout`` and ``dx`` all have the same shape and dtype.
    """

    name = "activation"

    def __call__(self, x: Any) -> Any:
        from .graph import KerasTensor

        if isinstance(x, KerasTensor):  # inside a model's graph or a traced call()
            from .operations import ActivationOp

            return ActivationOp(self)(x)
        return self.forward(np.asarray(x))[0]

    def forward(self, x: np.ndarray) -> Tuple[np.ndarray, Any]:
        raise NotImplementedError

    def backward(self, dout: np.ndarray, cache: Any) -> np.ndarray:
        raise NotImplementedError

    def get_config(self) -> dict:
        return {}

    def __repr__(self) -> str:
        return f"<activation {self.name!r}>"


class _Linear(Activation):
    """Identity, ``f(x) = x``."""

    name = "linear"

    def forward(self, x):
        return x, None

    def backward(self, dout, cache):
        return dout


class _Step(Activation):
    """The threshold unit, ``f(x) = 1 if x > 0 else 0``.

    Its derivative is zero almost everywhere (and undefined at 0), so backward returns
    zeros: a network of step units cannot learn by gradient descent, which is the point
    the lecture makes with it.
    """

    name = "step"

    def forward(self, x):
        return (x > 0).astype(x.dtype), x.shape

    def backward(self, dout, cache):
        return np.zeros_like(dout)


class _Sigmoid(Activation):
    """``f(x) = 1 / (1 + exp(-x))``, computed without overflow for large ``|x|``."""

    name = "sigmoid"

    def forward(self, x):
        out = _sigmoid(x)
        return out, out

    def backward(self, dout, out):
        return dout * out * (1 - out)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    # exp of a non-positive number never overflows; both branches share it.
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)


class _Tanh(Activation):
    """``f(x) = tanh(x)``; ``f'(x) = 1 - f(x)**2``."""

    name = "tanh"

    def forward(self, x):
        out = np.tanh(x)
        return out, out

    def backward(self, dout, out):
        return dout * (1 - out * out)


class _ReLU(Activation):
    """``f(x) = max(x, 0)`` on :func:`fastconv.ops.relu_forward` (the active backend)."""

    name = "relu"

    def forward(self, x):
        return ops.relu_forward(x)

    def backward(self, dout, cache):
        return ops.relu_backward(dout, cache)


class LeakyReLUFunction(Activation):
    """``f(x) = x if x > 0 else negative_slope * x`` (Keras default slope 0.2)."""

    name = "leaky_relu"

    def __init__(self, negative_slope: float = 0.2):
        self.negative_slope = float(negative_slope)

    def forward(self, x):
        pos = x > 0
        return np.where(pos, x, x * x.dtype.type(self.negative_slope)), pos

    def backward(self, dout, pos):
        return np.where(pos, dout, dout * dout.dtype.type(self.negative_slope))

    def get_config(self):
        return {"negative_slope": self.negative_slope}


class ELUFunction(Activation):
    """``f(x) = x if x > 0 else alpha * (exp(x) - 1)`` (Keras default alpha 1)."""

    name = "elu"

    def __init__(self, alpha: float = 1.0):
        self.alpha = float(alpha)

    def forward(self, x):
        pos = x > 0
        # expm1 of the clipped input: exact near 0, never overflows for large x.
        neg = x.dtype.type(self.alpha) * np.expm1(np.minimum(x, 0))
        return np.where(pos, x, neg), (pos, neg)

    def backward(self, dout, cache):
        pos, neg = cache
        return np.where(pos, dout, dout * (neg + neg.dtype.type(self.alpha)))

    def get_config(self):
        return {"alpha": self.alpha}


class SoftmaxFunction(Activation):
    """``f(x)_i = exp(x_i) / sum_j exp(x_j)`` along ``axis`` (max subtracted first).

    Backward: ``dx = out * (dout - sum(dout * out, axis))``.
    """

    name = "softmax"

    def __init__(self, axis: int = -1):
        self.axis = int(axis)

    def forward(self, x):
        if _compiled is not None and x.ndim >= 1 and self.axis in (-1, x.ndim - 1) \
                and x.dtype in (np.float32, np.float64) and x.flags.c_contiguous and x.size:
            # One compiled pass over the rows (the NumPy lines below are its reference).
            out = np.empty_like(x)
            k = x.shape[-1]
            _compiled.softmax_rows(x.reshape(-1, k), out.reshape(-1, k), get_num_threads())
            return out, out
        z = x - np.max(x, axis=self.axis, keepdims=True)
        np.exp(z, out=z)
        z /= np.sum(z, axis=self.axis, keepdims=True)
        return z, z

    def backward(self, dout, out):
        s = np.sum(dout * out, axis=self.axis, keepdims=True)
        return out * (dout - s)

    def get_config(self):
        return {"axis": self.axis}


class _Callable(Activation):
    """A user's function ``f(x)``; its derivative is ``f.gradient(x, out)`` if present."""

    def __init__(self, fn: Callable):
        self.fn = fn
        self.name = getattr(fn, "__name__", type(fn).__name__)

    def forward(self, x):
        out = np.asarray(self.fn(x))
        return out, (x, out)

    def backward(self, dout, cache):
        grad = getattr(self.fn, "gradient", None)
        if grad is None:
            raise TypeError(
                f"The activation {self.name!r} is a plain callable without a derivative, so "
                "it cannot be trained through. Give it an attribute `gradient(x, out)` that "
                "returns d out / d x element-wise, or use a built-in activation name."
            )
        x, out = cache
        return dout * grad(x, out)


linear = _Linear()
step = _Step()
sigmoid = _Sigmoid()
tanh = _Tanh()
relu = _ReLU()
leaky_relu = LeakyReLUFunction()
elu = ELUFunction()
softmax = SoftmaxFunction()

_BY_NAME = {
    "linear": linear,
    "step": step,
    "sigmoid": sigmoid,
    "tanh": tanh,
    "relu": relu,
    "leaky_relu": leaky_relu,
    "elu": elu,
    "softmax": softmax,
}


def get(identifier: Any) -> Activation:
    """An :class:`Activation` from a name, ``None`` (linear), an Activation or a callable."""
    if identifier is None:
        return linear
    if isinstance(identifier, Activation):
        return identifier
    if isinstance(identifier, str):
        key = identifier.lower()
        if key in _BY_NAME:
            return _BY_NAME[key]
        raise fail("activation", f"one of {sorted(_BY_NAME)} or a callable", identifier)
    if isinstance(identifier, dict) and identifier.get("name") in _BY_NAME:
        act = _BY_NAME[identifier["name"]]
        config = identifier.get("config") or {}
        return type(act)(**config) if config else act
    if callable(identifier):
        return _Callable(identifier)
    raise fail("activation", f"one of {sorted(_BY_NAME)} or a callable", identifier, TypeError)


def serialize(activation: Optional[Activation]) -> Any:
    """A JSON-able description of a built-in activation (its name, or name and config)."""
    act = get(activation)
    if isinstance(act, _Callable) or act.name not in _BY_NAME:
        raise ValueError(
            f"Only built-in activations can be saved; {act.name!r} is a custom callable. "
            "Save the weights with `save_weights` and rebuild the model in code instead."
        )
    config = act.get_config()
    default = _BY_NAME[act.name].get_config()
    return act.name if config == default else {"name": act.name, "config": config}
