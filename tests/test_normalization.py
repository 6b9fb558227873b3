"""LayerNormalization, GroupNormalization and BatchNormalization's options: values by
hand, numerical gradients (float64), shapes, bad input, and Keras parity on a committed
fixture (tools/keras_parity.py, tests/data/keras3_layers.npz)."""

import importlib.util
import os

import numpy as np
import pytest

from fastconv import layers

from .test_layers import _built, _check_layer

GRADIENT_CASES = [
    (lambda: layers.LayerNormalization(), (3, 5)),
    (lambda: layers.LayerNormalization(axis=(1, 2, 3)), (2, 3, 2, 2)),
    (lambda: layers.LayerNormalization(axis=[1, 3], center=False), (2, 3, 2, 2)),
    (lambda: layers.LayerNormalization(axis=1, scale=False), (2, 4, 3)),
    (lambda: layers.GroupNormalization(groups=2), (2, 3, 2, 4)),
    (lambda: layers.GroupNormalization(groups=-1, axis=1), (2, 3, 2, 2)),
    (lambda: layers.GroupNormalization(groups=1, scale=False), (2, 2, 3)),
    (lambda: layers.GroupNormalization(groups=3, center=False), (3, 6)),
    (lambda: layers.BatchNormalization(center=False), (2, 3, 3, 2)),
    (lambda: layers.BatchNormalization(scale=False, axis=2), (2, 3, 3, 2)),
    (lambda: layers.BatchNormalization(scale=False, center=False, axis=1), (4, 3, 2)),
]


@pytest.mark.parametrize("make, shape", GRADIENT_CASES)
@pytest.mark.parametrize("training", [False, True])
def test_normalization_gradients(make, shape, training, rng):
    layer = _built(make(), shape)
    for _, w in layer.trainable_items():
        w[...] = rng.normal(size=w.shape)
    x = rng.normal(size=shape)
    if isinstance(layer, layers.BatchNormalization) and training:
        # The moving statistics move on every call; gradients are of the batch statistics.
        layer.momentum = 1.0
    _check_layer(layer, x, rng, training=training)


def test_layer_normalization_by_hand():
    x = np.array([[1.0, 2.0, 3.0, 6.0], [0.0, 0.0, 0.0, 4.0]])
    layer = _built(layers.LayerNormalization(epsilon=1e-3), x.shape)
    layer.gamma[...] = [1.0, 2.0, 1.0, 1.0]
    layer.beta[...] = [0.0, 0.0, 0.0, 10.0]
    out = layer(x)
    # Row 0: mean 3, biased variance (4 + 1 + 0 + 9) / 4 = 3.5.
    s = np.sqrt(3.5 + 1e-3)
    np.testing.assert_allclose(out[0], [-2 / s, -2 / s, 0, 3 / s + 10], rtol=1e-12)
    # Row 1: mean 1, variance 3.
    s = np.sqrt(3 + 1e-3)
    np.testing.assert_allclose(out[1], [-1 / s, -2 / s, -1 / s, 3 / s + 10], rtol=1e-12)
    # The same in training: no statistics of the batch.
    np.testing.assert_array_equal(layer(x, training=True), out)


def test_group_normalization_by_hand():
    # Two groups of two channels; each group of one sample has its own statistics.
    x = np.array([[[0.0, 2.0, 5.0, 5.0], [4.0, 6.0, 5.0, 7.0]]])  # (1, 2, 4)
    out = _built(layers.GroupNormalization(groups=2, epsilon=1e-3), x.shape)(x)
    s0 = np.sqrt(5 + 1e-3)  # group 0: values 0 2 4 6, mean 3, variance 5
    s1 = np.sqrt(0.75 + 1e-3)  # group 1: values 5 5 5 7, mean 5.5, variance 0.75
    np.testing.assert_allclose(out[0, :, :2], [[-3 / s0, -1 / s0], [1 / s0, 3 / s0]],
                               rtol=1e-12)
    np.testing.assert_allclose(out[0, :, 2:], [[-0.5 / s1, -0.5 / s1], [-0.5 / s1, 1.5 / s1]],
                               rtol=1e-12)


def test_normalization_weights_shapes_and_configs():
    ln = _built(layers.LayerNormalization(axis=(1, 3)), (None, 4, 5, 6))
    assert [w.shape for w in ln.get_weights()] == [(4, 6), (4, 6)]
    gn = _built(layers.GroupNormalization(4, axis=1, center=False), (None, 8, 3, 3))
    assert [w.shape for w in gn.get_weights()] == [(8,)]
    bn = _built(layers.BatchNormalization(scale=False), (None, 3, 3, 5))
    assert [w.shape for w in bn.get_weights()] == [(5,)] * 3  # beta, moving mean, variance
    assert layers.GroupNormalization().groups == 32  # Keras's defaults
    assert layers.LayerNormalization().epsilon == layers.GroupNormalization().epsilon == 1e-3
    r = np.random.default_rng(0)
    for layer, x in ((ln, r.normal(size=(2, 4, 5, 6))), (gn, r.normal(size=(2, 8, 3, 3)))):
        for w in layer.weights:
            w[...] = r.normal(size=w.shape)
        clone = type(layer).from_config(layer.get_config())
        clone.build_for(layer.input_shape, np.float64)
        clone.set_weights(layer.get_weights())
        np.testing.assert_array_equal(clone(x), layer(x))


@pytest.mark.parametrize("make, exc, message", [
    (lambda: layers.GroupNormalization(0), ValueError, "`groups` must be"),
    (lambda: layers.GroupNormalization(2.0), ValueError, "`groups` must be"),
    (lambda: layers.GroupNormalization(axis=[1, 2]), TypeError, "`axis` must be an int"),
    (lambda: layers.LayerNormalization(axis="last"), TypeError, "`axis` must be"),
    (lambda: layers.LayerNormalization(epsilon=0), ValueError, "`epsilon` must be"),
    (lambda: layers.BatchNormalization(epsilon=-1), ValueError, "`epsilon` must be"),
])
def test_normalization_bad_arguments(make, exc, message):
    with pytest.raises(exc, match=message):
        make()


@pytest.mark.parametrize("layer, shape, message", [
    (layers.GroupNormalization(4), (None, 3, 6), "do not split into groups=4"),
    (layers.GroupNormalization(2, axis=0), (None, 3, 6), "not a feature axis"),
    (layers.LayerNormalization(axis=3), (None, 3, 6), "must name axes of one sample"),
    (layers.LayerNormalization(axis=0), (None, 3, 6), "must name axes of one sample"),
])
def test_normalization_bad_shapes(layer, shape, message):
    with pytest.raises(ValueError, match=message):
        layer.compute_output_shape(shape)


def test_issue16_layers_match_keras():
    """UpSampling2D (bilinear, nearest), LayerNormalization, GroupNormalization,
    BatchNormalization (center=False, scale=False, axis=1, momentum), pooling 'same' with
    pools of 3 at stride 2, ZeroPadding2D, Cropping2D, Permute, Reshape; activity
    regularizers (Conv2D, Dense, ActivityRegularization); Resizing (bilinear, nearest,
    crop_to_aspect_ratio) and CenterCrop: Keras 3.15's predictions, loss
    and weights after one SGD step, from the committed fixture."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    spec = importlib.util.spec_from_file_location(
        "keras_parity", os.path.join(root, "tools", "keras_parity.py"))
    parity = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(parity)
    results = parity.compare(os.path.join(root, "tests", "data", "keras3_layers.npz"))
    counts = {"upsampling_normalization": 17, "activity_regularization": 6,
              "resizing_crops": 4}
    assert set(results) == set(counts)
    for name, (err_pred, loss, keras_loss, err_step, n) in results.items():
        assert n == counts[name]
        assert err_pred < 1e-6, name
        assert abs(loss - keras_loss) < 1e-5 * max(1.0, keras_loss), name
        assert err_step < 1e-5, name
