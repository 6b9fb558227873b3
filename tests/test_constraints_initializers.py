"""Weight constraints (by hand, applied after each optimizer step, saved) and the
initializers Keras accepts by name (values, seeds, bad input)."""

import numpy as np
import pytest

from fastconv import constraints, initializers, keras, layers
from fastconv.utils import set_random_seed


def test_constraints_by_hand():
    w = np.array([[3.0, 0.0, 0.3], [4.0, 0.0, 0.4]])  # column norms 5, 0, 0.5
    eps = 1e-7
    np.testing.assert_allclose(constraints.MaxNorm(2)(w)[:, 0], [3 * 2 / (5 + eps),
                                                                4 * 2 / (5 + eps)])
    np.testing.assert_allclose(constraints.MaxNorm(2)(w)[:, 2], w[:, 2] * 0.5 / (0.5 + eps))
    np.testing.assert_array_equal(constraints.MaxNorm(2)(w)[:, 1], [0, 0])
    np.testing.assert_allclose(constraints.UnitNorm()(w)[:, 0], [0.6, 0.8], rtol=1e-6)
    np.testing.assert_allclose(constraints.UnitNorm(axis=1)(w)[0], [3, 0, 0.3] / (
        np.sqrt(9.09) + eps))
    # rate 0.5: the norm moves half-way into [1, 2]: 5 -> 3.5, 0.5 -> 0.75.
    mm = constraints.MinMaxNorm(1.0, 2.0, rate=0.5)(w)
    np.testing.assert_allclose(np.linalg.norm(mm, axis=0), [3.5, 0, 0.75], rtol=1e-6)
    np.testing.assert_array_equal(constraints.NonNeg()(np.array([-1.0, 0.0, 2.0])), [0, 0, 2])
    k = np.ones((2, 2, 3, 4))  # a convolution kernel: norms over each filter
    np.testing.assert_allclose(np.sqrt((constraints.max_norm(1.0, axis=[0, 1, 2])(k) ** 2)
                                       .sum(axis=(0, 1, 2))), 1.0, rtol=1e-6)


def test_constraints_applied_after_each_update(rng):
    set_random_seed(0)
    model = keras.Sequential([
        keras.Input((3,), dtype="float64"),
        layers.Dense(4, kernel_constraint="non_neg",
                     bias_constraint=constraints.MaxNorm(0.05)),
        layers.Dense(1, kernel_constraint=constraints.UnitNorm())])
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.5), loss="mse")
    x, y = rng.normal(size=(8, 3)), rng.normal(size=(8, 1))
    _, _, params, grads = model._loss_and_grads([x], y)
    want = [p - 0.5 * g for p, g in zip(params, grads)]
    want[0] = np.maximum(want[0], 0)
    want[1] = want[1] * min(1.0, 0.05 / np.linalg.norm(want[1]))
    want[2] = want[2] / np.linalg.norm(want[2])
    model.train_on_batch(x, y)
    for got, w in zip(model.get_weights(), want):
        np.testing.assert_allclose(got, w, rtol=1e-6, atol=1e-12)
    model.fit(x, y, epochs=3, verbose=0)
    assert (model.layers[0].kernel >= 0).all()
    np.testing.assert_allclose(np.linalg.norm(model.layers[1].kernel), 1.0, rtol=1e-6)


def test_constraints_saved_and_on_normalization(tmp_path, rng):
    model = keras.Sequential([
        keras.Input((4, 4, 2)),
        layers.Conv2D(3, 2, kernel_constraint=constraints.MaxNorm(1.5, axis=[0, 1, 2])),
        layers.BatchNormalization(gamma_constraint="non_neg"),
        layers.LayerNormalization(beta_constraint=constraints.MinMaxNorm(0, 0.1)),
        layers.Flatten(), layers.Dense(2, bias_constraint="unit_norm")])
    path = str(tmp_path / "c.keras")
    model.save(path)
    again = keras.models.load_model(path)
    conv, bn, ln, _, dense = again.layers
    assert conv.kernel_constraint.get_config() == {"max_value": 1.5, "axis": [0, 1, 2]}
    assert isinstance(bn.gamma_constraint, constraints.NonNeg)
    assert ln.beta_constraint.max_value == 0.1
    assert isinstance(dense.bias_constraint, constraints.UnitNorm)
    assert set(conv.constraints) == {"kernel"} and set(bn.constraints) == {"gamma"}


@pytest.mark.parametrize("make, exc, message", [
    (lambda: constraints.get("max_nrm"), ValueError, "`constraint` must be"),
    (lambda: constraints.get(3), TypeError, "`constraint` must be"),
    (lambda: layers.Dense(2, kernel_constraint="nope"), ValueError, "`kernel_constraint`"),
    (lambda: constraints.MaxNorm(-1), ValueError, "`max_value` must be"),
    (lambda: constraints.MinMaxNorm(2, 1), ValueError, "`max_value` must be"),
    (lambda: constraints.UnitNorm(axis="rows"), TypeError, "`axis` must be"),
    (lambda: layers.BatchNormalization(beta_constraint=1.5), TypeError, "`beta_constraint`"),
])
def test_constraint_bad_arguments(make, exc, message):
    with pytest.raises(exc, match=message):
        make()


KERAS_NAMES = ["zeros", "ones", "constant", "random_normal", "random_uniform",
               "truncated_normal", "variance_scaling", "glorot_uniform", "glorot_normal",
               "he_normal", "he_uniform", "lecun_normal", "lecun_uniform", "orthogonal",
               "identity", "zero", "one", "normal", "uniform", "GlorotUniform", "HeNormal",
               "Orthogonal", "IdentityInitializer", "OrthogonalInitializer"]


@pytest.mark.parametrize("name", KERAS_NAMES)
def test_every_keras_initializer_name_builds_a_dense_kernel(name):
    layer = layers.Dense(6, kernel_initializer=name)
    layer.build_for((None, 6))
    assert layer.kernel.shape == (6, 6) and layer.kernel.dtype == np.float32
    again = layers.Dense.from_config(layer.get_config())
    assert type(again.kernel_initializer) is type(layer.kernel_initializer)


def test_initializer_values_and_seeds():
    i = initializers.Identity(gain=2.0)((2, 3))
    np.testing.assert_array_equal(i, [[2, 0, 0], [0, 2, 0]])
    q = initializers.Orthogonal(seed=3)((4, 3, 5), dtype=np.float64)
    flat = q.reshape(12, 5)
    np.testing.assert_allclose(flat.T @ flat, np.eye(5), atol=1e-12)
    wide = initializers.Orthogonal(gain=0.5, seed=3)((3, 7), dtype=np.float64)
    np.testing.assert_allclose(wide @ wide.T, 0.25 * np.eye(3), atol=1e-12)
    # A seeded initializer gives the same values on every call (Keras 3).
    for init in (initializers.Orthogonal(seed=5), initializers.HeNormal(seed=5),
                 initializers.get({"class_name": "VarianceScaling",
                                   "config": {"scale": 2.0, "mode": "fan_out",
                                              "distribution": "uniform", "seed": 9}})):
        np.testing.assert_array_equal(init((8, 4)), init((8, 4)))
    # he_normal: truncated normal with stddev sqrt(2 / fan_in) after the correction.
    he = initializers.get("he_normal")((400, 500))
    assert abs(he.std() - np.sqrt(2 / 400)) < 0.01 * np.sqrt(2 / 400)
    assert np.abs(he).max() <= 2 * np.sqrt(2 / 400) / 0.87962566103423978 + 1e-6
    lecun = initializers.get("lecun_uniform")((300, 10))
    assert np.abs(lecun).max() <= np.sqrt(3 / 300)


@pytest.mark.parametrize("make, message", [
    (lambda: initializers.Orthogonal()((5,)), "`shape` must be at least 2-D"),
    (lambda: initializers.Identity()((2, 2, 2)), "`shape` must be 2-D"),
    (lambda: initializers.get("he_norm"), "`initializer` must be one of"),
])
def test_initializer_bad_input(make, message):
    with pytest.raises(ValueError, match=message):
        make()


@pytest.mark.parametrize("make, shape", [
    (lambda: layers.Conv2D(2, 3, kernel_constraint="non_neg", bias_constraint="max_norm"),
     (None, 5, 5, 2)),
    (lambda: layers.Conv1D(2, 3, kernel_constraint="non_neg", bias_constraint="max_norm"),
     (None, 6, 2)),
    (lambda: layers.Conv2DTranspose(2, 3, kernel_constraint="non_neg",
                                    bias_constraint="max_norm"), (None, 4, 4, 2)),
    (lambda: layers.Maxout(2, kernel_constraint="non_neg", bias_constraint="max_norm"),
     (None, 3)),
])
def test_kernel_layers_register_and_save_their_constraints(make, shape):
    layer = make()
    layer.build_for(shape)
    assert set(layer.constraints) == {"kernel", "bias"}
    again = type(layer).from_config(layer.get_config())
    assert isinstance(again.kernel_constraint, constraints.NonNeg)
    assert isinstance(again.bias_constraint, constraints.MaxNorm)


@pytest.mark.parametrize("make, names", [
    (lambda: layers.DepthwiseConv2D(3, depthwise_constraint="non_neg",
                                    bias_constraint="max_norm"), {"kernel": "depthwise", "bias": "bias"}),
    (lambda: layers.SeparableConv2D(4, 3, depthwise_constraint="non_neg",
                                    pointwise_constraint="unit_norm",
                                    bias_constraint="max_norm"),
     {"depthwise_kernel": "depthwise", "pointwise_kernel": "pointwise", "bias": "bias"}),
])
def test_depthwise_layers_take_keras_constraints(make, names, rng):
    # Keras's depthwise_constraint / pointwise_constraint / bias_constraint: registered
    # on the weights, kept by get_config, applied after each update in fit.
    layer = make()
    layer.build_for((None, 6, 6, 2))
    assert set(layer.constraints) == set(names)
    again = type(layer).from_config(layer.get_config())
    for weight, option in names.items():
        assert type(getattr(again, f"{option}_constraint")) is type(layer.constraints[weight])
    model = keras.Sequential([keras.Input((6, 6, 2)), make(), layers.Flatten(), layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    model.fit(rng.normal(size=(8, 6, 6, 2)), rng.normal(size=(8, 1)), epochs=2, verbose=0)
    conv = model.layers[0]
    kernel = conv.kernel if hasattr(conv, "kernel") else conv.depthwise_kernel
    assert (kernel >= 0).all()
    if hasattr(conv, "pointwise_kernel"):
        # unit_norm's default axis is 0, of length 1 in a (1, 1, C, F) kernel (as in
        # Keras): every entry becomes +-1
        np.testing.assert_allclose(np.abs(conv.pointwise_kernel), 1, rtol=1e-5)
