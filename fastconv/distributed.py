"""Data-parallel training over MPI, and thread limits for Dask workers.

The MPI part follows the pattern HPC centres run for CPU training: every rank (one
process per core or per machine, started by ``mpiexec``) holds a full copy of the
model and its own disjoint part of the data; after each backward pass the gradients
of all ranks are averaged with one allreduce, so every rank applies the same update
and the weights stay identical. An ordinary training program needs these lines::

    from fastconv import distributed as dist

    dist.init()                                          # 1. join the MPI job
    x_train, y_train = dist.shard(x_train, y_train)      # 2. this rank's part of the data
    model.compile(optimizer=dist.DistributedOptimizer(keras_optimizer), loss=...)
    dist.broadcast_weights(model)                        # 3. same start on every rank
    model.fit(x_train, y_train, ...)

and runs as ``mpiexec -n 4 python train.py``. Under MPI (``size() > 1``):

- ``fit`` prints progress on the root only, and only the root runs ModelCheckpoint and
  CSVLogger; the epoch logs in ``History`` (loss, metrics, validation) are averages
  over the samples of all ranks, identical on every rank, so EarlyStopping decides the
  same everywhere. Ranks whose shard has fewer batches take empty steps (they add
  nothing to the average) so that all ranks run the same number of allreduces.
- ``evaluate`` averages over the shards of all ranks and returns the result on every
  rank; ``predict`` gathers the shards' predictions on the root, in rank order (the
  original order when the data were split by :func:`shard`), and returns None on the
  other ranks.
- An uncaught exception on any rank prints its traceback and aborts the whole job
  (``MPI_Abort``), so a failing rank never leaves the others waiting forever.

Without mpi4py this module still imports; :func:`rank`, :func:`size` and
:func:`is_root` answer 0, 1 and True, and :func:`init` raises an ImportError saying
to ``pip install 'fastconv[mpi]'``.

For Dask, :func:`limit_dask_threads` sets on every worker how many threads fastconv's
kernels and BLAS may use, so that tasks running side by side do not oversubscribe the
cores.
"""

from __future__ import annotations

import os
import sys
import traceback
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from . import optimizers as _optimizers
from .backends._args import fail

__all__ = ["init", "rank", "size", "is_root", "broadcast_weights", "DistributedOptimizer",
           "shard", "allreduce_mean", "limit_dask_threads"]

_INSTALL_HINT = "pip install 'fastconv[mpi]'"

_comm = None          # the communicator after init(); None before
_MPI = None           # the mpi4py.MPI module after init()
_previous_excepthook = None


def _import_mpi():
    try:
        from mpi4py import MPI
    except ImportError as exc:
        raise ImportError(
            "fastconv.distributed needs mpi4py and an MPI library for multi-process "
            f"training; install them with: {_INSTALL_HINT} ({exc})") from exc
    return MPI


def init(comm: Any = None, num_threads: Union[int, str, None] = "auto",
         abort_on_error: bool = True) -> None:
    """Join the MPI job: choose the communicator, share the cores, arm the abort hook.

    Parameters
    ----------
    comm : mpi4py communicator, optional
        Default ``MPI.COMM_WORLD``.
    num_threads : 'auto', int or None
        Threads for fastconv's kernels and BLAS in this rank. ``'auto'`` (default):
        ``OMP_NUM_THREADS`` if set, else the usable cores divided by the number of ranks
        on this machine (at least 1), so ranks never fight over cores. None leaves the
        thread settings alone.
    abort_on_error : bool
        If True (default) and there is more than one rank, an uncaught exception prints
        its traceback and calls ``MPI_Abort`` on the communicator, ending every rank
        with a non-zero exit instead of leaving the others blocked in a collective.

    Raises
    ------
    ImportError
        If mpi4py (or the MPI library it needs) is not installed.
    """
    global _comm, _MPI, _previous_excepthook
    MPI = _import_mpi()
    if comm is None:
        comm = MPI.COMM_WORLD
    elif not isinstance(comm, MPI.Comm):
        raise fail("comm", "an mpi4py communicator", comm, TypeError)
    _MPI, _comm = MPI, comm
    if num_threads is not None:
        _set_threads(num_threads, comm, MPI)
    if abort_on_error and comm.Get_size() > 1 and _previous_excepthook is None:
        _previous_excepthook = sys.excepthook
        sys.excepthook = _abort_on_exception


def _set_threads(num_threads, comm, MPI) -> None:
    from threadpoolctl import threadpool_limits

    from ._threads import set_num_threads

    if num_threads == "auto":
        if os.environ.get("OMP_NUM_THREADS", "").strip():
            return  # the user (or the launcher) chose already
        node = comm.Split_type(MPI.COMM_TYPE_SHARED)
        try:
            on_this_machine = node.Get_size()
        finally:
            node.Free()
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (
            os.cpu_count() or 1)
        n = max(1, cores // on_this_machine)
    elif isinstance(num_threads, (int, np.integer)) and not isinstance(num_threads, bool) \
            and num_threads >= 1:
        n = int(num_threads)
    else:
        raise fail("num_threads", "'auto', a positive int or None", num_threads)
    set_num_threads(n)
    # Dense layers call BLAS outside fastconv's kernels: hold it to the same share.
    threadpool_limits(limits=n, user_api="blas")


def _abort_on_exception(exc_type, exc, tb) -> None:
    # Print first: MPI_Abort ends the process without running Python's own handler.
    sys.stderr.write(f"fastconv.distributed: rank {rank()} of {size()} failed; aborting "
                     "the MPI job.\n")
    traceback.print_exception(exc_type, exc, tb)
    sys.stderr.flush()
    sys.stdout.flush()
    _comm.Abort(1)


def _world():
    """The communicator if init() was called with more than one rank, else None."""
    if _comm is not None and _comm.Get_size() > 1:
        return _comm
    return None


def rank() -> int:
    """This process's rank (0 before :func:`init` or without MPI)."""
    return 0 if _comm is None else _comm.Get_rank()


def size() -> int:
    """The number of ranks (1 before :func:`init` or without MPI)."""
    return 1 if _comm is None else _comm.Get_size()


def is_root() -> bool:
    """True on rank 0: the rank that prints, writes checkpoints and receives gathers."""
    return rank() == 0


def broadcast_weights(model: Any, root: int = 0) -> None:
    """Copy every weight of ``model`` from rank ``root`` to all ranks, in place.

    The model must be built (give ``input_shape`` to its first layer, or call
    ``model.build``). Without MPI or with one rank it does nothing.
    """
    if isinstance(root, bool) or not isinstance(root, (int, np.integer)) or \
            not 0 <= root < size():
        raise fail("root", f"a rank in [0, {size() - 1}]", root)
    model._require_built()
    comm = _world()
    if comm is None:
        return
    for w in model.weights:
        # Layers own their weights as C-contiguous arrays, so Bcast fills them in place.
        comm.Bcast(w, root=int(root))


def allreduce_mean(values: Dict[str, float], count: float) -> Dict[str, float]:
    """Average per-rank means ``values`` weighted by each rank's sample ``count``.

    Returns the mean over the samples of all ranks, the same dict on every rank (one
    allreduce of ``len(values) + 1`` float64 numbers); without MPI, ``values`` itself.
    """
    comm = _world()
    if comm is None:
        return dict(values)
    keys = list(values)
    buf = np.array([count] + [values[k] * count for k in keys], np.float64)
    comm.Allreduce(_MPI.IN_PLACE, buf, op=_MPI.SUM)
    return {k: float(buf[i + 1] / buf[0]) for i, k in enumerate(keys)}


def _gather_rows(arr: np.ndarray) -> Optional[np.ndarray]:
    """Concatenate each rank's ``arr`` along axis 0 on the root (None elsewhere)."""
    comm = _world()
    if comm is None:
        return arr
    parts = comm.gather(arr, root=0)
    return np.concatenate(parts, axis=0) if parts is not None else None


class DistributedOptimizer(_optimizers.Optimizer):
    """Wrap an optimizer so that each update uses the gradient averaged over all ranks.

    Before the wrapped optimizer's update, the gradients of all parameters are packed
    into one contiguous buffer, summed over the ranks with a single ``Allreduce``
    (one call per step, whatever the number of parameters), and written back, averaged,
    into the gradient arrays in place. Within ``fit`` each rank's gradient is weighted
    by its number of samples in the step, so an uneven last batch still gives the mean
    over all the samples of the step; the batch loss travels in the same buffer, so
    callbacks see the all-rank loss. With one rank it is the wrapped optimizer.

    Parameters
    ----------
    optimizer : Optimizer or str
        The optimizer to wrap ('adam', ``Adam(1e-3)``, ...). Its hyper-parameters are
        read and set through the wrapper (``learning_rate`` for schedules).

    Notes
    -----
    Cost per step: one pass over the gradients to pack, one to unpack, and a ring
    allreduce of about ``2 (P - 1) / P`` times the gradient bytes. Communication is
    not overlapped with the backward pass: the layers' gradients appear one by one
    at the end of each layer's backward in the same thread, and fastconv has no
    background thread to send them while the next layer computes.
    """

    def __init__(self, optimizer: Any):
        if isinstance(optimizer, DistributedOptimizer):
            raise fail("optimizer", "an optimizer that is not already distributed",
                       optimizer, TypeError)
        self.optimizer = _optimizers.get(optimizer)
        self._buffer: Optional[np.ndarray] = None
        self._state: List[Any] = []

    # Hyper-parameters and the step count live in the wrapped optimizer.
    @property
    def learning_rate(self) -> float:
        return self.optimizer.learning_rate

    @learning_rate.setter
    def learning_rate(self, value: float) -> None:
        self.optimizer.learning_rate = value

    @property
    def iterations(self) -> int:
        return self.optimizer.iterations

    def get_config(self) -> dict:
        return self.optimizer.get_config()

    def apply(self, params: Sequence[np.ndarray], grads: Sequence[np.ndarray]) -> None:
        """Average ``grads`` over the ranks (equal weights), then update ``params``."""
        self.apply_step(params, grads, 1, 0.0)

    def apply_step(self, params: Sequence[np.ndarray], grads: Sequence[np.ndarray],
                   count: int, loss: float) -> float:
        """The hook ``fit`` calls: average with weight ``count``, update, return the loss.

        ``grads`` are this rank's mean gradients over ``count`` samples (``count`` may
        be 0 for a rank with no batch left in this step: its gradients are ignored) and
        ``loss`` their mean loss. Returns the loss averaged over all the step's samples.
        """
        comm = _world()
        if comm is None:
            self.optimizer.apply(params, grads)
            return loss
        buf = self._pack(grads, count, loss)
        comm.Allreduce(_MPI.IN_PLACE, buf, op=_MPI.SUM)
        total = buf[-2]
        scale = buf.dtype.type(1.0 / total)
        pos = 0
        for g in grads:
            np.multiply(buf[pos:pos + g.size].reshape(g.shape), scale, out=g)
            pos += g.size
        self.optimizer.apply(params, grads)
        return float(buf[-1]) / float(total)

    def _pack(self, grads, count, loss) -> np.ndarray:
        dtypes = {g.dtype for g in grads}
        if len(dtypes) != 1:
            raise TypeError(f"DistributedOptimizer needs gradients of one dtype; received "
                            f"{sorted(str(d) for d in dtypes)}")
        n = sum(g.size for g in grads) + 2
        dtype = dtypes.pop()
        if self._buffer is None or self._buffer.size != n or self._buffer.dtype != dtype:
            # One buffer for the whole run; the last two slots carry count and loss sum.
            self._buffer = np.empty(n, dtype)
        buf = self._buffer
        weight = dtype.type(count)
        pos = 0
        for g in grads:
            np.multiply(g, weight, out=buf[pos:pos + g.size].reshape(g.shape))
            pos += g.size
        buf[-2] = count
        buf[-1] = float(loss) * count if count else 0.0
        return buf

    def __repr__(self) -> str:
        return f"DistributedOptimizer({self.optimizer!r})"


def shard(x: Any, y: Any = None) -> Union[np.ndarray, Tuple[np.ndarray, np.ndarray]]:
    """This rank's contiguous block of ``x`` (and ``y``).

    Rank ``r`` of ``P`` gets samples ``[lo_r, hi_r)`` with ``hi_r - lo_r`` equal to
    ``n // P`` or ``n // P + 1`` (the first ``n % P`` ranks take one more), so the blocks
    are disjoint, cover every sample once, and concatenate in rank order to the input.
    Returns views, not copies. Without MPI or with one rank, returns the input.
    """
    xa = np.asarray(x)
    if xa.ndim == 0:
        raise fail("x", "an array with a batch axis", xa)
    n = len(xa)
    if y is not None:
        ya = np.asarray(y)
        if ya.ndim == 0 or len(ya) != n:
            raise ValueError(f"`x` and `y` must have the same number of samples. Received: "
                             f"{n} and {ya.shape[0] if ya.ndim else 'a scalar'}")
    p, r = size(), rank()
    if n < p:
        raise fail("x", f"at least one sample per rank ({p} ranks)", f"{n} samples")
    lo = r * (n // p) + min(r, n % p)
    hi = lo + n // p + (1 if r < n % p else 0)
    if y is None:
        return xa[lo:hi]
    return xa[lo:hi], ya[lo:hi]


def limit_dask_threads(client: Any) -> Dict[str, int]:
    """Give each Dask worker's tasks their share of the cores for fastconv and BLAS.

    On every worker, sets :func:`fastconv.set_num_threads` and the BLAS thread limit to
    the worker's usable cores divided by the number of tasks that can run at once on
    its machine (the summed ``nthreads`` of the workers on that host), at least 1.
    fastconv's thread count is per process, so setting it once per worker covers every
    task that worker runs. Call it after the cluster is up, before ``search.fit``.

    Parameters
    ----------
    client : distributed.Client

    Returns
    -------
    dict
        Worker address -> threads per task it was given.
    """
    try:
        from distributed import Client
    except ImportError as exc:
        raise ImportError("limit_dask_threads needs Dask's distributed scheduler; install "
                          f"it with: pip install 'fastconv[dask]' ({exc})") from exc
    if not isinstance(client, Client):
        raise fail("client", "a distributed.Client", client, TypeError)
    try:
        workers = client.scheduler_info(n_workers=-1)["workers"]
    except TypeError:  # distributed before 2025 lists every worker without being asked
        workers = client.scheduler_info()["workers"]
    per_host: Dict[str, int] = {}
    for info in workers.values():
        per_host[info["host"]] = per_host.get(info["host"], 0) + int(info["nthreads"])
    share = {address: per_host[info["host"]] for address, info in workers.items()}
    return client.run(_limit_worker_threads, share)


def _limit_worker_threads(concurrent_tasks: Dict[str, int], dask_worker: Any = None) -> int:
    """On a Dask worker: threads per task = usable cores // tasks at once on this host."""
    from threadpoolctl import threadpool_limits

    from ._threads import set_num_threads

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (
        os.cpu_count() or 1)
    n = max(1, cores // max(1, concurrent_tasks.get(dask_worker.address, 1)))
    set_num_threads(n)
    threadpool_limits(limits=n, user_api="blas")
    return n
