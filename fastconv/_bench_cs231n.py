"""``python -m fastconv.bench --cs231n PATH``: fastconv.compat.cs231n against the course's
own fast layers, on the course's timing shapes, side by side in one process.

PATH is the user's checkout of CS231n's assignment (the folder that holds the
``cs231n`` package, or that package itself); nothing of the course's code ships with
fastconv. Its ``cs231n.fast_layers`` is imported from there and timed as it is: both
convolution versions (``conv_*_strides``, NumPy ``as_strided`` + one BLAS product, and
``conv_*_im2col`` on the compiled ``im2col_cython``, when that is built) and
``max_pool_*_fast``. A third row times ``spatial_batchnorm`` against fastconv's own
NumPy path (vectorised NumPy), which the course's code does not time.

The BLAS the course's product runs on is held to the same number of threads as
fastconv's kernels. Every figure is the median of ``reps`` calls after warm-up; the
implementations take turns within each of ``rounds`` rounds, and a ratio is the median
over the rounds of the ratio measured in that round.
"""

from __future__ import annotations

import importlib
import os
import sys
from types import ModuleType
from typing import Callable, Dict, List, Optional

import numpy as np

__all__ = ["load_course", "course_rows", "main"]

# The shapes the course's notebook (ConvolutionalNetworks.ipynb) times its fast layers on.
CONV_SHAPE = dict(x=(100, 3, 31, 31), w=(25, 3, 3, 3), conv_param={"stride": 2, "pad": 1})
POOL_SHAPE = dict(x=(100, 3, 32, 32),
                  pool_param={"pool_height": 2, "pool_width": 2, "stride": 2})
# spatial batchnorm on the output of the conv shape
SPATIAL_BN_SHAPE = (100, 25, 16, 16)
_NEEDED = ("conv_forward_strides", "conv_backward_strides", "conv_forward_im2col",
           "conv_backward_im2col", "max_pool_forward_fast", "max_pool_backward_fast")


class CourseNotFound(Exception):
    """PATH holds no usable copy of the course's ``cs231n.fast_layers``."""


def load_course(path: str) -> ModuleType:
    """Import ``cs231n.fast_layers`` from the checkout at ``path``.

    ``path`` may name the folder holding the ``cs231n`` package or the package itself.
    Raises CourseNotFound, saying what is missing, when there is no
    ``cs231n/fast_layers.py``, when it does not import, when a ``cs231n`` from
    elsewhere is already imported, or when it lacks a function timed here.
    """
    path = os.path.abspath(os.path.expanduser(path))
    if os.path.basename(path) == "cs231n" and os.path.isfile(
            os.path.join(path, "fast_layers.py")):
        path = os.path.dirname(path)
    package = os.path.join(path, "cs231n")
    if not os.path.isfile(os.path.join(package, "fast_layers.py")):
        raise CourseNotFound(
            f"--cs231n must be a checkout of the course's assignment: a folder holding "
            f"cs231n/fast_layers.py (or the cs231n folder itself). Received: {path} "
            f"(no {os.path.join(package, 'fast_layers.py')})")
    loaded = sys.modules.get("cs231n")
    if loaded is not None and not os.path.abspath(getattr(loaded, "__file__", "") or
                                                  "").startswith(package + os.sep):
        raise CourseNotFound(f"another cs231n package is already imported "
                             f"({getattr(loaded, '__file__', loaded)}); run the bench in a "
                             "fresh process")
    sys.path.insert(0, path)
    try:
        fast = importlib.import_module("cs231n.fast_layers")
    except Exception as e:  # the user's code: any failure means "not usable"
        raise CourseNotFound(f"importing cs231n.fast_layers from {path} failed: "
                             f"{type(e).__name__}: {e}") from e
    finally:
        sys.path.remove(path)
    missing = [name for name in _NEEDED if not callable(getattr(fast, name, None))]
    if missing:
        raise CourseNotFound(f"{fast.__file__} lacks {', '.join(missing)}")
    return fast


def _has_im2col_cython(fast: ModuleType) -> bool:
    """Whether the course's compiled im2col is built (fast_layers imports without it
    and then fails only when its im2col version is called)."""
    return callable(getattr(fast, "im2col_cython", None))


def _median_ms(fn: Callable[[], object], reps: int, warmup: int = 3) -> float:
    from .bench import median_ms

    return median_ms(fn, reps, warmup)


def _conv_runs(fast: ModuleType, dtype, with_im2col: bool) -> Dict[str, Callable]:
    """Forward + backward of each implementation on the conv shape, one callable each."""
    from .compat import cs231n

    rng = np.random.default_rng(0)
    x = rng.standard_normal(CONV_SHAPE["x"]).astype(dtype)
    w = rng.standard_normal(CONV_SHAPE["w"]).astype(dtype)
    b = rng.standard_normal(CONV_SHAPE["w"][0]).astype(dtype)
    param = CONV_SHAPE["conv_param"]
    out, _ = cs231n.conv_forward_fast(x, w, b, param)
    dout = rng.standard_normal(out.shape).astype(dtype)

    def pair(forward, backward):
        def run():
            _, cache = forward(x, w, b, param)
            return backward(dout, cache)
        return run

    runs = {"fastconv": pair(cs231n.conv_forward_fast, cs231n.conv_backward_fast),
            "strides": pair(fast.conv_forward_strides, fast.conv_backward_strides)}
    if with_im2col:
        runs["im2col_cython"] = pair(fast.conv_forward_im2col, fast.conv_backward_im2col)
    return runs


def _pool_runs(fast: ModuleType, dtype) -> Dict[str, Callable]:
    from .compat import cs231n

    rng = np.random.default_rng(1)
    x = rng.standard_normal(POOL_SHAPE["x"]).astype(dtype)
    param = POOL_SHAPE["pool_param"]
    out, _ = cs231n.max_pool_forward_fast(x, param)
    dout = rng.standard_normal(out.shape).astype(dtype)

    def pair(forward, backward):
        def run():
            _, cache = forward(x, param)
            return backward(dout, cache)
        return run

    return {"fastconv": pair(cs231n.max_pool_forward_fast, cs231n.max_pool_backward_fast),
            "course fast": pair(fast.max_pool_forward_fast, fast.max_pool_backward_fast)}


def _spatial_bn_runs(dtype) -> Dict[str, Callable]:
    """spatial_batchnorm forward + backward (train mode) on the conv shape's output,
    compiled against the NumPy path (vectorised NumPy: the (N * H * W, C) rows of
    batchnorm_forward), which the course's code does not time."""
    import fastconv

    from .compat import cs231n

    rng = np.random.default_rng(2)
    x = rng.standard_normal(SPATIAL_BN_SHAPE).astype(dtype)
    gamma, beta = (rng.standard_normal(SPATIAL_BN_SHAPE[1]).astype(dtype) for _ in "gb")
    dout = rng.standard_normal(SPATIAL_BN_SHAPE).astype(dtype)

    def on(backend):
        def run():
            with fastconv.use_backend(backend):
                _, cache = cs231n.spatial_batchnorm_forward(x, gamma, beta, {"mode": "train"})
                return cs231n.spatial_batchnorm_backward(dout, cache)
        return run

    return {"fastconv": on("cython"), "numpy": on("numpy")}


# Seconds of rest before each implementation's turn: OpenBLAS's worker threads keep
# spinning for a while after a product (the course's versions end on one), and the
# OpenMP threads after a parallel region; left spinning they take a core from the
# next implementation. Measured here: fastconv's float64 conv forward + backward took
# 3.6 ms right after the course's versions, 2.1-2.3 ms alone.
REST = 0.3


def _timed(runs: Dict[str, Callable], reps: int, rounds: int,
           rest: float) -> Dict[str, List[float]]:
    """Per implementation, the median ms of each round; they take turns in a round,
    each after a rest of ``rest`` seconds."""
    import time

    times: Dict[str, List[float]] = {k: [] for k in runs}
    for _ in range(rounds):
        for name, fn in runs.items():
            time.sleep(rest)
            times[name].append(_median_ms(fn, reps))
    return times


def course_rows(path: str, threads: int = 2, reps: int = 20, rounds: int = 3,
                dtypes=("float64", "float32"), rest: float = REST,
                log=print) -> List[dict]:
    """Time the course's shapes; return one dict per (layer, dtype).

    Each row: ``layer``, ``dtype``, ``ms`` (implementation -> median over rounds of
    the round medians, forward + backward), ``speedup`` (course implementation -> the
    median over rounds of its time / fastconv's time in that round), ``best_course``
    and ``speedup_best`` (against the faster course version, round by round).
    """
    from . import _threads

    fast = load_course(path)
    with_im2col = _has_im2col_cython(fast)
    if not with_im2col:
        log(f"# {fast.__file__}: im2col_cython is not built, so its conv version is left "
            "out (build it with `python setup.py build_ext --inplace` in the cs231n folder)")
    from threadpoolctl import threadpool_limits

    rows = []
    _threads.set_num_threads(threads)
    # The same thread budget for the course's BLAS product (its strides version).
    limits = threadpool_limits(limits=threads, user_api="blas")
    try:
        for dtype in dtypes:
            for layer, runs in (("conv", _conv_runs(fast, np.dtype(dtype), with_im2col)),
                                ("maxpool", _pool_runs(fast, np.dtype(dtype))),
                                ("sbn", _spatial_bn_runs(np.dtype(dtype)))):
                times = _timed(runs, reps, rounds, rest)
                rows.append(_summarise(layer, np.dtype(dtype).name, times))
                log(format_course_row(rows[-1]))
    finally:
        limits.restore_original_limits()
        _threads.set_num_threads(None)
    return rows


def _summarise(layer: str, dtype: str, times: Dict[str, List[float]]) -> dict:
    mine = np.array(times["fastconv"])
    course = {k: np.array(v) for k, v in times.items() if k != "fastconv"}
    best = np.min(np.stack(list(course.values())), axis=0)  # the faster, per round
    return {"layer": layer, "dtype": dtype,
            "ms": {k: float(np.median(v)) for k, v in times.items()},
            "speedup": {k: float(np.median(v / mine)) for k, v in course.items()},
            "speedup_best": float(np.median(best / mine)),
            "rounds": len(mine)}


def format_course_row(row: dict) -> str:
    ms = ", ".join(f"{k} {v:.2f}" for k, v in row["ms"].items())
    sp = ", ".join(f"{k} {v:.2f}x" for k, v in row["speedup"].items())
    best = "" if row["layer"] == "sbn" else \
        f"; over the faster course version {row['speedup_best']:.2f}x"
    return (f"cs231n {row['layer']:7s} {row['dtype']}: f+b ms {ms} | fastconv's speedup: "
            f"{sp}{best}")


def shape_lines() -> List[str]:
    return [f"# conv x {CONV_SHAPE['x']}, w {CONV_SHAPE['w']}, {CONV_SHAPE['conv_param']}; "
            f"max pool x {POOL_SHAPE['x']}, {POOL_SHAPE['pool_param']}; spatial "
            f"batchnorm (sbn) x {SPATIAL_BN_SHAPE}, train mode, against fastconv's "
            "vectorised NumPy path (not the course's code)"]


def main(path: str, threads: int, reps: int, rounds: int, json_path: Optional[str],
         rest: float = REST) -> int:
    """The ``--cs231n`` mode of ``python -m fastconv.bench``; exit status 2 when PATH
    holds no usable course package."""
    import json

    try:
        load_course(path)
    except CourseNotFound as e:
        print(f"python -m fastconv.bench: error: {e}", file=sys.stderr)
        return 2
    for line in shape_lines():
        print(line)
    print(f"# {threads} threads, medians of {reps} after warm-up, {rounds} rounds taking "
          f"turns after {rest} s of rest; ratios: course ms / fastconv ms, per round, "
          "median")
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    rows = course_rows(path, threads, reps, rounds, rest=rest,
                       log=lambda s: print(s, flush=True))
    if load is not None:  # (other work on the machine moves every figure)
        print(f"# load average before {load[0]:.2f}, after {os.getloadavg()[0]:.2f} "
              f"({os.cpu_count()} CPUs)")
    if json_path:
        with open(json_path, "w") as f:
            json.dump({"rows": rows, "threads": threads, "reps": reps}, f, indent=1)
    return 0
