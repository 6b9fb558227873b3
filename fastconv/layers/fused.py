"""Chains of layers a model's plan (:mod:`fastconv.graph`) runs as one op.

Each class here takes the layers of a chain (each one's output read only by the next),
keeps them as they are (their weights and configuration stay theirs; only the
intermediate arrays nothing else reads are never formed), and says with ``fits`` which
layers it takes. :data:`FUSIONS` lists them in the order the plan tries them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import activations as _activations
from .. import ops
from .convolutional import Conv2D
from .core import Activation, ReLU
from .merging import Add
from .pooling import MaxPooling2D


def _plain_relu(layer: Any) -> bool:
    """Whether ``layer`` is exactly ``max(x, 0)`` with nothing else to it: a default
    ``ReLU()`` or ``Activation('relu')`` (the classes themselves)."""
    if getattr(layer, "activity_regularizer", None):
        return False
    if type(layer) is ReLU:
        return layer._plain()
    return type(layer) is Activation and layer.activation is _activations.relu


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

    #: the number of layers in the chain
    arity = 2
    #: whether the op may run a node whose call fixed its own training flag
    any_training = True
    #: whether the chain's first layer may take a list of inputs
    list_input = False

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


class _ConvBatchNorm:
    """A linear ``Conv2D`` and the ``BatchNormalization`` that alone reads its output
    (channels-last, normalising the channels), run by a model's plan as one op.

    In training (with the normalisation trainable) it runs the two layers one after the
    other, as unfused. Otherwise the normalisation is an affine map per filter,
    ``s * z + t`` with ``s = gamma / sqrt(moving_variance + epsilon)`` and
    ``t = beta - moving_mean * s``, and it folds into the convolution: one
    convolution with the kernel times s and the bias ``b * s + t``, no pass over its
    output. The backward pass of a folded call gives the convolution's gradients (the
    folded ones times s) and dx; the normalisation's own (inference-mode backward with
    a trainable normalisation, as an input-gradient map asks) recompute the
    convolution's output once.
    """

    arity = 2
    any_training = False  # (a normalisation's training flag must be the call's own)
    list_input = False

    def __init__(self, conv: Conv2D, bn: Any):
        self.conv, self.bn = conv, bn
        self.layers = (conv, bn)
        self.name = f"{conv.name}+{bn.name}"

    @staticmethod
    def fits(conv: Any, bn: Any) -> bool:
        from .normalization import BatchNormalization

        # (the classes themselves: a subclass may compute something else)
        return (type(conv) is Conv2D and type(bn) is BatchNormalization
                and conv.activation is _activations.linear
                and conv.data_format == "channels_last" and bn.axis in (-1, 3)
                and not conv.activity_regularizer and not bn.activity_regularizer)

    def still_fits(self) -> bool:
        return self.fits(self.conv, self.bn)

    @property
    def trainable_weights(self):
        return self.conv.trainable_weights + self.bn.trainable_weights

    def _scale_shift(self, dtype):
        bn = self.bn
        var = bn.moving_variance.astype(np.float64)
        s = 1 / np.sqrt(var + bn.epsilon)
        if bn.scale:
            s = s * bn.gamma
        t = -bn.moving_mean.astype(np.float64) * s
        if bn.center:
            t = t + bn.beta
        return s, t

    def forward(self, x, training=False, workspace=None):
        conv, bn = self.conv, self.bn
        if training and bn.trainable:
            z, c1 = conv.forward(x, True, workspace)
            y, c2 = bn.forward(z, True)
            return y, ("train", c1, c2)
        w, b, s = self._folded()
        out, cache = ops.conv2d_forward(x, w, b, conv.strides, conv.padding,
                                        conv.dilation_rate)
        return out, ("fold", cache, s, x)

    def _folded(self):
        """The convolution's kernel and bias with the normalisation folded in, and the
        normalisation's scale s (float64)."""
        conv = self.conv
        s, t = self._scale_shift(np.float64)
        dt = conv.kernel.dtype
        w = (conv.kernel * s).astype(dt)
        b = ((conv.bias * s if conv.use_bias else 0) + t).astype(dt)
        return w, b, s

    def backward(self, dout, ctx, need_dx=True):
        conv, bn = self.conv, self.bn
        if ctx[0] == "train":
            dz, wg_bn = bn.backward(dout, ctx[2])
            dx, wg = conv.backward(dz, ctx[1], need_dx)
            return dx, wg + wg_bn
        _, cache, s, x = ctx
        dx, dw, db = ops.conv2d_backward(dout, cache, need_dx)
        return self._fold_grads(dx, dw, db, s, dout, x)

    def _fold_grads(self, dx, dw, db, s, dout, x, relu_out=None):
        """``(dx, weight gradients)`` of a folded call from the folded convolution's
        (dw, db), the scale s and the gradient ``dout`` of the chain's output (that of a
        ReLU after the normalisation when ``relu_out``, the ReLU's output, is given)."""
        conv, bn = self.conv, self.bn
        dt = conv.kernel.dtype
        _, wg = conv._grads(None, (dw * s).astype(dt), None if db is None else (db * s).astype(dt))
        if bn.trainable and (bn.scale or bn.center):
            if relu_out is not None:  # the normalisation's output gradient
                dout = np.where(relu_out > 0, dout, dout.dtype.type(0))
            # inference-mode gradients of gamma and beta: from the unnormalised output
            z, _ = ops.conv2d_forward(x, conv.kernel, conv.bias if conv.use_bias else None,
                                      conv.strides, conv.padding, conv.dilation_rate)
            inv = 1 / np.sqrt(bn.moving_variance.astype(np.float64) + bn.epsilon)
            d2 = dout.reshape(-1, dout.shape[-1])
            if bn.scale:
                xhat = (z.reshape(d2.shape) - bn.moving_mean) * inv.astype(dt)
                wg.append((bn.gamma, (d2 * xhat).sum(axis=0).astype(bn.gamma.dtype)))
            if bn.center:
                wg.append((bn.beta, d2.sum(axis=0).astype(bn.beta.dtype)))
        return dx, wg


class _ThenReLU:
    """Base of a layer and the plain ReLU that alone reads its output (``first`` and
    ``relu``): the bookkeeping, and the two layers one after the other (``_pair_*``)
    for the inputs the fused pass does not take."""

    arity = 2
    list_input = False

    def __init__(self, first: Any, relu: Any):
        self.first, self.relu = first, relu
        self.layers = (first, relu)
        self.name = f"{first.name}+{relu.name}"

    def still_fits(self) -> bool:
        return self.fits(self.first, self.relu)

    @property
    def trainable_weights(self):
        return self.first.trainable_weights

    def _pair_forward(self, x, training):
        y, c1 = self.first.forward(x, training)
        out, c2 = self.relu.forward(y)
        return out, ("pair", c1, c2)

    def _pair_backward(self, dout, ctx, need_dx):
        dy, _ = self.relu.backward(dout, ctx[2], need_dx)
        return self.first.backward(dy, ctx[1], need_dx)


class _BatchNormReLU(_ThenReLU):
    """A ``BatchNormalization`` and the plain ReLU (``ReLU()``, ``Activation('relu')``)
    that alone reads its output, run by a model's plan as one op.

    Channels last, the normalisation's map and the ReLU run in one pass
    (:func:`fastconv.ops.channel_affine` with ``relu=True``), and in the backward pass
    the ReLU's gradient is taken inside the normalisation's two passes (their
    ``gate``): the same bits as the two layers one after the other, two passes fewer
    each way, and the normalised values before the ReLU are never stored. Other layouts
    run the two layers one after the other.
    """

    any_training = False

    @staticmethod
    def fits(bn: Any, relu: Any) -> bool:
        from .normalization import BatchNormalization

        return type(bn) is BatchNormalization and not bn.activity_regularizer \
            and _plain_relu(relu)

    def forward(self, x, training=False, workspace=None):
        bn = self.first
        x = np.asarray(x)
        if x.ndim >= 2 and bn.axis % x.ndim == x.ndim - 1 and x.size:
            out, st = bn._forward_last(x, training and bn.trainable, relu=True)
            return out, ("gated", st)
        return self._pair_forward(x, training)

    def backward(self, dout, ctx, need_dx=True):
        if ctx[0] == "gated":
            return self.first.backward(dout, ctx[1], need_dx)
        return self._pair_backward(dout, ctx, need_dx)


class _ConvBatchNormReLU(_ConvBatchNorm):
    """A linear ``Conv2D``, the ``BatchNormalization`` that alone reads its output and
    the plain ReLU that alone reads the normalisation's, run by a model's plan as one
    op: in training the convolution, then the normalisation and the ReLU as one
    (:class:`_BatchNormReLU`); otherwise the normalisation folded into the convolution
    as :class:`_ConvBatchNorm` does, with the ReLU in the convolution's output pass
    (:func:`fastconv.ops.conv2d_relu_forward`)."""

    arity = 3

    def __init__(self, conv: Conv2D, bn: Any, relu: Any):
        super().__init__(conv, bn)
        self.relu = relu
        self._bn_relu = _BatchNormReLU(bn, relu)
        self.layers = (conv, bn, relu)
        self.name = f"{conv.name}+{bn.name}+{relu.name}"

    @staticmethod
    def fits(conv: Any, bn: Any, relu: Any) -> bool:
        return _ConvBatchNorm.fits(conv, bn) and _BatchNormReLU.fits(bn, relu)

    def still_fits(self) -> bool:
        return self.fits(self.conv, self.bn, self.relu)

    def forward(self, x, training=False, workspace=None):
        conv, bn = self.conv, self.bn
        if training and bn.trainable:
            z, c1 = conv.forward(x, True, workspace)
            y, c2 = self._bn_relu.forward(z, True)
            return y, ("train", c1, c2)
        w, b, s = self._folded()
        out, cache = ops.conv2d_relu_forward(x, w, b, conv.strides, conv.padding,
                                             conv.dilation_rate)
        return out, ("fold", cache, s, x, out)

    def backward(self, dout, ctx, need_dx=True):
        if ctx[0] == "train":
            dz, wg_bn = self._bn_relu.backward(dout, ctx[2])
            dx, wg = self.conv.backward(dz, ctx[1], need_dx)
            return dx, wg + wg_bn
        _, cache, s, x, out = ctx
        dx, dw, db = ops.conv2d_relu_backward(dout, cache, need_dx)
        return self._fold_grads(dx, dw, db, s, dout, x, relu_out=out)


class _AddReLU(_ThenReLU):
    """An ``Add`` and the plain ReLU that alone reads its output, run by a model's
    plan as one op: for two inputs of one shape and dtype, one pass
    (:func:`fastconv.ops.add_relu_forward`) whose backward pass is the ReLU's alone
    (each input's gradient is the sum's); otherwise the two layers one after the other.
    The residual block's ``relu(x + f(x))``."""

    any_training = True
    list_input = True

    @staticmethod
    def fits(add: Any, relu: Any) -> bool:
        return type(add) is Add and not add.activity_regularizer and _plain_relu(relu)

    def forward(self, inputs, training=False, workspace=None):
        if isinstance(inputs, (list, tuple)) and len(inputs) == 2:
            a, b = inputs
            if type(a) is np.ndarray and type(b) is np.ndarray and a.shape == b.shape \
                    and a.dtype == b.dtype and a.dtype in (np.float32, np.float64):
                out, cache = ops.add_relu_forward(a, b)
                return out, ("one", cache)
        return self._pair_forward(inputs, training)

    def backward(self, dout, ctx, need_dx=True):
        if ctx[0] == "one":
            d = ops.relu_backward(dout, ctx[1])
            return [d, d], []
        return self._pair_backward(dout, ctx, need_dx)


#: The chains a plan runs as one op, tried in this order at each node (the longer
#: first where one chain starts another).
FUSIONS = (_ConvBatchNormReLU, _ConvReLUMaxPool, _ConvBatchNorm, _BatchNormReLU, _AddReLU)
