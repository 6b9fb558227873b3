"""CS231n's convolution and pooling layer functions, running on fastconv's kernels.

Change one import and a notebook written against the course's
``cs231n/layers.py`` and ``cs231n/fast_layers.py`` runs on fastconv's compiled
kernels, with nothing to compile::

    from fastconv.compat.cs231n import conv_forward_fast, conv_backward_fast

The functions keep the course's conventions:

- images are ``(N, C, H, W)``, filters ``(F, C, HH, WW)``, bias ``(F,)``;
- ``conv_param = {'stride': s, 'pad': p}`` (p zeros on every side) and
  ``pool_param = {'pool_height': ph, 'pool_width': pw, 'stride': s}``;
- every forward returns ``(out, cache)``, every backward takes ``(dout, cache)``.

Each function is a thin wrapper that validates the arguments and calls a kernel. On
the compiled backend the convolution runs on kernels that read and write the course's
layouts themselves (``fastconv._nchw``; float32 layers with a reduction C*HH*WW above
:data:`fastconv.backends.cython.NCHW_FLOAT32_MAX_K` excepted), and max pooling with
non-overlapping windows pools each (n, c) plane where it lies. Otherwise (the NumPy
backend, ``fastconv.use_backend('numpy')``, the reference; a CPU without AVX2) the
wrapper transposes to fastconv's ``(N, H, W, C)`` / ``(KH, KW, C, F)`` layout, calls
:mod:`fastconv.ops` and transposes the results back.

The course ships a naive, an im2col, a strides and a reshape version of each
layer under different names; here every name is the same function, so whichever
one a notebook imports works and is fast.

Differences from the course's code, on purpose:

- Arguments are checked with clear errors instead of ``assert``: a stride with
  which the windows do not tile the padded input exactly (the course asserts
  this) raises a ValueError naming ``conv_param['stride']`` or
  ``pool_param['stride']``, and a missing key names the dict and the key.
- Non-square kernels and pooling windows are handled correctly.
- Max-pooling ties: the whole gradient goes to one element of the window, the
  first maximum in row-major order (the course's reshape version gives it to
  every tied maximum, which makes the gradient check fail).
- dtypes: float64 stays float64 (as the course uses), float32 stays float32,
  integers become float32; ``w`` and ``b`` are cast to ``x``'s dtype.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping
from typing import Any, Optional, Tuple

import numpy as np

from .. import ops
from ..backends import get_backend, get_module
from ..backends._args import Cache, as_float_array, fail
from ._cs231n_layers import (  # the course's layers.py functions
    affine_backward,
    affine_forward,
    affine_relu_backward,
    affine_relu_forward,
    batchnorm_backward,
    batchnorm_backward_alt,
    batchnorm_forward,
    dropout_backward,
    dropout_forward,
    layernorm_backward,
    layernorm_forward,
    relu_backward,
    relu_forward,
    softmax_loss,
    spatial_batchnorm_backward,
    spatial_batchnorm_forward,
    spatial_groupnorm_backward,
    spatial_groupnorm_forward,
    svm_loss,
)

__all__ = [
    "conv_forward_fast",
    "conv_backward_fast",
    "conv_forward_naive",
    "conv_backward_naive",
    "conv_forward_strides",
    "conv_backward_strides",
    "conv_forward_im2col",
    "conv_backward_im2col",
    "max_pool_forward_fast",
    "max_pool_backward_fast",
    "max_pool_forward_naive",
    "max_pool_backward_naive",
    "max_pool_forward_reshape",
    "max_pool_backward_reshape",
    "max_pool_forward_im2col",
    "max_pool_backward_im2col",
    "conv_relu_forward",
    "conv_relu_backward",
    "conv_relu_pool_forward",
    "conv_relu_pool_backward",
    "conv_bn_relu_forward",
    "conv_bn_relu_backward",
] + [
    "affine_forward",
    "affine_backward",
    "relu_forward",
    "relu_backward",
    "affine_relu_forward",
    "affine_relu_backward",
    "batchnorm_forward",
    "batchnorm_backward",
    "batchnorm_backward_alt",
    "spatial_batchnorm_forward",
    "spatial_batchnorm_backward",
    "layernorm_forward",
    "layernorm_backward",
    "spatial_groupnorm_forward",
    "spatial_groupnorm_backward",
    "dropout_forward",
    "dropout_backward",
    "softmax_loss",
    "svm_loss",
]

_CONV_KEYS = ("stride", "pad")
_POOL_KEYS = ("pool_height", "pool_width", "stride")


# ------------------------------------------------------------------ argument checks


def _param_dict(param: Any, name: str, keys: Tuple[str, ...]) -> Mapping:
    expected = "a dict with the keys " + ", ".join(repr(k) for k in keys)
    if not isinstance(param, Mapping):
        raise fail(name, expected, param, TypeError)
    missing = [k for k in keys if k not in param]
    if missing:
        raise fail(name, f"{expected} (missing: {', '.join(repr(k) for k in missing)})",
                   param)
    return param


def _int(value: Any, name: str, minimum: int) -> int:
    if isinstance(value, (bool, np.bool_)) or not hasattr(value, "__index__"):
        raise fail(name, f"an int >= {minimum}", value, TypeError)
    value = operator.index(value)
    if value < minimum:
        raise fail(name, f"an int >= {minimum}", value)
    return value


def _nchw(x: Any, name: str, layout: str, dtype: Optional[np.dtype] = None) -> np.ndarray:
    a = as_float_array(x, name, dtype)
    if a.ndim != 4:
        raise fail(name, f"a 4-D array {layout}", a)
    return a


def _check_tiling(span: int, stride: int, key: str, what: str) -> None:
    """The course requires the windows to tile the (padded) input exactly."""
    if span >= 0 and span % stride:
        raise fail(
            key,
            f"an int that divides {what} = {span}, so that the windows tile the input "
            "exactly (as the course's layers require)",
            stride,
        )


def _pool_geometry(pool_param: Any, H: int, W: int) -> Tuple[Tuple[int, int], int]:
    """Check ``pool_param`` against an input of height H and width W."""
    p = _param_dict(pool_param, "pool_param", _POOL_KEYS)
    ph = _int(p["pool_height"], "pool_param['pool_height']", 1)
    pw = _int(p["pool_width"], "pool_param['pool_width']", 1)
    stride = _int(p["stride"], "pool_param['stride']", 1)
    if ph > H:
        raise fail("pool_param['pool_height']", f"an int <= the input height H = {H}", ph)
    if pw > W:
        raise fail("pool_param['pool_width']", f"an int <= the input width W = {W}", pw)
    _check_tiling(H - ph, stride, "pool_param['stride']", "H - pool_height")
    _check_tiling(W - pw, stride, "pool_param['stride']", "W - pool_width")
    return (ph, pw), stride


def _unpack(cache: Any, size: int, source: str) -> tuple:
    """The cache must be the tuple that ``source`` returned; its last item a kernel Cache."""
    if not (isinstance(cache, tuple) and len(cache) == size
            and isinstance(cache[-1], Cache)):
        raise fail("cache", f"the cache returned by {source}",
                   type(cache).__name__, TypeError)
    return cache


def _dout_nhwc(dout: Any, kernel_cache: Cache) -> np.ndarray:
    """Check ``dout`` against the forward output, in the course's layout; return NHWC."""
    n, oh, ow, c = kernel_cache.geom.out_shape
    d = as_float_array(dout, "dout", kernel_cache.dtype)
    if d.shape != (n, c, oh, ow):
        raise fail("dout", f"an array of the forward output's shape {(n, c, oh, ow)}", d)
    return d.transpose(0, 2, 3, 1)


def _to_nchw(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a.transpose(0, 3, 1, 2))


# ----------------------------------------------------------------------- convolution


def _conv_args(x, w, b, conv_param):
    """Check a convolution's arguments; return ``(x, w, b, stride, pad)``, x and w
    C-contiguous arrays of one float dtype, b of it too or None."""
    x = _nchw(x, "x", "(N, C, H, W)")
    w = _nchw(w, "w", "(F, C, HH, WW)", x.dtype)
    N, C, H, W = x.shape
    F, Cw, HH, WW = w.shape
    if Cw != C:
        raise ValueError(
            f"`w` must have w.shape[1] equal to the channels of x, x.shape[1] = {C}. "
            f"Received: w with shape {w.shape}"
        )
    if b is not None:
        b = as_float_array(b, "b", x.dtype)
        if b.shape != (F,):
            raise fail("b", f"an array of shape (F,) = ({F},)", b)
    p = _param_dict(conv_param, "conv_param", _CONV_KEYS)
    stride = _int(p["stride"], "conv_param['stride']", 1)
    pad = _int(p["pad"], "conv_param['pad']", 0)
    _check_tiling(H + 2 * pad - HH, stride, "conv_param['stride']", "H + 2 * pad - HH")
    _check_tiling(W + 2 * pad - WW, stride, "conv_param['stride']", "W + 2 * pad - WW")
    return x, w, b, stride, pad


def _nchw_kernels(x: np.ndarray, w: np.ndarray, pad: int) -> bool:
    """Whether the course-layout kernels take this convolution: the compiled backend,
    a CPU they run on, a dtype and reduction they win on
    (:func:`fastconv.backends.cython.nchw_chosen`), no empty size, windows that fit
    the padded image (else the channels-last path reports the problem)."""
    F, C, HH, WW = w.shape
    if get_backend() != "cython" or not get_module("cython").nchw_chosen(x.dtype,
                                                                         C * HH * WW):
        return False
    H, W = x.shape[2:]
    return x.size > 0 and w.size > 0 and H + 2 * pad >= HH and W + 2 * pad >= WW


def _conv_forward_nhwc(x, w, b, conv_param, relu=False):
    """Convolution with the course's arguments; output left in NHWC for composites.

    With ``relu`` the bias and ReLU are applied in the kernel's output pass
    (:func:`fastconv.ops.conv2d_relu_forward`).
    """
    x, w, b, stride, pad = _conv_args(x, w, b, conv_param)
    forward = ops.conv2d_relu_forward if relu else ops.conv2d_forward
    out, kernel_cache = forward(
        x.transpose(0, 2, 3, 1), w.transpose(2, 3, 1, 0), b, stride=stride, padding=pad
    )
    return out, (x, w, b, conv_param, kernel_cache)


def _conv_backward_nhwc(dout, cache):
    """``dout`` in NHWC; gradients in the course's layouts (through the ReLU too when
    the forward pass was the fused one)."""
    kernel_cache = cache[-1]
    backward = ops.conv2d_relu_backward if kernel_cache.op == "conv2d_relu" \
        else ops.conv2d_backward
    dx, dw, db = backward(dout, kernel_cache)
    return _to_nchw(dx), np.ascontiguousarray(dw.transpose(3, 2, 0, 1)), db


def conv_forward_fast(x: Any, w: Any, b: Any, conv_param: Mapping) -> Tuple[np.ndarray, tuple]:
    """Forward pass of a convolutional layer (cross-correlation, as in the course).

    Parameters
    ----------
    x : array_like, shape (N, C, H, W)
        Input images. float32 and float64 keep their dtype; integers become float32.
    w : array_like, shape (F, C, HH, WW)
        F filters, cast to x's dtype. HH and WW may differ.
    b : array_like, shape (F,), or None
        Bias, cast to x's dtype.
    conv_param : dict
        ``'stride'``: int >= 1, the step between windows, in both directions;
        ``'pad'``: int >= 0, the number of zeros added on every side.
        ``H + 2 * pad - HH`` and ``W + 2 * pad - WW`` must be multiples of the stride.

    Returns
    -------
    out : ndarray, shape (N, F, H', W'), x's dtype
        ``H' = 1 + (H + 2 * pad - HH) // stride``, ``W' = 1 + (W + 2 * pad - WW) // stride``.
    cache : tuple
        ``(x, w, b, conv_param, kernel_cache)``: the inputs as arrays of x's dtype (the
        course's layouts), ``conv_param`` as given, and the kernel's cache that
        :func:`conv_backward_fast` uses (op ``'conv2d_nchw'`` from the course-layout
        kernels, else the :mod:`fastconv.ops` cache of the channels-last path).

    Raises
    ------
    ValueError, TypeError
        For an argument of the wrong shape, dtype or value, naming it; a missing or
        invalid ``conv_param`` entry is named as ``conv_param['stride']``, for example.
    """
    x, w, b, stride, pad = _conv_args(x, w, b, conv_param)
    if _nchw_kernels(x, w, pad):
        out, kernel_cache = get_module("cython").conv_nchw_forward(x, w, b, stride, pad)
        return out, (x, w, b, conv_param, kernel_cache)
    out, cache = _conv_forward_nhwc(x, w, b, conv_param)
    return _to_nchw(out), cache


def conv_backward_fast(dout: Any, cache: tuple) -> Tuple[np.ndarray, np.ndarray, Any]:
    """Backward pass of a convolutional layer.

    Parameters
    ----------
    dout : array_like, shape (N, F, H', W')
        Upstream gradient, cast to the forward pass's dtype.
    cache : tuple
        From :func:`conv_forward_fast` (or any of its aliases).

    Returns
    -------
    dx : ndarray, shape (N, C, H, W)
    dw : ndarray, shape (F, C, HH, WW)
    db : ndarray, shape (F,), or None when the forward pass had ``b=None``
    """
    cache = _unpack(cache, 5, "conv_forward_fast")
    kernel_cache = cache[-1]
    if kernel_cache.op == "conv2d_nchw":
        shape = kernel_cache.geom[0]
        d = as_float_array(dout, "dout", kernel_cache.dtype)
        if d.shape != shape:
            raise fail("dout", f"an array of the forward output's shape {shape}", d)
        return get_module("cython").conv_nchw_backward(d, kernel_cache)
    return _conv_backward_nhwc(_dout_nhwc(dout, kernel_cache), cache)


# ------------------------------------------------------------------------ max pooling


def max_pool_forward_fast(x: Any, pool_param: Mapping) -> Tuple[np.ndarray, tuple]:
    """Forward pass of a max-pooling layer (no padding).

    Parameters
    ----------
    x : array_like, shape (N, C, H, W)
    pool_param : dict
        ``'pool_height'``, ``'pool_width'``: the window, ints >= 1 (they may differ);
        ``'stride'``: int >= 1. ``H - pool_height`` and ``W - pool_width`` must be
        multiples of the stride.

    Returns
    -------
    out : ndarray, shape (N, C, H', W'), x's dtype
        ``H' = 1 + (H - pool_height) // stride``, ``W' = 1 + (W - pool_width) // stride``.
    cache : tuple
        ``(x, pool_param, kernel_cache)``: the input as an array (course layout),
        ``pool_param`` as given, and the :mod:`fastconv.ops` cache, which holds the
        position of each window's maximum.

    Notes
    -----
    A window's gradient goes to one element: its first maximum in row-major order.
    NaN counts as the largest value.
    """
    x = _nchw(x, "x", "(N, C, H, W)")
    pool, stride = _pool_geometry(pool_param, x.shape[2], x.shape[3])
    if get_backend() == "cython" and pool == (stride, stride) and stride * stride <= 127:
        # Non-overlapping windows (the usual 2x2, stride 2): pool each (n, c) plane where
        # it lies, without moving the channels last and back.
        n, c, h, w = x.shape
        planes = x.reshape(n * c, h, w)  # _nchw gave a C-contiguous float array
        out, win = get_module("cython").maxpool_planes_forward(planes, pool)
        kernel_cache = Cache("maxpool2d_planes", "cython", (x.shape, pool), planes.dtype,
                             {"win": win})
        return out.reshape(n, c, *out.shape[1:]), (x, pool_param, kernel_cache)
    out, kernel_cache = ops.maxpool2d_forward(x.transpose(0, 2, 3, 1), pool, stride, "valid")
    return _to_nchw(out), (x, pool_param, kernel_cache)


def max_pool_backward_fast(dout: Any, cache: tuple) -> np.ndarray:
    """Backward pass of a max-pooling layer.

    Parameters
    ----------
    dout : array_like, shape (N, C, H', W')
    cache : tuple
        From :func:`max_pool_forward_fast` (or any of its aliases).

    Returns
    -------
    dx : ndarray, shape (N, C, H, W)
        Each window's gradient at the position of its (first) maximum, zero elsewhere;
        overlapping windows add up.
    """
    cache = _unpack(cache, 3, "max_pool_forward_fast")
    kernel_cache = cache[-1]
    if kernel_cache.op == "maxpool2d_planes":
        shape, pool = kernel_cache.geom
        win = kernel_cache.arrays["win"]
        d = as_float_array(dout, "dout", kernel_cache.dtype)
        if d.shape != shape[:2] + win.shape[1:]:
            raise fail("dout", "an array of the forward output's shape "
                       f"{shape[:2] + win.shape[1:]}", d)
        dx = get_module("cython").maxpool_planes_backward(
            d.reshape(win.shape), win,  # as_float_array: C-contiguous
            (shape[0] * shape[1],) + shape[2:], pool)
        return dx.reshape(shape)
    return _to_nchw(ops.maxpool2d_backward(_dout_nhwc(dout, kernel_cache), kernel_cache))


# ----------------------------------------------------------------- composite layers


def conv_relu_forward(x: Any, w: Any, b: Any, conv_param: Mapping) -> Tuple[np.ndarray, tuple]:
    """Convolution followed by ReLU.

    Parameters are those of :func:`conv_forward_fast`.

    Returns
    -------
    out : ndarray, shape (N, F, H', W')
    cache : tuple
        ``(conv_cache, relu_cache)``: the convolution's cache, in the form
        :func:`conv_forward_fast` returns, and then either the convolution's output
        (N, F, H', W') (the course-layout kernels; the cache of :func:`relu_forward`)
        or the :func:`fastconv.ops.conv2d_relu_forward` cache the convolution's cache
        holds last (elsewhere: convolution and ReLU run as one fused channels-last
        kernel).
    """
    x, w, b, stride, pad = _conv_args(x, w, b, conv_param)
    if _nchw_kernels(x, w, pad):
        a, conv_cache = conv_forward_fast(x, w, b, conv_param)
        out, relu_cache = relu_forward(a)
        return out, (conv_cache, relu_cache)
    # Bias and ReLU in the convolution kernel's output pass, on its NHWC output, so
    # the layouts are swapped only once.
    out, conv_cache = _conv_forward_nhwc(x, w, b, conv_param, relu=True)
    return _to_nchw(out), (conv_cache, conv_cache[-1])


def conv_relu_backward(dout: Any, cache: tuple) -> Tuple[np.ndarray, np.ndarray, Any]:
    """Backward pass of :func:`conv_relu_forward`.

    Parameters
    ----------
    dout : array_like, shape (N, F, H', W')
    cache : tuple
        From :func:`conv_relu_forward`.

    Returns
    -------
    dx : ndarray, shape (N, C, H, W)
    dw : ndarray, shape (F, C, HH, WW)
    db : ndarray, shape (F,), or None
    """
    conv_cache, relu_cache = _unpack_composite(cache, 2, "conv_relu_forward")
    if isinstance(relu_cache, np.ndarray):
        return conv_backward_fast(relu_backward(dout, relu_cache), conv_cache)
    return _conv_backward_nhwc(_dout_nhwc(dout, conv_cache[-1]), conv_cache)


def conv_relu_pool_forward(x: Any, w: Any, b: Any, conv_param: Mapping,
                           pool_param: Mapping) -> Tuple[np.ndarray, tuple]:
    """Convolution, ReLU, then max pooling.

    Parameters are those of :func:`conv_forward_fast`, and ``pool_param`` of
    :func:`max_pool_forward_fast`, checked against the convolution's output size.

    Returns
    -------
    out : ndarray, shape (N, F, H'', W'')
        ``H'' = 1 + (H' - pool_height) // pool_stride`` with H' the convolution's output
        height; the same for W''.
    cache : tuple
        ``(conv_cache, relu_cache, pool_cache)``: the caches of
        :func:`conv_relu_forward`, then that of :func:`max_pool_forward_fast` (the
        course-layout kernels) or the :mod:`fastconv.ops` cache of the max pooling on
        the (N, H', W', F) layout (elsewhere).
    """
    x, w, b, stride, pad = _conv_args(x, w, b, conv_param)
    if _nchw_kernels(x, w, pad):
        a, (conv_cache, relu_cache) = conv_relu_forward(x, w, b, conv_param)
        out, pool_cache = max_pool_forward_fast(a, pool_param)
        return out, (conv_cache, relu_cache, pool_cache)
    out, conv_cache = _conv_forward_nhwc(x, w, b, conv_param, relu=True)
    pool, stride = _pool_geometry(pool_param, out.shape[1], out.shape[2])
    out, pool_cache = ops.maxpool2d_forward(out, pool, stride, "valid")
    return _to_nchw(out), (conv_cache, conv_cache[-1], pool_cache)


def conv_relu_pool_backward(dout: Any, cache: tuple) -> Tuple[np.ndarray, np.ndarray, Any]:
    """Backward pass of :func:`conv_relu_pool_forward`.

    Parameters
    ----------
    dout : array_like, shape (N, F, H'', W'')
    cache : tuple
        From :func:`conv_relu_pool_forward`.

    Returns
    -------
    dx : ndarray, shape (N, C, H, W)
    dw : ndarray, shape (F, C, HH, WW)
    db : ndarray, shape (F,), or None
    """
    conv_cache, relu_cache, pool_cache = _unpack_composite(cache, 3,
                                                           "conv_relu_pool_forward")
    if isinstance(relu_cache, np.ndarray):
        da = max_pool_backward_fast(dout, pool_cache)
        return conv_relu_backward(da, (conv_cache, relu_cache))
    d = ops.maxpool2d_backward(_dout_nhwc(dout, pool_cache), pool_cache)
    return _conv_backward_nhwc(d, conv_cache)


def _unpack_composite(cache: Any, size: int, source: str) -> tuple:
    """A composite's cache: the conv layer's cache, then either the channels-last
    kernel caches or the ReLU's input (an array) and, for pooling, the pooling
    layer's cache."""
    ok = (isinstance(cache, tuple) and len(cache) == size
          and isinstance(cache[0], tuple) and len(cache[0]) == 5
          and isinstance(cache[0][-1], Cache))
    if ok and isinstance(cache[1], np.ndarray):
        ok = size == 2 or (isinstance(cache[2], tuple) and len(cache[2]) == 3
                           and isinstance(cache[2][-1], Cache))
    elif ok:
        ok = all(isinstance(c, Cache) for c in cache[1:])
    if not ok:
        raise fail("cache", f"the cache returned by {source}", type(cache).__name__, TypeError)
    return cache


# The course's other implementations of the same layers: one fast function for each name.
conv_forward_naive = conv_forward_fast
conv_backward_naive = conv_backward_fast
conv_forward_strides = conv_forward_fast
conv_backward_strides = conv_backward_fast
conv_forward_im2col = conv_forward_fast
conv_backward_im2col = conv_backward_fast
max_pool_forward_naive = max_pool_forward_fast
max_pool_backward_naive = max_pool_backward_fast
max_pool_forward_reshape = max_pool_forward_fast
max_pool_backward_reshape = max_pool_backward_fast
max_pool_forward_im2col = max_pool_forward_fast
max_pool_backward_im2col = max_pool_backward_fast


def conv_bn_relu_forward(x: Any, w: Any, b: Any, gamma: Any, beta: Any, conv_param: Mapping,
                         bn_param: dict) -> Tuple[np.ndarray, tuple]:
    """Convolution, spatial batch normalisation, then ReLU (the course's layer_utils).

    Returns ``out`` (N, F, H', W') and the cache ``(conv_cache, bn_cache, relu_cache)``;
    ``bn_param`` is that of :func:`spatial_batchnorm_forward`, updated in place.
    """
    a, conv_cache = conv_forward_fast(x, w, b, conv_param)
    an, bn_cache = spatial_batchnorm_forward(a, gamma, beta, bn_param)
    out, relu_cache = relu_forward(an)
    return out, (conv_cache, bn_cache, relu_cache)


def conv_bn_relu_backward(dout: Any, cache: tuple) -> Tuple[np.ndarray, ...]:
    """Backward pass of :func:`conv_bn_relu_forward`: (dx, dw, db, dgamma, dbeta)."""
    conv_cache, bn_cache, relu_cache = cache
    dan = relu_backward(dout, relu_cache)
    da, dgamma, dbeta = spatial_batchnorm_backward(dan, bn_cache)
    dx, dw, db = conv_backward_fast(da, conv_cache)
    return dx, dw, db, dgamma, dbeta
