"""The base of every layer: :class:`Layer` (weights, building, calling on arrays and on
symbolic tensors, tracing a subclass's ``call``), :class:`InputLayer` and
:func:`Input`, and the argument helpers the layers share."""

from __future__ import annotations

import inspect
import threading
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .. import activations as _activations
from .. import constraints as _constraints
from .. import initializers as _initializers
from .. import regularizers as _regularizers
from .._names import snake_case as _snake
from ..backends import _aligned
from ..backends._args import fail
from ..graph import Graph, KerasTensor, Node, flatten, is_symbolic, pack, record, tracing

Shape = Tuple[Optional[int], ...]

_name_counts: Dict[str, int] = {}
_name_lock = threading.Lock()


class Ctx:
    """What one call of a layer keeps for its backward pass (attributes per layer)."""

    __slots__ = ("__dict__",)


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


def _single(name: str, value: Any) -> int:
    """A positive int, or a tuple/list of one (Keras's 1-D sizes and strides)."""
    if isinstance(value, (tuple, list)):
        if len(value) != 1:
            raise fail(name, "a positive int or a tuple of one", value)
        value = value[0]
    return _positive_int(name, value)


def _padding(value: Any) -> str:
    if not isinstance(value, str) or value.lower() not in ("valid", "same"):
        raise fail("padding", "'valid' or 'same'", value)
    return value.lower()


def _data_format(value: Any) -> str:
    if value is None:
        from ..config import image_data_format

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
    activity_regularizer : str, Regularizer or dict, optional
        A penalty of the layer's output, divided by the batch size, added to the
        training loss (its gradient to the output's gradient) when a model trains.
    batch_size : int, optional
        Fixes the batch axis of ``input_shape`` (informational).

    Notes
    -----
    A subclass may create sublayers in ``__init__`` (as attributes, or lists and dicts
    of them), weights in ``build(input_shape)`` with :meth:`add_weight`, and compose
    them in ``call(inputs, training=None)``; fastconv traces ``call`` on symbolic
    tensors and differentiates the recorded graph.
    """

    _is_input_layer = False

    def __init__(self, name: Optional[str] = None, trainable: bool = True, dtype: Any = None,
                 input_shape: Optional[Sequence[int]] = None, batch_size: Optional[int] = None,
                 batch_input_shape: Optional[Sequence[Optional[int]]] = None,
                 activity_regularizer: Any = None, **kwargs: Any):
        kwargs.pop("autocast", None)  # Keras's mixed-precision switch: nothing to do here
        if kwargs:
            raise TypeError(
                f"{type(self).__name__} got unexpected keyword argument(s) "
                f"{', '.join(sorted(kwargs))}"
            )
        if name is not None and not isinstance(name, str):
            raise fail("name", "a string", name, TypeError)
        self.name = name or _unique_name(_snake(type(self).__name__))
        self.__dict__["_trainable"] = bool(trainable)
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
        # Its penalty of the output is added to the training loss by the graph running
        # the layer (fastconv._activity).
        self.activity_regularizer = _regularizers.get(activity_regularizer,
                                                      "activity_regularizer")
        self.built = False
        self.input_shape: Optional[Shape] = None
        self.output_shape: Optional[Shape] = None
        self._weight_names: List[str] = []
        self._weight_trainable: List[bool] = []
        self._weight_store: Dict[str, np.ndarray] = {}
        self.regularizers: Dict[str, Any] = {}
        # Projections applied after each optimizer step (fastconv.constraints).
        self.constraints: Dict[str, Any] = {}
        self._inbound_nodes: List[Node] = []
        self._traced: Dict[tuple, tuple] = {}
        self._build_lock = threading.RLock()

    @property
    def trainable(self) -> bool:
        """Whether the optimizer trains this layer's weights. Setting it sets it on every
        sublayer too, as in Keras (``base_model.trainable = False`` freezes the whole
        base); a frozen BatchNormalization runs in inference mode."""
        return self.__dict__["_trainable"]

    @trainable.setter
    def trainable(self, value: bool) -> None:
        self.__dict__["_trainable"] = bool(value)
        for layer in self._flat_sublayers():
            layer.__dict__["_trainable"] = bool(value)

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
        # (on a 64-byte boundary: the compiled kernels load weights by AVX-512 vectors;
        # updates and set_weights write in place, so it stays there)
        value = _aligned.aligned(np.ascontiguousarray(value, dtype=wdtype))
        self._weight_store[name] = value
        if not hasattr(type(self), name) and name not in self.__dict__:
            self.__dict__[name] = value
        self._weight_names.append(name)
        self._weight_trainable.append(bool(trainable))
        if regularizer is not None:
            self.regularizers[name] = _regularizers.get(regularizer, "regularizer")
        if constraint is not None:
            self.constraints[name] = _constraints.get(constraint, "constraint")
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
        activity = getattr(self, "activity_regularizer", None)
        if activity is not None:
            config["activity_regularizer"] = _regularizers.serialize(activity)
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
                            "_trainable", "function",
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


class _KernelBias:
    """The four weight arguments of a layer with a kernel and a bias, read and written
    the same way by each such layer."""

    def _weight_args(self, kernel_initializer, bias_initializer, kernel_regularizer,
                     bias_regularizer, kernel_constraint=None, bias_constraint=None):
        self.kernel_initializer = _initializers.get(kernel_initializer, "kernel_initializer")
        self.bias_initializer = _initializers.get(bias_initializer, "bias_initializer")
        self.kernel_regularizer = _regularizers.get(kernel_regularizer, "kernel_regularizer")
        self.bias_regularizer = _regularizers.get(bias_regularizer, "bias_regularizer")
        self.kernel_constraint = _constraints.get(kernel_constraint, "kernel_constraint")
        self.bias_constraint = _constraints.get(bias_constraint, "bias_constraint")

    def _weight_config(self) -> dict:
        return {"kernel_initializer": _initializers.serialize(self.kernel_initializer),
                "bias_initializer": _initializers.serialize(self.bias_initializer),
                "kernel_regularizer": _regularizers.serialize(self.kernel_regularizer),
                "bias_regularizer": _regularizers.serialize(self.bias_regularizer),
                "kernel_constraint": _constraints.serialize(self.kernel_constraint),
                "bias_constraint": _constraints.serialize(self.bias_constraint)}

    def _dense_shape(self, input_shape):
        """``(..., in) -> (..., units)``, as Dense and Maxout compute it."""
        if len(input_shape) < 2 or input_shape[-1] is None:
            raise self._shape_error(input_shape, "the last axis must have a known size.")
        return tuple(input_shape[:-1]) + (self.units,)


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
        self._dtype_given = self.dtype is not None
        if self.dtype is None:
            from ..config import floatx

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
