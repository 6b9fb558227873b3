"""Every valid candidate of the dispatch table, forced by name, on given layer shapes.

For each shape and each pass, the time of every candidate that can run it
(:func:`fastconv.backends.dispatch.force`): the forward; the backward with each dx
candidate (dw as the table chooses with it); and the weight gradient alone
(``input_grad=False``, as a first layer's backward) with each dw candidate. Each
round times every variant in turn (median of ``--reps`` calls after a warm-up call);
the table gives each variant's median over rounds and marks the table's own choice
(``*``) and the fastest (``<``). This is how the thresholds in ``dispatch.py`` are
measured on a machine; run it before changing one.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE PYTHONPATH=. \\
        python benchmarks/crossover.py --sweep 24 --seed 1 --rounds 3 --reps 5
    python benchmarks/crossover.py --shape 2,32,32,96,7,256,2,valid
"""

from __future__ import annotations

import argparse
import statistics
from typing import Callable, Dict, List, Tuple

import numpy as np

from fastconv._sweep import SweepShape, sweep_shapes
from fastconv.backends import _args, dispatch
from fastconv.backends import cython as fast
from fastconv.bench import median_ms


def _parse_shape(text: str) -> SweepShape:
    """N,H,C,K,F,stride,padding -> SweepShape (square maps and kernels)."""
    parts = text.split(",")
    if len(parts) != 7:
        raise SystemExit(f"--shape: expected N,H,C,K,F,stride,padding, got {text!r}")
    n, h, c, k, f, s = (int(p) for p in parts[:6])
    return SweepShape(n, h, c, f, k, s, parts[6])


def variants(s: SweepShape, dtype) -> List[Tuple[str, str, Callable[[], object]]]:
    """(pass, candidate, fn) for every candidate valid on ``s``."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((s.N, s.H, s.H, s.C)).astype(dtype)
    w = rng.standard_normal((s.K, s.K, s.C, s.F)).astype(dtype)
    b = rng.standard_normal(s.F).astype(dtype)
    g = _args.conv_geometry(x.shape, w.shape, s.stride, s.padding, 1)
    out, cache = fast.conv2d_forward(x, w, b, s.stride, s.padding)
    dout = rng.standard_normal(out.shape).astype(dtype)
    fp = dispatch.padded_width(g, dtype)
    out_list = []

    def forced(pass_, name, fn):
        def run():
            with dispatch.force(pass_, name):
                return fn()
        return run

    for c in dispatch.FORWARD:
        if c.valid(g, dtype, True):
            out_list.append(("forward", c.name, forced(
                "forward", c.name, lambda: fast.conv2d_forward(x, w, b, s.stride, s.padding))))
    for c in dispatch.DX:
        gb = g._replace(F=fp) if c.name in ("direct", "planar") else g
        if c.valid(gb, dtype, True):
            out_list.append(("backward", c.name, forced(
                "dx", c.name, lambda: fast.conv2d_backward(dout, cache, True))))
    for c in dispatch.DW:
        if c.name == dispatch.FUSED_DW:
            continue
        gb = g._replace(F=fp) if c.name.startswith("direct") else g
        if c.valid(gb, dtype, True):
            out_list.append(("dw", c.name, forced(
                "dw", c.name, lambda: fast.conv2d_backward(dout, cache, False))))
    return out_list


def chosen(s: SweepShape, dtype) -> Dict[str, str]:
    g = _args.conv_geometry((s.N, s.H, s.H, s.C), (s.K, s.K, s.C, s.F), s.stride,
                            s.padding, 1)
    fwd = dispatch.choose("forward", g, dtype, True).name
    _, dx, _ = dispatch.plan_backward(g, dtype, True)
    _, _, dw = dispatch.plan_backward(g, dtype, True, input_grad=False)
    return {"forward": fwd, "backward": dx.name, "dw": dw.name}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sweep", type=int, default=0, help="this many sweep shapes")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--shape", action="append", default=[],
                   help="N,H,C,K,F,stride,padding (repeatable)")
    p.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args(argv)
    from fastconv._threads import set_num_threads

    set_num_threads(a.threads)
    dtype = np.dtype(a.dtype).type
    shapes = [_parse_shape(t) for t in a.shape]
    if a.sweep:
        shapes += sweep_shapes(a.sweep, a.seed)
    if not shapes:
        p.error("give --sweep N or --shape")
    print(f"# {a.dtype}, {a.threads} threads, medians over {a.rounds} rounds of medians "
          f"of {a.reps}; * the table's choice, < the fastest")
    for s in shapes:
        vs = variants(s, dtype)
        times: Dict[Tuple[str, str], List[float]] = {(ps, n): [] for ps, n, _ in vs}
        for _ in range(a.rounds):
            for ps, n, fn in vs:
                times[(ps, n)].append(median_ms(fn, a.reps))
        pick = chosen(s, dtype)
        print(s.label())
        for ps in ("forward", "backward", "dw"):
            row = {n: statistics.median(t) for (q, n), t in times.items() if q == ps}
            best = min(row, key=row.get)
            cells = [f"{n}{'*' if n == pick[ps] else ''}{'<' if n == best else ''} "
                     f"{ms:.2f}" for n, ms in row.items()]
            print(f"  {ps:8s} " + "  ".join(cells))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
