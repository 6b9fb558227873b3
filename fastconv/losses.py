"""Losses, averaged over the batch (Keras: ``keras.losses``).

Every loss answers ``loss(y_true, y_pred) -> float`` as in Keras, and
``value_and_grad(y_true, y_pred) -> (value, d value / d y_pred)`` for training.

Cross-entropies are computed from logits with log-softmax / log-sigmoid, which never
overflows. When a model ends in softmax (sigmoid) and is trained with a categorical
(binary) cross-entropy on probabilities, :class:`fastconv.models.Sequential` fuses the
two and backpropagates ``(softmax(z) - y) / M`` straight to the logits ``z``; the
probability form, with Keras's clipping to ``[eps, 1 - eps]``, is used only for a
model whose last activation is something else.

Shapes: ``y_pred`` is ``(N, ..., K)``; ``M = y_pred.size / K`` samples (the batch, or
batch times positions) share the average. Sparse targets are integer class indices of
shape ``(N, ...)`` or ``(N, ..., 1)``.

The categorical cross-entropies from logits run as one compiled pass
(``_elementwise.softmax_xent``) on float32/float64 C-contiguous logits; the NumPy code
here is its reference and the path for anything else.
"""

from __future__ import annotations

from typing import Any, Optional, Tuple

import numpy as np

from .backends._args import fail

try:  # the compiled softmax cross-entropy, when the extension is built
    from . import _elementwise as _compiled
except ImportError:  # pragma: no cover - the NumPy code below does the same
    _compiled = None

__all__ = [
    "Loss", "CategoricalCrossentropy", "SparseCategoricalCrossentropy", "BinaryCrossentropy",
    "MeanSquaredError", "MeanAbsoluteError", "categorical_crossentropy",
    "sparse_categorical_crossentropy", "binary_crossentropy", "mean_squared_error",
    "get", "serialize",
]

EPSILON = 1e-7


def _compiled_xent(logits, labels, targets):
    """``(value, grad)`` from the compiled kernel, or None where it does not apply."""
    given = labels if targets is None else targets
    if _compiled is None or type(logits) is not np.ndarray \
            or type(given) is not np.ndarray \
            or logits.dtype not in (np.float32, np.float64) \
            or not logits.flags.c_contiguous or logits.size == 0:
        return None  # (lists and the like take the NumPy path, which accepts them)
    k = logits.shape[-1]
    z = logits.reshape(-1, k)
    if labels is not None:
        if labels.dtype != np.intp:
            return None
        labels = np.ascontiguousarray(labels).reshape(-1)
    else:
        if targets.shape != logits.shape:
            return None
        targets = np.ascontiguousarray(targets, dtype=logits.dtype).reshape(-1, k)
    grad = np.empty_like(logits)
    total = _compiled.softmax_xent(z, labels, targets, grad.reshape(-1, k), len(z))
    return total / len(z), grad


def _log_softmax(z: np.ndarray) -> np.ndarray:
    # ufunc reductions directly: np.max/np.sum add a Python layer on every call
    z = z - np.maximum.reduce(z, axis=-1, keepdims=True)
    return z - np.log(np.add.reduce(np.exp(z), axis=-1, keepdims=True))


def _sigmoid(z):
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1 / (1 + e), e / (1 + e))


class Loss:
    """Base class. ``fused_activation`` names the output activation this loss fuses with."""

    name = "loss"
    fused_activation: Optional[str] = None
    from_logits = False

    def __call__(self, y_true, y_pred) -> float:
        y_pred = np.asarray(y_pred)
        if y_pred.dtype.kind != "f":
            y_pred = y_pred.astype(np.float32)
        return self.value_and_grad(self.prepare_targets(y_true, y_pred.shape), y_pred)[0]

    def prepare_targets(self, y: Any, output_shape: Tuple) -> np.ndarray:
        """Check targets against the model's output shape; return them as arrays.

        Raises a ValueError saying what is wrong (wrong number of classes, one-hot labels
        given to a sparse loss, ...) before any training happens.
        """
        y = np.asarray(y)
        if y.dtype.kind not in "fiub":
            raise fail("y", "an array of numbers", y, TypeError)
        if y.shape[1:] != tuple(output_shape[1:]):
            raise ValueError(
                f"The targets `y` must have the model's output shape {_fmt(output_shape)} "
                f"for loss {self.name!r}. Received: y with shape {y.shape}"
            )
        return y

    def value_and_grad(self, y_true, y_pred):
        raise NotImplementedError

    def logits_value_and_grad(self, y_true, logits):
        """Loss and gradient with respect to the logits, for the fused output layer."""
        raise NotImplementedError

    def get_config(self) -> dict:
        return {"from_logits": self.from_logits} if self.fused_activation else {}


def _fmt(shape):
    return "(" + ", ".join("None" if s is None else str(s) for s in shape) + ")"


class CategoricalCrossentropy(Loss):
    """``-sum(y * log p)`` over classes, averaged over samples; one-hot (or soft) ``y``."""

    name = "categorical_crossentropy"
    fused_activation = "softmax"

    def __init__(self, from_logits: bool = False):
        self.from_logits = bool(from_logits)

    def prepare_targets(self, y, output_shape):
        y = np.asarray(y)
        k = output_shape[-1]
        if y.ndim == len(output_shape) - 1 or (y.shape[-1:] == (1,) and k != 1):
            raise ValueError(
                f"Loss {self.name!r} needs one-hot targets of shape {_fmt(output_shape)}, but "
                f"`y` has shape {y.shape} and looks like integer class labels. Use "
                "loss='sparse_categorical_crossentropy', or convert the labels with "
                f"fastconv.utils.to_categorical(y, {k})."
            )
        if y.ndim == len(output_shape) and y.shape[-1] != k:
            raise ValueError(
                f"The targets `y` have {y.shape[-1]} classes (y.shape={y.shape}) but the "
                f"model's last layer outputs {k} (output shape {_fmt(output_shape)}). Make "
                "the last layer's units equal to the number of classes."
            )
        return super().prepare_targets(y, output_shape)

    def value_and_grad(self, y_true, y_pred):
        if self.from_logits:
            return self.logits_value_and_grad(y_true, y_pred)
        m = y_pred.size // y_pred.shape[-1]
        p = y_pred / np.sum(y_pred, axis=-1, keepdims=True)
        p = np.clip(p, EPSILON, 1 - EPSILON)
        value = -float(np.sum(y_true * np.log(p))) / m
        # The normalisation's own derivative is dropped: it vanishes for a softmax
        # output, whose rows already sum to one, which is the case this form serves.
        grad = (-(y_true / p) / m).astype(y_pred.dtype, copy=False)
        return value, grad

    def logits_value_and_grad(self, y_true, logits):
        fast = _compiled_xent(logits, None, y_true)
        if fast is not None:
            return fast
        m = logits.size // logits.shape[-1]
        logp = _log_softmax(logits)
        value = -float(np.sum(y_true * logp)) / m
        p = np.exp(logp)
        grad = (p * np.sum(y_true, axis=-1, keepdims=True) - y_true) / m
        return value, grad.astype(logits.dtype, copy=False)


class SparseCategoricalCrossentropy(Loss):
    """Categorical cross-entropy with integer class labels ``y`` of shape ``(N,)``."""

    name = "sparse_categorical_crossentropy"
    fused_activation = "softmax"

    def __init__(self, from_logits: bool = False):
        self.from_logits = bool(from_logits)

    def prepare_targets(self, y, output_shape):
        y = np.asarray(y)
        k = output_shape[-1]
        if y.ndim == len(output_shape) and y.shape[-1] == 1:
            y = y[..., 0]
        if y.ndim == len(output_shape) and y.shape[-1] == k:
            raise ValueError(
                f"Loss {self.name!r} needs integer class labels of shape (N,), but `y` has "
                f"shape {y.shape} and looks one-hot. Use loss='categorical_crossentropy', "
                "or pass y.argmax(axis=-1)."
            )
        if y.shape[1:] != tuple(output_shape[1:-1]):
            raise ValueError(
                f"Loss {self.name!r} needs integer class labels of shape "
                f"{_fmt(output_shape[:-1])}. Received: y with shape {y.shape}"
            )
        if y.dtype.kind == "f":
            if y.size and not np.all(y == np.round(y)):
                raise fail("y", f"integer class labels for loss {self.name!r}", y)
        elif y.dtype.kind not in "iub":
            raise fail("y", "integer class labels", y, TypeError)
        y = y.astype(np.intp, copy=False)  # labels are only read
        if y.size:
            lo, hi = np.minimum.reduce(y, axis=None), np.maximum.reduce(y, axis=None)
            if lo < 0 or hi >= k:
                raise ValueError(
                    f"The labels `y` must lie in [0, {k}) because the model's last layer "
                    f"outputs {k} classes. Received: labels from {lo} to {hi}"
                )
        return y

    def _pick(self, a, y):
        if a.ndim == 2:  # the usual (N, classes): plain integer indexing is cheaper
            return a[np.arange(len(y)), y]
        return np.take_along_axis(a, y[..., None], axis=-1)[..., 0]

    def value_and_grad(self, y_true, y_pred):
        if self.from_logits:
            return self.logits_value_and_grad(y_true, y_pred)
        m = y_pred.size // y_pred.shape[-1]
        p = y_pred / np.sum(y_pred, axis=-1, keepdims=True)
        picked = np.clip(self._pick(p, y_true), EPSILON, 1 - EPSILON)
        value = -float(np.sum(np.log(picked))) / m
        grad = np.zeros_like(y_pred)
        np.put_along_axis(grad, y_true[..., None], (-1 / (picked * m))[..., None], axis=-1)
        return value, grad

    def logits_value_and_grad(self, y_true, logits):
        fast = _compiled_xent(logits, y_true, None)
        if fast is not None:
            return fast
        m = logits.size // logits.shape[-1]
        logp = _log_softmax(logits)
        value = -float(np.add.reduce(self._pick(logp, y_true), axis=None)) / m
        grad = np.exp(logp)
        if grad.ndim == 2:
            rows = np.arange(len(y_true))
            grad[rows, y_true] -= 1
        else:
            np.put_along_axis(grad, y_true[..., None],
                              self._pick(grad, y_true)[..., None] - 1, axis=-1)
        grad /= m
        return value, grad.astype(logits.dtype, copy=False)


class BinaryCrossentropy(Loss):
    """``-(y log p + (1 - y) log(1 - p))``, averaged; ``y`` in [0, 1], same shape as p."""

    name = "binary_crossentropy"
    fused_activation = "sigmoid"

    def __init__(self, from_logits: bool = False):
        self.from_logits = bool(from_logits)

    def prepare_targets(self, y, output_shape):
        y = np.asarray(y)
        if y.ndim == len(output_shape) - 1 and output_shape[-1] == 1:
            y = y[..., None]
        return super().prepare_targets(y, output_shape)

    def value_and_grad(self, y_true, y_pred):
        if self.from_logits:
            return self.logits_value_and_grad(y_true, y_pred)
        p = np.clip(y_pred, EPSILON, 1 - EPSILON)
        value = -float(np.mean(y_true * np.log(p) + (1 - y_true) * np.log(1 - p)))
        grad = (p - y_true) / (p * (1 - p)) / y_pred.size
        return value, grad.astype(y_pred.dtype, copy=False)

    def logits_value_and_grad(self, y_true, logits):
        z = logits
        # log(1 + exp(z)) - y z, rearranged so that exp never sees a positive number.
        value = float(np.mean(np.maximum(z, 0) - z * y_true + np.log1p(np.exp(-np.abs(z)))))
        grad = (_sigmoid(z) - y_true) / z.size
        return value, grad.astype(z.dtype, copy=False)


class MeanSquaredError(Loss):
    """``mean((y_pred - y_true) ** 2)``."""

    name = "mean_squared_error"

    def value_and_grad(self, y_true, y_pred):
        diff = y_pred - y_true
        value = float(np.mean(np.square(diff)))
        return value, (diff * (2 / diff.size)).astype(y_pred.dtype, copy=False)


class MeanAbsoluteError(Loss):
    """``mean(|y_pred - y_true|)``; gradient ``sign(y_pred - y_true) / size``."""

    name = "mean_absolute_error"

    def value_and_grad(self, y_true, y_pred):
        diff = y_pred - y_true
        value = float(np.mean(np.abs(diff)))
        return value, (np.sign(diff) / diff.size).astype(y_pred.dtype, copy=False)


def categorical_crossentropy(y_true, y_pred, from_logits: bool = False) -> float:
    return CategoricalCrossentropy(from_logits)(y_true, y_pred)


def sparse_categorical_crossentropy(y_true, y_pred, from_logits: bool = False) -> float:
    return SparseCategoricalCrossentropy(from_logits)(y_true, y_pred)


def binary_crossentropy(y_true, y_pred, from_logits: bool = False) -> float:
    return BinaryCrossentropy(from_logits)(y_true, y_pred)


def mean_squared_error(y_true, y_pred) -> float:
    return MeanSquaredError()(y_true, y_pred)


_CLASSES = {c.__name__: c for c in (CategoricalCrossentropy, SparseCategoricalCrossentropy,
                                    BinaryCrossentropy, MeanSquaredError, MeanAbsoluteError)}
_ALIASES = {
    "categorical_crossentropy": CategoricalCrossentropy,
    "sparse_categorical_crossentropy": SparseCategoricalCrossentropy,
    "binary_crossentropy": BinaryCrossentropy,
    "mean_squared_error": MeanSquaredError, "mse": MeanSquaredError,
    "mean_absolute_error": MeanAbsoluteError, "mae": MeanAbsoluteError,
}


def get(identifier: Any) -> Loss:
    """A :class:`Loss` from a name, a config dict or a Loss object."""
    if isinstance(identifier, Loss):
        return identifier
    if isinstance(identifier, str) and (identifier.lower() in _ALIASES
                                        or identifier in _CLASSES):
        return (_ALIASES.get(identifier.lower()) or _CLASSES[identifier])()
    if isinstance(identifier, dict) and identifier.get("class_name") in _CLASSES:
        return _CLASSES[identifier["class_name"]](**identifier.get("config", {}))
    if identifier in (categorical_crossentropy, sparse_categorical_crossentropy,
                      binary_crossentropy, mean_squared_error):
        return _ALIASES[identifier.__name__]()
    raise fail("loss", f"one of {sorted(_ALIASES)} or a fastconv.losses.Loss", identifier,
               TypeError if not isinstance(identifier, str) else ValueError)


def serialize(loss: Loss) -> dict:
    if type(loss).__name__ not in _CLASSES:
        raise ValueError(f"Only built-in losses can be saved; received {loss!r}.")
    return {"class_name": type(loss).__name__, "config": loss.get_config()}
