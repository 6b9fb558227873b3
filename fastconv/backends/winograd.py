"""Winograd convolution in NumPy: the readable twin of the compiled kernels, and their
error bounds.

A 3x3, stride-1 convolution computes each m x m block of outputs ("tile") from the
(m + 2) x (m + 2) input block under it. Winograd's minimal filtering algorithm F(m x m,
3 x 3) (Lavin and Gray, "Fast Algorithms for Convolutional Neural Networks", 2016)
does so with (m + 2)^2 multiplications per channel pair instead of 9 m^2:

    y = A^T [ (G g G^T) . (B^T d B) ] A

for an input tile d, a filter g and the output tile y ("." element-wise). Summed over
the input channels, the element-wise products become (m + 2)^2 independent matrix
products over channels: M[k] (tiles, F) = V[k] (tiles, C) @ U[k] (C, F), where
U = G g G^T and V = B^T d B are the transformed filters and input tiles. The weight
gradient follows by differentiating the same formula: dg = G^T [ Σ_tiles
(B^T d B) . (A dy A^T) ] G; the input gradient is the same forward pass run on dout
with the filters flipped and transposed.

F(2x2, 3x3) (m = 2) needs 2.25x fewer multiplications than direct convolution and is
what :mod:`fastconv._winograd` compiles; F(4x4, 3x3) (m = 4, 4x fewer) is here for
comparison: its transforms have larger constants and lose more accuracy
(:func:`error_bound`).

Error bound. Let u be the unit roundoff and S the sum of ``|terms|`` of an output
(the same convolution on ``|x|``, ``|w|``, plus ``|b|``). Each value the algorithm
computes is a sum of products of transform coefficients, inputs and weights, each
term perturbed by at most (1 + u)^n, with n = C + :func:`rounding_depth`: the channel sum (C terms) and
the transforms' sums and coefficient products. So ``|y_computed - y|`` <= gamma_n T,
gamma_n = n u / (1 - n u), where T is the same algorithm run on the absolute values
of everything (:func:`abs_coefficients`). T contains, besides the output's own terms,
terms that cancel exactly in y: products of an input and a filter tap that belong to
a neighbouring output (offsets up to a tile away, possibly past the image's edge:
"virtual" outputs). Grouping T's terms by the output they belong to gives
T <= :func:`ghost_factor` ^ 2 * max S over the outputs and virtual outputs
(:func:`extended_scale`). Hence, relative to the sum of ``|terms|`` as
:mod:`fastconv.testing` measures it (the scale extended to the virtual outputs),

    error <= ghost_factor(m) ** 2 * gamma_(C + rounding_depth(m))

(:func:`error_bound`): ghost_factor(2) = 5 (a factor 25 in 2-D, about 6e-5 for
C = 16 and 4e-4 for C = 256 in float32), ghost_factor(4) = 31 (961 in 2-D: 2.7e-3 and
1.6e-2). The weight gradient has the same form with its own factor (``kind='dw'``: 4
for m = 2, 31.7 for m = 4), n counting the tiles summed instead of C, and its scale
extended to virtual taps (:func:`extended_dw_scale`; for m = 2 there are none).
This is a worst case (every rounding error of one sign, magnitudes arranged to
maximise the cancelled terms). On random normal data (7x7 maps, 32-256 channels,
float32) the measured errors were 7e-8 to 1.1e-7 for the compiled F(2x2, 3x3), 1.6e-7
to 2.1e-7 for the direct kernels, and 0.9e-6 to 1.6e-6 for F(4x4, 3x3) here.
"""

from __future__ import annotations

from typing import Dict, Tuple

import numpy as np

from . import _args
from ._args import Cache, fail

__all__ = [
    "MATRICES",
    "winograd_conv2d_forward",
    "winograd_conv2d_backward",
    "abs_coefficients",
    "ghost_factor",
    "offsets",
    "rounding_depth",
    "error_bound",
    "extended_scale",
    "extended_scale_at",
    "extended_dw_scale",
]

NAME = "winograd-reference"

#: (B^T, G, A^T) of F(m x m, 3 x 3) for m = 2 (points 0, 1, -1, inf) and m = 4
#: (points 0, 1, -1, 2, -2, inf), as in Lavin and Gray's paper.
MATRICES: Dict[int, Tuple[np.ndarray, np.ndarray, np.ndarray]] = {
    2: (np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], float),
        np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]]),
        np.array([[1, 1, 1, 0], [0, 1, -1, -1]], float)),
    4: (np.array([[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0],
                  [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]], float),
        np.array([[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6],
                  [1 / 24, 1 / 12, 1 / 6], [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]]),
        np.array([[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0],
                  [0, 1, -1, 8, -8, 1]], float)),
}


def _matrices(m: int, dtype):
    if m not in MATRICES:
        raise fail("m", f"one of {sorted(MATRICES)}", m)
    return tuple(a.astype(dtype) for a in MATRICES[m])


def _placed(a, top, left, height, width):
    """a (N, h, w, C) placed with its corner at (top, left) (either may be negative:
    then a is cropped) in zeros of (N, height, width, C)."""
    n, h, w, c = a.shape
    out = np.zeros((n, height, width, c), dtype=a.dtype)
    r0, c0 = max(0, top), max(0, left)
    r1, c1 = min(height, top + h), min(width, left + w)
    if r1 > r0 and c1 > c0:
        out[:, r0:r1, c0:c1] = a[:, r0 - top:r1 - top, c0 - left:c1 - left]
    return out


def _input_tiles(x, top, left, th, tw, m):
    """The (m+2)^2 input tiles of x padded by (top, left): (N, th, tw, m+2, m+2, C)."""
    xp = _placed(x, top, left, m * th + 2, m * tw + 2)
    win = np.lib.stride_tricks.sliding_window_view(xp, (m + 2, m + 2), axis=(1, 2))
    return win[:, ::m, ::m].transpose(0, 1, 2, 4, 5, 3)  # (N, th, tw, r, s, C)


def _tiled_conv(x, w, top, left, oh, ow, m):
    """The 3x3 stride-1 correlation of x padded by (top, left) (signed) with w
    (3, 3, C, F), outputs (N, oh, ow, F), by F(m x m, 3 x 3) tile by tile."""
    bt, g, at = _matrices(m, x.dtype)
    th, tw = -(-oh // m), -(-ow // m)
    d = _input_tiles(x, top, left, th, tw, m)
    v = np.einsum("ir,ntwrsc->ntwisc", bt, d)
    v = np.einsum("js,ntwisc->ntwijc", bt, v)  # V = B^T d B
    u = np.einsum("ia,abcf->ibcf", g, w)
    u = np.einsum("jb,ibcf->ijcf", g, u)  # U = G g G^T
    mk = np.einsum("ntwijc,ijcf->ntwijf", v, u)  # the (m+2)^2 products over channels
    y = np.einsum("ai,ntwijf->ntwajf", at, mk)
    y = np.einsum("bj,ntwajf->ntwabf", at, y)  # Y = A^T M A
    n, f = x.shape[0], w.shape[3]
    y = y.transpose(0, 1, 3, 2, 4, 5).reshape(n, m * th, m * tw, f)
    return np.ascontiguousarray(y[:, :oh, :ow])


def _check_3x3(g):
    if (g.KH, g.KW) != (3, 3):
        raise fail("w", "filters of shape (3, 3, C, F)", (g.KH, g.KW, g.C, g.F))
    if (g.sh, g.sw, g.dh, g.dw) != (1, 1, 1, 1):
        raise fail("stride and dilation", "1", ((g.sh, g.sw), (g.dh, g.dw)))


def winograd_conv2d_forward(x, w, b=None, padding=0, m=2):
    """3x3 stride-1 convolution by Winograd F(m x m, 3 x 3); what
    :func:`fastconv.backends.numpy.conv2d_forward` computes, rounded differently.

    Parameters
    ----------
    x : array_like, shape (N, H, W, C)
    w : array_like, shape (3, 3, C, F)
    b : array_like, shape (F,), optional
    padding : as :func:`fastconv.backends.numpy.conv2d_forward`
    m : {2, 4}
        Output tile size.

    Returns
    -------
    out : ndarray, shape (N, OH, OW, F), x's dtype
    cache : Cache
        x, w, the geometry and m, for :func:`winograd_conv2d_backward`.
    """
    x, w, b, g = _args.conv_args(x, w, b, 1, padding, 1)
    _check_3x3(g)
    _matrices(m, x.dtype)
    out = _tiled_conv(x, w, g.pt, g.pl, g.OH, g.OW, m)
    if b is not None:
        out += b
    cache = Cache("conv2d", NAME, g, x.dtype,
                  {"x": x, "w": w, "has_bias": b is not None, "m": m})
    return out, cache


def winograd_conv2d_backward(dout, cache, input_grad=True):
    """Gradients of :func:`winograd_conv2d_forward`, by the same algorithm.

    dx is the forward pass on dout with the filters flipped and transposed (the input
    gradient of a stride-1 convolution); dw = G^T [Σ_tiles (B^T d B) . (A dy A^T)] G.

    Returns
    -------
    dx : ndarray, shape (N, H, W, C), or None when ``input_grad`` is False
    dw : ndarray, shape (3, 3, C, F)
    db : ndarray, shape (F,), or None when the forward pass had no bias
    """
    cache = _args.check_cache(cache, "conv2d", NAME)
    g = cache.geom
    dout = _args.check_dout(dout, g.out_shape, cache.dtype)
    x, w, m = cache.arrays["x"], cache.arrays["w"], cache.arrays["m"]
    dx = None
    if input_grad:
        w_flip = np.ascontiguousarray(w[::-1, ::-1].transpose(0, 1, 3, 2))
        dx = _tiled_conv(dout, w_flip, 2 - g.pt, 2 - g.pl, g.H, g.W, m)
    bt, gm, at = _matrices(m, x.dtype)
    th, tw = -(-g.OH // m), -(-g.OW // m)
    v = np.einsum("ir,js,ntwrsc->ntwijc", bt, bt, _input_tiles(x, g.pt, g.pl, th, tw, m))
    dy = _placed(dout, 0, 0, m * th, m * tw).reshape(g.N, th, m, tw, m, g.F)
    e = np.einsum("ia,jb,nhawbf->nhwijf", at.T, at.T, dy)  # E = A dy A^T
    s = np.einsum("ntwijc,ntwijf->ijcf", v, e)
    dw = np.einsum("ia,jb,ijcf->abcf", gm, gm, s)  # G^T S G
    db = dout.sum(axis=(0, 1, 2)) if cache.arrays["has_bias"] else None
    return dx, dw, db


# ----------------------------------------------------------------------- error bound


def abs_coefficients(m: int) -> np.ndarray:
    """kappa[o, p, q] = Σ_k ``|A^T[o, k]|`` ``|B^T[k, p]|`` ``|G[k, q]|``: the weight
    of ``|d_p|`` ``|g_q|`` in output o of the one-dimensional F(m, 3) run on absolute
    values."""
    bt, g, at = (np.abs(a) for a in MATRICES[m])
    return np.einsum("ok,kp,kq->opq", at, bt, g)


def _grouped(m: int, kind: str):
    """{offset: max coefficient} per output o (forward) or tap q (dw): the terms of
    T grouped by the output (forward: v = p - q) or tap (dw: q' = p - o) they belong
    to."""
    kappa = abs_coefficients(m)
    rows = []
    for a in range(kappa.shape[0] if kind == "forward" else 3):
        best: Dict[int, float] = {}
        for o, p, q in zip(*np.nonzero(kappa)):
            if (o if kind == "forward" else q) != a:
                continue
            key = int(p - q) if kind == "forward" else int(p - o)
            best[key] = max(best.get(key, 0.0), float(kappa[o, p, q]))
        rows.append(best)
    return rows


def ghost_factor(m: int, kind: str = "forward") -> float:
    """max over outputs (taps, for ``kind='dw'``) of Σ over the neighbouring outputs
    (taps) of the largest coefficient of their terms: the one-dimensional factor by
    which the absolute-value computation can exceed the largest sum of ``|terms|``."""
    return max(sum(r.values()) for r in _grouped(m, kind))


def offsets(m: int, kind: str = "forward") -> Tuple[int, int]:
    """The range (lo, hi) of the (virtual) output rows, relative to a tile's first
    row, whose terms enter a tile's computation; for ``kind='dw'``, of the (virtual)
    taps."""
    keys = [k for r in _grouped(m, kind) for k in r]
    return min(keys), max(keys)


def rounding_depth(m: int) -> int:
    """The roundings besides the channel sum's a term can meet: per dimension, each
    transform's row sum (its nonzeros) and coefficient product, and the bias."""
    nz = sum(int((a != 0).sum(axis=1).max()) + 1 for a in MATRICES[m])
    return 2 * nz + 1


def error_bound(m: int, reduction: int, dtype, kind: str = "forward") -> float:
    """The bound above: ghost_factor(m, kind)^2 * gamma_n, n = reduction +
    rounding_depth(m), in relative error to the extended sum of ``|terms|``.
    ``reduction``: C (forward), F (dx) or the number of tiles (dw)."""
    u = np.finfo(dtype).eps / 2
    n = reduction + rounding_depth(m)
    return float(ghost_factor(m, kind) ** 2 * n * u / (1 - n * u))


def extended_scale(x, w, b=None, padding=0, m=2) -> np.ndarray:
    """The sum of ``|terms|`` (float64) of every output and virtual output the error
    bound refers to: the correlation of ``|x|`` with ``|w|`` (plus ``|b|``) over output
    rows ``lo .. m*(TH-1) + hi`` (:func:`offsets`), columns likewise; shape
    (N, rows, cols, F)."""
    x, w, b, g = _args.conv_args(x, w, b, 1, padding, 1)
    out = extended_scale_at(x, w, g.pt, g.pl, g.OH, g.OW, m)
    return out + (0 if b is None else np.abs(b))


def extended_scale_at(x, w, top, left, oh, ow, m=2) -> np.ndarray:
    """:func:`extended_scale` without bias, of the (oh, ow) outputs of x padded by
    (top, left) (signed, as the input gradient's forward pass needs)."""
    lo, hi = offsets(m)
    rows = m * (-(-oh // m) - 1) + hi - lo + 1
    cols = m * (-(-ow // m) - 1) + hi - lo + 1
    xa = _placed(np.abs(x).astype(np.float64), top - lo, left - lo, rows + 2, cols + 2)
    wa = np.abs(w).astype(np.float64)
    out = np.zeros((x.shape[0], rows, cols, w.shape[3]))
    for i in range(3):
        for j in range(3):
            out += xa[:, i:i + rows, j:j + cols] @ wa[i, j]
    return out


def extended_dw_scale(x, dout, padding=0, m=2) -> np.ndarray:
    """The sum of ``|terms|`` (float64) of every weight-gradient tap and virtual tap
    (``offsets(m, 'dw')``): Σ_n,o ``|x[o + q']|`` ``|dout[o]|`` over the outputs o."""
    x = _args.as_float_array(x, "x")
    dout = _args.as_float_array(dout, "dout")
    g = _args.conv_geometry(x.shape, (3, 3, x.shape[3], dout.shape[3]), 1, padding, 1)
    lo, hi = offsets(m, "dw")
    k = hi - lo + 1
    xa = _placed(np.abs(x).astype(np.float64), g.pt - lo, g.pl - lo, g.OH + k - 1,
                 g.OW + k - 1)
    da = np.abs(dout).astype(np.float64)
    out = np.empty((k, k, g.C, g.F))
    for i in range(k):
        for j in range(k):
            out[i, j] = np.tensordot(xa[:, i:i + g.OH, j:j + g.OW], da,
                                     axes=([0, 1, 2], [0, 1, 2]))
    return out
