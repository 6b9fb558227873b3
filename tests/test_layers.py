"""Layers: forward/backward against central differences (float64) and the reference."""

import numpy as np
import pytest

import fastconv
from fastconv import layers
from fastconv.testing import assert_close, numerical_gradient


def _built(layer, shape, dtype=np.float64):
    layer.build_for((None,) + shape[1:], dtype)
    return layer


def _check_layer(layer, x, rng, training=False, tol=1e-7):
    """dx and every parameter gradient of ``layer`` against central differences."""
    out, ctx = layer.forward(x, training)
    dout = rng.normal(size=out.shape)
    dx, grads = layer.backward(dout, ctx)
    f = lambda: layer.forward(x, training)[0]  # noqa: E731
    assert_close(dx, numerical_gradient(f, x, dout), rtol=tol)
    got = {id(w): g for w, g in grads}
    assert len(got) == len(layer.trainable_items())
    for _, w in layer.trainable_items():
        assert_close(got[id(w)], numerical_gradient(f, w, dout), rtol=tol)


CASES = [
    (lambda: layers.Conv2D(3, 3, activation="relu"), (2, 6, 5, 2)),
    (lambda: layers.Conv2D(2, (2, 3), strides=2, padding="same"), (2, 7, 6, 3)),
    (lambda: layers.Conv2D(2, 3, dilation_rate=2, activation="tanh"), (1, 7, 7, 1)),
    (lambda: layers.Conv2D(2, 3, data_format="channels_first", activation="elu"), (2, 2, 5, 5)),
    (lambda: layers.Conv2D(2, 2, use_bias=False, kernel_regularizer="l2"), (1, 4, 4, 2)),
    (lambda: layers.MaxPooling2D(), (2, 6, 6, 2)),
    (lambda: layers.MaxPooling2D(3, strides=2, padding="same"), (1, 7, 5, 2)),
    (lambda: layers.AveragePooling2D((2, 3), padding="same"), (2, 5, 5, 2)),
    (lambda: layers.AveragePooling2D(data_format="channels_first"), (1, 2, 4, 6)),
    (lambda: layers.Flatten(), (2, 3, 4, 2)),
    (lambda: layers.Flatten(data_format="channels_first"), (2, 3, 4, 2)),
    (lambda: layers.Dense(4, activation="sigmoid"), (3, 5)),
    (lambda: layers.Dense(3, activation="softmax"), (3, 4)),
    (lambda: layers.Dense(3), (2, 3, 3, 4)),
    (lambda: layers.Activation("tanh"), (3, 4)),
    (lambda: layers.Activation("leaky_relu"), (3, 4)),
    (lambda: layers.ReLU(), (3, 4)),
    (lambda: layers.ReLU(max_value=0.5, negative_slope=0.1), (3, 6)),
    (lambda: layers.LeakyReLU(), (3, 4)),
    (lambda: layers.ELU(alpha=0.7), (3, 4)),
    (lambda: layers.Softmax(), (3, 5)),
    (lambda: layers.Softmax(axis=1), (3, 4, 2)),
    (lambda: layers.Maxout(3), (4, 5)),
    (lambda: layers.Maxout(2, num_pieces=3), (4, 3)),
    (lambda: layers.GlobalAveragePooling2D(), (2, 3, 4, 2)),
    (lambda: layers.GlobalAveragePooling2D(keepdims=True, data_format="channels_first"),
     (2, 2, 3, 4)),
    (lambda: layers.GlobalMaxPooling2D(), (2, 3, 4, 2)),
    (lambda: layers.GlobalMaxPooling2D(keepdims=True, data_format="channels_first"),
     (2, 2, 3, 4)),
    (lambda: layers.BatchNormalization(), (5, 3)),
    (lambda: layers.BatchNormalization(axis=1), (3, 2, 3, 3)),
]


@pytest.mark.parametrize("make, shape", CASES, ids=lambda v: getattr(v, "__name__", str(v)))
def test_gradients(make, shape, rng):
    layer = _built(make(), shape)
    x = rng.normal(size=shape)
    # Keep inputs away from ReLU kinks and max-pooling ties.
    x += np.sign(x) * 0.05
    _check_layer(layer, x, rng)


@pytest.mark.parametrize("shape, axis", [((6, 3), -1), ((2, 3, 3, 2), -1), ((2, 2, 3, 3), 1)])
def test_batchnorm_training_gradients(shape, axis, rng):
    layer = _built(layers.BatchNormalization(axis=axis, gamma_initializer="random_normal",
                                             beta_initializer="random_normal"), shape)
    x = rng.normal(size=shape)
    _check_layer(layer, x, rng, training=True)
    out = layer.forward(x, training=True)[0]
    axes = tuple(i for i in range(x.ndim) if i != axis % x.ndim)
    normed = (out - layer.beta.reshape(out.shape[axis], *[1] * 0).reshape(
        [-1 if i == axis % x.ndim else 1 for i in range(x.ndim)])) / layer.gamma.reshape(
        [-1 if i == axis % x.ndim else 1 for i in range(x.ndim)])
    np.testing.assert_allclose(normed.mean(axis=axes), 0, atol=1e-10)
    np.testing.assert_allclose(normed.var(axis=axes), 1, rtol=1e-2)


def test_batchnorm_moving_statistics():
    layer = _built(layers.BatchNormalization(momentum=0.5), (4, 2))
    x = np.array([[1.0, 2.0], [3.0, 2.0], [5.0, 2.0], [7.0, 2.0]])
    layer.forward(x, training=True)
    # mean (4, 2), biased variance (5, 0): moving = 0.5 * initial + 0.5 * batch
    np.testing.assert_allclose(layer.moving_mean, [2.0, 1.0])
    np.testing.assert_allclose(layer.moving_variance, [3.0, 0.5])
    out = layer.forward(x, training=False)[0]
    np.testing.assert_allclose(out[:, 0], (x[:, 0] - 2) / np.sqrt(3 + 1e-3))


@pytest.mark.parametrize("make, shape", [
    (lambda: layers.Conv2D(4, 3, strides=2, padding="same", activation="relu"), (2, 9, 8, 3)),
    (lambda: layers.Conv2D(3, 2, dilation_rate=2), (2, 6, 7, 2)),
    (lambda: layers.MaxPooling2D(3, 2), (2, 7, 7, 3)),
    (lambda: layers.AveragePooling2D(2, padding="same"), (2, 5, 5, 3)),
])
def test_against_reference_backend(make, shape, rng, threads):
    layer = _built(make(), shape, np.float32)
    x = rng.normal(size=shape).astype(np.float32)
    results = {}
    for backend in ("numpy", "cython"):
        with fastconv.use_backend(backend):
            out, ctx = layer.forward(x)
            dout = np.ones_like(out) * np.linspace(-1, 1, out.size, dtype=np.float32).reshape(
                out.shape)
            dx, grads = layer.backward(dout, ctx)
            results[backend] = (out, dx, {i: g.copy() for i, (_, g) in enumerate(grads)})
    ref, fast = results["numpy"], results["cython"]
    assert_close(fast[0], ref[0])
    assert_close(fast[1], ref[1], rtol=1e-4)
    for k in ref[2]:
        assert_close(fast[2][k], ref[2][k], rtol=1e-4)


def test_channels_first_matches_channels_last(rng):
    x = rng.normal(size=(2, 6, 6, 3))
    last = _built(layers.Conv2D(4, 3, activation="relu"), x.shape)
    first = _built(layers.Conv2D(4, 3, activation="relu", data_format="channels_first"),
                   (2, 3, 6, 6))
    first.set_weights(last.get_weights())
    assert first.kernel.shape == (3, 3, 3, 4)
    out = first.forward(x.transpose(0, 3, 1, 2))[0]
    np.testing.assert_allclose(out, last.forward(x)[0].transpose(0, 3, 1, 2), rtol=1e-12)
    assert first.output_shape == (None, 4, 4, 4)


def test_keras_weight_shapes_and_defaults():
    conv = layers.Conv2D(32, kernel_size=3, input_shape=(28, 28, 1))
    assert conv.strides == (1, 1) and conv.padding == "valid" and conv.use_bias
    conv.build_for((None, 28, 28, 1))
    assert conv.kernel.shape == (3, 3, 1, 32) and conv.bias.shape == (32,)
    assert conv.kernel.dtype == np.float32
    assert np.all(conv.bias == 0)
    limit = np.sqrt(6 / (9 * 1 + 9 * 32))  # glorot_uniform
    assert np.abs(conv.kernel).max() <= limit
    dense = layers.Dense(10)
    dense.build_for((None, 7))
    assert [w.shape for w in dense.get_weights()] == [(7, 10), (10,)]
    bn = layers.BatchNormalization()
    bn.build_for((None, 4, 4, 3))
    assert [w.shape for w in bn.weights] == [(3,)] * 4
    assert len(bn.trainable_weights) == 2 and len(bn.non_trainable_weights) == 2


def test_callable_initializer_and_config_round_trip():
    calls = []

    def init(shape, dtype=None):
        calls.append((shape, dtype))
        return np.full(shape, 0.5)

    dense = layers.Dense(2, kernel_initializer=init)
    dense.build_for((None, 3))
    assert calls and np.all(dense.kernel == 0.5)
    conv = layers.Conv2D(4, (3, 2), strides=2, padding="same", activation="relu",
                         kernel_regularizer="l2", name="c")
    clone = layers.Conv2D.from_config(conv.get_config())
    assert clone.get_config() == conv.get_config()


def test_dropout_is_inverted_seeded_and_training_only():
    x = np.ones((200, 50), np.float32)
    drop = layers.Dropout(0.25, seed=3)
    assert drop.forward(x, training=False)[0] is x
    out, ctx = drop.forward(x, training=True)
    kept = out != 0
    np.testing.assert_array_equal(out[kept], np.float32(1 / 0.75))
    assert abs(kept.mean() - 0.75) < 0.02
    dout = np.full_like(x, 2.0)
    np.testing.assert_array_equal(drop.backward(dout, ctx)[0], np.where(
        kept, 2 / 0.75, 0).astype(np.float32))
    again = layers.Dropout(0.25, seed=3).forward(x, training=True)[0]
    np.testing.assert_array_equal(again, out)


@pytest.mark.parametrize("kwargs, message", [
    ({"filters": 0, "kernel_size": 3}, "`filters` must be a positive int"),
    ({"filters": 2, "kernel_size": 0}, "`kernel_size` must be"),
    ({"filters": 2, "kernel_size": 3, "padding": "full"}, "`padding` must be 'valid' or 'same'"),
    ({"filters": 2, "kernel_size": 3, "data_format": "NHWC"}, "`data_format` must be"),
    ({"filters": 2, "kernel_size": 3, "activation": "swishy"}, "`activation` must be"),
    ({"filters": 2, "kernel_size": 3, "kernel_initializer": "glorot"},
     "`kernel_initializer` must be"),
])
def test_bad_arguments(kwargs, message):
    with pytest.raises((ValueError, TypeError), match=message):
        layers.Conv2D(**kwargs)


def test_bad_rate_and_unknown_kwarg():
    with pytest.raises(ValueError, match="`rate` must be a number in"):
        layers.Dropout(1.5)
    with pytest.raises(TypeError, match="unexpected keyword argument.*kernal_size"):
        layers.Conv2D(2, 3, kernal_size=3)


def test_global_pooling_values_shapes_and_ties():
    x = np.arange(2 * 3 * 4 * 5, dtype=np.float64).reshape(2, 3, 4, 5) % 7
    avg = layers.GlobalAveragePooling2D()
    np.testing.assert_allclose(avg(x), x.mean(axis=(1, 2)))
    assert avg.compute_output_shape((None, 3, 4, 5)) == (None, 5)
    mx = layers.GlobalMaxPooling2D(keepdims=True)
    np.testing.assert_array_equal(mx(x), x.max(axis=(1, 2), keepdims=True))
    assert mx.compute_output_shape((None, 3, 4, 5)) == (None, 1, 1, 5)
    assert layers.GlobalAvgPool2D is layers.GlobalAveragePooling2D
    # A tie sends the whole gradient to the first maximum in row-major order.
    tied = np.ones((1, 2, 2, 1))
    out, ctx = layers.GlobalMaxPooling2D().forward(tied)
    dx, _ = layers.GlobalMaxPooling2D().backward(np.ones_like(out), ctx)
    np.testing.assert_array_equal(dx[0, :, :, 0], [[1, 0], [0, 0]])
    with pytest.raises(ValueError, match="expects 4-D input"):
        layers.GlobalAveragePooling2D().compute_output_shape((None, 4, 5))
