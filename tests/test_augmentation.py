"""RandomZoom, RandomContrast, RandomBrightness, RandomCrop, CenterCrop, Resizing: values
by hand and against the resize loop oracle, training-only behaviour, seeds, numerical
gradients (float64), shapes, configs, bad input. Keras parity of Resizing and CenterCrop:
tests/test_normalization.py::test_issue16_layers_match_keras."""

import numpy as np
import pytest

import fastconv
from fastconv import layers
from fastconv.testing import assert_close, numerical_gradient

from .test_regularization_layers import assert_seeded
from .test_reshaping import _loop_resize


def _seeded_gradient(make, x, rng, training=True):
    """dx of a random layer against central differences: every evaluation uses a fresh
    layer with the same seed, hence the same draw."""
    out, ctx = make().forward(x, training)
    dout = rng.normal(size=out.shape)
    dx = make().backward(dout, ctx)[0]
    assert_close(dx, numerical_gradient(lambda: make().forward(x, training)[0], x, dout),
                 rtol=1e-7)


def test_random_zoom_by_hand_and_training_only():
    x = np.arange(25.0).reshape(1, 5, 5, 1)
    layer = layers.RandomZoom((-0.6, -0.6), interpolation="nearest", seed=0)
    np.testing.assert_array_equal(layer(x), x)
    out = layer.forward(x, training=True)[0][0, :, :, 0]
    # zoom 0.4 about pixel (2, 2): rows 2 + 0.4 * (i - 2) = 1.2, 1.6, 2, 2.4, 2.8 -> 1 2 2 2 3
    idx = [1, 2, 2, 2, 3]
    np.testing.assert_array_equal(out, x[0, :, :, 0][np.ix_(idx, idx)])
    # Zooming out by 1 (twice the span) with a constant fill: rows 2 + 2 * (i - 2) =
    # -2, 0, 2, 4, 6, the first and last outside.
    wide = layers.RandomZoom((1.0, 1.0), (0.0, 0.0), fill_mode="constant", fill_value=-1,
                             interpolation="nearest", seed=0)
    out = wide.forward(x, training=True)[0][0, :, :, 0]
    np.testing.assert_array_equal(out[:, 2], [-1, 2, 12, 22, -1])
    np.testing.assert_array_equal(out[2], x[0, 2, :, 0])  # widths untouched


@pytest.mark.parametrize("backend", ["numpy", "cython"])
def test_random_zoom_gradient(backend, rng):
    x = rng.normal(size=(2, 5, 6, 2))
    with fastconv.use_backend(backend):
        _seeded_gradient(lambda: layers.RandomZoom((-0.3, 0.4), (0.2, 0.3), seed=4,
                                                   fill_mode="reflect"), x, rng)


def test_random_contrast_and_brightness_values(rng):
    x = rng.random((64, 4, 5, 3)) * 100 + 50  # well inside (0, 255)
    contrast = layers.RandomContrast(0.5, seed=1)
    assert contrast.factor == (0.0, 0.5)  # Keras 3.15: a single f means (0, f)
    np.testing.assert_array_equal(contrast(x), x)
    out = contrast.forward(x, training=True)[0]
    mean = x.mean(axis=(1, 2), keepdims=True)
    c = (out - mean) / (x - mean)
    assert np.allclose(c, c[:, :1, :1, :1])  # one factor per image
    assert c.min() >= 1 and c.max() <= 1.5 and c.max() - c.min() > 0.2
    pair = layers.RandomContrast((0.2, 0.1), seed=1).forward(x, training=True)[0]
    c = ((pair - mean) / (x - mean))[:, 0, 0, 0]
    assert c.min() >= 0.8 and c.max() <= 1.2

    bright = layers.RandomBrightness(0.1, value_range=(0, 1), seed=2)
    y = rng.random((64, 3, 3, 2))
    np.testing.assert_array_equal(bright(y), y)
    out = bright.forward(y, training=True)[0]
    assert out.min() >= 0 and out.max() <= 1
    inside = (out > 0) & (out < 1)
    delta = np.where(inside, out - y, np.nan).reshape(64, -1)
    spread = np.nanmax(delta, axis=1) - np.nanmin(delta, axis=1)
    assert np.nanmax(spread) < 1e-12  # one delta per image
    assert np.nanmax(np.abs(delta)) <= 0.1


@pytest.mark.parametrize("make", [
    lambda: layers.RandomContrast((0.3, 0.6), value_range=(-1.0, 1.0), seed=3),
    lambda: layers.RandomContrast(0.4, value_range=(-5, 5), seed=3, data_format="channels_first"),
    lambda: layers.RandomBrightness((-0.3, 0.2), value_range=(-1, 1), seed=3),
])
def test_intensity_gradients(make, rng):
    x = rng.uniform(-0.7, 0.7, size=(3, 4, 4, 2))
    _seeded_gradient(make, x, rng)


def test_crops_and_resizing_by_hand_and_against_the_oracle(rng):
    x = rng.normal(size=(2, 6, 8, 3))
    np.testing.assert_array_equal(layers.CenterCrop(4, 4)(x), x[:, 1:5, 2:6])
    np.testing.assert_array_equal(layers.CenterCrop(3, 5)(x), x[:, 1:4, 1:6])
    # Smaller than the box: the centred (6, 6) crop of aspect 1, resized to 7 x 7.
    assert_close(layers.CenterCrop(7, 7)(x), _loop_resize(x[:, :, 1:7], 7, 7, True))
    assert_close(layers.Resizing(4, 5)(x), _loop_resize(x, 4, 5, True))
    assert_close(layers.Resizing(9, 3, "nearest")(x), _loop_resize(x, 9, 3, False))
    # crop_to_aspect_ratio to 3 x 2 of a 6 x 8 image: the centred 6 x 4 box.
    assert_close(layers.Resizing(3, 2, crop_to_aspect_ratio=True)(x),
                 _loop_resize(x[:, :, 2:6], 3, 2, True))
    first = layers.Resizing(4, 5, data_format="channels_first")
    assert_close(first(x.transpose(0, 3, 1, 2)), _loop_resize(x, 4, 5, True).transpose(
        0, 3, 1, 2))


def test_random_crop_training_and_inference(rng):
    x = rng.normal(size=(3, 6, 8, 2))
    layer = layers.RandomCrop(4, 5, seed=7)
    tops = set()
    for _ in range(20):
        out = layer.forward(x, training=True)[0]
        assert out.shape == (3, 4, 5, 2)
        hits = [(t, le) for t in range(3) for le in range(4)
                if np.array_equal(out, x[:, t:t + 4, le:le + 5])]
        assert len(hits) == 1  # one box, the same for the whole batch
        tops.add(hits[0])
    assert len(tops) > 3
    # Inference: the centred box of aspect 4:5 (6 x 7, left 0), resized to 4 x 5.
    assert_close(layer(x), _loop_resize(x[:, :, 0:7], 4, 5, True))
    # Images not larger than the box in both axes: the same crop-and-resize in training.
    small = layers.RandomCrop(6, 4, seed=1)
    assert_close(small.forward(x, training=True)[0], _loop_resize(x[:, :, 2:6], 6, 4, True))


@pytest.mark.parametrize("make, training", [
    (lambda: layers.Resizing(4, 5), False),
    (lambda: layers.Resizing(3, 7, "nearest", crop_to_aspect_ratio=True), False),
    (lambda: layers.CenterCrop(3, 4), False),
    (lambda: layers.CenterCrop(7, 9), False),
    (lambda: layers.RandomCrop(4, 5, seed=2), True),
    (lambda: layers.RandomCrop(4, 5, seed=2), False),
])
def test_crop_resize_gradients(make, training, rng):
    x = rng.normal(size=(2, 6, 8, 2))
    _seeded_gradient(make, x, rng, training)


def test_output_shapes_and_configs():
    shape = (None, 6, 8, 3)
    assert layers.Resizing(4, 5).compute_output_shape(shape) == (None, 4, 5, 3)
    assert layers.CenterCrop(2, 3, data_format="channels_first").compute_output_shape(
        (None, 3, 6, 8)) == (None, 3, 2, 3)
    assert layers.RandomCrop(5, 5).compute_output_shape(shape) == (None, 5, 5, 3)
    for layer in (layers.RandomZoom(0.2, (-0.1, 0.3), fill_mode="nearest", seed=1),
                  layers.RandomContrast((0.1, 0.2), value_range=(0, 1), seed=2),
                  layers.RandomBrightness(0.3, seed=3), layers.RandomCrop(3, 4, seed=4),
                  layers.CenterCrop(3, 4),
                  layers.Resizing(3, 4, "nearest", crop_to_aspect_ratio=True)):
        config = layer.get_config()
        again = type(layer).from_config(config)
        assert again.get_config() == config


@pytest.mark.parametrize("make", [
    lambda s: layers.RandomZoom(0.3, seed=s), lambda s: layers.RandomContrast(0.5, seed=s),
    lambda s: layers.RandomBrightness(0.5, seed=s), lambda s: layers.RandomCrop(3, 3, seed=s)])
def test_seeds_and_global_seed(make, rng):
    assert_seeded(make, rng.random((4, 6, 6, 2)) * 255)


@pytest.mark.parametrize("make, exc, message", [
    (lambda: layers.RandomZoom(-1.0), ValueError, "`height_factor` must be"),
    (lambda: layers.RandomZoom(0.2, (0.1, 1.5)), ValueError, "`width_factor` must be"),
    (lambda: layers.RandomContrast(1.5), ValueError, "`factor` must be"),
    (lambda: layers.RandomContrast(-0.2), ValueError, "`factor` must be"),
    (lambda: layers.RandomBrightness((0.1, 0.2, 0.3)), ValueError, "`factor` must be"),
    (lambda: layers.RandomBrightness(0.1, value_range=5), ValueError, "`value_range` must"),
    (lambda: layers.RandomCrop(0, 3), ValueError, "`height` must be"),
    (lambda: layers.CenterCrop(3, 2.5), TypeError, "`width` must be"),
    (lambda: layers.Resizing(3, 3, "cubic"), ValueError, "`interpolation` must be"),
    (lambda: layers.RandomCrop(3, 3, seed="a"), TypeError, "`seed` must be"),
])
def test_augmentation_bad_arguments(make, exc, message):
    with pytest.raises(exc, match=message):
        make()


def test_augmentation_model_trains(rng):
    from fastconv import keras

    model = keras.Sequential([
        keras.Input((8, 10, 3)), layers.RandomZoom(0.2), layers.RandomContrast(0.2),
        layers.RandomBrightness(0.1), layers.RandomCrop(6, 6), layers.Resizing(4, 4),
        layers.CenterCrop(3, 3), layers.Flatten(), layers.Dense(2)])
    model.compile("sgd", "mse")
    x, y = rng.random((16, 8, 10, 3)) * 255, rng.normal(size=(16, 2))
    model.fit(x, y, epochs=1, verbose=0)
    assert model.predict(x, verbose=0).shape == (16, 2)


ISSUE16 = ["UpSampling2D", "ZeroPadding2D", "Cropping2D", "Reshape", "Permute",
           "LayerNormalization", "GroupNormalization", "SpatialDropout2D", "GaussianNoise",
           "GaussianDropout", "ActivityRegularization", "RandomZoom", "RandomContrast",
           "RandomBrightness", "RandomCrop", "CenterCrop", "Resizing"]


def test_issue16_names_importable_and_loadable(tmp_path, rng):
    from fastconv import keras
    from fastconv.keras import constraints as kc

    for name in ISSUE16:
        assert getattr(layers, name) is getattr(keras.layers, name)
        assert name in layers.__all__ and layers.get_layer_class(name) is getattr(layers, name)
    assert kc.MaxNorm is fastconv.constraints.MaxNorm and keras.constraints.non_neg
    inputs = keras.Input((8, 8, 3))
    x = layers.RandomZoom(0.1)(inputs)
    x = layers.RandomContrast(0.1)(x)
    x = layers.RandomBrightness(0.1)(x)
    x = layers.RandomCrop(7, 7)(x)
    x = layers.CenterCrop(6, 6)(x)
    x = layers.Resizing(4, 4)(x)
    x = layers.UpSampling2D()(x)
    x = layers.ZeroPadding2D(1)(x)
    x = layers.Cropping2D(1)(x)
    x = layers.SpatialDropout2D(0.1)(x)
    x = layers.GaussianNoise(0.1)(x)
    x = layers.GaussianDropout(0.1)(x)
    x = layers.GroupNormalization(3)(x)
    x = layers.LayerNormalization()(x)
    x = layers.Permute((3, 1, 2))(x)
    x = layers.Reshape((-1,))(x)
    x = layers.ActivityRegularization(l2=0.01)(x)
    model = keras.Model(inputs, layers.Dense(2)(x))
    model.compile("adam", "mse")
    data = rng.random((8, 8, 8, 3)) * 255
    model.fit(data, rng.normal(size=(8, 2)), epochs=1, verbose=0)
    path = str(tmp_path / "all.keras")
    model.save(path)
    again = keras.models.load_model(path)
    assert [type(la).__name__ for la in again.layers[1:-1]] == ISSUE16[11:17] + [
        "UpSampling2D", "ZeroPadding2D", "Cropping2D", "SpatialDropout2D", "GaussianNoise",
        "GaussianDropout", "GroupNormalization", "LayerNormalization", "Permute", "Reshape",
        "ActivityRegularization"]
    np.testing.assert_array_equal(again.predict(data, verbose=0), model.predict(data,
                                                                                verbose=0))
