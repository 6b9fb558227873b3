"""Normalization layers: ``BatchNormalization`` and ``LayerNormalization``."""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import initializers as _initializers
from .. import regularizers as _regularizers
from ..backends._args import fail
from .base import Layer


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


class LayerNormalization(Layer):
    """Normalisation of each sample over ``axis`` (default the last):
    ``y = gamma * (x - mean) / sqrt(var + epsilon) + beta``, the mean and (biased)
    variance taken over ``axis`` of that sample alone, in training and inference alike.

    Weights, in Keras's order: ``gamma`` then ``beta``, each of the shape of the
    normalised axes.
    """

    def __init__(self, axis: Any = -1, epsilon: float = 1e-3, center: bool = True,
                 scale: bool = True, rms_scaling: bool = False, beta_initializer: Any = "zeros",
                 gamma_initializer: Any = "ones", beta_regularizer: Any = None,
                 gamma_regularizer: Any = None, **kwargs: Any):
        super().__init__(**kwargs)
        axes = list(axis) if isinstance(axis, (list, tuple)) else [axis]
        if not axes or not all(isinstance(a, (int, np.integer)) and not isinstance(a, bool)
                               for a in axes):
            raise fail("axis", "an int or a list of ints", axis, TypeError)
        if not epsilon > 0:
            raise fail("epsilon", "a number > 0", epsilon)
        if rms_scaling:
            raise NotImplementedError("fastconv's LayerNormalization does not implement "
                                      "rms_scaling yet")
        self.axis = axes if isinstance(axis, (list, tuple)) else int(axis)
        self._axes_arg = [int(a) for a in axes]
        self.epsilon, self.center, self.scale = float(epsilon), bool(center), bool(scale)
        self.beta_initializer = _initializers.get(beta_initializer, "beta_initializer")
        self.gamma_initializer = _initializers.get(gamma_initializer, "gamma_initializer")
        self.beta_regularizer = _regularizers.get(beta_regularizer, "beta_regularizer")
        self.gamma_regularizer = _regularizers.get(gamma_regularizer, "gamma_regularizer")

    def _axes(self, ndim):
        return tuple(sorted(a % ndim for a in self._axes_arg))

    def compute_output_shape(self, input_shape):
        n = len(input_shape)
        if not all(-n < a < n and a % n != 0 for a in self._axes_arg):
            raise self._shape_error(input_shape, f"axis={self.axis} is not a feature axis.")
        if any(input_shape[a] is None for a in self._axes(n)):
            raise self._shape_error(input_shape, f"the size of axis {self.axis} must be known.")
        return tuple(input_shape)

    def build(self, input_shape):
        shape = tuple(input_shape[a] for a in self._axes(len(input_shape)))
        if self.scale:
            self.add_weight(name="gamma", shape=shape, initializer=self.gamma_initializer,
                            regularizer=self.gamma_regularizer)
        if self.center:
            self.add_weight(name="beta", shape=shape, initializer=self.beta_initializer,
                            regularizer=self.beta_regularizer)

    def _bshape(self, x):
        axes = self._axes(x.ndim)
        return tuple(x.shape[i] if i in axes else 1 for i in range(x.ndim))

    def forward(self, x, training=False, workspace=None):
        axes, bs = self._axes(x.ndim), self._bshape(x)
        mean = x.mean(axis=axes, keepdims=True)
        var = x.var(axis=axes, keepdims=True)
        inv = (1 / np.sqrt(var + x.dtype.type(self.epsilon))).astype(x.dtype)
        xhat = (x - mean) * inv
        out = xhat * self.gamma.reshape(bs) if self.scale else xhat.copy()
        if self.center:
            out += self.beta.reshape(bs)
        return out, (xhat, inv)

    def backward(self, dout, ctx, need_dx=True):
        xhat, inv = ctx
        axes, bs = self._axes(dout.ndim), self._bshape(dout)
        batch_axes = tuple(i for i in range(dout.ndim) if i not in axes)
        wg = []
        if self.scale:
            wg.append((self.gamma, (dout * xhat).sum(axis=batch_axes).reshape(self.gamma.shape)))
            dxhat = dout * self.gamma.reshape(bs)
        else:
            dxhat = dout
        if self.center:
            wg.append((self.beta, dout.sum(axis=batch_axes).reshape(self.beta.shape)))
        m = int(np.prod([dout.shape[a] for a in axes]))
        s1 = dxhat.sum(axis=axes, keepdims=True)
        s2 = (dxhat * xhat).sum(axis=axes, keepdims=True)
        return (inv / m) * (m * dxhat - s1 - xhat * s2), wg

    def get_config(self):
        config = super().get_config()
        config.update({
            "axis": self.axis, "epsilon": self.epsilon, "center": self.center,
            "scale": self.scale, "rms_scaling": False,
            "beta_initializer": _initializers.serialize(self.beta_initializer),
            "gamma_initializer": _initializers.serialize(self.gamma_initializer),
            "beta_regularizer": _regularizers.serialize(self.beta_regularizer),
            "gamma_regularizer": _regularizers.serialize(self.gamma_regularizer),
        })
        return config
