"""What ``fit``, ``evaluate`` and ``predict`` accept as data, turned into batches.

Keras's rules (``keras.src.trainers.data_adapters``), for the kinds fastconv takes:

- **Arrays** (one array, a list of arrays or a dict keyed by input names, with
  ``y``): cut into batches of ``batch_size`` by the trainer itself, shuffled each
  epoch when ``shuffle`` (see :class:`fastconv.trainer.Trainer`).
- **A PyDataset** (``keras.utils.PyDataset``, or any object with ``__len__`` and
  ``__getitem__`` returning batches, such as ``keras.utils.Sequence`` of Keras 2):
  ``len(data)`` batches per epoch (or ``steps_per_epoch``), ``data[i]`` the i-th;
  their order is shuffled each epoch when ``shuffle`` is True; ``on_epoch_end()`` is
  called after each epoch, and ``set_epoch(epoch)`` (PyTorch's sampler convention,
  :class:`fastconv.distributed.ShardedDataset`) before it, where they exist.
- **An iterator or generator**: ``steps_per_epoch`` batches per epoch, taken from where
  the previous epoch stopped; without ``steps_per_epoch``, until it is exhausted (one
  epoch). When it runs dry before an epoch's steps, training stops with Keras's
  warning.
- **Any other iterable** (a list of batches, a dataset object that can be iterated
  again, such as ``image_dataset_from_directory``'s): iterated afresh each epoch, for
  ``steps_per_epoch`` batches when given.

A batch is ``(x, y)``, ``(x, y, sample_weight)`` or, for ``predict``, ``x`` alone (or
``(x,)``); ``x`` may be a list or dict for a model with several inputs.
"""

from __future__ import annotations

import collections.abc
import warnings
from typing import Any, Iterator, Optional

import numpy as np

from .backends._args import fail

__all__ = ["PyDataset", "Sequence", "is_array_data", "DataAdapter", "get_adapter",
           "split_batch"]

_RAN_OUT = ("Your input ran out of data; interrupting training. Make sure that your dataset "
            "or generator can generate at least `steps_per_epoch * epochs` batches. You may "
            "need to use the `.repeat()` function when building your dataset.")


class PyDataset:
    """Base class of a data set of batches (Keras: ``keras.utils.PyDataset``).

    A subclass defines ``__len__`` (batches per epoch) and ``__getitem__(index)`` (the
    batch: ``(x, y)``, ``(x, y, sample_weight)`` or ``x``), and may define
    ``on_epoch_end()``; ``fit(dataset, epochs=...)`` then trains on it. The
    constructor takes Keras's ``workers``, ``use_multiprocessing`` and
    ``max_queue_size`` so that Keras code runs unchanged; fastconv calls
    ``__getitem__`` in the training thread, one batch at a time, whatever they say.

    Examples
    --------
    >>> import numpy as np
    >>> class Batches(PyDataset):
    ...     def __init__(self, x, y, batch_size, **kwargs):
    ...         super().__init__(**kwargs)
    ...         self.x, self.y, self.batch_size = x, y, batch_size
    ...     def __len__(self):
    ...         return -(-len(self.x) // self.batch_size)
    ...     def __getitem__(self, i):
    ...         s = slice(i * self.batch_size, (i + 1) * self.batch_size)
    ...         return self.x[s], self.y[s]
    >>> len(Batches(np.zeros((10, 2)), np.zeros(10), 4))
    3
    """

    def __init__(self, workers: int = 1, use_multiprocessing: bool = False,
                 max_queue_size: int = 10):
        for name, value, low in (("workers", workers, 1), ("max_queue_size", max_queue_size, 1)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
                raise fail(name, f"an int >= {low}", value)
        self.workers = int(workers)
        self.use_multiprocessing = bool(use_multiprocessing)
        self.max_queue_size = int(max_queue_size)

    def __len__(self) -> int:
        raise NotImplementedError(f"{type(self).__name__} must define __len__")

    def __getitem__(self, index: int):
        raise NotImplementedError(f"{type(self).__name__} must define __getitem__")

    def on_epoch_end(self) -> None:
        """Called after each epoch (shuffle the samples here, say)."""

    @property
    def num_batches(self) -> Optional[int]:
        """Batches per epoch: ``len(self)``."""
        return len(self)


#: Keras 2's name, which Keras 3 keeps for PyDataset.
Sequence = PyDataset


def is_array_data(x: Any) -> bool:
    """Whether ``x`` is array data (an array, a list/tuple/dict of arrays), not a source
    of batches."""
    if isinstance(x, np.ndarray) or np.isscalar(x):
        return True
    if isinstance(x, dict):
        return all(_array_like(v) for v in x.values())
    if isinstance(x, (list, tuple)):
        return all(_array_like(v) for v in x)
    return hasattr(x, "__array__") or hasattr(x, "__array_interface__")


def _array_like(v: Any) -> bool:
    if isinstance(v, np.ndarray) or hasattr(v, "__array__"):
        return True
    if isinstance(v, (list, tuple)):  # nested Python lists of numbers
        return all(isinstance(e, (int, float, np.number, list, tuple)) for e in v)
    return isinstance(v, (int, float, np.number))


def _is_sequence(x: Any) -> bool:
    return (hasattr(x, "__getitem__") and hasattr(x, "__len__")
            and not isinstance(x, (list, tuple, dict, str, bytes))
            and not isinstance(x, collections.abc.Iterator))


def split_batch(batch: Any, index: int, need_y: bool):
    """``(x, y, sample_weight)`` of one batch from a data source; ``index`` names it in
    errors. ``y`` and ``sample_weight`` are None where the batch has none."""
    if isinstance(batch, tuple):
        if len(batch) == 1:
            x, y, sw = batch[0], None, None
        elif len(batch) == 2:
            (x, y), sw = batch, None
        elif len(batch) == 3:
            x, y, sw = batch
        else:
            raise ValueError(f"Batch {index} of the data must be (x,), (x, y) or (x, y, "
                             f"sample_weight): a tuple of {len(batch)} items was received")
    else:
        x, y, sw = batch, None, None
    if need_y and y is None:
        raise ValueError(f"Batch {index} of the data has no targets: training and evaluation "
                         "need batches of (x, y); received x alone")
    return x, y, sw


class DataAdapter:
    """Batches of a non-array data source, epoch by epoch.

    Parameters
    ----------
    data : PyDataset, iterator, generator or iterable
        See the module docstring.
    steps : int, optional
        ``steps_per_epoch`` (or ``steps`` of evaluate/predict); None: all of it.
    shuffle : bool
        Shuffle a PyDataset's batch order each epoch (fastconv's global generator).
    name : str
        The argument's name, for errors (``'x'``, ``'validation_data'``).
    """

    def __init__(self, data: Any, steps: Optional[int] = None, shuffle: bool = False,
                 name: str = "x"):
        self.data, self.shuffle, self.name = data, bool(shuffle), name
        self.steps_arg = steps
        self.sequence = _is_sequence(data)
        self.iterator = isinstance(data, collections.abc.Iterator)
        if not (self.sequence or self.iterator or isinstance(data, collections.abc.Iterable)):
            raise fail(name, "arrays, a PyDataset, a generator or an iterable of batches",
                       type(data).__name__, TypeError)
        self.exhausted = False

    @property
    def steps(self) -> Optional[int]:
        """Batches per epoch, or None while not known (a generator without
        ``steps_per_epoch``)."""
        if self.steps_arg is not None:
            return self.steps_arg
        if self.sequence or (not self.iterator and hasattr(self.data, "__len__")):
            return len(self.data)
        return None

    def epoch(self, epoch: int, rng=None) -> Iterator[Any]:
        """Yield this epoch's batches; sets :attr:`exhausted` when a generator ran dry
        before ``steps`` batches."""
        steps = self.steps
        if self.sequence:
            set_epoch = getattr(self.data, "set_epoch", None)
            if callable(set_epoch):
                set_epoch(epoch)
            n = len(self.data)
            order = np.arange(n)
            if self.shuffle and rng is not None:
                order = rng.permutation(n)
            try:
                for i in range(n if steps is None else min(steps, n)):
                    yield self.data[int(order[i])]
            finally:  # also when the trainer closes the epoch after its last step
                end = getattr(self.data, "on_epoch_end", None)
                if callable(end):
                    end()
            return
        source = self.data if self.iterator else iter(self.data)
        taken = 0
        while steps is None or taken < steps:
            try:
                batch = next(source)
            except StopIteration:
                if steps is None and taken > 0:
                    return  # one whole pass: the epoch
                self.exhausted = True
                warnings.warn(_RAN_OUT, UserWarning, stacklevel=4)
                return
            taken += 1
            yield batch


def get_adapter(data: Any, steps: Optional[int], shuffle: bool, name: str) -> DataAdapter:
    """A :class:`DataAdapter` over ``data`` (checked: an int ``steps`` >= 1 or None)."""
    if steps is not None and (isinstance(steps, bool) or not isinstance(steps, (int, np.integer))
                              or steps < 1):
        raise fail("steps_per_epoch" if name == "x" else "validation_steps",
                   "a positive int or None", steps)
    return DataAdapter(data, None if steps is None else int(steps), shuffle, name)
