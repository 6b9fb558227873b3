"""Winograd F(2x2, 3x3) against fastconv's direct kernels and PyTorch, per pass.

For each 3x3 stride-1 layer: forward, backward (dx and dw) and weight gradient alone
(dw, as a first layer's backward) milliseconds of fastconv with the Winograd
candidates forced, of fastconv under ``set_conv_algorithm('direct')`` (the table's
other choice), and of PyTorch in
channels_last (``aten.convolution_backward`` with one output each for dx and dw), the
three measured in turns in one process: each round times every variant (median of
``--reps`` calls after warm-up), and the table gives the median over rounds of each
time and of each round's ratio.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE PYTHONPATH=. \\
        python benchmarks/winograd_compare.py --rounds 5 --reps 7
"""

from __future__ import annotations

import argparse
import contextlib

import numpy as np

import fastconv
from fastconv.backends import cython as fast
from fastconv.backends import dispatch
from fastconv.bench import _torch, median_ms

# (name, N, H, W, C, F, padding): bench layers b, d, f and the 3x3 'same' layers of
# the deeper Fashion-MNIST CNN (64 -> 128 -> 128 on 14x14, 128 -> 256 -> 256 on 7x7).
LAYERS = [
    ("b", 32, 26, 26, 32, 64, "valid"),
    ("d", 128, 15, 15, 32, 64, "valid"),
    ("f", 64, 56, 56, 64, 64, "same"),
    ("fm64-128", 64, 14, 14, 64, 128, "same"),
    ("fm128-128", 64, 14, 14, 128, 128, "same"),
    ("fm128-256", 64, 7, 7, 128, 256, "same"),
    ("fm256-256", 64, 7, 7, 256, 256, "same"),
    ("fm64-128/128", 128, 14, 14, 64, 128, "same"),
    ("fm128-128/128", 128, 14, 14, 128, 128, "same"),
    ("fm128-256/128", 128, 7, 7, 128, 256, "same"),
    ("fm256-256/128", 128, 7, 7, 256, 256, "same"),
    # around the crossover: bench layers e and f1, small maps, few channels
    ("e", 128, 6, 6, 64, 64, "valid"),
    ("f1", 1, 56, 56, 64, 64, "same"),
    ("s8-32-128", 32, 8, 8, 32, 128, "same"),
    ("s4-64-64", 64, 4, 4, 64, 64, "same"),
    ("s14-64-32", 64, 14, 14, 64, 32, "same"),
    ("s14-32-64", 64, 14, 14, 32, 64, "same"),
]
PASSES = ("forward", "dx", "dw")


@contextlib.contextmanager
def _winograd():
    with contextlib.ExitStack() as stack:
        for p in PASSES:
            stack.enter_context(dispatch.force(p, dispatch.WINOGRAD))
        yield


def fastconv_fns(x, w, padding):
    """{pass: fn} of the compiled backend on the algorithm in force when called."""
    out, cache = fast.conv2d_forward(x, w, None, 1, padding)
    dout = np.random.default_rng(1).standard_normal(out.shape).astype(x.dtype)

    return {
        "forward": lambda: fast.conv2d_forward(x, w, None, 1, padding),
        "backward": lambda: fast.conv2d_backward(dout, cache, True),
        "dw": lambda: fast.conv2d_backward(dout, cache, False),
    }


def torch_fns(torch, x, w, padding):
    tx = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous(
        memory_format=torch.channels_last)
    tw = torch.from_numpy(np.ascontiguousarray(w.transpose(3, 2, 0, 1))).contiguous(
        memory_format=torch.channels_last)
    pad = 1 if padding == "same" else 0
    out = torch.nn.functional.conv2d(tx, tw, None, 1, pad)
    g = torch.randn(out.shape, dtype=out.dtype).contiguous(memory_format=torch.channels_last)
    back = torch.ops.aten.convolution_backward

    def run(mask):
        return back(g, tx, tw, None, [1, 1], [pad, pad], [1, 1], False, [0, 0], 1, mask)

    return {
        "forward": lambda: torch.nn.functional.conv2d(tx, tw, None, 1, pad),
        "backward": lambda: run([True, True, False]),
        "dw": lambda: run([False, True, False]),
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--reps", type=int, default=7)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--only", help="comma-separated layer names")
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    args = p.parse_args(argv)
    fastconv.set_num_threads(args.threads)
    torch = _torch()
    if torch is not None:
        torch.set_num_threads(args.threads)
    layers = [r for r in LAYERS if not args.only or r[0] in args.only.split(",")]
    print(f"{'layer':15s} {'pass':8s} {'wino ms':>8s} {'direct ms':>9s} {'torch ms':>8s} "
          f"{'direct/wino':>11s} {'torch/wino':>10s}  direct kernel")
    for name, n, h, wd, c, f, padding in layers:
        rng = np.random.default_rng(0)
        x = rng.standard_normal((n, h, wd, c)).astype(args.dtype)
        w = rng.standard_normal((3, 3, c, f)).astype(args.dtype)
        g = fast._args.conv_args(x, w, None, 1, padding, 1)[3]
        with fastconv.conv_algorithm("direct"):
            _, dx_c, dw_c = dispatch.plan_backward(g, x.dtype, True)
            kernels = (f"{dispatch.choose('forward', g, x.dtype, True).name}, "
                       f"{dx_c.name} + {dw_c.name}, "
                       f"{dispatch.plan_backward(g, x.dtype, True, False)[2].name}")
        fns = fastconv_fns(x, w, padding)
        tf = torch_fns(torch, x, w, padding) if torch is not None else None
        times = {k: {p_: [] for p_ in ("forward", "backward", "dw")}
                 for k in ("wino", "direct", "torch")}
        for _ in range(args.rounds):
            for p_ in ("forward", "backward", "dw"):
                with _winograd():
                    times["wino"][p_].append(median_ms(fns[p_], args.reps))
                with fastconv.conv_algorithm("direct"):
                    times["direct"][p_].append(median_ms(fns[p_], args.reps))
                if tf is not None:
                    times["torch"][p_].append(median_ms(tf[p_], args.reps))
        for i, p_ in enumerate(("forward", "backward", "dw")):
            wino = np.array(times["wino"][p_])
            direct = np.array(times["direct"][p_])
            tor = np.array(times["torch"][p_]) if tf is not None else np.full_like(wino, np.nan)
            print(f"{name:15s} {p_:8s} {np.median(wino):8.2f} {np.median(direct):9.2f} "
                  f"{np.median(tor):8.2f} {np.median(direct / wino):11.2f} "
                  f"{np.median(tor / wino):10.2f}  {kernels.split(', ')[i]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
