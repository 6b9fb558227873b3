"""CS231n's non-convolution layers (assignment 2's ``cs231n/layers.py``), vectorised NumPy.

Re-exported by :mod:`fastconv.compat.cs231n`. Signatures, caches and argument
dicts are the course's; shape problems raise ValueError naming the argument.
float64 in, float64 out (other floating dtypes are kept).

One exception to "NumPy": on the compiled backend, ``spatial_batchnorm_forward`` and
``spatial_batchnorm_backward`` run compiled kernels on the (N, C, H, W) layout
(``fastconv._nchw``); on the NumPy backend they are the NumPy code, which the tests
compare them with.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from typing import Any, NamedTuple, Tuple

import numpy as np

from .. import _nchw
from .._threads import kernel_threads
from ..backends import get_backend
from ..backends._args import as_float_array, fail

__all__ = [
    "affine_forward", "affine_backward", "relu_forward", "relu_backward",
    "affine_relu_forward", "affine_relu_backward",
    "batchnorm_forward", "batchnorm_backward", "batchnorm_backward_alt",
    "spatial_batchnorm_forward", "spatial_batchnorm_backward",
    "layernorm_forward", "layernorm_backward",
    "spatial_groupnorm_forward", "spatial_groupnorm_backward",
    "dropout_forward", "dropout_backward", "softmax_loss", "svm_loss",
]


def _array(a: Any, name: str, ndim: int = 0, like: Any = None) -> np.ndarray:
    a = as_float_array(a, name, None if like is None else like.dtype)
    if ndim and a.ndim != ndim:
        raise fail(name, f"a {ndim}-D array", a)
    return a


def _shape(a: np.ndarray, name: str, shape: tuple) -> None:
    if a.shape != shape:
        raise fail(name, f"an array of shape {shape}", a)


def _param(param: Any, name: str, keys: Tuple[str, ...] = ()) -> Mapping:
    if not isinstance(param, Mapping):
        raise fail(name, "a dict", param, TypeError)
    missing = [k for k in keys if k not in param]
    if missing:
        raise fail(name, f"a dict with the key {missing[0]!r}", param)
    return param


# ------------------------------------------------------------------ affine and ReLU


def affine_forward(x: Any, w: Any, b: Any) -> Tuple[np.ndarray, tuple]:
    """out = x.reshape(N, D) @ w + b.

    Parameters
    ----------
    x : array_like, shape (N, d_1, ..., d_k), with D = d_1 * ... * d_k
    w : array_like, shape (D, M)
    b : array_like, shape (M,)

    Returns
    -------
    out : ndarray, shape (N, M)
    cache : tuple
        ``(x, w, b)``.
    """
    x = _array(x, "x")
    if x.ndim < 1:
        raise fail("x", "an array of at least 1 dimension (N, ...)", x)
    w = _array(w, "w", 2, like=x)
    D = int(np.prod(x.shape[1:]))
    if w.shape[0] != D:
        raise fail("w", f"an array of shape (D, M) with D = {D} (x's features)", w)
    b = _array(b, "b", 1, like=x)
    _shape(b, "b", (w.shape[1],))
    out = x.reshape(x.shape[0], D) @ w + b
    return out, (x, w, b)


def affine_backward(dout: Any, cache: tuple) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Backward pass of :func:`affine_forward`.

    Parameters
    ----------
    dout : array_like, shape (N, M)
    cache : tuple
        From :func:`affine_forward`.

    Returns
    -------
    dx : ndarray, shape (N, d_1, ..., d_k)
    dw : ndarray, shape (D, M)
    db : ndarray, shape (M,)
    """
    x, w, _ = cache
    dout = _array(dout, "dout", like=x)
    _shape(dout, "dout", (x.shape[0], w.shape[1]))
    dx = (dout @ w.T).reshape(x.shape)
    dw = x.reshape(x.shape[0], -1).T @ dout
    return dx, dw, dout.sum(axis=0)


def relu_forward(x: Any) -> Tuple[np.ndarray, np.ndarray]:
    """out = max(x, 0), any shape; the cache is ``x``."""
    x = _array(x, "x")
    return np.maximum(x, 0), x


def relu_backward(dout: Any, cache: np.ndarray) -> np.ndarray:
    """dx = dout where x > 0, else 0; ``cache`` is from :func:`relu_forward`."""
    x = cache
    dout = _array(dout, "dout", like=x)
    _shape(dout, "dout", x.shape)
    return np.where(x > 0, dout, 0).astype(x.dtype, copy=False)


def affine_relu_forward(x: Any, w: Any, b: Any) -> Tuple[np.ndarray, tuple]:
    """Affine then ReLU; the cache is ``(affine_cache, relu_cache)``."""
    a, fc_cache = affine_forward(x, w, b)
    out, relu_cache = relu_forward(a)
    return out, (fc_cache, relu_cache)


def affine_relu_backward(dout: Any, cache: tuple) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Backward pass of :func:`affine_relu_forward`: (dx, dw, db)."""
    fc_cache, relu_cache = cache
    return affine_backward(relu_backward(dout, relu_cache), fc_cache)


# ------------------------------------------------------------------ normalisation


def batchnorm_forward(x: Any, gamma: Any, beta: Any,
                      bn_param: MutableMapping) -> Tuple[np.ndarray, Any]:
    """Batch normalisation over axis 0, the course's way.

    Parameters
    ----------
    x : array_like, shape (N, D)
    gamma, beta : array_like, shape (D,)
    bn_param : dict
        ``'mode'`` (``'train'`` or ``'test'``, required), ``'eps'`` (1e-5),
        ``'momentum'`` (0.9), ``'running_mean'`` and ``'running_var'`` (zeros of
        shape (D,) when absent). In train mode the running statistics are updated
        ``running = momentum * running + (1 - momentum) * batch`` and stored back
        into ``bn_param``.

    Returns
    -------
    out : ndarray, shape (N, D)
    cache : tuple or None
        Train mode: ``(xhat, gamma, inv_std)``; test mode: None.
    """
    x = _array(x, "x", 2)
    N, D = x.shape
    gamma = _array(gamma, "gamma", 1, like=x)
    _shape(gamma, "gamma", (D,))
    beta = _array(beta, "beta", 1, like=x)
    _shape(beta, "beta", (D,))
    mode, eps, momentum, running_mean, running_var = _bn_settings(bn_param, D, x.dtype)
    if mode == "train":
        mean = x.mean(axis=0)
        var = x.var(axis=0)
        inv_std = 1.0 / np.sqrt(var + eps)
        xhat = (x - mean) * inv_std
        out = gamma * xhat + beta
        _bn_update(bn_param, momentum, running_mean, running_var, mean, var)
        return out, (xhat, gamma, inv_std)
    out = gamma * (x - running_mean) / np.sqrt(running_var + eps) + beta
    return out.astype(x.dtype, copy=False), None


def _bn_settings(bn_param: Any, D: int, dtype: np.dtype) -> tuple:
    """``(mode, eps, momentum, running_mean, running_var)`` from ``bn_param``, the
    running statistics zeros of shape (D,) where absent."""
    p = _param(bn_param, "bn_param", ("mode",))
    mode = p["mode"]
    if mode not in ("train", "test"):
        raise fail("bn_param['mode']", "'train' or 'test'", mode)
    running_mean = p.get("running_mean", np.zeros(D, dtype=dtype))
    running_var = p.get("running_var", np.zeros(D, dtype=dtype))
    if np.shape(running_mean) != (D,):
        raise fail("bn_param['running_mean']", f"an array of shape {(D,)}",
                   np.asarray(running_mean))
    if np.shape(running_var) != (D,):
        raise fail("bn_param['running_var']", f"an array of shape {(D,)}",
                   np.asarray(running_var))
    return mode, p.get("eps", 1e-5), p.get("momentum", 0.9), running_mean, running_var


def _bn_update(bn_param: MutableMapping, momentum: float, running_mean: Any,
               running_var: Any, mean: np.ndarray, var: np.ndarray) -> None:
    """running = momentum * running + (1 - momentum) * batch, stored into bn_param."""
    bn_param["running_mean"] = momentum * running_mean + (1 - momentum) * mean
    bn_param["running_var"] = momentum * running_var + (1 - momentum) * var


def batchnorm_backward(dout: Any, cache: tuple) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Backward pass of :func:`batchnorm_forward` (train mode).

    Returns
    -------
    dx : ndarray, shape (N, D)
    dgamma, dbeta : ndarray, shape (D,)
    """
    if cache is None:
        raise fail("cache", "the cache of a train-mode batchnorm_forward", cache, TypeError)
    xhat, gamma, inv_std = cache
    dout = _array(dout, "dout", like=xhat)
    _shape(dout, "dout", xhat.shape)
    dbeta = dout.sum(axis=0)
    dgamma = (dout * xhat).sum(axis=0)
    # dx = gamma / std * (dout - mean(dout) - xhat * mean(dout * xhat)), per column
    N = xhat.shape[0]
    dx = (gamma * inv_std / N) * (N * dout - dbeta - xhat * dgamma)
    return dx, dgamma, dbeta


batchnorm_backward_alt = batchnorm_backward


def layernorm_forward(x: Any, gamma: Any, beta: Any,
                      ln_param: Mapping) -> Tuple[np.ndarray, tuple]:
    """Layer normalisation over axis 1 of x (N, D); ``ln_param['eps']`` (1e-5).

    Returns ``out`` (N, D) and the cache ``(xhat, gamma, inv_std)``.
    """
    x = _array(x, "x", 2)
    D = x.shape[1]
    gamma = _array(gamma, "gamma", 1, like=x)
    _shape(gamma, "gamma", (D,))
    beta = _array(beta, "beta", 1, like=x)
    _shape(beta, "beta", (D,))
    eps = _param(ln_param, "ln_param").get("eps", 1e-5)
    mean = x.mean(axis=1, keepdims=True)
    inv_std = 1.0 / np.sqrt(x.var(axis=1, keepdims=True) + eps)
    xhat = (x - mean) * inv_std
    return gamma * xhat + beta, (xhat, gamma, inv_std)


def _norm_rows_backward(dxhat: np.ndarray, xhat: np.ndarray, inv_std: np.ndarray,
                        axis: Any) -> np.ndarray:
    """dx of xhat = (x - mean) * inv_std, the statistics taken over ``axis``."""
    return inv_std * (dxhat - dxhat.mean(axis=axis, keepdims=True)
                      - xhat * (dxhat * xhat).mean(axis=axis, keepdims=True))


def layernorm_backward(dout: Any, cache: tuple) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Backward pass of :func:`layernorm_forward`: (dx (N, D), dgamma (D,), dbeta (D,))."""
    xhat, gamma, inv_std = cache
    dout = _array(dout, "dout", like=xhat)
    _shape(dout, "dout", xhat.shape)
    dx = _norm_rows_backward(dout * gamma, xhat, inv_std, 1)
    return dx, (dout * xhat).sum(axis=0), dout.sum(axis=0)


class _SpatialCache(NamedTuple):
    """What the compiled spatial batchnorm keeps for its backward pass: the input
    (N, C, H, W), gamma (C,), the batch's mean and variance (C,) in float64, eps."""

    x: np.ndarray
    gamma: np.ndarray
    mean: np.ndarray
    var: np.ndarray
    eps: float


def _compiled() -> bool:
    """Whether the compiled (N, C, H, W) kernels run: the compiled backend is active
    and the CPU has AVX2 + FMA at least."""
    return get_backend() == "cython" and _nchw.isa() > 0


def spatial_batchnorm_forward(x: Any, gamma: Any, beta: Any,
                              bn_param: MutableMapping) -> Tuple[np.ndarray, Any]:
    """Batch normalisation per channel of x (N, C, H, W); gamma, beta (C,).

    ``bn_param`` as in :func:`batchnorm_forward`, with statistics of shape (C,).

    On the compiled backend a kernel normalises x where it lies (each channel one
    task: mean, then mean squared deviation, in float64, then the output); the cache
    is then a ``_SpatialCache`` (x, gamma, the batch's mean and variance, eps), in
    train mode, and None in test mode. On the NumPy backend x is viewed as
    (N * H * W, C) rows for :func:`batchnorm_forward`, whose cache it returns.
    """
    x = _array(x, "x", 4)
    N, C, H, W = x.shape
    if not (_compiled() and x.size):
        flat = x.transpose(0, 2, 3, 1).reshape(-1, C)
        out, cache = batchnorm_forward(flat, gamma, beta, bn_param)
        return out.reshape(N, H, W, C).transpose(0, 3, 1, 2), cache
    gamma = _array(gamma, "gamma", 1, like=x)
    _shape(gamma, "gamma", (C,))
    beta = _array(beta, "beta", 1, like=x)
    _shape(beta, "beta", (C,))
    mode, eps, momentum, running_mean, running_var = _bn_settings(bn_param, C, x.dtype)
    train = mode == "train"
    mean = np.empty(C) if train else np.array(running_mean, dtype=np.float64)
    var = np.empty(C) if train else np.array(running_var, dtype=np.float64)
    out = np.empty_like(x)
    with kernel_threads(C) as threads:
        _nchw.spatial_bn_forward(x.reshape(N, C, H * W), gamma, beta,
                                 out.reshape(N, C, H * W), mean, var, float(eps), train,
                                 threads)
    if not train:
        return out, None
    _bn_update(bn_param, momentum, running_mean, running_var, mean.astype(x.dtype),
               var.astype(x.dtype))
    return out, _SpatialCache(x, gamma, mean, var, float(eps))


def spatial_batchnorm_backward(dout: Any, cache: Any) -> Tuple[np.ndarray, ...]:
    """Backward pass of :func:`spatial_batchnorm_forward` (train mode): (dx (N, C, H, W),
    dgamma (C,), dbeta (C,))."""
    if not isinstance(cache, _SpatialCache):
        d = _array(dout, "dout", 4)
        N, C, H, W = d.shape
        dx, dgamma, dbeta = batchnorm_backward(d.transpose(0, 2, 3, 1).reshape(-1, C),
                                               cache)
        return dx.reshape(N, H, W, C).transpose(0, 3, 1, 2), dgamma, dbeta
    x = cache.x
    d = _array(dout, "dout", like=x)
    _shape(d, "dout", x.shape)
    N, C, H, W = x.shape
    dx = np.empty_like(x)
    dgamma, dbeta = np.empty(C), np.empty(C)
    with kernel_threads(C) as threads:
        _nchw.spatial_bn_backward(x.reshape(N, C, H * W), d.reshape(N, C, H * W),
                                  cache.gamma, cache.mean, cache.var,
                                  dx.reshape(N, C, H * W), dgamma, dbeta, cache.eps,
                                  threads)
    return dx, dgamma.astype(x.dtype), dbeta.astype(x.dtype)


def spatial_groupnorm_forward(x: Any, gamma: Any, beta: Any, G: int,
                              gn_param: Mapping) -> Tuple[np.ndarray, tuple]:
    """Group normalisation of x (N, C, H, W) in G groups of C // G channels.

    gamma and beta have shape (1, C, 1, 1) as in the course; ``gn_param['eps']``
    (1e-5). The cache is ``(xhat, gamma, inv_std, G)``.
    """
    x = _array(x, "x", 4)
    N, C, H, W = x.shape
    if isinstance(G, bool) or not isinstance(G, (int, np.integer)) or G < 1 or C % G:
        raise fail("G", f"a positive int dividing C = {C}", G)
    gamma = _array(gamma, "gamma", like=x)
    _shape(gamma, "gamma", (1, C, 1, 1))
    beta = _array(beta, "beta", like=x)
    _shape(beta, "beta", (1, C, 1, 1))
    eps = _param(gn_param, "gn_param").get("eps", 1e-5)
    g = x.reshape(N, G, -1)
    mean = g.mean(axis=2, keepdims=True)
    inv_std = 1.0 / np.sqrt(g.var(axis=2, keepdims=True) + eps)
    xhat = ((g - mean) * inv_std).reshape(x.shape)
    return gamma * xhat + beta, (xhat, gamma, inv_std, int(G))


def spatial_groupnorm_backward(dout: Any, cache: tuple) -> Tuple[np.ndarray, ...]:
    """Backward pass of :func:`spatial_groupnorm_forward`: (dx, dgamma, dbeta), (1, C, 1, 1)."""
    xhat, gamma, inv_std, G = cache
    dout = _array(dout, "dout", like=xhat)
    _shape(dout, "dout", xhat.shape)
    N = xhat.shape[0]
    dxhat = (dout * gamma).reshape(N, G, -1)
    dx = _norm_rows_backward(dxhat, xhat.reshape(N, G, -1), inv_std, 2).reshape(xhat.shape)
    dgamma = (dout * xhat).sum(axis=(0, 2, 3), keepdims=True)
    return dx, dgamma, dout.sum(axis=(0, 2, 3), keepdims=True)


# ------------------------------------------------------------------ dropout


def dropout_forward(x: Any, dropout_param: Mapping) -> Tuple[np.ndarray, tuple]:
    """Inverted dropout; ``dropout_param``: 'p' the KEEP probability, 'mode', 'seed'.

    Train mode keeps each unit with probability p and scales kept units by 1 / p,
    so test mode is the identity. With ``'seed'`` the mask is drawn after
    ``np.random.seed(seed)``, as the course does, so it is reproducible.

    Returns ``out`` (shape of x) and the cache ``(dropout_param, mask)`` (mask None
    in test mode).
    """
    x = _array(x, "x")
    p_ = _param(dropout_param, "dropout_param", ("p", "mode"))
    p, mode = p_["p"], p_["mode"]
    if not (0 < p <= 1):
        raise fail("dropout_param['p']", "a keep probability in (0, 1]", p)
    if "seed" in p_ and p_["seed"] is not None:
        np.random.seed(p_["seed"])
    if mode == "train":
        mask = (np.random.rand(*x.shape) < p) / p
        return (x * mask).astype(x.dtype, copy=False), (dropout_param, mask)
    if mode == "test":
        return x.copy(), (dropout_param, None)
    raise fail("dropout_param['mode']", "'train' or 'test'", mode)


def dropout_backward(dout: Any, cache: tuple) -> np.ndarray:
    """Backward pass of :func:`dropout_forward`."""
    dropout_param, mask = cache
    dout = _array(dout, "dout")
    if mask is None:
        return dout
    _shape(dout, "dout", mask.shape)
    return (dout * mask).astype(dout.dtype, copy=False)


# ------------------------------------------------------------------ losses


def _scores_labels(x: Any, y: Any) -> Tuple[np.ndarray, np.ndarray]:
    x = _array(x, "x", 2)
    y = np.asarray(y)
    if y.shape != (x.shape[0],) or not np.issubdtype(y.dtype, np.integer):
        raise fail("y", f"an int array of shape {(x.shape[0],)}", y)
    if y.size and (y.min() < 0 or y.max() >= x.shape[1]):
        raise fail("y", f"labels in [0, {x.shape[1]})", y)
    return x, y


def softmax_loss(x: Any, y: Any) -> Tuple[float, np.ndarray]:
    """Mean softmax cross-entropy of scores x (N, C) for labels y (N,); returns (loss, dx)."""
    x, y = _scores_labels(x, y)
    N = x.shape[0]
    shifted = x - x.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    loss = -log_probs[np.arange(N), y].mean()
    dx = np.exp(log_probs)
    dx[np.arange(N), y] -= 1
    return float(loss), dx / N


def svm_loss(x: Any, y: Any) -> Tuple[float, np.ndarray]:
    """Mean multiclass hinge loss (margin 1) of x (N, C) for y (N,); returns (loss, dx)."""
    x, y = _scores_labels(x, y)
    N = x.shape[0]
    margins = np.maximum(0, x - x[np.arange(N), y][:, None] + 1)
    margins[np.arange(N), y] = 0
    dx = (margins > 0).astype(x.dtype)
    dx[np.arange(N), y] -= dx.sum(axis=1)
    return float(margins.sum() / N), dx / N
