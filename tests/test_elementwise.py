"""Compiled element-wise kernels used by the model layer: Adam, dropout, bias (+ReLU)."""

import numpy as np
import pytest

import fastconv
from fastconv import _elementwise, layers, optimizers
from fastconv.layers import Dense, Dropout


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_compiled_adam_is_bit_identical_to_numpy_adam(dtype, threads, rng, monkeypatch):
    p0 = rng.standard_normal(70001).astype(dtype)  # above the parallel threshold
    grads = [rng.standard_normal(p0.shape).astype(dtype) for _ in range(4)]
    results = []
    for compiled in (_elementwise, None):
        monkeypatch.setattr(optimizers, "_compiled", compiled)
        p = p0.copy()
        opt = optimizers.Adam(learning_rate=0.01)
        for g in grads:
            opt.apply([p], [g])
        results.append(p)
    assert np.array_equal(results[0], results[1])
    assert not np.array_equal(results[0], p0)


def test_adam_by_hand_through_the_kernel():
    # One step from m = v = 0: m = 0.1 g, v = 0.001 g^2, alpha = lr sqrt(0.001) / 0.1,
    # so the step is lr * g / (|g| + eps / sqrt(0.001)) ~= lr * sign(g).
    p = np.array([1.0, -2.0], dtype=np.float64)
    g = np.array([0.5, -4.0])
    optimizers.Adam(learning_rate=0.1, epsilon=0.0).apply([p], [g])
    np.testing.assert_allclose(p, [0.9, -1.9], rtol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dropout_kernel(dtype, threads):
    x = np.full(200_000, 2.0, dtype=dtype)
    x[:2] = [np.inf, np.nan]
    out = np.empty_like(x)
    keep = np.empty_like(x)
    _elementwise.dropout_forward(x, out, keep, 0.25, 1234, 0, threads)
    scale = dtype(1 / 0.75)
    assert set(np.unique(keep)) <= {dtype(0), scale}
    kept = keep != 0
    assert abs(kept.mean() - 0.75) < 0.01  # 200k draws: std of the mean ~ 0.001
    # As NumPy's x * mask: a dropped inf or NaN gives NaN.
    np.testing.assert_array_equal(out, x * keep)
    np.testing.assert_array_equal(out[2:], np.where(kept[2:], dtype(2) * scale, 0))
    dx = np.empty_like(x)
    dout = np.arange(x.size, dtype=dtype)
    _elementwise.dropout_backward(dout, keep, dx, threads)
    np.testing.assert_array_equal(dx, dout * keep)
    # A pure function of (key, step, index): the same mask again, another for step 1.
    keep2 = np.empty_like(keep)
    _elementwise.dropout_forward(x, out, keep2, 0.25, 1234, 0, 1)
    np.testing.assert_array_equal(keep, keep2)
    _elementwise.dropout_forward(x, out, keep2, 0.25, 1234, 1, 1)
    assert 0.5 < (keep == keep2).mean() < 0.75  # independent masks agree ~62.5%


def test_dropout_layer_masks_do_not_depend_on_threads(rng):
    x = rng.standard_normal((64, 13, 13, 32)).astype(np.float32)
    outs = []
    for n in (1, 2):
        fastconv.set_num_threads(n)
        layer = Dropout(0.5, seed=7)
        outs.append([layer.forward(x, training=True) for _ in range(2)])
    fastconv.set_num_threads(None)
    for a, b in zip(*outs):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(outs[0][0], outs[0][1])  # a new mask every step
    np.testing.assert_array_equal(Dropout(0.5, seed=7).forward(x, training=False), x)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(1, 1), (3, 7), (300, 129), (2000, 40)])
def test_bias_act_kernel_is_numpy_bit_for_bit(dtype, shape, threads, rng):
    z0 = rng.standard_normal(shape).astype(dtype)
    z0[0, 0] = np.nan
    b = rng.standard_normal(shape[1]).astype(dtype)
    for bias, relu in ((b, False), (b, True), (None, True)):
        z = z0.copy()
        _elementwise.bias_act(z, bias, relu, threads)
        want = z0 + bias if bias is not None else z0.copy()
        if relu:
            want = np.where(want <= 0, dtype(0), want)  # NaN stays NaN
        np.testing.assert_array_equal(z, want)


@pytest.mark.parametrize("activation", ["relu", "linear", "softmax"])
def test_dense_compiled_epilogue_matches_numpy(activation, rng, monkeypatch):
    x = rng.standard_normal((5, 6)).astype(np.float32)
    dout = rng.standard_normal((5, 4)).astype(np.float32)
    results = []
    for compiled in (_elementwise, None):
        monkeypatch.setattr(layers, "_elementwise", compiled)
        layer = Dense(4, activation=activation, bias_initializer="glorot_uniform")
        layer.build_for((None, 6))
        layer.set_weights([np.linspace(-1, 1, 24).reshape(6, 4),
                           np.array([0.5, -0.5, 0.1, 0.0])])
        out = layer.forward(x, training=True)
        results.append((out, layer.backward(dout), layer.grads["kernel"].copy(),
                        layer.grads["bias"].copy()))
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)


def test_dense_fused_relu_backward_checks_dout(rng):
    layer = Dense(4, activation="relu")
    layer.build_for((None, 6))
    out = layer.forward(rng.standard_normal((5, 6)).astype(np.float32), training=True)
    # Another float dtype is cast, as on the unfused path.
    dx = layer.backward(np.ones(out.shape, dtype=np.float64))
    assert dx.dtype == np.float32 and dx.shape == (5, 6)
    with pytest.raises(ValueError, match="`dout`"):
        layer.backward(np.ones((4, 5), dtype=np.float32))  # same size, wrong shape
