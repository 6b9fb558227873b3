"""Thread count for fastconv's compiled kernels, and keeping BLAS out of their way.

Two rules hold however many Python threads call the kernels at once:

- **BLAS runs on one thread inside every kernel.** fastconv runs its own OpenMP
  threads and calls BLAS from inside them on small tiles; a multi-threaded BLAS there
  would oversubscribe the cores and, as OpenBLAS splits some products differently
  by thread count, change the bits. BLAS's thread count is process-wide (OpenBLAS
  has no per-thread setting), so the limit is reference-counted: the first kernel
  call that needs it saves every loaded BLAS library's thread count and sets it to
  one, later calls only count themselves in, and the last to leave restores the
  saved counts, all under one lock. Concurrent calls therefore never undo each
  other's limit. Meanwhile BLAS is single-threaded for the whole process, user code
  in other threads included.
- **fastconv's threads stay within** :func:`get_num_threads`. That number is a
  budget for the process, not per call: each compiled call takes ``min(wanted,
  free)`` threads from it, waiting only while none is free, and gives them back when
  it returns. One call alone gets them all; two calls on two threads' budget get one
  each (rather than two OpenMP teams of two on two cores, which the kernels' barriers
  turn into waiting). The kernels' results do not depend on their thread count
  (work is cut by the shapes, partial sums combined in a fixed order), so a call gets
  the same bits whatever share it was given. BLAS, held to one thread, runs on the
  kernel's own threads and adds none.
"""

from __future__ import annotations

import contextlib
import operator
import os
import threading
from typing import Iterator

__all__ = ["set_num_threads", "get_num_threads", "default_num_threads", "kernel_threads",
           "blas_single_thread"]

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


def pin_kernel_blas() -> bool:
    """Hold the BLAS that the kernels call (SciPy's, through ``scipy.linalg.cython_blas``)
    to one thread for the life of the process, when it is a library of its own.

    OpenBLAS takes a thread count set from a thread other than the one that first
    loaded it as that thread's own setting: a kernel called from a worker thread then
    ran SciPy's OpenBLAS multi-threaded however the per-call hold set it, and its
    weight gradient came out with other bits than the same call in the main thread
    (measured: every one of 80 concurrent calls of a 'same' 3x3 layer, 1e-7 relative).
    Set once here, at import, it holds in every thread. NumPy's own BLAS (np.matmul)
    is a separate library in the wheels and keeps its threads; where SciPy and NumPy
    share one BLAS file, nothing is pinned and the per-call hold remains. Returns
    whether a library was pinned.
    """
    libs = _blas_controllers()
    try:
        import numpy
        import scipy
    except ImportError:  # pragma: no cover - scipy is a dependency
        return False
    scipy_dir = os.path.dirname(os.path.dirname(scipy.__file__))
    numpy_files = {os.path.realpath(lib.filepath) for lib in libs
                   if os.path.realpath(lib.filepath).startswith(
                       os.path.realpath(os.path.dirname(numpy.__file__)) + ".libs")}
    pinned = False
    for lib in libs:
        path = os.path.realpath(lib.filepath)
        if path.startswith(os.path.realpath(os.path.join(scipy_dir, "scipy.libs"))) \
                and path not in numpy_files:
            lib.set_num_threads(1)
            pinned = True
    return pinned


class _Budget:
    """The process's kernel threads in use and its BLAS hold count, under one lock."""

    def __init__(self) -> None:
        self.cond = threading.Condition(threading.Lock())
        self.in_use = 0        # threads granted to running compiled calls
        self.blas_users = 0    # running calls that hold BLAS to one thread
        self.blas_saved: list[int] = []  # thread counts to restore, per library
        self.local = threading.local()  # .held: threads this Python thread holds

    def hold_blas(self) -> None:
        """Count a caller in; the first one sets BLAS to one thread (lock held)."""
        if self.blas_users == 0:
            libs = _blas_controllers()
            self.blas_saved = [lib.num_threads for lib in libs]
            for lib, n in zip(libs, self.blas_saved):
                if n != 1:
                    lib.set_num_threads(1)
        self.blas_users += 1

    def release_blas(self) -> None:
        """Count a caller out; the last one restores the saved counts (lock held)."""
        self.blas_users -= 1
        if self.blas_users == 0:
            for lib, n in zip(_blas_controllers(), self.blas_saved):
                if n != 1:
                    lib.set_num_threads(n)


_budget = _Budget()


def _reset_after_fork() -> None:
    # The child has one thread: the counts of its parent's other threads are stale,
    # and their lock may have been copied held.
    global _budget
    _budget = _Budget()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)


@contextlib.contextmanager
def kernel_threads(tasks: int | None = None, blas: bool = False) -> Iterator[int]:
    """Threads for one compiled call, taken from the process's budget.

    The ``with`` block gets ``min(tasks, get_num_threads(), free)`` threads (at least
    one), waiting only while all of :func:`get_num_threads` are held by other calls,
    and gives them back when it ends. A call nested in another of the same Python
    thread shares its threads instead of waiting for more (no deadlock).

    Parameters
    ----------
    tasks : int, optional
        The most threads the call can use (its number of independent pieces of work);
        default: as many as the budget allows.
    blas : bool, default False
        Whether the call runs BLAS: hold every loaded BLAS library to one thread for
        the block (reference-counted, see the module's docstring).

    Yields
    ------
    int
        The number of threads to pass to the kernel (and to size its per-thread
        workspace by).

    Examples
    --------
    >>> from fastconv import _threads
    >>> with _threads.kernel_threads(tasks=1) as n:
    ...     n
    1
    """
    budget = _budget
    local = budget.local
    held = getattr(local, "held", 0)
    limit = get_num_threads() if tasks is None else max(1, min(get_num_threads(), tasks))
    if blas:
        _blas_controllers()  # (found once, outside the lock: it imports)
    with budget.cond:
        if held:
            n = min(limit, held)
        else:
            total = get_num_threads()
            while budget.in_use >= total:
                budget.cond.wait()
                total = get_num_threads()
            n = min(limit, total - budget.in_use)
            budget.in_use += n
        if blas:
            budget.hold_blas()
    local.held = n if not held else held
    try:
        yield n
    finally:
        local.held = held
        with budget.cond:
            if blas:
                budget.release_blas()
            if not held:
                budget.in_use -= n
                budget.cond.notify_all()


@contextlib.contextmanager
def blas_single_thread() -> Iterator[None]:
    """Hold every loaded BLAS library to one thread inside the ``with`` block.

    Reference-counted with the kernels' own hold (see the module's docstring), so it is
    safe from any number of threads at once. For NumPy products that must give the
    same bits in any thread: OpenBLAS splits some of them differently by thread count,
    and a multi-threaded OpenBLAS called from two threads at once does not keep its
    thread count. Takes nothing from the kernels' thread budget.
    """
    budget = _budget
    _blas_controllers()
    with budget.cond:
        budget.hold_blas()
    try:
        yield
    finally:
        with budget.cond:
            budget.release_blas()


def _state() -> tuple[int, int]:
    """(threads held by running calls, callers holding BLAS): for the tests."""
    with _budget.cond:
        return _budget.in_use, _budget.blas_users


def blas_info() -> list[dict]:
    """threadpoolctl's description of the loaded BLAS libraries."""
    return [
        info for info in _get_controller().info() if info.get("user_api") == "blas"
    ]
