"""Training, evaluation and prediction for any model (Keras: ``fit``, ``evaluate``,
``predict``), kept apart from the model's structure.

A training step is: the graph's forward pass in training mode, the loss and its
gradient, the graph's backward pass, one optimizer update. When the output is made by
a layer ending in softmax (sigmoid) and the loss is a categorical (binary)
cross-entropy on probabilities, the two are fused: the gradient ``(p - y) / N`` goes
straight to the logits, which is both cheaper and exact where ``p`` underflows.

The arrays a step writes (block outputs, dropout masks, Dense gradients, ...) live in
the model's :class:`fastconv.graph.Workspace` and are reused from one step to the
next; one lock serialises training steps of one model. ``predict`` and ``evaluate``
allocate per call and hold no lock, so several threads may predict at once.
"""

from __future__ import annotations

import math
import signal
import threading
import warnings
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from . import _random
from . import activations as _activations
from . import callbacks as _callbacks
from . import distributed as _distributed
from . import losses as _losses
from . import metrics as _metrics
from . import optimizers as _optimizers
from ._activity import activity_loss
from ._progress import Progbar
from .backends._args import fail
from .constraints import apply_constraints
from .graph import Workspace

__all__ = ["Trainer"]

_COMPILE_IGNORED = ("run_eagerly", "jit_compile", "steps_per_execution", "auto_scale_loss",
                    "weighted_metrics")


def _check_int(name, value, minimum):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) \
            or value < minimum:
        raise fail(name, f"an int >= {minimum}", value,
                   ValueError if isinstance(value, (int, np.integer)) else TypeError)
    return int(value)


def _verbose(verbose):
    if verbose == "auto":
        return 1
    if verbose not in (0, 1, 2) or isinstance(verbose, bool):
        raise fail("verbose", "0, 1, 2 or 'auto'", verbose)
    return int(verbose)


def _rows(xs: List[np.ndarray], lo: int, hi: int) -> List[np.ndarray]:
    return [x[lo:hi] for x in xs]


class _Interrupt:
    """While ``fit`` runs in the main thread, Ctrl-C (SIGINT) sets a flag that the loop
    reads after each batch, so the batch in progress completes and the model stays
    consistent; the loop then ends the training and raises KeyboardInterrupt."""

    def __init__(self):
        self.hit = False
        self._old = None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            try:
                self._old = signal.signal(signal.SIGINT, self._handle)
            except (ValueError, OSError):  # pragma: no cover - embedded interpreters
                self._old = None
        return self

    def _handle(self, signum, frame):
        if self.hit:  # a second Ctrl-C: stop now
            raise KeyboardInterrupt
        self.hit = True

    def __exit__(self, *exc):
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)


class Trainer:
    """``compile``, ``fit``, ``evaluate``, ``predict`` and the one-batch methods, for a
    model that provides ``_prepare_inputs`` and ``_run_graph`` (see
    :class:`fastconv.models.Model`)."""

    def _init_training(self) -> None:
        self.optimizer: Optional[_optimizers.Optimizer] = None
        self.loss: Optional[_losses.Loss] = None
        self.compiled_metrics: List[Tuple[str, Any]] = []
        self._metric_ids: List[Any] = []
        self.stop_training = False
        self.history: Optional[_callbacks.History] = None
        self._workspace = Workspace()
        self._train_lock = threading.Lock()
        self._items_cache: Optional[tuple] = None

    # -- compile ----------------------------------------------------------------------
    def compile(self, optimizer: Any = "rmsprop", loss: Any = None,
                metrics: Optional[Sequence[Any]] = None, **kwargs: Any) -> None:
        """Choose the optimizer, the loss and the metrics, as in Keras."""
        for key in _COMPILE_IGNORED:  # Keras's execution switches: nothing to do here
            kwargs.pop(key, None)
        if kwargs.get("loss_weights") is not None:
            raise NotImplementedError("fastconv does not implement loss_weights yet")
        kwargs.pop("loss_weights", None)
        if kwargs:
            raise TypeError(f"compile got unexpected keyword argument(s) {sorted(kwargs)}")
        self.optimizer = _optimizers.get(optimizer)
        if loss is None:
            raise fail("loss", "a loss name or fastconv.losses.Loss", loss, TypeError)
        if isinstance(loss, (list, tuple, dict)):
            raise NotImplementedError("fastconv trains models with one output and one loss; "
                                      "a list or dict of losses is not implemented yet")
        self.loss = _losses.get(loss)
        if metrics is None:
            metrics = []
        elif isinstance(metrics, (str,)) or callable(metrics):
            metrics = [metrics]
        self._metric_ids = list(metrics)
        self._resolve_metrics()

    def _resolve_metrics(self):
        out = self._output_shape_or_empty()
        self.compiled_metrics = [_metrics.get(m, self.loss, out) for m in self._metric_ids]

    def _output_shape_or_empty(self):
        try:
            shape = self.output_shape
        except (ValueError, AttributeError):
            return ()
        return shape if isinstance(shape, tuple) else ()

    def _require_compiled(self):
        if self.optimizer is None or self.loss is None:
            raise RuntimeError("You must compile the model before training or evaluating it: "
                               "model.compile(optimizer=..., loss=...).")

    # -- one step ---------------------------------------------------------------------
    def _fused_loss_step(self, graph, plan):
        """The plan step whose pre-activation the loss can take (see the module
        docstring), or None."""
        loss = self.loss
        if loss is None or loss.from_logits or not loss.fused_activation \
                or len(graph.outputs) != 1:
            return None
        step = graph.logits_step(0)
        if step is None or step.index >= len(plan.steps) or plan.steps[step.index] is not step \
                or getattr(step.op, "activity_regularizer", None) is not None:
            return None
        act = getattr(step.op, "activation", None)
        if loss.fused_activation == "softmax":
            ok = isinstance(act, _activations.SoftmaxFunction) and act.axis == -1
        else:
            ok = act is _activations.sigmoid
        return step if ok else None

    def _single_output(self, graph):
        if len(graph.outputs) != 1:
            raise NotImplementedError(
                f"Model '{self.name}' has {len(graph.outputs)} outputs; fastconv trains and "
                "evaluates models with one output (predict works with several).")

    def _train_items(self):
        """``(layer, name, array)`` of every trainable weight, each once, in Keras's order;
        kept between steps while no ``trainable`` flag or weight array changes."""
        layers = self._layers_flat()
        key = (self.trainable,) + tuple(la.trainable for la in layers)
        cached = self._items_cache
        if cached is not None and cached[0] == key and all(
                la._weight(n) is a for la, n, a in cached[1]):
            return cached[1]
        items = self._weight_items(True)
        self._items_cache = (key, items)
        return items

    def _penalty(self) -> float:
        total = 0.0
        for layer, name, arr in self._weight_items():
            reg = layer.regularizers.get(name) if layer.regularizers else None
            if reg is not None:
                total += reg(arr)
        return total

    def _loss_and_grads(self, xs, y, training=True, workspace=None):
        """Loss (with regularization), the output, the trainable arrays and their
        gradients, for one batch."""
        graph = self._run_graph(xs, training)
        self._single_output(graph)
        outs, tape = graph.forward(xs, training, workspace)
        out = outs[0]
        penalty = activity_loss(tape)
        fused = self._fused_loss_step(graph, tape[0])
        if fused is not None:
            logits = fused.op.logits(tape[1][fused.index])
            value, dz = self.loss.logits_value_and_grad(y, logits)
            _, wg = graph.backward(tape, [None], input_grads=False, logits_grads={0: dz})
        else:
            value, d = self.loss.value_and_grad(y, out)
            _, wg = graph.backward(tape, [d], input_grads=False)
        value += penalty  # activity regularizers' (fastconv._activity)
        items = self._train_items()
        found = {id(w): g for w, g in wg}
        params, grads = [], []
        for layer, name, arr in items:
            g = found.get(id(arr))
            if g is None:  # a weight the loss does not depend on
                g = np.zeros_like(arr)
            if layer.regularizers:
                reg = layer.regularizers.get(name)
                if reg is not None:
                    value += reg(arr)
                    g = g + reg.gradient(arr)  # never in place: g may be shared
            params.append(arr)
            grads.append(g)
        return value, out, params, grads

    def _train_step(self, xs, y):
        """One update; returns this batch's loss, the output, and the step's loss.

        The step's loss is the batch loss, or under fastconv.distributed the loss over
        the batches of all ranks, which the optimizer's ``apply_step`` hook averages
        together with the gradients.
        """
        with self._train_lock:
            value, out, params, grads = self._loss_and_grads(xs, y, True, self._workspace)
            apply_step = getattr(self.optimizer, "apply_step", None)
            if apply_step is None:
                self.optimizer.apply(params, grads)
                step_loss = value
            else:
                step_loss = apply_step(params, grads, len(xs[0]), value)
            apply_constraints(self._train_items())  # after the update, as Keras
            return value, out, step_loss

    def _empty_step(self):
        """Take part in a distributed step with no samples (this rank's shard ran out)."""
        items = self._train_items()
        loss = self.optimizer.apply_step([arr for _, _, arr in items],
                                         [np.zeros_like(arr) for _, _, arr in items], 0, 0.0)
        apply_constraints(items)
        return loss

    def _batch_loss_and_output(self, xs, y):
        """Inference-mode loss (without regularization) and output of one batch."""
        graph = self._run_graph(xs)
        self._single_output(graph)
        fused = None
        if self.loss.fused_activation and not self.loss.from_logits:
            fused = self._fused_loss_step(graph, graph.plan())
        outs, tape = graph.forward(xs, False, None, tape=fused is not None)
        if fused is not None and tape[0].steps[fused.index] is fused:
            value = self.loss.logits_value_and_grad(y, fused.op.logits(tape[1][fused.index]))[0]
        else:
            value = self.loss.value_and_grad(y, outs[0])[0]
        return value, outs[0]

    def train_on_batch(self, x: Any, y: Any = None, return_dict: bool = False, **kwargs: Any):
        """One optimizer step on one batch; returns its loss (and metrics), as Keras."""
        self._require_compiled()
        xs = self._prepare_inputs(x)
        y = self.loss.prepare_targets(y, self.output_shape)
        value, out, _ = self._train_step(xs, y)
        logs = {"loss": value}
        for name, fn in self.compiled_metrics:
            logs[name] = fn(y, out)
        return self._format_result(logs, return_dict)

    def test_on_batch(self, x: Any, y: Any = None, return_dict: bool = False, **kwargs: Any):
        """Loss (and metrics) of one batch in inference mode."""
        return self.evaluate(x, y, batch_size=max(1, len(self._prepare_inputs(x)[0])),
                             verbose=0, return_dict=return_dict)

    def predict_on_batch(self, x: Any) -> Any:
        """The model's output for one batch."""
        xs = self._prepare_inputs(x)
        return self._predict_arrays(xs, max(1, len(xs[0])))

    def _format_result(self, logs, return_dict):
        if return_dict:
            return logs
        values = list(logs.values())
        return values[0] if len(values) == 1 else values

    # -- fit / evaluate / predict -----------------------------------------------------
    def _check_xy(self, x, y, name_x="x", name_y="y"):
        xs = self._prepare_inputs(x, name_x)
        y = self.loss.prepare_targets(y, self.output_shape)
        n = len(xs[0])
        if len(y) != n:
            raise ValueError(f"`{name_x}` and `{name_y}` must have the same number of samples. "
                             f"Received: {n} and {len(y)}")
        for k, arr in enumerate(xs):
            bad = ~np.isfinite(arr.reshape(len(arr), -1)).all(axis=1)
            if bad.any():
                which = name_x if len(xs) == 1 else f"{name_x}[{k}]"
                raise ValueError(
                    f"`{which}` contains NaN or inf in {int(bad.sum())} sample(s), the first "
                    f"at index {int(np.argmax(bad))}; fix or drop them before training."
                )
        return xs, y

    def fit(self, x: Any = None, y: Any = None, batch_size: Optional[int] = None,
            epochs: int = 1, verbose: Union[int, str] = "auto",
            callbacks: Optional[Sequence[_callbacks.Callback]] = None,
            validation_split: float = 0.0, validation_data: Optional[Tuple] = None,
            shuffle: bool = True, initial_epoch: int = 0, **kwargs: Any) -> _callbacks.History:
        """Train for ``epochs - initial_epoch`` epochs; returns the :class:`History`.

        Parameters follow Keras. ``x`` is an array, or a list (or a dict keyed by input
        names) of arrays for a model with several inputs. ``validation_split`` holds out
        the last fraction of the samples (before shuffling); ``validation_data=(x_val,
        y_val)`` overrides it. Batches are shuffled each epoch with fastconv's global
        generator. Ctrl-C stops after the current batch: callbacks get
        ``on_train_end``, ``model.history`` keeps the epochs so far, and
        KeyboardInterrupt is raised.
        """
        self._require_compiled()
        for key in ("steps_per_epoch", "validation_steps", "validation_freq", "class_weight",
                    "sample_weight", "validation_batch_size"):
            if kwargs.get(key) is not None:
                raise NotImplementedError(f"fastconv's fit does not implement {key} yet")
            kwargs.pop(key, None)
        if kwargs:
            raise TypeError(f"fit got unexpected keyword argument(s) {sorted(kwargs)}")
        batch_size = 32 if batch_size is None else _check_int("batch_size", batch_size, 1)
        epochs = _check_int("epochs", epochs, 0)
        initial_epoch = _check_int("initial_epoch", initial_epoch, 0)
        verbose = _verbose(verbose)
        if isinstance(validation_split, bool) or not isinstance(
                validation_split, (int, float, np.floating)) or not 0 <= validation_split < 1:
            raise fail("validation_split", "a number in [0, 1)", validation_split)
        if x is None or y is None:
            raise fail("x" if x is None else "y", "an array", None, TypeError)
        xs, y = self._check_xy(x, y)
        val = None
        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (
                    2, 3):
                raise fail("validation_data", "a tuple (x_val, y_val)",
                           type(validation_data).__name__, TypeError)
            val = self._check_xy(validation_data[0], validation_data[1], "validation_data[0]",
                                 "validation_data[1]")
        elif validation_split > 0:
            total = len(xs[0])
            n_val = int(math.floor(total * validation_split))
            if n_val == 0 or n_val == total:
                raise ValueError(f"`validation_split`={validation_split} leaves {n_val} of "
                                 f"{total} samples for validation; it must leave at least "
                                 "one sample on each side.")
            val = ([a[-n_val:] for a in xs], y[-n_val:])
            xs, y = [a[:-n_val] for a in xs], y[:-n_val]
        n = len(xs[0])
        if n == 0:
            raise fail("x", "at least one sample", x)
        steps = local_steps = -(-n // batch_size)
        world = _distributed._world()
        if world is not None:
            if not hasattr(self.optimizer, "apply_step"):
                raise fail("optimizer", f"a fastconv.distributed.DistributedOptimizer when "
                           f"training on {world.Get_size()} MPI ranks (compile with "
                           "optimizer=DistributedOptimizer(...))", self.optimizer, TypeError)
            # Every rank must join every allreduce: run as many steps as the largest shard.
            steps = world.allreduce(local_steps, op=_distributed._MPI.MAX)
            if not _distributed.is_root():
                verbose = 0
        history = _callbacks.History()
        cbs = _callbacks.CallbackList([history] + list(callbacks or []), self,
                                      {"epochs": epochs, "steps": steps, "verbose": verbose,
                                       "batch_size": batch_size, "samples": n})
        self.history = history
        self.stop_training = False
        with _Interrupt() as interrupt:
            cbs.on_train_begin({})
            try:
                self._fit_epochs(xs, y, val, batch_size, epochs, initial_epoch, shuffle,
                                 steps, local_steps, world, verbose, cbs, interrupt)
            finally:
                cbs.on_train_end({})
        if interrupt.hit:
            raise KeyboardInterrupt
        return history

    def _fit_epochs(self, xs, y, val, batch_size, epochs, initial_epoch, shuffle, steps,
                    local_steps, world, verbose, cbs, interrupt):
        n = len(xs[0])
        rng = _random.get_rng()
        bufs = None
        nan_reported = False
        for epoch in range(initial_epoch, epochs):
            self._current_epoch = epoch
            cbs.on_epoch_begin(epoch, {})
            if verbose:
                print(f"Epoch {epoch + 1}/{epochs}")
            bar = Progbar(steps, verbose)
            order = rng.permutation(n) if shuffle else None
            sums: Dict[str, float] = {"loss": 0.0}
            for name, _ in self.compiled_metrics:
                sums[name] = 0.0
            seen = 0
            logs: Dict[str, float] = {}
            step = 0
            for step in range(steps):
                if step >= local_steps:
                    cbs.on_train_batch_begin(step, {})
                    value = self._empty_step()
                    cbs.on_train_batch_end(step, {"loss": value})
                    if self.stop_training or interrupt.hit:
                        break
                    continue
                lo, hi = step * batch_size, min(n, (step + 1) * batch_size)
                if order is None:
                    xb, yb = _rows(xs, lo, hi), y[lo:hi]
                else:
                    idx = order[lo:hi]
                    if hi - lo == batch_size:
                        if bufs is None:
                            # One batch buffer for the whole fit instead of one per step.
                            bufs = ([np.empty((batch_size,) + a.shape[1:], a.dtype) for a in xs],
                                    np.empty((batch_size,) + y.shape[1:], y.dtype))
                        xb = [np.take(a, idx, axis=0, out=b) for a, b in zip(xs, bufs[0])]
                        yb = np.take(y, idx, axis=0, out=bufs[1])
                    else:
                        xb, yb = [a[idx] for a in xs], y[idx]
                cbs.on_train_batch_begin(step, {})
                value, out, step_loss = self._train_step(xb, yb)
                m = hi - lo
                if not math.isfinite(value) and not nan_reported:
                    nan_reported = True
                    warnings.warn(f"The loss became {value} at epoch {epoch + 1}, batch {step} "
                                  "(0-based); lower the learning rate or check the data. "
                                  "TerminateOnNaN() stops training when this happens.",
                                  RuntimeWarning, stacklevel=3)
                sums["loss"] += value * m
                for name, fn in self.compiled_metrics:
                    sums[name] += fn(yb, out) * m
                seen += m
                cbs.on_train_batch_end(step, {"loss": step_loss})
                if bar.dynamic:  # only a live bar shows the running means
                    bar.update(step + 1, {k: v / seen for k, v in sums.items()}, final=False)
                if self.stop_training or interrupt.hit:
                    break
            if interrupt.hit:
                return
            if seen:
                logs = {k: v / seen for k, v in sums.items()}
            if world is not None:
                logs = _distributed.allreduce_mean(
                    {k: v / seen for k, v in sums.items()} if seen else dict.fromkeys(sums, 0.0),
                    seen)
            if val is not None:
                for k, v in self._evaluate_arrays(val[0], val[1], batch_size).items():
                    logs["val_" + k] = v
            bar.update(seen and step + 1, logs, final=True)
            cbs.on_epoch_end(epoch, logs)
            if self.stop_training:
                break

    def _evaluate_arrays(self, xs, y, batch_size):
        n = len(xs[0])
        sums = {"loss": 0.0}
        for name, _ in self.compiled_metrics:
            sums[name] = 0.0
        for lo in range(0, n, batch_size):
            xb, yb = _rows(xs, lo, lo + batch_size), y[lo:lo + batch_size]
            value, out = self._batch_loss_and_output(xb, yb)
            m = len(yb)
            sums["loss"] += value * m
            for name, fn in self.compiled_metrics:
                sums[name] += fn(yb, out) * m
        logs = _distributed.allreduce_mean({k: v / n for k, v in sums.items()}, n)
        logs["loss"] += self._penalty()
        return logs

    def evaluate(self, x: Any = None, y: Any = None, batch_size: Optional[int] = None,
                 verbose: Union[int, str] = "auto", return_dict: bool = False,
                 **kwargs: Any):
        """Loss (with regularization) and metrics in inference mode.

        Returns the loss alone when there are no metrics, else ``[loss, metric, ...]``,
        or a dict with ``return_dict=True``. Under fastconv.distributed, ``x``/``y`` are
        this rank's shard and the result, the mean over all shards, is returned on every
        rank.
        """
        self._require_compiled()
        kwargs.pop("steps", None)
        kwargs.pop("callbacks", None)
        if kwargs:
            raise TypeError(f"evaluate got unexpected keyword argument(s) {sorted(kwargs)}")
        batch_size = 32 if batch_size is None else _check_int("batch_size", batch_size, 1)
        verbose = _verbose(verbose)
        if not _distributed.is_root():
            verbose = 0
        xs, y = self._check_xy(x, y)
        if len(xs[0]) == 0:
            raise fail("x", "at least one sample", x)
        bar = Progbar(-(-len(xs[0]) // batch_size), verbose)
        logs = self._evaluate_arrays(xs, y, batch_size)
        bar.update(bar.target, logs, final=True)
        return self._format_result(logs, return_dict)

    def predict(self, x: Any, batch_size: Optional[int] = None,
                verbose: Union[int, str] = 0, **kwargs: Any) -> Any:
        """The model's output for ``x``, in batches, in inference mode (no Dropout): an
        array, or a list of arrays for a model with several outputs.

        Safe to call from several threads at once, on one model or several. Under
        fastconv.distributed, ``x`` is this rank's shard: the root returns the outputs of
        all shards concatenated in rank order, the other ranks None.
        """
        kwargs.pop("steps", None)
        kwargs.pop("callbacks", None)
        if kwargs:
            raise TypeError(f"predict got unexpected keyword argument(s) {sorted(kwargs)}")
        batch_size = 32 if batch_size is None else _check_int("batch_size", batch_size, 1)
        _verbose(verbose)
        xs = self._prepare_inputs(x)
        if _distributed._world() is not None:
            return _distributed._gather_rows(self._predict_arrays(xs, batch_size))
        return self._predict_arrays(xs, batch_size)

    def _predict_arrays(self, xs, batch_size):
        graph = self._run_graph(xs)
        n = len(xs[0])
        results = None
        for lo in range(0, n, batch_size):
            outs, _ = graph.forward(_rows(xs, lo, lo + batch_size), False, None, tape=False)
            if results is None:
                results = [np.empty((n,) + o.shape[1:], o.dtype) for o in outs]
            for r, o in zip(results, outs):
                r[lo:lo + len(o)] = o
        if results is None:
            results = [np.empty((0,) + tuple(t.shape[1:]), t.dtype) for t in graph.outputs]
        return results[0] if len(results) == 1 else results
