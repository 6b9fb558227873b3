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

import itertools
import math
import signal
import threading
import types
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
from .data_adapters import PyDataset, get_adapter, is_array_data, split_batch
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


def _validation_epochs(freq):
    """``validation_freq`` as a test of a 1-based epoch number."""
    if isinstance(freq, (int, np.integer)) and not isinstance(freq, bool) and freq >= 1:
        return lambda e: e % int(freq) == 0
    if isinstance(freq, (list, tuple, set, range)) and all(
            isinstance(e, (int, np.integer)) and not isinstance(e, bool) for e in freq):
        chosen = {int(e) for e in freq}
        return lambda e: e in chosen
    raise fail("validation_freq", "a positive int or a list of epoch numbers", freq)


def _check_class_weight(class_weight):
    if class_weight is None:
        return None
    if not isinstance(class_weight, dict) or not all(
            isinstance(k, (int, np.integer)) and not isinstance(k, bool) and isinstance(
                v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)
            for k, v in class_weight.items()):
        raise fail("class_weight", "a dict {class index: weight}", class_weight, TypeError)
    return {int(k): float(v) for k, v in class_weight.items()}


def _sample_weights(sample_weight, y, class_weight):
    """Per-sample weights (N,) float64 from ``sample_weight`` or, by the class of each
    target (the argmax of one-hot targets, else the label), from ``class_weight``; None
    when neither is given."""
    if sample_weight is None and class_weight is None:
        return None
    if sample_weight is not None:
        if class_weight is not None:
            raise ValueError("You cannot specify `class_weight` and `sample_weight` at the "
                             "same time.")
        sw = np.asarray(sample_weight)
        if sw.dtype.kind not in "fiub":
            raise fail("sample_weight", "an array of numbers", sw, TypeError)
        sw = sw.astype(np.float64).reshape(len(sw), -1) if sw.ndim else sw
        if sw.ndim != 2 or sw.shape != (len(y), 1):
            raise ValueError(f"`sample_weight` must have shape ({len(y)},), one weight per "
                             f"sample. Received: sample_weight with shape "
                             f"{np.shape(sample_weight)}")
        return sw[:, 0]
    y = np.asarray(y)
    labels = np.argmax(y, axis=-1) if y.ndim > 1 and y.shape[-1] > 1 else np.rint(
        y.reshape(len(y), -1)[:, 0]).astype(np.int64)
    missing = sorted({int(c) for c in labels} - set(class_weight))
    if missing:
        raise ValueError(f"`class_weight` must give a weight to every class. Received: "
                         f"class_weight={class_weight}, and samples of class {missing}")
    return np.array([class_weight[int(c)] for c in labels], np.float64)


class _ArrayBatches:
    """An epoch's batches of arrays: shuffled with the global generator, into one
    reused buffer per input (full batches) instead of one per step."""

    exhausted = False

    def __init__(self, xs, y, batch_size, shuffle, sw=None, max_steps=None):
        self.xs, self.y, self.batch_size, self.shuffle = xs, y, batch_size, shuffle
        self.sw = sw
        self.n = len(xs[0])
        self.steps = -(-self.n // batch_size)
        if max_steps is not None:  # steps_per_epoch: the first batches of each epoch
            self.steps = min(self.steps, max_steps)
        self._bufs = None

    def epoch(self, epoch, rng):
        xs, y, bs, n = self.xs, self.y, self.batch_size, self.n
        order = rng.permutation(n) if self.shuffle else None
        for lo in range(0, min(n, self.steps * bs), bs):
            hi = min(n, lo + bs)
            if order is None:
                yield _rows(xs, lo, hi), y[lo:hi], None if self.sw is None else self.sw[lo:hi]
                continue
            idx = order[lo:hi]
            swb = None if self.sw is None else self.sw[idx]
            if hi - lo == bs:
                if self._bufs is None:
                    self._bufs = ([np.empty((bs,) + a.shape[1:], a.dtype) for a in xs],
                                  np.empty((bs,) + y.shape[1:], y.dtype))
                yield ([np.take(a, idx, axis=0, out=b) for a, b in zip(xs, self._bufs[0])],
                       np.take(y, idx, axis=0, out=self._bufs[1]), swb)
            else:
                yield [a[idx] for a in xs], y[idx], swb


class _SourceBatches:
    """An epoch's batches of a data source, checked as arrays are; an error names the
    batch."""

    def __init__(self, model, adapter, need_y=True, class_weight=None):
        self.model, self.adapter, self.need_y = model, adapter, need_y
        self.class_weight = class_weight

    @property
    def steps(self):
        return self.adapter.steps

    @property
    def exhausted(self):
        return self.adapter.exhausted

    def epoch(self, epoch, rng):
        for i, batch in enumerate(self.adapter.epoch(epoch, rng)):
            x, y, sw = split_batch(batch, i, self.need_y)
            try:
                if not self.need_y:
                    yield self.model._prepare_inputs(x), None, None
                    continue
                xs, yb = self.model._check_xy(x, y)
                yield xs, yb, _sample_weights(sw, yb, self.class_weight)
            except (ValueError, TypeError) as err:
                raise type(err)(f"Batch {i} of `{self.adapter.name}`: {err}") from err


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
        self._fit_callbacks: List[Any] = []
        self._fit_interrupted = False
        self._resume_epoch: Optional[int] = None
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

    def _weighted(self, sw, y, pred, grad, value_of):
        """Keras's weighted batch loss ``sum_i w_i l_i / N`` and its gradient (each
        sample's rows of ``grad`` scaled by ``w_i``); ``l_i = value_of(y_i, pred_i)``."""
        per = np.array([value_of(y[i:i + 1], pred[i:i + 1]) for i in range(len(sw))])
        value = float(np.dot(per, sw)) / len(sw)
        if grad is None:
            return value, None
        return value, grad * sw.reshape((-1,) + (1,) * (grad.ndim - 1)).astype(grad.dtype)

    def _loss_and_grads(self, xs, y, training=True, workspace=None, sw=None):
        """Loss (with regularization), the output, the trainable arrays and their
        gradients, for one batch; ``sw`` (N,), when given, weighs each sample's loss."""
        graph = self._run_graph(xs, training)
        self._single_output(graph)
        outs, tape = graph.forward(xs, training, workspace)
        out = outs[0]
        penalty = activity_loss(tape)
        fused = self._fused_loss_step(graph, tape[0])
        if fused is not None:
            logits = fused.op.logits(tape[1][fused.index])
            value, dz = self.loss.logits_value_and_grad(y, logits)
            if sw is not None:
                value, dz = self._weighted(
                    sw, y, logits, dz, lambda a, b: self.loss.logits_value_and_grad(a, b)[0])
            _, wg = graph.backward(tape, [None], input_grads=False, logits_grads={0: dz})
        else:
            value, d = self.loss.value_and_grad(y, out)
            if sw is not None:
                value, d = self._weighted(sw, y, out, d,
                                          lambda a, b: self.loss.value_and_grad(a, b)[0])
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

    def _train_step(self, xs, y, sw=None):
        """One update; returns this batch's loss, the output, and the step's loss.

        The step's loss is the batch loss, or under fastconv.distributed the loss over
        the batches of all ranks, which the optimizer's ``apply_step`` hook averages
        together with the gradients.
        """
        with self._train_lock:
            value, out, params, grads = self._loss_and_grads(xs, y, True, self._workspace, sw)
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

    def _batch_loss_and_output(self, xs, y, sw=None):
        """Inference-mode loss (without regularization; weighted by ``sw`` when given)
        and output of one batch."""
        graph = self._run_graph(xs)
        self._single_output(graph)
        fused = None
        if self.loss.fused_activation and not self.loss.from_logits:
            fused = self._fused_loss_step(graph, graph.plan())
        outs, tape = graph.forward(xs, False, None, tape=fused is not None)
        if fused is not None and tape[0].steps[fused.index] is fused:
            logits = fused.op.logits(tape[1][fused.index])
            value = self.loss.logits_value_and_grad(y, logits)[0]
            if sw is not None:
                value = self._weighted(sw, y, logits, None,
                                       lambda a, b: self.loss.logits_value_and_grad(a, b)[0])[0]
        else:
            value = self.loss.value_and_grad(y, outs[0])[0]
            if sw is not None:
                value = self._weighted(sw, y, outs[0], None,
                                       lambda a, b: self.loss.value_and_grad(a, b)[0])[0]
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
            validation_split: float = 0.0, validation_data: Any = None,
            shuffle: bool = True, class_weight: Any = None, sample_weight: Any = None,
            initial_epoch: int = 0, steps_per_epoch: Optional[int] = None,
            validation_steps: Optional[int] = None, validation_batch_size: Optional[int] = None,
            validation_freq: Any = 1, **kwargs: Any) -> _callbacks.History:
        """Train for ``epochs - initial_epoch`` epochs; returns the :class:`History`.

        Parameters follow Keras. ``x`` is an array, or a list (or a dict keyed by input
        names) of arrays for a model with several inputs, with targets ``y``; or a
        source of ``(x, y)`` batches: a ``keras.utils.PyDataset``, a generator or
        iterator, or an iterable such as ``image_dataset_from_directory``'s dataset
        (see :mod:`fastconv.data_adapters`; ``y`` must then be None).
        ``steps_per_epoch`` limits the batches taken from a source per epoch.
        ``validation_split`` holds out the last fraction of the samples (before
        shuffling; arrays only); ``validation_data`` is ``(x_val, y_val)`` or a source,
        evaluated every ``validation_freq`` epochs (an int, or the 1-based epochs in a
        list), for ``validation_steps`` batches of a source. Arrays are shuffled each
        epoch with fastconv's global generator, and so is a PyDataset's batch order.
        Ctrl-C stops after the current batch: callbacks get ``on_train_end``,
        ``model.history`` keeps the epochs so far, and KeyboardInterrupt is raised.
        ``nb_epoch`` (Keras 1) is accepted for ``epochs``, with a DeprecationWarning.
        """
        self._require_compiled()
        if "nb_epoch" in kwargs:
            warnings.warn("`nb_epoch` is Keras 1's name for the number of epochs; use "
                          "`epochs` instead.", DeprecationWarning, stacklevel=2)
            if epochs != 1:
                raise TypeError("fit got both `epochs` and its Keras 1 name `nb_epoch`")
            epochs = kwargs.pop("nb_epoch")
        class_weight = _check_class_weight(class_weight)
        if kwargs:
            raise TypeError(f"fit got unexpected keyword argument(s) {sorted(kwargs)}")
        batch_size = 32 if batch_size is None else _check_int("batch_size", batch_size, 1)
        val_batch = batch_size if validation_batch_size is None else _check_int(
            "validation_batch_size", validation_batch_size, 1)
        epochs = _check_int("epochs", epochs, 0)
        initial_epoch = _check_int("initial_epoch", initial_epoch, 0)
        verbose = _verbose(verbose)
        validate_on = _validation_epochs(validation_freq)
        if isinstance(validation_split, bool) or not isinstance(
                validation_split, (int, float, np.floating)) or not 0 <= validation_split < 1:
            raise fail("validation_split", "a number in [0, 1)", validation_split)
        if x is None:
            raise fail("x", "an array or a source of batches", None, TypeError)
        val = None
        if validation_data is not None:
            if isinstance(validation_data, (tuple, list)) and len(validation_data) in (2, 3) \
                    and all(is_array_data(v) for v in validation_data if v is not None):
                vx, vy = self._check_xy(validation_data[0], validation_data[1],
                                        "validation_data[0]", "validation_data[1]")
                vsw = validation_data[2] if len(validation_data) == 3 else None
                val = (vx, vy, _sample_weights(vsw, vy, None))
            elif isinstance(validation_data, (tuple, list)) and not all(
                    is_array_data(v) for v in validation_data) and len(validation_data) in (2, 3):
                val = get_adapter(validation_data, validation_steps, False, "validation_data")
            elif is_array_data(validation_data):
                raise fail("validation_data", "a tuple (x_val, y_val) or a source of batches",
                           type(validation_data).__name__, TypeError)
            else:
                val = get_adapter(validation_data, validation_steps, False, "validation_data")
        world = _distributed._world()
        if world is not None and not hasattr(self.optimizer, "apply_step"):
            raise fail("optimizer", f"a fastconv.distributed.DistributedOptimizer when "
                       f"training on {world.Get_size()} MPI ranks (compile with "
                       "optimizer=DistributedOptimizer(...))", self.optimizer, TypeError)
        if is_array_data(x):
            if y is None:
                raise fail("y", "an array", None, TypeError)
            if steps_per_epoch is not None:
                steps_per_epoch = _check_int("steps_per_epoch", steps_per_epoch, 1)
            xs, y = self._check_xy(x, y)
            sw = _sample_weights(sample_weight, y, class_weight)
            if val is None and validation_split > 0:
                total = len(xs[0])
                n_val = int(math.floor(total * validation_split))
                if n_val == 0 or n_val == total:
                    raise ValueError(f"`validation_split`={validation_split} leaves {n_val} of "
                                     f"{total} samples for validation; it must leave at least "
                                     "one sample on each side.")
                val = ([a[-n_val:] for a in xs], y[-n_val:],
                       None if sw is None else sw[-n_val:])
                xs, y = [a[:-n_val] for a in xs], y[:-n_val]
                sw = None if sw is None else sw[:-n_val]
            n = len(xs[0])
            if n == 0:
                raise fail("x", "at least one sample", x)
            source = _ArrayBatches(xs, y, batch_size, shuffle, sw, steps_per_epoch)
            samples = n
        else:
            kind = ("generator" if isinstance(x, types.GeneratorType) else
                    "PyDataset" if isinstance(x, PyDataset) else "dataset")
            for arg, value, what in (("y", y, "the targets"),
                                     ("sample_weight", sample_weight, "the sample weights")):
                if value is not None:  # Keras's words
                    raise ValueError(f"When providing `x` as a {kind}, `{arg}` should not be "
                                     f"passed. Instead, {what} should be included as part of "
                                     f"the {kind}.")
            if class_weight is not None and kind == "generator":
                raise ValueError("Argument `class_weight` is not supported for Python "
                                 f"generator inputs. Received: class_weight={class_weight}")
            if validation_split:
                raise ValueError("`validation_split` is only supported for arrays, not for a "
                                 "dataset, generator or PyDataset; pass `validation_data`")
            source = _SourceBatches(self, get_adapter(x, steps_per_epoch, shuffle, "x"),
                                    class_weight=class_weight)
            samples = None
        steps = local_steps = source.steps
        if world is not None:
            if steps is None:
                raise ValueError("Under fastconv.distributed, fit needs the number of batches "
                                 "per epoch of a generator: pass steps_per_epoch")
            # Every rank must join every allreduce: run as many steps as the largest shard.
            steps = world.allreduce(local_steps, op=_distributed._MPI.MAX)
            if not _distributed.is_root():
                verbose = 0
        history = _callbacks.History()
        # History last, as in Keras: it records what the other callbacks added to the
        # logs (ReduceLROnPlateau's learning_rate).
        cbs = _callbacks.CallbackList(list(callbacks or []) + [history], self,
                                      {"epochs": epochs, "steps": steps, "verbose": verbose,
                                       "batch_size": batch_size, "samples": samples})
        self.history = history
        self.stop_training = False
        self._fit_callbacks = cbs.callbacks   # BackupAndRestore saves the others' state
        self._fit_interrupted = True          # until the epochs ran to their end
        self._resume_epoch = None
        with _Interrupt() as interrupt:
            cbs.on_train_begin({})
            if self._resume_epoch is not None:  # BackupAndRestore found a backup
                initial_epoch = max(initial_epoch, self._resume_epoch)
            try:
                self._fit_epochs(source, val, val_batch, epochs, initial_epoch, steps,
                                 local_steps, world, verbose, cbs, interrupt, validate_on)
                # use_ema: the weights take their moving averages (Keras does it here)
                self.optimizer.finalize_variable_values(
                    [arr for _, _, arr in self._train_items()])
                self._fit_interrupted = interrupt.hit
            finally:
                cbs.on_train_end({})
                self._fit_callbacks = []
        if interrupt.hit:
            raise KeyboardInterrupt
        return history

    def _fit_epochs(self, source, val, val_batch, epochs, initial_epoch, steps, local_steps,
                    world, verbose, cbs, interrupt, validate_on):
        rng = _random.get_rng()
        nan_reported = False
        for epoch in range(initial_epoch, epochs):
            self._current_epoch = epoch
            cbs.on_epoch_begin(epoch, {})
            if verbose:
                print(f"Epoch {epoch + 1}/{epochs}")
            bar = Progbar(steps, verbose)
            sums: Dict[str, float] = {"loss": 0.0}
            for name, _ in self.compiled_metrics:
                sums[name] = 0.0
            seen = 0
            logs: Dict[str, float] = {}
            step = -1
            batches = source.epoch(epoch, rng)
            for step in range(steps) if steps is not None else itertools.count():
                batch = next(batches, None) if local_steps is None or step < local_steps \
                    else None
                if batch is None and (local_steps is None or step < local_steps):
                    step -= 1
                    break  # a source ran out (it said so), or a generator's one pass ended
                if batch is None:  # this rank's shard has no batch left in this step
                    cbs.on_train_batch_begin(step, {})
                    value = self._empty_step()
                    cbs.on_train_batch_end(step, {"loss": value})
                    if self.stop_training or interrupt.hit:
                        break
                    continue
                xb, yb, swb = batch
                cbs.on_train_batch_begin(step, {})
                value, out, step_loss = self._train_step(xb, yb, swb)
                m = len(yb)
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
            batches.close()
            if interrupt.hit:
                return
            if source.exhausted and not seen:
                self.stop_training = True
                break
            if seen:
                logs = {k: v / seen for k, v in sums.items()}
            if world is not None:
                logs = _distributed.allreduce_mean(
                    {k: v / seen for k, v in sums.items()} if seen else dict.fromkeys(sums, 0.0),
                    seen)
            if val is not None and validate_on(epoch + 1):
                for k, v in self._evaluate_data(val, val_batch).items():
                    logs["val_" + k] = v
            bar.update(seen and step + 1, logs, final=True)
            cbs.on_epoch_end(epoch, logs)
            cbs._after_epoch_end(epoch)
            if source.exhausted:
                self.stop_training = True
            if self.stop_training:
                break

    def _evaluate_data(self, val, batch_size):
        """Mean loss and metrics over validation arrays ``(xs, y, sw)`` or a data adapter."""
        if isinstance(val, tuple):
            return self._evaluate_arrays(val[0], val[1], batch_size, val[2])
        return self._evaluate_batches(_SourceBatches(self, val).epoch(0, None), val.name)

    def _evaluate_arrays(self, xs, y, batch_size, sw=None):
        batches = _ArrayBatches(xs, y, batch_size, False, sw).epoch(0, None)
        return self._evaluate_batches(batches, "x")

    def _evaluate_batches(self, batches, name):
        """Loss (with regularization) and metrics, averaged over the samples of
        ``batches`` (``(xs, y, sample_weight)`` each) and, under MPI, over all ranks."""
        sums = {"loss": 0.0}
        for metric, _ in self.compiled_metrics:
            sums[metric] = 0.0
        n = 0
        for xb, yb, swb in batches:
            value, out = self._batch_loss_and_output(xb, yb, swb)
            m = len(yb)
            sums["loss"] += value * m
            for metric, fn in self.compiled_metrics:
                sums[metric] += fn(yb, out) * m
            n += m
        if n == 0:
            raise ValueError(f"`{name}` gave no batch to evaluate")
        logs = _distributed.allreduce_mean({k: v / n for k, v in sums.items()}, n)
        logs["loss"] += self._penalty()
        return logs

    def evaluate(self, x: Any = None, y: Any = None, batch_size: Optional[int] = None,
                 verbose: Union[int, str] = "auto", sample_weight: Any = None,
                 return_dict: bool = False, **kwargs: Any):
        """Loss (with regularization) and metrics in inference mode.

        Returns the loss alone when there are no metrics, else ``[loss, metric, ...]``,
        or a dict with ``return_dict=True``. Under fastconv.distributed, ``x``/``y`` are
        this rank's shard and the result, the mean over all shards, is returned on every
        rank.
        """
        self._require_compiled()
        steps = kwargs.pop("steps", None)
        kwargs.pop("callbacks", None)
        if kwargs:
            raise TypeError(f"evaluate got unexpected keyword argument(s) {sorted(kwargs)}")
        batch_size = 32 if batch_size is None else _check_int("batch_size", batch_size, 1)
        verbose = _verbose(verbose)
        if not _distributed.is_root():
            verbose = 0
        if x is not None and not is_array_data(x):
            if y is not None:
                raise ValueError("When providing `x` as a dataset, `y` should not be passed. "
                                 "Instead, the targets should be included as part of the "
                                 "dataset.")
            source = _SourceBatches(self, get_adapter(x, steps, False, "x"))
            bar = Progbar(source.steps, verbose)
            logs = self._evaluate_batches(source.epoch(0, None), "x")
            bar.update(source.steps or 0, logs, final=True)
            return self._format_result(logs, return_dict)
        xs, y = self._check_xy(x, y)
        if len(xs[0]) == 0:
            raise fail("x", "at least one sample", x)
        bar = Progbar(-(-len(xs[0]) // batch_size), verbose)
        logs = self._evaluate_arrays(xs, y, batch_size, _sample_weights(sample_weight, y, None))
        bar.update(bar.target, logs, final=True)
        return self._format_result(logs, return_dict)

    def predict(self, x: Any, batch_size: Optional[int] = None,
                verbose: Union[int, str] = 0, **kwargs: Any) -> Any:
        """The model's output for ``x``, in batches, in inference mode (no Dropout): an
        array, or a list of arrays for a model with several outputs.

        Safe to call from several threads at once, on one model or several. Under
        fastconv.distributed, ``x`` is this rank's shard: the root returns the outputs of
        all shards in :func:`fastconv.distributed.shard`'s order, the other ranks None.
        """
        steps = kwargs.pop("steps", None)
        kwargs.pop("callbacks", None)
        if kwargs:
            raise TypeError(f"predict got unexpected keyword argument(s) {sorted(kwargs)}")
        batch_size = 32 if batch_size is None else _check_int("batch_size", batch_size, 1)
        _verbose(verbose)
        if not is_array_data(x):
            outs = [self._predict_arrays(xb, max(1, len(xb[0]))) for xb, _, _ in
                    _SourceBatches(self, get_adapter(x, steps, False, "x"), False).epoch(0, None)]
            if not outs:
                raise ValueError("`x` gave no batch to predict")
            if isinstance(outs[0], list):
                result = [np.concatenate(parts) for parts in zip(*outs)]
            else:
                result = np.concatenate(outs)
            if _distributed._world() is not None:
                return _distributed._gather_rows(result)
            return result
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
