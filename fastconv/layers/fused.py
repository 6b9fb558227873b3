"""Pairs of layers a model's plan runs as one kernel."""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import activations as _activations
from .. import ops
from .convolutional import Conv2D
from .pooling import MaxPooling2D


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
        s, t = self._scale_shift(np.float64)
        dt = conv.kernel.dtype
        w = (conv.kernel * s).astype(dt)
        b = ((conv.bias * s if conv.use_bias else 0) + t).astype(dt)
        out, cache = ops.conv2d_forward(x, w, b, conv.strides, conv.padding,
                                        conv.dilation_rate)
        return out, ("fold", cache, s, x)

    def backward(self, dout, ctx, need_dx=True):
        conv, bn = self.conv, self.bn
        if ctx[0] == "train":
            dz, wg_bn = bn.backward(dout, ctx[2])
            dx, wg = conv.backward(dz, ctx[1], need_dx)
            return dx, wg + wg_bn
        _, cache, s, x = ctx
        dx, dw, db = ops.conv2d_backward(dout, cache, need_dx)
        dt = conv.kernel.dtype
        _, wg = conv._grads(None, (dw * s).astype(dt), None if db is None else (db * s).astype(dt))
        if bn.trainable and (bn.scale or bn.center):
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
