"""Helpers for checking kernels: tolerances, relative error, numerical gradients.

The tolerances by which the compiled backend must agree with the NumPy reference
are kept here, in one place, and used by the test suite.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

__all__ = ["RTOL", "relative_error", "assert_close", "numerical_gradient"]

#: Largest allowed :func:`relative_error` between the backends, per dtype.
RTOL = {np.dtype(np.float32): 1e-5, np.dtype(np.float64): 1e-12}


def relative_error(actual, desired, scale=None) -> float:
    """Norm-wise relative error ``max|actual - desired| / max(scale)``.

    Element-wise relative error is meaningless where a sum cancels to nearly
    zero, so the error is divided by one magnitude for the whole array: by
    default the largest ``|desired|`` (1 when that is 0). Where even the largest
    entry is a cancelling sum (a single bias gradient, say), pass ``scale``: the
    same computation done on absolute values (the sum of ``|terms|``), which is
    what floating-point rounding error is proportional to. NaN and inf must sit
    in the same places with the same values, else the error is inf.
    """
    a = np.asarray(actual, dtype=np.float64)
    d = np.asarray(desired, dtype=np.float64)
    if a.shape != d.shape:
        raise ValueError(f"shapes differ: {a.shape} vs {d.shape}")
    if a.size == 0:
        return 0.0
    finite = np.isfinite(d)
    same_special = np.array_equal(a[~finite], d[~finite], equal_nan=True)
    if not same_special or not np.all(np.isfinite(a[finite])):
        return float("inf")
    if not finite.any():
        return 0.0
    if scale is None:
        scale = np.max(np.abs(d[finite]))
    else:
        scale = max(float(np.max(np.abs(scale))), float(np.max(np.abs(d[finite]))))
    diff = np.max(np.abs(a[finite] - d[finite]))
    return float(diff / scale) if scale > 0 else float(diff)


def assert_close(actual, desired, dtype=None, rtol=None, scale=None) -> None:
    """Assert :func:`relative_error` <= ``rtol`` (default: ``RTOL`` of the dtype)."""
    if rtol is None:
        rtol = RTOL[np.dtype(dtype if dtype is not None else np.asarray(desired).dtype)]
    err = relative_error(actual, desired, scale)
    if not err <= rtol:
        raise AssertionError(f"relative error {err:.3g} exceeds {rtol:.3g}")


def numerical_gradient(f: Callable[[], np.ndarray], x: np.ndarray, dout: np.ndarray,
                       h: float = 1e-6) -> np.ndarray:
    """Central-difference gradient of ``sum(f() * dout)`` with respect to ``x``.

    ``f`` takes no arguments and reads ``x``, which is perturbed in place, one
    element at a time, and restored. Use float64.
    """
    grad = np.zeros_like(x)
    flat, gflat = x.reshape(-1), grad.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + h
        plus = np.sum(f() * dout)
        flat[i] = old - h
        minus = np.sum(f() * dout)
        flat[i] = old
        gflat[i] = (plus - minus) / (2 * h)
    return grad
