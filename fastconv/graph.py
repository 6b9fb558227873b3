"""Symbolic tensors, nodes, and the graph a model runs forwards and backwards.

This is the core of fastconv's functional API (Keras: ``keras.Input``, calling layers
on ``KerasTensor`` objects, ``keras.Model(inputs, outputs)``).

- :class:`KerasTensor` is a symbolic tensor: a shape (batch axis ``None``) and a dtype,
  and the node that made it. Calling a layer on symbolic tensors records a
  :class:`Node` and returns new symbolic tensors; nothing is computed.
- :class:`Graph` takes input and output tensors, walks the nodes between them, checks
  the topology, and runs it: :meth:`Graph.forward` calls each layer's
  ``forward(inputs, training, workspace) -> (outputs, ctx)`` in topological order and
  keeps the contexts on a tape; :meth:`Graph.backward` walks the tape in reverse,
  calling ``backward(dout, ctx, need_dx) -> (dx, [(weight, grad), ...])``. Gradients
  of a tensor read by several layers, and of a weight used by several calls, add up.
- Layers keep weights and configuration only: everything a call needs for its backward
  pass is in its context, so one layer can be called at several points of a graph and
  two threads can run one model at once.

The execution plan (:class:`_Plan`) is where the speed-ups that span layers live: a
chain of layers each read only by the next, such as a ``Conv2D(activation='relu')``
and a fusable ``MaxPooling2D``, runs as one fused op (:data:`FUSE_LAYERS`,
:data:`fastconv.layers.fused.FUSIONS`), and the arrays a training step
reuses from one step to the next are kept in per-step :class:`Workspace` objects,
never on the layers.
"""

from __future__ import annotations

import threading
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ._activity import Penalised, penalise

__all__ = ["KerasTensor", "Node", "Graph", "Workspace", "is_symbolic", "FUSE_LAYERS"]

#: Whether graphs run these chains of layers, each one's output read only by the next,
#: as one fused op (:data:`fastconv.layers.fused.FUSIONS`): a
#: ``Conv2D(activation='relu')`` and a ``MaxPooling2D`` (channels-last, strides equal
#: to the pool size, 'valid'); a linear ``Conv2D`` and a ``BatchNormalization``
#: (folded into the convolution outside training), and a ReLU after them; a
#: ``BatchNormalization`` and a ReLU; an ``Add`` and a ReLU. Set to False to run every
#: layer on its own, e.g. to compare the two.
#: (``fastconv.models.FUSE_LAYERS`` is the same switch.)
FUSE_LAYERS = True

_NUMPY_MESSAGE = (
    "{what} was applied to a symbolic tensor ({tensor}). fastconv records and "
    "differentiates only fastconv layers, fastconv.keras.ops functions, activations and "
    "the operators + - * / on tensors; a NumPy function here would give no gradient. "
    "Use the fastconv.keras.ops function of the same name instead."
)


def _fmt(shape) -> str:
    return "(" + ", ".join("None" if s is None else str(s) for s in shape) + ("," if len(
        shape) == 1 else "") + ")"


class KerasTensor:
    """A symbolic tensor: what ``keras.Input`` returns and layers return when called on
    symbolic tensors.

    Attributes
    ----------
    shape : tuple of (int or None)
        Batch axis first, ``None`` where the size is not known.
    dtype : str
        'float32' or 'float64'.
    name : str
    """

    __slots__ = ("shape", "dtype", "name", "_history", "__weakref__")

    def __init__(self, shape: Sequence[Optional[int]], dtype: Any = "float32",
                 name: Optional[str] = None, history: Optional[Tuple] = None):
        self.shape = tuple(None if s is None else int(s) for s in shape)
        self.dtype = np.dtype(dtype).name
        self.name = name or "keras_tensor"
        # (layer, node index in layer._inbound_nodes, index among the node's outputs)
        self._history = history

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def node(self) -> Optional["Node"]:
        if self._history is None:
            return None
        layer, i, _ = self._history
        return layer._inbound_nodes[i]

    def __repr__(self) -> str:
        return (f"<KerasTensor shape={_fmt(self.shape)}, dtype={self.dtype}, "
                f"name={self.name}>")

    # Arithmetic is recorded as operations (fastconv.operations), as in Keras.
    def _op(self, name, *args):
        from . import operations

        return getattr(operations, name)(*args)

    def __add__(self, other):
        return self._op("add", self, other)

    def __radd__(self, other):
        return self._op("add", other, self)

    def __sub__(self, other):
        return self._op("subtract", self, other)

    def __rsub__(self, other):
        return self._op("subtract", other, self)

    def __mul__(self, other):
        return self._op("multiply", self, other)

    def __rmul__(self, other):
        return self._op("multiply", other, self)

    def __truediv__(self, other):
        return self._op("divide", self, other)

    def __rtruediv__(self, other):
        return self._op("divide", other, self)

    def __matmul__(self, other):
        return self._op("matmul", self, other)

    def __rmatmul__(self, other):
        return self._op("matmul", other, self)

    def __neg__(self):
        return self._op("negative", self)

    def __pos__(self):
        return self

    def __abs__(self):
        return self._op("abs", self)

    def __pow__(self, other):
        if isinstance(other, (int, float)) and other == 2:
            return self._op("square", self)
        if isinstance(other, (int, float)) and other == 0.5:
            return self._op("sqrt", self)
        raise TypeError("fastconv records only x ** 2 and x ** 0.5 on symbolic tensors; "
                        f"use fastconv.keras.ops. Received: exponent {other!r}")

    def __bool__(self):
        raise TypeError(
            f"A symbolic tensor ({self!r}) has no truth value: its values exist only when "
            "the model runs, so Python control flow (if, while, and, or) on it cannot be "
            "recorded. Use fastconv.keras.ops (maximum, minimum, clip, ...) instead.")

    def __array__(self, *args, **kwargs):
        raise TypeError(_NUMPY_MESSAGE.format(what="A NumPy conversion (np.asarray)",
                                              tensor=repr(self)))

    _UFUNCS = {"add": "add", "subtract": "subtract", "multiply": "multiply",
               "true_divide": "divide", "negative": "negative", "matmul": "matmul"}

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        # ndarray + tensor (a weight or constant on the left) comes here: record it.
        name = self._UFUNCS.get(ufunc.__name__)
        if method == "__call__" and name is not None and not kwargs:
            return self._op(name, *inputs)
        raise TypeError(_NUMPY_MESSAGE.format(what=f"NumPy's {ufunc.__name__}",
                                              tensor=repr(self)))

    def __array_function__(self, func, types, args, kwargs):
        raise TypeError(_NUMPY_MESSAGE.format(what=f"np.{func.__name__}", tensor=repr(self)))


def is_symbolic(x: Any) -> bool:
    """True if ``x`` is a KerasTensor or a list/tuple/dict holding one."""
    if isinstance(x, KerasTensor):
        return True
    if isinstance(x, (list, tuple)):
        return any(is_symbolic(v) for v in x)
    if isinstance(x, dict):
        return any(is_symbolic(v) for v in x.values())
    return False


def flatten(x: Any) -> list:
    """The leaves of a nested list/tuple/dict (dicts in key order), left to right."""
    if isinstance(x, (list, tuple)):
        return [leaf for v in x for leaf in flatten(v)]
    if isinstance(x, dict):
        return [leaf for k in sorted(x) for leaf in flatten(x[k])]
    return [x]


def pack(structure: Any, leaves: list) -> Any:
    """Rebuild ``structure`` (as given to :func:`flatten`) from ``leaves``."""
    return _build(structure, iter(leaves))


def _build(s: Any, it) -> Any:
    # (A module-level function, not a closure over the iterator: a closure that calls
    # itself is a reference cycle, which would keep the leaves, a step's input arrays,
    # alive until the cyclic garbage collector happened to run.)
    if isinstance(s, tuple):
        return tuple(_build(v, it) for v in s)
    if isinstance(s, list):
        return [_build(v, it) for v in s]
    if isinstance(s, dict):
        return {k: _build(s[k], it) for k in sorted(s)}
    return next(it)


class Node:
    """One call of a layer (or operation) on symbolic tensors.

    ``inputs`` are the flat input tensors; ``structure`` is how the call received them
    (a single tensor, or a list, as merge layers take), so the layer is run the same way.
    ``training`` is the ``training=`` argument of the call: None inherits the model's.
    """

    __slots__ = ("layer", "inputs", "structure", "outputs", "training", "__weakref__")

    def __init__(self, layer, inputs, structure, outputs, training=None):
        self.layer, self.inputs, self.structure = layer, list(inputs), structure
        self.outputs, self.training = list(outputs), training

    @property
    def parent_nodes(self) -> List["Node"]:
        return [t.node for t in self.inputs if t.node is not None]

    @property
    def is_input(self) -> bool:
        return not self.inputs and getattr(self.layer, "_is_input_layer", False)


def record(layer, inputs: Any, output_shapes: Any, dtype: Any, training=None) -> Any:
    """Record a call of ``layer`` on symbolic ``inputs``; returns the output tensor(s).

    ``output_shapes`` is one shape (a tuple of ints/None) or a list of shapes.
    """
    flat = flatten(inputs)
    for t in flat:
        if not isinstance(t, KerasTensor):
            raise TypeError(f"Layer '{layer.name}' was called on a mix of symbolic tensors "
                            f"and other values ({type(t).__name__}); all inputs of a call on "
                            "symbolic tensors must be symbolic (keras.Input or layer outputs).")
    multi = isinstance(output_shapes, list)
    shapes = output_shapes if multi else [output_shapes]
    index = len(layer._inbound_nodes)
    outputs = []
    for j, shape in enumerate(shapes):
        name = layer.name if len(shapes) == 1 else f"{layer.name}_{j}"
        outputs.append(KerasTensor(shape, dtype, name=name, history=(layer, index, j)))
    structure = inputs if isinstance(inputs, (list, tuple, dict)) else None
    layer._inbound_nodes.append(Node(layer, flat, structure, outputs, training))
    return outputs if multi else outputs[0]


# -- tracing the call() of subclassed layers -------------------------------------------
class _TraceState(threading.local):
    def __init__(self):
        self.frames: List[dict] = []


_trace = _TraceState()


class tracing:
    """Context in which ``owner.call`` is traced: NumPy arrays that are weights of
    ``owner`` or of its sublayers become symbolic reads of those weights."""

    def __init__(self, owner):
        self.owner = owner

    def __enter__(self):
        index = {}
        for layer in [self.owner] + list(self.owner._flat_sublayers()):
            for name in layer._weight_names:
                index.setdefault(id(layer._weight(name)), (layer, name))
        _trace.frames.append({"index": index, "reads": {}})
        return self

    def __exit__(self, *exc):
        _trace.frames.pop()


def as_symbolic(value: Any, like: KerasTensor) -> KerasTensor:
    """A symbolic tensor for an operand of an operation on symbolic tensors: the tensor
    itself, a read of a traced layer's weight, or a constant."""
    if isinstance(value, KerasTensor):
        return value
    from .operations import Constant, WeightRead

    for frame in reversed(_trace.frames):
        hit = frame["index"].get(id(value))
        if hit is not None:
            layer, name = hit
            if layer._weight(name) is value:
                key = (id(layer), name)
                if key not in frame["reads"]:
                    frame["reads"][key] = WeightRead(layer, name)([])
                return frame["reads"][key]
    arr = np.asarray(value)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"Cannot use a {type(value).__name__} in an operation on symbolic "
                        f"tensors; expected a number or an array of numbers.")
    if arr.dtype.kind == "f" or arr.ndim == 0:
        arr = arr.astype(like.dtype)
    return Constant(arr)([])


# -- workspaces -------------------------------------------------------------------------
class Workspace:
    """Arrays kept from one training step to the next by one step of a plan.

    ``array(key, shape, dtype)`` returns an uninitialised array, the same one on every
    step while the shape and dtype stay; ``sub(i)`` is the workspace of step ``i`` of a
    nested graph. Only the thread that trains uses them; predict and evaluate never do.
    """

    __slots__ = ("_arrays", "_subs")

    def __init__(self):
        self._arrays: Dict[str, np.ndarray] = {}
        self._subs: Dict[int, "Workspace"] = {}

    def array(self, key: str, shape: Tuple[int, ...], dtype: Any) -> np.ndarray:
        a = self._arrays.get(key)
        if a is None or a.shape != shape or a.dtype != dtype:
            a = self._arrays[key] = np.empty(shape, dtype)
        return a

    def sub(self, i: int) -> "Workspace":
        w = self._subs.get(i)
        if w is None:
            w = self._subs[i] = Workspace()
        return w


def empty(ws: Optional[Workspace], key: str, shape: Tuple[int, ...], dtype: Any) -> np.ndarray:
    """An uninitialised array: ``ws``'s kept one inside a training step, a new one else."""
    if ws is None:
        return np.empty(shape, dtype)
    return ws.array(key, shape, dtype)


#: Arrays from this many elements are summed by :func:`fastconv.ops.add` (in parallel,
#: the same bits), smaller ones by NumPy.
ADD_MIN_SIZE = 1 << 15


def add(a: Any, b: Any) -> Any:
    """``a + b`` for two gradients (or merged tensors): on the active backend's ``add``
    for large float arrays of one shape and dtype (a residual connection's two
    gradients), else NumPy's operator (which also broadcasts)."""
    if type(a) is np.ndarray and type(b) is np.ndarray and a.shape == b.shape \
            and a.dtype == b.dtype and a.size >= ADD_MIN_SIZE \
            and a.dtype in (np.float32, np.float64):
        from . import ops

        return ops.add(a, b)
    return a + b


# -- the graph --------------------------------------------------------------------------
class _Step:
    """One entry of a plan: an op (a layer, or a fused chain of layers) on slots of the
    value list."""

    __slots__ = ("op", "ins", "single", "structure", "outs", "training", "nodes", "index",
                 "need_dx", "active")

    def __init__(self, op, ins, structure, outs, training, nodes, index):
        self.op, self.ins, self.structure, self.outs = op, tuple(ins), structure, tuple(outs)
        self.single = structure is None and len(self.ins) == 1
        self.training, self.nodes, self.index = training, nodes, index
        self.need_dx, self.active = True, True


def _has_trainable(op) -> bool:
    """Whether ``op`` has a weight the optimizer trains (asked on every backward pass:
    a primitive layer answers from its flags, without walking sublayers)."""
    pair = getattr(op, "layers", None)
    if pair is not None:  # a fused chain: any of its layers' weights
        return any(_has_trainable(layer) for layer in pair)
    layer = op
    flags = getattr(layer, "_weight_trainable", None)
    if flags is not None and not layer._composite():
        return layer.trainable and True in flags
    return bool(op.trainable_weights)


class _Plan:
    def __init__(self, steps, fused_ops, fuse):
        self.steps, self.fused_ops, self.fuse = steps, fused_ops, fuse
        self.flags: Dict[tuple, list] = {}
        self.workspaces: Dict[int, Workspace] = {}


class Graph:
    """The nodes between ``inputs`` and ``outputs`` (flat lists of KerasTensor), checked
    and ordered, with :meth:`forward` and :meth:`backward`.

    Raises ValueError for an output that cannot be computed from the inputs ("graph
    disconnected"), an input that reaches no output, a cycle, or two layers of one name.
    """

    def __init__(self, inputs: Sequence[KerasTensor], outputs: Sequence[KerasTensor],
                 allow_unused_inputs: bool = False):
        self.inputs, self.outputs = list(inputs), list(outputs)
        for role, ts in (("inputs", self.inputs), ("outputs", self.outputs)):
            for t in ts:
                if not isinstance(t, KerasTensor):
                    raise TypeError(f"`{role}` must hold symbolic tensors (keras.Input(...) "
                                    f"and layer outputs). Received: {type(t).__name__}")
        if len({id(t) for t in self.inputs}) != len(self.inputs):
            raise ValueError("`inputs` lists the same tensor twice.")
        input_ids = {id(t) for t in self.inputs}
        # Depth-first from the outputs: nodes in topological order, each operation's
        # first-visit index (Keras orders model.layers by depth, then by this index).
        order: List[Node] = []
        done, busy, first_seen = set(), set(), {}

        def visit(t: KerasTensor, consumer: str):
            if id(t) in input_ids:
                return
            node = t.node
            if node is None:
                raise ValueError(
                    f"Graph disconnected: tensor {t.name} {_fmt(t.shape)}, needed by "
                    f"{consumer}, is not computed from the model's inputs "
                    f"{[i.name for i in self.inputs]}.")
            if id(node) in done:
                return
            if id(node) in busy:
                raise ValueError(f"The graph has a cycle through layer '{node.layer.name}'.")
            first_seen.setdefault(id(node.layer), len(first_seen))
            if node.is_input:
                raise ValueError(
                    f"Graph disconnected: {consumer} needs the input tensor {t.name} "
                    f"{_fmt(t.shape)}, which is not among the model's inputs "
                    f"{[i.name for i in self.inputs]}.")
            busy.add(id(node))
            for u in node.inputs:
                visit(u, f"layer '{node.layer.name}'")
            busy.discard(id(node))
            done.add(id(node))
            order.append(node)

        for t in self.outputs:
            visit(t, "the model's outputs")
        self.nodes = order
        reached = {id(u) for n in order for u in n.inputs} | {id(t) for t in self.outputs}
        for t in self.inputs:
            if id(t) not in reached and not allow_unused_inputs:
                raise ValueError(f"Input tensor {t.name} {_fmt(t.shape)} does not reach any "
                                 "of the model's outputs; remove it from `inputs` or use it.")
        # Depth of each node: the longest path to an output; operations by depth.
        depth: Dict[int, int] = {}
        for node in reversed(order):
            d = depth.setdefault(id(node), 0)
            for p in node.parent_nodes:
                if id(p) in done:
                    depth[id(p)] = max(depth.get(id(p), 0), d + 1)
        op_depth: Dict[int, int] = {}
        ops: Dict[int, Any] = {}
        for node in order:
            key = id(node.layer)
            op_depth[key] = max(op_depth.get(key, 0), depth[id(node)])
            ops[key] = node.layer
        input_layers = []
        for t in self.inputs:
            if t.node is not None and t.node.is_input:
                input_layers.append(t.node.layer)
        ranked = sorted(ops, key=lambda k: (-op_depth[k], first_seen[k]))
        seen_inputs = {id(la) for la in input_layers}
        self.operations = input_layers + [ops[k] for k in ranked if k not in seen_inputs]
        names = {}
        for op in self.operations:
            if getattr(op, "_is_operation", False):
                continue
            if names.setdefault(op.name, op) is not op:
                raise ValueError(f"The name '{op.name}' is used by two layers of the model; "
                                 "layer names must be unique.")
        self._index()
        self._plan: Optional[_Plan] = None
        self._lock = threading.Lock()

    def _index(self) -> None:
        """Slots of the value list (graph inputs first, then each node's outputs) and
        reader counts, keyed by tensor identity (so made again after unpickling)."""
        self._slot: Dict[int, int] = {id(t): i for i, t in enumerate(self.inputs)}
        for node in self.nodes:
            for t in node.outputs:
                self._slot.setdefault(id(t), len(self._slot))
        self.n_slots = len(self._slot)
        self.out_slots = [self._slot[id(t)] for t in self.outputs]
        self.in_slots = list(range(len(self.inputs)))
        self._readers: Dict[int, int] = {}
        for node in self.nodes:
            for u in node.inputs:
                self._readers[id(u)] = self._readers.get(id(u), 0) + 1

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        del state["_lock"]
        state["_plan"] = None  # made again on first use (it holds module references)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()
        self._index()

    # -- the plan -----------------------------------------------------------------------
    def plan(self) -> _Plan:
        plan = self._plan
        if plan is not None and plan.fuse == FUSE_LAYERS and all(
                f.still_fits() for f in plan.fused_ops):
            return plan
        with self._lock:
            self._plan = self._make_plan()
            return self._plan

    def _make_plan(self) -> _Plan:
        from .layers.fused import FUSIONS

        out_ids = {id(t) for t in self.outputs}
        consumer: Dict[int, Node] = {}
        for node in self.nodes:
            for u in node.inputs:
                consumer[id(u)] = node

        def chain(node: Node, length: int) -> Optional[List[Node]]:
            """node and the length - 1 nodes after it, each the only reader of the one
            before's single output (which is no graph output), or None."""
            nodes = [node]
            while len(nodes) < length:
                last = nodes[-1]
                t = last.outputs[0]
                nxt = consumer.get(id(t))
                if len(last.outputs) != 1 or nxt is None or self._readers.get(id(t)) != 1 \
                        or id(t) in out_ids or len(nxt.inputs) != 1 \
                        or nxt.structure is not None:
                    return None
                nodes.append(nxt)
            return nodes

        fused_into: Dict[int, tuple] = {}
        if FUSE_LAYERS:
            for node in self.nodes:
                for fusion in FUSIONS:
                    if node.structure is not None and not fusion.list_input:
                        continue
                    nodes = chain(node, fusion.arity)
                    if nodes is None or not fusion.fits(*(n.layer for n in nodes)):
                        continue
                    if not fusion.any_training and any(n.training is not None
                                                       for n in nodes):
                        continue
                    fused_into[id(node)] = (nodes, fusion)
                    break
        steps, fused_ops, skip = [], [], set()
        for node in self.nodes:
            if id(node) in skip:
                continue
            nodes, fusion = fused_into.get(id(node), ((node,), None))
            if fusion is not None:
                op = fusion(*(n.layer for n in nodes))
                fused_ops.append(op)
                skip.update(id(n) for n in nodes[1:])
            else:
                op = node.layer
            steps.append(_Step(op, [self._slot[id(u)] for u in node.inputs], node.structure,
                               [self._slot[id(t)] for t in nodes[-1].outputs], node.training,
                               tuple(nodes), len(steps)))
        return _Plan(steps, fused_ops, FUSE_LAYERS)

    def _flags(self, plan: _Plan, input_grads: bool) -> list:
        """Per step: (needs dx, runs backward at all), from which tensors depend on a
        trainable weight (or on the inputs, when their gradient is asked for)."""
        key = (input_grads,) + tuple(_has_trainable(s.op) for s in plan.steps)
        flags = plan.flags.get(key)
        if flags is None:
            req = [input_grads] * len(self.inputs) + [False] * (self.n_slots - len(self.inputs))
            flags = []
            for s, has_w in zip(plan.steps, key[1:]):
                need = any(req[i] for i in s.ins)
                for o in s.outs:
                    req[o] = need or has_w
                flags.append((need, need or has_w))
            plan.flags[key] = flags
        return flags

    # -- running --------------------------------------------------------------------------
    def forward(self, inputs: Sequence[np.ndarray], training: bool = False,
                workspace: Optional[Workspace] = None, tape: bool = True):
        """Run the graph on arrays ``inputs`` (one per graph input).

        Returns ``(outputs, tape)``: a list with one array per graph output, and what
        :meth:`backward` needs (None with ``tape=False``, which also frees each
        intermediate value after its last reader).
        """
        plan = self.plan()
        vals: List[Any] = [None] * self.n_slots
        for i, x in enumerate(inputs):
            vals[i] = x
        record_ = [] if tape else None
        if not tape:
            last = self._last_use(plan)
        for s in plan.steps:
            if s.single:
                args = vals[s.ins[0]]
            else:
                args = [vals[i] for i in s.ins]
                if s.structure is not None:
                    args = pack(s.structure, args)
            tr = training if s.training is None else bool(s.training)
            ws = None if workspace is None else workspace.sub(s.index)
            out, ctx = s.op.forward(args, tr, ws)
            reg = getattr(s.op, "activity_regularizer", None)
            if reg is not None and tape:
                ctx = penalise(reg, out, ctx)
            if len(s.outs) == 1:
                vals[s.outs[0]] = out
            else:
                for o, v in zip(s.outs, out):
                    vals[o] = v
            if tape:
                record_.append(ctx)
            else:
                for i in last[s.index]:
                    vals[i] = None
        return [vals[i] for i in self.out_slots], (plan, record_, training)

    def _last_use(self, plan: _Plan) -> list:
        cached = getattr(plan, "last_use", None)
        if cached is None:
            keep = set(self.out_slots)
            last: Dict[int, int] = {}
            for s in plan.steps:
                for i in s.ins:
                    last[i] = s.index
            cached = [[] for _ in plan.steps]
            for i, k in last.items():
                if i not in keep:
                    cached[k].append(i)
            plan.last_use = cached
        return cached

    def backward(self, tape, output_grads: Sequence[Optional[np.ndarray]],
                 input_grads: bool = True, logits_grads: Optional[Dict[int, Any]] = None):
        """Backpropagate ``output_grads`` (one per output, None for no gradient).

        ``logits_grads`` maps an output position to the gradient of its producing
        layer's pre-activation (a fused softmax/sigmoid + cross-entropy). Returns
        ``(dinputs, weight_grads)``: a list with one array (or None) per input, and a
        list of ``(weight array, gradient)`` with each weight once, gradients summed.
        """
        plan, ctxs, _ = tape
        flags = self._flags(plan, input_grads)
        grads: List[Any] = [None] * self.n_slots
        override: Dict[int, Any] = {}
        for pos, g in enumerate(output_grads):
            if g is None:
                continue
            if logits_grads is not None and pos in logits_grads:
                continue
            i = self.out_slots[pos]
            grads[i] = g if grads[i] is None else add(grads[i], g)
        if logits_grads:
            for pos, dz in logits_grads.items():
                override[self.producer(plan, pos).index] = dz
        acc: Dict[int, list] = {}
        for s in reversed(plan.steps):
            need, active = flags[s.index]
            if not active:
                continue
            ctx = ctxs[s.index]
            extra = None
            if isinstance(ctx, Penalised):
                ctx, extra = ctx.inner, ctx.grad
            if s.index in override:
                dx, wg = s.op.backward_logits(override[s.index], ctx, need)
            else:
                gs = [grads[o] for o in s.outs]
                if all(g is None for g in gs):
                    continue
                # Multi-output ops (nested models) take None for an output without one.
                dout = gs[0] if len(gs) == 1 else gs
                if extra is not None:
                    dout = dout + extra
                dx, wg = s.op.backward(dout, ctx, need)
            for w, g in wg:
                entry = acc.get(id(w))
                if entry is None:
                    acc[id(w)] = [w, g]
                else:
                    entry[1] = entry[1] + g
            if not need or dx is None:
                continue
            dxs = [dx] if s.single else flatten(dx)
            for i, d in zip(s.ins, dxs):
                if d is None:
                    continue
                grads[i] = d if grads[i] is None else add(grads[i], d)
        return [grads[i] for i in self.in_slots], [tuple(e) for e in acc.values()]

    def producer(self, plan: _Plan, pos: int) -> _Step:
        """The step of ``plan`` that computes output ``pos``."""
        slot = self.out_slots[pos]
        for s in plan.steps:
            if slot in s.outs:
                return s
        raise ValueError(f"output {pos} is an input of the graph")

    def logits_step(self, pos: int) -> Optional[_Step]:
        """The step producing output ``pos`` if its pre-activation can be reached (a layer
        ending in an activation, whose output nothing else reads), else None."""
        t = self.outputs[pos]
        if id(t) in {id(u) for u in self.inputs} or self._readers.get(id(t)) \
                or sum(o is t for o in self.outputs) > 1:
            return None
        step = self.producer(self.plan(), pos)
        if len(step.outs) != 1 or not hasattr(step.op, "backward_logits"):
            return None
        return step

