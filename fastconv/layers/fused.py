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
