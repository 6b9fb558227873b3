"""Normalization layers: ``BatchNormalization``, ``LayerNormalization``,
``GroupNormalization``.

Each standardises x over some axes, ``xhat = (x - mean) / sqrt(var + epsilon)`` (biased
variance), then scales and shifts it per feature, ``gamma * xhat + beta``.

With the features on the last axis (channels-last images, Dense outputs), batch and
group normalisation run on two kernels of :mod:`fastconv.ops` (compiled, with a NumPy
twin): ``channel_sums`` for the statistics (one pass, in double) and
``channel_affine`` for ``y = scale * x + shift`` and the input gradient
``dx = k * dout + p * x + q`` (one pass each), all per channel. Layer normalisation
over the last axis runs on ``ops.layernorm_forward``/``layernorm_backward`` (each
row on its own). Other layouts run in NumPy.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import constraints as _constraints
from .. import initializers as _initializers
from .. import ops
from .. import regularizers as _regularizers
from ..backends._args import fail
from .base import Layer


def _standardize(x, axes, epsilon):
    """``(xhat, inv)``: x standardised over ``axes`` and ``1 / sqrt(var + epsilon)``
    (kept dims)."""
    mean = x.mean(axis=axes, keepdims=True)
    var = x.var(axis=axes, keepdims=True)
    inv = (1 / np.sqrt(var + x.dtype.type(epsilon))).astype(x.dtype)
    return (x - mean) * inv, inv


def _standardize_backward(dxhat, xhat, inv, axes):
    """dx of :func:`_standardize` from dxhat, the mean and variance differentiated too:
    ``inv / m * (m * dxhat - sum(dxhat) - xhat * sum(dxhat * xhat))`` over ``axes``."""
    m = int(np.prod([dxhat.shape[a] for a in axes]))
    s1 = dxhat.sum(axis=axes, keepdims=True)
    s2 = (dxhat * xhat).sum(axis=axes, keepdims=True)
    return (inv / m) * (m * dxhat - s1 - xhat * s2)


class _Grouped:
    """Standardisation of u (A, R, B) over its rows and each group of B // G
    consecutive channels, on ops.channel_sums and ops.channel_affine: batch
    normalisation is A = 1 and G = B, group normalisation A = the batch."""

    def __init__(self, u, groups, mean=None, var=None):
        self.u, self.groups = u, groups
        self.cg = u.shape[2] // groups
        if mean is None:
            mean, var = self._moments()
        self.mean, self.var = mean, var  # float64 (A, G)

    def _moments(self):
        A, R, B = self.u.shape
        cg = self.cg
        # shifted by a value of each group, so that s2/m - (s1/m)^2 does not cancel
        shift = np.repeat(self.u[:, 0, ::cg].astype(np.float64), cg, axis=1)
        s1, s2 = ops.channel_sums(self.u, None, shift)
        m = R * cg
        s1 = s1.reshape(A, self.groups, cg).sum(axis=2) / m
        s2 = s2.reshape(A, self.groups, cg).sum(axis=2) / m
        return shift[:, ::cg] + s1, np.maximum(s2 - s1 * s1, 0.0)

    def _wide(self, a):
        """(A, G) -> (A, B): each group's value for each of its channels."""
        return np.repeat(a, self.cg, axis=1)

    inv = None          # (A, G), set by the layer: 1 / sqrt(var + epsilon)
    batch_stats = True  # whether the mean and variance are the batch's own
    gate = None         # (scale, shift) of the forward map when a ReLU followed it

    def forward(self, inv, gamma, beta, relu=False):
        """``gamma * (u - mean) * inv + beta`` as ``scale * u + shift``; inv (A, G).
        With ``relu``, the ReLU of that in the same pass; the backward pass then takes
        the gradient of the ReLU's output (:attr:`gate`)."""
        dt = self.u.dtype
        scale = self._wide(inv).astype(dt)
        if gamma is not None:
            scale = scale * gamma
        shift = -(self._wide(self.mean).astype(dt) * scale)
        if beta is not None:
            shift = shift + beta
        if relu:
            self.gate = (scale, shift)
        return ops.channel_affine(self.u, scale, shift, relu=relu)

    def backward(self, dout, inv, gamma, batch_stats):
        """``(dx, dgamma (A, B), dbeta (A, B))`` for dout (A, R, B); with
        ``batch_stats`` the mean and variance depend on u and are differentiated too.
        With a :attr:`gate`, dout is the gradient of the ReLU's output: it counts only
        where the normalised value was > 0 (in the kernels' passes, not formed)."""
        dt = self.u.dtype
        A, R, B = self.u.shape
        gate = self.gate
        if gate is not None and not batch_stats:
            # (inference-mode gradients: the gate applied to dout on its own)
            dout = np.where(gate[0][:, None, :] * self.u + gate[1][:, None, :] > 0, dout,
                            dt.type(0))
            gate = None
        s_dy, s_dyx = ops.channel_sums(dout, self.u, self._wide(self.mean), gate)
        inv64 = self._wide(inv.astype(np.float64))
        dgamma = inv64 * s_dyx          # sum dout * xhat
        g = np.ones(B) if gamma is None else gamma.astype(np.float64)
        k = g * inv64
        if not batch_stats:
            dx = ops.channel_affine(dout, k.astype(dt), np.zeros((A, B), dt))
            return dx, dgamma, s_dy
        m = R * self.cg

        def group_sum(a):
            return a.reshape(A, self.groups, self.cg).sum(axis=2)

        s_dxhat = self._wide(group_sum(g * s_dy))          # sum of gamma * dout
        s_dxhat_xhat = self._wide(group_sum(g * dgamma))   # sum of gamma * dout * xhat
        p = -(inv64 * inv64) * s_dxhat_xhat / m
        q = -inv64 * s_dxhat / m - p * self._wide(self.mean)
        dx = ops.channel_affine(dout, k.astype(dt), q.astype(dt), v=self.u,
                                q=p.astype(dt), gate=gate)
        return dx, dgamma, s_dy


def _inv_std(var, epsilon, dtype):
    """``1 / sqrt(var + epsilon)`` in ``dtype``, var rounded to it first."""
    var = np.asarray(var).astype(dtype)
    return (1 / np.sqrt(var + dtype.type(epsilon))).astype(dtype)


class _ScaleCenter:
    """The per-feature ``gamma`` (scale) and ``beta`` (center) of a normalization."""

    def _scale_center_args(self, center, scale, beta_initializer, gamma_initializer,
                           beta_regularizer, gamma_regularizer, beta_constraint,
                           gamma_constraint):
        self.center, self.scale = bool(center), bool(scale)
        self.beta_initializer = _initializers.get(beta_initializer, "beta_initializer")
        self.gamma_initializer = _initializers.get(gamma_initializer, "gamma_initializer")
        self.beta_regularizer = _regularizers.get(beta_regularizer, "beta_regularizer")
        self.gamma_regularizer = _regularizers.get(gamma_regularizer, "gamma_regularizer")
        self.beta_constraint = _constraints.get(beta_constraint, "beta_constraint")
        self.gamma_constraint = _constraints.get(gamma_constraint, "gamma_constraint")

    def _add_scale_center(self, shape):
        if self.scale:
            self.add_weight(name="gamma", shape=shape, initializer=self.gamma_initializer,
                            regularizer=self.gamma_regularizer,
                            constraint=self.gamma_constraint)
        if self.center:
            self.add_weight(name="beta", shape=shape, initializer=self.beta_initializer,
                            regularizer=self.beta_regularizer, constraint=self.beta_constraint)

    def _affine(self, xhat, bs):
        """``gamma * xhat + beta``, gamma and beta reshaped to ``bs``."""
        out = xhat * self.gamma.reshape(bs) if self.scale else xhat.copy()
        if self.center:
            out += self.beta.reshape(bs)
        return out

    def _affine_backward(self, dout, xhat, bs):
        """``(dxhat, [(gamma, dgamma), (beta, dbeta)])``."""
        axes = tuple(i for i, s in enumerate(bs) if s == 1)
        shape = self.gamma.shape if self.scale else self.beta.shape if self.center else None
        wg = []
        if self.scale:
            wg.append((self.gamma, (dout * xhat).sum(axis=axes).reshape(shape)))
            dxhat = dout * self.gamma.reshape(bs)
        else:
            dxhat = dout
        if self.center:
            wg.append((self.beta, dout.sum(axis=axes).reshape(shape)))
        return dxhat, wg

    def _scale_center_config(self):
        return {
            "center": self.center, "scale": self.scale,
            "beta_initializer": _initializers.serialize(self.beta_initializer),
            "gamma_initializer": _initializers.serialize(self.gamma_initializer),
            "beta_regularizer": _regularizers.serialize(self.beta_regularizer),
            "gamma_regularizer": _regularizers.serialize(self.gamma_regularizer),
            "beta_constraint": _constraints.serialize(self.beta_constraint),
            "gamma_constraint": _constraints.serialize(self.gamma_constraint),
        }


def _epsilon(value):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)) \
            or not value > 0:
        raise fail("epsilon", "a number > 0", value)
    return float(value)


class BatchNormalization(_ScaleCenter, Layer):
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
                 gamma_regularizer: Any = None, beta_constraint: Any = None,
                 gamma_constraint: Any = None, **kwargs: Any):
        super().__init__(**kwargs)
        if not isinstance(axis, (int, np.integer)) or isinstance(axis, bool):
            raise fail("axis", "an int", axis, TypeError)
        if not 0 <= momentum <= 1:
            raise fail("momentum", "a number in [0, 1]", momentum)
        self.axis, self.momentum, self.epsilon = int(axis), float(momentum), _epsilon(epsilon)
        self._scale_center_args(center, scale, beta_initializer, gamma_initializer,
                                beta_regularizer, gamma_regularizer, beta_constraint,
                                gamma_constraint)
        self.moving_mean_initializer = _initializers.get(moving_mean_initializer,
                                                         "moving_mean_initializer")
        self.moving_variance_initializer = _initializers.get(moving_variance_initializer,
                                                             "moving_variance_initializer")

    def compute_output_shape(self, input_shape):
        if not -len(input_shape) < self.axis < len(input_shape) or self.axis % len(
                input_shape) == 0:
            raise self._shape_error(input_shape, f"axis={self.axis} is not a feature axis.")
        if input_shape[self.axis] is None:
            raise self._shape_error(input_shape, f"the size of axis {self.axis} must be known.")
        return tuple(input_shape)

    def build(self, input_shape):
        c = (input_shape[self.axis],)
        self._add_scale_center(c)
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
        if self.axis % x.ndim == x.ndim - 1 and x.size:
            return self._forward_last(x, training)
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
        return self._affine(xhat, bs), (xhat, inv.reshape(bs), axes, bs, training)

    def _forward_last(self, x, training, relu=False):
        """Channels last: the statistics and the map on the per-channel kernels (and,
        with ``relu``, a ReLU after it in the map's pass: see ``layers.fused``)."""
        C = x.shape[-1]
        dt = x.dtype.type
        u = x.reshape(1, -1, C)
        if training:
            st = _Grouped(u, C)
            m = dt(self.momentum)
            self.moving_mean *= m
            self.moving_mean += (1 - m) * st.mean[0].astype(x.dtype)
            self.moving_variance *= m
            self.moving_variance += (1 - m) * st.var[0].astype(x.dtype)
        else:
            st = _Grouped(u, C, self.moving_mean.astype(np.float64)[None],
                          self.moving_variance.astype(np.float64)[None])
        inv = _inv_std(st.var, self.epsilon, x.dtype)
        out = st.forward(inv, self.gamma if self.scale else None,
                         self.beta if self.center else None, relu)
        st.inv, st.batch_stats = inv, training
        return out.reshape(x.shape), st

    def backward(self, dout, ctx, need_dx=True):
        if isinstance(ctx, _Grouped):
            st = ctx
            C = dout.shape[-1]
            dout = np.ascontiguousarray(dout, dtype=st.u.dtype)
            dx, dgamma, dbeta = st.backward(dout.reshape(1, -1, C), st.inv,
                                            self.gamma if self.scale else None,
                                            st.batch_stats)
            wg = ([(self.gamma, dgamma[0].astype(self.gamma.dtype))] if self.scale else []) \
                + ([(self.beta, dbeta[0].astype(self.beta.dtype))] if self.center else [])
            return dx.reshape(dout.shape), wg
        xhat, inv, axes, bs, training = ctx
        dxhat, wg = self._affine_backward(dout, xhat, bs)
        if not training:
            return dxhat * inv, wg
        return _standardize_backward(dxhat, xhat, inv, axes), wg

    def get_config(self):
        config = super().get_config()
        config.update({
            "axis": self.axis, "momentum": self.momentum, "epsilon": self.epsilon,
            **self._scale_center_config(),
            "moving_mean_initializer": _initializers.serialize(self.moving_mean_initializer),
            "moving_variance_initializer": _initializers.serialize(
                self.moving_variance_initializer),
        })
        return config


def _axis_list(value):
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return [int(value)]
    if isinstance(value, (list, tuple)) and value and all(
            isinstance(a, (int, np.integer)) and not isinstance(a, bool) for a in value):
        return [int(a) for a in value]
    raise fail("axis", "an int or a list of ints", value, TypeError)


class LayerNormalization(_ScaleCenter, Layer):
    """Standardise each sample over ``axis`` (default the last), then
    ``gamma * xhat + beta``, the same in training and inference.

    Weights, in Keras's order: ``gamma``, ``beta`` (each of the shape of the ``axis``
    axes, ``(C,)`` by default), as ``scale`` and ``center`` ask.
    """

    def __init__(self, axis: Any = -1, epsilon: float = 1e-3, center: bool = True,
                 scale: bool = True, beta_initializer: Any = "zeros",
                 gamma_initializer: Any = "ones", beta_regularizer: Any = None,
                 gamma_regularizer: Any = None, beta_constraint: Any = None,
                 gamma_constraint: Any = None, **kwargs: Any):
        if kwargs.pop("rms_scaling", False):
            raise NotImplementedError("fastconv does not implement LayerNormalization's "
                                      "deprecated rms_scaling=True")
        super().__init__(**kwargs)
        self.axis = _axis_list(axis)
        self.epsilon = _epsilon(epsilon)
        self._scale_center_args(center, scale, beta_initializer, gamma_initializer,
                                beta_regularizer, gamma_regularizer, beta_constraint,
                                gamma_constraint)

    def _axes(self, ndim):
        return tuple(sorted(a % ndim for a in self.axis))

    def compute_output_shape(self, input_shape):
        n = len(input_shape)
        for a in self.axis:
            if not -n <= a < n or a % n == 0:
                raise self._shape_error(input_shape, f"axis={self.axis} must name axes "
                                        "of one sample, not the batch axis.")
            if input_shape[a] is None:
                raise self._shape_error(input_shape, f"the size of axis {a} must be known.")
        return tuple(input_shape)

    def build(self, input_shape):
        self._add_scale_center(tuple(input_shape[a] for a in self._axes(len(input_shape))))

    def _bshape(self, shape):
        axes = self._axes(len(shape))
        return tuple(s if i in axes else 1 for i, s in enumerate(shape))

    def forward(self, x, training=False, workspace=None):
        axes = self._axes(x.ndim)
        if axes == (x.ndim - 1,) and x.size:  # each row of features: the row kernel
            x2 = x.reshape(-1, x.shape[-1])
            out, mean, inv = ops.layernorm_forward(
                x2, self.gamma if self.scale else None, self.beta if self.center else None,
                self.epsilon)
            return out.reshape(x.shape), ("rows", x2, mean, inv)
        xhat, inv = _standardize(x, axes, self.epsilon)
        bs = self._bshape(x.shape)
        return self._affine(xhat, bs), (xhat, inv, axes, bs)

    def backward(self, dout, ctx, need_dx=True):
        if isinstance(ctx[0], str):
            _, x2, mean, inv = ctx
            dx, dgamma, dbeta = ops.layernorm_backward(
                dout.reshape(x2.shape), x2, mean, inv, self.gamma if self.scale else None)
            wg = ([(self.gamma, dgamma.astype(self.gamma.dtype))] if self.scale else []) + (
                [(self.beta, dbeta.astype(self.beta.dtype))] if self.center else [])
            return dx.reshape(dout.shape), wg
        xhat, inv, axes, bs = ctx
        dxhat, wg = self._affine_backward(dout, xhat, bs)
        return _standardize_backward(dxhat, xhat, inv, axes), wg

    def get_config(self):
        config = super().get_config()
        config.update({"axis": list(self.axis), "epsilon": self.epsilon,
                       **self._scale_center_config()})
        return config


class GroupNormalization(_ScaleCenter, Layer):
    """Split the channels (``axis``, default the last) into ``groups`` groups and
    standardise each sample's group over the group's channels and every other axis, then
    ``gamma * xhat + beta`` per channel. ``groups=-1`` is one group per channel
    (instance normalisation); ``groups=1`` standardises whole samples.

    Weights, in Keras's order: ``gamma``, ``beta``, each ``(C,)``.
    """

    def __init__(self, groups: int = 32, axis: int = -1, epsilon: float = 1e-3,
                 center: bool = True, scale: bool = True, beta_initializer: Any = "zeros",
                 gamma_initializer: Any = "ones", beta_regularizer: Any = None,
                 gamma_regularizer: Any = None, beta_constraint: Any = None,
                 gamma_constraint: Any = None, **kwargs: Any):
        super().__init__(**kwargs)
        if isinstance(groups, bool) or not isinstance(groups, (int, np.integer)) or (
                groups < 1 and groups != -1):
            raise fail("groups", "a positive int, or -1 (one group per channel)", groups)
        self.groups = int(groups)
        if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
            raise fail("axis", "an int", axis, TypeError)
        self.axis = int(axis)
        self.epsilon = _epsilon(epsilon)
        self._scale_center_args(center, scale, beta_initializer, gamma_initializer,
                                beta_regularizer, gamma_regularizer, beta_constraint,
                                gamma_constraint)

    @property
    def _feature_axis(self):
        return self.axis

    def compute_output_shape(self, input_shape):
        n = len(input_shape)
        if not -n <= self.axis < n or self.axis % n == 0:
            raise self._shape_error(input_shape, f"axis={self.axis} is not a feature axis.")
        c = input_shape[self.axis]
        if c is None:
            raise self._shape_error(input_shape, f"the size of axis {self.axis} must be known.")
        g = c if self.groups == -1 else self.groups
        if c % g:
            raise self._shape_error(input_shape, f"its {c} channels do not split into "
                                    f"groups={self.groups} groups of equal size.")
        return tuple(input_shape)

    def build(self, input_shape):
        self._add_scale_center((input_shape[self.axis],))

    def _group_shape(self, shape):
        """``shape`` with the channel axis split into (groups, channels per group)."""
        a = self.axis % len(shape)
        g = shape[a] if self.groups == -1 else self.groups
        return shape[:a] + (g, shape[a] // g) + shape[a + 1:], a

    def forward(self, x, training=False, workspace=None):
        gshape, a = self._group_shape(x.shape)
        if a == x.ndim - 1 and x.size:
            st = _Grouped(x.reshape(x.shape[0], -1, x.shape[-1]), gshape[a])
            inv = _inv_std(st.var, self.epsilon, x.dtype)
            out = st.forward(inv, self.gamma if self.scale else None,
                             self.beta if self.center else None)
            st.inv, st.batch_stats = inv, True
            return out.reshape(x.shape), st
        axes = tuple(i for i in range(1, len(gshape)) if i != a)
        xhat, inv = _standardize(x.reshape(gshape), axes, self.epsilon)
        bs = tuple(s if i == a else 1 for i, s in enumerate(x.shape))
        return self._affine(xhat.reshape(x.shape), bs), (xhat, inv, axes, bs, gshape)

    def backward(self, dout, ctx, need_dx=True):
        if isinstance(ctx, _Grouped):
            st = ctx
            shape = dout.shape
            dout = np.ascontiguousarray(dout, dtype=st.u.dtype).reshape(st.u.shape)
            dx, dgamma, dbeta = st.backward(dout, st.inv,
                                            self.gamma if self.scale else None, True)
            wg = ([(self.gamma, dgamma.sum(axis=0).astype(self.gamma.dtype))]
                  if self.scale else []) + (
                [(self.beta, dbeta.sum(axis=0).astype(self.beta.dtype))] if self.center else [])
            return dx.reshape(shape), wg
        xhat, inv, axes, bs, gshape = ctx
        dxhat, wg = self._affine_backward(dout, xhat.reshape(dout.shape), bs)
        dx = _standardize_backward(dxhat.reshape(gshape), xhat, inv, axes)
        return dx.reshape(dout.shape), wg

    def get_config(self):
        config = super().get_config()
        config.update({"groups": self.groups, "axis": self.axis, "epsilon": self.epsilon,
                       **self._scale_center_config()})
        return config
