"""Utilities (Keras: ``keras.utils``): labels, seeding and gradient checking."""

from __future__ import annotations

import random
from typing import Any, Dict, Optional

import numpy as np

from . import _random
from .backends._args import fail
from .data_adapters import PyDataset, Sequence
from .testing import relative_error

__all__ = ["to_categorical", "set_random_seed", "check_gradients", "PyDataset", "Sequence"]


def to_categorical(y: Any, num_classes: Optional[int] = None,
                   dtype: Any = "float32") -> np.ndarray:
    """One-hot encode integer labels ``y`` of shape (N,) (or (N, 1)) to (N, num_classes)."""
    y = np.asarray(y)
    if y.ndim > 1 and y.shape[-1] == 1:
        y = y[..., 0]
    if y.dtype.kind == "f" and y.size and not np.all(y == np.round(y)):
        raise fail("y", "integer class labels", y)
    if y.dtype.kind not in "iuf":
        raise fail("y", "integer class labels", y, TypeError)
    y = y.astype(np.intp)
    if y.size and y.min() < 0:
        raise fail("y", "labels >= 0", int(y.min()))
    if num_classes is None:
        num_classes = int(y.max()) + 1 if y.size else 0
    elif y.size and y.max() >= num_classes:
        raise ValueError(f"`y` must have labels below num_classes={num_classes}. Received: "
                         f"a largest label of {int(y.max())}")
    out = np.zeros(y.shape + (num_classes,), dtype=dtype)
    np.put_along_axis(out, y[..., None], 1, axis=-1)
    return out


def set_random_seed(seed: int) -> None:
    """Seed fastconv's generator (weights, shuffling, Dropout), Python's and NumPy's."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise fail("seed", "an int >= 0", seed, TypeError)
    _random.seed(int(seed))
    random.seed(int(seed))
    np.random.seed(int(seed) % 2**32)


def check_gradients(model, x: Any, y: Any, eps: float = 1e-5,
                    max_checks: Optional[int] = None) -> Dict[str, float]:
    """Worst relative error of backprop against central differences, per layer.

    Works on any compiled model (Sequential, functional or subclassed). The model's
    weights are swapped for float64 copies for the duration (and restored after, also
    on error), and ``x`` is cast to float64, so every kernel runs in float64. For each
    trainable weight the gradient of ``loss + regularization`` from backpropagation
    through the model's graph is compared with ``(L(w + eps) - L(w - eps)) / (2 eps)``
    in inference mode (Dropout off, BatchNormalization on its moving statistics, so the
    loss is deterministic). ``max_checks`` limits the entries checked per weight (chosen
    at random) to bound the cost of ``2 * entries`` forward passes. Not thread-safe: do
    not run the model elsewhere meanwhile.

    Returns ``{layer name: worst relative error}`` for every layer with trainable
    weights; the error is :func:`fastconv.testing.relative_error` (norm-wise, per weight).
    """
    model._require_compiled()
    xs = model._prepare_inputs(x)
    xs = [a.astype(np.float64) for a in xs]
    y64 = model.loss.prepare_targets(y, model.output_shape)
    if y64.dtype.kind == "f":
        y64 = y64.astype(np.float64)
    items = model._weight_items()
    originals = []
    try:
        for layer, name, arr in items:
            originals.append((layer, name, arr, layer.__dict__.get(name) is arr))
            wide = arr.astype(np.float64)
            layer._weight_store[name] = wide
            if originals[-1][3]:
                layer.__dict__[name] = wide
        model._items_cache = None

        def objective():
            return model._batch_loss_and_output(xs, y64)[0] + model._penalty()

        _, _, params, grads = model._loss_and_grads(xs, y64, training=False)
        grads = [g.copy() for g in grads]
        owners = [layer.name for layer, _, _ in model._train_items()]
        rng = np.random.default_rng(0)
        worst: Dict[str, float] = {}
        for name, p, g in zip(owners, params, grads):
            flat = p.reshape(-1)
            idx = np.arange(flat.size)
            if max_checks is not None and flat.size > max_checks:
                idx = rng.choice(flat.size, max_checks, replace=False)
            num = np.empty(len(idx))
            for j, i in enumerate(idx):
                old = flat[i]
                flat[i] = old + eps
                plus = objective()
                flat[i] = old - eps
                minus = objective()
                flat[i] = old
                num[j] = (plus - minus) / (2 * eps)
            err = relative_error(g.reshape(-1)[idx], num)
            worst[name] = max(worst.get(name, 0.0), err)
        return worst
    finally:
        for layer, name, arr, attr in originals:
            layer._weight_store[name] = arr
            if attr:
                layer.__dict__[name] = arr
        model._items_cache = None
