"""Keras-compatible layers with explicit forward and backward passes.

Each layer normalises its arguments in ``__init__`` (Keras's names and defaults),
creates its weights in ``build(input_shape)`` (Keras's shapes, so weights taken from a
Keras model load with ``set_weights``), and answers ``compute_output_shape`` and
``get_config``, so a model knows every shape before it sees data.

A layer holds its configuration and weights only. What one call needs for its
backward pass lives in the context that call returns, in the CS231n manner:

- ``forward(inputs, training=False, workspace=None) -> (outputs, ctx)``;
- ``backward(dout, ctx, need_dx=True) -> (dx, [(weight, gradient), ...])``, the
  gradient with respect to the inputs (None when ``need_dx`` is False and the layer
  can skip it) and one gradient per weight, which the model adds up over calls.

So one layer object can be called at several points of a model (shared weights), and
two threads can run one model at once. Calling a layer on symbolic tensors
(``keras.Input``) records a node of a graph (:mod:`fastconv.graph`); calling it on
arrays computes. A subclass that defines ``call(inputs, training=None)`` composing
other layers, activations, :mod:`fastconv.operations` and ``+ - * /`` is traced into a
graph of those calls, so it trains with no backward written by hand.

Shapes are Keras's, with ``None`` for the batch axis: images are ``(N, H, W, C)``
(``data_format='channels_last'``, the default) or ``(N, C, H, W)``
(``'channels_first'``, handled by transposing at the layer's edges). Convolution and
pooling always run through :mod:`fastconv.ops`, so on the active backend.
"""

from __future__ import annotations

import inspect
import re
import threading
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from . import activations as _activations
from . import initializers as _initializers
from . import ops
from . import regularizers as _regularizers
from ._random import child_seed
from ._threads import get_num_threads
from .backends._args import check_dout, fail, pair
from .graph import Graph, KerasTensor, Node, empty, flatten, is_symbolic, pack, record, tracing
from .operations import broadcast_shape, concat_shape, unbroadcast

__all__ = [
    "Layer", "InputLayer", "Input", "Conv2D", "MaxPooling2D", "AveragePooling2D", "Flatten",
    "Dense", "Dropout", "Activation", "ReLU", "LeakyReLU", "ELU", "Softmax",
    "BatchNormalization", "Maxout", "Add", "Subtract", "Multiply", "Average", "Maximum",
    "Minimum", "Concatenate", "add", "subtract", "multiply", "average", "maximum",
    "minimum", "concatenate", "get_layer_class",
    # From fastconv.preprocessing, resolved by the module __getattr__ below.
    "Rescaling", "RandomFlip", "RandomTranslation", "RandomRotation",  # noqa: F822
]

try:  # compiled element-wise kernels (dropout), when the extension is built
    from . import _elementwise
except ImportError:  # pragma: no cover - Dropout then draws with NumPy
    _elementwise = None

Shape = Tuple[Optional[int], ...]

_name_counts: Dict[str, int] = {}
_name_lock = threading.Lock()


class Ctx:
    """What one call of a layer keeps for its backward pass (attributes per layer)."""

    __slots__ = ("__dict__",)


def _snake(name: str) -> str:
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


def _unique_name(base: str) -> str:
    with _name_lock:
        n = _name_counts.get(base, 0)
        _name_counts[base] = n + 1
    return base if n == 0 else f"{base}_{n}"


def _fmt(shape) -> str:
    if isinstance(shape, list):
        return "[" + ", ".join(_fmt(s) for s in shape) + "]"
    return "(" + ", ".join("None" if s is None else str(s) for s in shape) + ("," if len(
        shape) == 1 else "") + ")"


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) \
            or value < 1:
        raise fail(name, "a positive int", value, TypeError if not isinstance(
            value, (int, np.integer)) else ValueError)
    return int(value)


def _padding(value: Any) -> str:
    if not isinstance(value, str) or value.lower() not in ("valid", "same"):
        raise fail("padding", "'valid' or 'same'", value)
    return value.lower()


def _data_format(value: Any) -> str:
    if value is None:
        from .config import image_data_format

        return image_data_format()
    if value not in ("channels_last", "channels_first"):
        raise fail("data_format", "None, 'channels_last' or 'channels_first'", value)
    return value


def _shape_of(x: Any) -> Any:
    """The shape (batch axis None) of a tensor or array, or a list of them."""
    if isinstance(x, (list, tuple)):
        return [_shape_of(v) for v in x]
    if isinstance(x, KerasTensor):
        return x.shape
    return (None,) + tuple(np.shape(x)[1:])


def _accepts(fn, name: str) -> bool:
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):  # pragma: no cover - builtins
        return False
    return name in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


class Layer:
    """Base class of all layers.

    Parameters
    ----------
    name : str, optional
        Unique by default ('dense', 'dense_1', ...).
    trainable : bool
        If False, the optimizer leaves the weights alone.
    dtype : str or dtype, optional
        float32 unless the model or this argument says otherwise.
    input_shape : tuple of int, optional
        The shape of one sample, for the first layer of a Sequential model.
    batch_size : int, optional
        Fixes the batch axis of ``input_shape`` (informational).

    Subclassing
    -----------
    A subclass may create sublayers in ``__init__`` (as attributes, or lists and dicts
    of them), weights in ``build(input_shape)`` with :meth:`add_weight`, and compose
    them in ``call(inputs, training=None)``; fastconv traces ``call`` on symbolic
    tensors and differentiates the recorded graph.
    """

    _is_input_layer = False

    def __init__(self, name: Optional[str] = None, trainable: bool = True, dtype: Any = None,
                 input_shape: Optional[Sequence[int]] = None, batch_size: Optional[int] = None,
                 batch_input_shape: Optional[Sequence[Optional[int]]] = None, **kwargs: Any):
        kwargs.pop("autocast", None)  # Keras's mixed-precision switch: nothing to do here
        if kwargs:
            raise TypeError(
                f"{type(self).__name__} got unexpected keyword argument(s) "
                f"{', '.join(sorted(kwargs))}"
            )
        if name is not None and not isinstance(name, str):
            raise fail("name", "a string", name, TypeError)
        self.name = name or _unique_name(_snake(type(self).__name__))
        self.trainable = bool(trainable)
        if isinstance(dtype, dict):  # Keras 3's DTypePolicy config
            dtype = dtype.get("config", {}).get("name", None)
        self.dtype = None if dtype is None else np.dtype(dtype)
        if self.dtype is not None and self.dtype not in (np.float32, np.float64):
            raise fail("dtype", "'float32' or 'float64'", dtype, TypeError)
        self._batch_input_shape: Optional[Shape] = None
        if batch_input_shape is not None:
            self._batch_input_shape = tuple(batch_input_shape)
        elif input_shape is not None:
            if isinstance(input_shape, (int, np.integer)):
                input_shape = (input_shape,)
            self._batch_input_shape = (batch_size,) + tuple(input_shape)
        if self._batch_input_shape is not None:
            for s in self._batch_input_shape[1:]:
                if s is not None and (not isinstance(s, (int, np.integer)) or s < 1):
                    raise fail("input_shape", "a tuple of positive ints",
                               tuple(self._batch_input_shape[1:]))
        self.built = False
        self.input_shape: Optional[Shape] = None
        self.output_shape: Optional[Shape] = None
        self._weight_names: List[str] = []
        self._weight_trainable: List[bool] = []
        self._weight_store: Dict[str, np.ndarray] = {}
        self.regularizers: Dict[str, Any] = {}
        self._inbound_nodes: List[Node] = []
        self._traced: Dict[tuple, tuple] = {}
        self._build_lock = threading.RLock()

    # -- building ---------------------------------------------------------------------
    def add_weight(self, shape: Optional[Sequence[int]] = None, initializer: Any = None,
                   dtype: Any = None, trainable: bool = True, regularizer: Any = None,
                   constraint: Any = None, name: Optional[str] = None,
                   **kwargs: Any) -> np.ndarray:
        """Create a weight of ``shape`` from ``initializer`` and register it (Keras 3's
        arguments and order).

        Returns the array; a layer's arithmetic on it inside ``call`` is differentiated
        with respect to it. ``initializer`` is a name, an initializer or a callable
        ``(shape, dtype) -> array``; default 'glorot_uniform' for trainable weights.
        """
        kwargs.pop("aggregation", None)
        kwargs.pop("autocast", None)
        if kwargs:
            raise TypeError(f"add_weight got unexpected keyword argument(s) {sorted(kwargs)}")
        if constraint is not None:
            raise NotImplementedError("fastconv does not implement weight constraints yet "
                                      f"(add_weight(constraint={constraint!r}))")
        shape = () if shape is None else tuple(int(s) for s in shape)
        if name is None:
            name = "variable" if not self._weight_names else \
                f"variable_{len(self._weight_names)}"
        if not isinstance(name, str) or name in self._weight_names:
            raise fail("name", f"a new weight name for layer '{self.name}'", name)
        if initializer is None:
            initializer = "glorot_uniform" if trainable and len(shape) > 1 else "zeros"
        init = initializer if callable(initializer) and not isinstance(initializer, str) \
            else _initializers.get(initializer, "initializer")
        wdtype = np.dtype(dtype) if dtype is not None else (self.dtype or np.dtype(np.float32))
        value = np.asarray(init(shape, dtype=wdtype))
        if value.shape != shape:
            raise ValueError(
                f"The initializer of {self.name}.{name} returned shape {value.shape}; "
                f"expected {shape}"
            )
        value = np.ascontiguousarray(value, dtype=wdtype)
        self._weight_store[name] = value
        if not hasattr(type(self), name) and name not in self.__dict__:
            self.__dict__[name] = value
        self._weight_names.append(name)
        self._weight_trainable.append(bool(trainable))
        if regularizer is not None:
            self.regularizers[name] = _regularizers.get(regularizer, "regularizer")
        return value

    def _weight(self, name: str) -> np.ndarray:
        """The current array of weight ``name`` (an attribute of that name, if set)."""
        a = self.__dict__.get(name)
        if isinstance(a, np.ndarray):
            return a
        return self._weight_store[name]

    def build_for(self, input_shape: Any, dtype: Any = np.float32) -> Any:
        """Build for ``input_shape`` (batch axis included; a list of shapes for layers
        taking several inputs) and return the output shape.

        Errors name the layer and the shapes involved.
        """
        input_shape = [tuple(s) for s in input_shape] if isinstance(input_shape, list) \
            else tuple(input_shape)
        with self._build_lock:
            if self.dtype is None:
                self.dtype = np.dtype(dtype)
            if self.built and self.input_shape is not None:
                self._check_compatible(input_shape)
            if not self.built and self._composite():
                # A subclass's call uses the weights its build makes: build, then trace.
                self._build_weights(input_shape)
                self.built = True
                self.input_shape = input_shape
            output_shape = self.compute_output_shape(input_shape)
            if not self.built:
                self.build(input_shape)
                self.built = True
                self.input_shape = input_shape
            self.output_shape = [tuple(s) for s in output_shape] if isinstance(
                output_shape, list) else tuple(output_shape)
        return self.output_shape

    #: The axis whose size the weights fix (checked when a built layer is called again).
    _feature_axis: Optional[int] = None

    def _check_compatible(self, shape: Any) -> None:
        built = self.input_shape
        if isinstance(shape, list) or isinstance(built, list) or not self._weight_names:
            return
        ax = self._feature_axis
        if len(shape) != len(built) or (ax is not None and shape[ax] is not None
                                        and built[ax] is not None and shape[ax] != built[ax]):
            raise ValueError(
                f"Layer '{self.name}' ({type(self).__name__}) was built for input of shape "
                f"{_fmt(built)} and cannot be called on input of shape {_fmt(shape)}.")

    def build(self, input_shape: Shape) -> None:
        """Create the weights for ``input_shape``; layers without weights do nothing."""

    def _build_weights(self, input_shape: Any) -> None:
        self.build(input_shape)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        if self._composite():
            graph, structure = self._trace(False, input_shape)
            shapes = [t.shape for t in graph.outputs]
            return shapes[0] if structure is None else shapes
        return tuple(input_shape) if not isinstance(input_shape, list) else input_shape

    def _shape_error(self, input_shape: Shape, message: str) -> ValueError:
        return ValueError(
            f"Layer '{self.name}' ({type(self).__name__}) cannot take input of shape "
            f"{_fmt(input_shape)}: {message}"
        )

    def _need_ndim(self, input_shape: Shape, ndim: int, layout: str) -> None:
        if isinstance(input_shape, list):
            raise self._shape_error(input_shape, "it takes one input, not a list.")
        if len(input_shape) != ndim:
            hint = ""
            if ndim == 4 and len(input_shape) == 3:
                hint = (" Images need a channel axis: for grey images use "
                        f"input_shape={_fmt(tuple(input_shape[1:]) + (1,))}.")
            raise self._shape_error(input_shape, f"it expects {ndim}-D input {layout}.{hint}")

    # -- computing --------------------------------------------------------------------
    def _composite(self) -> bool:
        """True for a subclass whose own ``call`` composes other layers and operations."""
        return type(self).call is not Layer.call

    def call(self, inputs: Any, training: Optional[bool] = None) -> Any:
        """Keras's name for the computation: on arrays, the output; on symbolic tensors,
        a recorded node. Subclasses override it to compose layers."""
        if is_symbolic(inputs):
            return self._record(inputs, training)
        return self.forward(inputs, bool(training))[0]

    def forward(self, inputs: Any, training: bool = False, workspace=None):
        """``(outputs, ctx)`` for arrays ``inputs``; see the module docstring."""
        if not self._composite():
            raise NotImplementedError(f"{type(self).__name__} defines neither forward nor call")
        flat = flatten(inputs)
        graph, structure = self._trace(training, _shape_of(inputs))
        outs, tape = graph.forward(flat, training, workspace)
        return (outs[0] if structure is None else pack(structure, outs)), (graph, tape)

    def backward(self, dout: Any, ctx: Any, need_dx: bool = True):
        """``(dx, [(weight, grad), ...])`` for the call that returned ``ctx``."""
        if not self._composite():
            raise NotImplementedError(f"{type(self).__name__} has no backward")
        graph, tape = ctx
        douts = flatten(dout) if len(graph.outputs) > 1 else [dout]
        dxs, wg = graph.backward(tape, douts, input_grads=need_dx)
        return (dxs[0] if len(dxs) == 1 else dxs), wg

    def _trace(self, training: bool, input_shape: Any) -> tuple:
        """The graph of ``call`` for inputs of ``input_shape`` (per training mode and
        shape), traced on symbolic tensors the first time."""
        key = (bool(training), _shape_key(input_shape))
        hit = self._traced.get(key)
        if hit is not None:
            return hit
        with self._build_lock:
            hit = self._traced.get(key)
            if hit is not None:
                return hit
            dtype = (self.dtype or np.dtype(np.float32)).name
            if isinstance(input_shape, list):
                sym = [KerasTensor((None,) + tuple(s[1:]), dtype, name=f"{self.name}_in{i}")
                       for i, s in enumerate(input_shape)]
            else:
                sym = KerasTensor((None,) + tuple(input_shape[1:]), dtype,
                                  name=f"{self.name}_input")
            with tracing(self):
                if _accepts(self.call, "training"):
                    out = self.call(sym, training=bool(training))
                else:
                    out = self.call(sym)
            structure = out if isinstance(out, (list, tuple, dict)) else None
            outs = flatten(out)
            for o in outs:
                if not isinstance(o, KerasTensor):
                    raise TypeError(
                        f"{type(self).__name__}.call must return tensors computed from its "
                        "inputs with fastconv layers, fastconv.keras.ops and + - * /; it "
                        f"returned a {type(o).__name__}.")
            graph = Graph(flatten(sym), outs, allow_unused_inputs=True)
            self._traced[key] = (graph, structure)
            return graph, structure

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if args:
            inputs, args = args[0], args[1:]
        elif "inputs" in kwargs:
            inputs = kwargs.pop("inputs")
        else:
            raise TypeError(f"{type(self).__name__} was called without inputs")
        training = kwargs.pop("training", None)
        kwargs.pop("mask", None)
        if args or kwargs:
            raise TypeError(f"{type(self).__name__} got unexpected call argument(s) "
                            f"{sorted(kwargs) or list(args)}")
        if is_symbolic(inputs):
            if not self.built:
                self.build_for(_shape_of(inputs), flatten(inputs)[0].dtype)
            if self._composite():
                return self._record(inputs, training)
            return self.call(inputs, training=training)
        if isinstance(inputs, (list, tuple)):
            inputs = [self._as_array(v) for v in inputs]
        else:
            inputs = self._as_array(inputs)
        if not self.built:
            self.build_for(_shape_of(inputs), flatten(inputs)[0].dtype)
        return self.forward(inputs, bool(training))[0]

    def _as_array(self, x: Any) -> np.ndarray:
        x = np.asarray(x)
        dtype = self.dtype or (x.dtype if x.dtype in (np.float32, np.float64) else np.float32)
        return np.asarray(x, dtype=dtype)

    def _record(self, inputs: Any, training: Optional[bool]) -> Any:
        """Record this layer's call on symbolic ``inputs`` (built already)."""
        shape = self.build_for(_shape_of(inputs), flatten(inputs)[0].dtype)
        if isinstance(inputs, tuple):
            inputs = list(inputs)
        return record(self, inputs, shape, self.dtype, training)

    # -- the graph's view ---------------------------------------------------------------
    def _node_attr(self, what: str) -> Any:
        if not self._inbound_nodes:
            raise AttributeError(f"Layer '{self.name}' has never been called and thus has no "
                                 f"defined {what}.")
        node = self._inbound_nodes[0]
        if what == "output":
            return node.outputs[0] if len(node.outputs) == 1 else list(node.outputs)
        if node.structure is not None:
            return pack(node.structure, node.inputs)
        return node.inputs[0] if len(node.inputs) == 1 else list(node.inputs)

    @property
    def input(self) -> Any:
        """The symbolic input of this layer's first call."""
        return self._node_attr("input")

    @property
    def output(self) -> Any:
        """The symbolic output of this layer's first call."""
        return self._node_attr("output")

    def _flat_sublayers(self) -> List["Layer"]:
        """Layers held in attributes (directly, or in lists, tuples and dicts), each once,
        depth first, in the order the attributes were set."""
        found: List[Layer] = []
        seen = {id(self)}

        def walk(v):
            if isinstance(v, Layer):
                if id(v) not in seen:
                    seen.add(id(v))
                    found.append(v)
                    for u in v._direct_sublayers():
                        walk(u)
            elif isinstance(v, (list, tuple)):
                for u in v:
                    walk(u)
            elif isinstance(v, dict):
                for u in v.values():
                    walk(u)

        for v in self._direct_sublayers():
            walk(v)
        return found

    def _direct_sublayers(self) -> List["Layer"]:
        out = []
        for k, v in self.__dict__.items():
            if k in _NOT_SUBLAYERS:
                continue
            stack = [v]
            while stack:
                u = stack.pop(0)
                if isinstance(u, Layer):
                    out.append(u)
                elif isinstance(u, (list, tuple)):
                    stack[:0] = list(u)
                elif isinstance(u, dict):
                    stack[:0] = list(u.values())
        return out

    # -- weights ----------------------------------------------------------------------
    def _weight_items(self, trainable_only: bool = False) -> List[Tuple["Layer", str, np.ndarray]]:
        """``(layer, name, array)`` of every weight: this layer's, then its sublayers',
        each array once (Keras's order)."""
        if trainable_only and not self.trainable:
            return []
        items, seen = [], set()
        for n, t in zip(self._weight_names, self._weight_trainable):
            a = self._weight(n)
            if (t or not trainable_only) and id(a) not in seen:
                seen.add(id(a))
                items.append((self, n, a))
        for sub in self._sublayers_for_weights():
            for item in sub._weight_items(trainable_only):
                if id(item[2]) not in seen:
                    seen.add(id(item[2]))
                    items.append(item)
        return items

    def _sublayers_for_weights(self) -> List["Layer"]:
        return [u for u in dict.fromkeys(self._direct_sublayers())]

    @property
    def weights(self) -> List[np.ndarray]:
        """The weight arrays themselves, in Keras's order."""
        return [a for _, _, a in self._weight_items()]

    @property
    def trainable_weights(self) -> List[np.ndarray]:
        return [a for _, _, a in self._weight_items(True)]

    @property
    def non_trainable_weights(self) -> List[np.ndarray]:
        ids = {id(w) for w in self.trainable_weights}
        return [w for w in self.weights if id(w) not in ids]

    def trainable_items(self) -> List[Tuple[str, np.ndarray]]:
        """``(name, array)`` of each trainable weight of this layer itself."""
        return [(n, a) for la, n, a in self._weight_items(True) if la is self]

    def get_weights(self) -> List[np.ndarray]:
        """Copies of the weights, in Keras's order."""
        return [w.copy() for w in self.weights]

    def set_weights(self, weights: Sequence[Any]) -> None:
        """Copy ``weights`` (same count and shapes as ``get_weights()``) into the layer;
        counts and shapes are checked before anything changes."""
        items = self._weight_items()
        weights = list(weights)
        if len(weights) != len(items):
            raise ValueError(
                f"Layer '{self.name}' ({type(self).__name__}) has {len(items)} weight arrays "
                f"but {len(weights)} were given"
            )
        for (layer, name, w), new in zip(items, weights):
            if np.shape(new) != w.shape:
                raise ValueError(
                    f"Weight {layer.name}.{name} must have shape {w.shape}. Received: an "
                    f"array of shape {np.shape(new)}"
                )
        for (_, _, w), new in zip(items, weights):
            # In place: the optimizer's state stays attached to the same arrays.
            np.copyto(w, np.asarray(new, dtype=w.dtype))

    def count_params(self) -> int:
        return int(sum(w.size for w in self.weights))

    def get_config(self) -> dict:
        config = {"name": self.name, "trainable": self.trainable,
                  "dtype": None if self.dtype is None else self.dtype.name}
        if self._batch_input_shape is not None:
            config["batch_input_shape"] = list(self._batch_input_shape)
        return config

    @classmethod
    def from_config(cls, config: dict) -> "Layer":
        return cls(**config)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={self.name!r}>"

    # Locks cannot be pickled: they are left out and made anew.
    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        locks = {k: isinstance(v, _RLOCK) for k, v in state.items()
                 if isinstance(v, (_LOCK, _RLOCK))}
        for k in locks:
            del state[k]
        state["__locks__"] = locks
        return state

    def __setstate__(self, state: dict) -> None:
        locks = state.pop("__locks__", {})
        self.__dict__.update(state)
        for k, reentrant in locks.items():
            self.__dict__[k] = threading.RLock() if reentrant else threading.Lock()


_LOCK, _RLOCK = type(threading.Lock()), type(threading.RLock())

# Attributes of fastconv's own that refer to layers without owning them (graph records,
# caches): never taken for sublayers.
_NOT_SUBLAYERS = frozenset({"_inbound_nodes", "_traced", "_all_layers", "_items_cache",
                            "_graph", "_seq_graph", "_inputs_struct", "_outputs_struct",
                            "_input_tensor", "_output_tensor", "optimizer", "history"})


def _shape_key(shape: Any) -> tuple:
    if isinstance(shape, list):
        return tuple(_shape_key(s) for s in shape)
    return tuple(shape[1:])


class _ActivationMixin:
    """For layers ending in an activation: the context keeps the pre-activation output
    (the logits), so a model can fuse a softmax/sigmoid with its cross-entropy loss:
    ``logits(ctx)`` gives them and ``backward_logits(dz, ctx)`` backpropagates from
    their gradient."""

    activation: _activations.Activation

    def _activate(self, z, ctx):
        ctx.preact = z
        if self.activation is _activations.linear:
            return z
        out, ctx.act = self.activation.forward(z)
        return out

    def _deactivate(self, dout, ctx):
        if self.activation is _activations.linear:
            return dout
        return self.activation.backward(dout, ctx.act)

    def logits(self, ctx):
        if getattr(ctx, "preact", None) is None:
            raise RuntimeError(f"layer '{self.name}' with a fused ReLU has no separate logits")
        return ctx.preact


class InputLayer(Layer):
    """The model's input: ``shape`` of one sample (no batch axis). Its output, the
    symbolic tensor :func:`Input` returns, is ``layer.output``."""

    _is_input_layer = True

    def __init__(self, shape: Optional[Sequence[int]] = None, batch_size: Optional[int] = None,
                 dtype: Any = None, name: Optional[str] = None,
                 batch_shape: Optional[Sequence[Optional[int]]] = None, sparse: Any = None,
                 **kwargs: Any):
        if shape is None and batch_shape is None:
            shape = kwargs.pop("input_shape", None)
            batch_shape = kwargs.pop("batch_input_shape", None)
        if shape is None and batch_shape is None:
            raise fail("shape", "a tuple of positive ints", None, TypeError)
        if sparse:
            raise NotImplementedError("fastconv does not implement sparse inputs yet")
        if batch_shape is None:
            if isinstance(shape, (int, np.integer)):
                shape = (shape,)
            if not isinstance(shape, (tuple, list)):
                raise fail("shape", "a tuple of positive ints", shape, TypeError)
            batch_shape = (batch_size,) + tuple(shape)
        super().__init__(name=name or _unique_name("input_layer"), dtype=dtype,
                         batch_input_shape=batch_shape, **kwargs)
        self.built = True
        self.input_shape = self.output_shape = tuple(self._batch_input_shape)
        if self.dtype is None:
            from .config import floatx

            self.dtype = np.dtype(floatx())
        tensor = KerasTensor(self._batch_input_shape, self.dtype, name=self.name,
                             history=(self, 0, 0))
        self._inbound_nodes.append(Node(self, [], None, [tensor]))

    def forward(self, x, training=False, workspace=None):
        return x, None

    def backward(self, dout, ctx, need_dx=True):
        return dout, []

    def get_config(self):
        return {"batch_shape": list(self._batch_input_shape), "name": self.name,
                "dtype": None if self.dtype is None else self.dtype.name}


def Input(shape: Optional[Sequence[int]] = None, batch_size: Optional[int] = None,
          dtype: Any = None, name: Optional[str] = None,
          batch_shape: Optional[Sequence[Optional[int]]] = None, **kwargs: Any) -> KerasTensor:
    """A symbolic input tensor (Keras's ``keras.Input``): ``shape`` of one sample.

    Start a functional model with it (``x = Conv2D(...)(inputs)``, then
    ``Model(inputs, outputs)``), or a Sequential one (``Sequential([Input((28, 28, 1)),
    ...])``).
    """
    return InputLayer(shape=shape, batch_size=batch_size, dtype=dtype, name=name,
                      batch_shape=batch_shape, **kwargs).output


class Conv2D(_ActivationMixin, Layer):
    """2-D convolution, ``out = activation(conv(x, kernel) + bias)``.

    Parameters
    ----------
    filters : int
        Output channels ``C_out``.
    kernel_size : int or (int, int)
    strides, dilation_rate : int or (int, int), default (1, 1)
    padding : {'valid', 'same'}
    data_format : None, 'channels_last' or 'channels_first'
    activation, use_bias, kernel_initializer, bias_initializer, kernel_regularizer,
    bias_regularizer : as in Keras.

    Weights: ``kernel`` (KH, KW, C_in, C_out) and ``bias`` (C_out,), whatever the
    data format. Input (N, H, W, C_in) -> output (N, OH, OW, C_out) (channels_last).
    """

    def __init__(self, filters: int, kernel_size: Any, strides: Any = (1, 1),
                 padding: str = "valid", data_format: Optional[str] = None,
                 dilation_rate: Any = (1, 1), activation: Any = None, use_bias: bool = True,
                 kernel_initializer: Any = "glorot_uniform", bias_initializer: Any = "zeros",
                 kernel_regularizer: Any = None, bias_regularizer: Any = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.filters = _positive_int("filters", filters)
        self.kernel_size = pair(kernel_size, "kernel_size")
        self.strides = pair(strides, "strides")
        self.padding = _padding(padding)
        self.data_format = _data_format(data_format)
        self.dilation_rate = pair(dilation_rate, "dilation_rate")
        self.activation = _activations.get(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = _initializers.get(kernel_initializer, "kernel_initializer")
        self.bias_initializer = _initializers.get(bias_initializer, "bias_initializer")
        self.kernel_regularizer = _regularizers.get(kernel_regularizer, "kernel_regularizer")
        self.bias_regularizer = _regularizers.get(bias_regularizer, "bias_regularizer")

    def _hwc(self, input_shape):
        if self.data_format == "channels_first":
            return input_shape[2], input_shape[3], input_shape[1]
        return input_shape[1], input_shape[2], input_shape[3]

    def compute_output_shape(self, input_shape):
        layout = ("(batch, channels, height, width)" if self.data_format == "channels_first"
                  else "(batch, height, width, channels)")
        self._need_ndim(input_shape, 4, layout)
        H, W, C = self._hwc(input_shape)
        (kh, kw), (sh, sw), (dh, dw) = self.kernel_size, self.strides, self.dilation_rate
        eh, ew = dh * (kh - 1) + 1, dw * (kw - 1) + 1

        def size(n, e, s):
            if n is None:
                return None
            if self.padding == "same":
                return -(-n // s)
            return (n - e) // s + 1 if n >= e else 0

        OH, OW = size(H, eh, sh), size(W, ew, sw)
        if OH == 0 or OW == 0:
            msg = (f"the input is {H} pixel{'s' if H != 1 else ''} tall and {W} wide with {C} "
                   f"channel{'s' if C != 1 else ''}, smaller than the {eh}x{ew} kernel with "
                   "padding='valid'.")
            if self.data_format == "channels_last" and input_shape[1] is not None \
                    and input_shape[3] is not None and input_shape[1] < input_shape[3] \
                    and input_shape[1] <= 4:
                msg += (" With data_format='channels_last' the channels come last: did you "
                        "mean data_format='channels_first', or "
                        f"input_shape={_fmt((input_shape[2], input_shape[3], input_shape[1]))}?")
            raise self._shape_error(input_shape, msg)
        if self.data_format == "channels_first":
            return (input_shape[0], self.filters, OH, OW)
        return (input_shape[0], OH, OW, self.filters)

    def build(self, input_shape):
        C = self._hwc(input_shape)[2]
        if C is None:
            raise self._shape_error(input_shape, "the number of channels must be known.")
        self.add_weight(name="kernel", shape=self.kernel_size + (C, self.filters),
                        initializer=self.kernel_initializer,
                        regularizer=self.kernel_regularizer)
        if self.use_bias:
            self.add_weight(name="bias", shape=(self.filters,), initializer=self.bias_initializer,
                            regularizer=self.bias_regularizer)

    @property
    def _feature_axis(self):
        return 1 if self.data_format == "channels_first" else -1

    def forward(self, x, training=False, workspace=None):
        cf = self.data_format == "channels_first"
        if cf:
            x = x.transpose(0, 2, 3, 1)
        args = (x, self.kernel, self.bias if self.use_bias else None, self.strides,
                self.padding, self.dilation_rate)
        ctx = Ctx()
        ctx.fused_relu = self.activation is _activations.relu
        if ctx.fused_relu:
            # Bias and ReLU applied in the convolution's output pass.
            out, ctx.cache = ops.conv2d_relu_forward(*args)
            ctx.preact = None
        else:
            z, ctx.cache = ops.conv2d_forward(*args)
            out = self._activate(z, ctx)
        if cf:
            out = out.transpose(0, 3, 1, 2)
        return out, ctx

    def _grads(self, dx, dw, db):
        wg = [(self.kernel, dw)]
        if self.use_bias:
            wg.append((self.bias, db))
        if dx is not None and self.data_format == "channels_first":
            dx = dx.transpose(0, 3, 1, 2)
        return dx, wg

    def backward_logits(self, dz, ctx, need_dx=True):
        """Backward from the gradient of the pre-activation output (layout of the output)."""
        if self.data_format == "channels_first":
            dz = dz.transpose(0, 2, 3, 1)
        return self._grads(*ops.conv2d_backward(dz, ctx.cache, need_dx))

    def backward(self, dout, ctx, need_dx=True):
        if self.data_format == "channels_first":
            # The activation saw channels-last arrays.
            dout = dout.transpose(0, 2, 3, 1)
        if ctx.fused_relu:
            return self._grads(*ops.conv2d_relu_backward(dout, ctx.cache, need_dx))
        return self._grads(*ops.conv2d_backward(self._deactivate(dout, ctx), ctx.cache,
                                                need_dx))

    def logits(self, ctx):
        z = super().logits(ctx)
        return z.transpose(0, 3, 1, 2) if self.data_format == "channels_first" else z

    def get_config(self):
        config = super().get_config()
        config.update({
            "filters": self.filters, "kernel_size": list(self.kernel_size),
            "strides": list(self.strides), "padding": self.padding,
            "data_format": self.data_format, "dilation_rate": list(self.dilation_rate),
            "activation": _activations.serialize(self.activation), "use_bias": self.use_bias,
            "kernel_initializer": _initializers.serialize(self.kernel_initializer),
            "bias_initializer": _initializers.serialize(self.bias_initializer),
            "kernel_regularizer": _regularizers.serialize(self.kernel_regularizer),
            "bias_regularizer": _regularizers.serialize(self.bias_regularizer),
        })
        return config


class _Pooling2D(Layer):
    _op = "max"

    def __init__(self, pool_size: Any = (2, 2), strides: Any = None, padding: str = "valid",
                 data_format: Optional[str] = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.pool_size = pair(pool_size, "pool_size")
        self.strides = self.pool_size if strides is None else pair(strides, "strides")
        self.padding = _padding(padding)
        self.data_format = _data_format(data_format)
        fwd = ops.maxpool2d_forward if self._op == "max" else ops.avgpool2d_forward
        bwd = ops.maxpool2d_backward if self._op == "max" else ops.avgpool2d_backward
        self._fwd, self._bwd = fwd, bwd

    def compute_output_shape(self, input_shape):
        cf = self.data_format == "channels_first"
        self._need_ndim(input_shape, 4, "(batch, channels, height, width)" if cf
                        else "(batch, height, width, channels)")
        H, W = (input_shape[2], input_shape[3]) if cf else (input_shape[1], input_shape[2])
        out = []
        for n, p, s in ((H, self.pool_size[0], self.strides[0]),
                        (W, self.pool_size[1], self.strides[1])):
            if n is None:
                out.append(None)
            elif self.padding == "same":
                out.append(-(-n // s))
            elif n < p:
                raise self._shape_error(
                    input_shape, f"the {H}x{W} image is smaller than the "
                    f"{self.pool_size[0]}x{self.pool_size[1]} pooling window with "
                    "padding='valid'.")
            else:
                out.append((n - p) // s + 1)
        if cf:
            return (input_shape[0], input_shape[1], out[0], out[1])
        return (input_shape[0], out[0], out[1], input_shape[3])

    def forward(self, x, training=False, workspace=None):
        if self.data_format == "channels_first":
            x = x.transpose(0, 2, 3, 1)
        out, cache = self._fwd(x, self.pool_size, self.strides, self.padding)
        return (out.transpose(0, 3, 1, 2) if self.data_format == "channels_first" else out), cache

    def backward(self, dout, ctx, need_dx=True):
        if self.data_format == "channels_first":
            return self._bwd(dout.transpose(0, 2, 3, 1), ctx).transpose(0, 3, 1, 2), []
        return self._bwd(dout, ctx), []

    def get_config(self):
        config = super().get_config()
        config.update({"pool_size": list(self.pool_size), "strides": list(self.strides),
                       "padding": self.padding, "data_format": self.data_format})
        return config


class MaxPooling2D(_Pooling2D):
    """2-D max pooling on :func:`fastconv.ops.maxpool2d_forward` (strides default to the
    pool size; the gradient goes to the first maximum of each window)."""

    _op = "max"


class AveragePooling2D(_Pooling2D):
    """2-D average pooling on :func:`fastconv.ops.avgpool2d_forward` ('same' padding
    averages only the non-padded elements, as Keras does)."""

    _op = "avg"


class _ConvReLUMaxPool:
    """A ``Conv2D(activation='relu')`` and the ``MaxPooling2D`` that alone reads its
    output, run by a model's plan (:mod:`fastconv.graph`) as one op,
    :func:`fastconv.ops.conv2d_relu_maxpool_forward`.

    Not a layer: both layers stay in the model and keep their weights and
    configuration; only the convolution's full-size output, which nothing else reads,
    is never formed. Used for channels-last layers whose pooling has strides equal to
    its pool size and 'valid' padding (the Keras defaults). It keeps, per plan, the
    checked geometry of its last call (``_prepared``), so that repeated calls on the
    same shapes and arrays skip the argument checks.
    """

    def __init__(self, conv: Conv2D, pool: "MaxPooling2D"):
        self.conv, self.pool = conv, pool
        self.layers = (conv, pool)
        self.name = f"{conv.name}+{pool.name}"

    @staticmethod
    def fits(conv: Any, pool: Any) -> bool:
        return (isinstance(conv, Conv2D) and isinstance(pool, MaxPooling2D)
                and conv.activation is _activations.relu
                and conv.data_format == pool.data_format == "channels_last"
                and pool.strides == pool.pool_size and pool.padding == "valid")

    def still_fits(self) -> bool:
        return self.fits(self.conv, self.pool)

    @property
    def trainable_weights(self):
        return self.conv.trainable_weights

    _prepared = None

    def forward(self, x, training=False, workspace=None):
        conv = self.conv
        w = conv.kernel
        b = conv.bias if conv.use_bias else None
        settings = (conv.strides, conv.padding, conv.dilation_rate, self.pool.pool_size)
        prep = self._prepared
        if prep is not None and type(x) is np.ndarray and x.shape == prep[0] \
                and x.dtype is prep[1] and x.flags.c_contiguous and prep[2] is w \
                and prep[3] is b and prep[4] == settings and prep[5] is ops.active_module():
            # The same shapes, arrays and settings as the call that checked them: skip
            # the per-call argument checks.
            g, pg = prep[6]
            buffers = {}
            if workspace is not None and x.dtype == np.float32:  # what the kernels write
                buffers = {"out": workspace.array("out", pg.out_shape, x.dtype),
                           "win": workspace.array("win", pg.out_shape, np.int8)}
            return prep[5].conv2d_relu_maxpool_prepared(x, w, b, g, pg, **buffers)
        out, cache = ops.conv2d_relu_maxpool_forward(
            x, w, b, conv.strides, conv.padding, conv.dilation_rate, self.pool.pool_size)
        module = ops.active_module()
        self._prepared = None
        if hasattr(module, "conv2d_relu_maxpool_prepared") and type(x) is np.ndarray \
                and x.flags.c_contiguous and x.dtype in (np.float32, np.float64) \
                and w.dtype == x.dtype and w.flags.c_contiguous \
                and (b is None or (b.dtype == x.dtype and b.flags.c_contiguous)):
            # x, w and b went through the checks unchanged (no conversion, no copy).
            self._prepared = (x.shape, x.dtype, w, b, settings, module, cache.geom)
        return out, cache

    def backward(self, dout, ctx, need_dx=True):
        return self.conv._grads(*ops.conv2d_relu_maxpool_backward(dout, ctx, need_dx))


class Flatten(Layer):
    """``(N, d1, d2, ...) -> (N, d1 * d2 * ...)``.

    With ``data_format='channels_first'`` the channel axis is moved last first, as Keras
    does, so a following Dense sees the same order in both formats.
    """

    def __init__(self, data_format: Optional[str] = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.data_format = _data_format(data_format)

    def compute_output_shape(self, input_shape):
        if len(input_shape) < 2:
            raise self._shape_error(input_shape, "it needs a batch axis and at least one more.")
        rest = input_shape[1:]
        return (input_shape[0], None if None in rest else int(np.prod(rest)))

    def forward(self, x, training=False, workspace=None):
        if self.data_format == "channels_first" and x.ndim > 2:
            x = np.moveaxis(x, 1, -1)
        return x.reshape(x.shape[0], -1), x.shape

    def backward(self, dout, shape, need_dx=True):
        dx = dout.reshape(shape)
        if self.data_format == "channels_first" and dx.ndim > 2:
            dx = np.moveaxis(dx, -1, 1)
        return dx, []

    def get_config(self):
        config = super().get_config()
        config["data_format"] = self.data_format
        return config


# Dense's matrix products: BLAS, through NumPy. A module attribute so that
# benchmarks/train_compare.py --overhead can count their time as kernel time.
_matmul = np.matmul


class Dense(_ActivationMixin, Layer):
    """``out = activation(x @ kernel + bias)`` on the last axis of ``x``.

    Weights: ``kernel`` (in, units), ``bias`` (units,). Input ``(N, ..., in)`` gives
    ``(N, ..., units)``: like Keras, a Dense after a 4-D output without Flatten acts
    on the channel axis, and ``summary()`` shows the resulting shape.
    """

    def __init__(self, units: int, activation: Any = None, use_bias: bool = True,
                 kernel_initializer: Any = "glorot_uniform", bias_initializer: Any = "zeros",
                 kernel_regularizer: Any = None, bias_regularizer: Any = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.units = _positive_int("units", units)
        self.activation = _activations.get(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = _initializers.get(kernel_initializer, "kernel_initializer")
        self.bias_initializer = _initializers.get(bias_initializer, "bias_initializer")
        self.kernel_regularizer = _regularizers.get(kernel_regularizer, "kernel_regularizer")
        self.bias_regularizer = _regularizers.get(bias_regularizer, "bias_regularizer")

    def compute_output_shape(self, input_shape):
        if len(input_shape) < 2 or input_shape[-1] is None:
            raise self._shape_error(input_shape, "the last axis must have a known size.")
        return tuple(input_shape[:-1]) + (self.units,)

    _feature_axis = -1

    def build(self, input_shape):
        self.add_weight(name="kernel", shape=(input_shape[-1], self.units),
                        initializer=self.kernel_initializer,
                        regularizer=self.kernel_regularizer)
        if self.use_bias:
            self.add_weight(name="bias", shape=(self.units,), initializer=self.bias_initializer,
                            regularizer=self.bias_regularizer)

    def forward(self, x, training=False, workspace=None):
        ctx = Ctx()
        ctx.x_shape, ctx.ws = x.shape, workspace
        x2 = x.reshape(-1, x.shape[-1])
        z = _matmul(x2, self.kernel)
        ctx.x2 = x2
        bias = self.bias if self.use_bias else None
        relu = self.activation is _activations.relu
        ctx.fused_relu = False
        if _elementwise is not None and z.dtype == self.kernel.dtype and z.flags.c_contiguous \
                and (relu or bias is not None):
            # Bias and ReLU in one compiled pass over the product, in place; the
            # ReLU's output keeps the sign of its input, all its backward needs.
            _elementwise.bias_act(z, bias, relu, get_num_threads())
            if relu:
                ctx.fused_relu = True
                ctx.out = z
                ctx.preact = None
                return z.reshape(x.shape[:-1] + (self.units,)), ctx
        elif bias is not None:
            z += bias
        return self._activate(z.reshape(x.shape[:-1] + (self.units,)), ctx), ctx

    def backward(self, dout, ctx, need_dx=True):
        if ctx.fused_relu:
            out = ctx.out
            shape = ctx.x_shape[:-1] + (self.units,)
            d2 = check_dout(dout, shape, out.dtype).reshape(out.shape)
            dz = empty(ctx.ws, "dz", out.shape, out.dtype)
            if self.use_bias:
                # ReLU's backward and the bias gradient in one compiled pass.
                db = empty(ctx.ws, "dbias", self.bias.shape, self.bias.dtype)
                _elementwise.column_sum(d2, out, dz, db, get_num_threads())
                return self._backward_z(dz, ctx, need_dx, db)
            _elementwise.relu_backward(d2.reshape(-1), out.reshape(-1), dz.reshape(-1),
                                       get_num_threads())
            return self._backward_z(dz, ctx, need_dx)
        return self._backward_z(self._deactivate(dout, ctx), ctx, need_dx)

    def backward_logits(self, dz, ctx, need_dx=True):
        return self._backward_z(dz, ctx, need_dx)

    def _backward_z(self, dz, ctx, need_dx, db=None):
        d2 = dz.reshape(-1, self.units)
        dk = empty(ctx.ws, "dkernel", self.kernel.shape, self.kernel.dtype)
        _matmul(ctx.x2.T, d2, out=dk)
        wg = [(self.kernel, dk)]
        if self.use_bias:
            if db is None:
                db = empty(ctx.ws, "dbias", self.bias.shape, self.bias.dtype)
                if _elementwise is not None and d2.dtype == db.dtype and d2.flags.c_contiguous:
                    _elementwise.column_sum(d2, None, None, db, get_num_threads())
                else:
                    np.add.reduce(d2, axis=0, out=db)
            wg.append((self.bias, db))
        if not need_dx:
            return None, wg
        dx = empty(ctx.ws, "dx", (d2.shape[0], self.kernel.shape[0]), d2.dtype)
        return _matmul(d2, self.kernel.T, out=dx).reshape(ctx.x_shape), wg

    def get_config(self):
        config = super().get_config()
        config.update({
            "units": self.units, "activation": _activations.serialize(self.activation),
            "use_bias": self.use_bias,
            "kernel_initializer": _initializers.serialize(self.kernel_initializer),
            "bias_initializer": _initializers.serialize(self.bias_initializer),
            "kernel_regularizer": _regularizers.serialize(self.kernel_regularizer),
            "bias_regularizer": _regularizers.serialize(self.bias_regularizer),
        })
        return config


class Dropout(Layer):
    """Inverted dropout: in training, zero each element with probability ``rate`` and
    scale the rest by ``1 / (1 - rate)``; the identity otherwise.

    ``seed`` fixes this layer's own generator; without it the seed is drawn from
    fastconv's global generator when the layer is made (see ``set_random_seed``).
    ``noise_shape`` (None entries mean the input's size) shares one mask along axes.
    """

    def __init__(self, rate: float, noise_shape: Optional[Sequence[Optional[int]]] = None,
                 seed: Optional[int] = None, **kwargs: Any):
        super().__init__(**kwargs)
        if isinstance(rate, bool) or not isinstance(rate, (int, float, np.floating)) \
                or not 0 <= rate < 1:
            raise fail("rate", "a number in [0, 1)", rate)
        self.rate = float(rate)
        self.noise_shape = None if noise_shape is None else tuple(noise_shape)
        self.seed = seed
        self._rng = np.random.default_rng(seed if seed is not None else child_seed())
        # Key of the compiled counter-based generator (see _elementwise.dropout_forward):
        # call number `_step` of this layer draws its mask from (key, _step).
        self._key = int(self._rng.integers(0, 2**63))
        self._step = 0
        self._step_lock = threading.Lock()

    def forward(self, x, training=False, workspace=None):
        if not training or self.rate == 0:
            return x, None
        ctx = Ctx()
        ctx.ws = workspace
        if self.noise_shape is None and _elementwise is not None and x.flags.c_contiguous \
                and x.dtype in (np.float32, np.float64):
            # One compiled pass: mask drawn, applied and scaled together.
            out = empty(workspace, "out", x.shape, x.dtype)
            keep = ctx.keep8 = empty(workspace, "keep", x.shape, x.dtype)
            with self._step_lock:
                step = self._step
                self._step += 1
            _elementwise.dropout_forward(x.reshape(-1), out.reshape(-1), keep.reshape(-1),
                                         self.rate, self._key, step, get_num_threads())
            ctx.mask = keep
            return out, ctx
        ctx.keep8 = None
        shape = x.shape if self.noise_shape is None else tuple(
            x.shape[i] if s is None else s for i, s in enumerate(self.noise_shape))
        dtype = x.dtype if x.dtype in (np.float32, np.float64) else np.float32
        uniform = empty(workspace, "uniform", shape, dtype)
        with self._step_lock:
            self._rng.random(out=uniform, dtype=dtype)
        keep = ctx.mask = np.greater_equal(uniform, self.rate)
        out = np.multiply(x, keep, dtype=x.dtype)
        out *= x.dtype.type(1 / (1 - self.rate))
        return out, ctx

    def backward(self, dout, ctx, need_dx=True):
        if ctx is None:
            return dout, []
        if ctx.keep8 is not None and dout.flags.c_contiguous and dout.dtype == ctx.keep8.dtype:
            dx = empty(ctx.ws, "dx", dout.shape, dout.dtype)
            _elementwise.dropout_backward(dout.reshape(-1), ctx.keep8.reshape(-1),
                                          dx.reshape(-1), get_num_threads())
            return dx, []
        dx = np.multiply(dout, ctx.mask, dtype=dout.dtype)
        dx *= dout.dtype.type(1 / (1 - self.rate))
        return dx, []

    def get_config(self):
        config = super().get_config()
        config.update({"rate": self.rate, "seed": self.seed,
                       "noise_shape": None if self.noise_shape is None
                       else list(self.noise_shape)})
        return config


class Activation(_ActivationMixin, Layer):
    """Applies ``activation`` (a name from :mod:`fastconv.activations` or a callable)."""

    def __init__(self, activation: Any, **kwargs: Any):
        super().__init__(**kwargs)
        self.activation = _activations.get(activation)

    def forward(self, x, training=False, workspace=None):
        ctx = Ctx()
        return self._activate(x, ctx), ctx

    def backward(self, dout, ctx, need_dx=True):
        return self._deactivate(dout, ctx), []

    def backward_logits(self, dz, ctx, need_dx=True):
        return dz, []

    def get_config(self):
        config = super().get_config()
        config["activation"] = _activations.serialize(self.activation)
        return config


class ReLU(Layer):
    """``min(max_value, x)`` for ``x >= threshold``, else ``negative_slope * (x - threshold)``.

    With the defaults this is plain ReLU on :func:`fastconv.ops.relu_forward`.
    """

    def __init__(self, max_value: Optional[float] = None, negative_slope: float = 0.0,
                 threshold: float = 0.0, **kwargs: Any):
        super().__init__(**kwargs)
        if max_value is not None and max_value < 0:
            raise fail("max_value", "None or a number >= 0", max_value)
        if negative_slope < 0:
            raise fail("negative_slope", "a number >= 0", negative_slope)
        self.max_value = None if max_value is None else float(max_value)
        self.negative_slope, self.threshold = float(negative_slope), float(threshold)

    def _plain(self):
        return self.max_value is None and self.negative_slope == 0 and self.threshold == 0

    def forward(self, x, training=False, workspace=None):
        if self._plain():
            return ops.relu_forward(x)
        t = x.dtype.type(self.threshold)
        above = x >= t
        out = np.where(above, x, x.dtype.type(self.negative_slope) * (x - t))
        slope = np.where(above, 1, self.negative_slope).astype(x.dtype)
        if self.max_value is not None:
            capped = out > self.max_value
            out = np.where(capped, x.dtype.type(self.max_value), out)
            slope[capped] = 0
        return out, slope

    def backward(self, dout, ctx, need_dx=True):
        if self._plain():
            return ops.relu_backward(dout, ctx), []
        return dout * ctx, []

    def get_config(self):
        config = super().get_config()
        config.update({"max_value": self.max_value, "negative_slope": self.negative_slope,
                       "threshold": self.threshold})
        return config


class LeakyReLU(Activation):
    """``x if x > 0 else negative_slope * x`` (Keras default 0.3; ``alpha`` also accepted)."""

    def __init__(self, negative_slope: float = 0.3, **kwargs: Any):
        if "alpha" in kwargs:
            negative_slope = kwargs.pop("alpha")
        super().__init__(_activations.LeakyReLUFunction(negative_slope), **kwargs)
        self.negative_slope = float(negative_slope)

    def get_config(self):
        config = Layer.get_config(self)
        config["negative_slope"] = self.negative_slope
        return config


class ELU(Activation):
    """``x if x > 0 else alpha * (exp(x) - 1)``."""

    def __init__(self, alpha: float = 1.0, **kwargs: Any):
        super().__init__(_activations.ELUFunction(alpha), **kwargs)
        self.alpha = float(alpha)

    def get_config(self):
        config = Layer.get_config(self)
        config["alpha"] = self.alpha
        return config


class Softmax(Activation):
    """Softmax along ``axis``."""

    def __init__(self, axis: int = -1, **kwargs: Any):
        super().__init__(_activations.SoftmaxFunction(axis), **kwargs)
        self.axis = int(axis)

    def get_config(self):
        config = Layer.get_config(self)
        config["axis"] = self.axis
        return config


class BatchNormalization(Layer):
    """Batch normalisation over every axis but ``axis`` (the channels).

    Training: ``y = gamma * (x - mean_B) / sqrt(var_B + epsilon) + beta`` with the batch's
    mean and (biased) variance, and ``moving = momentum * moving + (1 - momentum) * batch``.
    Inference uses the moving statistics. Weights, in Keras's order: ``gamma``, ``beta``
    (trainable), ``moving_mean``, ``moving_variance`` (not trainable), each ``(C,)``.
    """

    def __init__(self, axis: int = -1, momentum: float = 0.99, epsilon: float = 1e-3,
                 center: bool = True, scale: bool = True, beta_initializer: Any = "zeros",
                 gamma_initializer: Any = "ones", moving_mean_initializer: Any = "zeros",
                 moving_variance_initializer: Any = "ones", beta_regularizer: Any = None,
                 gamma_regularizer: Any = None, **kwargs: Any):
        super().__init__(**kwargs)
        if not isinstance(axis, (int, np.integer)) or isinstance(axis, bool):
            raise fail("axis", "an int", axis, TypeError)
        if not 0 <= momentum <= 1:
            raise fail("momentum", "a number in [0, 1]", momentum)
        if not epsilon > 0:
            raise fail("epsilon", "a number > 0", epsilon)
        self.axis, self.momentum, self.epsilon = int(axis), float(momentum), float(epsilon)
        self.center, self.scale = bool(center), bool(scale)
        self.beta_initializer = _initializers.get(beta_initializer, "beta_initializer")
        self.gamma_initializer = _initializers.get(gamma_initializer, "gamma_initializer")
        self.moving_mean_initializer = _initializers.get(moving_mean_initializer,
                                                         "moving_mean_initializer")
        self.moving_variance_initializer = _initializers.get(moving_variance_initializer,
                                                             "moving_variance_initializer")
        self.beta_regularizer = _regularizers.get(beta_regularizer, "beta_regularizer")
        self.gamma_regularizer = _regularizers.get(gamma_regularizer, "gamma_regularizer")

    def compute_output_shape(self, input_shape):
        if not -len(input_shape) < self.axis < len(input_shape) or self.axis % len(
                input_shape) == 0:
            raise self._shape_error(input_shape, f"axis={self.axis} is not a feature axis.")
        if input_shape[self.axis] is None:
            raise self._shape_error(input_shape, f"the size of axis {self.axis} must be known.")
        return tuple(input_shape)

    def build(self, input_shape):
        c = (input_shape[self.axis],)
        if self.scale:
            self.add_weight(name="gamma", shape=c, initializer=self.gamma_initializer,
                            regularizer=self.gamma_regularizer)
        if self.center:
            self.add_weight(name="beta", shape=c, initializer=self.beta_initializer,
                            regularizer=self.beta_regularizer)
        self.add_weight(name="moving_mean", shape=c, initializer=self.moving_mean_initializer,
                        trainable=False)
        self.add_weight(name="moving_variance", shape=c,
                        initializer=self.moving_variance_initializer, trainable=False)

    def _bshape(self, x):
        shape = [1] * x.ndim
        shape[self.axis] = x.shape[self.axis]
        return tuple(shape)

    @property
    def _feature_axis(self):
        return self.axis

    def forward(self, x, training=False, workspace=None):
        # As in Keras, a frozen BatchNormalization (trainable=False) runs in inference
        # mode: fine-tuning leaves its statistics alone.
        training = training and self.trainable
        axes = tuple(i for i in range(x.ndim) if i != self.axis % x.ndim)
        bs = self._bshape(x)
        dt = x.dtype.type
        if training:
            mean = x.mean(axis=axes)
            var = x.var(axis=axes)
            m = dt(self.momentum)
            self.moving_mean *= m
            self.moving_mean += (1 - m) * mean
            self.moving_variance *= m
            self.moving_variance += (1 - m) * var
        else:
            mean, var = self.moving_mean, self.moving_variance
        inv = (1 / np.sqrt(var + dt(self.epsilon))).astype(x.dtype)
        xhat = (x - mean.reshape(bs)) * inv.reshape(bs)
        out = xhat * self.gamma.reshape(bs) if self.scale else xhat.copy()
        if self.center:
            out += self.beta.reshape(bs)
        return out, (xhat, inv, axes, bs, training)

    def backward(self, dout, ctx, need_dx=True):
        xhat, inv, axes, bs, training = ctx
        wg = []
        if self.scale:
            wg.append((self.gamma, (dout * xhat).sum(axis=axes)))
            dxhat = dout * self.gamma.reshape(bs)
        else:
            dxhat = dout
        if self.center:
            wg.append((self.beta, dout.sum(axis=axes)))
        if not training:
            return dxhat * inv.reshape(bs), wg
        m = dout.size // dout.shape[self.axis]
        s1 = dxhat.sum(axis=axes).reshape(bs)
        s2 = (dxhat * xhat).sum(axis=axes).reshape(bs)
        return (inv.reshape(bs) / m) * (m * dxhat - s1 - xhat * s2), wg

    def get_config(self):
        config = super().get_config()
        config.update({
            "axis": self.axis, "momentum": self.momentum, "epsilon": self.epsilon,
            "center": self.center, "scale": self.scale,
            "beta_initializer": _initializers.serialize(self.beta_initializer),
            "gamma_initializer": _initializers.serialize(self.gamma_initializer),
            "moving_mean_initializer": _initializers.serialize(self.moving_mean_initializer),
            "moving_variance_initializer": _initializers.serialize(
                self.moving_variance_initializer),
            "beta_regularizer": _regularizers.serialize(self.beta_regularizer),
            "gamma_regularizer": _regularizers.serialize(self.gamma_regularizer),
        })
        return config


class Maxout(Layer):
    """Maxout unit: ``out = max_k (x @ kernel[k] + bias[k])`` over ``num_pieces`` pieces.

    With ``num_pieces=2`` this is the lecture's ``max(w1.x + b1, w2.x + b2)`` (Keras 1's
    ``MaxoutDense``, whose weight layout this keeps). Weights: ``kernel``
    (num_pieces, in, units) and ``bias`` (num_pieces, units). Input ``(N, ..., in)`` gives
    ``(N, ..., units)``; the gradient of each output goes to the piece that won.
    """

    def __init__(self, units: int, num_pieces: int = 2, use_bias: bool = True,
                 kernel_initializer: Any = "glorot_uniform", bias_initializer: Any = "zeros",
                 kernel_regularizer: Any = None, bias_regularizer: Any = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.units = _positive_int("units", units)
        self.num_pieces = _positive_int("num_pieces", num_pieces)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = _initializers.get(kernel_initializer, "kernel_initializer")
        self.bias_initializer = _initializers.get(bias_initializer, "bias_initializer")
        self.kernel_regularizer = _regularizers.get(kernel_regularizer, "kernel_regularizer")
        self.bias_regularizer = _regularizers.get(bias_regularizer, "bias_regularizer")

    def compute_output_shape(self, input_shape):
        if len(input_shape) < 2 or input_shape[-1] is None:
            raise self._shape_error(input_shape, "the last axis must have a known size.")
        return tuple(input_shape[:-1]) + (self.units,)

    def build(self, input_shape):
        p, n, u = self.num_pieces, input_shape[-1], self.units
        # Glorot fans of one piece, (in, units), not of the 3-D array.
        init = self.kernel_initializer
        kernel = np.stack([np.asarray(init((n, u), dtype=self.dtype)) for _ in range(p)])
        self.add_weight(name="kernel", shape=(p, n, u),
                        initializer=lambda shape, dtype=None: kernel,
                        regularizer=self.kernel_regularizer)
        if self.use_bias:
            self.add_weight(name="bias", shape=(p, u), initializer=self.bias_initializer,
                            regularizer=self.bias_regularizer)

    _feature_axis = -1

    def forward(self, x, training=False, workspace=None):
        p, u = self.num_pieces, self.units
        x2 = x.reshape(-1, x.shape[-1])
        n = x2.shape[1]
        wflat = self.kernel.transpose(1, 0, 2).reshape(n, p * u)
        z = (x2 @ wflat).reshape(-1, p, u)
        if self.use_bias:
            z += self.bias
        win = np.argmax(z, axis=1)
        out = np.take_along_axis(z, win[:, None, :], axis=1)[:, 0, :]
        return out.reshape(x.shape[:-1] + (u,)), (x.shape, x2, win, wflat)

    def backward(self, dout, ctx, need_dx=True):
        x_shape, x2, win, wflat = ctx
        p, u = self.num_pieces, self.units
        d2 = dout.reshape(-1, u)
        dz = np.zeros((d2.shape[0], p, u), dout.dtype)
        np.put_along_axis(dz, win[:, None, :], d2[:, None, :], axis=1)
        dzf = dz.reshape(-1, p * u)
        n = x2.shape[1]
        wg = [(self.kernel, (x2.T @ dzf).reshape(n, p, u).transpose(1, 0, 2).copy())]
        if self.use_bias:
            wg.append((self.bias, dz.sum(axis=0)))
        return (dzf @ wflat.T).reshape(x_shape), wg

    def get_config(self):
        config = super().get_config()
        config.update({
            "units": self.units, "num_pieces": self.num_pieces, "use_bias": self.use_bias,
            "kernel_initializer": _initializers.serialize(self.kernel_initializer),
            "bias_initializer": _initializers.serialize(self.bias_initializer),
            "kernel_regularizer": _regularizers.serialize(self.kernel_regularizer),
            "bias_regularizer": _regularizers.serialize(self.bias_regularizer),
        })
        return config


class _Merge(Layer):
    """Base of the merging layers: called on a list of tensors of compatible shapes
    (NumPy broadcasting, the batch axis included), returns one tensor."""

    _min_inputs, _max_inputs = 2, None

    def compute_output_shape(self, input_shape):
        if not isinstance(input_shape, list):
            raise self._shape_error(input_shape, "it must be called on a list of tensors.")
        n = len(input_shape)
        if n < self._min_inputs or (self._max_inputs is not None and n > self._max_inputs):
            want = (f"exactly {self._max_inputs}" if self._max_inputs == self._min_inputs
                    else f"at least {self._min_inputs}")
            raise ValueError(f"Layer '{self.name}' ({type(self).__name__}) must be called on "
                             f"{want} inputs. Received: {n} inputs.")
        return self._merged_shape(input_shape)

    def _merged_shape(self, shapes):
        out = shapes[0]
        for s in shapes[1:]:
            try:
                out = broadcast_shape(out, s, "inputs")
            except ValueError:
                raise ValueError(
                    f"Layer '{self.name}' ({type(self).__name__}) needs inputs of the same "
                    f"shape (or shapes that broadcast). Received: shapes "
                    f"{', '.join(_fmt(t) for t in shapes)}") from None
        return out

    def forward(self, inputs, training=False, workspace=None):
        if not isinstance(inputs, (list, tuple)):
            raise fail("inputs", "a list of arrays", type(inputs).__name__, TypeError)
        out = inputs[0]
        for x in inputs[1:]:
            out = self._combine(out, x)
        return self._finish(out, len(inputs)), [x for x in inputs]

    def _finish(self, out, n):
        return out

    def backward(self, dout, xs, need_dx=True):
        return [unbroadcast(g, x.shape) for g, x in zip(self._partials(dout, xs), xs)], []

    def _partials(self, dout, xs):
        return [dout] * len(xs)


class Add(_Merge):
    """Element-wise sum of a list of tensors: ``Add()([x, residual])``."""

    @staticmethod
    def _combine(a, b):
        return a + b


class Subtract(_Merge):
    """``x0 - x1`` of a list of exactly two tensors."""

    _min_inputs = _max_inputs = 2

    @staticmethod
    def _combine(a, b):
        return a - b

    def _partials(self, dout, xs):
        return [dout, -dout]


class Multiply(_Merge):
    """Element-wise product of a list of tensors."""

    @staticmethod
    def _combine(a, b):
        return a * b

    def _partials(self, dout, xs):
        out = []
        for i in range(len(xs)):
            g = dout
            for j, x in enumerate(xs):
                if j != i:
                    g = g * x
            out.append(g)
        return out


class Average(_Merge):
    """Element-wise mean of a list of tensors."""

    @staticmethod
    def _combine(a, b):
        return a + b

    def _finish(self, out, n):
        return out * out.dtype.type(1 / n)

    def _partials(self, dout, xs):
        return [dout * dout.dtype.type(1 / len(xs))] * len(xs)


class Maximum(_Merge):
    """Element-wise maximum of a list of tensors; a tie's gradient goes to the first."""

    @staticmethod
    def _combine(a, b):
        return np.maximum(a, b)

    def _partials(self, dout, xs):
        best = xs[0]
        winner = np.zeros(np.broadcast_shapes(*[x.shape for x in xs]), dtype=np.intp)
        for i, x in enumerate(xs[1:], 1):
            better = self._better(x, best)
            winner = np.where(better, i, winner)
            best = np.where(better, x, best)
        return [dout * (winner == i) for i in range(len(xs))]

    @staticmethod
    def _better(x, best):
        return x > best


class Minimum(Maximum):
    """Element-wise minimum of a list of tensors; a tie's gradient goes to the first."""

    @staticmethod
    def _combine(a, b):
        return np.minimum(a, b)

    @staticmethod
    def _better(x, best):
        return x < best


class Concatenate(_Merge):
    """Tensors of a list joined along ``axis`` (default the last: channels)."""

    def __init__(self, axis: int = -1, **kwargs: Any):
        super().__init__(**kwargs)
        if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
            raise fail("axis", "an int", axis, TypeError)
        self.axis = int(axis)

    def _merged_shape(self, shapes):
        if self.axis % len(shapes[0]) == 0:
            raise ValueError(f"Layer '{self.name}' (Concatenate) cannot join along the batch "
                             f"axis (axis={self.axis}).")
        return concat_shape(shapes, self.axis, f"Layer '{self.name}' (Concatenate)")

    def forward(self, inputs, training=False, workspace=None):
        if not isinstance(inputs, (list, tuple)):
            raise fail("inputs", "a list of arrays", type(inputs).__name__, TypeError)
        return np.concatenate(inputs, axis=self.axis), [x.shape[self.axis] for x in inputs]

    def backward(self, dout, sizes, need_dx=True):
        return np.split(dout, np.cumsum(sizes)[:-1], axis=self.axis), []

    def get_config(self):
        config = super().get_config()
        config["axis"] = self.axis
        return config


def add(inputs: Sequence[Any], **kwargs: Any) -> Any:
    """``Add(**kwargs)(inputs)``."""
    return Add(**kwargs)(inputs)


def subtract(inputs: Sequence[Any], **kwargs: Any) -> Any:
    """``Subtract(**kwargs)(inputs)``."""
    return Subtract(**kwargs)(inputs)


def multiply(inputs: Sequence[Any], **kwargs: Any) -> Any:
    """``Multiply(**kwargs)(inputs)``."""
    return Multiply(**kwargs)(inputs)


def average(inputs: Sequence[Any], **kwargs: Any) -> Any:
    """``Average(**kwargs)(inputs)``."""
    return Average(**kwargs)(inputs)


def maximum(inputs: Sequence[Any], **kwargs: Any) -> Any:
    """``Maximum(**kwargs)(inputs)``."""
    return Maximum(**kwargs)(inputs)


def minimum(inputs: Sequence[Any], **kwargs: Any) -> Any:
    """``Minimum(**kwargs)(inputs)``."""
    return Minimum(**kwargs)(inputs)


def concatenate(inputs: Sequence[Any], axis: int = -1, **kwargs: Any) -> Any:
    """``Concatenate(axis=axis, **kwargs)(inputs)``."""
    return Concatenate(axis=axis, **kwargs)(inputs)


_LAYERS = {c.__name__: c for c in (
    InputLayer, Conv2D, MaxPooling2D, AveragePooling2D, Flatten, Dense, Dropout, Activation,
    ReLU, LeakyReLU, ELU, Softmax, BatchNormalization, Maxout, Add, Subtract, Multiply,
    Average, Maximum, Minimum, Concatenate)}

# Keras 3's preprocessing layers live in fastconv.preprocessing, which builds on the
# Layer class above; they are importable from here as in Keras, and loadable from
# saved models, through a lazy lookup (an import at the top would be circular).
_PREPROCESSING = ("Rescaling", "RandomFlip", "RandomTranslation", "RandomRotation")


def __getattr__(name: str) -> Any:
    if name in _PREPROCESSING:
        from . import preprocessing

        return getattr(preprocessing, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

# Keras's other spellings.
Convolution2D = Conv2D
MaxPool2D = MaxPooling2D
AvgPool2D = AveragePooling2D


def get_layer_class(class_name: str) -> type:
    """The layer class saved under ``class_name``; only fastconv's own layers load."""
    if class_name in _PREPROCESSING:
        return __getattr__(class_name)
    if class_name not in _LAYERS:
        raise ValueError(
            f"Unknown layer class {class_name!r} in the saved model; fastconv knows "
            f"{sorted(set(_LAYERS) | set(_PREPROCESSING))}"
        )
    return _LAYERS[class_name]

