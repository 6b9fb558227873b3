"""Metrics reported by ``fit`` and ``evaluate`` (Keras: ``keras.metrics``).

A metric is a function ``f(y_true, y_pred) -> float``, the mean over one batch; the
model averages batches weighted by their size. ``'accuracy'`` (or ``'acc'``) becomes
categorical, sparse or binary accuracy by the loss and the output shape, as Keras
chooses.
"""

from __future__ import annotations

from typing import Any, Callable, Tuple

import numpy as np

from . import losses as _losses
from .backends._args import fail

try:  # the compiled argmax count, when the extension is built
    from . import _elementwise as _compiled
except ImportError:  # pragma: no cover - the NumPy code does the same
    _compiled = None

__all__ = ["categorical_accuracy", "sparse_categorical_accuracy", "binary_accuracy",
           "mean_squared_error", "mean_absolute_error", "get"]


def _hit_rate(labels, y_pred):
    """Fraction of rows of y_pred whose argmax is ``labels`` (integers, one per row)."""
    if _compiled is not None and type(y_pred) is np.ndarray and y_pred.ndim >= 1 \
            and y_pred.dtype in (np.float32, np.float64) and y_pred.flags.c_contiguous \
            and y_pred.size and labels.shape == y_pred.shape[:-1] and labels.dtype == np.intp:
        # One compiled pass (the NumPy lines below are its reference).
        k = y_pred.shape[-1]
        return _compiled.argmax_hits(y_pred.reshape(-1, k),
                                     np.ascontiguousarray(labels).reshape(-1)) / labels.size
    hits = np.argmax(y_pred, -1) == labels
    return float(np.count_nonzero(hits) / hits.size) if hits.size else float("nan")


def categorical_accuracy(y_true, y_pred) -> float:
    """Fraction of samples whose largest output is the one-hot target's class."""
    return _hit_rate(np.argmax(y_true, -1), y_pred)


def sparse_categorical_accuracy(y_true, y_pred) -> float:
    """Fraction of samples whose largest output is the integer label."""
    y = np.asarray(y_true)
    if y.ndim == np.ndim(y_pred):
        y = y[..., 0]
    return _hit_rate(y, y_pred)


def binary_accuracy(y_true, y_pred, threshold: float = 0.5) -> float:
    """Fraction of outputs on the target's side of ``threshold``."""
    y = np.asarray(y_true).reshape(np.shape(y_pred))
    return float(np.mean((np.asarray(y_pred) > threshold) == (y > 0.5)))


def mean_squared_error(y_true, y_pred) -> float:
    return float(np.mean(np.square(np.asarray(y_pred) - np.asarray(y_true).reshape(
        np.shape(y_pred)))))


def mean_absolute_error(y_true, y_pred) -> float:
    return float(np.mean(np.abs(np.asarray(y_pred) - np.asarray(y_true).reshape(
        np.shape(y_pred)))))


_BY_NAME = {
    "categorical_accuracy": categorical_accuracy,
    "sparse_categorical_accuracy": sparse_categorical_accuracy,
    "binary_accuracy": binary_accuracy,
    "mse": mean_squared_error, "mean_squared_error": mean_squared_error,
    "mae": mean_absolute_error, "mean_absolute_error": mean_absolute_error,
}


def get(identifier: Any, loss: Any = None, output_shape: Tuple = ()) -> Tuple[str, Callable]:
    """``(name, function)`` for a metric name or callable, resolving 'accuracy'."""
    if isinstance(identifier, str):
        key = identifier.lower()
        if key in ("accuracy", "acc"):
            if loss is not None and getattr(loss, "from_logits", False) and isinstance(
                    loss, _losses.BinaryCrossentropy):
                return identifier, lambda y, p: binary_accuracy(y, p, threshold=0.0)
            if isinstance(loss, _losses.SparseCategoricalCrossentropy):
                return identifier, sparse_categorical_accuracy
            if isinstance(loss, _losses.CategoricalCrossentropy):
                return identifier, categorical_accuracy
            if isinstance(loss, _losses.BinaryCrossentropy) or output_shape[-1:] == (1,):
                return identifier, binary_accuracy
            return identifier, categorical_accuracy
        if key in _BY_NAME:
            return identifier, _BY_NAME[key]
        raise fail("metrics", f"names from {['accuracy'] + sorted(_BY_NAME)} or callables",
                   identifier)
    if callable(identifier):
        return getattr(identifier, "__name__", "metric"), identifier
    raise fail("metrics", "a list of metric names or callables", identifier, TypeError)
