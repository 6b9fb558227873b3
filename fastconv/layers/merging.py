"""Merging layers: ``Add``, ``Subtract``, ``Multiply``, ``Average``, ``Maximum``,
``Minimum``, ``Concatenate``, and their function forms."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ..backends._args import fail
from ..graph import add as _graph_add
from ..operations import broadcast_shape, concat_shape, unbroadcast
from .base import Layer, _fmt


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
        return _graph_add(a, b)


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
