"""Activity penalties: what a layer with an ``activity_regularizer`` adds to the loss.

A graph (:mod:`fastconv.graph`) wraps the context of such a layer's call in
:class:`Penalised`, holding ``regularizer(output) / batch`` (Keras 3 divides by the
batch size) and its gradient; its backward pass adds that gradient to the output's
gradient, and the trainer adds :func:`activity_loss` of the tape to the loss.
"""

from __future__ import annotations

from typing import Any


class Penalised:
    """The context ``inner`` of one call, with its penalty ``loss`` and ``grad``."""

    __slots__ = ("inner", "loss", "grad")

    def __init__(self, inner: Any, loss: float, grad: Any):
        self.inner, self.loss, self.grad = inner, loss, grad


def penalise(regularizer, out, ctx) -> Penalised:
    """Wrap ``ctx`` with ``regularizer``'s penalty of ``out`` (batch axis first)."""
    n = max(out.shape[0], 1) if out.ndim else 1
    grad = regularizer.gradient(out) / n
    return Penalised(ctx, regularizer(out) / n, grad.astype(out.dtype, copy=False))


def activity_loss(tape) -> float:
    """The sum of the penalties recorded on a graph's ``tape``, nested graphs (a model
    or traced layer called inside another, whose context is ``(graph, tape)``) too."""
    if tape is None or tape[1] is None:
        return 0.0
    total = 0.0
    for ctx in tape[1]:
        if isinstance(ctx, Penalised):
            total += ctx.loss
            ctx = ctx.inner
        if isinstance(ctx, tuple) and len(ctx) == 2 and isinstance(ctx[1], tuple) \
                and len(ctx[1]) == 3 and isinstance(ctx[1][1], list):
            total += activity_loss(ctx[1])
    return total
