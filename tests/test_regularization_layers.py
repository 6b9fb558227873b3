"""SpatialDropout2D, GaussianNoise, GaussianDropout, ActivityRegularization and the
``activity_regularizer`` of layers: masks and noise statistics, training only, seeds,
gradients, the penalty in the loss, Keras parity, bad input."""

import numpy as np
import pytest

from fastconv import keras, layers
from fastconv.testing import assert_close, numerical_gradient
from fastconv.utils import set_random_seed


def test_spatial_dropout_drops_whole_channels(rng):
    x = rng.random((6, 4, 5, 8)) + 1
    layer = layers.SpatialDropout2D(0.5, seed=3)
    np.testing.assert_array_equal(layer(x), x)  # inference: the identity
    out, ctx = layer.forward(x, training=True)
    ratio = out / x
    for n in range(6):
        for c in range(8):
            vals = np.unique(ratio[n, :, :, c])
            assert len(vals) == 1 and vals[0] in (0.0, 2.0)
    dropped = (ratio[:, 0, 0, :] == 0).mean()
    assert 0.2 < dropped < 0.8
    dout = rng.normal(size=x.shape)
    np.testing.assert_allclose(layer.backward(dout, ctx)[0], dout * ratio)
    first = layers.SpatialDropout2D(0.5, data_format="channels_first", seed=3)
    ratio = first.forward(x, training=True)[0] / x
    assert all(len(np.unique(ratio[n, c])) == 1 for n in range(6) for c in range(4))


def test_noise_layers_statistics_training_only_and_gradients(rng):
    x = rng.normal(size=(50, 40, 10))
    noise = layers.GaussianNoise(0.3, seed=1)
    np.testing.assert_array_equal(noise(x), x)
    out, ctx = noise.forward(x, training=True)
    assert abs((out - x).mean()) < 0.01 and abs((out - x).std() - 0.3) < 0.01
    dout = rng.normal(size=x.shape)
    np.testing.assert_array_equal(noise.backward(dout, ctx)[0], dout)

    drop = layers.GaussianDropout(0.2, seed=1)
    np.testing.assert_array_equal(drop(x), x)
    out, ctx = drop.forward(x, training=True)
    factor = out / x
    assert abs(factor.mean() - 1) < 0.01 and abs(factor.std() - 0.5) < 0.01  # sqrt(.2/.8)
    np.testing.assert_allclose(drop.backward(dout, ctx)[0], dout * factor)


@pytest.mark.parametrize("make", [lambda s: layers.GaussianNoise(0.5, seed=s),
                                  lambda s: layers.GaussianDropout(0.4, seed=s),
                                  lambda s: layers.SpatialDropout2D(0.5, seed=s)])
def test_noise_layers_seeded_and_global_seed(make, rng):
    assert_seeded(make, rng.normal(size=(4, 3, 3, 2)))


def assert_seeded(make, x):
    """``make(seed)`` gives the same training output for one seed, and ``make(None)``
    the same after the same ``set_random_seed``; the two differ."""
    a = make(7).forward(x, training=True)[0]
    np.testing.assert_array_equal(make(7).forward(x, training=True)[0], a)
    set_random_seed(11)
    b = make(None).forward(x, training=True)[0]
    set_random_seed(11)
    np.testing.assert_array_equal(make(None).forward(x, training=True)[0], b)
    assert not np.array_equal(a, b)


def _activity_model():
    set_random_seed(2)
    inputs = keras.Input((5,), dtype="float64")
    h = layers.Dense(4, activation="tanh", activity_regularizer=keras.regularizers.l1(0.3))(
        inputs)
    h = layers.ActivityRegularization(l1=0.1, l2=0.5)(h)
    model = keras.Model(inputs, layers.Dense(2)(h))
    model.compile(optimizer="sgd", loss="mse")
    return model


def test_activity_penalty_in_loss_by_hand(rng):
    model = _activity_model()
    x, y = rng.normal(size=(6, 5)), rng.normal(size=(6, 2))
    dense0, dense1 = model.layers[1], model.layers[3]
    h = np.tanh(x @ dense0.kernel + dense0.bias)
    pred = h @ dense1.kernel + dense1.bias
    want = np.mean((pred - y) ** 2) + (0.3 * np.abs(h).sum() + 0.1 * np.abs(h).sum()
                                      + 0.5 * (h ** 2).sum()) / 6
    value = model._loss_and_grads([x], y)[0]
    np.testing.assert_allclose(value, want, rtol=1e-12)


def test_activity_penalty_gradient_numerically(rng):
    model = _activity_model()
    x, y = rng.normal(size=(6, 5)), rng.normal(size=(6, 2))
    _, _, params, grads = model._loss_and_grads([x], y)
    assert len(params) == 4
    for w, g in zip(params, grads):
        f = lambda: np.array(model._loss_and_grads([x], y)[0])  # noqa: E731
        assert_close(g, numerical_gradient(f, w, np.array(1.0)), rtol=1e-7)


def test_regularization_configs_round_trip(tmp_path, rng):
    model = keras.Sequential([
        keras.Input((4, 4, 2)), layers.SpatialDropout2D(0.3, seed=1),
        layers.GaussianNoise(0.2), layers.GaussianDropout(0.1, seed=2), layers.Flatten(),
        layers.Dense(3, activity_regularizer="l2"), layers.ActivityRegularization(0.1, 0.2)])
    path = str(tmp_path / "m.keras")
    model.save(path)
    again = keras.models.load_model(path)
    assert again.layers[0].rate == 0.3 and again.layers[0].seed == 1
    assert again.layers[1].stddev == 0.2 and again.layers[2].rate == 0.1
    assert again.layers[4].activity_regularizer.l2 == 0.01
    assert (again.layers[5].l1, again.layers[5].l2) == (0.1, 0.2)
    x = rng.normal(size=(3, 4, 4, 2))
    np.testing.assert_array_equal(again.predict(x, verbose=0), model.predict(x, verbose=0))


@pytest.mark.parametrize("make, exc, message", [
    (lambda: layers.SpatialDropout2D(1.0), ValueError, "`rate` must be"),
    (lambda: layers.GaussianNoise(1.5), ValueError, "`stddev` must be"),
    (lambda: layers.GaussianNoise("a"), TypeError, "`stddev` must be"),
    (lambda: layers.GaussianDropout(1.0), ValueError, "`rate` must be"),
    (lambda: layers.GaussianDropout(0.1, seed=1.5), TypeError, "`seed` must be"),
    (lambda: layers.ActivityRegularization(l1=-1), ValueError, "`l1` must be"),
    (lambda: layers.Dense(2, activity_regularizer="l3"), TypeError, "`activity_regularizer` must"),
])
def test_regularization_bad_arguments(make, exc, message):
    with pytest.raises(exc, match=message):
        make()
