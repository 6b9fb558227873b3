"""``python -m fastconv.bench --sweep N --seed S``: random layer shapes against PyTorch.

The shapes are drawn from the space real CNNs use (issue 18): kernels 1, 3, 5, 7;
1-512 channels in and out; square maps of 4-112; strides 1 and 2; 'same' and
'valid'; batch 1-128; redrawn while a forward pass would exceed ``max_gflop``.
Each shape's forward + backward (dx, dw, db) is timed on fastconv and, when torch is
importable in this interpreter, on PyTorch in its faster memory format, side by side;
the ratio is PyTorch's time over fastconv's (above 1: fastconv is faster).
"""

from __future__ import annotations

import math
from typing import Callable, List, NamedTuple, Optional

import numpy as np

KERNELS = (1, 3, 5, 7)
CHANNELS = (1, 3, 8, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512)
MAPS = (4, 7, 8, 14, 16, 28, 32, 56, 112)
BATCHES = (1, 2, 8, 16, 32, 64, 128)


class SweepShape(NamedTuple):
    """One layer: x (N, H, H, C), w (K, K, C, F)."""

    N: int
    H: int
    C: int
    F: int
    K: int
    stride: int
    padding: str

    @property
    def out_size(self) -> int:
        if self.padding == "same":
            return -(-self.H // self.stride)
        return (self.H - self.K) // self.stride + 1

    @property
    def gflop(self) -> float:
        """Forward GFLOP (two per multiply-add)."""
        return 2e-9 * self.N * self.out_size ** 2 * self.F * self.K * self.K * self.C

    def label(self) -> str:
        return (f"({self.N},{self.H},{self.H},{self.C})->{self.F} {self.K}x{self.K}"
                f"/{self.stride} {self.padding}")


def sweep_shapes(n: int, seed: int, max_gflop: float = 2.0) -> List[SweepShape]:
    """``n`` shapes drawn with ``np.random.default_rng(seed)`` (the same list for the
    same arguments); a shape whose forward exceeds ``max_gflop`` is drawn again."""
    rng = np.random.default_rng(seed)
    out: List[SweepShape] = []
    while len(out) < n:
        s = SweepShape(int(rng.choice(BATCHES)), int(rng.choice(MAPS)),
                       int(rng.choice(CHANNELS)), int(rng.choice(CHANNELS[1:])),
                       int(rng.choice(KERNELS)), int(rng.choice((1, 2))),
                       str(rng.choice(("same", "valid"))))
        if s.H >= s.K and s.gflop <= max_gflop:
            out.append(s)
    return out


class SweepRow(NamedTuple):
    shape: SweepShape
    fastconv_ms: float
    torch_ms: Optional[float]
    torch_format: Optional[str]

    @property
    def ratio(self) -> Optional[float]:
        return None if self.torch_ms is None else self.torch_ms / self.fastconv_ms


def _fastconv_fn(s: SweepShape, dtype) -> Callable[[], object]:
    from . import ops

    rng = np.random.default_rng(0)
    x = rng.standard_normal((s.N, s.H, s.H, s.C)).astype(dtype)
    w = rng.standard_normal((s.K, s.K, s.C, s.F)).astype(dtype)
    b = rng.standard_normal(s.F).astype(dtype)
    out, _ = ops.conv2d_forward(x, w, b, s.stride, s.padding)
    dout = rng.standard_normal(out.shape).astype(dtype)

    def fwd_bwd():
        o, c = ops.conv2d_forward(x, w, b, s.stride, s.padding)
        return ops.conv2d_backward(dout, c)

    return fwd_bwd


def _torch_fns(torch, s: SweepShape, dtype) -> dict:
    """PyTorch forward + backward of ``s`` by memory format; Keras's 'same' (the extra
    row and column of padding at the bottom and right) by an explicit pad."""
    import torch.nn.functional as F

    tdt = getattr(torch, np.dtype(dtype).name)
    w = torch.randn(s.F, s.C, s.K, s.K, dtype=tdt, requires_grad=True)
    b = torch.randn(s.F, dtype=tdt, requires_grad=True)
    total = max((s.out_size - 1) * s.stride + s.K - s.H, 0) if s.padding == "same" else 0
    pads = (total // 2, total - total // 2) * 2

    def op(t):
        return F.conv2d(F.pad(t, pads) if total else t, w, b, stride=s.stride)

    fns = {}
    for fmt, label in ((torch.contiguous_format, "NCHW"), (torch.channels_last, "NHWC")):
        x = torch.randn(s.N, s.C, s.H, s.H, dtype=tdt).contiguous(memory_format=fmt)
        g = torch.randn_like(op(x))

        def fwd_bwd(x=x, g=g):
            op(x.detach().requires_grad_(True)).backward(g)

        fns[label] = fwd_bwd
    return fns


def run_sweep(shapes: List[SweepShape], dtype, reps: int, torch=None,
              log: Callable[[str], None] = print) -> List[SweepRow]:
    """Time every shape (medians of ``reps`` after warm-up) and log one line each."""
    from .bench import median_ms

    rows = []
    for s in shapes:
        ms = median_ms(_fastconv_fn(s, dtype), reps)
        tms = fmt = None
        if torch is not None:
            by_format = {k: median_ms(fn, reps) for k, fn in _torch_fns(torch, s, dtype).items()}
            fmt = min(by_format, key=by_format.get)
            tms = by_format[fmt]
        row = SweepRow(s, ms, tms, fmt)
        rows.append(row)
        log(f"{s.label():40s} {s.gflop:7.3f} {ms:9.2f} "
            + ("-" if tms is None else f"{tms:9.2f} {fmt} {row.ratio:6.2f}"))
    return rows


def summary(rows: List[SweepRow]) -> str:
    """Geometric mean and worst of the ratios (when PyTorch ran)."""
    ratios = [r.ratio for r in rows if r.ratio is not None]
    if not ratios:
        return "# PyTorch not importable here: no ratios"
    gmean = math.exp(sum(math.log(r) for r in ratios) / len(ratios))
    worst = min(rows, key=lambda r: r.ratio if r.ratio is not None else math.inf)
    below = sum(r < 1.0 for r in ratios)
    return (f"# {len(ratios)} shapes: geometric mean {gmean:.2f}x PyTorch, worst "
            f"{worst.ratio:.2f}x ({worst.shape.label()}), {below} below 1.0x")
