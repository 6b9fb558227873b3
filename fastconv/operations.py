"""Tensor operations with gradients (Keras: ``keras.ops``).

Each function works on NumPy arrays (it computes and returns an array) and on symbolic
tensors (it records a node and returns a symbolic tensor), so the same code serves a
model's graph, the ``call()`` of a subclassed layer, and plain arrays. Inside a graph
each operation is an :class:`Operation`: ``forward(inputs) -> (out, ctx)`` and
``backward(dout, ctx) -> (dinputs, [])``, as layers have, with the gradient of a
broadcast operand summed back to its shape.

Shapes follow NumPy's broadcasting; ``None`` (an unknown size, such as the batch axis)
broadcasts with any size.
"""

from __future__ import annotations

import builtins
from typing import Optional, Sequence, Tuple

import numpy as np

from .backends._args import fail
from .graph import KerasTensor, as_symbolic, is_symbolic, record

__all__ = [
    "Operation", "add", "subtract", "multiply", "divide", "negative", "relu", "sigmoid",
    "tanh", "softmax", "exp", "log", "sqrt", "square", "abs", "clip", "maximum", "minimum",
    "concatenate", "reshape", "transpose", "mean", "sum", "max", "matmul",
    "broadcast_shape", "unbroadcast", "convert_to_numpy", "convert_to_tensor",
]


def broadcast_shape(a: Sequence[Optional[int]], b: Sequence[Optional[int]],
                    what: str = "operands") -> Tuple[Optional[int], ...]:
    """NumPy's broadcast of two shapes, ``None`` meaning unknown. ValueError if they
    cannot broadcast, naming both shapes."""
    out = []
    for i in range(1, builtins.max(len(a), len(b)) + 1):
        x = a[-i] if i <= len(a) else 1
        y = b[-i] if i <= len(b) else 1
        if x == 1:
            out.append(y)
        elif y == 1:
            out.append(x)
        elif x is None:
            out.append(y)
        elif y is None or x == y:
            out.append(x)
        else:
            raise ValueError(f"Cannot broadcast the shapes of the {what}: {_fmt(a)} and "
                             f"{_fmt(b)} (axis {-i}: {x} against {y}).")
    return tuple(reversed(out))


def _fmt(shape) -> str:
    return "(" + ", ".join("None" if s is None else str(s) for s in shape) + ("," if len(
        shape) == 1 else "") + ")"


def unbroadcast(g: np.ndarray, shape: Tuple[int, ...]) -> np.ndarray:
    """Sum ``g`` down to ``shape`` (the gradient of an operand that was broadcast)."""
    if g.shape == tuple(shape):
        return g
    lead = g.ndim - len(shape)
    if lead:
        g = g.sum(axis=tuple(range(lead)))
    axes = tuple(i for i, s in enumerate(shape) if s == 1 and g.shape[i] != 1)
    if axes:
        g = g.sum(axis=axes, keepdims=True)
    return g


class Operation:
    """A differentiable function of one or more tensors, recorded as a graph node.

    Subclasses define ``compute(*arrays) -> (out, ctx)``, ``grad(dout, ctx) -> [dx...]``
    (one per input, None where there is none) and ``output_shape(*shapes)``.
    """

    _is_operation = True
    trainable = True
    trainable_weights: list = []
    weights: list = []
    name = "operation"

    def __init__(self):
        self._inbound_nodes: list = []

    def __call__(self, *args):
        if any(is_symbolic(a) for a in args):
            like = next(a for a in _leaves(args) if isinstance(a, KerasTensor))
            tensors = [as_symbolic(a, like) if not isinstance(a, list) else
                       [as_symbolic(v, like) for v in a] for a in args]
            shape = self.output_shape(*[[t.shape for t in a] if isinstance(a, list) else
                                        a.shape for a in tensors])
            flat = [t for a in tensors for t in (a if isinstance(a, list) else [a])]
            self._arity = [len(a) if isinstance(a, list) else None for a in tensors]
            dtype = _result_dtype([t.dtype for t in flat])
            return record(self, flat if len(flat) != 1 else flat[0], shape, dtype)
        arrays = _eager_arrays(args)
        self._arity = [len(a) if isinstance(a, list) else None for a in arrays]
        return self.compute(*arrays)[0]

    # The graph's interface (the same as a layer's).
    def forward(self, inputs, training=False, workspace=None):
        args = self._regroup(inputs if isinstance(inputs, list) else [inputs])
        return self.compute(*args)

    def backward(self, dout, ctx, need_dx=True):
        dxs = self.grad(dout, ctx)
        flat = [d for a, n in zip(dxs, self._arity) for d in (a if n is not None else [a])]
        return (flat[0] if len(flat) == 1 else flat), []

    def _regroup(self, flat: list) -> list:
        out, i = [], 0
        for n in self._arity:
            if n is None:
                out.append(flat[i])
                i += 1
            else:
                out.append(flat[i:i + n])
                i += n
        return out

    def output_shape(self, *shapes):
        return shapes[0]

    def get_config(self) -> dict:
        return {}

    def __repr__(self) -> str:
        return f"<Operation {self.name}>"


def _leaves(args):
    for a in args:
        if isinstance(a, (list, tuple)):
            yield from a
        else:
            yield a


def _result_dtype(dtypes):
    return "float64" if "float64" in dtypes else "float32"


def _eager_arrays(args) -> list:
    """Arrays for an eager call; Python numbers take the dtype of the array operands."""
    floats = [a.dtype for a in _leaves(args) if isinstance(a, np.ndarray) and a.dtype.kind == "f"]
    dtype = np.result_type(*floats) if floats else np.float32

    def conv(a):
        arr = np.asarray(a)
        if arr.dtype.kind not in "biuf":
            raise fail("x", "an array of numbers", type(a).__name__, TypeError)
        return arr.astype(dtype, copy=False) if arr.dtype.kind != "f" or arr.ndim == 0 \
            else arr

    return [[conv(v) for v in a] if isinstance(a, (list, tuple)) else conv(a) for a in args]


class WeightRead(Operation):
    """Reads weight ``name`` of ``layer`` (inside a traced ``call``); its gradient goes
    to that weight."""

    name = "weight_read"

    def __init__(self, layer, name):
        super().__init__()
        self.layer, self.weight_name = layer, name
        self._arity = []

    def __call__(self, args=()):
        w = self.layer._weight(self.weight_name)
        return record(self, [], tuple(w.shape), w.dtype)

    def compute(self):
        return self.layer._weight(self.weight_name), None

    def forward(self, inputs, training=False, workspace=None):
        return self.compute()

    @property
    def trainable_weights(self):
        w = self.layer._weight(self.weight_name)
        return [w] if any(t is w for t in self.layer.trainable_weights) else []

    def backward(self, dout, ctx, need_dx=True):
        return None, [(self.layer._weight(self.weight_name), dout)]


class Constant(Operation):
    """A constant array in a traced graph."""

    name = "constant"

    def __init__(self, value, dtype=None):
        super().__init__()
        self.value = np.asarray(value, dtype=dtype)
        self._arity = []

    def get_config(self):
        return {"value": self.value.tolist(), "dtype": self.value.dtype.name}

    def __call__(self, args=()):
        return record(self, [], tuple(self.value.shape), self.value.dtype
                      if self.value.dtype.kind == "f" else "float32")

    def forward(self, inputs, training=False, workspace=None):
        return self.value, None

    def backward(self, dout, ctx, need_dx=True):
        return None, []


# -- element-wise, two operands ---------------------------------------------------------
class _Binary(Operation):
    def output_shape(self, a, b):
        return broadcast_shape(a, b, f"operands of {self.name}")

    def compute(self, a, b):
        return self.fn(a, b), (a, b)

    def grad(self, g, ctx):
        a, b = ctx
        da, db = self.partials(g, a, b)
        return [None if da is None else unbroadcast(da, a.shape),
                None if db is None else unbroadcast(db, b.shape)]


class Add(_Binary):
    name = "add"
    fn = staticmethod(np.add)

    def compute(self, a, b):
        return a + b, (a.shape, b.shape)

    def grad(self, g, ctx):
        return [unbroadcast(g, ctx[0]), unbroadcast(g, ctx[1])]


class Subtract(Add):
    name = "subtract"

    def compute(self, a, b):
        return a - b, (a.shape, b.shape)

    def grad(self, g, ctx):
        return [unbroadcast(g, ctx[0]), unbroadcast(-g, ctx[1])]


class Multiply(_Binary):
    name = "multiply"
    fn = staticmethod(np.multiply)

    def partials(self, g, a, b):
        return g * b, g * a


class Divide(_Binary):
    name = "divide"
    fn = staticmethod(np.divide)

    def partials(self, g, a, b):
        return g / b, -g * a / (b * b)


class Maximum(_Binary):
    """Element-wise maximum; where both are equal the gradient goes to the first."""

    name = "maximum"
    fn = staticmethod(np.maximum)

    def partials(self, g, a, b):
        first = a >= b
        return g * first, g * ~first


class Minimum(_Binary):
    """Element-wise minimum; where both are equal the gradient goes to the first."""

    name = "minimum"
    fn = staticmethod(np.minimum)

    def partials(self, g, a, b):
        first = a <= b
        return g * first, g * ~first


# -- element-wise, one operand ----------------------------------------------------------
class _Unary(Operation):
    def compute(self, x):
        out = self.fn(x)
        return out, (x, out)

    def grad(self, g, ctx):
        x, out = ctx
        return [self.derivative(g, x, out)]


def _unary(name_, fn_, derivative_, doc):
    cls = type(name_.capitalize(), (_Unary,), {
        "name": name_, "fn": staticmethod(fn_), "__doc__": doc,
        "derivative": staticmethod(derivative_)})
    return cls


Negative = _unary("negative", np.negative, lambda g, x, o: -g, "``-x``.")
Exp = _unary("exp", np.exp, lambda g, x, o: g * o, "``exp(x)``.")
Log = _unary("log", np.log, lambda g, x, o: g / x, "Natural logarithm.")
Sqrt = _unary("sqrt", np.sqrt, lambda g, x, o: g / (2 * o), "Square root.")
Square = _unary("square", np.square, lambda g, x, o: 2 * g * x, "``x ** 2``.")
Abs = _unary("abs", np.abs, lambda g, x, o: g * np.sign(x), "``|x|`` (gradient 0 at 0).")
Tanh = _unary("tanh", np.tanh, lambda g, x, o: g * (1 - o * o), "Hyperbolic tangent.")


def _sigmoid(x):
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)


Sigmoid = _unary("sigmoid", _sigmoid, lambda g, x, o: g * o * (1 - o),
                 "``1 / (1 + exp(-x))``.")
Relu = _unary("relu", lambda x: np.maximum(x, 0), lambda g, x, o: g * (x > 0),
              "``max(x, 0)`` (gradient 0 at 0).")


class Clip(_Unary):
    """``x`` clipped to ``[x_min, x_max]``; the gradient is 0 where it was clipped."""

    name = "clip"

    def __init__(self, x_min, x_max):
        super().__init__()
        self.x_min, self.x_max = float(x_min), float(x_max)

    def get_config(self):
        return {"x_min": self.x_min, "x_max": self.x_max}

    def fn(self, x):
        return np.clip(x, self.x_min, self.x_max).astype(x.dtype, copy=False)

    def derivative(self, g, x, out):
        return g * ((x >= self.x_min) & (x <= self.x_max))


class Softmax(Operation):
    """``exp(x) / sum(exp(x))`` along ``axis``."""

    name = "softmax"

    def __init__(self, axis=-1):
        super().__init__()
        self.axis = int(axis)

    def get_config(self):
        return {"axis": self.axis}

    def compute(self, x):
        z = np.exp(x - x.max(axis=self.axis, keepdims=True))
        out = z / z.sum(axis=self.axis, keepdims=True)
        return out, out

    def grad(self, g, out):
        return [out * (g - (g * out).sum(axis=self.axis, keepdims=True))]


# -- shape and reductions ---------------------------------------------------------------
def _axes(axis, ndim):
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    out = []
    for a in axes:
        if not -ndim <= a < ndim:
            raise fail("axis", f"axes of a {ndim}-D tensor", axis)
        out.append(a % ndim)
    return tuple(sorted(out))


class _Reduce(Operation):
    def __init__(self, axis=None, keepdims=False):
        super().__init__()
        self.axis = axis if axis is None or isinstance(axis, (int, np.integer)) \
            else tuple(int(a) for a in axis)
        self.keepdims = bool(keepdims)

    def get_config(self):
        return {"axis": self.axis if not isinstance(self.axis, tuple) else list(self.axis),
                "keepdims": self.keepdims}

    def output_shape(self, shape):
        axes = _axes(self.axis, len(shape))
        if self.keepdims:
            return tuple(1 if i in axes else s for i, s in enumerate(shape))
        return tuple(s for i, s in enumerate(shape) if i not in axes)

    def _expand(self, g, shape):
        axes = _axes(self.axis, len(shape))
        if not self.keepdims:
            g = np.expand_dims(g, axes)
        return g


class Sum(_Reduce):
    name = "sum"

    def compute(self, x):
        return x.sum(axis=_axes(self.axis, x.ndim), keepdims=self.keepdims), x.shape

    def grad(self, g, shape):
        return [np.broadcast_to(self._expand(g, shape), shape).copy()]


class Mean(_Reduce):
    name = "mean"

    def compute(self, x):
        axes = _axes(self.axis, x.ndim)
        return x.mean(axis=axes, keepdims=self.keepdims), x.shape

    def grad(self, g, shape):
        axes = _axes(self.axis, len(shape))
        count = int(np.prod([shape[a] for a in axes])) if axes else 1
        return [np.broadcast_to(self._expand(g, shape) / count, shape).copy()]


class Max(_Reduce):
    """Maximum along ``axis``; tied maxima share the gradient equally."""

    name = "max"

    def compute(self, x):
        axes = _axes(self.axis, x.ndim)
        out = x.max(axis=axes, keepdims=True)
        hit = (x == out)
        share = hit / hit.sum(axis=axes, keepdims=True)
        return (out if self.keepdims else out.squeeze(axes)), share.astype(x.dtype)

    def grad(self, g, share):
        return [self._expand(g, share.shape) * share]


class Reshape(Operation):
    """``x`` reshaped to ``newshape`` (batch axis included; one entry may be -1)."""

    name = "reshape"

    def __init__(self, newshape):
        super().__init__()
        self.newshape = tuple(int(s) for s in newshape)

    def get_config(self):
        return {"newshape": list(self.newshape)}

    def output_shape(self, shape):
        new = list(self.newshape)
        if new.count(-1) > 1:
            raise fail("newshape", "at most one -1", self.newshape)
        if None in shape:
            if -1 in new:
                new[new.index(-1)] = None
            return tuple(new)
        size = int(np.prod(shape))
        rest = int(np.prod([s for s in new if s != -1]))
        if (-1 in new and (rest == 0 or size % rest)) or (-1 not in new and rest != size):
            raise ValueError(f"Cannot reshape a tensor of shape {_fmt(shape)} to "
                             f"{self.newshape}.")
        if -1 in new:
            new[new.index(-1)] = size // rest
        return tuple(new)

    def compute(self, x):
        return x.reshape(self.newshape), x.shape

    def grad(self, g, shape):
        return [g.reshape(shape)]


class Transpose(Operation):
    """Axes permuted by ``axes`` (reversed when None)."""

    name = "transpose"

    def __init__(self, axes=None):
        super().__init__()
        self.axes = None if axes is None else tuple(int(a) for a in axes)

    def get_config(self):
        return {"axes": None if self.axes is None else list(self.axes)}

    def _perm(self, ndim):
        return tuple(range(ndim))[::-1] if self.axes is None else self.axes

    def output_shape(self, shape):
        perm = self._perm(len(shape))
        if sorted(perm) != list(range(len(shape))):
            raise fail("axes", f"a permutation of the {len(shape)} axes", self.axes)
        return tuple(shape[p] for p in perm)

    def compute(self, x):
        perm = self._perm(x.ndim)
        return x.transpose(perm), perm

    def grad(self, g, perm):
        return [g.transpose(np.argsort(perm))]


class Concatenate(Operation):
    """Tensors joined along ``axis``."""

    name = "concatenate"

    def __init__(self, axis=-1):
        super().__init__()
        self.axis = int(axis)

    def get_config(self):
        return {"axis": self.axis}

    def output_shape(self, shapes):
        return concat_shape(shapes, self.axis, "concatenate")

    def compute(self, xs):
        return np.concatenate(xs, axis=self.axis), [x.shape[self.axis] for x in xs]

    def grad(self, g, sizes):
        return [np.split(g, np.cumsum(sizes)[:-1], axis=self.axis)]


def concat_shape(shapes, axis, who):
    """The shape of ``shapes`` concatenated along ``axis``; ValueError naming ``who``."""
    ranks = {len(s) for s in shapes}
    if len(ranks) != 1:
        raise ValueError(f"{who} needs inputs of one rank. Received: shapes "
                         f"{[_fmt(s) for s in shapes]}")
    ndim = ranks.pop()
    if not -ndim <= axis < ndim:
        raise ValueError(f"{who}: axis={axis} is out of range for {ndim}-D inputs.")
    ax = axis % ndim
    out = list(shapes[0])
    for s in shapes[1:]:
        for i in range(ndim):
            if i == ax:
                continue
            if out[i] is None:
                out[i] = s[i]
            elif s[i] is not None and s[i] != out[i]:
                raise ValueError(f"{who} needs inputs whose shapes agree except along axis "
                                 f"{axis}. Received: shapes {[_fmt(s) for s in shapes]}")
    sizes = [s[ax] for s in shapes]
    out[ax] = None if None in sizes else int(np.sum(sizes))
    return tuple(out)


class Matmul(Operation):
    """Matrix product of the last two axes (NumPy's ``matmul`` broadcasting)."""

    name = "matmul"

    def output_shape(self, a, b):
        if len(a) < 1 or len(b) < 1:
            raise ValueError("matmul needs tensors of at least one axis.")
        a2 = a if len(a) > 1 else (1,) + tuple(a)
        b2 = b if len(b) > 1 else tuple(b) + (1,)
        if a2[-1] is not None and b2[-2] is not None and a2[-1] != b2[-2]:
            raise ValueError(f"matmul: the last axis of the first operand {_fmt(a)} must "
                             f"equal the second-to-last of the second {_fmt(b)}.")
        batch = broadcast_shape(a2[:-2], b2[:-2], "operands of matmul")
        out = batch + (a2[-2], b2[-1])
        if len(a) == 1:
            out = out[:-2] + out[-1:]
        if len(b) == 1:
            out = out[:-1]
        return out

    def compute(self, a, b):
        return np.matmul(a, b), (a, b)

    def grad(self, g, ctx):
        a, b = ctx
        a2 = a if a.ndim > 1 else a[None, :]
        b2 = b if b.ndim > 1 else b[:, None]
        g2 = g
        if a.ndim == 1:
            g2 = np.expand_dims(g2, -2)
        if b.ndim == 1:
            g2 = np.expand_dims(g2, -1)
        da = np.matmul(g2, np.swapaxes(b2, -1, -2))
        db = np.matmul(np.swapaxes(a2, -1, -2), g2)
        da = unbroadcast(da, a2.shape).reshape(a.shape)
        db = unbroadcast(db, b2.shape).reshape(b.shape)
        return [da, db]


class ActivationOp(Operation):
    """An activation function of :mod:`fastconv.activations` applied to a tensor."""

    def __init__(self, activation):
        from . import activations

        super().__init__()
        self.activation = activations.get(activation)
        self.name = self.activation.name

    def get_config(self):
        from . import activations

        return {"activation": activations.serialize(self.activation)}

    def compute(self, x):
        return self.activation.forward(x)

    def grad(self, g, ctx):
        return [self.activation.backward(g, ctx)]


# -- the functions ------------------------------------------------------------------------
def add(x1, x2):
    """``x1 + x2``, broadcasting."""
    return Add()(x1, x2)


def subtract(x1, x2):
    """``x1 - x2``, broadcasting."""
    return Subtract()(x1, x2)


def multiply(x1, x2):
    """``x1 * x2``, broadcasting."""
    return Multiply()(x1, x2)


def divide(x1, x2):
    """``x1 / x2``, broadcasting."""
    return Divide()(x1, x2)


def negative(x):
    """``-x``."""
    return Negative()(x)


def relu(x):
    """``max(x, 0)``."""
    return Relu()(x)


def sigmoid(x):
    """``1 / (1 + exp(-x))``."""
    return Sigmoid()(x)


def tanh(x):
    """Hyperbolic tangent."""
    return Tanh()(x)


def softmax(x, axis=-1):
    """Softmax along ``axis``."""
    return Softmax(axis)(x)


def exp(x):
    """``exp(x)``."""
    return Exp()(x)


def log(x):
    """Natural logarithm."""
    return Log()(x)


def sqrt(x):
    """Square root."""
    return Sqrt()(x)


def square(x):
    """``x ** 2``."""
    return Square()(x)


def abs(x):  # noqa: A001 - Keras's name
    """``|x|``."""
    return Abs()(x)


def clip(x, x_min, x_max):
    """``x`` limited to ``[x_min, x_max]``."""
    return Clip(x_min, x_max)(x)


def maximum(x1, x2):
    """Element-wise maximum, broadcasting."""
    return Maximum()(x1, x2)


def minimum(x1, x2):
    """Element-wise minimum, broadcasting."""
    return Minimum()(x1, x2)


def concatenate(xs, axis=-1):
    """The tensors of the list ``xs`` joined along ``axis``."""
    if not isinstance(xs, (list, tuple)) or not xs:
        raise fail("xs", "a non-empty list of tensors", xs, TypeError)
    return Concatenate(axis)(list(xs))


def reshape(x, newshape):
    """``x`` with shape ``newshape`` (the batch axis included; -1 for one axis)."""
    return Reshape(newshape)(x)


def transpose(x, axes=None):
    """``x`` with its axes permuted."""
    return Transpose(axes)(x)


def mean(x, axis=None, keepdims=False):
    """Mean along ``axis`` (all axes when None)."""
    return Mean(axis, keepdims)(x)


def sum(x, axis=None, keepdims=False):  # noqa: A001 - Keras's name
    """Sum along ``axis`` (all axes when None)."""
    return Sum(axis, keepdims)(x)


def max(x, axis=None, keepdims=False):  # noqa: A001 - Keras's name
    """Maximum along ``axis`` (all axes when None)."""
    return Max(axis, keepdims)(x)


def matmul(x1, x2):
    """Matrix product (NumPy's ``matmul`` rules)."""
    return Matmul()(x1, x2)



def convert_to_numpy(x):
    """``x`` as a NumPy array (fastconv's tensors are NumPy arrays already)."""
    return np.asarray(x)


def convert_to_tensor(x, dtype=None):
    """``x`` as an array of ``dtype`` (a symbolic tensor is returned as it is)."""
    if isinstance(x, KerasTensor):
        return x
    return np.asarray(x, dtype=dtype)
