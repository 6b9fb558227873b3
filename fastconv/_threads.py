"""Thread count for fastconv's compiled kernels, and keeping BLAS out of their way.

fastconv runs its own OpenMP threads and calls BLAS from inside them on small
tiles. If BLAS spawned threads of its own there, the two pools would fight for
the same cores (oversubscription), so every compiled kernel runs inside
:func:`blas_single_thread`, which holds all loaded BLAS libraries to one thread
with threadpoolctl for the duration of the call and restores them afterwards.
"""

from __future__ import annotations

import contextlib
import operator
import os
from typing import Iterator

__all__ = ["set_num_threads", "get_num_threads", "default_num_threads", "blas_single_thread"]

_num_threads: int | None = None
_usable_cpus: int | None = None
_default_threads: int | None = None
_controller = None
_blas_libs: list | None = None


def default_num_threads() -> int:
    """Usable cores: ``OMP_NUM_THREADS`` if set, else the CPUs this process may run on."""
    env = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    if env:
        try:
            n = int(env)
        except ValueError:
            n = 0
        if n >= 1:
            return n
    global _usable_cpus
    if _usable_cpus is None:  # a system call: once per process (every kernel asks)
        if hasattr(os, "sched_getaffinity"):
            _usable_cpus = max(1, len(os.sched_getaffinity(0)))
        else:
            _usable_cpus = max(1, os.cpu_count() or 1)
    return _usable_cpus


def set_num_threads(n: int | None) -> None:
    """Set how many threads fastconv's compiled kernels use.

    Parameters
    ----------
    n : int or None
        A positive number of threads, or None to return to the default
        (:func:`default_num_threads`: ``OMP_NUM_THREADS`` or the usable cores).
    """
    global _num_threads
    if n is None:
        _num_threads = None
        return
    if isinstance(n, bool) or not hasattr(n, "__index__"):
        raise TypeError(f"n must be a positive int or None. Received: n={n!r}")
    n = operator.index(n)
    if n < 1:
        raise ValueError(f"n must be a positive int or None. Received: n={n}")
    _num_threads = n


def get_num_threads() -> int:
    """The number of threads fastconv's compiled kernels use.

    Without :func:`set_num_threads`, :func:`default_num_threads`, worked out at the
    first call and kept (as OpenMP reads ``OMP_NUM_THREADS`` once, at start-up):
    every kernel call asks, so this must be cheap.
    """
    global _default_threads
    if _num_threads is not None:
        return _num_threads
    if _default_threads is None:
        _default_threads = default_num_threads()
    return _default_threads


def _get_controller():
    global _controller
    if _controller is None:
        from threadpoolctl import ThreadpoolController

        _controller = ThreadpoolController()
    return _controller


def _blas_controllers() -> list:
    """threadpoolctl's controllers of the BLAS libraries loaded (found once)."""
    global _blas_libs
    if _blas_libs is None:
        import scipy.linalg.cython_blas  # noqa: F401  (the BLAS the kernels call)

        _blas_libs = [lib for lib in _get_controller().lib_controllers
                      if lib.user_api == "blas"]
    return _blas_libs


@contextlib.contextmanager
def blas_single_thread() -> Iterator[None]:
    """Hold every loaded BLAS library to one thread inside the ``with`` block.

    threadpoolctl's ``limit()`` looks the libraries up again on every call (about
    40 us here); this keeps its controllers from the first call and only asks each
    library for its thread count, so a small kernel call does not pay for it.
    """
    libs = _blas_controllers()
    before = [lib.num_threads for lib in libs]
    for lib, n in zip(libs, before):
        if n != 1:
            lib.set_num_threads(1)
    try:
        yield
    finally:
        for lib, n in zip(libs, before):
            if n != 1:
                lib.set_num_threads(n)


def blas_info() -> list[dict]:
    """threadpoolctl's description of the loaded BLAS libraries."""
    return [
        info for info in _get_controller().info() if info.get("user_api") == "blas"
    ]
