"""Augmentation and rescaling layers: exact pixels on known images, seeding, inference."""

import numpy as np
import pytest

from fastconv import layers
from fastconv.models import Sequential
from fastconv.preprocessing import RandomFlip, RandomRotation, RandomTranslation, Rescaling


def ramp(n=1, h=5, w=5, c=1):
    """Every pixel a different value, so any displacement shows."""
    return np.arange(n * h * w * c, dtype=np.float32).reshape(n, h, w, c)


def test_rescaling_math():
    x = np.array([[0.0, 127.5, 255.0]], np.float32)
    np.testing.assert_allclose(Rescaling(1 / 127.5, offset=-1)(x), [[-1.0, 0.0, 1.0]],
                               atol=1e-6)
    layer = Rescaling(1 / 255)
    out = layer(x, training=False)  # applies in inference too, as in Keras
    np.testing.assert_allclose(out, [[0.0, 0.5, 1.0]], atol=1e-6)
    assert out.dtype == np.float32
    np.testing.assert_allclose(layer.backward(np.ones((1, 3), np.float32), None)[0],
                               [[1 / 255] * 3], rtol=1e-6)


@pytest.mark.parametrize("layer", [
    RandomFlip(seed=1), RandomTranslation(0.2, 0.3, seed=1), RandomRotation(0.1, seed=1)],
    ids=["flip", "translation", "rotation"])
def test_identity_in_inference_and_shapes(layer):
    x = ramp(3, 6, 7, 2)
    assert layer(x, training=False) is x
    out = layer(x, training=True)
    assert out.shape == x.shape and out.dtype == x.dtype
    assert layer.compute_output_shape((None, 6, 7, 2)) == (None, 6, 7, 2)


@pytest.mark.parametrize("make", [
    lambda s: RandomFlip(seed=s), lambda s: RandomTranslation(0.3, 0.3, seed=s),
    lambda s: RandomRotation(0.2, seed=s)], ids=["flip", "translation", "rotation"])
def test_seeded_determinism(make):
    x = ramp(16, 8, 8, 1)
    a, b, c = make(7), make(7), make(8)
    out_a = [a(x, training=True) for _ in range(2)]
    out_b = [b(x, training=True) for _ in range(2)]
    for u, v in zip(out_a, out_b):
        np.testing.assert_array_equal(u, v)
    # A different seed, or the next batch of the same layer, draws other transforms.
    assert not np.array_equal(out_a[0], c(x, training=True))
    assert not np.array_equal(out_a[0], out_a[1])


def test_horizontal_flip_exact_pixels():
    x = np.repeat(ramp(1, 3, 4), 32, axis=0)
    out = RandomFlip("horizontal", seed=0)(x, training=True)
    flipped = x[0, :, ::-1]
    n_flipped = 0
    for img in out:
        if np.array_equal(img, flipped):
            n_flipped += 1
        else:
            np.testing.assert_array_equal(img, x[0])
    assert 0 < n_flipped < 32


def test_vertical_and_both_flip_exact_pixels():
    x = np.repeat(ramp(1, 3, 4), 64, axis=0)
    out = RandomFlip("vertical", seed=0)(x, training=True)
    assert all(np.array_equal(i, x[0]) or np.array_equal(i, x[0, ::-1]) for i in out)
    out = RandomFlip("horizontal_and_vertical", seed=0)(x, training=True)
    seen = set()
    for img in out:
        for k, ref in enumerate([x[0], x[0, ::-1], x[0, :, ::-1], x[0, ::-1, ::-1]]):
            if np.array_equal(img, ref):
                seen.add(k)
                break
        else:
            raise AssertionError("an output is not one of the four flips")
    assert seen == {0, 1, 2, 3}


def test_translation_exact_pixels_constant_fill():
    x = ramp(1, 5, 5)
    # 0.2 of 5 rows = 1 row down, -0.4 of 5 columns = 2 columns left.
    layer = RandomTranslation((0.2, 0.2), (-0.4, -0.4), fill_mode="constant", fill_value=-1,
                              interpolation="nearest", seed=0)
    out = layer(x, training=True)[0, :, :, 0]
    img = x[0, :, :, 0]
    expected = np.full((5, 5), -1.0, np.float32)
    expected[1:, :3] = img[:4, 2:]
    np.testing.assert_array_equal(out, expected)
    # Bilinear at a whole-pixel shift gives the same pixels.
    layer = RandomTranslation((0.2, 0.2), (-0.4, -0.4), fill_mode="constant", fill_value=-1,
                              seed=0)
    np.testing.assert_allclose(layer(x, training=True)[0, :, :, 0], expected, atol=1e-5)


@pytest.mark.parametrize("fill_mode, expected_row", [
    ("reflect", [1, 0, 0, 1, 2]), ("nearest", [0, 0, 0, 1, 2]), ("wrap", [3, 4, 0, 1, 2]),
    ("constant", [9, 9, 0, 1, 2])])
def test_translation_fill_modes(fill_mode, expected_row):
    x = np.arange(5, dtype=np.float32).reshape(1, 1, 5, 1)  # one row: 0 1 2 3 4
    # Two columns to the right: output column j reads input column j - 2.
    layer = RandomTranslation((0.0, 0.0), (0.4, 0.4), fill_mode=fill_mode, fill_value=9,
                              interpolation="nearest", seed=0)
    np.testing.assert_array_equal(layer(x, training=True)[0, 0, :, 0], expected_row)


@pytest.mark.parametrize("n", [5, 6])
def test_quarter_turn_is_rot90(n):
    x = ramp(2, n, n, 3)
    out = RandomRotation((0.25, 0.25), interpolation="nearest", seed=0)(x, training=True)
    for img, src in zip(out, x):
        np.testing.assert_array_equal(img, np.rot90(src, 1, axes=(0, 1)))
    out = RandomRotation((-0.25, -0.25), interpolation="nearest", seed=0)(x, training=True)
    np.testing.assert_array_equal(out[0], np.rot90(x[0], -1, axes=(0, 1)))
    out = RandomRotation((0.5, 0.5), seed=0)(x, training=True)  # bilinear
    np.testing.assert_allclose(out[0], np.rot90(x[0], 2, axes=(0, 1)), atol=1e-4)


def test_channels_first():
    x = ramp(1, 4, 4, 2)
    out = RandomRotation((0.25, 0.25), interpolation="nearest", seed=0,
                         data_format="channels_first")(x.transpose(0, 3, 1, 2), training=True)
    np.testing.assert_array_equal(out.transpose(0, 2, 3, 1)[0], np.rot90(x[0], 1, axes=(0, 1)))


@pytest.mark.parametrize("layer", [
    RandomFlip(seed=3), RandomTranslation(0.3, 0.3, fill_mode="reflect", seed=3),
    RandomTranslation(0.3, 0.3, fill_mode="constant", seed=3),
    RandomRotation(0.2, interpolation="nearest", seed=3), RandomRotation(0.2, seed=3)],
    ids=["flip", "translation-reflect", "translation-constant", "rotation-nearest",
         "rotation-bilinear"])
def test_backward_is_transpose_of_forward(layer, rng):
    # The forward is linear in x for fixed transforms: <f(x), g> == <x, f^T(g)>.
    x = rng.standard_normal((4, 6, 6, 2))
    out, ctx = layer.forward(x, training=True)
    g = rng.standard_normal(out.shape)
    dx, _ = layer.backward(g, ctx)
    assert dx.shape == x.shape
    np.testing.assert_allclose(np.sum(out * g), np.sum(x * dx), rtol=1e-10)


@pytest.mark.parametrize("bad, match", [
    (lambda: RandomFlip("diagonal"), "mode"),
    (lambda: RandomTranslation(1.5, 0.1), "height_factor"),
    (lambda: RandomTranslation(0.1, (0.3, 0.1)), "width_factor"),
    (lambda: RandomRotation("a lot"), "factor"),
    (lambda: RandomRotation(0.1, fill_mode="mirror"), "fill_mode"),
    (lambda: RandomRotation(0.1, interpolation="cubic"), "interpolation"),
    (lambda: RandomFlip(seed=-1), "seed"),
    (lambda: Rescaling("1/255"), "scale"),
])
def test_bad_arguments(bad, match):
    with pytest.raises((ValueError, TypeError), match=match):
        bad()


def test_in_a_model_trains_and_round_trips_config():
    model = Sequential([
        layers.Input(shape=(8, 8, 1)), Rescaling(1 / 255), RandomFlip("horizontal", seed=1),
        RandomTranslation(0.1, 0.1, seed=2), RandomRotation(0.05, seed=3),
        layers.Conv2D(4, 3, activation="relu"), layers.Flatten(),
        layers.Dense(3, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    x = np.random.default_rng(0).integers(0, 256, (20, 8, 8, 1)).astype(np.float32)
    y = np.arange(20) % 3
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    # Inference is deterministic: the random layers are off.
    np.testing.assert_array_equal(model.predict(x, verbose=0), model.predict(x, verbose=0))
    for layer in model.layers[:4]:
        clone = type(layer).from_config(dict(layer.get_config(), name=layer.name + "_copy"))
        assert clone.get_config() == dict(layer.get_config(), name=layer.name + "_copy")


def test_save_and_load_round_trip(tmp_path, monkeypatch):
    import fastconv.preprocessing as preprocessing
    from fastconv.models import load_model
    from fastconv.preprocessing import __all__ as names

    # Loading finds layer classes through layers.get_layer_class; register these here
    # (as fastconv.layers will) so this checks the configs themselves round-trip.
    for name in names:
        monkeypatch.setitem(layers._LAYERS, name, getattr(preprocessing, name))
    model = Sequential([
        layers.Input(shape=(8, 8, 1)), Rescaling(1 / 255, offset=0.5),
        RandomFlip("horizontal", seed=1), RandomTranslation(0.1, (0.0, 0.2), seed=2),
        RandomRotation(0.05, fill_mode="constant", fill_value=0.5, interpolation="nearest"),
        layers.Conv2D(2, 3), layers.Flatten(), layers.Dense(3, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    x = np.random.default_rng(0).uniform(0, 255, (4, 8, 8, 1)).astype(np.float32)
    model.fit(x, np.arange(4) % 3, verbose=0)
    model.save(tmp_path / "m.zip")
    loaded = load_model(tmp_path / "m.zip")
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    for a, b in zip(model.layers[:4], loaded.layers[:4]):
        assert type(a) is type(b) and a.get_config() == b.get_config()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("fill_mode", ["constant", "nearest", "reflect", "wrap"])
@pytest.mark.parametrize("interpolation", ["bilinear", "nearest"])
def test_compiled_gather_is_the_numpy_gather_bit_for_bit(dtype, fill_mode, interpolation,
                                                         threads, monkeypatch, rng):
    from fastconv.layers import preprocessing

    kernels = preprocessing._image
    x = rng.standard_normal((5, 9, 7, 3)).astype(dtype)
    x[0, 4, 3, 1] = np.nan
    makers = [
        lambda: RandomTranslation(0.9, (-1, 1), fill_mode=fill_mode,
                                  interpolation=interpolation, fill_value=0.25, seed=1),
        lambda: RandomRotation(0.5, fill_mode=fill_mode, interpolation=interpolation,
                               fill_value=-1.0, seed=2),
        lambda: RandomFlip(seed=3),
    ]
    for make in makers:
        results = []
        for compiled in (kernels, None):
            monkeypatch.setattr(preprocessing, "_image", compiled)
            layer = make()
            results.append(layer.forward(x, training=True)[0])
        assert results[0].dtype == dtype
        np.testing.assert_array_equal(results[0], results[1])
    # Far outside (translations of up to 3 image sizes): folding by the fill mode all
    # the way, as np.pad does.
    rows = np.broadcast_to(np.arange(9.0)[None, :, None] * 3 - 20.5, (5, 9, 7))
    cols = np.broadcast_to(np.arange(7.0)[None, None, :] * 2.5 + 9.25, (5, 9, 7))
    layer = RandomTranslation(0.1, 0.1, fill_mode=fill_mode, interpolation=interpolation,
                              fill_value=0.5)
    want = layer._gather_numpy(x, rows, cols)
    how = (interpolation == "bilinear",
           ["constant", "nearest", "reflect", "wrap"].index(fill_mode), 0.5)
    got = np.empty_like(x)
    kernels.gather(x, rows, cols, *how, got, threads)
    np.testing.assert_array_equal(got, want)
    got = np.empty_like(x)  # rows depend on the row only, columns on the column only
    kernels.gather_separable(x, np.ascontiguousarray(rows[:, :, 0]),
                             np.ascontiguousarray(cols[:, 0, :]), *how, got,
                             np.empty((5, 7, 2), np.intp), np.empty((5, 7), dtype), threads)
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("shape", [(0, 5, 5, 1), (2, 0, 5, 1), (2, 5, 0, 1), (2, 5, 5, 0)])
def test_empty_batches_and_images_pass_through(shape):
    for layer in (RandomFlip(), RandomTranslation(0.2, 0.2), RandomRotation(0.1)):
        x = np.zeros(shape, np.float32)
        out, ctx = layer.forward(x, training=True)
        assert out.shape == shape
        assert layer.backward(np.zeros(shape, np.float32), ctx)[0].shape == shape
