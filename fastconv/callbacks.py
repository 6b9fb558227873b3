"""Callbacks called by ``fit`` (Keras: ``keras.callbacks``).

A callback receives ``set_model(model)`` and ``set_params(params)`` first, then
``on_train_begin``, ``on_epoch_begin(epoch)``, ``on_train_batch_begin(batch)``,
``on_train_batch_end(batch, logs)``, ``on_epoch_end(epoch, logs)`` and
``on_train_end``. ``logs`` at an epoch's end holds 'loss', each metric, and their
``val_`` versions when there is validation data. Setting ``model.stop_training = True``
ends training after the current batch's epoch.

Under :mod:`fastconv.distributed` with several MPI ranks, ModelCheckpoint and
CSVLogger act on the root rank only (the weights and the epoch logs are the same on
every rank), so one process writes each file.
"""

from __future__ import annotations

import csv
import inspect
import io
import json
import math
import os
import shutil
import warnings
from typing import Any, Callable, Dict, List, Optional

import numpy as np

from . import distributed as _distributed
from .backends._args import fail

__all__ = ["Callback", "History", "EarlyStopping", "ModelCheckpoint", "CSVLogger",
           "TerminateOnNaN", "LearningRateScheduler", "ReduceLROnPlateau", "LambdaCallback",
           "ProgbarLogger", "BackupAndRestore"]


class Callback:
    """Base class; every hook does nothing."""

    def __init__(self):
        self.model = None
        self.params: Dict[str, Any] = {}

    def set_model(self, model) -> None:
        self.model = model

    def set_params(self, params: Dict[str, Any]) -> None:
        self.params = params

    def on_train_begin(self, logs=None): pass

    def on_train_end(self, logs=None): pass

    def on_epoch_begin(self, epoch, logs=None): pass

    def on_epoch_end(self, epoch, logs=None): pass

    def on_train_batch_begin(self, batch, logs=None): pass

    def on_train_batch_end(self, batch, logs=None): pass

    def _after_epoch_end(self, epoch) -> None:
        """Called after every callback's ``on_epoch_end`` (BackupAndRestore saves then)."""

    def _state(self) -> Dict[str, Any]:
        """What a resumed run needs of this callback (JSON-able); BackupAndRestore saves it."""
        return {}

    def _restore(self, state: Dict[str, Any]) -> None:
        """Take back what :meth:`_state` returned."""


class History(Callback):
    """Records each epoch's logs: ``history.history['loss']``, ``['val_accuracy']``, ..."""

    def __init__(self):
        super().__init__()
        self.epoch: List[int] = []
        self.history: Dict[str, List[float]] = {}

    def on_train_begin(self, logs=None):
        self.epoch = []
        self.history = {}

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for k, v in (logs or {}).items():
            self.history.setdefault(k, []).append(v)


def _mode(mode: str, monitor: str) -> str:
    if mode not in ("auto", "min", "max"):
        raise fail("mode", "'auto', 'min' or 'max'", mode)
    if mode == "auto":
        return "max" if ("acc" in monitor or monitor.startswith("fmeasure")) else "min"
    return mode


class _Monitor(Callback):
    def __init__(self, monitor, mode, min_delta=0.0):
        super().__init__()
        self.monitor = monitor
        self.mode = _mode(mode, monitor)
        self.min_delta = abs(float(min_delta))
        self.best = math.inf if self.mode == "min" else -math.inf

    def _improved(self, current, best):
        if self.mode == "min":
            return current < best - self.min_delta
        return current > best + self.min_delta

    def _current(self, logs):
        value = (logs or {}).get(self.monitor)
        if value is None:
            warnings.warn(
                f"{type(self).__name__} monitors {self.monitor!r}, which is not in the logs "
                f"(available: {sorted(logs or {})}); doing nothing this epoch.",
                RuntimeWarning, stacklevel=3)
        return value


class EarlyStopping(_Monitor):
    """Stop when ``monitor`` has not improved by ``min_delta`` for ``patience`` epochs.

    As in Keras 3: the first monitored epoch (from ``start_from_epoch``) is the best so
    far; a later one is better when it improves on the best by more than
    ``min_delta``. The wait starts again only at an epoch that is better than the best
    and, with ``baseline``, also better than the baseline. With
    ``restore_best_weights=True`` the weights of the best epoch are put back when
    training ends, whether it stopped early or not.
    """

    def __init__(self, monitor: str = "val_loss", min_delta: float = 0.0, patience: int = 0,
                 verbose: int = 0, mode: str = "auto", baseline: Optional[float] = None,
                 restore_best_weights: bool = False, start_from_epoch: int = 0):
        super().__init__(monitor, mode, min_delta)
        self.patience, self.verbose = int(patience), verbose
        self.baseline = None if baseline is None else float(baseline)
        self.restore_best_weights = bool(restore_best_weights)
        self.start_from_epoch = int(start_from_epoch)

    def on_train_begin(self, logs=None):
        self.wait = 0
        self.stopped_epoch = 0
        self.best = None
        self.best_weights = None
        self.best_epoch = 0

    def on_epoch_end(self, epoch, logs=None):
        current = self._current(logs)
        if current is None or epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            self.best_weights = self.model.get_weights()
            self.best_epoch = epoch
        self.wait += 1
        if self.best is None or self._improved(current, self.best):
            self.best, self.best_epoch = current, epoch
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            if self.baseline is None or self._improved(current, self.baseline):
                self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def _state(self):
        return {"wait": self.wait, "best": self.best, "best_epoch": self.best_epoch,
                "stopped_epoch": self.stopped_epoch}

    def _restore(self, state):
        self.wait = int(state["wait"])
        self.best = None if state["best"] is None else float(state["best"])
        self.best_epoch, self.stopped_epoch = int(state["best_epoch"]), int(state["stopped_epoch"])

    def on_train_end(self, logs=None):
        if self.stopped_epoch > 0 and self.verbose > 0:
            print(f"Epoch {self.stopped_epoch + 1}: early stopping")
        if self.restore_best_weights and self.best_weights is not None:
            if self.verbose > 0:
                print(f"Restoring model weights from the end of the best epoch: "
                      f"{self.best_epoch + 1}.")
            self.model.set_weights(self.best_weights)


class ModelCheckpoint(_Monitor):
    """Save the model (or its weights) after each epoch, or only when ``monitor`` improves.

    ``filepath`` may contain ``{epoch}`` (1-based) and log keys, e.g.
    ``'ckpt-{epoch:02d}-{val_loss:.2f}.fcm'``. ``save_freq='epoch'`` saves at each
    epoch's end; an int saves every that many batches (with the batch's logs, so
    monitor ``'loss'`` then; ``{batch}`` is the 1-based batch). ``initial_value_threshold``
    is the value ``monitor`` must beat first with ``save_best_only``. Files are written
    atomically.
    """

    def __init__(self, filepath: str, monitor: str = "val_loss", verbose: int = 0,
                 save_best_only: bool = False, save_weights_only: bool = False,
                 mode: str = "auto", save_freq: Any = "epoch",
                 initial_value_threshold: Optional[float] = None):
        super().__init__(monitor, mode)
        if save_freq != "epoch" and (isinstance(save_freq, bool) or not isinstance(
                save_freq, (int, np.integer)) or save_freq < 1):
            raise fail("save_freq", "'epoch' or a positive int (batches)", save_freq)
        self.save_freq = save_freq
        self.filepath = os.fspath(filepath)
        self.verbose, self.save_best_only = verbose, bool(save_best_only)
        self.save_weights_only = bool(save_weights_only)
        self.initial_value_threshold = initial_value_threshold
        if initial_value_threshold is not None:
            self.best = float(initial_value_threshold)
        self._batches_seen = 0
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.save_freq == "epoch":
            return
        self._batches_seen += 1
        if self._batches_seen % self.save_freq == 0:
            self._save(self._epoch, logs or {}, batch)

    def on_epoch_end(self, epoch, logs=None):
        if self.save_freq == "epoch":
            self._save(epoch, logs or {})

    def _save(self, epoch, logs, batch=None):
        if not _distributed.is_root():
            return
        if self.save_best_only:
            current = self._current(logs)
            if current is None or not self._improved(current, self.best):
                return
            self.best = current
        fields = dict(logs, epoch=epoch + 1)
        if batch is not None:
            fields["batch"] = batch + 1  # Keras: the 1-based batch within the epoch
        path = self.filepath.format(**fields)
        if self.verbose > 0:
            print(f"Epoch {epoch + 1}: saving model to {path}")
        if self.save_weights_only:
            self.model.save_weights(path)
        else:
            self.model.save(path)

    def _state(self):
        return {"best": self.best, "batches_seen": self._batches_seen}

    def _restore(self, state):
        self.best, self._batches_seen = float(state["best"]), int(state["batches_seen"])


class CSVLogger(Callback):
    """Write each epoch's logs as a CSV row (columns: epoch, then the sorted log keys)."""

    def __init__(self, filename: str, separator: str = ",", append: bool = False):
        super().__init__()
        self.filename, self.sep, self.append = os.fspath(filename), separator, bool(append)

    def on_train_begin(self, logs=None):
        self._file = None
        if not _distributed.is_root():
            return
        exists = self.append and os.path.exists(self.filename) and os.path.getsize(
            self.filename) > 0
        self._file = open(self.filename, "a" if self.append else "w", newline="")
        self._writer = None
        self._header_written = exists

    def on_epoch_end(self, epoch, logs=None):
        if self._file is None:
            return
        logs = logs or {}
        if self._writer is None:
            self._keys = sorted(logs)
            self._writer = csv.writer(self._file, delimiter=self.sep)
            if not self._header_written:
                self._writer.writerow(["epoch"] + self._keys)
        self._writer.writerow([epoch] + [logs.get(k, "NA") for k in self._keys])
        self._file.flush()

    def on_train_end(self, logs=None):
        if self._file is not None:
            self._file.close()
            self._file = None


class TerminateOnNaN(Callback):
    """Stop training as soon as a batch's loss is NaN or infinite, saying where."""

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not np.isfinite(loss):
            epoch = getattr(self.model, "_current_epoch", None)
            print(f"Batch {batch}"
                  + ("" if epoch is None else f" of epoch {epoch + 1}")
                  + f": invalid loss {loss}, terminating training")
            self.model.stop_training = True


class LearningRateScheduler(Callback):
    """Set the optimizer's learning rate to ``schedule(epoch, lr)`` (or ``schedule(epoch)``)
    at the start of each epoch (0-based ``epoch``)."""

    def __init__(self, schedule: Callable, verbose: int = 0):
        super().__init__()
        if not callable(schedule):
            raise fail("schedule", "a callable schedule(epoch, lr) -> lr", schedule, TypeError)
        self.schedule, self.verbose = schedule, verbose
        try:
            self._two_args = len(inspect.signature(schedule).parameters) >= 2
        except (TypeError, ValueError):
            self._two_args = True

    def on_epoch_begin(self, epoch, logs=None):
        opt = self.model.optimizer
        lr = self.schedule(epoch, opt.learning_rate) if self._two_args else self.schedule(epoch)
        if not isinstance(lr, (float, int, np.floating, np.integer)) or not np.isfinite(lr):
            raise ValueError(f"The schedule must return a finite number. Received: {lr!r}")
        opt.learning_rate = float(lr)
        if self.verbose > 0:
            print(f"Epoch {epoch + 1}: LearningRateScheduler setting learning rate to {lr}.")

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = self.model.optimizer.learning_rate


class CallbackList:
    """Calls every callback's hook in order (internal to ``fit``)."""

    def __init__(self, callbacks, model, params):
        self.callbacks = list(callbacks)
        for cb in self.callbacks:
            if not isinstance(cb, Callback):
                raise fail("callbacks", "a list of fastconv.callbacks.Callback objects", cb,
                           TypeError)
            cb.set_model(model)
            cb.set_params(params)

    def __getattr__(self, hook):
        # Made once per hook: the callbacks that do something there (a hook left as
        # Callback's no-op is skipped), called in order. fit calls the batch hooks on
        # every step, where with History alone there is nothing to call.
        methods = []
        for cb in self.callbacks:
            method = getattr(cb, hook)
            if getattr(method, "__func__", None) is not getattr(Callback, hook, None):
                methods.append(method)

        def call(*args):
            for method in methods:
                method(*args)
        if hook.startswith("on_"):
            setattr(self, hook, call)
        return call



class ReduceLROnPlateau(_Monitor):
    """Multiply the learning rate by ``factor`` when ``monitor`` has not improved by
    ``min_delta`` for ``patience`` epochs; then wait ``cooldown`` epochs before
    counting again, and never go below ``min_lr``. Adds ``learning_rate`` to the logs.
    """

    def __init__(self, monitor: str = "val_loss", factor: float = 0.1, patience: int = 10,
                 verbose: int = 0, mode: str = "auto", min_delta: float = 1e-4,
                 cooldown: int = 0, min_lr: float = 0.0, **kwargs: Any):
        if kwargs:
            raise TypeError(f"ReduceLROnPlateau got unexpected keyword argument(s) "
                            f"{sorted(kwargs)}")
        super().__init__(monitor, mode, min_delta)
        if isinstance(factor, bool) or not isinstance(factor, (int, float)) or factor >= 1.0:
            raise ValueError("ReduceLROnPlateau does not support a factor >= 1.0. "
                             f"Received: factor={factor}")
        self.factor, self.patience, self.verbose = float(factor), int(patience), verbose
        self.cooldown, self.min_lr = int(cooldown), float(min_lr)
        self.wait = self.cooldown_counter = 0

    def on_train_begin(self, logs=None):
        self.wait = self.cooldown_counter = 0
        self.best = math.inf if self.mode == "min" else -math.inf

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        opt = self.model.optimizer
        logs["learning_rate"] = float(opt.learning_rate)
        current = self._current(logs)
        if current is None:
            return
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.wait = 0
        if self._improved(current, self.best):
            self.best, self.wait = current, 0
        elif self.cooldown_counter <= 0:
            self.wait += 1
            if self.wait >= self.patience:
                old = float(opt.learning_rate)
                if old > self.min_lr:
                    new = max(old * self.factor, self.min_lr)
                    opt.learning_rate = new
                    if self.verbose > 0:
                        print(f"Epoch {epoch + 1}: ReduceLROnPlateau reducing learning rate "
                              f"to {new}.")
                    self.cooldown_counter = self.cooldown
                    self.wait = 0

    def _state(self):
        return {"wait": self.wait, "best": self.best, "cooldown_counter": self.cooldown_counter}

    def _restore(self, state):
        self.wait, self.best = int(state["wait"]), float(state["best"])
        self.cooldown_counter = int(state["cooldown_counter"])


class LambdaCallback(Callback):
    """A callback made of functions: ``on_epoch_begin(epoch, logs)``,
    ``on_epoch_end(epoch, logs)``, ``on_train_begin(logs)``, ``on_train_end(logs)``,
    ``on_train_batch_begin(batch, logs)``, ``on_train_batch_end(batch, logs)``
    (``on_batch_begin``/``on_batch_end`` are Keras's older names for the last two)."""

    _HOOKS = ("on_epoch_begin", "on_epoch_end", "on_train_begin", "on_train_end",
              "on_train_batch_begin", "on_train_batch_end")

    def __init__(self, on_epoch_begin=None, on_epoch_end=None, on_train_begin=None,
                 on_train_end=None, on_train_batch_begin=None, on_train_batch_end=None,
                 **kwargs: Any):
        super().__init__()
        given = dict(on_epoch_begin=on_epoch_begin, on_epoch_end=on_epoch_end,
                     on_train_begin=on_train_begin, on_train_end=on_train_end,
                     on_train_batch_begin=on_train_batch_begin,
                     on_train_batch_end=on_train_batch_end)
        for old, new in (("on_batch_begin", "on_train_batch_begin"),
                         ("on_batch_end", "on_train_batch_end")):
            if old in kwargs:
                given[new] = kwargs.pop(old)
        if kwargs:
            raise TypeError(f"LambdaCallback got unexpected keyword argument(s) "
                            f"{sorted(kwargs)}")
        for hook, fn in given.items():
            if fn is None:
                continue
            if not callable(fn):
                raise fail(hook, "a callable", fn, TypeError)
            setattr(self, hook, fn)


class ProgbarLogger(Callback):
    """Keras's progress-bar callback. ``fit`` draws its progress itself (``verbose``), so
    passing one changes nothing; it is here so that Keras code that lists it runs."""


class BackupAndRestore(Callback):
    """Back up the training state each epoch, and resume from it after a crash.

    At the end of each epoch (or every ``save_freq`` batches) the model's weights, the
    optimizer's state, the epoch, fastconv's global random state and the state of the
    other callbacks (EarlyStopping's best and wait, ...) are written to
    ``backup_dir`` atomically. A ``fit`` started again with the same callbacks finds
    the backup, restores all of it and continues after the last completed epoch (with
    shuffling off and no Dropout, to the weights of a run never interrupted). When
    training ends normally the backup is deleted (``delete_checkpoint``).
    """

    _FILE = "backup.fcb"

    def __init__(self, backup_dir: str, save_freq: Any = "epoch",
                 delete_checkpoint: bool = True):
        super().__init__()
        if not backup_dir:
            raise fail("backup_dir", "a directory path", backup_dir)
        if save_freq != "epoch" and (isinstance(save_freq, bool) or not isinstance(
                save_freq, (int, np.integer)) or save_freq < 1):
            raise fail("save_freq", "'epoch' or a positive int (batches)", save_freq)
        self.backup_dir = os.fspath(backup_dir)
        self.save_freq, self.delete_checkpoint = save_freq, bool(delete_checkpoint)
        self._pending = None
        self._epoch = 0
        self._batches = 0

    @property
    def _path(self):
        return os.path.join(self.backup_dir, self._FILE)

    def on_train_begin(self, logs=None):
        self._pending = None
        if not os.path.exists(self._path):
            return
        from . import _random

        weights, meta = _read_backup(self._path)
        self.model.set_weights(weights)
        self.model.optimizer.set_state(meta["optimizer"])
        _random.get_rng().bit_generator.state = meta["rng"]
        self._batches = int(meta["batches"])
        # fit starts at this epoch; the other callbacks' state is put back once all of
        # them have run their own on_train_begin (which resets it).
        self.model._resume_epoch = int(meta["epoch"])
        self._pending = meta["callbacks"]

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        if self._pending is not None:
            for cb, state in zip(self._others(), self._pending):
                if state:
                    cb._restore(state)
            self._pending = None

    def on_train_batch_end(self, batch, logs=None):
        self._batches += 1
        if self.save_freq != "epoch" and self._batches % self.save_freq == 0:
            # mid-epoch: a restart repeats this epoch from its start
            self._write(self._epoch)

    def _after_epoch_end(self, epoch):
        # after the other callbacks' on_epoch_end, so that their saved state includes
        # this epoch (EarlyStopping's wait, say)
        if self.save_freq == "epoch":
            self._write(epoch + 1)

    def on_train_end(self, logs=None):
        if self.delete_checkpoint and not self.model._fit_interrupted \
                and os.path.isdir(self.backup_dir):
            shutil.rmtree(self.backup_dir, ignore_errors=True)

    def _others(self):
        return [cb for cb in getattr(self.model, "_fit_callbacks", []) if cb is not self
                and not isinstance(cb, History)]

    def _write(self, next_epoch):
        if not _distributed.is_root():
            return
        from . import _random, _saving

        arrays: Dict[str, np.ndarray] = {}
        meta = {"epoch": next_epoch, "batches": self._batches,
                "optimizer": _state_to_json(self.model.optimizer.get_state(), arrays),
                "rng": _random.get_rng().bit_generator.state,
                "callbacks": [cb._state() for cb in self._others()]}
        os.makedirs(self.backup_dir, exist_ok=True)
        arrays.update({f"w{i}": w for i, w in enumerate(self.model.get_weights())})
        buf = io.BytesIO()
        np.savez(buf, meta=np.array(json.dumps(meta)), **arrays)
        _saving._atomic_write(self._path, buf.getvalue(), True)


def _state_to_json(obj, arrays: Dict[str, np.ndarray]):
    """Optimizer state as JSON, its arrays moved into ``arrays`` (the backup's npz) and
    replaced by their keys."""
    if isinstance(obj, np.ndarray):
        key = f"s{len(arrays)}"
        arrays[key] = obj
        return {"__array__": key}
    if isinstance(obj, tuple):
        return {"__tuple__": [_state_to_json(o, arrays) for o in obj]}
    if isinstance(obj, list):
        return [_state_to_json(o, arrays) for o in obj]
    if isinstance(obj, dict):
        return {k: _state_to_json(v, arrays) for k, v in obj.items()}
    if isinstance(obj, (np.floating, np.integer)):
        return obj.item()
    return obj


def _state_from_json(obj, arrays):
    if isinstance(obj, dict):
        if "__array__" in obj:
            return arrays[obj["__array__"]].copy()
        if "__tuple__" in obj:
            return tuple(_state_from_json(o, arrays) for o in obj["__tuple__"])
        return {k: _state_from_json(v, arrays) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_state_from_json(o, arrays) for o in obj]
    return obj


def _read_backup(path):
    """The weights and the metadata of a backup written by BackupAndRestore."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            meta = json.loads(str(npz["meta"]))
            arrays = {k: npz[k] for k in npz.files if k != "meta"}
    except (OSError, ValueError, KeyError) as err:
        raise ValueError(f"The backup {path!r} cannot be read ({err}); delete it to start "
                         "afresh") from err
    n = sum(1 for k in arrays if k.startswith("w"))
    weights = [arrays[f"w{i}"] for i in range(n)]
    meta["optimizer"] = _state_from_json(meta["optimizer"], arrays)
    return weights, meta
