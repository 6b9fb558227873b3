"""The compiled backend: the same functions as :mod:`fastconv.backends.numpy`, fast.

Each function validates and normalises its arguments with the same helpers as the
reference (:mod:`fastconv.backends._args`), allocates outputs and workspaces, and
then calls a Cython kernel that runs without the GIL on the OpenMP threads
:func:`fastconv._threads.kernel_threads` grants it (``fastconv.get_num_threads()``
when it runs alone, a share of them when other Python threads run kernels too), with
BLAS held to one thread meanwhile. See ``src/_conv.pyx`` and ``src/_pool.pyx`` for
the algorithms.

Results are bit-identical for any thread count: work is cut into pieces whose
sizes depend only on the shapes, and partial sums are combined in a fixed order. So
a call gives the same bits alone or beside others (tests/test_concurrency.py).
"""

from __future__ import annotations

import functools
from typing import Tuple

import numpy as np

from .. import _conv, _depthwise, _elementwise, _nchw, _norm, _pool, _resize, _winograd
from .._threads import kernel_threads, pin_kernel_blas
from . import _aligned, _args, dispatch
from ._args import Cache
from .dispatch import FiniteWeights

# SciPy's BLAS, which the kernels call, runs on one thread in every thread (see the
# function's docstring for why the per-call hold alone was not enough).
_KERNEL_BLAS_PINNED = pin_kernel_blas()

NAME = "cython"

__all__ = [
    "conv2d_forward",
    "conv2d_backward",
    "conv2d_relu_forward",
    "conv2d_relu_backward",
    "conv2d_relu_maxpool_forward",
    "conv2d_relu_maxpool_backward",
    "maxpool2d_forward",
    "maxpool2d_backward",
    "avgpool2d_forward",
    "avgpool2d_backward",
    "relu_forward",
    "relu_backward",
    "add_relu_forward",
    "add",
    "matmul",
    "depthwise_conv2d_forward",
    "depthwise_conv2d_backward",
    "resize2d_forward",
    "resize2d_backward",
    "channel_sums",
    "channel_affine",
    "layernorm_forward",
    "layernorm_backward",
]

# Bytes of im2col workspace per thread (so memory does not grow with the batch).
# Forward rate of layers b, d, e, f on one thread, timed by per-thread CPU time:
# 128 KiB 61-62 GFLOP/s, 256 KiB 65, 512 KiB 70, 1 MiB 73, 2 MiB 73 (OpenBLAS sgemm
# 88 on the same core).
_TILE_BYTES = 1024 * 1024
_TILE_MULTIPLE = 8
# Fixed number of partial weight gradients (not tied to the thread count, so the
# summation order, and hence the bits, do not depend on it).
_WEIGHT_GRAD_GROUPS = 16
# The least work of a piece the shapes cut a pass into (dw's groups, matmul's
# blocks); fixed, as the pieces decide the bits. At 12 MFLOP bench layer a's backward
# (12.5 MFLOP of dw, fused with dx) ran in one group: 0.34 -> 0.74 ms; at 1 MFLOP 0.48-
# 0.58.
_PIECE_MIN_FLOP = 1e6
# Partial weight gradients hold at least this many output positions each: each
# group's (K, F) partial is zeroed, written and summed once, which cost more than the
# products where a group held few positions. dw alone, float32, 2 threads, always 16
# groups (im2col-gemm: as many as tiles, up to 16) -> this rule (benchmarks/
# crossover.py --sweep 24 --seed 1, medians of 3 rounds): 2x32x32x96 -> 256 7x7/2 (338
# positions, K*F = 1.2M) direct 10.4 -> 4.7 ms, im2col-gemm (8 groups) 5.9 -> 4.6;
# 1x14x14x96 -> 48 7x7 0.85 -> 0.53; 1x8x8x48 -> 64 1x1/2 0.11 -> 0.02. 64 positions
# per group: within noise of 128; 512: 2x32x32x96 -> 256 back to 8.4 (one group, one
# thread).
_DW_GROUP_POSITIONS = 128


def _dw_groups(g, pieces: int, at_least: int = 1) -> int:
    """Partial weight gradients of ``g`` in ``pieces`` indivisible pieces (output rows
    or tiles): at most 16 and ``pieces``; else ``at_least`` or, when more, one per
    ``_DW_GROUP_POSITIONS`` output positions and per ``_PIECE_MIN_FLOP``, whichever
    is fewer; a power of two (equal shares on 2, 4, 8 threads). Shapes alone decide."""
    per = min(g.N * g.OH * g.OW // _DW_GROUP_POSITIONS,
              int(dispatch.flop(g) // _PIECE_MIN_FLOP))
    cap = max(1, min(_WEIGHT_GRAD_GROUPS, pieces, max(at_least, per)))
    return 1 << (cap.bit_length() - 1)


# col2im's GEMM writes (tile, K) columns from dout (tile, F) @ W^T (F, K): every tile
# packs all of W again, so with long reductions the tiles must be long too. Backward
# ms by workspace per thread 1 / 2 / 4 / 8 MiB (2 threads, float32, dx on col2im):
# 2x32x32x96 -> 256 7x7/2 11.3 / 11.3 / 7.35 / 7.4; 16x56x56x16 -> 64 7x7/2 13.2 /
# 13.2 / 12.2 / 12.05; 2x28x28x256 -> 24 3x3/2 1.37 / 1.16 / 1.15 / 1.23; 64x7x7x24 ->
# 512 3x3/2, 32x28x28x64 -> 128 3x3/2 and 128x8x8x24 -> 384 3x3 within 4% across all
# four. (The workspace stays bounded whatever the batch: threads x 4 MiB.)
_COL2IM_TILE_BYTES = 4 * _TILE_BYTES
# The input gradient by col2im batches small images (several per GEMM), in at least
# this many runs, a fixed number so that the bits do not depend on the threads.
_COL2IM_MIN_TASKS = 8
# Which kernel runs each pass is decided by the table in dispatch.py.
_HAVE_AVX2 = dispatch.HAVE_AVX2


def _tile(positions: int, k: int, itemsize: int, budget: int = _TILE_BYTES) -> int:
    """Output positions per tile: fills at most ``_TILE_BYTES`` of workspace, at least
    16; when there is more than one tile, their number is a multiple of
    ``_TILE_MULTIPLE``, so that 2, 4 or 8 threads get equal shares (five tiles on two
    threads ran at 1.37x one thread on layer e). Shapes alone decide, never threads."""
    tile = int(min(positions, max(16, budget // (k * itemsize))))
    tiles = -(-positions // tile)
    if tiles > 1:
        tiles = -(-tiles // _TILE_MULTIPLE) * _TILE_MULTIPLE
        tile = max(16, -(-positions // tiles))
    return tile


def _conv_into(x, wmat, b, out, kh, kw, stride, dilation, pad_tl, in_dil, relu=False):
    """Run the tiled im2col+GEMM kernel: out = conv(x, wmat) (+ b) (ReLU)."""
    n, oh, ow, _ = out.shape
    k = wmat.shape[0]
    tile = _tile(n * oh * ow, k, x.itemsize)
    tiles = -(-n * oh * ow // tile)
    with kernel_threads(tiles, blas=True) as threads:
        work = _aligned.empty((threads, tile * k), dtype=x.dtype)
        _conv.conv2d_forward(
            x, wmat, b, out, work, kh, kw, stride[0], stride[1], dilation[0], dilation[1],
            pad_tl[0], pad_tl[1], in_dil[0], in_dil[1], tile, relu, threads,
        )


def _pad_last(a, width):
    """``a`` with its last axis zero-padded to ``width``."""
    out = _aligned.zeros(a.shape[:-1] + (width,), dtype=a.dtype)
    out[..., :a.shape[-1]] = a
    return out


def _zero_padded_chunks(a, top, left, hp, wp):
    """Yield ``(n0, n1, buf)``: ``a``'s images n0..n1-1, each placed at (top, left)
    in a zero image of (hp, wp), in chunks of whole images of at most
    4 * _TILE_BYTES (one image at least), so that the workspace stays bounded
    whatever the batch. Only the interior is rewritten: the border stays zero."""
    n, h, w, c = a.shape
    chunk = max(1, min(n, 4 * _TILE_BYTES // (hp * wp * c * a.itemsize)))
    buf = _aligned.zeros((chunk, hp, wp, c), dtype=a.dtype)
    for n0 in range(0, n, chunk):
        n1 = min(n, n0 + chunk)
        buf[:n1 - n0, top:top + h, left:left + w] = a[n0:n1]
        yield n0, n1, buf[:n1 - n0]


def _forward_direct(x, w, b, out, g, relu, skip=False):
    koff, kdi, kdj = _tap_offsets(g)
    with kernel_threads() as threads:
        _conv.conv2d_forward_direct(x, w, b, out, koff, kdi, kdj, g.sh, g.sw, g.pt, g.pl,
                                    g.dh * (g.KH - 1), g.dw * (g.KW - 1), relu, threads,
                                    skip)


def _forward_padded(x, w, b, out, g, relu):
    """The direct forward of a padded layer as a 'valid' one on a zero-padded copy of
    the input (what the reference computes), in chunks of whole images of at most
    4 * _TILE_BYTES, so that every window takes the kernel's fast blocks and the
    workspace stays bounded."""
    hp, wp = g.H + g.pt + g.pb, g.W + g.pl + g.pr
    gp = g._replace(H=hp, W=wp, pt=0, pb=0, pl=0, pr=0)
    for n0, n1, xp in _zero_padded_chunks(x, g.pt, g.pl, hp, wp):
        _forward_direct(xp, w, b, out[n0:n1], gp, relu)


_WINOGRAD_CHUNK_BYTES = 384 * 1024


def _winograd_chunk(tiles: int, c: int, f: int) -> int:
    """Tiles per chunk of the Winograd kernels: C*F/256 (so that each chunk's 16 GEMMs
    reuse the transformed filters, 64 C*F bytes, over enough rows), 32-256; when there
    is more than one chunk, their number is a multiple of ``_TILE_MULTIPLE`` (equal
    shares for 2, 4 or 8 threads). Forward, 2 threads, median ms by chunk 32 / 64 /
    128 / 256 (busy machine): 7x7 maps 128 -> 256 16.3 / 13.0 / 12.2 / 11.3, 256 -> 256
    one thread 40.9 / 28.6 / 23.9 / 21.7; layer d 10.8 / 9.1 / 8.0 / 8.2; f 67 / 76 /
    112 / 141. Few channels make the 16 products tiny (32 x 32 @ 32 x 32 for C = F =
    32), so the chunk also grows to fill 384 KiB of workspace, at most 128 tiles:
    forward / backward ms, 2 threads, C*F/256 alone -> with this: 128x28x28x32 -> 32
    'same' 5.73 / 12.2 -> 4.82 / 11.3, 128x14x14x32 -> 32 1.51 / 3.11 -> 1.27 / 2.58,
    32x28x28x16 -> 32 0.84 / 2.10 -> 0.80 / 1.84; with 64-256 channels within noise. The workspace,
    16 * chunk * (C + F) elements per thread, does not grow with the batch. Shapes
    alone decide, never threads."""
    target = min(256, max(32, c * f // 256))
    target = max(target, min(128, _WINOGRAD_CHUNK_BYTES // (64 * (c + f))))
    if tiles <= target:
        return tiles
    chunks = -(-tiles // target)
    chunks = -(-chunks // _TILE_MULTIPLE) * _TILE_MULTIPLE
    return -(-tiles // chunks)


def _winograd_forward(x, w, b, out, pt, pl, relu):
    """out (N, OH, OW, F) = the 3x3 stride-1 convolution of x (N, H, W, C) padded by
    (pt, pl) at the top and left (signed), with w (3, 3, C, F) (+ b) (ReLU), by
    Winograd F(2x2, 3x3) in chunks of tiles (:func:`_winograd_chunk`)."""
    n, oh, ow, f = out.shape
    c = x.shape[3]
    u = _aligned.empty((16, c, f), dtype=x.dtype)
    _winograd.filter_transform(w, u)
    tiles = n * -(-oh // 2) * -(-ow // 2)
    chunk = _winograd_chunk(tiles, c, f)
    with kernel_threads(-(-tiles // chunk), blas=True) as threads:
        work = _aligned.empty((threads, _winograd.workspace(chunk, c, f)), dtype=x.dtype)
        _winograd.forward(x, u, b, out, work, _aligned.zeros(c, dtype=x.dtype), pt, pl, chunk,
                          relu, threads)


def _weight_grad_winograd(x, dout, dw, db, g):
    """dw (and db) by Winograd F(2x2, 3x3): partial sums of the transformed products in
    at most ``_WEIGHT_GRAD_GROUPS`` fixed groups of chunks, summed in order, then
    dw = G^T S G."""
    tiles = g.N * -(-g.OH // 2) * -(-g.OW // 2)
    chunk = _winograd_chunk(tiles, g.C, g.F)
    groups = _dw_groups(g, -(-tiles // chunk), at_least=2)
    s_part = _aligned.empty((groups, 16, g.C, g.F), dtype=x.dtype)
    db_part = _aligned.empty((groups, g.F), dtype=x.dtype) if db is not None else None
    with kernel_threads(groups, blas=True) as threads:
        work = _aligned.empty((threads, _winograd.workspace(chunk, g.C, g.F)), dtype=x.dtype)
        _winograd.weight_grad(x, dout, s_part, db_part, work,
                              _aligned.zeros(max(g.C, g.F), dtype=x.dtype), g.pt, g.pl, chunk,
                              threads)
    s = _aligned.empty((16, g.C, g.F), dtype=x.dtype)
    _sum_groups(s_part, db_part, s, db)
    _winograd.filter_grad(s, dw)


def _conv_forward(x, w, b, stride, padding, dilation, relu):
    """Validate, allocate, run the direct or im2col+GEMM kernel; (out, conv cache)."""
    x, w, b, g = _args.conv_args(x, w, b, stride, padding, dilation)
    w = _aligned.aligned(w)  # (the kernels load the filters by vectors: _aligned)
    out = _aligned.empty(g.out_shape, x.dtype)
    if out.size == 0:
        path = None
    else:
        path = dispatch.choose("forward", g, x.dtype, FiniteWeights(w)).name
        if dispatch.VERBOSE:
            dispatch.log_choice("forward", g, x.dtype, path)
    if path == "direct-padded-filters":
        # Through a buffer of whole images, at most _TILE_BYTES * 4 of them (so that the
        # workspace stays bounded whatever the batch), copied out without the padding.
        fp = dispatch.padded_width(g, x.dtype)
        wp, bp = _pad_last(w, fp), None if b is None else _pad_last(b, fp)
        per_image = g.OH * g.OW * fp * x.itemsize
        chunk = max(1, min(g.N, 4 * _TILE_BYTES // per_image))
        wide = _aligned.empty((chunk, g.OH, g.OW, fp), dtype=x.dtype)
        for n0 in range(0, g.N, chunk):
            n1 = min(g.N, n0 + chunk)
            _forward_direct(x[n0:n1], wp, bp, wide[:n1 - n0], g, relu)
            out[n0:n1] = wide[:n1 - n0, ..., :g.F]
    elif path == "winograd":
        _winograd_forward(x, w, b, out, g.pt, g.pl, relu)
    elif path == "direct-wide-skip":
        # The padding's taps skipped in the kernel, which equals multiplying them by
        # zero for finite weights.
        _forward_direct(x, w, b, out, g, relu, skip=True)
    elif path == "direct-wide-padded-copy":
        _forward_padded(x, w, b, out, g, relu)  # (Inf * 0 = NaN, as in the reference)
    elif path == "direct":
        _forward_direct(x, w, b, out, g, relu)
    elif path == "im2col-gemm":
        _conv_into(x, w.reshape(-1, g.F), b, out, g.KH, g.KW, (g.sh, g.sw), (g.dh, g.dw),
                   (g.pt, g.pl), (1, 1), relu)
    cache = Cache("conv2d", NAME, g, x.dtype, {"x": x, "w": w, "has_bias": b is not None})
    return out, cache


def conv2d_forward(x, w, b=None, stride=1, padding=0, dilation=1):
    """2-D convolution; see :func:`fastconv.backends.numpy.conv2d_forward`."""
    return _conv_forward(x, w, b, stride, padding, dilation, False)


def conv2d_relu_forward(x, w, b=None, stride=1, padding=0, dilation=1):
    """``ReLU(conv2d(x, w) + b)`` with bias and ReLU applied in the kernel's output pass.

    See :func:`fastconv.backends.numpy.conv2d_relu_forward`.
    """
    out, conv_cache = _conv_forward(x, w, b, stride, padding, dilation, True)
    return out, Cache("conv2d_relu", NAME, conv_cache.geom, out.dtype,
                      {"conv": conv_cache, "out": out})


def conv2d_relu_backward(dout, cache, input_grad=True):
    """Gradients of :func:`conv2d_relu_forward`; ``(dx, dw, db)``."""
    cache = _args.check_cache(cache, "conv2d_relu", NAME)
    dout = _args.check_dout(dout, cache.geom.out_shape, cache.dtype)
    out = cache.arrays["out"]
    dz = _aligned.empty(dout.shape, dout.dtype)
    if dz.size:
        # out > 0 exactly where the pre-activation was > 0.
        with kernel_threads() as threads:
            _elementwise.relu_backward(dout.reshape(-1), out.reshape(-1), dz.reshape(-1),
                                       threads)
    return conv2d_backward(dz, cache.arrays["conv"], input_grad)


def conv2d_backward(dout, cache, input_grad=True):
    """Gradients of :func:`conv2d_forward`; see the reference for shapes.

    Notes
    -----
    The input gradient has five paths: for 2-4 input channels at stride 1 (float32,
    finite weights), a direct kernel vectorised over pixels; for up to 4 input
    channels otherwise, a direct kernel one pixel at a time (stride 1); for a long
    reduction at stride 1 on an image hardly larger than dout, the direct forward's
    wide blocks on dout with flipped filters, skipping the taps outside dout
    (``_input_grad_wide``); for a batch, ``col2im(dout @ W^T)`` in parallel over
    images (each image's scatter is one thread's, so there are no races); for a
    single image, a stride-1 convolution of dout spread out by the stride (zeros in
    between, done implicitly by the kernel), padded by ``dilation * (K - 1) - pad``,
    with the filters flipped and C_in/C_out swapped, on the im2col kernel in parallel
    over tiles. The weight gradient runs on the direct kernels for short reductions
    and, with the wide blocks, for long ones, else im2col + GEMM in fixed groups.
    Where a first layer's input gradient (1-4 channels, stride 1) and its weight
    gradient both take direct kernels and the batch has 16 images or more, the two run
    in one pass over dout, with the same bits (``_backward_fused``). The choices,
    made by the table in :mod:`fastconv.backends.dispatch`, depend on the shapes (and
    whether the weights are finite), never on the thread count. Layers whose filter
    count alone keeps them off the direct kernels run them on zero-padded filters.
    """
    cache = _args.check_cache(cache, "conv2d", NAME)
    g = cache.geom
    dout = _args.check_dout(dout, g.out_shape, cache.dtype)
    x, w = cache.arrays["x"], cache.arrays["w"]
    has_bias = cache.arrays["has_bias"]
    if dout.size:
        plan = dispatch.plan_backward(g, x.dtype, FiniteWeights(w),
                                      bool(input_grad and x.size))
    else:
        plan = (0, None, None)
    fp = plan[0]
    if not fp:
        return _backward(x, w, dout, g, has_bias, input_grad, plan)
    # F padded with zero filters (dispatch.pad_filters); their gradients are dropped.
    dx, dw, db = _backward(x, _pad_last(w, fp), _pad_last(dout, fp), g._replace(F=fp),
                           has_bias, input_grad, plan)
    dw = _aligned.aligned(dw[..., :g.F])
    return dx, dw, None if db is None else db[:g.F].copy()


def _backward(x, w, dout, g, has_bias, input_grad, plan):
    """:func:`conv2d_backward` on checked arrays; ``g.F`` is ``w``'s last axis;
    ``plan``: :func:`dispatch.plan_backward`'s (padded F, dx candidate or None, dw
    candidate), or (0, None, None) when dout is empty (then only the zeros)."""
    dw = _aligned.zeros(w.shape, w.dtype)
    db = _aligned.zeros(g.F, dtype=x.dtype) if has_bias else None
    _, dx_choice, dw_choice = plan
    path = None if dx_choice is None else dx_choice.name
    if dispatch.VERBOSE and dw_choice is not None:
        note = f"filters padded to {g.F}" if plan[0] else ""
        if path is not None:
            dispatch.log_choice("dx", g, x.dtype, path, note)
        dispatch.log_choice("dw", g, x.dtype, dw_choice.name, note)
    dx = None
    if input_grad:
        # The direct kernels write every element; the other paths add into zeros.
        dx = (_aligned.empty(x.shape, x.dtype) if path in ("planar", "direct", "wide", "winograd")
              else _aligned.zeros(x.shape, x.dtype))
    if dw_choice is not None and dw_choice.name == dispatch.FUSED_DW:
        _backward_fused(x, w, dout, dx, dw, db, g, path == "planar")
        return dx, dw, db
    if path == "planar":
        _input_grad_planar(dout, w, dx, g)
    elif path == "direct":
        with kernel_threads() as threads:
            _conv.conv2d_input_grad_direct(dout, w, dx, g.dh, g.dw, g.pt, g.pl, threads)
    elif path == "wide":
        _input_grad_wide(dout, w, dx, g)
    elif path == "winograd":
        # the forward on dout padded by (2 - pt, 2 - pl), the filters flipped, C and F
        # swapped
        w_flip = _aligned.aligned(w[::-1, ::-1].transpose(0, 1, 3, 2))
        _winograd_forward(dout, w_flip, None, dx, 2 - g.pt, 2 - g.pl, False)
    elif path == "col2im":
        _input_grad_col2im(dout, w, dx, g)
    elif path == "flip":
        w_flip = _aligned.aligned(w[::-1, ::-1].transpose(0, 1, 3, 2)).reshape(-1, g.C)
        pad_tl = (g.dh * (g.KH - 1) - g.pt, g.dw * (g.KW - 1) - g.pl)
        _conv_into(dout, w_flip, None, dx, g.KH, g.KW, (1, 1), (g.dh, g.dw), pad_tl,
                   (g.sh, g.sw))
    if dout.size == 0:
        return dx, dw, db

    if dw_choice.name == dispatch.WINOGRAD:
        _weight_grad_winograd(x, dout, dw, db, g)
        return dx, dw, db
    if dw_choice.name == "direct-wide-padded-copy":
        _weight_grad_padded(x, dout, dw, db, g)
        return dx, dw, db
    if dw_choice.name == "direct":
        _weight_grad_groups(x, dout, dw, db, g)
        return dx, dw, db
    k = g.KH * g.KW * g.C
    tile = _tile(g.N * g.OH * g.OW, k, x.itemsize)
    tiles = -(-g.N * g.OH * g.OW // tile)
    # (at least 2 groups: 2x32x32x96 -> 256 7x7/2 ran 8.3 ms in one group, 4.6 in 2,
    # 5.8 in 8)
    groups = _dw_groups(g, tiles, at_least=2)
    dw_part = _aligned.empty((groups, k, g.F), dtype=x.dtype)
    db_part = _aligned.empty((groups, g.F), dtype=x.dtype) if db is not None else None
    with kernel_threads(groups, blas=True) as threads:
        work = _aligned.empty((threads, tile * k), dtype=x.dtype)
        _conv.conv2d_weight_grad(
            x, dout, dw_part, db_part, work, g.KH, g.KW, g.sh, g.sw, g.dh, g.dw,
            g.pt, g.pl, tile, threads,
        )
    _sum_groups(dw_part, db_part, dw, db)
    return dx, dw, db


def _planar_scratch(g, rows, threads):
    """The planar dx kernel's zeroed scratch for blocks of ``rows`` input rows, one
    row per thread, and its widths: (tbuf, rowbuf, Wp, L, Wb)."""
    bw = _conv.dx_planar_width(g.C)
    wb = -(-g.W // bw) * bw
    left = max(0, g.dw * (g.KW - 1) - g.pl)
    wp = -(-max(left + wb + g.pl, left + g.OW) // 8) * 8
    tbuf = _aligned.zeros((threads, (rows + g.dh * (g.KH - 1)) * g.F * wp), dtype=np.float32)
    rowbuf = _aligned.empty((threads, g.C * wb), dtype=np.float32)
    return tbuf, rowbuf, wp, left, wb


def _input_grad_planar(dout, w, dx, g):
    """dx for 2-4 input channels, stride 1, vectorised over pixels: tasks of whole
    images when there are enough of them, else of a few rows (the bits are the same
    either way: each pixel's sum runs in one fixed order)."""
    wt = _aligned.aligned(w.transpose(0, 1, 3, 2))
    with kernel_threads() as threads:
        rows = g.H if g.N >= 2 * threads else max(1, -(-g.H // (2 * threads)))
        tasks = g.N * -(-g.H // rows)
        threads = max(1, min(threads, tasks))
        tbuf, rowbuf, wp, left, wb = _planar_scratch(g, rows, threads)
        _conv.conv2d_input_grad_planar(dout, wt, dx, tbuf, rowbuf, g.dh, g.dw, g.pt, g.pl,
                                       wp, left, wb, rows, threads)


def _backward_fused(x, w, dout, dx, dw, db, g, planar):
    """dx, dw and db of a first layer in one pass over dout (dw's 'direct-fused'):
    each image's dx right after its dw rows, while its dout is in cache; ``planar``:
    dx on the pixel-vectorised kernel (float32, 2-4 channels)."""
    if planar:
        w = _aligned.aligned(w.transpose(0, 1, 3, 2))

    def with_dx(threads):
        extra = _planar_scratch(g, g.H, threads) if planar else ()
        return (w, dx, g.dh, g.dw, *extra)

    _weight_grad_groups(x, dout, dw, db, g, with_dx=with_dx)


def _input_grad_wide(dout, w, dx, g):
    """dx[i, j, c] = sum over taps and f of dout[i + pt - ki*dh, j + pl - kj*dw, f] *
    w[ki, kj, c, f]: the convolution of dout, padded by (dh*(KH-1) - pt, dw*(KW-1) -
    pl) at the top left, with the filters flipped and C/F swapped, on the direct
    forward kernel's wide blocks with the padding's taps skipped: only the terms the
    reference sums, with no copy of dout."""
    w_flip = _aligned.aligned(w[::-1, ::-1].transpose(0, 1, 3, 2))
    koff, kdi, kdj = _tap_offsets_for(g.KH, g.KW, g.F, g.dh, g.dw, g.OW)
    with kernel_threads() as threads:
        _conv.conv2d_forward_direct(dout, w_flip, None, dx, koff, kdi, kdj, 1, 1,
                                    g.dh * (g.KH - 1) - g.pt, g.dw * (g.KW - 1) - g.pl,
                                    g.dh * (g.KH - 1), g.dw * (g.KW - 1), False, threads,
                                    True)


def _input_grad_col2im(dout, w, dx, g):
    """dx by GEMM then col2im, in parallel over runs of whole images (one image: one
    task, in tiles).

    Images of fewer positions than a workspace tile are taken several at a time (one
    GEMM over all their positions), but in at least ``_COL2IM_MIN_TASKS`` runs, so that
    the threads share the work; larger images one at a time, in tiles.
    """
    k = g.KH * g.KW * g.C
    p = g.OH * g.OW
    imgs = max(1, min(_tile(g.N * p, k, dx.itemsize, _COL2IM_TILE_BYTES) // p,
                      -(-g.N // _COL2IM_MIN_TASKS)))
    tile = imgs * p if imgs > 1 else _tile(p, k, dx.itemsize, _COL2IM_TILE_BYTES)
    with kernel_threads(-(-g.N // imgs), blas=True) as threads:
        work = _aligned.empty((threads, tile * k), dtype=dx.dtype)
        _conv.conv2d_input_grad_col2im(dout, w.reshape(k, g.F), dx, work, g.KH, g.KW,
                                       g.sh, g.sw, g.dh, g.dw, g.pt, g.pl, tile, imgs,
                                       threads)


def _sum_groups(dw_part, db_part, dw, db):
    """dw (and db) = the sum of the per-group partial gradients, in a fixed order (the
    groups depend on the shapes only, so the bits do not depend on the threads).
    Compiled column sums with np.add.reduce(axis=0)'s order and bits."""
    groups = dw_part.shape[0]
    with kernel_threads() as threads:
        _elementwise.column_sum(dw_part.reshape(groups, -1), None, None, dw.reshape(-1),
                                threads)
        if db is not None:
            _elementwise.column_sum(db_part, None, None, db, threads)


def _tap_offsets(g):
    """Per tap k = (ki*KW + kj)*C + c of the window: its offset from the window's
    top-left element in a (H, W, C) image, and its row and column displacement."""
    return _tap_offsets_for(g.KH, g.KW, g.C, g.dh, g.dw, g.W)


@functools.lru_cache(maxsize=64)
def _tap_offsets_for(KH, KW, C, dh, dw, W):
    # Cached (a layer asks on every call); read-only, as the arrays are shared.
    ki, kj, c = np.unravel_index(np.arange(KH * KW * C), (KH, KW, C))
    kdi = (ki * dh).astype(np.intc)
    kdj = (kj * dw).astype(np.intc)
    koff = ((kdi.astype(np.intp) * W + kdj) * C + c).astype(np.intp)
    for a in (koff, kdi, kdj):
        a.flags.writeable = False
    return koff, kdi, kdj


def _weight_grad_padded(x, dout, dw, db, g):
    """dw (and db) of a padded layer on the direct kernel's wide blocks, which need an
    unpadded input: as a 'valid' layer on zero-padded copies of its input, in chunks of
    whole images of at most 4 * _TILE_BYTES (bounded workspace), each chunk's rows
    split into the same fixed groups of output rows, whose partial gradients
    accumulate over the chunks and are summed once at the end (all fixed by the
    shapes)."""
    hp, wp = g.H + g.pt + g.pb, g.W + g.pl + g.pr
    gp = g._replace(H=hp, W=wp, pt=0, pb=0, pl=0, pr=0)
    parts = None
    for n0, n1, xp in _zero_padded_chunks(x, g.pt, g.pl, hp, wp):
        parts = _weight_grad_groups(xp, dout[n0:n1], dw, db, gp._replace(N=n1 - n0),
                                    parts, last=n1 == g.N)


def _weight_grad_groups(x, dout, dw, db, g, parts=None, last=True, with_dx=None):
    """dw (and db) = the sum of fixed groups of output rows' partial gradients.

    ``parts``, the partial gradients (dw_part, db_part) of earlier chunks of the
    batch, get this call's added to them, group by group; unless ``last``, they are
    returned for the next chunk instead of summed into dw and db. ``with_dx``: the
    kernel's arguments for dx in the same pass (``_backward_fused``), made by a
    function of the thread count (their scratch is per thread)."""
    k = g.KH * g.KW * g.C
    koff, kdi, kdj = _tap_offsets(g)
    if parts is None:
        groups = _dw_groups(g, g.N * g.OH)  # (with dx or not: the same bits)
        parts = (_aligned.empty((groups, k, g.F), dtype=x.dtype),
                 _aligned.empty((groups, g.F), dtype=x.dtype) if db is not None else None)
        accumulate = False
    else:
        accumulate = True
    dw_part, db_part = parts
    with kernel_threads(dw_part.shape[0]) as threads:
        dx_args = with_dx(threads) if with_dx is not None else ()
        _conv.conv2d_weight_grad_direct(
            x, dout, dw_part, db_part, koff, kdi, kdj, g.sh, g.sw, g.pt, g.pl,
            g.dh * (g.KH - 1), g.dw * (g.KW - 1), threads, accumulate, *dx_args)
    if not last:
        return parts
    _sum_groups(dw_part, db_part, dw, db)
    return None


def _fuse_pool(x, g, pg) -> bool:
    """Whether conv + ReLU + max pooling runs fused (dispatch's 'relu_maxpool')."""
    name = dispatch.choose("relu_maxpool", (g, pg), x.dtype, True).name
    if dispatch.VERBOSE:
        dispatch.log_choice("relu_maxpool", g, x.dtype, name)
    return name == "fused-direct"


def conv2d_relu_maxpool_forward(x, w, b=None, stride=1, padding=0, dilation=1, pool_size=2):
    """``maxpool2d(ReLU(conv2d(x, w) + b), pool_size)``.

    See :func:`fastconv.backends.numpy.conv2d_relu_maxpool_forward`. Where the direct
    kernels apply (float32, AVX2, F % 8 == 0, short reduction) the full-size
    convolution output is never written: with 2x2 windows each window's four outputs
    are computed and pooled in registers; with other windows each thread computes the
    PH convolution rows of one pooled row into a buffer of its own and pools them
    there. The cache keeps the winner of every window as an int8 (-1 where the maximum
    is not positive).
    Elsewhere this is :func:`conv2d_relu_forward` then :func:`maxpool2d_forward`.
    """
    x, w, b, g = _args.conv_args(x, w, b, stride, padding, dilation)
    return conv2d_relu_maxpool_prepared(x, w, b, g, _args.conv_pool_args(g, pool_size))


def conv2d_relu_maxpool_prepared(x, w, b, g, pg, out=None, win=None):
    """:func:`conv2d_relu_maxpool_forward` on arguments already validated: ``x``, ``w``
    and ``b`` as ``conv_args`` returns them, and the geometries ``g``, ``pg`` of the
    cache of an earlier call on the same shapes, dtypes and settings. For a layer that
    runs the same shapes on every step (its checks are then per layer, not per call);
    anything else calls the public function. ``out`` (float32) and ``win`` (int8), of
    shape ``pg.out_shape``, receive the result where the fused kernels run (a layer's
    kept arrays); elsewhere they are not used."""
    w = _aligned.aligned(w)
    if not _fuse_pool(x, g, pg):
        stride, dilation = (g.sh, g.sw), (g.dh, g.dw)
        padding = ((g.pt, g.pb), (g.pl, g.pr))
        z, relu_cache = conv2d_relu_forward(x, w, b, stride, padding, dilation)
        out, pool_cache = maxpool2d_forward(z, (pg.PH, pg.PW))
        return out, Cache("conv2d_relu_maxpool", NAME, (g, pg), x.dtype,
                          {"conv_relu": relu_cache, "pool": pool_cache})
    if out is None:
        out = _aligned.empty(pg.out_shape, dtype=np.float32)
    if win is None:
        win = _aligned.empty(pg.out_shape, dtype=np.int8)
    koff, kdi, kdj = _tap_offsets(g)
    with kernel_threads(pg.N * pg.OH) as threads:
        work = _aligned.empty((threads, pg.PH * pg.OW * pg.PW * g.F), dtype=np.float32)
        _conv.conv2d_relu_maxpool_forward_direct(
            x, w, b, out, win, work, koff, kdi, kdj, g.sh, g.sw, g.pt, g.pl,
            g.dh * (g.KH - 1), g.dw * (g.KW - 1), pg.PH, pg.PW, threads)
    return out, Cache("conv2d_relu_maxpool", NAME, (g, pg), x.dtype,
                      {"x": x, "w": w, "has_bias": b is not None, "win": win})


def conv2d_relu_maxpool_backward(dout, cache, input_grad=True):
    """Gradients of :func:`conv2d_relu_maxpool_forward`; ``(dx, dw, db)``.

    Fused, without the input gradient (a network's first layer), in fixed groups of
    pooled rows summed in a fixed order: with 2x2 windows each window's gradient (dout
    at the winner, ReLU mask included) is formed in registers and fed to the weight
    gradient there; with other windows each pooled row's gradient is spread over its PH
    convolution rows in a per-thread buffer and consumed there by the direct
    weight-gradient kernel. With the input gradient, the full-size gradient of
    the convolution output is built once and :func:`conv2d_backward` runs on it.

    One difference from the reference, without the input gradient: convolution
    outputs that no pooling window covers (the last rows or columns when the pool
    size does not divide the output) are skipped, not multiplied by their zero
    gradient, so an Inf or NaN of x seen only by those outputs does not make dw NaN.
    """
    cache = _args.check_cache(cache, "conv2d_relu_maxpool", NAME)
    g, pg = cache.geom
    dout = _args.check_dout(dout, pg.out_shape, cache.dtype)
    if "pool" in cache.arrays:
        dz = maxpool2d_backward(dout, cache.arrays["pool"])
        return conv2d_relu_backward(dz, cache.arrays["conv_relu"], input_grad)
    x, w, win = cache.arrays["x"], cache.arrays["w"], cache.arrays["win"]
    has_bias = cache.arrays["has_bias"]
    if input_grad:
        dz = _aligned.zeros(g.out_shape, dtype=np.float32)
        with kernel_threads(pg.N * pg.OH) as threads:
            _conv.relu_maxpool_grad(dout, win, dz, pg.PH, pg.PW, threads)
        conv_cache = Cache("conv2d", NAME, g, x.dtype, {"x": x, "w": w, "has_bias": has_bias})
        return conv2d_backward(dz, conv_cache, True)
    k = g.KH * g.KW * g.C
    groups = min(pg.N * pg.OH, _WEIGHT_GRAD_GROUPS)
    dw = _aligned.empty(w.shape, w.dtype)
    db = _aligned.empty(g.F, dtype=np.float32) if has_bias else None
    dw_part = _aligned.empty((groups, k, g.F), dtype=np.float32)
    db_part = _aligned.empty((groups, g.F), dtype=np.float32) if has_bias else None
    koff, kdi, kdj = _tap_offsets(g)
    with kernel_threads(pg.N * pg.OH) as threads:
        work = _aligned.empty((threads, pg.PH * pg.OW * pg.PW * g.F), dtype=np.float32)
        _conv.conv2d_relu_maxpool_weight_grad_direct(
            x, dout, win, dw_part, db_part, work, koff, kdi, kdj, g.sh, g.sw, g.pt, g.pl,
            g.dh * (g.KH - 1), g.dw * (g.KW - 1), pg.PH, pg.PW, threads)
    _sum_groups(dw_part, db_part, dw, db)
    return None, dw, db


def maxpool2d_forward(x, pool_size=2, strides=None, padding="valid"):
    """2-D max pooling; see :func:`fastconv.backends.numpy.maxpool2d_forward`."""
    x, g = _args.pool_args(x, pool_size, strides, padding)
    if g.H * g.W * g.C >= 2**31:
        raise _args.fail("x", "an array with H * W * C < 2**31 per image", x)
    out = _aligned.empty(g.out_shape, dtype=x.dtype)
    argmax = _aligned.empty(g.out_shape, dtype=np.int32)
    if out.size:
        with kernel_threads() as threads:
            _pool.maxpool_forward(x, out, argmax, g.PH, g.PW, g.sh, g.sw, g.pt, g.pl,
                                  threads)
    return out, Cache("maxpool2d", NAME, g, x.dtype, {"argmax": argmax})


def maxpool2d_backward(dout, cache):
    """Gradient of :func:`maxpool2d_forward`: dout goes to each window's winner."""
    cache = _args.check_cache(cache, "maxpool2d", NAME)
    g = cache.geom
    dout = _args.check_dout(dout, g.out_shape, cache.dtype)
    if _tiled(g, dout):
        return _pool_backward_tiled(dout, cache.arrays["argmax"], g)
    dx = _aligned.zeros((g.N, g.H, g.W, g.C), dtype=dout.dtype)
    if dout.size:
        with kernel_threads() as threads:
            _pool.maxpool_backward(dout, cache.arrays["argmax"], dx, threads)
    return dx


def _tiled(g, dout) -> bool:
    """Non-overlapping windows inside the image (the usual 2x2): one-pass backward."""
    return dout.size > 0 and (g.sh, g.sw) == (g.PH, g.PW) and g.pt == g.pb == g.pl == g.pr == 0


def _pool_backward_tiled(dout, argmax, g):
    dx = _aligned.empty((g.N, g.H, g.W, g.C), dtype=dout.dtype)
    with kernel_threads() as threads:
        _pool.pool_backward_tiled(dout, argmax, dx, g.PH, g.PW, threads)
    return dx


def maxpool_planes_forward(x, pool_size):
    """Max pooling of the planes of x (P, H, W) (an NCHW batch as (N*C, H, W)) with
    non-overlapping windows (stride = window, 'valid'), no layout change.

    For fastconv.compat.cs231n on the compiled backend; the same result as
    :func:`maxpool2d_forward` on the channels-last view. Returns ``(out, win)``, win
    the winner's index in its window (int8). ``x``: C-contiguous float32/float64,
    PH * PW <= 127 (checked by the caller).
    """
    ph, pw = pool_size
    p, h, w = x.shape
    out = _aligned.empty((p, h // ph, w // pw), dtype=x.dtype)
    win = _aligned.empty(out.shape, dtype=np.int8)
    if out.size:
        with _planes_threads(x.size) as threads:
            _pool.maxpool_planes_forward(x, out, win, ph, pw, threads)
    return out, win


# Plane pooling streams its input once; below this many elements a second thread
# costs more to wake than it saves (the course's (100, 3, 32, 32) batch: 0.16 ms on
# one thread, 0.18 ms on two, on the 2-core development VM).
_PLANES_PARALLEL_MIN = 1 << 20


def _planes_threads(size: int):
    return kernel_threads(None if size >= _PLANES_PARALLEL_MIN else 1)


def maxpool_planes_backward(dout, win, shape, pool_size):
    """Gradient of :func:`maxpool_planes_forward`: dx of ``shape`` (P, H, W)."""
    dx = _aligned.empty(shape, dtype=dout.dtype)
    if dx.size:
        with _planes_threads(dx.size) as threads:
            _pool.maxpool_planes_backward(dout, win, dx, pool_size[0], pool_size[1], threads)
    return dx


# The course-layout convolution (src/_nchw.pyx): im2col workspace per thread, in
# elements (the forward's cols (K, tile), the backward's two (tile, K + PAD) and
# (K, tile)), so that a tile stays in L2; and a fixed number of image groups for the
# weight gradient, whatever the threads (the bits do not depend on them).
_NCHW_TILE_ELEMENTS = 32768
_NCHW_GROUPS = 16


def nchw_available() -> bool:
    """Whether :func:`conv_nchw_forward` can run here (AVX2 + FMA at least)."""
    return _nchw.isa() > 0


# float32 layers take the course-layout kernels up to this reduction K = C*HH*WW;
# beyond it the channels-last kernels, transposes included, were as fast or faster.
# Measured 2026-12-04, fastconv.compat.cs231n forward + backward, the two paths side
# by side in one process, best of 15, 2 threads, a busy machine (load 2.7), time of
# the channels-last path / time of these kernels: float32 K = 27 (the course's shape)
# 2.56, K = 147 (50x3x32x32, 32 7x7 filters) 1.00, K = 288 (50x32x16x16 -> 64 3x3)
# 0.95, K = 400 (64x16x32x32 -> 32 5x5) 0.87, K = 576 (50x64x8x8 -> 64 3x3) 0.53;
# float64 1.05-2.78 on all five, so float64 takes them at every K.
NCHW_FLOAT32_MAX_K = 147


def nchw_chosen(dtype, k: int) -> bool:
    """Whether a convolution of ``dtype`` with reduction ``k`` takes the course-layout
    kernels (see NCHW_FLOAT32_MAX_K), where they are available."""
    return nchw_available() and (dtype != np.float32 or k <= NCHW_FLOAT32_MAX_K)


def _nchw_tile(k: int, positions: int) -> int:
    """Output positions per tile: a multiple of 64 (whole register panels), at most
    ``_NCHW_TILE_ELEMENTS`` of (2K + PAD)-wide workspace; the shapes alone decide."""
    tile = max(64, _NCHW_TILE_ELEMENTS // (2 * k + _nchw.PAD) // 64 * 64)
    return min(tile, positions)


def conv_nchw_forward(x, w, b, stride, pad):
    """Convolution on the course's layouts, for fastconv.compat.cs231n.

    ``x`` (N, C, H, W) and ``w`` (F, C, HH, WW) C-contiguous of one float dtype, ``b``
    (F,) or None, ints ``stride`` >= 1 and ``pad`` >= 0 with the windows inside the
    padded image and every size >= 1 (checked by the caller; see
    :func:`nchw_available`). Returns ``out`` (N, F, OH, OW) and a Cache
    ('conv2d_nchw') holding x, w and the geometry for :func:`conv_nchw_backward`.
    """
    n, c, h, wd = x.shape
    f, _, hh, ww = w.shape
    oh, ow = (h + 2 * pad - hh) // stride + 1, (wd + 2 * pad - ww) // stride + 1
    k = c * hh * ww
    tile = _nchw_tile(k, oh * ow)
    out = _aligned.empty((n, f, oh, ow), dtype=x.dtype)
    with kernel_threads(n * -(-(oh * ow) // tile)) as threads:
        work = _aligned.empty((threads, k * tile), dtype=x.dtype)
        _nchw.forward(x, w, b, out, work, stride, pad, tile, threads)
    geom = (out.shape, stride, pad, b is not None)
    return out, Cache("conv2d_nchw", NAME, geom, x.dtype, {"x": x, "w": w})


def conv_nchw_backward(dout, cache):
    """Gradients of :func:`conv_nchw_forward`: ``(dx, dw, db)`` in the course's
    layouts, db None when the forward had no bias. ``dout`` C-contiguous, of the
    output's shape and dtype (checked by the caller)."""
    x, w = cache.arrays["x"], cache.arrays["w"]
    _, stride, pad, has_bias = cache.geom
    n = x.shape[0]
    f, c, hh, ww = w.shape
    k = c * hh * ww
    tile = _nchw_tile(k, dout.shape[2] * dout.shape[3])
    groups = min(n, _NCHW_GROUPS)
    dx = _aligned.empty(x.shape, x.dtype)
    part = _aligned.empty((groups, f, k + 1), dtype=x.dtype)
    total = _aligned.empty((f, k + 1), dtype=x.dtype)
    with kernel_threads(groups) as threads:
        work = _aligned.empty((threads, (2 * k + _nchw.PAD) * tile), dtype=x.dtype)
        _nchw.backward(x, w, dout, dx, part, work, stride, pad, tile, threads)
    _sum_groups(part, None, total, None)
    dw = np.ascontiguousarray(total[:, :k]).reshape(w.shape)
    return dx, dw, (np.ascontiguousarray(total[:, k]) if has_bias else None)


def avgpool2d_forward(x, pool_size=2, strides=None, padding="valid"):
    """2-D average pooling; see :func:`fastconv.backends.numpy.avgpool2d_forward`."""
    x, g = _args.pool_args(x, pool_size, strides, padding)
    out = _aligned.empty(g.out_shape, dtype=x.dtype)
    if out.size:
        with kernel_threads() as threads:
            _pool.avgpool_forward(x, out, g.PH, g.PW, g.sh, g.sw, g.pt, g.pl, threads)
    return out, Cache("avgpool2d", NAME, g, x.dtype, {})


def avgpool2d_backward(dout, cache):
    """Gradient of :func:`avgpool2d_forward`."""
    cache = _args.check_cache(cache, "avgpool2d", NAME)
    g = cache.geom
    dout = _args.check_dout(dout, g.out_shape, cache.dtype)
    if _tiled(g, dout):
        return _pool_backward_tiled(dout, None, g)
    dx = _aligned.zeros((g.N, g.H, g.W, g.C), dtype=dout.dtype)
    if dout.size:
        with kernel_threads() as threads:
            _pool.avgpool_backward(dout, dx, g.PH, g.PW, g.sh, g.sw, g.pt, g.pl, threads)
    return dx


def relu_forward(x):
    """ReLU, ``max(x, 0)``; see :func:`fastconv.backends.numpy.relu_forward`."""
    x = _args.as_float_array(x, "x")
    out = _aligned.empty(x.shape, x.dtype)
    if x.size:
        with kernel_threads() as threads:
            _elementwise.relu_forward(x.reshape(-1), out.reshape(-1), threads)
    return out, Cache("relu", NAME, x.shape, x.dtype, {"x": x})


def relu_backward(dout, cache):
    """Gradient of ReLU: dout where the input was > 0, else 0."""
    cache = _args.check_cache(cache, "relu", NAME)
    dout = _args.check_dout(dout, cache.geom, cache.dtype)
    dx = _aligned.empty(dout.shape, dout.dtype)
    if dx.size:
        with kernel_threads() as threads:
            _elementwise.relu_backward(dout.reshape(-1), cache.arrays["x"].reshape(-1),
                                       dx.reshape(-1), threads)
    return dx


def _add(a, b, relu):
    a, b = _args.add_args(a, b)
    out = _aligned.empty(a.shape, a.dtype)
    if a.size:
        with kernel_threads() as threads:
            _elementwise.add(a.reshape(-1), b.reshape(-1), out.reshape(-1), relu, threads)
    return out


def add(a, b):
    """``a + b`` of two arrays of one shape, in parallel; see
    :func:`fastconv.backends.numpy.add` (the same bits)."""
    return _add(a, b, False)


def add_relu_forward(a, b):
    """``max(a + b, 0)`` in one pass; see :func:`fastconv.backends.numpy.add_relu_forward`
    (the same bits, and a :func:`relu_forward` cache of the output)."""
    out = _add(a, b, True)
    return out, Cache("relu", NAME, out.shape, out.dtype, {"x": out})


# Blocks of matmul's products on single-threaded BLAS (Dense layers): the
# larger side of the result cut into MM_BLOCKS runs of at least MM_MIN_SIDE (fewer
# where it is shorter, or where the work is small), the other side whole: fixed by the
# shapes alone. GFLOP/s, 2 threads, float32, against fixed 64 x 64 blocks and NumPy's
# own (multi-threaded) matmul: 4096 x 192 @ 192 x 512 64x64 176, 8 x 1
# runs 262, NumPy 294; its dx (4096 x 512 @ 512 x 192) 124, 254, 272; its dw (192 x
# 4096 @ 4096 x 512, cut into columns) 123, 183 (1 x 4), 258; the lecture model's
# Dense(128), 128 x 5408 @ 5408 x 128, 2 x 1 155-160 and 1 x 2 169 where 64x64 ran 83
# and NumPy 186 (so a square result is cut into columns). Two runs were 0-8% faster
# than eight on 2 cores, but eight share 4 or 8 threads and absorb a thread that wakes
# late.
MM_BLOCKS = 8
MM_MIN_SIDE = 64


def _mm_blocks(m: int, n: int, k: int) -> Tuple[int, int]:
    """(rows, cols) of each block of an (m, n) result over a reduction of k."""
    side = max(m, n)
    runs = max(1, min(MM_BLOCKS, side // MM_MIN_SIDE, int(2 * m * n * k // _PIECE_MIN_FLOP)))
    runs = 1 << (runs.bit_length() - 1)
    if m > n:
        return max(1, -(-m // runs)), max(1, n)
    return max(1, m), max(1, -(-n // runs))


def matmul_into(a, b, out, trans_a=False, trans_b=False):
    """out (m, n) = op(a) @ op(b) on ``_mm_blocks``' blocks, each one single-threaded
    BLAS call over the whole reduction: the bits depend on the shapes only. All three
    C-contiguous, of one dtype (unchecked); ``trans_*``: the array holds the
    operand's transpose."""
    m, n = out.shape
    k = a.shape[0] if trans_a else a.shape[1]
    rows, cols = _mm_blocks(m, n, k)
    with kernel_threads(-(-m // rows) * -(-n // cols), blas=True) as threads:
        _conv.matmul_blocks(a, b, out, threads, rows, cols, trans_a, trans_b)


def _transposed_view(a) -> bool:
    """Whether ``a`` is the transpose of a C-contiguous float array (``x.T``), which
    the product reads as it lies instead of copying."""
    return (type(a) is np.ndarray and a.ndim == 2 and a.flags.f_contiguous
            and not a.flags.c_contiguous and a.dtype in (np.float32, np.float64)
            and a.dtype.isnative)


def matmul(a, b, out=None):
    """``a @ b``; see :func:`fastconv.backends.numpy.matmul`.

    One single-threaded BLAS product per block of the result fixed by the shapes
    (:func:`_mm_blocks`), the blocks in parallel (``_conv.matmul_blocks``): each
    element comes from the same call over the whole reduction whatever the thread
    count, so the bits do not depend on it or on concurrent calls (NumPy's
    multi-threaded matmul promises neither). A transposed C-contiguous operand
    (``x.T``, as Dense's backward passes) is read in place.
    """
    ta, tb = _transposed_view(a), _transposed_view(b)
    a, b, (m, n), direct = _args.matmul_args(a.T if ta else a, b.T if tb else b, out,
                                             ta, tb)
    if direct and not (np.may_share_memory(out, a) or np.may_share_memory(out, b)):
        matmul_into(a, b, out, ta, tb)
        return out
    result = _aligned.empty((m, n), a.dtype)
    matmul_into(a, b, result, ta, tb)
    if out is None:
        return result
    np.copyto(out, result, casting="same_kind")
    return out


# ------------------------------------------------------------- per-channel maps


def channel_sums(u, v=None, shift=None, gate=None):
    """Per-channel sums over rows; see :func:`fastconv.backends.numpy.channel_sums`.
    Each block of ``_norm.ROWS`` rows is summed by one task and the blocks' sums are
    added in order, so the result is the same for any thread count."""
    u, v, (shift,) = _args.channel_args(u, v, (shift,), ("shift",))
    gp, gr = _args.channel_gate_args(gate, u, v)
    A, R, B = u.shape
    if shift is None:
        shift = _aligned.zeros((A, B))
    T = max(1, -(-R // _norm.ROWS))
    s1 = _aligned.zeros((A, T, B))
    s2 = _aligned.zeros((A, T, B))
    with kernel_threads(A * T) as threads:
        _norm.channel_sums(u, v, shift, gp, gr, s1, s2, threads)
    return s1.sum(axis=1), s2.sum(axis=1)


def channel_affine(u, p, r, v=None, q=None, relu=False, gate=None):
    """``p * u + q * v + r`` per channel (and its ReLU, and a ReLU's gate on u); see
    :func:`fastconv.backends.numpy.channel_affine` (the same bits)."""
    u, v, p, q, r = _args.channel_affine_args(u, p, r, v, q)
    gp, gr = _args.channel_gate_args(gate, u, v)
    out = _aligned.empty(u.shape, dtype=u.dtype)
    with kernel_threads(u.shape[0] * max(1, -(-u.shape[1] // _norm.ROWS))) as threads:
        _norm.channel_affine(u, v, p, q, r, gp, gr, bool(relu), out, threads)
    return out


def layernorm_forward(x, gamma=None, beta=None, epsilon=1e-3):
    """Layer normalisation of the rows of x (M, C); see
    :func:`fastconv.backends.numpy.layernorm_forward`. Blocks of ``_norm.ROWS`` rows in
    parallel, each row on its own."""
    x, gamma, beta, epsilon = _args.layernorm_args(x, gamma, beta, epsilon)
    M = x.shape[0]
    out = _aligned.empty(x.shape, x.dtype)
    mean = _aligned.empty(M, x.dtype)
    inv = _aligned.empty(M, x.dtype)
    with kernel_threads(max(1, -(-M // _norm.ROWS))) as threads:
        _norm.layernorm_forward(x, gamma, beta, out, mean, inv, epsilon, threads)
    return out, mean, inv


def layernorm_backward(dout, x, mean, inv, gamma=None):
    """Gradients of :func:`layernorm_forward`; see
    :func:`fastconv.backends.numpy.layernorm_backward`. dgamma and dbeta are summed per
    block of rows and the blocks added in order: the same for any thread count."""
    dout, x, mean, inv, gamma = _args.layernorm_backward_args(dout, x, mean, inv, gamma)
    M, C = x.shape
    T = max(1, -(-M // _norm.ROWS))
    dx = _aligned.empty(x.shape, x.dtype)
    dg = _aligned.zeros((T, C))
    db = _aligned.zeros((T, C))
    with kernel_threads(T) as threads:
        _norm.layernorm_backward(dout, x, mean, inv, gamma, dx, dg, db, threads)
    return dx, dg.sum(axis=0), db.sum(axis=0)


# ------------------------------------------------------------------ depthwise conv
# Partial weight gradients of the depthwise kernel: a fixed number (not the thread
# count), so the order of the final sum, and the bits, do not depend on the threads.
_DEPTHWISE_GROUPS = 16


def depthwise_conv2d_forward(x, w, b=None, stride=1, padding=0, dilation=1):
    """Depthwise convolution; see :func:`fastconv.backends.numpy.depthwise_conv2d_forward`."""
    x, w, b, g = _args.depthwise_args(x, w, b, stride, padding, dilation)
    out = _aligned.empty(g.out_shape, dtype=x.dtype)
    if out.size:
        with kernel_threads(g.N * g.OH) as threads:
            _depthwise.depthwise_forward(x, w, b, out, g.sh, g.sw, g.dh, g.dw, g.pt, g.pl,
                                         threads)
    cache = Cache("depthwise_conv2d", NAME, g, x.dtype,
                  {"x": x, "w": w, "has_bias": b is not None})
    return out, cache


def depthwise_conv2d_backward(dout, cache, input_grad=True):
    """``(dx, dw, db)``; see :func:`fastconv.backends.numpy.depthwise_conv2d_backward`."""
    cache = _args.check_cache(cache, "depthwise_conv2d", NAME)
    g = cache.geom
    dout = _args.check_dout(dout, g.out_shape, cache.dtype)
    x, w = cache.arrays["x"], cache.arrays["w"]
    groups = max(1, min(_DEPTHWISE_GROUPS, g.N * g.OH))
    dw_part = _aligned.zeros((groups,) + w.shape, dtype=dout.dtype)
    db_part = _aligned.zeros((groups, g.F), dtype=dout.dtype) if cache.arrays["has_bias"] else None
    dx = _aligned.empty(x.shape, dtype=dout.dtype) if input_grad else None
    if dout.size:
        with kernel_threads(groups) as threads:
            _depthwise.depthwise_weight_grad(x, dout, dw_part, db_part, g.sh, g.sw, g.dh,
                                             g.dw, g.pt, g.pl, threads)
        if input_grad:
            with kernel_threads(g.N * g.H) as threads:
                _depthwise.depthwise_input_grad(dout, w, dx, g.sh, g.sw, g.dh, g.dw, g.pt,
                                                g.pl, threads)
    elif input_grad:
        dx[...] = 0
    dw = dw_part.sum(axis=0)
    db = None if db_part is None else db_part.sum(axis=0)
    return dx, dw, db


def resize2d_forward(x, size, interpolation="bilinear"):
    """Resize to ``size``; see :func:`fastconv.backends.numpy.resize2d_forward`."""
    x, g = _args.resize_args(x, size, interpolation)
    r, q = g.rows, g.cols
    out = _aligned.empty(g.out_shape, dtype=x.dtype)
    with kernel_threads(g.N * g.OH) as threads:
        _resize.resize_forward(x, r.i0, r.i1, r.f.astype(x.dtype), q.i0, q.i1,
                               q.f.astype(x.dtype), g.bilinear, out, threads)
    return out, Cache("resize2d", NAME, g, x.dtype, {})


def resize2d_backward(dout, cache):
    """Gradient of :func:`resize2d_forward` (a gather: fixed summation order)."""
    cache = _args.check_cache(cache, "resize2d", NAME)
    g = cache.geom
    dout = _args.check_dout(dout, g.out_shape, cache.dtype)
    r, q = g.rows, g.cols
    tmp = _aligned.empty((g.N, g.H, g.OW, g.C), dtype=dout.dtype)
    dx = _aligned.empty((g.N, g.H, g.W, g.C), dtype=dout.dtype)
    with kernel_threads(g.N * g.H) as threads:
        _resize.resize_backward(dout, r.i0, r.i1, r.f.astype(dout.dtype), r.lo, r.hi,
                                q.i0, q.i1, q.f.astype(dout.dtype), q.lo, q.hi, tmp, dx,
                                threads)
    return dx
