"""The Keras ``Sequential`` model on fastconv's layers (Keras: ``keras.models``).

A training step is ``forward(x, training=True)``, the loss and its gradient, then each
layer's ``backward`` in reverse and one optimizer update. When the last layer ends in
softmax (sigmoid) and the loss is a categorical (binary) cross-entropy on
probabilities, the two are fused: the gradient ``(p - y) / N`` goes straight to the
logits, which is both cheaper and exact where ``p`` underflows.

``forward``/``backward`` and :meth:`Sequential.intermediate_outputs` are public, for
tools that need gradients with respect to the input or the activations of chosen
layers (saliency maps, feature visualisation).
"""

from __future__ import annotations

import math
import os
import warnings
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from . import _random
from . import activations as _activations
from . import callbacks as _callbacks
from . import distributed as _distributed
from . import layers as _layers
from . import losses as _losses
from . import metrics as _metrics
from . import optimizers as _optimizers
from ._progress import Progbar
from .backends._args import fail
from .layers import InputLayer, Layer, _ConvReLUMaxPool, _fmt, _unique_name

__all__ = ["Sequential", "save_model", "load_model"]

#: Whether ``forward``/``backward`` (and so ``fit``, ``evaluate``, ``predict``) run a
#: ``Conv2D(activation='relu')`` followed by a ``MaxPooling2D`` (channels-last, strides
#: equal to the pool size, 'valid') as one fused op. Set to False to run every layer
#: on its own, e.g. to compare the two.
FUSE_LAYERS = True


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


class Sequential:
    """A linear stack of layers.

    Parameters
    ----------
    layers : list of Layer, optional
        Added in order, as by :meth:`add`.
    name : str, optional
    dtype : 'float32' (default) or 'float64'
        The dtype of every weight and activation; float64 is for gradient checks.

    Examples
    --------
    >>> from fastconv.models import Sequential
    >>> from fastconv.layers import Conv2D, MaxPooling2D, Flatten, Dense
    >>> model = Sequential([Conv2D(8, 3, activation='relu', input_shape=(28, 28, 1)),
    ...                     MaxPooling2D(), Flatten(), Dense(10, activation='softmax')])
    >>> model.output_shape
    (None, 10)
    """

    def __init__(self, layers: Optional[Sequence[Layer]] = None, name: Optional[str] = None,
                 dtype: Any = None):
        self.name = name or _unique_name("sequential")
        self.dtype = np.dtype(dtype if dtype is not None else np.float32)
        if self.dtype not in (np.float32, np.float64):
            raise fail("dtype", "'float32' or 'float64'", dtype, TypeError)
        self._layers: List[Layer] = []
        self._plan: Optional[tuple] = None
        self._items_cache: Optional[tuple] = None
        self._input_shape: Optional[Tuple] = None
        self._output_shape: Optional[Tuple] = None
        self.optimizer: Optional[_optimizers.Optimizer] = None
        self.loss: Optional[_losses.Loss] = None
        self.compiled_metrics: List[Tuple[str, Any]] = []
        self._metric_ids: List[Any] = []
        self.stop_training = False
        self.history: Optional[_callbacks.History] = None
        if layers is not None:
            if isinstance(layers, Layer):
                layers = [layers]
            for layer in layers:
                self.add(layer)

    # -- construction -----------------------------------------------------------------
    def add(self, layer: Layer) -> None:
        """Append ``layer``; if the input shape is known, build it now (shape errors here)."""
        if not isinstance(layer, Layer):
            raise fail("layer", "a fastconv.layers.Layer instance", layer, TypeError)
        if any(existing is layer for existing in self._layers):
            raise ValueError(f"Layer '{layer.name}' is already in the model.")
        if any(existing.name == layer.name for existing in self._layers):
            raise ValueError(f"The model already has a layer named '{layer.name}'; layer "
                             "names must be unique.")
        if isinstance(layer, InputLayer):
            if self._layers or self._input_shape is not None:
                raise ValueError("An Input layer can only come first in a Sequential model.")
            self._input_shape = tuple(layer._batch_input_shape)
            self._output_shape = self._input_shape
            if layer.dtype is not None:
                self.dtype = layer.dtype
            return
        if not self._layers and self._input_shape is None and \
                layer._batch_input_shape is not None:
            self._input_shape = tuple(layer._batch_input_shape)
            self._output_shape = self._input_shape
        elif self._layers and layer._batch_input_shape is not None:
            warnings.warn(f"input_shape given to layer '{layer.name}', which is not the first "
                          "layer, is ignored.", UserWarning, stacklevel=2)
        if self._output_shape is not None:
            self._output_shape = layer.build_for(self._output_shape, self.dtype)
        self._layers.append(layer)
        self._plan = None
        self._items_cache = None

    def build(self, input_shape: Optional[Sequence[Optional[int]]] = None) -> None:
        """Build every layer for ``input_shape`` (batch axis included)."""
        if input_shape is None:
            input_shape = self._input_shape
        if input_shape is None:
            raise ValueError("The model's input shape is unknown: give `input_shape` to the "
                             "first layer, start with Input(shape=...), or call build().")
        shape = tuple(input_shape)
        self._input_shape = shape
        for layer in self._layers:
            shape = layer.build_for(shape, self.dtype)
        self._output_shape = shape

    @property
    def built(self) -> bool:
        return self._input_shape is not None and all(la.built for la in self._layers)

    @property
    def layers(self) -> List[Layer]:
        return list(self._layers)

    @property
    def input_shape(self) -> Tuple:
        self._require_built()
        return self._input_shape

    @property
    def output_shape(self) -> Tuple:
        self._require_built()
        return self._output_shape

    def _require_built(self):
        if not self.built:
            raise ValueError(
                f"Model '{self.name}' has not been built yet, so its shapes are unknown. Give "
                "`input_shape` to the first layer, start with Input(shape=...), call "
                "build(input_shape), or fit/predict on data first."
            )

    def get_layer(self, name: Optional[str] = None, index: Optional[int] = None) -> Layer:
        if index is not None:
            return self._layers[index]
        for layer in self._layers:
            if layer.name == name:
                return layer
        raise ValueError(f"No layer named {name!r}; layers: {[la.name for la in self._layers]}")

    # -- compile ----------------------------------------------------------------------
    def compile(self, optimizer: Any = "rmsprop", loss: Any = None,
                metrics: Optional[Sequence[Any]] = None, **kwargs: Any) -> None:
        """Choose the optimizer, the loss and the metrics, as in Keras."""
        if kwargs:
            raise TypeError(f"compile got unexpected keyword argument(s) {sorted(kwargs)}")
        self.optimizer = _optimizers.get(optimizer)
        if loss is None:
            raise fail("loss", "a loss name or fastconv.losses.Loss", loss, TypeError)
        self.loss = _losses.get(loss)
        if metrics is None:
            metrics = []
        elif isinstance(metrics, (str,)) or callable(metrics):
            metrics = [metrics]
        self._metric_ids = list(metrics)
        self._resolve_metrics()

    def _resolve_metrics(self):
        out = self._output_shape or ()
        self.compiled_metrics = [_metrics.get(m, self.loss, out) for m in self._metric_ids]

    def _require_compiled(self):
        if self.optimizer is None or self.loss is None:
            raise RuntimeError("You must compile the model before training or evaluating it: "
                               "model.compile(optimizer=..., loss=...).")

    def _fused(self) -> bool:
        if self.loss is None or self.loss.from_logits or not self._layers:
            return False
        act = getattr(self._layers[-1], "activation", None)
        if self.loss.fused_activation == "softmax":
            return isinstance(act, _activations.SoftmaxFunction) and act.axis == -1
        if self.loss.fused_activation == "sigmoid":
            return act is _activations.sigmoid
        return False

    # -- forward / backward -----------------------------------------------------------
    def _prepare_x(self, x: Any, name: str = "x") -> np.ndarray:
        arr = np.asarray(x)
        if arr.dtype.kind not in "fiub":
            raise fail(name, "an array of numbers", arr, TypeError)
        if arr.ndim == 0:
            raise fail(name, "an array with a batch axis", arr)
        arr = np.ascontiguousarray(arr, dtype=self.dtype)
        if self._input_shape is None:
            self.build((None,) + arr.shape[1:])
            self._resolve_metrics()
        elif not self.built:
            self.build()
        expected = self._input_shape
        ok = arr.shape[1:] == expected[1:] or (len(arr.shape) == len(expected) and all(
            e is None or e == a for e, a in zip(expected[1:], arr.shape[1:])))
        if not ok:
            hint = ""
            if len(arr.shape) == len(expected) - 1 and expected[-1] == 1:
                hint = " Add the channel axis: x = x[..., None] (or x.reshape(-1, ..., 1))."
            raise ValueError(
                f"`{name}` must have shape {_fmt(expected)} to fit model '{self.name}'. "
                f"Received: {name} with shape {arr.shape}.{hint}"
            )
        return arr

    def _steps(self) -> list:
        """The layers in order, with each fusable conv + pool pair as one
        :class:`~fastconv.layers._ConvReLUMaxPool` step (see :data:`FUSE_LAYERS`)."""
        if self._plan is not None and not all(
                _ConvReLUMaxPool.fits(step.conv, step.pool) for step in self._plan[1]
                if isinstance(step, _ConvReLUMaxPool)):
            self._plan = None  # a fused layer was changed (activation, padding, ...)
        if self._plan is None or self._plan[0] != FUSE_LAYERS:
            steps, i = [], 0
            while i < len(self._layers):
                layer = self._layers[i]
                if FUSE_LAYERS and i + 1 < len(self._layers) and \
                        _ConvReLUMaxPool.fits(layer, self._layers[i + 1]):
                    steps.append(_ConvReLUMaxPool(layer, self._layers[i + 1]))
                    i += 2
                else:
                    steps.append(layer)
                    i += 1
            self._plan = (FUSE_LAYERS, steps)
        return self._plan[1]

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        """Run every layer on ``x`` (already of the model's dtype and input shape)."""
        for step in self._steps():
            x = step.forward(x, training)
        return x

    def backward(self, dout: np.ndarray) -> np.ndarray:
        """Backpropagate ``dout`` (d objective / d output) after :meth:`forward`.

        Stores every layer's parameter gradients and returns d objective / d input,
        of the input's shape. Example, a saliency map of class ``k``::

            out = model.forward(x, training=False)
            g = np.zeros_like(out); g[:, k] = 1
            dx = model.backward(g)
        """
        d = np.asarray(dout, dtype=self.dtype)
        for step in reversed(self._steps()):
            d = step.backward(d)
        return d

    def intermediate_outputs(self, x: Any, layers: Sequence[Union[str, int, Layer]],
                             training: bool = False) -> List[np.ndarray]:
        """The outputs of chosen ``layers`` (names, indices or objects) for input ``x``.

        One forward pass, stopping after the last layer asked for. Returns a list in the
        order asked; arrays are the layers' own outputs (do not modify them in place).
        """
        x = self._prepare_x(x)
        if isinstance(layers, (str, int, Layer)):
            layers = [layers]
        index = []
        for ref in layers:
            if isinstance(ref, Layer):
                pos = [i for i, la in enumerate(self._layers) if la is ref]
            elif isinstance(ref, str):
                pos = [i for i, la in enumerate(self._layers) if la.name == ref]
            elif isinstance(ref, (int, np.integer)) and not isinstance(ref, bool) and \
                    -len(self._layers) <= ref < len(self._layers):
                pos = [int(ref) % len(self._layers)]
            else:
                pos = []
            if not pos:
                raise fail("layers", f"names, indices or layers of this model "
                           f"({[la.name for la in self._layers]})", ref)
            index.append(pos[0])
        wanted = set(index)
        outputs = {}
        for i, layer in enumerate(self._layers[:max(index) + 1]):
            x = layer.forward(x, training)
            if i in wanted:
                outputs[i] = x
        return [outputs[i] for i in index]

    def __call__(self, x: Any, training: bool = False) -> np.ndarray:
        return self.forward(self._prepare_x(x), training)

    # -- weights ----------------------------------------------------------------------
    def _train_items(self):
        """``(layer, name, array)`` of every trainable weight, in Keras's order.

        Asked for on every step, so kept between steps and rebuilt when a layer's
        ``trainable`` flag changes or a weight array is replaced.
        """
        layers = self._layers
        key = tuple([layer.trainable for layer in layers])
        cached = self._items_cache
        if cached is not None and cached[0] == key and cached[1] == len(layers) and all(
                getattr(layer, name) is arr for layer, name, arr in cached[2]):
            return cached[2]
        items = [(layer, name, arr) for layer in layers
                 for name, arr in layer.trainable_items()]
        self._items_cache = (key, len(layers), items)
        return items

    @property
    def weights(self) -> List[np.ndarray]:
        return [w for layer in self._layers for w in layer.weights]

    @property
    def trainable_weights(self) -> List[np.ndarray]:
        return [w for layer in self._layers for w in layer.trainable_weights]

    @property
    def non_trainable_weights(self) -> List[np.ndarray]:
        return [w for layer in self._layers for w in layer.non_trainable_weights]

    def get_weights(self) -> List[np.ndarray]:
        """Copies of every weight, layer by layer, in Keras's order."""
        return [w.copy() for w in self.weights]

    def set_weights(self, weights: Sequence[Any]) -> None:
        """Load ``weights`` (as from ``get_weights``, or from a Keras model of the same
        architecture) into the model; counts and shapes are checked before any change."""
        self._require_built()
        weights = list(weights)
        mine = self.weights
        if len(weights) != len(mine):
            raise ValueError(f"Model '{self.name}' has {len(mine)} weight arrays but "
                             f"{len(weights)} were given.")
        pos = 0
        for layer in self._layers:
            n = len(layer.weights)
            for name, w, new in zip(layer._weight_names, layer.weights, weights[pos:pos + n]):
                if np.shape(new) != w.shape:
                    raise ValueError(f"Weight {layer.name}.{name} must have shape {w.shape}. "
                                     f"Received: an array of shape {np.shape(new)}")
            pos += n
        pos = 0
        for layer in self._layers:
            n = len(layer.weights)
            layer.set_weights(weights[pos:pos + n])
            pos += n

    def count_params(self) -> int:
        self._require_built()
        return sum(layer.count_params() for layer in self._layers)

    def _penalty(self) -> float:
        total = 0.0
        for layer in self._layers:
            for name, reg in layer.regularizers.items():
                total += reg(getattr(layer, name))
        return total

    # -- one step ---------------------------------------------------------------------
    def _loss_and_backward(self, x, y, training=True):
        steps = self._steps()
        out = x
        for step in steps:
            out = step.forward(out, training)
        last = self._layers[-1]
        if self._fused():
            # The last layer (softmax/sigmoid) is never part of a fused step.
            value, dz = self.loss.logits_value_and_grad(y, last._preact_external())
            d = last._backward_pre(dz)
            rest = steps[-2::-1]
        else:
            value, d = self.loss.value_and_grad(y, out)
            rest = steps[::-1]
        items = self._train_items()
        first = items[0][0] if items else None  # the first layer with trainable weights
        for step in rest:
            if step is first or first in getattr(step, "layers", ()):
                # Nothing needs the gradient of the first weighted layer's input: let
                # layers that can (Conv2D, Dense) skip it, and stop there.
                saved = step.input_grad
                step.input_grad = False
                try:
                    step.backward(d)
                finally:
                    step.input_grad = saved
                break
            d = step.backward(d)
        grads = [layer.grads[name] for layer, name, _ in items]
        for (layer, name, arr), g in zip(items, grads):
            if layer.regularizers:
                reg = layer.regularizers.get(name)
                if reg is not None:
                    value += reg(arr)
                    g += reg.gradient(arr)
        return value, out, [arr for _, _, arr in items], grads

    def _train_step(self, x, y):
        """One update; returns this batch's loss, the output, and the step's loss.

        The step's loss is the batch loss, or under fastconv.distributed the loss over
        the batches of all ranks, which the optimizer's ``apply_step`` hook averages
        together with the gradients.
        """
        state = _layers._step
        saved = state.step_buffers
        state.step_buffers = True  # see fastconv.layers._kept
        try:
            value, out, params, grads = self._loss_and_backward(x, y)
        finally:
            state.step_buffers = saved
        apply_step = getattr(self.optimizer, "apply_step", None)
        if apply_step is None:
            self.optimizer.apply(params, grads)
            return value, out, value
        return value, out, apply_step(params, grads, len(x), value)

    def _empty_step(self):
        """Take part in a distributed step with no samples (this rank's shard ran out)."""
        items = self._train_items()
        return self.optimizer.apply_step([arr for _, _, arr in items],
                                         [np.zeros_like(arr) for _, _, arr in items], 0, 0.0)

    def _batch_loss(self, y, out):
        if self._fused():
            return self.loss.logits_value_and_grad(y, self._layers[-1]._preact_external())[0]
        return self.loss.value_and_grad(y, out)[0]

    def train_on_batch(self, x: Any, y: Any, return_dict: bool = False):
        """One optimizer step on one batch; returns its loss (and metrics), as Keras."""
        self._require_compiled()
        x = self._prepare_x(x)
        y = self.loss.prepare_targets(y, self._output_shape)
        value, out, _ = self._train_step(x, y)
        logs = {"loss": value}
        for name, fn in self.compiled_metrics:
            logs[name] = fn(y, out)
        return self._format_result(logs, return_dict)

    def _format_result(self, logs, return_dict):
        if return_dict:
            return logs
        values = list(logs.values())
        return values[0] if len(values) == 1 else values

    # -- fit / evaluate / predict -----------------------------------------------------
    def _check_xy(self, x, y, name_x="x", name_y="y"):
        x = self._prepare_x(x, name_x)
        y = self.loss.prepare_targets(y, self._output_shape)
        if len(y) != len(x):
            raise ValueError(f"`{name_x}` and `{name_y}` must have the same number of samples. "
                             f"Received: {len(x)} and {len(y)}")
        bad = ~np.isfinite(x.reshape(len(x), -1)).all(axis=1)
        if bad.any():
            raise ValueError(
                f"`{name_x}` contains NaN or inf in {int(bad.sum())} sample(s), the first at "
                f"index {int(np.argmax(bad))}; fix or drop them before training."
            )
        return x, y

    def fit(self, x: Any = None, y: Any = None, batch_size: Optional[int] = None,
            epochs: int = 1, verbose: Union[int, str] = "auto",
            callbacks: Optional[Sequence[_callbacks.Callback]] = None,
            validation_split: float = 0.0, validation_data: Optional[Tuple] = None,
            shuffle: bool = True, initial_epoch: int = 0) -> _callbacks.History:
        """Train for ``epochs - initial_epoch`` epochs; returns the :class:`History`.

        Parameters follow Keras. ``validation_split`` holds out the last fraction of
        ``x``/``y`` (before shuffling); ``validation_data=(x_val, y_val)`` overrides it.
        Batches are shuffled each epoch with fastconv's global generator.
        """
        self._require_compiled()
        batch_size = 32 if batch_size is None else _check_int("batch_size", batch_size, 1)
        epochs = _check_int("epochs", epochs, 0)
        initial_epoch = _check_int("initial_epoch", initial_epoch, 0)
        verbose = _verbose(verbose)
        if isinstance(validation_split, bool) or not isinstance(
                validation_split, (int, float, np.floating)) or not 0 <= validation_split < 1:
            raise fail("validation_split", "a number in [0, 1)", validation_split)
        if x is None or y is None:
            raise fail("x" if x is None else "y", "an array", None, TypeError)
        x, y = self._check_xy(x, y)
        val = None
        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (
                    2, 3):
                raise fail("validation_data", "a tuple (x_val, y_val)",
                           type(validation_data).__name__, TypeError)
            val = self._check_xy(validation_data[0], validation_data[1], "validation_data[0]",
                                 "validation_data[1]")
        elif validation_split > 0:
            n_val = int(math.floor(len(x) * validation_split))
            if n_val == 0 or n_val == len(x):
                raise ValueError(f"`validation_split`={validation_split} leaves {n_val} of "
                                 f"{len(x)} samples for validation; it must leave at least "
                                 "one sample on each side.")
            val = (x[-n_val:], y[-n_val:])
            x, y = x[:-n_val], y[:-n_val]
        n = len(x)
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
        rng = _random.get_rng()
        xbuf = ybuf = None
        nan_reported = False
        cbs.on_train_begin({})
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
            for step in range(steps):
                if step >= local_steps:
                    cbs.on_train_batch_begin(step, {})
                    value = self._empty_step()
                    cbs.on_train_batch_end(step, {"loss": value})
                    if self.stop_training:
                        break
                    continue
                lo, hi = step * batch_size, min(n, (step + 1) * batch_size)
                if order is None:
                    xb, yb = x[lo:hi], y[lo:hi]
                else:
                    idx = order[lo:hi]
                    if hi - lo == batch_size:
                        if xbuf is None:
                            # One batch buffer for the whole fit instead of one per step.
                            xbuf = np.empty((batch_size,) + x.shape[1:], x.dtype)
                            ybuf = np.empty((batch_size,) + y.shape[1:], y.dtype)
                        xb = np.take(x, idx, axis=0, out=xbuf)
                        yb = np.take(y, idx, axis=0, out=ybuf)
                    else:
                        xb, yb = x[idx], y[idx]
                cbs.on_train_batch_begin(step, {})
                value, out, step_loss = self._train_step(xb, yb)
                m = hi - lo
                if not math.isfinite(value) and not nan_reported:
                    nan_reported = True
                    warnings.warn(f"The loss became {value} at epoch {epoch + 1}, batch {step} "
                                  "(0-based); lower the learning rate or check the data. "
                                  "TerminateOnNaN() stops training when this happens.",
                                  RuntimeWarning, stacklevel=2)
                sums["loss"] += value * m
                for name, fn in self.compiled_metrics:
                    sums[name] += fn(yb, out) * m
                seen += m
                cbs.on_train_batch_end(step, {"loss": step_loss})
                if bar.dynamic:  # only a live bar shows the running means
                    bar.update(step + 1, {k: v / seen for k, v in sums.items()}, final=False)
                if self.stop_training:
                    break
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
        cbs.on_train_end({})
        return history

    def _evaluate_arrays(self, x, y, batch_size):
        n = len(x)
        sums = {"loss": 0.0}
        for name, _ in self.compiled_metrics:
            sums[name] = 0.0
        for lo in range(0, n, batch_size):
            xb, yb = x[lo:lo + batch_size], y[lo:lo + batch_size]
            out = self.forward(xb, training=False)
            m = len(xb)
            sums["loss"] += self._batch_loss(yb, out) * m
            for name, fn in self.compiled_metrics:
                sums[name] += fn(yb, out) * m
        logs = _distributed.allreduce_mean({k: v / n for k, v in sums.items()}, n)
        logs["loss"] += self._penalty()
        return logs

    def evaluate(self, x: Any = None, y: Any = None, batch_size: Optional[int] = None,
                 verbose: Union[int, str] = "auto", return_dict: bool = False):
        """Loss (with regularization) and metrics in inference mode.

        Returns the loss alone when there are no metrics, else ``[loss, metric, ...]``,
        or a dict with ``return_dict=True``. Under fastconv.distributed, ``x``/``y`` are
        this rank's shard and the result, the mean over all shards, is returned on every
        rank.
        """
        self._require_compiled()
        batch_size = 32 if batch_size is None else _check_int("batch_size", batch_size, 1)
        verbose = _verbose(verbose)
        if not _distributed.is_root():
            verbose = 0
        x, y = self._check_xy(x, y)
        if len(x) == 0:
            raise fail("x", "at least one sample", x)
        bar = Progbar(-(-len(x) // batch_size), verbose)
        logs = self._evaluate_arrays(x, y, batch_size)
        bar.update(bar.target, logs, final=True)
        return self._format_result(logs, return_dict)

    def predict(self, x: Any, batch_size: Optional[int] = None,
                verbose: Union[int, str] = 0) -> np.ndarray:
        """The model's output for ``x``, in batches, in inference mode (no Dropout).

        Under fastconv.distributed, ``x`` is this rank's shard: the root returns the
        outputs of all shards concatenated in rank order, the other ranks None.
        """
        batch_size = 32 if batch_size is None else _check_int("batch_size", batch_size, 1)
        _verbose(verbose)
        x = self._prepare_x(x)
        if _distributed._world() is not None:
            return _distributed._gather_rows(self._predict_arrays(x, batch_size))
        return self._predict_arrays(x, batch_size)

    def _predict_arrays(self, x, batch_size):
        result = None
        for lo in range(0, len(x), batch_size):
            out = self.forward(x[lo:lo + batch_size], training=False)
            if result is None:
                result = np.empty((len(x),) + out.shape[1:], out.dtype)
            result[lo:lo + len(out)] = out
        if result is None:
            return np.empty((0,) + tuple(self._output_shape[1:]), self.dtype)
        return result

    # -- summary ----------------------------------------------------------------------
    def summary(self, line_length: int = 80, print_fn: Any = None) -> None:
        """Print a Keras-like table: layer (type), output shape, parameter count, totals."""
        self._require_built()
        print_fn = print_fn or print
        cols = [int(line_length * 0.45), int(line_length * 0.80), line_length]
        lines = [f'Model: "{self.name}"', "_" * line_length]

        def row(a, b, c):
            s = " " + a
            s = s[:cols[0] - 1].ljust(cols[0])
            s += b[:cols[1] - cols[0] - 1].ljust(cols[1] - cols[0])
            return (s + c).rstrip()

        lines += [row("Layer (type)", "Output Shape", "Param #"), "=" * line_length]
        for i, layer in enumerate(self._layers):
            lines.append(row(f"{layer.name} ({type(layer).__name__})",
                             _fmt(layer.output_shape), f"{layer.count_params():,}"))
            if i < len(self._layers) - 1:
                lines.append("")
        trainable = sum(w.size for w in self.trainable_weights)
        total = self.count_params()
        lines += ["=" * line_length, f"Total params: {total:,}",
                  f"Trainable params: {trainable:,}",
                  f"Non-trainable params: {total - trainable:,}", "_" * line_length]
        for line in lines:
            print_fn(line)

    # -- config and saving ------------------------------------------------------------
    def get_config(self) -> dict:
        layers = []
        if self._input_shape is not None:
            layers.append({"class_name": "InputLayer",
                           "config": {"batch_shape": list(self._input_shape),
                                      "name": "input_layer"}})
        for layer in self._layers:
            config = layer.get_config()
            config.pop("batch_input_shape", None)
            layers.append({"class_name": type(layer).__name__, "config": config})
        return {"name": self.name, "dtype": self.dtype.name, "layers": layers}

    @classmethod
    def from_config(cls, config: dict) -> "Sequential":
        from .layers import get_layer_class

        model = cls(name=config.get("name"), dtype=config.get("dtype"))
        for item in config["layers"]:
            layer_cls = get_layer_class(item["class_name"])
            kwargs = dict(item.get("config", {}))
            if layer_cls is InputLayer:
                kwargs.pop("name", None)
            model.add(layer_cls.from_config(kwargs))
        return model

    def save(self, filepath: Union[str, os.PathLike], overwrite: bool = True) -> None:
        """Save architecture, weights and compile settings; see :mod:`fastconv._saving`."""
        save_model(self, filepath, overwrite=overwrite)

    def save_weights(self, filepath: Union[str, os.PathLike], overwrite: bool = True) -> None:
        """Save only the weights (same safe zip format, no architecture)."""
        from . import _saving

        _saving.save_weights(self, filepath, overwrite=overwrite)

    def load_weights(self, filepath: Union[str, os.PathLike]) -> None:
        """Load weights saved by ``save_weights`` or ``save`` into this built model."""
        from . import _saving

        _saving.load_weights(self, filepath)

    def __repr__(self) -> str:
        return f"<Sequential name={self.name!r}, {len(self._layers)} layers>"


def save_model(model: Sequential, filepath: Union[str, os.PathLike],
               overwrite: bool = True) -> None:
    """Save ``model`` to ``filepath`` (JSON architecture + npz weights in one zip)."""
    from . import _saving

    _saving.save_model(model, filepath, overwrite=overwrite)


def load_model(filepath: Union[str, os.PathLike], compile: bool = True) -> Sequential:
    """Load a model saved by ``save_model``/``model.save``; nothing is executed."""
    from . import _saving

    return _saving.load_model(filepath, compile=compile)
