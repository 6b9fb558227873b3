"""``python -m fastconv.bench``: time fastconv's kernels against the NumPy reference and PyTorch.

Prints one table: per layer, the compiled backend's forward, backward and
forward+backward milliseconds, GFLOP/s, the percentage of this machine's sgemm rate
(numpy's float32 matrix product, measured in the same run on the same threads), the
peak extra memory, and the speedup over the NumPy reference and over PyTorch (its
faster memory format, NCHW or channels_last; column omitted when torch is not
importable). Every figure is the median over repetitions after warm-up, and each
comparison is measured side by side in the same process.

Examples
--------
    python -m fastconv.bench                      # all layers, 2 threads, float32
    python -m fastconv.bench --only a,b,g --reps 30
    python -m fastconv.bench --dtype float64 --json out.json --csv out.csv --plot out.png
    python -m fastconv.bench --sweep 24 --seed 1   # random layer shapes (fastconv._sweep)
    python -m fastconv.bench --only b,d,f --conv-algorithm direct   # no Winograd
    python -m fastconv.bench --cs231n ~/assignment2  # against the course's fast layers

Where torch lives in another environment, run the bench with that interpreter and
fastconv on its path (``PYTHONPATH=/path/to/fastconv-checkout``), so that both are
timed side by side in one process.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import sys
import time
import tracemalloc
from dataclasses import asdict, dataclass, field
from typing import Callable, Optional

import numpy as np

from . import _info, _threads, ops
from .backends import use_backend

__all__ = ["CONV_LAYERS", "POOL_LAYERS", "FAMILY_LAYERS", "UPSAMPLE_LAYERS",
           "GLOBAL_POOL_LAYERS", "main", "run"]


@dataclass(frozen=True)
class ConvLayer:
    """A 3x3 stride-1 convolution of x (N, H, W, C) to F filters.

    ``block``: the network's first block instead, Conv2D(relu) + MaxPooling2D(2) as
    Sequential runs it (:func:`fastconv.ops.conv2d_relu_maxpool_forward`); its backward
    pass computes dw and db only, as a first layer's does, in PyTorch too.
    """

    name: str
    N: int
    H: int
    W: int
    C: int
    F: int
    padding: str = "valid"
    note: str = ""
    block: bool = False

    @property
    def flops(self) -> int:
        oh, ow = (self.H, self.W) if self.padding == "same" else (self.H - 2, self.W - 2)
        return 2 * self.N * oh * ow * self.F * 9 * self.C

    @property
    def grad_flops(self) -> int:
        """Forward + backward: dx and dw each cost a forward pass (a block: dw only)."""
        return (2 if self.block else 3) * self.flops

    def shape(self) -> str:
        return f"({self.N},{self.H},{self.W},{self.C})->{self.F}" + (
            " same" if self.padding == "same" else "") + (
            " +relu+pool, no dx" if self.block else "")


@dataclass(frozen=True)
class PoolLayer:
    """2x2 stride-2 pooling of x (N, H, W, C)."""

    name: str
    op: str  # 'max' or 'avg'
    N: int
    H: int
    W: int
    C: int

    def shape(self) -> str:
        return f"{self.op} 2x2 ({self.N},{self.H},{self.W},{self.C})"


# The speed issue's shapes (NHWC, 3x3, stride 1).
CONV_LAYERS = [
    ConvLayer("a", 32, 28, 28, 1, 32, note="first MNIST conv"),
    ConvLayer("a128", 128, 28, 28, 1, 32, note="first MNIST conv, batch 128"),
    ConvLayer("b", 32, 26, 26, 32, 64, note="second MNIST conv"),
    ConvLayer("c", 128, 32, 32, 3, 32, note="first CIFAR-10 conv"),
    ConvLayer("d", 128, 15, 15, 32, 64, note="second CIFAR-10 conv"),
    ConvLayer("e", 128, 6, 6, 64, 64, note="third CIFAR-10 conv"),
    ConvLayer("f", 64, 56, 56, 64, 64, "same", note="ResNet-like"),
    ConvLayer("a1", 1, 28, 28, 1, 32, note="batch 1"),
    ConvLayer("c1", 1, 32, 32, 3, 32, note="batch 1"),
    ConvLayer("f1", 1, 56, 56, 64, 64, "same", note="batch 1"),
    ConvLayer("ap", 128, 28, 28, 1, 32, note="the lecture's first block", block=True),
    ConvLayer("cp", 128, 32, 32, 3, 32, note="a CIFAR-10 first block", block=True),
]
POOL_LAYERS = [
    PoolLayer(f"g{i}{op}", op, *shape)
    for i, shape in enumerate([(32, 26, 26, 32), (128, 30, 30, 32)], start=1)
    for op in ("max", "avg")
]


@dataclass(frozen=True)
class FamilyLayer:
    """A DepthwiseConv2D, SeparableConv2D or Conv2DTranspose layer on x (N, H, W, C),
    KxK with ``stride`` and ``padding``, timed through the layer's forward and backward
    (dx included), as a model runs it; ``F`` filters (depthwise: the multiplier M)."""

    name: str
    kind: str  # 'depthwise', 'separable' or 'transpose'
    N: int
    H: int
    W: int
    C: int
    F: int
    K: int = 3
    stride: int = 1
    padding: str = "same"
    note: str = ""

    def make(self):
        from . import layers

        if self.kind == "depthwise":
            return layers.DepthwiseConv2D(self.K, self.stride, self.padding,
                                          depth_multiplier=self.F)
        if self.kind == "separable":
            return layers.SeparableConv2D(self.F, self.K, self.stride, self.padding)
        return layers.Conv2DTranspose(self.F, self.K, self.stride, self.padding)

    @property
    def flops(self) -> int:
        """Multiply-adds times two of the forward pass (without the transposed
        convolution's multiplications by inserted zeros)."""
        if self.kind == "transpose":
            return 2 * self.N * self.H * self.W * self.C * self.F * self.K * self.K
        _, oh, ow, _ = self.make().build_for((self.N, self.H, self.W, self.C))
        depthwise = self.C * (self.F if self.kind == "depthwise" else 1) * self.K * self.K
        pointwise = self.C * self.F if self.kind == "separable" else 0
        return 2 * self.N * oh * ow * (depthwise + pointwise)

    @property
    def grad_flops(self) -> int:
        return 3 * self.flops

    def shape(self) -> str:
        to = f"x{self.F}" if self.kind == "depthwise" else f"->{self.F}"
        return (f"{self.kind[:5]} ({self.N},{self.H},{self.W},{self.C}){to} "
                f"{self.K}x{self.K} s{self.stride} {self.padding}")


# Issue 16's shapes: MobileNet-like depthwise, Xception-like separable, U-Net-like
# transposed convolutions.
FAMILY_LAYERS = [
    FamilyLayer("dw1", "depthwise", 32, 112, 112, 32, 1, note="MobileNet block 1"),
    FamilyLayer("dw2", "depthwise", 32, 56, 56, 128, 1, stride=2, note="MobileNet s2"),
    FamilyLayer("dw3", "depthwise", 32, 14, 14, 512, 1, note="MobileNet 14x14"),
    FamilyLayer("sep1", "separable", 16, 74, 74, 128, 256, note="Xception entry flow"),
    FamilyLayer("sep2", "separable", 16, 19, 19, 728, 728, note="Xception middle flow"),
    FamilyLayer("up1", "transpose", 16, 32, 32, 128, 64, K=2, stride=2, padding="valid",
                note="U-Net up 2x2 s2"),
    FamilyLayer("up2", "transpose", 16, 64, 64, 64, 32, K=3, stride=2, note="U-Net up 3x3 s2"),
]


@dataclass(frozen=True)
class UpsampleLayer:
    """UpSampling2D by 2 of x (N, H, W, C): :func:`fastconv.ops.resize2d_forward` against
    PyTorch's ``interpolate(scale_factor=2)`` (the same half-pixel rule)."""

    name: str
    mode: str  # 'nearest' or 'bilinear'
    N: int
    H: int
    W: int
    C: int

    def shape(self) -> str:
        return f"up2 {self.mode} ({self.N},{self.H},{self.W},{self.C})"


# U-Net-like decoder stages.
UPSAMPLE_LAYERS = [
    UpsampleLayer(f"u{i}{mode[0]}", mode, *shape)
    for i, shape in enumerate([(8, 32, 32, 64), (8, 64, 64, 32)], start=1)
    for mode in ("nearest", "bilinear")
]


@dataclass(frozen=True)
class GlobalPoolLayer:
    """GlobalAveragePooling2D of x (N, H, W, C) through the layer's forward and backward,
    against PyTorch's ``adaptive_avg_pool2d(x, 1)``."""

    name: str
    N: int
    H: int
    W: int
    C: int
    note: str = ""

    def shape(self) -> str:
        return f"global avg pool ({self.N},{self.H},{self.W},{self.C})"


# Classifier heads: MobileNet's last map, a ResNet-like 14x14 stage, a wide early map.
GLOBAL_POOL_LAYERS = [
    GlobalPoolLayer("gap1", 32, 7, 7, 1280, note="MobileNet head"),
    GlobalPoolLayer("gap2", 64, 14, 14, 512, note="ResNet-like head"),
    GlobalPoolLayer("gap3", 16, 56, 56, 64, note="large map"),
]


@dataclass(frozen=True)
class CourseLayer:
    """CS231n's own timing shapes, NCHW, run through fastconv.compat.cs231n in float64."""

    name: str
    kind: str  # 'conv' or 'pool'

    def shape(self) -> str:
        if self.kind == "conv":
            return "cs231n conv (100,3,31,31) 25x3x3 s2 p1"
        return "cs231n maxpool (100,3,32,32) 2x2 s2"

    @property
    def flops(self) -> int:
        return 2 * 100 * 25 * 16 * 16 * 27 if self.kind == "conv" else 0


COURSE_LAYERS = [CourseLayer("cs-conv", "conv"), CourseLayer("cs-pool", "pool")]


@dataclass
class Row:
    layer: str
    shape: str
    dtype: str
    threads: int
    fwd_ms: float
    bwd_ms: float
    fwd_bwd_ms: float
    gflops: Optional[float] = None
    pct_sgemm: Optional[float] = None
    extra_mb: Optional[float] = None
    numpy_fwd_bwd_ms: Optional[float] = None
    speedup_numpy: Optional[float] = None
    torch_fwd_bwd_ms: Optional[float] = None
    torch_format: Optional[str] = None
    speedup_torch: Optional[float] = None
    extra: dict = field(default_factory=dict)


def median_ms(fn: Callable[[], object], reps: int, warmup: int = 2) -> float:
    """Median wall time of ``fn()`` in milliseconds, after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times) * 1e3)


def peak_extra_mb(fn: Callable[[], object], keep_bytes: int) -> float:
    """Peak memory that ``fn()`` allocates through NumPy/Python beyond ``keep_bytes``.

    ``keep_bytes`` is the size of what it returns (outputs and gradients), so the
    figure is the workspace: im2col tiles, partial sums, caches beyond outputs.
    """
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        fn()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return max(0.0, (peak - keep_bytes) / 2**20)


def sgemm_gflops(threads: int, size: int = 2048, reps: int = 5) -> float:
    """numpy's float32 matrix product rate on ``threads`` BLAS threads, GFLOP/s."""
    from threadpoolctl import threadpool_limits

    a = np.random.default_rng(0).standard_normal((size, size), dtype=np.float32)
    b = a.T.copy()
    with threadpool_limits(threads, user_api="blas"):
        ms = median_ms(lambda: a @ b, reps, warmup=1)
    return 2 * size**3 / ms / 1e6


def _torch():
    """PyTorch if importable, loaded with its own OpenMP defaults.

    fastconv sets OMP_WAIT_POLICY=PASSIVE and GOMP_SPINCOUNT for its own OpenMP runtime
    when imported (fastconv._runtime); PyTorch ships its own runtime, which reads them
    when torch is first imported, so they are hidden from it here: PyTorch runs as it
    would without fastconv.
    """
    from . import _runtime

    hidden = "OMP_WAIT_POLICY=PASSIVE" in _runtime.APPLIED and "torch" not in sys.modules
    saved = {}
    if hidden:
        for name in _runtime.OMP_VARIABLES:
            if any(a.startswith(name + "=") for a in _runtime.APPLIED):
                saved[name] = os.environ.pop(name)
    try:
        import torch
    except ImportError:
        return None
    finally:
        os.environ.update(saved)
    return torch


def torch_fwd_bwd(torch, layer, dtype) -> dict:
    """PyTorch forward+backward callables of ``layer`` by memory format ('NCHW', 'NHWC').

    Convolutions compute the input, weight and bias gradients, as fastconv's do.
    """
    import torch.nn.functional as F

    tdt = getattr(torch, np.dtype(dtype).name)
    if isinstance(layer, ConvLayer):
        pad = 1 if layer.padding == "same" else 0
        w = torch.randn(layer.F, layer.C, 3, 3, dtype=tdt, requires_grad=True)
        b = torch.randn(layer.F, dtype=tdt, requires_grad=True)

        def op(t):
            z = F.conv2d(t, w, b, padding=pad)
            return F.max_pool2d(F.relu(z), 2) if layer.block else z
    elif isinstance(layer, FamilyLayer):
        op = _torch_family_op(torch, layer, tdt)
    elif isinstance(layer, GlobalPoolLayer):
        def op(t):
            return F.adaptive_avg_pool2d(t, 1)
    elif isinstance(layer, UpsampleLayer):
        def op(t):
            return F.interpolate(t, scale_factor=2, mode=layer.mode, **(
                {"align_corners": False} if layer.mode == "bilinear" else {}))
    else:
        pool = F.max_pool2d if layer.op == "max" else F.avg_pool2d

        def op(t):
            return pool(t, 2)
    fns = {}
    for fmt, label in ((torch.contiguous_format, "NCHW"), (torch.channels_last, "NHWC")):
        x = torch.randn(layer.N, layer.C, layer.H, layer.W, dtype=tdt).contiguous(
            memory_format=fmt)
        g = torch.randn_like(op(x))

        def fwd_bwd(x=x, g=g):
            # A first block needs no input gradient: then x does not require one.
            xx = x.detach().requires_grad_(not getattr(layer, "block", False))
            op(xx).backward(g)

        fns[label] = fwd_bwd
    return fns


def _torch_family_op(torch, layer: FamilyLayer, tdt):
    """PyTorch's equivalent of a :class:`FamilyLayer`: grouped convolution (depthwise),
    grouped then 1x1 (separable), conv_transpose2d; same output sizes."""
    import torch.nn.functional as F

    k, s, c = layer.K, layer.stride, layer.C
    pad = k // 2 if layer.padding == "same" else 0

    def param(*shape):
        return torch.randn(*shape, dtype=tdt, requires_grad=True)

    if layer.kind == "transpose":
        w, b = param(c, layer.F, k, k), param(layer.F)
        extra = s + 2 * pad - k if layer.padding == "same" else max(s - k, 0)
        return lambda t: F.conv_transpose2d(t, w, b, s, pad, output_padding=extra)
    m = layer.F if layer.kind == "depthwise" else 1
    dw = param(c * m, 1, k, k)
    if layer.kind == "depthwise":
        b = param(c * m)
        return lambda t: F.conv2d(t, dw, b, s, pad, groups=c)
    pw, b = param(layer.F, c, 1, 1), param(layer.F)
    return lambda t: F.conv2d(F.conv2d(t, dw, None, s, pad, groups=c), pw, b)


def _torch_ms(torch, layer, dtype, reps: int) -> dict:
    """PyTorch's forward+backward time (ms) in each memory format, by format name."""
    return {label: median_ms(fn, reps)
            for label, fn in torch_fwd_bwd(torch, layer, dtype).items()}


def conv_fns(layer: ConvLayer, dtype):
    """fastconv callables (fwd, bwd, fwd_bwd) of ``layer`` on the active backend, and
    the bytes its outputs and gradients take."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((layer.N, layer.H, layer.W, layer.C)).astype(dtype)
    w = rng.standard_normal((3, 3, layer.C, layer.F)).astype(dtype)
    b = rng.standard_normal(layer.F).astype(dtype)
    if layer.block:
        def fwd():
            return ops.conv2d_relu_maxpool_forward(x, w, b, padding=layer.padding)

        def backward(d, c):
            return ops.conv2d_relu_maxpool_backward(d, c, input_grad=False)
    else:
        def fwd():
            return ops.conv2d_forward(x, w, b, padding=layer.padding)

        backward = ops.conv2d_backward
    out, cache = fwd()
    dout = rng.standard_normal(out.shape).astype(dtype)

    def bwd():
        return backward(dout, cache)

    def fwd_bwd():
        o, c = fwd()
        return o, backward(dout, c)

    # What fwd_bwd returns and keeps: out, dx, dw, db and the cache's reference to x.
    keep = out.nbytes + x.nbytes + w.nbytes + b.nbytes
    return fwd, bwd, fwd_bwd, keep


def pool_fns(layer: PoolLayer, dtype):
    """As :func:`conv_fns`, for a pooling layer."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((layer.N, layer.H, layer.W, layer.C)).astype(dtype)
    forward = ops.maxpool2d_forward if layer.op == "max" else ops.avgpool2d_forward
    backward = ops.maxpool2d_backward if layer.op == "max" else ops.avgpool2d_backward
    out, cache = forward(x, 2)
    dout = rng.standard_normal(out.shape).astype(dtype)

    def fwd_bwd():
        o, c = forward(x, 2)
        return o, backward(dout, c)

    keep = out.nbytes + x.nbytes
    return (lambda: forward(x, 2)), (lambda: backward(dout, cache)), fwd_bwd, keep


def upsample_fns(layer: UpsampleLayer, dtype):
    """As :func:`conv_fns`, for an upsampling by 2."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((layer.N, layer.H, layer.W, layer.C)).astype(dtype)
    size = (2 * layer.H, 2 * layer.W)
    out, cache = ops.resize2d_forward(x, size, layer.mode)
    dout = rng.standard_normal(out.shape).astype(dtype)

    def fwd_bwd():
        o, c = ops.resize2d_forward(x, size, layer.mode)
        return o, ops.resize2d_backward(dout, c)

    return (lambda: ops.resize2d_forward(x, size, layer.mode)), (
        lambda: ops.resize2d_backward(dout, cache)), fwd_bwd, out.nbytes + x.nbytes


def family_fns(layer, dtype):
    """As :func:`conv_fns`, through the layer's forward and backward (a
    :class:`FamilyLayer` or :class:`GlobalPoolLayer`)."""
    from . import layers

    rng = np.random.default_rng(0)
    x = rng.standard_normal((layer.N, layer.H, layer.W, layer.C)).astype(dtype)
    lay = layers.GlobalAveragePooling2D() if isinstance(layer, GlobalPoolLayer) else layer.make()
    lay.build_for((None, layer.H, layer.W, layer.C), dtype)
    out, ctx = lay.forward(x, True)
    dout = rng.standard_normal(out.shape).astype(dtype)

    def fwd_bwd():
        o, c = lay.forward(x, True)
        return o, lay.backward(dout, c)

    keep = out.nbytes + 2 * x.nbytes + sum(w.nbytes for w in lay.get_weights())
    return (lambda: lay.forward(x, True)), (lambda: lay.backward(dout, ctx)), fwd_bwd, keep


def course_fns(layer: CourseLayer, dtype):
    """As :func:`conv_fns`, through the CS231n drop-in (NCHW layouts, dict params)."""
    from .compat import cs231n

    rng = np.random.default_rng(0)
    if layer.kind == "conv":
        x = rng.standard_normal((100, 3, 31, 31)).astype(dtype)
        w = rng.standard_normal((25, 3, 3, 3)).astype(dtype)
        b = rng.standard_normal(25).astype(dtype)
        param = {"stride": 2, "pad": 1}

        def forward():
            return cs231n.conv_forward_fast(x, w, b, param)

        backward = cs231n.conv_backward_fast
    else:
        x = rng.standard_normal((100, 3, 32, 32)).astype(dtype)
        param = {"pool_height": 2, "pool_width": 2, "stride": 2}

        def forward():
            return cs231n.max_pool_forward_fast(x, param)

        backward = cs231n.max_pool_backward_fast
    out, cache = forward()
    dout = rng.standard_normal(out.shape).astype(dtype)

    def fwd_bwd():
        o, c = forward()
        return o, backward(dout, c)

    return forward, (lambda: backward(dout, cache)), fwd_bwd, out.nbytes + x.nbytes


def _fns(layer, dtype):
    if isinstance(layer, ConvLayer):
        return conv_fns(layer, dtype)
    if isinstance(layer, CourseLayer):
        return course_fns(layer, dtype)
    if isinstance(layer, (FamilyLayer, GlobalPoolLayer)):
        return family_fns(layer, dtype)
    if isinstance(layer, UpsampleLayer):
        return upsample_fns(layer, dtype)
    return pool_fns(layer, dtype)


def run(layers=None, threads: int = 2, dtype="float32", reps: int = 20, numpy_reps: int = 3,
        with_numpy: bool = True, with_torch: bool = True, batch: Optional[int] = None,
        log=print) -> tuple[list[Row], dict]:
    """Measure ``layers`` (names; default all) and return (rows, machine info)."""
    dtype = np.dtype(dtype)
    torch = _torch() if with_torch else None
    if torch is not None:
        torch.set_num_threads(threads)
    _threads.set_num_threads(threads)
    peak = sgemm_gflops(threads)
    info = {"machine": platform.processor() or platform.machine(),
            "platform": platform.platform(), "threads": threads, "dtype": dtype.name,
            "sgemm_gflops": round(peak, 1), "reps": reps,
            "torch": torch.__version__ if torch is not None else None,
            "simd": _info.simd()}
    log(f"# numpy sgemm on {threads} threads: {peak:.0f} GFLOP/s")
    wanted = set(layers) if layers else None
    rows = []
    for layer in (CONV_LAYERS + POOL_LAYERS + FAMILY_LAYERS + UPSAMPLE_LAYERS
                  + GLOBAL_POOL_LAYERS + COURSE_LAYERS):
        if wanted is not None and layer.name not in wanted:
            continue
        if batch is not None and getattr(layer, "N", 1) > 1:
            layer = type(layer)(**{**asdict(layer), "N": batch})
        is_conv = isinstance(layer, (ConvLayer, FamilyLayer)) or getattr(
            layer, "kind", "") == "conv"
        course = isinstance(layer, CourseLayer)
        ldtype = np.dtype(np.float64) if course else dtype  # the course works in float64
        fwd, bwd, fwd_bwd, keep = _fns(layer, ldtype)
        row = Row(layer.name, layer.shape(), ldtype.name, threads,
                  median_ms(fwd, reps), median_ms(bwd, reps), median_ms(fwd_bwd, reps))
        row.extra_mb = round(peak_extra_mb(fwd_bwd, keep), 2)
        if course:
            f32 = median_ms(_fns(layer, np.float32)[2], reps)
            row.extra["float32_fwd_bwd_ms"] = f32
            row.extra["float64_over_float32"] = row.fwd_bwd_ms / f32
        if is_conv:
            row.gflops = getattr(layer, "grad_flops", 3 * layer.flops) / row.fwd_bwd_ms / 1e6
            row.pct_sgemm = 100 * row.gflops / peak
            row.extra["fwd_gflops"] = layer.flops / row.fwd_ms / 1e6
            row.extra["fwd_pct_sgemm"] = 100 * row.extra["fwd_gflops"] / peak
        if with_numpy:
            with use_backend("numpy"):
                _, _, ref_fb, _ = _fns(layer, ldtype)
                row.numpy_fwd_bwd_ms = median_ms(ref_fb, numpy_reps, warmup=1)
            row.speedup_numpy = row.numpy_fwd_bwd_ms / row.fwd_bwd_ms
        if torch is not None and not course:
            by_format = _torch_ms(torch, layer, ldtype, reps)
            row.torch_format = min(by_format, key=by_format.get)
            row.torch_fwd_bwd_ms = by_format[row.torch_format]
            row.speedup_torch = row.torch_fwd_bwd_ms / row.fwd_bwd_ms
            row.extra["torch_fwd_bwd_ms_by_format"] = by_format
            row.extra["speedup_torch_by_format"] = {
                k: v / row.fwd_bwd_ms for k, v in by_format.items()}
        rows.append(row)
        log(format_row(row, torch is not None, with_numpy))
        if "speedup_torch_by_format" in row.extra:
            log("#   x torch by format: " + ", ".join(
                f"{k} {v:.2f}" for k, v in row.extra["speedup_torch_by_format"].items()))
        if course:
            log(f"#   {layer.name}: float64 f+b {row.fwd_bwd_ms:.2f} ms, float32 "
                f"{row.extra['float32_fwd_bwd_ms']:.2f} ms: float64/float32 = "
                f"{row.extra['float64_over_float32']:.2f}")
    _threads.set_num_threads(None)
    return rows, info


def _f(v, spec):
    return "-" if v is None else format(v, spec)


HEADER = ("layer", "shape", "fwd ms", "bwd ms", "f+b ms", "GFLOP/s", "%sgemm", "extra MB",
          "x numpy", "torch f+b ms", "x torch")
WIDTHS = dict(zip(HEADER, [7, 38, 8, 8, 8, 8, 7, 9, 8, 15, 8]))


def _line(cells: list) -> str:
    """Join (column, text) pairs: the first two columns left-aligned, the rest right."""
    return " ".join(text.ljust(WIDTHS[col]) if col in ("layer", "shape")
                    else text.rjust(WIDTHS[col]) for col, text in cells)


def _columns(torch: bool, numpy: bool) -> list:
    return [c for c in HEADER if (numpy or c != "x numpy")
            and (torch or c not in ("torch f+b ms", "x torch"))]


def format_row(row: Row, torch: bool, numpy: bool) -> str:
    values = {
        "layer": row.layer, "shape": row.shape, "fwd ms": _f(row.fwd_ms, ".2f"),
        "bwd ms": _f(row.bwd_ms, ".2f"), "f+b ms": _f(row.fwd_bwd_ms, ".2f"),
        "GFLOP/s": _f(row.gflops, ".0f"), "%sgemm": _f(row.pct_sgemm, ".0f"),
        "extra MB": _f(row.extra_mb, ".1f"), "x numpy": _f(row.speedup_numpy, ".1f"),
        "torch f+b ms": f"{_f(row.torch_fwd_bwd_ms, '.2f')} {row.torch_format or ''}",
        "x torch": _f(row.speedup_torch, ".2f"),
    }
    return _line([(c, values[c]) for c in _columns(torch, numpy)])


def format_header(torch: bool, numpy: bool) -> str:
    return _line([(c, c) for c in _columns(torch, numpy)])


def _plot(rows: list[Row], path: str) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise SystemExit("--plot needs matplotlib: pip install 'fastconv[plot]'") from None
    names = [r.layer for r in rows]
    fig, ax = plt.subplots(figsize=(max(6, len(rows) * 0.6), 4))
    xs = np.arange(len(rows))
    for offset, attr, label in ((-0.2, "speedup_torch", "vs PyTorch"),
                                (0.2, "speedup_numpy", "vs NumPy reference")):
        vals = [getattr(r, attr) or 0 for r in rows]
        if any(vals):
            ax.bar(xs + offset, vals, width=0.4, label=label)
    ax.axhline(1, color="k", lw=0.8)
    ax.set_xticks(xs, names)
    ax.set_yscale("log")
    ax.set_ylabel("speedup of fastconv (forward + backward)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m fastconv.bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    p.add_argument("--batch", type=int, help="override the batch size of every layer > 1")
    p.add_argument("--reps", type=int, default=20, help="timed repetitions (median)")
    p.add_argument("--numpy-reps", type=int, default=3, help="repetitions for the reference")
    p.add_argument("--only", help="comma-separated layer names, e.g. a,b,g1max")
    p.add_argument("--no-numpy", action="store_true", help="skip the NumPy reference")
    p.add_argument("--no-torch", action="store_true", help="skip PyTorch even if importable")
    p.add_argument("--json", help="write rows and machine info as JSON")
    p.add_argument("--csv", help="write rows as CSV")
    p.add_argument("--plot", help="draw the speedups into this PNG (needs matplotlib)")
    p.add_argument("--sweep", type=int, metavar="N",
                   help="instead of the table: N random layer shapes against PyTorch")
    p.add_argument("--seed", type=int, default=0, help="the sweep's random seed")
    p.add_argument("--conv-algorithm", default="auto", choices=["auto", "direct", "winograd"],
                   help="fastconv.set_conv_algorithm for the run (default: auto)")
    p.add_argument("--cs231n", metavar="PATH",
                   help="instead of the table: the course's timing shapes against the "
                        "course's own fast layers in the checkout at PATH")
    p.add_argument("--rounds", type=int, default=3,
                   help="with --cs231n: rounds in which the implementations take turns")
    p.add_argument("--rest", type=float, default=0.3,
                   help="with --cs231n: seconds of rest before each turn (default 0.3)")
    a = p.parse_args(argv)
    if a.threads < 1 or a.reps < 1 or a.rounds < 1 or a.rest < 0:
        p.error("--threads, --reps and --rounds must be >= 1, --rest >= 0")
    from .backends._algorithm import conv_algorithm

    with conv_algorithm(a.conv_algorithm):
        return _main(p, a)


def _main(p, a) -> int:
    if a.cs231n is not None:
        from . import _bench_cs231n

        return _bench_cs231n.main(a.cs231n, a.threads, a.reps, a.rounds, a.json, a.rest)
    if a.sweep is not None:
        return _sweep_main(p, a)
    torch_ok = not a.no_torch and _torch() is not None
    print(format_header(torch_ok, not a.no_numpy))
    rows, info = run(a.only.split(",") if a.only else None, a.threads, a.dtype, a.reps,
                     a.numpy_reps, not a.no_numpy, not a.no_torch, a.batch,
                     log=lambda s: print(s, flush=True))
    print(f"# {info['machine']}, {info['platform']}, torch {info['torch']}, "
          f"fastconv kernels: {info['simd']}, conv algorithm: {a.conv_algorithm}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"info": info, "rows": [asdict(r) for r in rows]}, f, indent=1)
    if a.csv:
        with open(a.csv, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=[k for k in asdict(rows[0]) if k != "extra"])
            writer.writeheader()
            for r in rows:
                d = asdict(r)
                d.pop("extra")
                writer.writerow(d)
    if a.plot:
        _plot(rows, a.plot)
    return 0


def _sweep_main(p, a) -> int:
    from . import _sweep

    if a.sweep < 1:
        p.error(f"--sweep must be >= 1. Received: --sweep {a.sweep}")
    if a.seed < 0:
        p.error(f"--seed must be >= 0. Received: --seed {a.seed}")
    torch = None if a.no_torch else _torch()
    _threads.set_num_threads(a.threads)
    if torch is not None:
        torch.set_num_threads(a.threads)
    print(f"# sweep of {a.sweep} shapes, seed {a.seed}, {a.dtype}, {a.threads} threads, "
          f"forward + backward, medians of {a.reps}; ratio = PyTorch ms / fastconv ms")
    print(f"{'shape':40s} {'GFLOP':>7s} {'fc ms':>9s} {'torch ms':>9s}")
    rows = _sweep.run_sweep(_sweep.sweep_shapes(a.sweep, a.seed), a.dtype, a.reps, torch,
                            log=lambda line: print(line, flush=True))
    _threads.set_num_threads(None)
    print(_sweep.summary(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
