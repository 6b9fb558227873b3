"""The layers beyond Conv2D and MaxPooling2D: output shapes by Keras's rules (worked out
by hand here), loop oracles, gradients against central differences, configs, saving,
and bad arguments. Keras's own predictions for them are in the parity fixture
(tests/test_functional.py::test_keras3_parity)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastconv import keras, models
from fastconv.backends import cython as fast
from fastconv.backends import numpy as ref
from fastconv.keras import layers
from fastconv.testing import assert_close, numerical_gradient
from fastconv.utils import check_gradients, set_random_seed

from . import naive


@pytest.mark.parametrize("layer,in_shape,out_shape", [
    # Conv2DTranspose: 'valid' (n - 1) * s + max(k, s); 'same' n * s; with output_padding
    # p: (n - 1) * s + k - 2 * pad + p (pad = k // 2 for 'same')
    (lambda: layers.Conv2DTranspose(4, 3, strides=2), (5, 6, 3), (11, 13, 4)),
    (lambda: layers.Conv2DTranspose(4, 2, strides=3), (5, 6, 3), (15, 18, 4)),
    (lambda: layers.Conv2DTranspose(4, 3, strides=2, padding="same"), (5, 6, 3), (10, 12, 4)),
    (lambda: layers.Conv2DTranspose(4, 3, strides=2, output_padding=1), (5, 6, 3),
     (12, 14, 4)),
    (lambda: layers.Conv2DTranspose(4, 3, strides=2, padding="same", output_padding=0),
     (5, 6, 3), (9, 11, 4)),
    (lambda: layers.Conv2DTranspose(2, 3, dilation_rate=2), (4, 4, 1), (8, 8, 2)),
    (lambda: layers.DepthwiseConv2D(3, depth_multiplier=2), (7, 8, 3), (5, 6, 6)),
    (lambda: layers.DepthwiseConv2D(3, strides=2, padding="same"), (7, 8, 3), (4, 4, 3)),
    (lambda: layers.SeparableConv2D(5, 3, dilation_rate=2), (9, 9, 2), (5, 5, 5)),
    (lambda: layers.Conv1D(4, 3), (10, 2), (8, 4)),
    (lambda: layers.Conv1D(4, 3, padding="causal", dilation_rate=2), (10, 2), (10, 4)),
    (lambda: layers.Conv1D(4, 3, strides=2, padding="same"), (9, 2), (5, 4)),
    (lambda: layers.MaxPooling1D(3, strides=2), (9, 2), (4, 2)),
    (lambda: layers.AveragePooling1D(padding="same"), (9, 2), (5, 2)),
    (lambda: layers.GlobalMaxPooling1D(keepdims=True), (9, 2), (1, 2)),
    (lambda: layers.ZeroPadding2D(((1, 2), (3, 0))), (4, 5, 2), (7, 8, 2)),
    (lambda: layers.Cropping2D(1), (4, 5, 2), (2, 3, 2)),
    (lambda: layers.UpSampling2D((2, 3)), (4, 5, 2), (8, 15, 2)),
    (lambda: layers.Reshape((-1, 4)), (4, 5, 2), (10, 4)),
    (lambda: layers.Permute((3, 1, 2)), (4, 5, 2), (2, 4, 5)),
    (lambda: layers.LayerNormalization(), (4, 5, 2), (4, 5, 2)),
    (lambda: layers.SpatialDropout2D(0.3), (4, 5, 2), (4, 5, 2)),
])
def test_output_shapes_by_keras_rules(layer, in_shape, out_shape):
    la = layer()
    assert la.compute_output_shape((None,) + in_shape) == (None,) + out_shape
    x = np.random.default_rng(0).standard_normal((2,) + in_shape).astype(np.float32)
    assert la(x).shape == (2,) + out_shape


def test_weight_shapes_and_order_are_keras_s():
    def shapes(layer, in_shape):
        layer.build((None,) + in_shape)
        return [(w.shape) for w in layer.get_weights()]

    assert shapes(layers.Conv2DTranspose(4, (2, 3)), (5, 5, 3)) == [(2, 3, 4, 3), (4,)]
    assert shapes(layers.DepthwiseConv2D(3, depth_multiplier=2), (5, 5, 3)) == [(3, 3, 3, 2),
                                                                                 (6,)]
    assert shapes(layers.SeparableConv2D(7, 3, depth_multiplier=2), (5, 5, 3)) == [
        (3, 3, 3, 2), (1, 1, 6, 7), (7,)]
    assert shapes(layers.Conv1D(4, 5, use_bias=False), (9, 3)) == [(5, 3, 4)]
    assert shapes(layers.LayerNormalization(), (5, 3)) == [(3,), (3,)]


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 2), h=st.integers(3, 7), w=st.integers(3, 7), c=st.integers(1, 3),
       m=st.integers(1, 3), k=st.integers(1, 3), s=st.integers(1, 2), d=st.integers(1, 2),
       same=st.booleans(), bias=st.booleans(), seed=st.integers(0, 999))
def test_depthwise_reference_against_the_loop_oracle(n, h, w, c, m, k, s, d, same, bias, seed):
    rng = np.random.default_rng(seed)
    if not same and d * (k - 1) + 1 > min(h, w):
        return
    x = rng.standard_normal((n, h, w, c))
    kern = rng.standard_normal((k, k, c, m))
    b = rng.standard_normal(c * m) if bias else None
    out, cache = ref.depthwise_conv2d_forward(x, kern, b, s, "same" if same else "valid", d)
    g = cache.geom
    want = naive.depthwise_conv2d(x, kern, b, (s, s), (g.pt, g.pb, g.pl, g.pr), (d, d))
    np.testing.assert_allclose(out, want, rtol=1e-12, atol=1e-12)
    # the compiled backend's entry point gives the same
    got, _ = fast.depthwise_conv2d_forward(x.astype(np.float32), kern.astype(np.float32),
                                           None if b is None else b.astype(np.float32), s,
                                           "same" if same else "valid", d)
    assert_close(got, want, np.float32, scale=naive.depthwise_conv2d(
        np.abs(x), np.abs(kern), None if b is None else np.abs(b), (s, s),
        (g.pt, g.pb, g.pl, g.pr), (d, d)))


def test_depthwise_gradients_against_central_differences():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 6, 5, 3))
    kern = rng.standard_normal((3, 2, 3, 2))
    b = rng.standard_normal(6)
    out, cache = ref.depthwise_conv2d_forward(x, kern, b, (2, 1), "same", 1)
    dout = rng.standard_normal(out.shape)
    dx, dk, db = ref.depthwise_conv2d_backward(dout, cache)
    f = lambda: ref.depthwise_conv2d_forward(x, kern, b, (2, 1), "same", 1)[0]  # noqa: E731
    np.testing.assert_allclose(dx, numerical_gradient(f, x, dout), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(dk, numerical_gradient(f, kern, dout), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(db, numerical_gradient(f, b, dout), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("kw", [dict(strides=2), dict(strides=2, padding="same"),
                                dict(strides=(2, 3), output_padding=1),
                                dict(strides=1, padding="same")])
def test_conv2d_transpose_against_the_scatter_oracle(kw):
    # Offsets worked out from Keras's rule for a 3x3 kernel: 'valid' puts tap (0, 0) of
    # input pixel (0, 0) at output (0, 0); 'same' with stride 2 also (its crop is on the
    # bottom/right), with stride 1 at (-1, -1) (one pixel cropped on each side).
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 4, 3, 2))
    la = layers.Conv2DTranspose(5, 3, dtype="float64", **kw)
    out = la(x)
    k = la.kernel
    offset = (1, 1) if kw.get("padding") == "same" and kw["strides"] == 1 else (0, 0)
    want = naive.conv2d_transpose_offset(x, k, la.strides, offset, out.shape[1:3]) + la.bias
    np.testing.assert_allclose(out, want, rtol=1e-12, atol=1e-12)


def _grad_model(layer, in_shape, front=None):
    set_random_seed(0)
    inputs = keras.Input(in_shape)
    x = (front or layers.Conv2D(2, 1))(inputs)
    x = layer(x)
    x = layers.Flatten()(x)
    model = keras.Model(inputs, layers.Dense(3, activation="softmax")(x))
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    return model


@pytest.mark.parametrize("make,in_shape,front", [
    (lambda: layers.Conv2DTranspose(3, 3, strides=2, padding="same", activation="tanh"),
     (4, 5, 2), None),
    (lambda: layers.Conv2DTranspose(2, (2, 3), strides=(1, 2), output_padding=(0, 1)),
     (4, 5, 2), None),
    (lambda: layers.DepthwiseConv2D(3, depth_multiplier=2, padding="same",
                                    activation="relu"), (5, 5, 2), None),
    (lambda: layers.SeparableConv2D(3, 3, strides=2, dilation_rate=1), (6, 6, 2), None),
    (lambda: layers.ZeroPadding2D(((1, 0), (2, 1))), (4, 4, 2), None),
    (lambda: layers.Cropping2D(((1, 0), (0, 2))), (4, 5, 2), None),
    (lambda: layers.UpSampling2D((2, 3)), (3, 3, 2), None),
    (lambda: layers.UpSampling2D(2, interpolation="bilinear"), (3, 4, 2), None),
    (lambda: layers.UpSampling2D(3, interpolation="bilinear", data_format="channels_first"),
     (3, 4, 2), None),
    (lambda: layers.Reshape((-1, 4)), (4, 4, 2), None),
    (lambda: layers.Permute((2, 3, 1)), (3, 4, 2), None),
    # (no bias in front: normalising over the image removes any per-channel constant,
    # so a bias's gradient is exactly zero and its relative error pure rounding noise)
    (lambda: layers.LayerNormalization(axis=[1, 2]), (3, 4, 2),
     layers.Conv2D(2, 1, use_bias=False)),
    (lambda: layers.Conv1D(3, 3, padding="causal", dilation_rate=2, activation="tanh"),
     (9, 2), layers.Dense(2)),
    (lambda: layers.MaxPooling1D(2, padding="same"), (9, 2), layers.Dense(2)),
    (lambda: layers.AveragePooling1D(3, strides=2), (9, 2), layers.Dense(2)),
    (lambda: layers.GlobalMaxPooling1D(), (9, 2), layers.Dense(2)),
    (lambda: layers.GlobalAveragePooling1D(keepdims=True), (9, 2), layers.Dense(2)),
])
def test_gradients_against_central_differences(make, in_shape, front):
    # The layer sits between two weighted layers, so the first layer's gradient checks
    # the layer's input gradient and the last's its forward.
    model = _grad_model(make(), in_shape, front)
    x = np.random.default_rng(1).standard_normal((3,) + in_shape).astype(np.float32)
    errors = check_gradients(model, x, [0, 2, 1])
    assert max(errors.values()) < 1e-6, errors


def test_noise_layers_train_only_and_are_seeded():
    x = np.ones((4, 3, 3, 2), np.float32)
    for la in (layers.GaussianNoise(0.5, seed=1), layers.GaussianDropout(0.3, seed=1),
               layers.SpatialDropout2D(0.5, seed=1)):
        np.testing.assert_array_equal(la(x), x)                 # inference: identity
        out = la(x, training=True)
        assert not np.array_equal(out, x)
    sd = layers.SpatialDropout2D(0.5, seed=2)
    out, _ = sd.forward(x, training=True)
    per_map = out.reshape(4, 9, 2)
    assert np.all((per_map == per_map[:, :1]))                  # whole maps kept or dropped
    assert set(np.unique(out)) <= {0.0, 2.0}
    a = layers.GaussianNoise(1.0, seed=5)(x, training=True)
    b = layers.GaussianNoise(1.0, seed=5)(x, training=True)
    np.testing.assert_array_equal(a, b)


def test_new_layers_save_and_load(tmp_path):
    model = keras.Sequential([
        keras.Input((8, 8, 2)), layers.ZeroPadding2D(1), layers.DepthwiseConv2D(3),
        layers.SeparableConv2D(4, 3, padding="same"), layers.Conv2DTranspose(3, 3, strides=2),
        layers.UpSampling2D(interpolation="bilinear"), layers.Cropping2D(2),
        layers.LayerNormalization(), layers.SpatialDropout2D(0.2), layers.GaussianNoise(0.1),
        layers.Permute((2, 1, 3)), layers.Reshape((-1, 3)), layers.Conv1D(2, 3),
        layers.MaxPooling1D(), layers.GlobalAveragePooling1D(), layers.Dense(2)])
    x = np.random.default_rng(0).standard_normal((2, 8, 8, 2)).astype(np.float32)
    path = tmp_path / "m.fcm"
    model.save(path)
    again = models.load_model(path)
    np.testing.assert_array_equal(again.predict(x), model.predict(x))
    assert [type(la).__name__ for la in again.layers] == [
        type(la).__name__ for la in model.layers]


def test_bad_arguments_name_themselves():
    with pytest.raises(ValueError, match="output_padding"):
        layers.Conv2DTranspose(2, 3, strides=2, output_padding=2)
    with pytest.raises(ValueError, match="depth_multiplier"):
        layers.DepthwiseConv2D(3, depth_multiplier=0)
    with pytest.raises(ValueError, match="padding"):
        layers.Conv1D(2, 3, padding="full")
    with pytest.raises(ValueError, match="padding"):
        layers.ZeroPadding2D((1, 2, 3))
    with pytest.raises(ValueError, match="cropping.*leaves nothing"):
        layers.Cropping2D(2)(np.zeros((1, 4, 4, 1), np.float32))
    with pytest.raises(ValueError, match="interpolation"):
        layers.UpSampling2D(interpolation="bicubic")
    with pytest.raises(ValueError, match="target_shape"):
        layers.Reshape((-1, -1))
    with pytest.raises(ValueError, match="cannot take target_shape"):
        layers.Reshape((7,))(np.zeros((1, 2, 3), np.float32))
    with pytest.raises(ValueError, match="dims"):
        layers.Permute((0, 1))
    with pytest.raises(ValueError, match="rate"):
        layers.GaussianDropout(1.0)
    with pytest.raises(ValueError, match="stddev"):
        layers.GaussianNoise(-1)
    with pytest.raises(ValueError, match="`b` must be None or an array of shape"):
        ref.depthwise_conv2d_forward(np.zeros((1, 4, 4, 2)), np.zeros((3, 3, 2, 2)),
                                     np.zeros(2))
