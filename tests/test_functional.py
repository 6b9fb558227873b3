"""The functional API, subclassed layers and models, in Keras's own idiom."""

import threading
from functools import partial

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastconv
import fastconv.keras as keras
from fastconv.keras import layers, ops
from fastconv.testing import assert_close, numerical_gradient
from fastconv.utils import check_gradients, set_random_seed


def _grads_by_id(wg):
    return {id(w): g for w, g in wg}


def _input_gradient_check(model, x, rng, rtol=1e-6):
    """dx of the model (as a layer) against central differences, float64."""
    out, ctx = model.forward(x)
    dout = rng.normal(size=out.shape)
    dx, _ = model.backward(dout, ctx)
    assert_close(dx, numerical_gradient(lambda: model.forward(x)[0], x, dout), rtol=rtol)


# -- building graphs ---------------------------------------------------------------------
def test_residual_and_inception_blocks_train_and_report_their_structure(rng):
    keras.backend.clear_session()   # the automatic names below start again ('add')
    set_random_seed(1)
    inputs = keras.Input(shape=(12, 12, 3), name="image")
    x = layers.Conv2D(8, 3, padding="same", activation="relu")(inputs)
    residual = x
    x = layers.Conv2D(8, 3, padding="same", activation="relu")(x)
    x = layers.add([x, residual])
    a = layers.Conv2D(4, 1, activation="relu", name="branch_a")(x)
    b = layers.Conv2D(4, 3, padding="same", activation="relu", name="branch_b")(x)
    x = layers.concatenate([a, b])
    x = layers.GlobalAveragePooling2D()(x) if hasattr(layers, "GlobalAveragePooling2D") \
        else layers.Flatten()(layers.MaxPooling2D()(x))
    outputs = layers.Dense(3, activation="softmax")(x)
    model = keras.Model(inputs=inputs, outputs=outputs, name="mini_inception")
    assert model.inputs == [inputs] and model.outputs == [outputs]
    assert model.layers[0].name == "image" and model.get_layer("branch_a").output is a
    assert model.get_layer("branch_b").input is model.get_layer("add").output
    assert model.output_shape == (None, 3)
    lines = []
    model.summary(print_fn=lines.append)
    text = "\n".join(lines)
    assert "Connected to" in text and "branch_a[0][0]" in text
    x_data = rng.random((48, 12, 12, 3)).astype(np.float32)
    y_data = (x_data[..., 0].mean(axis=(1, 2)) > 0.5).astype(int) + (
        x_data[..., 1].mean(axis=(1, 2)) > 0.5)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    history = model.fit(x_data, y_data, epochs=4, batch_size=16, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert model.predict(x_data[:5]).shape == (5, 3)


def test_positional_list_and_dict_inputs_and_several_outputs(rng):
    a = keras.Input((4,), name="a")
    b = keras.Input((3,), name="b")
    merged = layers.concatenate([layers.Dense(5)(a), layers.Dense(5)(b)])
    out1 = layers.Dense(2, name="out1")(merged)
    out2 = layers.Dense(1, name="out2")(merged)
    model = keras.Model([a, b], [out1, out2])
    xa, xb = rng.random((6, 4)), rng.random((6, 3))
    p1, p2 = model.predict([xa, xb])
    assert p1.shape == (6, 2) and p2.shape == (6, 1)
    q1, q2 = model.predict({"a": xa, "b": xb})
    np.testing.assert_array_equal(p1, q1)
    single = keras.Model(inputs={"a": a, "b": b}, outputs=out1)
    np.testing.assert_array_equal(single.predict({"b": xb, "a": xa}), p1)
    with pytest.raises(ValueError, match="input names"):
        single.predict({"a": xa})


def test_graph_errors_name_what_is_wrong():
    a = keras.Input((4,))
    b = keras.Input((4,))
    out = layers.Dense(2)(a)
    with pytest.raises(ValueError, match="Graph disconnected"):
        keras.Model(b, out)
    with pytest.raises(ValueError, match="does not reach any of the model's outputs"):
        keras.Model([a, b], out)
    dense = layers.Dense(3, name="d4")
    dense(keras.Input((4,)))
    with pytest.raises(ValueError, match=r"Layer 'd4' \(Dense\) was built for input of shape "
                                         r"\(None, 4\) and cannot be called on input of "
                                         r"shape \(None, 5\)"):
        dense(keras.Input((5,)))
    with pytest.raises(ValueError, match=r"Subtract\) must be called on exactly 2 inputs"):
        layers.subtract([a, a, a])
    with pytest.raises(ValueError, match=r"same shape.*\(None, 4\), \(None, 3\)"):
        layers.add([a, keras.Input((3,))])
    with pytest.raises(ValueError, match="shapes agree except along axis"):
        layers.concatenate([keras.Input((2, 3)), keras.Input((4, 3))])
    with pytest.raises(TypeError, match="symbolic tensors"):
        keras.Model(a, np.zeros(3))


def test_a_shared_layer_sums_its_gradients_and_a_tensor_read_twice_too(rng):
    inputs = keras.Input((5,), dtype="float64")
    shared = layers.Dense(5, activation="tanh", name="shared")
    h = shared(shared(inputs))                       # one layer called at two points
    out = layers.add([h, layers.Dense(5)(h)])        # h read by two layers (fan-out)
    model = keras.Model(inputs, out)
    assert len(shared._inbound_nodes) == 2 and len(model.weights) == 4
    x = rng.normal(size=(3, 5))
    _input_gradient_check(model, x, rng)
    # The shared kernel's gradient is the sum over its two calls: compare with a copy of
    # the model in which the two calls are two layers holding the same values.
    first, second = layers.Dense(5, activation="tanh"), layers.Dense(5, activation="tanh")
    inp2 = keras.Input((5,), dtype="float64")
    h2 = second(first(inp2))
    other = layers.Dense(5)
    model2 = keras.Model(inp2, layers.add([h2, other(h2)]))
    first.set_weights(shared.get_weights())
    second.set_weights(shared.get_weights())
    other.set_weights(model.layers[-2].get_weights())
    dout = rng.normal(size=(3, 5))
    _, ctx = model.forward(x)
    _, wg = model.backward(dout, ctx)
    _, ctx2 = model2.forward(x)
    _, wg2 = model2.backward(dout, ctx2)
    g, g2 = _grads_by_id(wg), _grads_by_id(wg2)
    assert_close(g[id(shared.kernel)], g2[id(first.kernel)] + g2[id(second.kernel)])
    assert_close(g[id(shared.bias)], g2[id(first.bias)] + g2[id(second.bias)])


@pytest.mark.parametrize("merge, fn", [
    (layers.Add, lambda a, b, c: a + b + c),
    (layers.Multiply, lambda a, b, c: a * b * c),
    (layers.Average, lambda a, b, c: (a + b + c) / 3),
    (layers.Maximum, lambda a, b, c: np.maximum(np.maximum(a, b), c)),
    (layers.Minimum, lambda a, b, c: np.minimum(np.minimum(a, b), c)),
    (partial(layers.Concatenate, axis=-1), lambda a, b, c: np.concatenate([a, b, c], -1)),
    (partial(layers.Concatenate, axis=1), lambda a, b, c: np.concatenate([a, b, c], 1)),
])
def test_merge_layers_against_numpy_and_central_differences(merge, fn, rng):
    shape = (2, 3, 4)
    ins = [keras.Input(shape[1:], dtype="float64") for _ in range(3)]
    model = keras.Model(ins, merge()(ins))
    xs = [rng.normal(size=shape) for _ in range(3)]
    out, ctx = model.forward(xs)
    np.testing.assert_allclose(out, fn(*xs), rtol=1e-12)
    dout = rng.normal(size=out.shape)
    dxs, _ = model.backward(dout, ctx)
    for i, x in enumerate(xs):
        assert_close(dxs[i], numerical_gradient(lambda: model.forward(xs)[0], x, dout),
                     rtol=1e-6)


def test_subtract_and_broadcasting_merge(rng):
    a, b = keras.Input((3, 4), dtype="float64"), keras.Input((1, 4), dtype="float64")
    model = keras.Model([a, b], [layers.subtract([a, b]), layers.add([a, b])])
    xa, xb = rng.normal(size=(2, 3, 4)), rng.normal(size=(2, 1, 4))
    (d, s), ctx = model.forward([xa, xb])
    np.testing.assert_allclose(d, xa - xb)
    np.testing.assert_allclose(s, xa + xb)
    _, ctx = model.forward([xa, xb])
    (ga, gb), _ = model.backward([np.ones_like(d), np.ones_like(s)], ctx)
    np.testing.assert_allclose(ga, 2 * np.ones_like(xa))
    np.testing.assert_allclose(gb, np.zeros_like(xb))  # +1 and -1 summed over the rows


# -- keras.ops and arithmetic on tensors ------------------------------------------------------
OPS = [
    (lambda t, c: ops.add(t, c), lambda x, c: x + c),
    (lambda t, c: ops.subtract(c, t), lambda x, c: c - x),
    (lambda t, c: ops.multiply(t, c), lambda x, c: x * c),
    (lambda t, c: ops.divide(t, c + 3.0), lambda x, c: x / (c + 3.0)),
    (lambda t, c: ops.negative(t), lambda x, c: -x),
    (lambda t, c: ops.relu(t), lambda x, c: np.maximum(x, 0)),
    (lambda t, c: ops.sigmoid(t), lambda x, c: 1 / (1 + np.exp(-x))),
    (lambda t, c: ops.tanh(t), lambda x, c: np.tanh(x)),
    (lambda t, c: ops.softmax(t), lambda x, c: np.exp(x) / np.exp(x).sum(-1, keepdims=True)),
    (lambda t, c: ops.exp(t), lambda x, c: np.exp(x)),
    (lambda t, c: ops.log(ops.square(t) + 1.0), lambda x, c: np.log(x * x + 1)),
    (lambda t, c: ops.sqrt(ops.square(t) + 1.0), lambda x, c: np.sqrt(x * x + 1)),
    (lambda t, c: ops.abs(t), lambda x, c: np.abs(x)),
    (lambda t, c: ops.clip(t, -0.5, 0.5), lambda x, c: np.clip(x, -0.5, 0.5)),
    (lambda t, c: ops.maximum(t, c), lambda x, c: np.maximum(x, c)),
    (lambda t, c: ops.minimum(t, c), lambda x, c: np.minimum(x, c)),
    (lambda t, c: ops.concatenate([t, t * 2.0], axis=-1),
     lambda x, c: np.concatenate([x, 2 * x], -1)),
    (lambda t, c: ops.reshape(t, (-1, 12)), lambda x, c: x.reshape(-1, 12)),
    (lambda t, c: ops.transpose(t, (0, 2, 1)), lambda x, c: x.transpose(0, 2, 1)),
    (lambda t, c: ops.mean(t, axis=1), lambda x, c: x.mean(axis=1)),
    (lambda t, c: ops.sum(t, axis=(1, 2), keepdims=True), lambda x, c: x.sum((1, 2), None,
                                                                             None, True)),
    (lambda t, c: ops.max(t, axis=-1), lambda x, c: x.max(axis=-1)),
    (lambda t, c: ops.matmul(t, c.reshape(4, 3)[:, :2] if c.ndim == 2 else c),
     lambda x, c: x @ (c.reshape(4, 3)[:, :2] if c.ndim == 2 else c)),
    (lambda t, c: (t * 2.0 - c) / 4.0 + (-t), lambda x, c: (x * 2 - c) / 4 - x),
]


@pytest.mark.parametrize("i", range(len(OPS)))
def test_ops_against_numpy_and_central_differences(i, rng):
    symbolic, reference = OPS[i]
    c = rng.normal(size=(3, 4))
    inputs = keras.Input((3, 4), dtype="float64")
    model = keras.Model(inputs, symbolic(inputs, c))
    x = rng.normal(size=(2, 3, 4))
    x += np.sign(x) * 0.05  # away from the kinks of relu, abs, clip, max
    out, _ = model.forward(x)
    np.testing.assert_allclose(out, reference(x, c), rtol=1e-12, atol=1e-12)
    # The same function on arrays: it computes.
    np.testing.assert_allclose(symbolic(x, c), reference(x, c), rtol=1e-12, atol=1e-12)
    _input_gradient_check(model, x, rng)


def test_numpy_functions_on_symbolic_tensors_are_errors_not_silent_zeros():
    t = keras.Input((3,))
    with pytest.raises(TypeError, match="np.exp|NumPy's exp.*fastconv.keras.ops"):
        np.exp(t)
    with pytest.raises(TypeError, match="np.asarray|NumPy conversion"):
        np.asarray(t)
    with pytest.raises(TypeError, match="no truth value"):
        if t:
            pass

    class UsesNumPy(keras.layers.Layer):
        def call(self, inputs):
            return np.tanh(inputs)

    with pytest.raises(TypeError, match="fastconv.keras.ops"):
        UsesNumPy()(t)


# -- subclassing ------------------------------------------------------------------------------
DefaultConv2D = partial(layers.Conv2D, kernel_size=3, strides=1, padding="same",
                        kernel_initializer="he_normal", use_bias=False)


class ResidualUnit(keras.layers.Layer):
    """A textbook ResNet unit, written as Keras users write it."""

    def __init__(self, filters, strides=1, activation="relu", **kwargs):
        super().__init__(**kwargs)
        self.activation = keras.activations.get(activation)
        self.main_layers = [
            DefaultConv2D(filters, strides=strides), layers.BatchNormalization(),
            self.activation, DefaultConv2D(filters), layers.BatchNormalization()]
        self.skip_layers = []
        if strides > 1:
            self.skip_layers = [DefaultConv2D(filters, kernel_size=1, strides=strides),
                                layers.BatchNormalization()]

    def call(self, inputs):
        Z = inputs
        for layer in self.main_layers:
            Z = layer(Z)
        skip_Z = inputs
        for layer in self.skip_layers:
            skip_Z = layer(skip_Z)
        return self.activation(Z + skip_Z)


def test_subclassed_residual_units_train_with_exact_gradients(rng):
    set_random_seed(3)
    model = keras.Sequential([
        keras.Input((8, 8, 2)), DefaultConv2D(4), ResidualUnit(4), ResidualUnit(6, strides=2),
        layers.Flatten(), layers.Dense(2, activation="softmax")])
    unit = model.layers[2]
    assert len(unit.weights) == 2 + 4 + 1 + 4 + 4 and unit.count_params() == sum(
        w.size for w in unit.weights)
    lines = []
    model.summary(print_fn=lines.append)
    assert any("residual_unit" in line and "(None, 4, 4, 6)" in line for line in lines)
    x = rng.random((6, 8, 8, 2))
    y = np.array([0, 1, 0, 1, 1, 0])
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    errors = check_gradients(model, x, y)
    assert set(errors) >= {unit.main_layers[0].name, unit.skip_layers[0].name}
    assert max(errors.values()) < 1e-6, errors
    before = [w.copy() for w in unit.trainable_weights]
    model.fit(x.astype(np.float32), y, epochs=1, batch_size=3, verbose=0)
    assert all(not np.array_equal(a, b) for a, b in zip(before, unit.trainable_weights))


@keras.saving.register_keras_serializable(package="tests")
class Linear(keras.layers.Layer):
    """keras.io's custom layer: weights from add_weight, arithmetic in call."""

    def __init__(self, units=4, **kwargs):
        super().__init__(**kwargs)
        self.units = units

    def build(self, input_shape):
        self.w = self.add_weight(shape=(input_shape[-1], self.units),
                                 initializer="random_normal", trainable=True, name="w")
        self.b = self.add_weight(shape=(self.units,), initializer="random_normal",
                                 trainable=True, name="b")

    def call(self, inputs):
        return ops.matmul(inputs, self.w) + self.b

    def get_config(self):
        return {**super().get_config(), "units": self.units}


@keras.saving.register_keras_serializable(package="tests")
class TwoHead(keras.Model):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.body = Linear(6)
        self.drop = layers.Dropout(0.5)
        self.head = layers.Dense(3, activation="softmax")

    def call(self, inputs, training=None):
        h = keras.activations.get("relu")(self.body(inputs))
        return self.head(self.drop(h, training=training))


def test_custom_layer_with_add_weight_and_subclassed_model(rng, tmp_path):
    inputs = keras.Input((5,), dtype="float64")
    model = keras.Model(inputs, layers.Activation("softmax")(Linear(3)(inputs)))
    x = rng.normal(size=(4, 5))
    _input_gradient_check(model, x, rng)
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    assert max(check_gradients(model, x, [0, 1, 2, 0]).values()) < 1e-6
    sub = TwoHead()
    sub.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    xs, ys = rng.random((32, 5)).astype(np.float32), rng.integers(0, 3, 32)
    sub.fit(xs, ys, epochs=2, verbose=0)
    assert [la.name for la in sub.layers] == [sub.body.name, sub.drop.name, sub.head.name]
    assert len(sub.trainable_weights) == 4
    # Dropout runs only in training: predict is deterministic.
    np.testing.assert_array_equal(sub.predict(xs), sub.predict(xs))
    path = str(tmp_path / "sub.zip")
    sub.save(path)
    loaded = keras.models.load_model(path)
    assert type(loaded) is TwoHead
    np.testing.assert_array_equal(loaded.predict(xs), sub.predict(xs))


def test_functional_models_save_and_load_with_custom_layers(rng, tmp_path):
    inputs = keras.Input((6, 6, 1))
    x = layers.Conv2D(4, 3, activation="relu")(inputs)
    y = layers.Conv2D(4, 3, activation="relu")(inputs)
    x = layers.maximum([x, y]) * 0.5 + layers.multiply([x, y])
    x = layers.Flatten()(x)
    x = Linear(5)(x)
    outputs = layers.Dense(2, activation="softmax")(x)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    data = rng.random((8, 6, 6, 1)).astype(np.float32)
    path = str(tmp_path / "functional.zip")
    model.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_array_equal(loaded.predict(data), model.predict(data))
    assert [la.name for la in loaded.layers] == [la.name for la in model.layers]
    assert loaded.optimizer is not None


def test_a_sequential_inside_a_functional_model_and_a_model_inside_a_model(rng):
    augmentation = keras.Sequential([layers.RandomFlip("horizontal", seed=1),
                                     layers.RandomRotation(0.1, seed=2)])
    inputs = keras.Input((8, 8, 1))
    x = augmentation(inputs)
    x = layers.Rescaling(1 / 255)(x)
    features = keras.Model(inputs, layers.Flatten()(layers.Conv2D(3, 3)(x)), name="features")
    outer_in = keras.Input((8, 8, 1))
    outer = keras.Model(outer_in, layers.Dense(2, activation="softmax")(features(outer_in)))
    assert [type(la).__name__ for la in outer.layers] == ["InputLayer", "Model", "Dense"]
    assert len(outer.weights) == 4
    data = (rng.random((6, 8, 8, 1)) * 255).astype(np.float32)
    # Augmentation is the identity in inference...
    np.testing.assert_allclose(features.predict(data), features.predict(data[:, :, :]))
    outer.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    before = features.get_weights()
    outer.fit(data, np.array([0, 1] * 3), epochs=1, verbose=0)
    assert not all(np.array_equal(a, b) for a, b in zip(before, features.get_weights()))


def test_feature_map_model_of_a_sequential(rng):
    model = keras.Sequential([keras.Input((10, 10, 1)), layers.Conv2D(4, 3, activation="relu"),
                              layers.MaxPooling2D(), layers.Conv2D(2, 3), layers.Flatten(),
                              layers.Dense(2)])
    extractor = keras.Model(inputs=model.inputs, outputs=[la.output for la in model.layers[:4]])
    x = rng.random((2, 10, 10, 1)).astype(np.float32)
    maps = extractor.predict(x)
    h, want = x, []
    for la in model.layers[:4]:
        h = la(h)
        want.append(h)
    for a, b in zip(maps, want):
        np.testing.assert_array_equal(a, b)


def test_fused_block_found_in_graphs_only_where_nothing_else_reads_the_conv(rng):
    inputs = keras.Input((9, 9, 1))
    c = layers.Conv2D(4, 3, activation="relu")(inputs)
    p = layers.MaxPooling2D()(c)
    model = keras.Model(inputs, layers.Flatten()(p))
    assert type(model._steps()[0]).__name__ == "_ConvReLUMaxPool"
    both = keras.Model(inputs, [layers.Flatten()(p), layers.Flatten()(c)])
    assert [type(s).__name__ for s in both._steps()][:2] == ["Conv2D", "MaxPooling2D"]
    x = rng.random((3, 9, 9, 1)).astype(np.float32)
    np.testing.assert_array_equal(both.predict(x)[0], model.predict(x))


def test_two_threads_predicting_on_one_model_get_the_lone_bits(rng):
    set_random_seed(7)
    inputs = keras.Input((14, 14, 1))
    x = layers.Conv2D(8, 3, activation="relu")(inputs)
    x = layers.MaxPooling2D()(x)
    x = layers.Dropout(0.5)(x)
    x = layers.add([layers.Conv2D(8, 3, padding="same")(x), x])
    outputs = layers.Dense(3, activation="softmax")(layers.Flatten()(x))
    model = keras.Model(inputs, outputs)
    data = [rng.random((40, 14, 14, 1)).astype(np.float32) for _ in range(2)]
    alone = [model.predict(d, batch_size=8) for d in data]
    results = [None, None]
    barrier = threading.Barrier(2)

    def run(i):
        barrier.wait()
        results[i] = [model.predict(data[i], batch_size=8) for _ in range(5)]

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in range(2):
        for r in results[i]:
            np.testing.assert_array_equal(r, alone[i])


def test_keras_namespace_has_the_lecture_names_and_says_what_it_lacks():
    from fastconv.keras.layers import Conv2D, Dense, Flatten  # noqa: F401
    from fastconv.keras.models import Sequential  # noqa: F401

    keras.backend.set_image_data_format("channels_last")
    assert keras.backend.image_data_format() == "channels_last"
    assert keras.losses.SparseCategoricalCrossentropy is fastconv.losses.\
        SparseCategoricalCrossentropy
    assert keras.layers.MaxPool2D is keras.layers.MaxPooling2D
    with pytest.raises(AttributeError, match="fastconv does not implement keras.layers.LSTM"):
        _ = keras.layers.LSTM
    assert not hasattr(keras.layers, "GRU")
    with pytest.raises(ImportError, match="fastconv does not implement keras.layers.GRU"):
        from fastconv.keras.layers import GRU  # noqa: F401


# -- random graphs ------------------------------------------------------------------------
@st.composite
def graphs(draw):
    """A random functional model (one to three inputs; conv, pooling, dense, merges,
    activations, a shared layer, a subclassed block) and float64 inputs."""
    n_in = draw(st.integers(1, 3))
    size = draw(st.integers(5, 8))
    channels = draw(st.integers(1, 3))
    inputs = [keras.Input((size, size, channels), dtype="float64") for _ in range(n_in)]
    seed = draw(st.integers(0, 2**16))
    set_random_seed(seed)
    width = draw(st.integers(2, 4))
    convs = []
    shared = layers.Conv2D(width, 3, padding="same", activation=draw(
        st.sampled_from(["relu", "tanh", None])))
    for t in inputs:
        convs.append(shared(t) if draw(st.booleans()) else layers.Conv2D(
            width, draw(st.sampled_from([1, 3])), padding="same")(t))
    x = convs[0] if len(convs) == 1 else draw(st.sampled_from(
        [layers.add, layers.average, layers.maximum, layers.concatenate]))(convs)
    if draw(st.booleans()):
        x = keras.activations.get(draw(st.sampled_from(["sigmoid", "tanh"])))(x) + x
    if draw(st.booleans()):
        x = ResidualUnit(x.shape[-1])(x)
    pool = draw(st.sampled_from([layers.MaxPooling2D, layers.AveragePooling2D, None]))
    if pool is not None:
        x = pool()(x)
    x = layers.Flatten()(x)
    x = layers.Dense(draw(st.integers(2, 5)), activation=draw(
        st.sampled_from(["relu", "tanh", "softmax", None])))(x)
    model = keras.Model(inputs if n_in > 1 else inputs[0], x)
    rng = np.random.default_rng(seed)
    batch = draw(st.integers(1, 3))
    data = [rng.normal(size=(batch, size, size, channels)) for _ in range(n_in)]
    for d in data:
        d += np.sign(d) * 0.05
    return model, (data if n_in > 1 else data[0])


@settings(max_examples=20, deadline=None)
@given(graphs())
def test_random_graphs_backends_agree_and_gradients_match(case):
    model, x = case
    rng = np.random.default_rng(0)
    runs = {}
    for backend in ("numpy", "cython"):
        with fastconv.use_backend(backend):
            out, ctx = model.forward(x)
            dout = np.linspace(-1, 1, out.size).reshape(out.shape)
            dx, wg = model.backward(dout, ctx)
            runs[backend] = out, dx, wg
    ref, fast = runs["numpy"], runs["cython"]
    assert_close(fast[0], ref[0], rtol=1e-9)
    # Gradients: 1e-9 relative, or 1e-12 absolute where a gradient is all rounding noise
    # (a ReLU after the layer closed for every sample: both backends then give values
    # of order 1e-16 whose relative difference means nothing).
    for a, b in zip(fast[1] if isinstance(fast[1], list) else [fast[1]],
                    ref[1] if isinstance(ref[1], list) else [ref[1]]):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
    g_ref = _grads_by_id(ref[2])
    assert len(fast[2]) == len(ref[2]) == len(model.trainable_weights)
    for w, g in fast[2]:
        np.testing.assert_allclose(g, g_ref[id(w)], rtol=1e-9, atol=1e-12)
    # Whole-model gradients against central differences (six entries of each weight, to
    # bound the cost), on a random projection of the output. Where the one-sided
    # differences disagree, a kink (a ReLU, max or max-pooling switching) lies within h
    # of the point and no difference measures the gradient: that entry is skipped, and
    # most entries must be checked.
    out, ctx = model.forward(x)
    dout = rng.normal(size=out.shape)
    _, wg = model.backward(dout, ctx)
    h = 1e-6
    base = np.sum(out * dout)
    checked = skipped = 0
    for w, g in wg:
        flat = w.reshape(-1)
        scale = max(1.0, np.abs(g).max())
        for i in rng.choice(flat.size, min(6, flat.size), replace=False):
            old = flat[i]
            flat[i] = old + h
            plus = np.sum(model.forward(x)[0] * dout)
            flat[i] = old - h
            minus = np.sum(model.forward(x)[0] * dout)
            flat[i] = old
            left, right = (base - minus) / h, (plus - base) / h
            if abs(right - left) > 1e-3 * scale:
                skipped += 1
                continue
            num = (plus - minus) / (2 * h)
            # A smaller kink within h leaves the central difference between the two
            # one-sided slopes (0.05863 against 0.05883 in one drawn graph) and the
            # gradient equal to one of them; away from kinks all three agree.
            got = g.reshape(-1)[i]
            err = min(abs(got - num), abs(got - left), abs(got - right))
            assert err <= 1e-5 * scale, (i, num, left, right)
            checked += 1
    assert checked >= 3 * skipped, (checked, skipped)


def test_keras3_weights_give_keras3_predictions_and_one_sgd_step(monkeypatch):
    """The reference file holds Keras 3.15.1's (JAX backend) initial weights, inputs,
    predictions and weights after one SGD step for four architectures (a residual and
    inception graph with BatchNormalization, a two-input graph with a shared layer and
    subtract, a Sequential of subclassed ResNet units, global average and max pooling);
    tools/keras_parity.py made it with Keras and loads the same weights into the same
    code run on fastconv.keras."""
    import importlib.util
    import os

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    spec = importlib.util.spec_from_file_location(
        "keras_parity", os.path.join(root, "tools", "keras_parity.py"))
    parity = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(parity)
    results = parity.compare(os.path.join(root, "tests", "data", "keras3_parity.npz"))
    assert set(results) == {"residual_inception", "two_inputs", "subclassed_resnet",
                            "global_pooling", "decoder", "separable", "sequence"}
    for name, (err_pred, loss, keras_loss, err_step, _) in results.items():
        assert err_pred < 1e-6, name
        assert abs(loss - keras_loss) < 1e-5 * max(1.0, keras_loss), name
        assert err_step < 1e-5, name


def test_freezing_a_base_model_and_a_lambda_layer(rng):
    set_random_seed(4)
    base_in = keras.Input((6, 6, 1))
    base = keras.Model(base_in, layers.BatchNormalization()(layers.Conv2D(3, 3)(base_in)))
    base.trainable = False  # Keras: every sublayer frozen, BatchNormalization in inference
    assert all(not la.trainable for la in base.layers[1:])
    inputs = keras.Input((6, 6, 1))
    x = layers.Lambda(lambda t: t * 2.0 - 1.0)(inputs)
    x = base(x, training=False)
    outputs = layers.Dense(2, activation="softmax")(layers.Flatten()(x))
    model = keras.Model(inputs, outputs)
    assert len(model.trainable_weights) == 2 and len(model.non_trainable_weights) == 6
    frozen = base.get_weights()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    data = rng.random((8, 6, 6, 1)).astype(np.float32)
    model.fit(data, np.arange(8) % 2, epochs=2, verbose=0)
    for a, b in zip(frozen, base.get_weights()):
        np.testing.assert_array_equal(a, b)  # moving statistics included
    np.testing.assert_allclose(layers.Lambda(lambda t: t * 2.0 - 1.0)(data), data * 2 - 1)
    assert keras.ops.convert_to_numpy(model(data)).shape == (8, 2)
    with pytest.raises(ValueError, match="Lambda.*does not save"):
        model.get_config()


def test_model_input_and_output_for_feature_extraction():
    model = keras.Sequential([keras.Input((10, 10, 1)), layers.Conv2D(3, 3, name="conv"),
                              layers.Flatten(), layers.Dense(2)])
    extractor = keras.Model(inputs=model.input, outputs=model.get_layer("conv").output)
    assert extractor.output_shape == (None, 8, 8, 3) and model.output.shape == (None, 2)
    x = np.random.default_rng(0).random((2, 10, 10, 1)).astype(np.float32)
    np.testing.assert_array_equal(extractor.predict(x), model.get_layer("conv")(x))
