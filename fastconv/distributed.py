"""Data-parallel training over MPI, and thread limits for Dask workers.

The MPI part follows the pattern HPC centres run for CPU training: every rank (one
process per core or per machine, started by ``mpiexec``) holds a full copy of the
model and its own disjoint part of the data; after each backward pass the gradients
of all ranks are averaged with one allreduce, so every rank applies the same update
and the weights stay identical. An ordinary training program needs these lines::

    from fastconv import distributed as dist

    dist.init()                                          # 1. join the MPI job
    x_train, y_train = dist.shard(x_train, y_train)      # 2. this rank's samples
    model.compile(optimizer=dist.DistributedOptimizer(keras_optimizer), loss=...)
    dist.broadcast_weights(model)                        # 3. same start on every rank
    model.fit(x_train, y_train, ...)

and runs as ``mpiexec -n 4 python train.py``. Under MPI (``size() > 1``):

- ``fit`` prints progress on the root only, and only the root runs ModelCheckpoint and
  CSVLogger; the epoch logs in ``History`` (loss, metrics, validation) are averages
  over the samples of all ranks, identical on every rank, so EarlyStopping decides the
  same everywhere. Ranks whose shard has fewer batches (data split by hand) take
  empty steps (they add nothing to the average) so that all ranks run the same number
  of allreduces.
- :func:`shard` and :class:`DistributedSampler` split as PyTorch's DistributedSampler
  does: rank ``r`` takes samples ``r, r + P, ...``, padded by wrapping around so that
  every rank has as many, and P ranks at batch ``B`` then take the batches of one
  process at batch ``P * B``. :func:`shard_dataset` does the same per epoch on a
  global permutation that every rank draws from the shared seed (``shuffle=True``),
  as a sequence of batches for loops and for ``fit`` on datasets.
- ``evaluate`` averages over the shards of all ranks and returns the result on every
  rank; ``predict`` gathers the shards' predictions on the root, in :func:`shard`'s
  order (the original order, then the padding's repeats), and returns None on the
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
           "shard", "DistributedSampler", "ShardedDataset", "shard_dataset", "allreduce_mean",
           "limit_dask_threads"]

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
    """Each rank's rows ``arr`` gathered on the root in :func:`shard`'s order (None elsewhere).

    When every rank holds the same number of rows (shards from :func:`shard` always
    do), rank ``r``'s row ``i`` goes to row ``i * P + r``: the original order, followed
    by the padding's repeats when the data did not divide by ``P``. Otherwise the parts
    are concatenated in rank order.
    """
    comm = _world()
    if comm is None:
        return arr
    parts = comm.gather(arr, root=0)
    if parts is None:
        return None
    if len({len(a) for a in parts}) != 1:
        return np.concatenate(parts, axis=0)
    out = np.empty((sum(len(a) for a in parts),) + parts[0].shape[1:], parts[0].dtype)
    for r, a in enumerate(parts):
        out[r::len(parts)] = a
    return out


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

    def get_state(self) -> dict:
        return self.optimizer.get_state()

    def set_state(self, state: dict) -> None:
        self.optimizer.set_state(state)

    def finalize_variable_values(self, params: Sequence[np.ndarray]) -> None:
        self.optimizer.finalize_variable_values(params)

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


_job_rank = rank  # DistributedSampler's argument ``rank`` (PyTorch's name) hides it


class DistributedSampler:
    """Which samples each rank takes, per epoch, as PyTorch's DistributedSampler does.

    The ``n`` sample indices (a permutation of them, drawn per epoch from ``seed`` when
    ``shuffle`` is True: the same on every rank, since every rank uses the same seed
    and epoch) are padded by wrapping around to a multiple of ``num_replicas``, or,
    with ``drop_last``, cut down to one; rank ``r`` then takes every
    ``num_replicas``-th index starting at ``r``. So every rank gets the same number of
    samples, the ranks' sets are disjoint apart from the padding, and step ``k`` of P
    ranks at batch B covers exactly samples ``k*P*B .. (k+1)*P*B - 1`` of the padded
    order: the batch ``k`` of one process at batch ``P*B``.

    Parameters
    ----------
    n : int
        Number of samples, at least 1 (at least ``num_replicas`` with ``drop_last``).
    num_replicas, rank : int, optional
        Default: :func:`size` and :func:`rank` of the MPI job (1 and 0 without one).
    shuffle : bool
        Default True, as in PyTorch. :func:`shard` uses False.
    seed : int
        The permutation of epoch ``e`` comes from ``numpy.random.default_rng((seed, e))``.
    drop_last : bool
        False (default): pad by repeating the first indices of the order (at most
        ``num_replicas - 1`` samples are seen twice per epoch). True: drop the last
        ``n % num_replicas`` indices of the order instead.

    Examples
    --------
    >>> s = DistributedSampler(5, num_replicas=2, rank=1, shuffle=False)
    >>> s.indices().tolist()          # order 0 1 2 3 4 0 (padded), every 2nd from 1
    [1, 3, 0]
    """

    def __init__(self, n: int, num_replicas: Optional[int] = None, rank: Optional[int] = None,
                 shuffle: bool = True, seed: int = 0, drop_last: bool = False):
        self.num_replicas = size() if num_replicas is None else _int_at_least(
            "num_replicas", num_replicas, 1)
        self.rank = _job_rank() if rank is None else _int_at_least("rank", rank, 0)
        if self.rank >= self.num_replicas:
            raise fail("rank", f"a rank in [0, {self.num_replicas - 1}]", rank)
        self.drop_last = bool(drop_last)
        self.n = _int_at_least("n", n, self.num_replicas if self.drop_last else 1)
        self.shuffle = bool(shuffle)
        self.seed = _int_at_least("seed", seed, 0)
        self.epoch = 0
        p = self.num_replicas
        self.num_samples = self.n // p if self.drop_last else -(-self.n // p)
        self.total_size = self.num_samples * p

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose permutation :meth:`indices` returns (as in PyTorch)."""
        self.epoch = _int_at_least("epoch", epoch, 0)

    def indices(self) -> np.ndarray:
        """This rank's ``num_samples`` sample indices for the current epoch (int64)."""
        order = (np.random.default_rng((self.seed, self.epoch)).permutation(self.n)
                 if self.shuffle else np.arange(self.n))
        if self.total_size > self.n:
            order = np.resize(order, self.total_size)  # repeats from the start: wraps around
        else:
            order = order[:self.total_size]
        return order[self.rank::self.num_replicas]

    def __iter__(self):
        return iter(self.indices().tolist())

    def __len__(self) -> int:
        return self.num_samples

    def __repr__(self) -> str:
        return (f"DistributedSampler(n={self.n}, num_replicas={self.num_replicas}, "
                f"rank={self.rank}, shuffle={self.shuffle}, seed={self.seed}, "
                f"drop_last={self.drop_last})")


def _int_at_least(name, value, low):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise fail(name, f"an int >= {low}", value)
    return int(value)


def shard(x: Any, y: Any = None, *, drop_last: bool = False
          ) -> Union[np.ndarray, Tuple[np.ndarray, np.ndarray]]:
    """This rank's samples of ``x`` (and ``y``): every P-th, from its rank on.

    Rank ``r`` of ``P`` gets samples ``r, r + P, r + 2P, ...`` of ``x`` padded (by
    wrapping around to its first samples) to a multiple of ``P`` samples, or, with
    ``drop_last=True``, cut to one: :class:`DistributedSampler` with
    ``shuffle=False``, PyTorch's and tf.data's convention. So every rank has the same
    number of samples and runs the same number of steps, and P ranks at batch ``B``
    with ``shuffle=False`` take the batches of one process at batch ``P * B`` on the
    padded samples. Returns C-contiguous copies. Without MPI or with one rank,
    returns the input.

    The padding repeats at most ``P - 1`` samples; for an exact ``evaluate`` over
    shards, use ``drop_last=True`` on data whose length is a multiple of ``P``, or
    evaluate on the root alone.
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
    p = size()
    if p == 1:
        return xa if y is None else (xa, ya)
    if n < (p if drop_last else 1):
        raise fail("x", f"at least {p if drop_last else 1} sample(s) for {p} ranks"
                   + (" with drop_last=True" if drop_last else ""), f"{n} samples")
    idx = DistributedSampler(n, p, rank(), shuffle=False, drop_last=drop_last).indices()
    if y is None:
        return np.ascontiguousarray(xa[idx])
    return np.ascontiguousarray(xa[idx]), np.ascontiguousarray(ya[idx])


class ShardedDataset:
    """This rank's batches of ``(x, y)``, drawn per epoch by a :class:`DistributedSampler`.

    A Keras ``PyDataset``-style sequence (``len()`` batches, ``[i]`` the i-th batch,
    ``on_epoch_end()``). Every rank builds it on the whole data with
    the same ``seed``; in epoch ``e`` all ranks draw the same permutation of all the
    samples and rank ``r`` takes every P-th of it from ``r``, so P ranks at batch ``B``
    take, step by step, exactly the samples of one process at batch ``P * B`` on that
    permutation. ``fit`` calls :meth:`set_epoch` before each epoch (so a run resumed
    with ``initial_epoch`` sees the permutations of an uninterrupted one);
    :meth:`on_epoch_end` moves to the next epoch for loops of one's own. Pass
    ``shuffle=False`` to ``fit``: the dataset shuffles, and ``fit`` would otherwise
    also permute its batch order.

    Parameters
    ----------
    x : array (N, ...) or list of arrays
        The whole data set (every rank passes all of it).
    y : array (N, ...) or None
        Targets; None yields ``x`` batches alone (for ``predict``).
    batch_size : int
        Per rank.
    shuffle, seed, drop_last, num_replicas, rank
        As for :class:`DistributedSampler` (the last two default to the MPI job's).
    """

    def __init__(self, x: Any, y: Any = None, batch_size: int = 32, shuffle: bool = True,
                 seed: int = 0, drop_last: bool = False, num_replicas: Optional[int] = None,
                 rank: Optional[int] = None):
        self._xs = [np.asarray(a) for a in x] if isinstance(x, (list, tuple)) else [
            np.asarray(x)]
        if any(a.ndim == 0 for a in self._xs):
            raise fail("x", "arrays with a batch axis", x)
        n = len(self._xs[0])
        if any(len(a) != n for a in self._xs):
            raise ValueError("`x` arrays must have the same number of samples. Received: "
                             f"{[len(a) for a in self._xs]}")
        self._multi = isinstance(x, (list, tuple))
        self._y = None if y is None else np.asarray(y)
        if self._y is not None and (self._y.ndim == 0 or len(self._y) != n):
            raise ValueError(f"`x` and `y` must have the same number of samples. Received: "
                             f"{n} and {self._y.shape[0] if self._y.ndim else 'a scalar'}")
        self.batch_size = _int_at_least("batch_size", batch_size, 1)
        self.sampler = DistributedSampler(n, num_replicas, rank, shuffle=shuffle, seed=seed,
                                          drop_last=drop_last)
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        """Draw the samples of epoch ``epoch`` (the same permutation on every rank)."""
        self.sampler.set_epoch(epoch)
        self._indices = self.sampler.indices()

    @property
    def epoch(self) -> int:
        return self.sampler.epoch

    def __len__(self) -> int:
        return -(-len(self.sampler) // self.batch_size)

    def __getitem__(self, i: int):
        if isinstance(i, bool) or not isinstance(i, (int, np.integer)) or not \
                -len(self) <= i < len(self):
            raise IndexError(f"batch index {i!r} out of range for {len(self)} batches")
        i = int(i) % len(self)
        idx = self._indices[i * self.batch_size:(i + 1) * self.batch_size]
        xb = [a[idx] for a in self._xs]
        xb = xb if self._multi else xb[0]
        return xb if self._y is None else (xb, self._y[idx])

    def on_epoch_end(self) -> None:
        self.set_epoch(self.epoch + 1)

    def __repr__(self) -> str:
        return (f"ShardedDataset({len(self)} batches of {self.batch_size}, "
                f"{self.sampler!r})")


def shard_dataset(x: Any, y: Any = None, batch_size: int = 32, shuffle: bool = True,
                  seed: int = 0, drop_last: bool = False, num_replicas: Optional[int] = None,
                  rank: Optional[int] = None) -> ShardedDataset:
    """This rank's batches, reshuffled globally each epoch: see :class:`ShardedDataset`.

    ``model.fit(dist.shard_dataset(x, y, batch_size=64, seed=0), epochs=5)`` on every
    rank, with the whole ``x``, ``y``, is the distributed form of ``model.fit(x, y,
    batch_size=64 * P, shuffle=True)``.
    """
    return ShardedDataset(x, y, batch_size=batch_size, shuffle=shuffle, seed=seed,
                          drop_last=drop_last, num_replicas=num_replicas, rank=rank)


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
