"""DepthwiseConv2D and SeparableConv2D (and, below, the 1-D and transposed
convolutions): Keras's output sizes and weight shapes worked out by hand, gradients
against central differences, predictions against loop oracles, config and save/load."""

import numpy as np
import pytest

import fastconv.keras as keras
from fastconv import layers, models
from fastconv.testing import assert_close, numerical_gradient

from . import naive


def _check_layer(layer, x, rng, tol=1e-7):
    """dx and every weight gradient of a built float64 ``layer`` by central differences."""
    out, ctx = layer.forward(x)
    dout = rng.normal(size=out.shape)
    dx, grads = layer.backward(dout, ctx)

    def f():
        return layer.forward(x)[0]

    assert_close(dx, numerical_gradient(f, x, dout), rtol=tol)
    got = {id(w): g for w, g in grads}
    assert len(got) == len(layer.trainable_items())
    for _, w in layer.trainable_items():
        assert_close(got[id(w)], numerical_gradient(f, w, dout), rtol=tol)


def _built(layer, shape):
    layer.build_for((None,) + tuple(shape[1:]), np.float64)
    return layer


def _randomise(layer, rng):
    layer.set_weights([rng.normal(size=w.shape) for w in layer.get_weights()])
    return layer


# Output shape and weight shapes, from Keras's rules worked out by hand:
# 'valid': (n - d*(k-1) - 1) // s + 1; 'same': ceil(n / s). Depthwise kernel
# (kh, kw, C, M), bias (C*M,); separable (kh, kw, C, M), (1, 1, C*M, filters), (filters,).
SHAPES = [
    (lambda: layers.DepthwiseConv2D(3), (None, 10, 8, 3),
     (None, 8, 6, 3), [(3, 3, 3, 1), (3,)]),
    (lambda: layers.DepthwiseConv2D((3, 2), strides=2, depth_multiplier=4, padding="same"),
     (None, 9, 8, 2), (None, 5, 4, 8), [(3, 2, 2, 4), (8,)]),
    # dilated 3x3 at rate 2: effective 5x5; (11 - 5) // 3 + 1 = 3, (7 - 5) // 3 + 1 = 1
    (lambda: layers.DepthwiseConv2D(3, strides=3, dilation_rate=2, use_bias=False),
     (None, 11, 7, 5), (None, 3, 1, 5), [(3, 3, 5, 1)]),
    (lambda: layers.DepthwiseConv2D(2, depth_multiplier=3, data_format="channels_first"),
     (None, 2, 6, 5), (None, 6, 5, 4), [(2, 2, 2, 3), (6,)]),
    (lambda: layers.SeparableConv2D(16, 3), (None, 10, 8, 3),
     (None, 8, 6, 16), [(3, 3, 3, 1), (1, 1, 3, 16), (16,)]),
    (lambda: layers.SeparableConv2D(7, 5, strides=2, padding="same", depth_multiplier=2),
     (None, 15, 16, 4), (None, 8, 8, 7), [(5, 5, 4, 2), (1, 1, 8, 7), (7,)]),
    (lambda: layers.SeparableConv2D(4, 3, use_bias=False, data_format="channels_first"),
     (None, 3, 5, 6), (None, 4, 3, 4), [(3, 3, 3, 1), (1, 1, 3, 4)]),
]


@pytest.mark.parametrize("make, in_shape, out_shape, weights", SHAPES)
def test_output_and_weight_shapes_by_hand(make, in_shape, out_shape, weights):
    layer = make()
    assert layer.build_for(in_shape) == out_shape
    assert [w.shape for w in layer.get_weights()] == weights


def test_weight_names_in_keras_order():
    d = _built(layers.DepthwiseConv2D(3), (1, 5, 5, 2))
    s = _built(layers.SeparableConv2D(4, 3), (1, 5, 5, 2))
    assert [n for n, _ in d.trainable_items()] == ["kernel", "bias"]
    assert [n for n, _ in s.trainable_items()] == ["depthwise_kernel", "pointwise_kernel",
                                                    "bias"]


GRAD_CASES = [
    (lambda: layers.DepthwiseConv2D(3, activation="tanh"), (2, 6, 5, 2)),
    (lambda: layers.DepthwiseConv2D((2, 3), strides=2, padding="same", depth_multiplier=2),
     (2, 7, 6, 3)),
    (lambda: layers.DepthwiseConv2D(2, dilation_rate=2, use_bias=False,
                                    data_format="channels_first"), (1, 2, 6, 5)),
    (lambda: layers.SeparableConv2D(3, 3, activation="relu"), (2, 6, 5, 2)),
    (lambda: layers.SeparableConv2D(2, 2, strides=2, padding="same", depth_multiplier=2,
                                    activation="sigmoid"), (1, 5, 6, 3)),
    (lambda: layers.SeparableConv2D(2, 3, data_format="channels_first", use_bias=False),
     (2, 2, 5, 5)),
]


@pytest.mark.parametrize("make, shape", GRAD_CASES)
def test_gradients_numerically(make, shape, rng):
    layer = _randomise(_built(make(), shape), rng)
    _check_layer(layer, rng.normal(size=shape), rng)


def test_depthwise_layer_matches_loops(rng):
    layer = _randomise(_built(layers.DepthwiseConv2D(3, strides=2, padding="same",
                                                     depth_multiplier=2), (2, 7, 6, 3)), rng)
    x = rng.normal(size=(2, 7, 6, 3))
    k, b = layer.get_weights()
    # 'same', k=3, s=2: rows ceil(7/2) = 4, padding (4-1)*2 + 3 - 7 = 2: 1 top, 1 bottom;
    # columns ceil(6/2) = 3, padding (3-1)*2 + 3 - 6 = 1: 0 left, 1 right.
    want = naive.depthwise_conv2d(x, k, b, (2, 2), (1, 1, 0, 1), (1, 1))
    assert_close(layer(x), want, np.float64)


def test_separable_is_depthwise_then_pointwise(rng):
    layer = _randomise(_built(layers.SeparableConv2D(5, 2, depth_multiplier=2,
                                                     activation="relu"), (2, 5, 6, 3)), rng)
    x = rng.normal(size=(2, 5, 6, 3))
    dk, pk, b = layer.get_weights()
    mid = naive.depthwise_conv2d(x, dk, None, (1, 1), (0, 0, 0, 0), (1, 1))
    want = np.maximum(naive.conv2d(mid, pk, b, (1, 1), (0, 0, 0, 0), (1, 1)), 0)
    assert_close(layer(x), want, np.float64)


@pytest.mark.parametrize("make", [s[0] for s in SHAPES])
def test_config_round_trip(make):
    layer = make()
    config = layer.get_config()
    again = type(layer).from_config(config)
    assert again.get_config() == config


def test_config_uses_keras_names():
    config = layers.SeparableConv2D(4, 3, depth_multiplier=2).get_config()
    for key in ("filters", "kernel_size", "strides", "padding", "data_format",
                "dilation_rate", "depth_multiplier", "activation", "use_bias",
                "depthwise_initializer", "pointwise_initializer", "bias_initializer",
                "depthwise_regularizer", "pointwise_regularizer", "bias_regularizer"):
        assert key in config, key
    assert config["kernel_size"] == [3, 3] and config["depth_multiplier"] == 2


def _mobile_block(x_shape):
    inputs = keras.Input(x_shape)
    x = keras.layers.DepthwiseConv2D(3, padding="same", activation="relu")(inputs)
    x = keras.layers.SeparableConv2D(6, 3, strides=2, padding="same", depth_multiplier=2)(x)
    y = keras.layers.Conv2D(6, 1, strides=2, padding="same")(inputs)
    x = keras.layers.Add(name="shortcut_sum")([x, y])
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(x))


def test_train_functional_and_sequential(rng):
    x = rng.normal(size=(32, 8, 8, 2)).astype(np.float32)
    y = rng.integers(0, 3, 32)
    for model in (_mobile_block((8, 8, 2)), keras.Sequential([
            keras.Input((8, 8, 2)), keras.layers.DepthwiseConv2D(3, depth_multiplier=2),
            keras.layers.SeparableConv2D(4, 3, padding="same", activation="relu"),
            keras.layers.Flatten(), keras.layers.Dense(3, activation="softmax")])):
        model.compile(keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy")
        loss = model.fit(x, y, epochs=8, batch_size=32, verbose=0).history["loss"]
        assert loss[-1] < loss[0]


def test_save_load_round_trip(tmp_path, rng):
    model = _mobile_block((8, 8, 2))
    model.compile("adam", "sparse_categorical_crossentropy")
    x = rng.normal(size=(4, 8, 8, 2)).astype(np.float32)
    path = tmp_path / "m.fcm"
    model.save(path)
    loaded = models.load_model(path)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    assert loaded.get_config() == model.get_config()


@pytest.mark.parametrize("make, name, exc", [
    (lambda: layers.DepthwiseConv2D(3, depth_multiplier=0), "depth_multiplier", ValueError),
    (lambda: layers.DepthwiseConv2D(0), "kernel_size", ValueError),
    (lambda: layers.DepthwiseConv2D(3, padding="full"), "padding", ValueError),
    (lambda: layers.DepthwiseConv2D(3, strides=1.5), "strides", TypeError),
    (lambda: layers.SeparableConv2D(0, 3), "filters", ValueError),
    (lambda: layers.SeparableConv2D(2, 3, dilation_rate=0), "dilation_rate", ValueError),
    (lambda: layers.SeparableConv2D(2, 3, depth_multiplier=-1), "depth_multiplier",
     ValueError),
    (lambda: layers.SeparableConv2D(2, 3, data_format="nhwc"), "data_format", ValueError),
])
def test_bad_arguments(make, name, exc):
    with pytest.raises(exc, match=name):
        make()


def test_input_smaller_than_kernel():
    with pytest.raises(ValueError, match="smaller than the 5x5 kernel"):
        layers.DepthwiseConv2D(5).build_for((None, 4, 8, 2))


# ----------------------------------------------------------------------- 1-D layers

SHAPES_1D = [
    # 'valid': (20 - 3) // 1 + 1 = 18; kernel (3, C_in, filters)
    (lambda: layers.Conv1D(8, 3), (None, 20, 4), (None, 18, 8), [(3, 4, 8), (8,)]),
    # 'same', stride 3: ceil(20 / 3) = 7
    (lambda: layers.Conv1D(2, 5, strides=3, padding="same"), (None, 20, 1), (None, 7, 2),
     [(5, 1, 2), (2,)]),
    # 'causal' keeps the length at stride 1: 20; dilation 4 on k=3 is a window of 9
    (lambda: layers.Conv1D(3, 3, padding="causal", dilation_rate=4, use_bias=False),
     (None, 20, 2), (None, 20, 3), [(3, 2, 3)]),
    # 'causal', stride 2: ceil(9 / 2) = 5
    (lambda: layers.Conv1D(3, (2,), strides=(2,), padding="causal"), (None, 9, 2),
     (None, 5, 3), [(2, 2, 3), (3,)]),
    # channels_first (N, C, steps): (11 - 4) // 2 + 1 = 4
    (lambda: layers.Conv1D(6, 4, strides=2, data_format="channels_first"), (None, 3, 11),
     (None, 6, 4), [(4, 3, 6), (6,)]),
    (lambda: layers.MaxPooling1D(), (None, 9, 3), (None, 4, 3), []),
    (lambda: layers.MaxPool1D(3, strides=2, padding="same"), (None, 9, 3), (None, 5, 3), []),
    (lambda: layers.AveragePooling1D(4, strides=1), (None, 9, 3), (None, 6, 3), []),
    (lambda: layers.AvgPool1D(2, data_format="channels_first"), (None, 3, 9), (None, 3, 4),
     []),
    (lambda: layers.GlobalAveragePooling1D(), (None, 9, 3), (None, 3), []),
    (lambda: layers.GlobalMaxPooling1D(keepdims=True), (None, 9, 3), (None, 1, 3), []),
    (lambda: layers.GlobalAvgPool1D(data_format="channels_first", keepdims=True),
     (None, 3, 9), (None, 3, 1), []),
    (lambda: layers.GlobalMaxPool1D(data_format="channels_first"), (None, 3, 9), (None, 3),
     []),
]


@pytest.mark.parametrize("make, in_shape, out_shape, weights", SHAPES_1D)
def test_1d_output_and_weight_shapes_by_hand(make, in_shape, out_shape, weights):
    layer = make()
    assert layer.build_for(in_shape) == out_shape
    assert [w.shape for w in layer.get_weights()] == weights
    assert type(layer).from_config(layer.get_config()).get_config() == layer.get_config()


GRAD_CASES_1D = [
    (lambda: layers.Conv1D(3, 3, activation="tanh"), (2, 9, 2)),
    (lambda: layers.Conv1D(2, 2, strides=2, padding="same", activation="relu"), (2, 7, 3)),
    (lambda: layers.Conv1D(2, 3, padding="causal", dilation_rate=2), (1, 8, 2)),
    (lambda: layers.Conv1D(2, 3, data_format="channels_first", use_bias=False), (2, 2, 7)),
    (lambda: layers.MaxPooling1D(3, strides=2, padding="same"), (2, 8, 2)),
    (lambda: layers.AveragePooling1D(2, padding="same"), (2, 7, 3)),
    (lambda: layers.AveragePooling1D(data_format="channels_first"), (1, 2, 6)),
    (lambda: layers.GlobalAveragePooling1D(), (2, 5, 3)),
    (lambda: layers.GlobalMaxPooling1D(data_format="channels_first"), (2, 3, 5)),
    (lambda: layers.GlobalMaxPooling1D(keepdims=True), (2, 5, 3)),
]


@pytest.mark.parametrize("make, shape", GRAD_CASES_1D)
def test_1d_gradients_numerically(make, shape, rng):
    layer = _built(make(), shape)
    if layer.get_weights():
        _randomise(layer, rng)
    _check_layer(layer, rng.normal(size=shape), rng)


@pytest.mark.parametrize("padding, stride, dilation, left, right", [
    ("valid", 1, 1, 0, 0), ("valid", 2, 2, 0, 0),
    # 'same', k=3, stride 1 on 10 steps: 2 zeros, 1 left and 1 right
    ("same", 1, 1, 1, 1),
    # 'same', k=3, stride 2: ceil(10/2) = 5 outputs, (5-1)*2 + 3 - 10 = 1 zero, on the right
    ("same", 2, 1, 0, 1),
    # 'causal': dilation * (k - 1) zeros on the left only
    ("causal", 1, 2, 4, 0), ("causal", 3, 1, 2, 0),
])
def test_conv1d_matches_loops(padding, stride, dilation, left, right, rng):
    layer = _randomise(_built(layers.Conv1D(4, 3, strides=stride, padding=padding,
                                            dilation_rate=dilation), (2, 10, 3)), rng)
    x = rng.normal(size=(2, 10, 3))
    k, b = layer.get_weights()
    assert_close(layer(x), naive.conv1d(x, k, b, stride, left, right, dilation), np.float64)


def test_causal_output_does_not_see_the_future(rng):
    layer = _built(layers.Conv1D(2, 4, padding="causal", dilation_rate=2), (1, 12, 2))
    x = rng.normal(size=(1, 12, 2))
    y = rng.normal(size=(1, 12, 2))
    y[:, :7] = x[:, :7]  # the same up to step 6, different after
    out_x, out_y = layer(x), layer(y)
    np.testing.assert_array_equal(out_x[:, :7], out_y[:, :7])
    assert not np.allclose(out_x[:, 7:], out_y[:, 7:])


@pytest.mark.parametrize("make, op", [
    (lambda: layers.MaxPooling1D(3, strides=2, padding="same"), max),
    (lambda: layers.AveragePooling1D(2, strides=1), lambda v: sum(v) / len(v)),
])
def test_pool1d_matches_loops(make, op, rng):
    layer = _built(make(), (2, 9, 3))
    x = rng.normal(size=(2, 9, 3))
    p, s = layer.pool_size[0], layer.strides[0]
    pads = (0, 0, 0, 0) if layer.padding == "valid" else (0, 0, 1, 1)  # 'same', 3 at 2 on 9
    want = naive.pool2d(x[:, None], (1, p), (1, s), pads, op)[:, 0]
    assert_close(layer(x), want, np.float64)


def test_1d_train_sequential_and_functional(rng):
    x = rng.normal(size=(32, 16, 2)).astype(np.float32)
    y = rng.integers(0, 2, 32)
    inputs = keras.Input((16, 2))
    h = keras.layers.Conv1D(4, 3, padding="causal", activation="relu")(inputs)
    h = keras.layers.Concatenate(name="max_and_mean")([keras.layers.GlobalMaxPooling1D()(h),
                                    keras.layers.GlobalAveragePooling1D()(h)])
    functional = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(h))
    sequential = keras.Sequential([
        keras.Input((16, 2)), keras.layers.Conv1D(4, 3, activation="relu"),
        keras.layers.MaxPooling1D(), keras.layers.Convolution1D(4, 3, padding="same"),
        keras.layers.AveragePooling1D(), keras.layers.Flatten(),
        keras.layers.Dense(2, activation="softmax")])
    for model in (functional, sequential):
        model.compile(keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy")
        loss = model.fit(x, y, epochs=8, batch_size=32, verbose=0).history["loss"]
        assert loss[-1] < loss[0]


def test_1d_save_load_round_trip(tmp_path, rng):
    model = keras.Sequential([
        keras.Input((12, 3)), keras.layers.Conv1D(4, 3, padding="causal", dilation_rate=2),
        keras.layers.MaxPool1D(2), keras.layers.AvgPool1D(2, padding="same"),
        keras.layers.GlobalMaxPool1D(), keras.layers.Dense(2)])
    model.compile("adam", "mse")
    x = rng.normal(size=(3, 12, 3)).astype(np.float32)
    model.save(tmp_path / "m.fcm")
    loaded = models.load_model(tmp_path / "m.fcm")
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    assert loaded.get_config() == model.get_config()


@pytest.mark.parametrize("make, name, exc", [
    (lambda: layers.Conv1D(2, (3, 3)), "kernel_size", ValueError),
    (lambda: layers.Conv1D(2, 3, strides=0), "strides", ValueError),
    (lambda: layers.Conv1D(2, 3, padding="full"), "padding", ValueError),
    (lambda: layers.Conv1D(2, 3, dilation_rate=1.0), "dilation_rate", TypeError),
    (lambda: layers.Conv1D(2, 3, groups=0), "groups", ValueError),
    (lambda: layers.Conv1D(2, 3, groups=2), "groups", NotImplementedError),
    (lambda: layers.MaxPooling1D(padding="causal"), "padding", ValueError),
    (lambda: layers.AveragePooling1D(0), "pool_size", ValueError),
    (lambda: layers.MaxPooling1D(2, strides=(1, 1)), "strides", ValueError),
])
def test_1d_bad_arguments(make, name, exc):
    with pytest.raises(exc, match=name):
        make()


def test_1d_needs_sequences():
    with pytest.raises(ValueError, match="3"):
        layers.Conv1D(2, 3).build_for((None, 8, 8, 2))
    with pytest.raises(ValueError, match="fewer than the window"):
        layers.Conv1D(2, 5).build_for((None, 4, 2))


# ------------------------------------------------------------------ Conv2DTranspose

SHAPES_T = [
    # 'valid': (n-1)*s + k + op, op defaults to max(k, s) - k: rows (5-1)*2 + 3 = 11,
    # columns (4-1)*2 + 3 = 9; kernel (kh, kw, filters, C_in)
    (lambda: layers.Conv2DTranspose(3, 3, strides=2), (None, 5, 4, 2), (None, 11, 9, 3),
     [(3, 3, 3, 2), (3,)]),
    # 'same': n*s
    (lambda: layers.Conv2DTranspose(2, (3, 2), strides=2, padding="same"), (None, 5, 4, 3),
     (None, 10, 8, 2), [(3, 2, 2, 3), (2,)]),
    # k=1 < s=3: op defaults to 3 - 1 = 2, (5-1)*3 + 1 + 2 = 15
    (lambda: layers.Conv2DTranspose(1, 1, strides=3, use_bias=False), (None, 5, 4, 3),
     (None, 15, 12, 1), [(1, 1, 1, 3)]),
    # output_padding 1 on 'valid' k=3 s=3: (5-1)*3 + 3 + 1 = 16; (4-1)*2 + 3 + 0 = 9
    (lambda: layers.Conv2DTranspose(2, 3, strides=(3, 2), output_padding=(1, 0)),
     (None, 5, 4, 3), (None, 16, 9, 2), [(3, 3, 2, 3), (2,)]),
    # 'same' with output_padding: (n-1)*s + k%2 + op = 4*2 + 1 + 1 = 10, 3*2 + 1 + 1 = 8
    (lambda: layers.Conv2DTranspose(2, 3, strides=2, padding="same", output_padding=1),
     (None, 5, 4, 3), (None, 10, 8, 2), [(3, 3, 2, 3), (2,)]),
    # dilation 2 on k=3 (e = 5), 'valid', stride 1: n + 4
    (lambda: layers.Conv2DTranspose(2, 3, dilation_rate=2, data_format="channels_first"),
     (None, 3, 5, 4), (None, 2, 9, 8), [(3, 3, 2, 3), (2,)]),
]


@pytest.mark.parametrize("make, in_shape, out_shape, weights", SHAPES_T)
def test_transpose_output_and_weight_shapes_by_hand(make, in_shape, out_shape, weights):
    layer = make()
    assert layer.build_for(in_shape) == out_shape
    assert [w.shape for w in layer.get_weights()] == weights
    assert type(layer).from_config(layer.get_config()).get_config() == layer.get_config()
    x = np.zeros((2,) + in_shape[1:])
    assert layer(x).shape == (2,) + out_shape[1:]


@pytest.mark.parametrize("kw, crop", [
    # the output is the canvas from row/column e - 1 - z on, z being the zeros Keras
    # puts before the spread input
    (dict(strides=2), (0, 0)),                        # 'valid': z = e - 1
    # 'same': s + e - 2 = 3 zeros, z = min(2, e - 1) = 2; the output is 4*2 = 8 rows,
    # one fewer than the canvas's 9
    (dict(strides=2, padding="same"), (0, 0)),
    (dict(strides=(3, 1), output_padding=(2, 0)), (0, 0)),
    (dict(strides=1, padding="same", dilation_rate=2), (2, 2)),  # e = 5: 4 zeros, z = 2
    # non-overlapping 3x3 blocks (the matrix-product path)
    (dict(strides=3), (0, 0)),
    (dict(strides=(3, 3), output_padding=0), (0, 0)),
])
def test_transpose_matches_loops(kw, crop, rng):
    layer = _randomise(_built(layers.Conv2DTranspose(2, 3, **kw), (2, 4, 5, 3)), rng)
    x = rng.normal(size=(2, 4, 5, 3))
    k, b = layer.get_weights()
    out = layer(x)
    want = naive.conv2d_transpose(x, k, b, layer.strides, crop, out.shape[1:3],
                                  layer.dilation_rate)
    assert_close(out, want, np.float64)


GRAD_CASES_T = [
    # non-overlapping blocks (strides == kernel_size, 'valid'): the matrix-product path
    (lambda: layers.Conv2DTranspose(3, 2, strides=2, activation="relu"), (2, 3, 4, 2)),
    (lambda: layers.Conv2DTranspose(2, (2, 3), strides=(2, 3), activation="tanh",
                                    data_format="channels_first"), (2, 3, 3, 2)),
    (lambda: layers.Conv2DTranspose(2, 2, strides=2, use_bias=False), (1, 2, 3, 3)),
    (lambda: layers.Conv2DTranspose(2, 3, strides=2, activation="tanh"), (2, 3, 4, 2)),
    (lambda: layers.Conv2DTranspose(2, 2, strides=2, padding="same", activation="relu"),
     (1, 3, 3, 3)),
    (lambda: layers.Conv2DTranspose(3, 3, strides=(2, 3), output_padding=(1, 2)),
     (1, 3, 2, 2)),
    # kernel shorter than the stride (outputs no tap reaches) and 'same' with
    # output_padding: the strided backward's padding and cropping rules
    (lambda: layers.Conv2DTranspose(2, 2, strides=3, padding="same"), (1, 3, 2, 2)),
    (lambda: layers.Conv2DTranspose(2, (3, 2), strides=(2, 3), padding="same",
                                    output_padding=(1, 2)), (2, 3, 2, 2)),
    (lambda: layers.Conv2DTranspose(2, 3, dilation_rate=2, padding="same", use_bias=False,
                                    data_format="channels_first"), (2, 2, 4, 3)),
]


@pytest.mark.parametrize("make, shape", GRAD_CASES_T)
def test_transpose_gradients_numerically(make, shape, rng):
    layer = _randomise(_built(make(), shape), rng)
    _check_layer(layer, rng.normal(size=shape), rng)


def test_transpose_trains_in_an_autoencoder(rng, tmp_path):
    inputs = keras.Input((8, 8, 1))
    h = keras.layers.Conv2D(4, 3, strides=2, padding="same", activation="relu")(inputs)
    h = keras.layers.Conv2DTranspose(4, 3, strides=2, padding="same", activation="relu")(h)
    outputs = keras.layers.Conv2D(1, 1)(h)
    for model in (keras.Model(inputs, outputs), keras.Sequential([
            keras.Input((8, 8, 1)), keras.layers.Conv2D(2, 2, strides=2),
            keras.layers.Conv2DTranspose(1, 2, strides=2)])):
        model.compile(keras.optimizers.Adam(0.01), "mse")
        x = rng.normal(size=(16, 8, 8, 1)).astype(np.float32)
        loss = model.fit(x, x, epochs=10, batch_size=16, verbose=0).history["loss"]
        assert loss[-1] < loss[0]
        model.save(tmp_path / "ae.fcm")
        loaded = models.load_model(tmp_path / "ae.fcm")
        np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


@pytest.mark.parametrize("make, name, exc", [
    (lambda: layers.Conv2DTranspose(2, 3, strides=2, output_padding=2), "output_padding",
     ValueError),
    (lambda: layers.Conv2DTranspose(2, 3, output_padding=-1), "output_padding", ValueError),
    (lambda: layers.Conv2DTranspose(2, 3, strides=2, dilation_rate=2), "dilation_rate",
     ValueError),
    (lambda: layers.Conv2DTranspose(0, 3), "filters", ValueError),
    (lambda: layers.Conv2DTranspose(2, 3, padding="causal"), "padding", ValueError),
])
def test_transpose_bad_arguments(make, name, exc):
    with pytest.raises(exc, match=name):
        make()


def test_keras_parity_of_the_convolution_family():
    """Keras 3.15.1 (JAX) predictions and one SGD step, with Keras's initial weights,
    from tests/data/keras3_parity_conv.npz (written by tools/keras_parity.py, see its
    docstring), reproduced by the same model code on fastconv.keras."""
    import importlib.util
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    spec = importlib.util.spec_from_file_location("keras_parity",
                                                  root / "tools" / "keras_parity.py")
    parity = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(parity)
    path = root / "tests" / "data" / "keras3_parity_conv.npz"
    results = parity.compare(path)
    assert set(results) == {"mobilenet_blocks", "xception_blocks", "unet_up", "sequence_cnn"}
    ref = np.load(path)
    for name, (err_pred, loss, keras_loss, err_step, _) in results.items():
        assert err_pred <= 1e-5 * float(np.max(np.abs(ref[f"{name}/pred"]))), name
        assert abs(loss - keras_loss) < 1e-5 * max(1.0, keras_loss), name
        assert err_step < 1e-5, name


def _keras_zeros_before(k, s, padding, op):
    """Keras's zeros before the stride-spread input (dilation 1), as its rule reads:
    'valid': k - 1; 'same': min(ceil(T / 2), k - 1), T = s + k - 2 without
    output_padding, else k + k % 2 - 2 + op."""
    if padding == "valid":
        return k - 1
    total = s + k - 2 if op is None else k + k % 2 - 2 + op
    return min(-(-total // 2), k - 1)


@pytest.mark.parametrize("k", [1, 2, 3, 4])
@pytest.mark.parametrize("s", [2, 3])
@pytest.mark.parametrize("padding", ["valid", "same"])
@pytest.mark.parametrize("op", [None, 0, 1])
def test_transpose_phases_match_loops(k, s, padding, op, rng):
    """Strided, overlapping or not, against the scatter loops; gradients numerically.
    Rows: kernel k, stride s; columns: kernel 2, stride 1 (output_padding 0 there)."""
    layer = _randomise(_built(layers.Conv2DTranspose(
        2, (k, 2), strides=(s, 1), padding=padding,
        output_padding=None if op is None else (op, 0)), (1, 3, 4, 2)), rng)
    x = rng.normal(size=(1, 3, 4, 2))
    kernel, b = layer.get_weights()
    out = layer(x)
    crop = (k - 1 - _keras_zeros_before(k, s, padding, op),
            1 - _keras_zeros_before(2, 1, padding, None if op is None else 0))
    want = naive.conv2d_transpose(x, kernel, b, (s, 1), crop, out.shape[1:3], (1, 1))
    assert_close(out, want, np.float64)
    dout = rng.normal(size=out.shape)
    dx, grads = layer.backward(dout, layer.forward(x)[1])

    def f():
        return layer.forward(x)[0]

    assert_close(dx, numerical_gradient(f, x, dout), rtol=1e-7)
    assert_close(grads[0][1], numerical_gradient(f, layer.kernel, dout), rtol=1e-7)
