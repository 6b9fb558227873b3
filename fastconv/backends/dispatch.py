"""Which compiled kernel runs each pass of a 2-D convolution: the dispatch table.

For each pass, ``'forward'``, ``'dx'`` (input gradient), ``'dw'`` (weight and bias
gradient) and ``'relu_maxpool'`` (the fused conv + ReLU + max-pool block), an ordered
list of candidates. Each candidate has

- ``valid(g, dtype, finite)``: whether its kernel can compute this problem and give
  the reference's result (vector widths, strides, padding, Inf/NaN weights);
- ``faster(g, dtype, finite)``: the measured condition under which it is chosen;
- ``rule``, those conditions in words, and ``measured``, the measurement behind the
  thresholds (or a statement that none was made).

``applies = valid and faster``; the first candidate that applies runs (oneDNN's
implementation lists work the same way). The last candidate of each list is the
general one that always applies: im2col + GEMM, the compiled counterpart of the
reference (for ``'dx'``, col2im and the flipped-filter convolution together cover
every problem). ``g`` is a :class:`~fastconv.backends._args.ConvGeometry` (for
``'relu_maxpool'`` a pair ``(g, pool_geometry)``), ``dtype`` a NumPy dtype and
``finite`` anything whose truth says whether every weight is finite (the backend
passes :class:`FiniteWeights`, which looks at the weights only if a predicate asks).

The choice depends on the shapes, the dtype and the finiteness of the weights,
never on the thread count, so results stay bit-identical across thread counts.

:func:`force` makes a named candidate run wherever it is valid (for tests and for
comparing kernels); :func:`explain_conv` says which candidate each pass takes and
why; ``FASTCONV_VERBOSE=1`` in the environment logs every call's choice to stderr
(logger ``fastconv.dispatch``), like ``ONEDNN_VERBOSE``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from typing import Any, Callable, Dict, Iterator, List, NamedTuple, Optional, Tuple

import numpy as np

from .. import _conv
from . import _algorithm, _args
from ._args import ConvGeometry, fail

__all__ = [
    "Candidate",
    "Choice",
    "FiniteWeights",
    "CANDIDATES",
    "PASSES",
    "choose",
    "force",
    "explain_conv",
]

HAVE_AVX2 = _conv.have_avx2()

# Direct (AVX2/FMA) kernels beat im2col + GEMM while the GEMM's inner dimension
# K = KH*KW*C is short: layers a and c of the bench (K = 9, 27) ran 3-4x faster
# forward and 2x backward direct (one thread); b and d (K = 288) are GEMM layers.
# The limit was 48 (not measured), which sent K = 49-63 (a 7x7 first layer, 5x5 on 2
# channels) to GEMM, between it and the wide blocks' 64. Measured 2026-12-03, float32,
# 2 threads, direct against GEMM forced by name side by side in one process, medians of
# 5 per round, 5-7 rounds, load average about 5 on the 2 cores (noisy; per-round ratios
# given as ranges, GEMM time / direct time): K = 49 (64x28x28x1 -> 64 7x7 'same')
# forward 1.7-2.9, dw 1.3-4.2 (one round 0.89 forward at batch 128), first-layer
# backward with the fused dw 1.5-2.0, fused conv+ReLU+pool 1.1-2.0; K = 50 (5x5x2 -> 32)
# forward 1.8-2.9, dw 2.1-5.4; K = 54 (3x3x6 -> 32) forward 1.1-1.8, dw 1.6-2.3;
# K = 63 (3x3x7 -> 32) forward 1.3-1.6, dw 1.9-2.1, fused pool 1.1-1.6. So the direct
# kernels take every K below the wide blocks'.
DIRECT_MAX_K = 63
# First layers (C <= 3) with fewer filters than the wide blocks need keep the direct
# kernels up to a 7x7 kernel on 3 channels (same runs, F = 8): K = 75 (5x5x3) forward
# 1.5-3.4, dw 1.4-4.7, fused dw backward 1.7-3.2, fused pool 2.2-3.8; K = 147 (7x7x3)
# forward 0.8-2.7 (median 1.15), dw 2.1-3.2, fused dw backward 1.9-3.5, fused pool
# 1.2-3.1.
FIRST_LAYER_MAX_C = 3
FIRST_LAYER_MAX_K = 147
# ... and for the input gradient while C (the GEMM's output width there) is this
# small (no measurement recorded for the limit itself).
DIRECT_DX_MAX_C = 4
# dx takes the wide blocks up to this ratio of the image's area to dout's: with the
# padding's taps skipped the blocks do only the reference's terms, but the windows
# near the edges run one at a time. Paired runs (2 threads, float32, backward against
# col2im): d (ratio 1.33) 1.11x faster; e (2.25) 0.94x, so e stays on col2im.
WIDE_DX_MAX_AREA = 1.4
# The input gradient of a batch takes col2im for images of at least this many output
# positions, else the flipped-filter convolution. Since small images are batched,
# col2im is never slower: layer e's backward took 4.1-4.5 ms against 7.8-8.6 ms by
# flipped filters, d 17.8 against 22-24, b, f and an 8x8 'same' layer within noise of
# each other (2 threads, busy machine).
COL2IM_MIN_POSITIONS = 0
# A single image takes col2im too (one task, in tiles), except at stride 1 from this
# many FLOP of dx on, where the flipped filters' tiles in parallel win. Measured
# 2026-12-04 (benchmarks/crossover.py, 2 threads, float32, backward ms col2im / flip):
# strided: 1x112x112x32 -> 64 5x5/2 (321 MFLOP) 5.23 / 10.12, 1x56x56x128 -> 128 3x3/2
# 4.00 / 6.17, 1x14x14x128 -> 256 3x3/2 0.88 / 2.26, 1x32x32x256 -> 64 1x1/2 0.28 /
# 0.51; stride 1: 1x64x64x8 -> 16 3x3 (9 MFLOP) 0.44 / 0.52, 1x28x28x16 -> 32 5x5 (15
# MFLOP) 0.39 / 0.56, 1x14x14x96 -> 48 7x7 (29 MFLOP) 1.00 / 1.58; 1x56x56x64 -> 64 3x3
# (231 MFLOP) 3.26 / 2.59, 1x112x112x64 -> 64 3x3 (892 MFLOP) 11.3 / 7.4.
FLIP_MIN_FLOP = 100e6
# A first layer's direct dx and dw run as one pass over dout from this many images
# on (at least one image per dw group: the kernel computes an image's dx in the group
# that holds its last output row; the backend has 16 groups).
FUSE_MIN_IMAGES = 16
# The fused conv + ReLU + max-pool kernels keep each window's winner as an int8.
FUSED_MAX_WINDOW = 127
# ... and run padded ('same') layers only up to this K: their border windows are slow
# there. Measured 2026-12-04 (2 threads, float32, batch 128, 2x2 pool, ms fused /
# separate, forward and weight-gradient backward): 'same' 28x28x1 -> 64 7x7 10.1 / 8.9
# and 19.2 / 11.8, -> 32 7x7 5.1 / 4.5 and 9.0 / 5.4, 32x32x3 -> 32 5x5 6.0 / 4.0 and
# 6.1 / 5.1, 7x7 12.9 / 7.4 and 12.5 / 7.6, 64x32x32x7 -> 32 3x3 3.3 / 2.5 and 5.6 /
# 3.3; kept fused: 3x3x1 -> 64 1.6 / 2.7 and 1.8 / 4.9, 3x3x3 -> 64 5.2 / 6.4 and 8.0 /
# 9.6, 5x5x1 -> 64 4.4 / 5.8 and 7.9 / 7.9 (-> 32: 2.2 / 2.5 and 3.9 / 3.3). Unpadded
# layers stay fused up to 7x7x3: 'valid' 28x28x1 -> 64 7x7 1.3 / 1.9 and 2.0 / 2.7,
# 32x32x3 -> 32 5x5 2.5 / 2.2 and 1.7 / 2.8, 7x7 2.9 / 2.5 and 2.4 / 2.8.
FUSED_PADDED_MAX_K = 27

PASSES = ("forward", "dx", "dw", "relu_maxpool")


def lanes(dtype) -> int:
    """The direct kernels' vector width: 8 floats or 4 doubles."""
    return 8 if dtype == np.float32 else 4


def on_lanes(dtype, f: int, float32_only: bool = False) -> bool:
    """Whether the direct kernels exist here (AVX2) for ``f`` filters of ``dtype``: a
    multiple of the vector width (8 floats, 4 doubles). ``float32_only``: kernels that
    exist for float32 alone (the pixel-vectorised input gradient, the fused pooling
    block)."""
    if not HAVE_AVX2:
        return False
    if dtype == np.float32:
        return f % 8 == 0
    return not float32_only and dtype == np.float64 and f % 4 == 0


def reduction(g: ConvGeometry) -> int:
    """K = KH*KW*C, the inner dimension of the forward's and dw's GEMM."""
    return g.KH * g.KW * g.C


def flop(g: ConvGeometry) -> int:
    """FLOP of one pass (forward, dx or dw): 2*N*OH*OW*KH*KW*C*F."""
    return 2 * g.N * g.OH * g.OW * g.KH * g.KW * g.C * g.F


def flip_faster(g: ConvGeometry) -> bool:
    """Where a single image's dx takes the flipped filters rather than col2im (see
    FLIP_MIN_FLOP)."""
    return g.sh == g.sw == 1 and flop(g) >= FLIP_MIN_FLOP


def padded_geometry(g: ConvGeometry) -> bool:
    """Whether the layer pads its input on any side."""
    return g.pt > 0 or g.pb > 0 or g.pl > 0 or g.pr > 0


def wide_forward(g: ConvGeometry, dtype) -> bool:
    """Whether a long reduction takes the direct forward kernel's wide blocks (six
    windows x two vectors of filters, or up to four 512-bit vectors on AVX-512); the
    kernel takes them only from two vectors of filters on."""
    return reduction(g) >= _conv.WIDE_MIN_K and g.F >= 2 * lanes(dtype)


def wide_weight_grad(g: ConvGeometry, dtype) -> bool:
    """Whether dw takes the direct kernel's wide blocks (six taps x two vectors of
    filters, or up to four 512-bit vectors on AVX-512): a long reduction, F a
    multiple of two vectors."""
    return reduction(g) >= _conv.WIDE_MIN_K and g.F % (2 * lanes(dtype)) == 0


def wide_input_grad(g: ConvGeometry, dtype, finite) -> bool:
    """Whether dx can run as the convolution of dout with the flipped filters on the
    direct forward kernel's wide blocks: stride 1, a long reduction (KH*KW*F), C
    filling the blocks' two vectors of output channels, padding no larger than the
    filter's reach (else dout would have to be cropped). The kernel skips the taps
    outside dout, as the reference does, except for the channels past the last whole
    two vectors (C % 16 float32, C % 8 float64), where it multiplies zeros: with
    those, only finite weights."""
    two = 2 * lanes(dtype)
    reach_h, reach_w = g.dh * (g.KH - 1), g.dw * (g.KW - 1)
    return (g.sh == 1 and g.sw == 1 and g.KH * g.KW * g.F >= _conv.WIDE_MIN_K
            and g.C >= two and on_lanes(dtype, g.C)
            and g.pt <= reach_h and g.pl <= reach_w and g.pb <= reach_h and g.pr <= reach_w
            and (g.C % two == 0 or finite))


def short_reduction(g: ConvGeometry) -> bool:
    """A reduction the direct kernels (their narrow blocks) win on against GEMM: below
    the wide blocks' limit, or a first layer's up to 7x7x3."""
    k = reduction(g)
    return k <= DIRECT_MAX_K or (g.C <= FIRST_LAYER_MAX_C and k <= FIRST_LAYER_MAX_K)


def short_or_wide(g: ConvGeometry, dtype) -> bool:
    """A reduction the direct forward wins on: short, or long on the wide blocks."""
    return short_reduction(g) or wide_forward(g, dtype)


_PADDED_FILTERS_MEASURED = (
    "CS231n-like layer (25 filters), backend alone, one process: float32 forward 1.26 -> "
    "0.55-0.88 ms, backward 2.0 -> 1.4-1.7; float64 forward 1.3-1.6 -> 1.0-1.1, backward "
    "about equal")


def pad_filters(g: ConvGeometry, dtype, short: bool) -> bool:
    """Whether a layer whose filter count alone keeps it off the direct kernels runs
    them on filters zero-padded to the vector width (``short``: the reduction is one
    they win on; measured: ``_PADDED_FILTERS_MEASURED``)."""
    return HAVE_AVX2 and g.F % lanes(dtype) != 0 and short


def _always(g, dtype, finite) -> bool:
    return True


# ------------------------------------------------------------------------ Winograd
# The Winograd F(2x2, 3x3) candidates ('winograd' in forward, dx, dw) are skipped under
# fastconv.set_conv_algorithm('direct') and taken wherever valid under 'winograd';
# under 'auto' (the default) where faster. Their rounding differs from the direct
# kernels' (bound: fastconv.backends.winograd.error_bound).
WINOGRAD = "winograd"
# Where 'auto' takes Winograd: both channel counts at least this many (the GEMMs over
# channels need a reduction long enough to run well), and for dw C at least
# WINOGRAD_DW_MIN_C. Measured 2026-12-04 (benchmarks/winograd_compare.py, float32,
# 2 threads, Winograd forced against set_conv_algorithm('direct'), side by side in one
# process, 5-7 rounds of medians of 5, four runs (three for the last six layers), the
# machine shared with another job; direct time / Winograd time, forward / backward
# (dx + dw) / dw alone): bench b (32 -> 64 on 26x26) 1.26-1.42 / 0.99-1.32 / 0.98-1.01;
# d (32 -> 64, 15x15) 0.93-1.37 / 1.00-1.02 / 0.87-0.96; e (64 -> 64, 6x6) 1.05-1.47 /
# 0.63 in one run, 1.02-1.11 in two (1.03 paired by hand) / 1.01-1.26; f (64 -> 64,
# 56x56 'same') 1.41-1.80 / 1.36-1.70 / 1.19-1.96; f1 (batch 1) 1.21-1.32 / 1.11-1.31 /
# 1.03-1.32; 32 -> 128 on 8x8 1.16-2.05 / 1.05-1.53 / 0.87-0.98; 64 -> 64 on 4x4
# 1.25-2.32 / 1.35-1.75 / 1.37-1.81; 64 -> 32 on 14x14 1.48-1.63 / 1.35-1.72 /
# 1.49-1.80; 32 -> 64 on 14x14 1.37-1.51 / 1.38-1.71 / 1.55-2.70; the deeper
# Fashion-MNIST CNN's 'same' layers at batch 64 and 128: 64 -> 128 on 14x14 1.26-2.24 /
# 1.49-1.93 / 1.51-2.00, 128 -> 128 1.64-2.36 / 1.47-2.28 / 1.64-2.35, 128 -> 256 on
# 7x7 1.08-1.76 / 1.15-1.51 / 1.06-1.26, 256 -> 256 1.81-3.02 / 1.52-1.98 / 1.44-1.65.
# float64 (one run): b 1.09 / 0.99 / 0.99, 128 -> 128 2.03 / 1.92 / 1.52, 256 -> 256
# 3.40 / 2.56 / 1.87. d's forward is at the crossover.
# Fewer channels, measured 2026-12-04 (benchmarks/crossover.py, 2 threads, 3 rounds,
# filters and outputs 64-byte aligned; ms Winograd / the direct kernels' choice,
# forward, backward with dx forced, dw alone): float32 32x28x28x16 -> 32 'same' 0.88 /
# 0.94, 2.71 / 2.89, 1.11 / 1.57; 32x28x28x16 -> 64 1.36 / 1.56, 4.11 / 4.81, 1.76 /
# 2.25; 32x56x56x24 -> 48 6.05 / 7.73, 23.4 / 36.3, 6.36 / 13.1; 64x14x14x16 -> 128
# 1.31 / 1.65, 3.77 / 4.90, 1.62 / 2.05; 16x28x28x32 -> 16 0.59 / 0.67, 1.70 / 1.76,
# 0.60 / 1.09; 32x28x28x64 -> 24 3.19 / 7.84, 8.48 / 8.73, 2.85 / 6.25; 128x8x8x24 ->
# 384 'valid' forward 2.07 / 2.65, dw 2.38 / 3.12, but dx (on dout padded from 6x6 to
# 10x10) lost to col2im by about 2x; dw of 128x26x26x32 -> 32 4.46 / 5.62. float64:
# the same layers 1.56 / 1.60 .. 10.7 / 14.7 forward, 0.98 / 1.81 .. 12.3 / 22.6 dw.
# 8 channels lost: 32x32x32x8 -> 64 1.24 / 1.12 forward, 1.92 / 1.64 dw. Below
# WINOGRAD_MIN_FLOP the transforms cost more than they save: 2x7x7x32 -> 192 'valid'
# (5.5 MFLOP) 0.11 / 0.06; 4x14x14x64 -> 64 'same' (58 MFLOP) 0.33 / 0.35.
WINOGRAD_MIN_CHANNELS = 16
WINOGRAD_DW_MIN_C = 16
WINOGRAD_MIN_FLOP = 20e6


def winograd_geometry(g: ConvGeometry, dtype) -> bool:
    """3x3 filters, stride 1, dilation 1, float32/float64, a non-empty output."""
    return ((g.KH, g.KW, g.sh, g.sw, g.dh, g.dw) == (3, 3, 1, 1, 1, 1)
            and dtype in (np.float32, np.float64) and g.N * g.OH * g.OW * g.C * g.F > 0)


def winograd_faster(g: ConvGeometry, min_c: int = WINOGRAD_MIN_CHANNELS) -> bool:
    """Where 'auto' takes Winograd (measured: see WINOGRAD_MIN_CHANNELS): at least
    ``min_c`` input and 16 output channels (for dx, of the swapped problem) and
    WINOGRAD_MIN_FLOP."""
    return (g.C >= min_c and g.F >= WINOGRAD_MIN_CHANNELS
            and flop(g) >= WINOGRAD_MIN_FLOP)


def winograd_dx_faster(g: ConvGeometry) -> bool:
    """dx by Winograd (the forward on dout, filters flipped, C and F swapped) where
    the forward would take it and the image is hardly larger than dout (as for 'wide':
    a 'valid' layer on a small map pads dout mostly with zeros)."""
    return (winograd_faster(g._replace(C=g.F, F=g.C))
            and g.H * g.W <= WIDE_DX_MAX_AREA * g.OH * g.OW)


WINOGRAD_MEASURED = (
    "direct time / Winograd time, float32, 2 threads, forward / backward / dw alone, four "
    "runs: bench b 1.26-1.42 / 0.99-1.32 / 0.98-1.01, d 0.93-1.37 / 1.00-1.02 / "
    "0.87-0.96, f 1.41-1.80 / 1.36-1.70 / 1.19-1.96; Fashion-MNIST CNN 'same' layers "
    "128 -> 128 on 14x14 1.64-2.36 / 1.47-2.28 / 1.64-2.35, 256 -> 256 on 7x7 1.81-3.02 "
    "/ 1.52-1.98 / 1.44-1.65 (benchmarks/winograd_compare.py; see "
    "WINOGRAD_MIN_CHANNELS)")


class Candidate(NamedTuple):
    """One kernel of a pass: when it can run, when it is chosen, and why."""

    name: str
    valid: Callable[[Any, Any, Any], bool]
    faster: Callable[[Any, Any, Any], bool]
    rule: str
    measured: str

    def applies(self, g, dtype, finite) -> bool:
        """Whether this candidate is chosen when it is reached: valid and faster."""
        return bool(self.valid(g, dtype, finite) and self.faster(g, dtype, finite))


FORWARD = [
    Candidate(
        WINOGRAD,
        lambda g, dt, fin: winograd_geometry(g, dt) and bool(fin),
        lambda g, dt, fin: winograd_faster(g),
        "3x3, stride 1, dilation 1, finite weights, C >= 16, F >= 16, at least 20 MFLOP: "
        "Winograd F(2x2, 3x3), 16 GEMMs over channels per chunk of tiles",
        WINOGRAD_MEASURED,
    ),
    Candidate(
        "direct-padded-filters",
        lambda g, dt, fin: HAVE_AVX2 and g.F % lanes(dt) != 0,
        lambda g, dt, fin: short_or_wide(g, dt),
        "AVX2, F not a multiple of the vector width, K <= 63 (147 for C <= 3) or "
        "K >= WIDE_MIN_K with "
        "F >= two vectors: the direct kernel on zero-padded filters, copied out",
        _PADDED_FILTERS_MEASURED,
    ),
    Candidate(
        "direct-wide-skip",
        lambda g, dt, fin: (on_lanes(dt, g.F) and wide_forward(g, dt)
                            and padded_geometry(g) and fin),
        _always,
        "AVX2, K >= WIDE_MIN_K, F >= two vectors, padded input, finite weights: the wide "
        "blocks skip the padding's taps themselves",
        "forward GFLOP/s on 2 threads against im2col + sgemm (2026-11-26, AVX2 blocks): "
        "b 209 vs 168, d 190 vs 162, e 187 vs 162; f on the two-column border code "
        "instead ran at 160 against 173; 2026-12-04, ms against im2col + GEMM (filters and "
        "outputs 64-byte aligned, see fastconv.backends._aligned): 2x32x32x32 -> 256 7x7 "
        "6.3-6.9 vs 8.0-8.6, 32x14x14x128 -> 128 5x5 18.9-19.5 vs 27.9-28.6, 32x8x8x16 -> "
        "128 7x7/2 0.71-0.76 vs 0.80-0.87, 16x7x7x256 -> 256 3x3/2 2.65-2.85 vs 2.73",
    ),
    Candidate(
        "direct-wide-padded-copy",
        lambda g, dt, fin: (on_lanes(dt, g.F) and wide_forward(g, dt)
                            and padded_geometry(g) and not fin),
        _always,
        "as direct-wide-skip, but an Inf or NaN weight (whose product with the padding's "
        "zeros the reference keeps): the wide blocks on a zero-padded copy of the input, "
        "in chunks of whole images",
        "none for this case: it keeps the wide blocks' speed where a weight is not finite",
    ),
    Candidate(
        "direct",
        lambda g, dt, fin: on_lanes(dt, g.F),
        lambda g, dt, fin: short_or_wide(g, dt),
        "AVX2, F a multiple of the vector width, K <= 63 or C <= 3 and K <= 147 (or K >= "
        "WIDE_MIN_K on the wide "
        "blocks, unpadded)",
        "bench layers a and c (K = 9, 27) 3-4x faster than im2col + GEMM forward (one "
        "thread); K = 49-63 1.1-2.9x, first layers K = 75 1.5-3.4x and K = 147 0.8-2.7x "
        "(median 1.15), 2 threads, busy machine (see DIRECT_MAX_K)",
    ),
    Candidate(
        "im2col-gemm",
        _always,
        _always,
        "always: tiled im2col + GEMM, 1 MiB of workspace per thread",
        "workspace per thread, forward of b, d, e, f on one thread: 128 KiB 61-62 GFLOP/s, "
        "256 KiB 65, 512 KiB 70, 1 MiB 73, 2 MiB 73 (OpenBLAS sgemm 88)",
    ),
]

DX = [
    Candidate(
        WINOGRAD,
        lambda g, dt, fin: winograd_geometry(g, dt) and bool(fin),
        lambda g, dt, fin: winograd_dx_faster(g),
        "3x3, stride 1, dilation 1, finite weights, C >= 16, F >= 16, at least 20 MFLOP, "
        "H*W <= 1.4 OH*OW: the Winograd forward on dout with the filters flipped and "
        "transposed",
        WINOGRAD_MEASURED,
    ),
    Candidate(
        "planar",
        lambda g, dt, fin: (g.sh == g.sw == 1 and _conv.dx_planar_width(g.C) > 0
                            and on_lanes(dt, g.F, float32_only=True) and fin),
        _always,
        "stride 1, 2-4 input channels, float32, F a multiple of 8, finite weights: "
        "direct kernel vectorised over pixels",
        "fused with dw: bench layer c's backward 4.37 -> 3.33 ms paired (1.26x), "
        "2 channels 1.24x; no separate measurement of the kernel alone recorded",
    ),
    Candidate(
        "direct",
        lambda g, dt, fin: g.sh == g.sw == 1 and on_lanes(dt, g.F),
        lambda g, dt, fin: g.C <= DIRECT_DX_MAX_C,
        "stride 1, F a multiple of the vector width, C <= 4: direct kernel, one pixel at a "
        "time",
        "none recorded for C <= 4; at strides above 1 it measured slower than "
        "col2im on every layer tried (3x3/2 C2 0.26 -> 0.57 ms, 5x5/3 C4 0.40 -> 3.80)",
    ),
    Candidate(
        "wide",
        lambda g, dt, fin: wide_input_grad(g, dt, fin),
        lambda g, dt, fin: g.H * g.W <= WIDE_DX_MAX_AREA * g.OH * g.OW,
        "stride 1, KH*KW*F >= WIDE_MIN_K, C >= two vectors, padding within the filter's "
        "reach, H*W <= 1.4 OH*OW: the flipped filters on the forward's wide blocks",
        "paired runs (2 threads, float32, backward against col2im): d (area ratio 1.33) "
        "1.11x faster; e (2.25) 0.94x",
    ),
    Candidate(
        "col2im",
        _always,
        lambda g, dt, fin: (g.N > 1 and g.OH * g.OW >= COL2IM_MIN_POSITIONS) or not fin
        or not flip_faster(g),
        "a batch, a single image but strided or under 100 MFLOP, or a weight that is not "
        "finite: dout @ W^T then col2im, in parallel over runs of whole images",
        "layer e's backward 4.1-4.5 ms against 7.8-8.6 ms by flipped filters, d 17.8 "
        "against 22-24, b, f and an 8x8 'same' layer within noise (2 threads, busy "
        "machine); single images: see FLIP_MIN_FLOP",
    ),
    Candidate(
        "flip",
        lambda g, dt, fin: bool(fin),
        _always,
        "one image at stride 1, at least 100 MFLOP, finite weights: convolution of dout "
        "with the filters flipped, on im2col + GEMM in parallel over tiles",
        "single images, backward ms col2im / flip, 2 threads: 1x56x56x64 -> 64 3x3 3.26 / "
        "2.59, 1x112x112x64 -> 64 3x3 11.3 / 7.4; below 100 MFLOP or strided col2im won "
        "by 1.2-2.6x (see FLIP_MIN_FLOP)",
    ),
]

DW = [
    Candidate(
        WINOGRAD,
        lambda g, dt, fin: winograd_geometry(g, dt),
        lambda g, dt, fin: winograd_faster(g, WINOGRAD_DW_MIN_C),
        "3x3, stride 1, dilation 1, C >= 16, F >= 16, at least 20 MFLOP: G^T [sum over "
        "tiles of (B^T d B) . (A dy A^T)] G, 16 GEMMs over tiles in fixed groups",
        WINOGRAD_MEASURED,
    ),
    Candidate(
        "direct-fused",
        lambda g, dt, fin: (on_lanes(dt, g.F) and g.N >= FUSE_MIN_IMAGES and g.OH * g.OW > 0
                            and not (padded_geometry(g) and wide_weight_grad(g, dt))),
        lambda g, dt, fin: short_reduction(g),
        "dx on 'direct' or 'planar', K <= 63 (147 for C <= 3), at least 16 images: dw and "
        "dx in one pass over dout, with the bits of the two passes",
        "paired backward, 2 threads: a128 float64 1.44-1.57x, float32 1.15-1.22x; a "
        "(batch 32) 1.09-1.17x; c float64 1.07-1.13x; against GEMM dw: K = 49 1.5-2.0x, "
        "K = 75 1.7-3.2x, K = 147 1.9-3.5x (see DIRECT_MAX_K)",
    ),
    Candidate(
        "direct-wide-padded-copy",
        lambda g, dt, fin: (on_lanes(dt, g.F) and padded_geometry(g)
                            and wide_weight_grad(g, dt)),
        _always,
        "padded input, K >= WIDE_MIN_K, F a multiple of two vectors: the wide blocks on "
        "zero-padded copies of the input, in chunks of whole images",
        "as direct: the wide blocks need an unpadded input",
    ),
    Candidate(
        "direct",
        lambda g, dt, fin: (on_lanes(dt, g.F)
                            and not (padded_geometry(g) and wide_weight_grad(g, dt))),
        lambda g, dt, fin: short_reduction(g) or wide_weight_grad(g, dt),
        "F a multiple of the vector width, K <= 63 (147 for C <= 3), or K >= WIDE_MIN_K "
        "with F a multiple of two vectors (wide blocks): fixed groups of output rows",
        "wide blocks, one thread, dw alone against im2col + sgemm (AVX2 blocks): b 7.9 vs "
        "9.8 ms, d 8.7-9.0 vs 11.4, e 1.9-2.0 vs 2.2; short reductions: layers a and c "
        "2x faster backward (one thread), K = 49-63 1.3-5.4x, first layers K = 75 and "
        "147 1.4-4.7x (see DIRECT_MAX_K)",
    ),
    Candidate(
        "im2col-gemm",
        _always,
        _always,
        "always: im2col + GEMM in 16 fixed groups, summed in a fixed order",
        "(the general path; group count fixed so that the bits do not depend on threads)",
    ),
]

RELU_MAXPOOL = [
    Candidate(
        "fused-direct",
        lambda gp, dt, fin: (gp[1].PH * gp[1].PW <= FUSED_MAX_WINDOW
                             and gp[1].N * gp[1].OH * gp[1].OW > 0
                             and on_lanes(dt, gp[0].F, float32_only=True)),
        lambda gp, dt, fin: short_reduction(gp[0]) and (
            not padded_geometry(gp[0]) or reduction(gp[0]) <= FUSED_PADDED_MAX_K),
        "float32, F a multiple of 8, K <= 63 (147 for C <= 3), and K <= 27 if padded, "
        "pool window <= 127: conv, ReLU and pooling in one kernel that never writes the "
        "convolution's output",
        "against the separate passes: K = 49 1.1-2.0x, 63 1.1-1.6x, 75 2.2-3.8x, 147 "
        "1.2-3.1x (see DIRECT_MAX_K); padded layers: see FUSED_PADDED_MAX_K",
    ),
    Candidate(
        "separate",
        _always,
        _always,
        "always: conv2d_relu_forward then maxpool2d_forward",
        "(the general path)",
    ),
]

CANDIDATES: Dict[str, List[Candidate]] = {
    "forward": FORWARD, "dx": DX, "dw": DW, "relu_maxpool": RELU_MAXPOOL,
}
# The dw candidate that runs only together with these dx candidates.
FUSED_DW = "direct-fused"
FUSED_WITH_DX = ("direct", "planar")

_forced: Dict[str, str] = {}


class FiniteWeights:
    """Truthy when every weight is finite; looked at on first use only (one pass over
    the weights), so that the passes that do not ask do not pay for it."""

    __slots__ = ("_w", "_value")

    def __init__(self, w: np.ndarray):
        self._w = w
        self._value: Optional[bool] = None

    def __bool__(self) -> bool:
        if self._value is None:
            self._value = bool(np.isfinite(self._w).all())
        return self._value


def choose(pass_: str, g, dtype, finite, exclude: Tuple[str, ...] = ()) -> Candidate:
    """The candidate of ``pass_`` that runs: the forced one where it is valid (see
    :func:`force`), else the first that applies and is not in ``exclude`` (with the
    Winograd candidates as the conv algorithm says: skipped under 'direct', applying
    wherever valid under 'winograd')."""
    table = CANDIDATES[pass_]
    name = _forced.get(pass_)
    if name is not None and name not in exclude:
        for c in table:
            if c.name == name and c.valid(g, dtype, finite):
                return c
    algorithm = _algorithm.get_conv_algorithm()
    for c in table:
        if c.name in exclude or (c.name == WINOGRAD and algorithm == "direct"):
            continue
        if c.name == WINOGRAD and algorithm == "winograd":
            if c.valid(g, dtype, finite):
                return c
        elif c.applies(g, dtype, finite):
            return c
    raise AssertionError(f"no {pass_} candidate applies to {g}")  # the last always does


def forced(pass_: str) -> Optional[str]:
    """The name :func:`force` set for ``pass_``, or None."""
    return _forced.get(pass_)


@contextlib.contextmanager
def force(pass_: str, name: Optional[str]) -> Iterator[None]:
    """Make candidate ``name`` of ``pass_`` run wherever it is valid, inside the block.

    Where it is not valid (a filter count off the vector width for a direct kernel,
    say), the usual choice runs. ``name=None`` leaves the pass to the table. Blocks
    nest; leaving one restores what was set before. The setting is process-wide.

    Examples
    --------
    >>> with force("forward", "im2col-gemm"):  # doctest: +SKIP
    ...     out, cache = fastconv.backends.cython.conv2d_forward(x, w)
    """
    if pass_ not in CANDIDATES:
        raise fail("pass_", f"one of {sorted(CANDIDATES)}", pass_)
    names = [c.name for c in CANDIDATES[pass_]]
    if name is not None and name not in names:
        raise fail("name", f"None or a {pass_} candidate, one of {names}", name)
    before = _forced.get(pass_)
    _set_forced(pass_, name)
    try:
        yield
    finally:
        _set_forced(pass_, before)


def _set_forced(pass_: str, name: Optional[str]) -> None:
    if name is None:
        _forced.pop(pass_, None)
    else:
        _forced[pass_] = name


# ---------------------------------------------------------------- logging, explaining

_log = logging.getLogger("fastconv.dispatch")
VERBOSE = os.environ.get("FASTCONV_VERBOSE", "0") not in ("", "0")
if VERBOSE and not _log.handlers:
    _handler = logging.StreamHandler(sys.stderr)
    _handler.setFormatter(logging.Formatter("%(message)s"))
    _log.addHandler(_handler)
    _log.setLevel(logging.INFO)


def log_choice(pass_: str, g, dtype, name: str, note: str = "") -> None:
    """One line per call when FASTCONV_VERBOSE is set: pass, kernel, problem."""
    if isinstance(g, tuple) and not isinstance(g, ConvGeometry):
        g = g[0]
    _log.info("fastconv_verbose,conv2d,%s,%s,%s,x=%s,w=%s,stride=%s,pad=%s,dilation=%s%s",
              pass_, name, np.dtype(dtype).name, (g.N, g.H, g.W, g.C),
              (g.KH, g.KW, g.C, g.F), (g.sh, g.sw), (g.pt, g.pb, g.pl, g.pr),
              (g.dh, g.dw), f",{note}" if note else "")


class Choice(NamedTuple):
    """What :func:`explain_conv` says of one pass."""

    kernel: str
    rule: str
    measured: str
    passed_over: Tuple[str, ...]
    note: str


def _explain_one(pass_, g, dtype, finite, exclude=(), note="") -> Choice:
    c = choose(pass_, g, dtype, finite, exclude)
    names = [x.name for x in CANDIDATES[pass_]]
    before = tuple(n for n in names[:names.index(c.name)] if n not in exclude)
    return Choice(c.name, c.rule, c.measured, before, note)


def plan_backward(g: ConvGeometry, dtype, finite, input_grad: bool = True
                  ) -> Tuple[int, Optional[Candidate], Candidate]:
    """The backward's plan: (padded filter count or 0, dx candidate or None, dw
    candidate). The filters are padded when the direct kernels win on the reduction
    (or a forced dx/dw candidate is a direct one); dx and dw are then chosen on the
    padded filter count. dw's 'direct-fused' runs only with dx on 'direct'/'planar'."""
    short = short_reduction(g) or any(
        _forced.get(p) not in (None, "im2col-gemm", "col2im", "flip", WINOGRAD)
        for p in ("dx", "dw"))
    fp = padded_width(g, dtype) if pad_filters(g, dtype, short) else 0
    gb = g._replace(F=fp) if fp else g
    dx = choose("dx", gb, dtype, finite) if input_grad else None
    exclude = () if dx is not None and dx.name in FUSED_WITH_DX else (FUSED_DW,)
    return fp, dx, choose("dw", gb, dtype, finite, exclude)


def padded_width(g: ConvGeometry, dtype) -> int:
    """F rounded up to the direct kernels' vector width, and further to four vectors
    (their main block) when that adds at most 30% (float64, 25 filters: 32 ran 25-40%
    faster than 28, both passes)."""
    n = lanes(dtype)
    fp = -(-g.F // n) * n
    full = -(-g.F // (4 * n)) * 4 * n
    return full if full <= 1.3 * g.F else fp


def explain_conv(x_shape, w_shape, stride=1, padding="valid", dilation=1,
                 dtype="float32") -> Dict[str, Choice]:
    """Say which compiled kernel each pass of a convolution takes, and why.

    Parameters
    ----------
    x_shape : tuple of 4 ints
        (N, H, W, C) of the input.
    w_shape : tuple of 4 ints
        (KH, KW, C, F) of the filters.
    stride, padding, dilation
        As for :func:`fastconv.backends.cython.conv2d_forward`.
    dtype : {'float32', 'float64'}

    Returns
    -------
    dict
        ``{'forward': Choice, 'dx': Choice, 'dw': Choice}``, each with the kernel's
        name, the rule that chose it, the measurement behind the rule, the candidates
        passed over before it and a note (padded filters). Also printed. The weights
        are taken to be finite.

    Examples
    --------
    >>> fastconv.explain_conv((64, 28, 28, 1), (7, 7, 1, 64), padding="same")
    ... # doctest: +SKIP
    """
    dt = np.dtype(dtype)
    if dt not in (np.float32, np.float64):
        raise fail("dtype", "'float32' or 'float64'", dtype)
    g = _args.conv_geometry(_shape(x_shape, "x_shape"), _shape(w_shape, "w_shape"),
                            stride, padding, dilation)
    out: Dict[str, Choice] = {}
    fwd = choose("forward", g, dt, True)
    note = (f"filters padded {g.F} -> {padded_width(g, dt)}"
            if fwd.name == "direct-padded-filters" else "")
    out["forward"] = _explain_one("forward", g, dt, True, note=note)
    fp, dx, dw = plan_backward(g, dt, True)
    gb = g._replace(F=fp) if fp else g
    note = f"filters padded {g.F} -> {fp}" if fp else ""
    out["dx"] = _explain_one("dx", gb, dt, True, note=note)
    exclude = () if dx.name in FUSED_WITH_DX else (FUSED_DW,)
    out["dw"] = _explain_one("dw", gb, dt, True, exclude, note)
    print(format_explanation(g, dt, out))
    return out


def format_explanation(g: ConvGeometry, dtype, choices: Dict[str, Choice]) -> str:
    """The text :func:`explain_conv` prints."""
    lines = [f"conv2d x=(N, H, W, C)={(g.N, g.H, g.W, g.C)} w={(g.KH, g.KW, g.C, g.F)} "
             f"stride={(g.sh, g.sw)} pad(t, b, l, r)={(g.pt, g.pb, g.pl, g.pr)} "
             f"dilation={(g.dh, g.dw)} {np.dtype(dtype).name}, out={g.out_shape}, "
             f"K = KH*KW*C = {reduction(g)} (simd: {_conv.simd()}, conv algorithm: "
             f"{_algorithm.get_conv_algorithm()})"]
    for pass_, c in choices.items():
        lines.append(f"  {pass_:8s} {c.kernel}" + (f" ({c.note})" if c.note else ""))
        lines.append(f"           rule: {c.rule}")
        lines.append(f"           measured: {c.measured}")
        if c.passed_over:
            lines.append(f"           passed over: {', '.join(c.passed_over)}")
    return "\n".join(lines)


def _shape(value, name: str) -> Tuple[int, ...]:
    if (not isinstance(value, (tuple, list)) or len(value) != 4
            or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool)
                       and v >= 0 for v in value)):
        raise fail(name, "a tuple of 4 non-negative ints", value, TypeError)
    return tuple(int(v) for v in value)
