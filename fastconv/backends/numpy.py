"""The readable pure-NumPy reference: the specification of every fastconv kernel.

Layout is Keras's: images are (N, H, W, C), convolution weights (KH, KW, C_in, C_out).
Every forward function returns ``(out, cache)`` and every backward function takes
``(dout, cache)``, as in CS231n. The compiled backend (:mod:`fastconv.backends.cython`)
has exactly the same functions and is tested against these.

A convolution is a sliding dot product. Output position (oh, ow) of filter f is

    out[n, oh, ow, f] = b[f] + sum_{i, j, c} xp[n, oh*sh + i*dh, ow*sw + j*dw, c] * w[i, j, c, f]

where xp is x with zero padding. Read the other way round, each tap (i, j) of the
window multiplies a strided slice of xp, of shape (N, OH, OW, C), by the (C, F)
matrix w[i, j]; the output is the sum of those KH*KW products. That is how the code
below computes it, and its backward pass is the same loop with each product
differentiated: dW[i, j] = slice^T @ dout and dslice += dout @ w[i, j]^T.
"""

from __future__ import annotations

import numpy as np

from . import _args
from ._args import Cache

NAME = "numpy"

__all__ = [
    "conv2d_forward",
    "conv2d_backward",
    "conv2d_relu_forward",
    "conv2d_relu_backward",
    "conv2d_relu_maxpool_forward",
    "conv2d_relu_maxpool_backward",
    "depthwise_conv2d_forward",
    "depthwise_conv2d_backward",
    "maxpool2d_forward",
    "maxpool2d_backward",
    "avgpool2d_forward",
    "avgpool2d_backward",
    "relu_forward",
    "relu_backward",
    "add_relu_forward",
    "add",
    "matmul",
    "resize2d_forward",
    "resize2d_backward",
    "channel_sums",
    "channel_affine",
    "layernorm_forward",
    "layernorm_backward",
]


def _pad(x, g, value=0.0):
    """x (N, H, W, C) with g's (top, bottom, left, right) padding filled with ``value``."""
    return np.pad(x, ((0, 0), (g.pt, g.pb), (g.pl, g.pr), (0, 0)), constant_values=value)


def _tap(g, i, j, dilation=(1, 1)):
    """Slices of the padded input that window tap (i, j) sees, for all outputs."""
    dh, dw = dilation
    rows = slice(i * dh, i * dh + g.sh * (g.OH - 1) + 1, g.sh)
    cols = slice(j * dw, j * dw + g.sw * (g.OW - 1) + 1, g.sw)
    return (slice(None), rows, cols, slice(None))


def _crop(xp, g):
    """Undo :func:`_pad`."""
    return xp[:, g.pt:g.pt + g.H, g.pl:g.pl + g.W, :]


# --------------------------------------------------------------------------- conv


def conv2d_forward(x, w, b=None, stride=1, padding=0, dilation=1):
    """2-D convolution (cross-correlation, as in every deep learning library).

    Parameters
    ----------
    x : array_like, shape (N, H, W, C)
        Input images. float32 and float64 keep their dtype; integers become float32.
    w : array_like, shape (KH, KW, C, F)
        Filters, cast to x's dtype.
    b : array_like, shape (F,), optional
        Bias, cast to x's dtype.
    stride : int or (int, int)
    padding : 'valid', 'same', int, (int, int) or ((top, bottom), (left, right))
        'same' is TensorFlow/Keras's: output ceil(H / stride), the odd pixel of
        padding at the bottom/right.
    dilation : int or (int, int)

    Returns
    -------
    out : ndarray, shape (N, OH, OW, F), x's dtype
        ``OH = (H + pad_top + pad_bottom - dilation * (KH - 1) - 1) // stride + 1``.
    cache : Cache
        Keeps x, w and the geometry for :func:`conv2d_backward`.
    """
    x, w, b, g = _args.conv_args(x, w, b, stride, padding, dilation)
    xp = _pad(x, g)
    out = np.zeros(g.out_shape, dtype=x.dtype)
    for i in range(g.KH):
        for j in range(g.KW):
            out += xp[_tap(g, i, j, (g.dh, g.dw))] @ w[i, j]
    if b is not None:
        out += b
    cache = Cache("conv2d", NAME, g, x.dtype, {"x": x, "w": w, "has_bias": b is not None})
    return out, cache


def conv2d_backward(dout, cache, input_grad=True):
    """Gradients of :func:`conv2d_forward`.

    Parameters
    ----------
    dout : array_like, shape (N, OH, OW, F)
        Gradient of the loss with respect to the output.
    cache : Cache
        From :func:`conv2d_forward`.
    input_grad : bool, default True
        False skips dx (returned as None): a network's first layer needs only dw, db.

    Returns
    -------
    dx : ndarray, shape (N, H, W, C), or None when ``input_grad`` is False
    dw : ndarray, shape (KH, KW, C, F)
    db : ndarray, shape (F,), or None when the forward pass had no bias
    """
    cache = _args.check_cache(cache, "conv2d", NAME)
    g = cache.geom
    dout = _args.check_dout(dout, g.out_shape, cache.dtype)
    x, w = cache.arrays["x"], cache.arrays["w"]
    xp = _pad(x, g)
    dxp = np.zeros_like(xp)
    dw = np.empty_like(w)
    for i in range(g.KH):
        for j in range(g.KW):
            tap = _tap(g, i, j, (g.dh, g.dw))
            dw[i, j] = np.tensordot(xp[tap], dout, axes=([0, 1, 2], [0, 1, 2]))
            if input_grad:
                dxp[tap] += dout @ w[i, j].T
    db = dout.sum(axis=(0, 1, 2)) if cache.arrays["has_bias"] else None
    dx = np.ascontiguousarray(_crop(dxp, g)) if input_grad else None
    return dx, dw, db


def conv2d_relu_forward(x, w, b=None, stride=1, padding=0, dilation=1):
    """``ReLU(conv2d(x, w) + b)``: :func:`conv2d_forward` then :func:`relu_forward`.

    Same arguments and output shape as :func:`conv2d_forward`; the cache keeps the
    convolution's cache and the output (whose sign is the pre-activation's).
    """
    z, conv_cache = conv2d_forward(x, w, b, stride, padding, dilation)
    out = np.maximum(z, 0)
    return out, Cache("conv2d_relu", NAME, conv_cache.geom, z.dtype,
                      {"conv": conv_cache, "out": out})


def conv2d_relu_backward(dout, cache, input_grad=True):
    """Gradients of :func:`conv2d_relu_forward`: ``(dx, dw, db)`` as :func:`conv2d_backward`."""
    cache = _args.check_cache(cache, "conv2d_relu", NAME)
    dout = _args.check_dout(dout, cache.geom.out_shape, cache.dtype)
    dz = np.where(cache.arrays["out"] > 0, dout, 0).astype(cache.dtype, copy=False)
    return conv2d_backward(dz, cache.arrays["conv"], input_grad)


def conv2d_relu_maxpool_forward(x, w, b=None, stride=1, padding=0, dilation=1, pool_size=2):
    """``maxpool2d(ReLU(conv2d(x, w) + b), pool_size)``: the usual conv block in one call.

    The pooling has strides equal to ``pool_size`` and 'valid' padding (Keras's
    ``MaxPooling2D(pool_size)``). Here it is simply the three functions in a row;
    the compiled backend fuses them so that the convolution's full-size output is
    never stored, and its backward pass computes the weight gradient from each
    window's winner only.

    Parameters
    ----------
    x, w, b, stride, padding, dilation
        As :func:`conv2d_forward`.
    pool_size : int or (int, int)
        ``(PH, PW)``; must fit in the convolution's output (OH >= PH, OW >= PW).

    Returns
    -------
    out : ndarray, shape (N, OH // PH, OW // PW, F)
    cache : Cache
    """
    x, w, b, g = _args.conv_args(x, w, b, stride, padding, dilation)
    pg = _args.conv_pool_args(g, pool_size)
    z, relu_cache = conv2d_relu_forward(x, w, b, stride, padding, dilation)
    out, pool_cache = maxpool2d_forward(z, (pg.PH, pg.PW))
    return out, Cache("conv2d_relu_maxpool", NAME, (g, pg), x.dtype,
                      {"conv_relu": relu_cache, "pool": pool_cache})


def conv2d_relu_maxpool_backward(dout, cache, input_grad=True):
    """Gradients of :func:`conv2d_relu_maxpool_forward`: ``(dx, dw, db)`` as
    :func:`conv2d_backward` (dx is None when ``input_grad`` is False)."""
    cache = _args.check_cache(cache, "conv2d_relu_maxpool", NAME)
    dout = _args.check_dout(dout, cache.geom[1].out_shape, cache.dtype)
    dz = maxpool2d_backward(dout, cache.arrays["pool"])
    return conv2d_relu_backward(dz, cache.arrays["conv_relu"], input_grad)


# ------------------------------------------------------------------ depthwise conv


def depthwise_conv2d_forward(x, w, b=None, stride=1, padding=0, dilation=1):
    """Depthwise 2-D convolution: each input channel convolved with its own M filters.

    ``out[n, oh, ow, c*M + m] = b[c*M + m]
    + sum_{i, j} xp[n, oh*sh + i*dh, ow*sw + j*dw, c] * w[i, j, c, m]``,
    xp being x with zero padding. Computed tap by tap as :func:`conv2d_forward` is,
    with a broadcast product in place of the matrix product.

    Parameters
    ----------
    x : array_like, shape (N, H, W, C)
    w : array_like, shape (KH, KW, C, M)
        M filters per input channel (Keras's ``depth_multiplier``).
    b : array_like, shape (C * M,), optional
    stride, padding, dilation
        As :func:`conv2d_forward`.

    Returns
    -------
    out : ndarray, shape (N, OH, OW, C * M), x's dtype
        OH and OW as :func:`conv2d_forward`'s.
    cache : Cache
    """
    x, w, b, g = _args.depthwise_args(x, w, b, stride, padding, dilation)
    xp = _pad(x, g)
    out = np.zeros((g.N, g.OH, g.OW, g.C, g.F // g.C), dtype=x.dtype)
    for i in range(g.KH):
        for j in range(g.KW):
            out += xp[_tap(g, i, j, (g.dh, g.dw))][..., None] * w[i, j]
    out = out.reshape(g.out_shape)
    if b is not None:
        out += b
    cache = Cache("depthwise_conv2d", NAME, g, x.dtype,
                  {"x": x, "w": w, "has_bias": b is not None})
    return out, cache


def depthwise_conv2d_backward(dout, cache, input_grad=True):
    """Gradients of :func:`depthwise_conv2d_forward`.

    Parameters
    ----------
    dout : array_like, shape (N, OH, OW, C * M)
    cache : Cache
        From :func:`depthwise_conv2d_forward`.
    input_grad : bool, default True
        False skips dx (returned as None).

    Returns
    -------
    dx : ndarray, shape (N, H, W, C), or None when ``input_grad`` is False
    dw : ndarray, shape (KH, KW, C, M)
    db : ndarray, shape (C * M,), or None when the forward pass had no bias
    """
    cache = _args.check_cache(cache, "depthwise_conv2d", NAME)
    g = cache.geom
    dout = _args.check_dout(dout, g.out_shape, cache.dtype)
    x, w = cache.arrays["x"], cache.arrays["w"]
    d5 = dout.reshape(g.N, g.OH, g.OW, g.C, g.F // g.C)
    xp = _pad(x, g)
    dxp = np.zeros_like(xp)
    dw = np.empty_like(w)
    for i in range(g.KH):
        for j in range(g.KW):
            tap = _tap(g, i, j, (g.dh, g.dw))
            dw[i, j] = np.einsum("nhwc,nhwcm->cm", xp[tap], d5)
            if input_grad:
                dxp[tap] += (d5 * w[i, j]).sum(axis=-1)
    db = dout.sum(axis=(0, 1, 2)) if cache.arrays["has_bias"] else None
    dx = np.ascontiguousarray(_crop(dxp, g)) if input_grad else None
    return dx, dw, db


# ------------------------------------------------------------------------ pooling


def _windows(xp, g):
    """The PH*PW taps of every pooling window, stacked: (PH*PW, N, OH, OW, C)."""
    return np.stack([xp[_tap(g, i, j)] for i in range(g.PH) for j in range(g.PW)])


def maxpool2d_forward(x, pool_size=2, strides=None, padding="valid"):
    """2-D max pooling.

    Parameters
    ----------
    x : array_like, shape (N, H, W, C)
    pool_size : int or (int, int)
    strides : int, (int, int) or None
        None means ``pool_size`` (non-overlapping windows), as in Keras.
    padding : 'valid' or 'same'
        Padded positions never win.

    Returns
    -------
    out : ndarray, shape (N, OH, OW, C)
    cache : Cache
        Keeps, for each output, the index of the winning tap in its window.

    Notes
    -----
    Ties: the whole gradient goes to one element, the first maximum in row-major
    window order. A NaN in a window wins over every number (as in ``np.max``),
    so NaN propagates; the first NaN gets the gradient.
    """
    x, g = _args.pool_args(x, pool_size, strides, padding)
    windows = _windows(_pad(x, g), g)
    inside = _windows(_pad(np.ones((1, g.H, g.W, 1), dtype=bool), g, False), g)
    out = np.where(inside, windows, -np.inf).max(axis=0).astype(x.dtype)
    is_max = inside & ((windows == out) | np.isnan(windows))
    winner = is_max.argmax(axis=0)  # first True in window order
    cache = Cache("maxpool2d", NAME, g, x.dtype, {"winner": winner})
    return out, cache


def maxpool2d_backward(dout, cache):
    """Gradient of :func:`maxpool2d_forward`: dout goes to each window's winner.

    Returns
    -------
    dx : ndarray, shape (N, H, W, C)
    """
    cache = _args.check_cache(cache, "maxpool2d", NAME)
    g = cache.geom
    dout = _args.check_dout(dout, g.out_shape, cache.dtype)
    winner = cache.arrays["winner"]
    dxp = np.zeros((g.N, g.H + g.pt + g.pb, g.W + g.pl + g.pr, g.C), dtype=dout.dtype)
    for k, (i, j) in enumerate((i, j) for i in range(g.PH) for j in range(g.PW)):
        dxp[_tap(g, i, j)] += np.where(winner == k, dout, 0)
    return np.ascontiguousarray(_crop(dxp, g))


def _window_counts(g, dtype):
    """How many input (non-padded) elements each window holds: (1, OH, OW, 1)."""
    ones = _pad(np.ones((1, g.H, g.W, 1), dtype=dtype), g)
    return _windows(ones, g).sum(axis=0)


def avgpool2d_forward(x, pool_size=2, strides=None, padding="valid"):
    """2-D average pooling over the input (non-padded) elements of each window.

    Parameters and returns as :func:`maxpool2d_forward`.
    """
    x, g = _args.pool_args(x, pool_size, strides, padding)
    out = _windows(_pad(x, g), g).sum(axis=0) / _window_counts(g, x.dtype)
    return out, Cache("avgpool2d", NAME, g, x.dtype, {})


def avgpool2d_backward(dout, cache):
    """Gradient of :func:`avgpool2d_forward`: dout / count to every element of the window."""
    cache = _args.check_cache(cache, "avgpool2d", NAME)
    g = cache.geom
    dout = _args.check_dout(dout, g.out_shape, cache.dtype)
    share = dout / _window_counts(g, dout.dtype)
    dxp = np.zeros((g.N, g.H + g.pt + g.pb, g.W + g.pl + g.pr, g.C), dtype=dout.dtype)
    for i in range(g.PH):
        for j in range(g.PW):
            dxp[_tap(g, i, j)] += share
    return np.ascontiguousarray(_crop(dxp, g))


# --------------------------------------------------------------------------- ReLU


def relu_forward(x):
    """ReLU, ``max(x, 0)``, element-wise on an array of any shape; NaN stays NaN."""
    x = _args.as_float_array(x, "x")
    out = np.maximum(x, 0)
    return out, Cache("relu", NAME, x.shape, x.dtype, {"x": x})


def relu_backward(dout, cache):
    """Gradient of ReLU: dout where the input was > 0, else 0."""
    cache = _args.check_cache(cache, "relu", NAME)
    dout = _args.check_dout(dout, cache.geom, cache.dtype)
    return np.where(cache.arrays["x"] > 0, dout, 0).astype(cache.dtype, copy=False)


def add(a, b):
    """``a + b`` element-wise, for arrays of one shape (no broadcasting), taken in a's
    dtype: the sum of a merge or of two gradients. Returns an array of a's shape and
    dtype."""
    a, b = _args.add_args(a, b)
    return a + b


def add_relu_forward(a, b):
    """``max(a + b, 0)`` element-wise (an ``Add`` followed by a ReLU), NaN kept.

    Parameters
    ----------
    a, b : arrays of one shape (no broadcasting), taken in a's dtype

    Returns
    -------
    out : array, a's shape and dtype
    cache : Cache
        :func:`relu_forward`'s, of ``out`` (``out > 0`` exactly where ``a + b > 0``), so
        :func:`relu_backward` gives the gradient of ``a + b`` (that of a and of b).
    """
    a, b = _args.add_args(a, b)
    out = np.maximum(a + b, 0)
    return out, Cache("relu", NAME, out.shape, out.dtype, {"x": out})


def matmul(a, b, out=None):
    """Matrix product ``a @ b``: the Dense layer's products.

    Parameters
    ----------
    a : array (m, k)
    b : array (k, n)
    out : array (m, n), optional
        Writeable float32/float64: the result is written there (cast if its dtype
        differs).

    Returns
    -------
    array (m, n)
        In the common dtype of ``a`` and ``b`` (float32, or float64 if either is), or
        ``out``. The compiled backend runs it on fixed blocks of single-threaded BLAS,
        whose bits do not depend on the thread count; this reference is NumPy's
        ``matmul`` (BLAS), equal to it within rounding.
    """
    a, b, shape, direct = _args.matmul_args(a, b, out)
    result = np.matmul(a, b, out=out if direct else None)
    if out is not None and not direct:
        np.copyto(out, result, casting="same_kind")
        return out
    return result


# ------------------------------------------------------------- per-channel maps


def channel_sums(u, v=None, shift=None, gate=None):
    """Per-channel sums over rows, in float64: the statistics of a normalisation.

    Parameters
    ----------
    u : array (A, R, B)
        A groups of R rows of B channels.
    v : array (A, R, B), optional
    shift : array (A, B), optional (zeros)
    gate : pair (gp, gr) of arrays (A, B), optional (needs ``v``)
        u counts as 0 wherever ``gp * v + gr > 0`` fails (computed in u's dtype): the
        gradient through a ReLU that followed the affine map ``gp * v + gr``
        (:func:`channel_affine` with ``relu=True``), without forming it.

    Returns
    -------
    (s1, s2) : arrays (A, B), float64
        Without ``v``: ``s1 = sum_r (u - shift)``, ``s2 = sum_r (u - shift)**2`` (a
        shift near the mean keeps the variance ``s2/R - (s1/R)**2`` accurate). With
        ``v``: ``s1 = sum_r u``, ``s2 = sum_r u * (v - shift)``. The compiled backend
        adds the rows in fixed blocks, so its sums equal these within double rounding.
    """
    u, v, (shift,) = _args.channel_args(u, v, (shift,), ("shift",))
    gp, gr = _args.channel_gate_args(gate, u, v)
    if shift is None:
        shift = np.zeros((u.shape[0], u.shape[2]))
    if gp is not None:
        u = _gated(u, v, gp, gr)
    d = u.astype(np.float64)
    if v is None:
        d = d - shift[:, None, :]
        return d.sum(axis=1), (d * d).sum(axis=1)
    return d.sum(axis=1), (d * (v.astype(np.float64) - shift[:, None, :])).sum(axis=1)


def _gated(u, v, gp, gr):
    """u where ``gp * v + gr > 0``, else 0."""
    return np.where(gp[:, None, :] * v + gr[:, None, :] > 0, u, u.dtype.type(0))


def channel_affine(u, p, r, v=None, q=None, relu=False, gate=None):
    """``out = p * u + q * v + r`` per channel (without ``v``, ``p * u + r``).

    Parameters
    ----------
    u, v : arrays (A, R, B)
    p, q, r : arrays (A, B), taken in u's dtype
    relu : bool
        Then ``out`` is 0 wherever it is <= 0 (NaN kept, as :func:`relu_forward`).
    gate : pair (gp, gr) of arrays (A, B), optional (needs ``v``)
        u counts as 0 wherever ``gp * v + gr > 0`` fails, as in :func:`channel_sums`.

    Returns
    -------
    array (A, R, B), u's dtype. The compiled backend gives the same bits.
    """
    u, v, p, q, r = _args.channel_affine_args(u, p, r, v, q)
    gp, gr = _args.channel_gate_args(gate, u, v)
    if gp is not None:
        u = _gated(u, v, gp, gr)
    out = p[:, None, :] * u
    if v is not None:
        out += q[:, None, :] * v
    out += r[:, None, :]
    if relu:
        out = relu_forward(out)[0]
    return out


def layernorm_forward(x, gamma=None, beta=None, epsilon=1e-3):
    """Layer normalisation of each row of x: ``xhat * gamma + beta`` with
    ``xhat = (x - mean) * inv`` over the row's C values.

    Parameters
    ----------
    x : array (M, C)
    gamma, beta : arrays (C,), optional
    epsilon : float > 0

    Returns
    -------
    out : array (M, C), x's dtype
    mean, inv : arrays (M,), x's dtype
        The row's mean and ``1 / sqrt(var + epsilon)`` (biased variance), from sums in
        double shifted by the row's first value, rounded to x's dtype; the compiled
        backend gives the same up to the order of those sums.
    """
    x, gamma, beta, epsilon = _args.layernorm_args(x, gamma, beta, epsilon)
    dt = x.dtype.type
    first = x[:, :1].astype(np.float64)
    d = x.astype(np.float64) - first
    s1 = d.sum(axis=1) / x.shape[1]
    s2 = (d * d).sum(axis=1) / x.shape[1]
    mean = (first[:, 0] + s1).astype(x.dtype)
    var = np.maximum(s2 - s1 * s1, 0.0).astype(x.dtype)
    inv = (dt(1) / np.sqrt(var + dt(epsilon))).astype(x.dtype)
    out = (x - mean[:, None]) * inv[:, None]
    if gamma is not None:
        out = out * gamma
    if beta is not None:
        out = out + beta
    return out, mean, inv


def layernorm_backward(dout, x, mean, inv, gamma=None):
    """Gradients of :func:`layernorm_forward`.

    Parameters
    ----------
    dout, x : arrays (M, C)
    mean, inv : arrays (M,), as the forward returned them
    gamma : array (C,), optional

    Returns
    -------
    dx : array (M, C), x's dtype
        ``(dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)) * inv`` per row, with
        ``dxhat = dout * gamma`` and both means from sums in double.
    dgamma, dbeta : arrays (C,), float64
        The column sums of ``dout * xhat`` and ``dout``.
    """
    dout, x, mean, inv, gamma = _args.layernorm_backward_args(dout, x, mean, inv, gamma)
    C = x.shape[1]
    xhat = (x - mean[:, None]) * inv[:, None]
    dxhat = dout * gamma if gamma is not None else dout
    a = (dxhat.astype(np.float64).sum(axis=1) / C).astype(x.dtype)
    s = ((dxhat.astype(np.float64) * xhat).sum(axis=1) / C).astype(x.dtype)
    dx = (dxhat - a[:, None] - xhat * s[:, None]) * inv[:, None]
    dgamma = (dout.astype(np.float64) * xhat).sum(axis=0)
    return dx.astype(x.dtype, copy=False), dgamma, dout.astype(np.float64).sum(axis=0)


# ------------------------------------------------------------------------- resize


def resize2d_forward(x, size, interpolation="bilinear"):
    """Resize images to ``size`` (UpSampling2D, Resizing), as Keras 3 does on JAX.

    Output pixel (i, j) samples the source at half-pixel centres,
    ``r = (i + 0.5) * H / OH - 0.5`` and ``q = (j + 0.5) * W / OW - 0.5``. 'bilinear'
    clamps r and q to the image and blends the four pixels around them,

        out[i, j] = (1 - fr) * ((1 - fq) x[r0, q0] + fq x[r0, q1])
                    + fr * ((1 - fq) x[r1, q0] + fq x[r1, q1]),

    with ``r0 = floor(r)``, ``r1 = min(r0 + 1, H - 1)``, ``fr = r - r0`` (q likewise);
    'nearest' takes ``x[floor(r + 0.5), floor(q + 0.5)]`` (for an integer factor s,
    ``x[i // s]``: UpSampling2D's repeat). The map is separable: columns, then rows.

    Parameters
    ----------
    x : array_like, shape (N, H, W, C)
    size : int or (int, int)
        ``(OH, OW)``, each >= 1.
    interpolation : {'bilinear', 'nearest'}

    Returns
    -------
    out : ndarray, shape (N, OH, OW, C), x's dtype
    cache : Cache
        The geometry (with the taps); no arrays.
    """
    x, g = _args.resize_args(x, size, interpolation)
    r, q = g.rows, g.cols
    if not g.bilinear:
        return x[:, r.i0][:, :, q.i0], Cache("resize2d", NAME, g, x.dtype, {})
    fq = q.f.astype(x.dtype)[:, None]
    fr = r.f.astype(x.dtype)[:, None, None]
    xc = x[:, :, q.i0] * (1 - fq) + x[:, :, q.i1] * fq
    out = xc[:, r.i0] * (1 - fr) + xc[:, r.i1] * fr
    return out, Cache("resize2d", NAME, g, x.dtype, {})


def resize2d_backward(dout, cache):
    """Gradient of :func:`resize2d_forward`: each output's gradient goes back to the
    pixels it read, with their weights (rows, then columns).

    Returns
    -------
    dx : ndarray, shape (N, H, W, C)
    """
    cache = _args.check_cache(cache, "resize2d", NAME)
    g = cache.geom
    dout = _args.check_dout(dout, g.out_shape, cache.dtype)
    r, q = g.rows, g.cols
    fr = r.f.astype(dout.dtype)[:, None, None]
    fq = q.f.astype(dout.dtype)[:, None]
    dxc = np.zeros((g.N, g.H, g.OW, g.C), dtype=dout.dtype)
    np.add.at(dxc, (slice(None), r.i0), dout * (1 - fr))
    np.add.at(dxc, (slice(None), r.i1), dout * fr)
    dx = np.zeros((g.N, g.H, g.W, g.C), dtype=dout.dtype)
    np.add.at(dx, (slice(None), slice(None), q.i0), dxc * (1 - fq))
    np.add.at(dx, (slice(None), slice(None), q.i1), dxc * fq)
    return dx
