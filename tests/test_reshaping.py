"""Resize kernels (UpSampling2D) and the reshaping layers: by hand, against a loop
oracle, compiled against the reference, numerical gradients, shapes, bad input."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastconv
from fastconv import layers, ops
from fastconv.backends import cython as fast
from fastconv.backends import numpy as ref
from fastconv.testing import assert_close, numerical_gradient

from .test_layers import _built, _check_layer

FIXTURES_OK = [HealthCheck.function_scoped_fixture]


def _loop_resize(x, oh, ow, bilinear):
    """Pixel by pixel, from the half-pixel rule written out with Python floats."""
    n, h, w, c = x.shape
    out = np.zeros((n, oh, ow, c), dtype=x.dtype)
    for i in range(oh):
        for j in range(ow):
            r = (i + 0.5) * h / oh
            q = (j + 0.5) * w / ow
            if not bilinear:
                out[:, i, j] = x[:, min(int(r), h - 1), min(int(q), w - 1)]
                continue
            r = min(max(r - 0.5, 0.0), h - 1)
            q = min(max(q - 0.5, 0.0), w - 1)
            r0, q0 = int(r), int(q)
            r1, q1 = min(r0 + 1, h - 1), min(q0 + 1, w - 1)
            fr, fq = r - r0, q - q0
            out[:, i, j] = ((1 - fr) * ((1 - fq) * x[:, r0, q0] + fq * x[:, r0, q1])
                            + fr * ((1 - fq) * x[:, r1, q0] + fq * x[:, r1, q1]))
    return out


def test_resize_by_hand():
    x = np.array([[0.0, 1.0], [2.0, 3.0]]).reshape(1, 2, 2, 1)
    up = ops.resize2d_forward(x, (4, 4), "bilinear")[0][0, :, :, 0]
    # Row 0 samples source row -0.25, clamped to 0; row 1 samples 0.25, and so on.
    np.testing.assert_array_equal(up, [[0.0, 0.25, 0.75, 1.0],
                                       [0.5, 0.75, 1.25, 1.5],
                                       [1.5, 1.75, 2.25, 2.5],
                                       [2.0, 2.25, 2.75, 3.0]])
    near = ops.resize2d_forward(x, (2, 4), "nearest")[0][0, :, :, 0]
    np.testing.assert_array_equal(near, [[0, 0, 1, 1], [2, 2, 3, 3]])
    # Downsampling 4 -> 3: source rows 1/6, 3/2 and 17/6 of 0..3.
    y = np.arange(4.0).reshape(1, 4, 1, 1)
    down = ops.resize2d_forward(y, (3, 1), "bilinear")[0].ravel()
    np.testing.assert_allclose(down, [1 / 6, 1.5, 17 / 6], rtol=1e-15)
    # Backward of 2 -> 4 bilinear along one axis: weights 1, .75, .25, 0 and back.
    cache = ops.resize2d_forward(np.zeros((1, 2, 1, 1)), (4, 1), "bilinear")[1]
    dx = ops.resize2d_backward(np.ones((1, 4, 1, 1)), cache).ravel()
    np.testing.assert_allclose(dx, [2.0, 2.0])
    dx = ops.resize2d_backward(np.array([1.0, 0, 0, 0]).reshape(1, 4, 1, 1), cache).ravel()
    np.testing.assert_allclose(dx, [1.0, 0.0])


@pytest.mark.parametrize("backend", [ref, fast], ids=["numpy", "cython"])
@pytest.mark.parametrize("bilinear", [False, True], ids=["nearest", "bilinear"])
@pytest.mark.parametrize("size", [(6, 10), (2, 3), (7, 4), (1, 1), (3, 5)])
def test_resize_matches_loop_oracle(backend, bilinear, size, rng):
    x = rng.standard_normal((2, 3, 5, 2))
    got = backend.resize2d_forward(x, size, "bilinear" if bilinear else "nearest")[0]
    assert_close(got, _loop_resize(x, *size, bilinear))


@pytest.mark.parametrize("bilinear", [False, True], ids=["nearest", "bilinear"])
@pytest.mark.parametrize("size", [(6, 10), (2, 3), (7, 4)])
def test_resize_gradient_numerically(bilinear, size, rng):
    x = rng.standard_normal((2, 3, 5, 2))
    how = "bilinear" if bilinear else "nearest"
    out, cache = ref.resize2d_forward(x, size, how)
    dout = rng.standard_normal(out.shape)
    want = numerical_gradient(lambda: ref.resize2d_forward(x, size, how)[0], x, dout)
    assert_close(ref.resize2d_backward(dout, cache), want, rtol=1e-8)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@settings(max_examples=40, deadline=None, suppress_health_check=FIXTURES_OK)
@given(n=st.integers(1, 3), h=st.integers(1, 9), w=st.integers(1, 9), c=st.integers(1, 5),
       oh=st.integers(1, 20), ow=st.integers(1, 20), bilinear=st.booleans(),
       seed=st.integers(0, 2**31))
def test_resize_compiled_matches_reference(n, h, w, c, oh, ow, bilinear, seed, dtype,
                                           threads):
    r = np.random.default_rng(seed)
    x = r.standard_normal((n, h, w, c)).astype(dtype)
    how = "bilinear" if bilinear else "nearest"
    got, gc = fast.resize2d_forward(x, (oh, ow), how)
    want, wc = ref.resize2d_forward(x, (oh, ow), how)
    assert got.dtype == dtype
    assert_close(got, want, dtype, scale=ref.resize2d_forward(np.abs(x), (oh, ow), how)[0])
    dout = r.standard_normal(want.shape).astype(dtype)
    dx = fast.resize2d_backward(dout, gc)
    assert dx.dtype == dtype
    assert_close(dx, ref.resize2d_backward(dout, wc), dtype,
                 scale=ref.resize2d_backward(np.abs(dout), wc))
    # The same bits on the other thread count.
    fastconv.set_num_threads(3 - threads)
    try:
        again, gc2 = fast.resize2d_forward(x, (oh, ow), how)
        dx2 = fast.resize2d_backward(dout, gc2)
    finally:
        fastconv.set_num_threads(threads)
    np.testing.assert_array_equal(again, got)
    np.testing.assert_array_equal(dx2, dx)


@pytest.mark.parametrize("backend", [ref, fast], ids=["numpy", "cython"])
@pytest.mark.parametrize("args, exc, message", [
    ((np.zeros((2, 3, 3)), (4, 4), "nearest"), ValueError, "`x` must be a 4-D array"),
    ((np.zeros((1, 0, 3, 1)), (4, 4), "nearest"), ValueError, "H, W, C >= 1"),
    ((np.zeros((1, 2, 2, 1)), (0, 4), "nearest"), ValueError, "`size` must be"),
    ((np.zeros((1, 2, 2, 1)), (2.5, 4), "nearest"), TypeError, "`size` must be"),
    ((np.zeros((1, 2, 2, 1)), (4, 4), "bicubic"), ValueError, "`interpolation` must be"),
    ((np.zeros((1, 2, 2, 1), np.complex64), (4, 4), "nearest"), TypeError, "`x` must be"),
])
def test_resize_bad_input(backend, args, exc, message):
    with pytest.raises(exc, match=message):
        backend.resize2d_forward(*args)


def test_resize_backward_checks_dout_and_cache():
    cache = fast.resize2d_forward(np.zeros((1, 2, 2, 1)), (4, 4), "nearest")[1]
    with pytest.raises(ValueError, match="`dout` must be an array of the forward output"):
        fast.resize2d_backward(np.zeros((1, 4, 3, 1)), cache)
    with pytest.raises(ValueError, match="the 'numpy' backend"):
        ref.resize2d_backward(np.zeros((1, 4, 4, 1)), cache)
    # fastconv.ops dispatches on the cache's backend.
    assert ops.resize2d_backward(np.zeros((1, 4, 4, 1)), cache).shape == (1, 2, 2, 1)


# ------------------------------------------------------------------------- layers

LAYER_CASES = [
    (lambda: layers.UpSampling2D(), (2, 3, 4, 2), (None, 6, 8, 2)),
    (lambda: layers.UpSampling2D((3, 1), interpolation="bilinear"), (1, 2, 3, 2),
     (None, 6, 3, 2)),
    (lambda: layers.UpSampling2D(2, "channels_first", "bilinear"), (1, 2, 3, 4),
     (None, 2, 6, 8)),
    (lambda: layers.ZeroPadding2D(), (2, 3, 4, 2), (None, 5, 6, 2)),
    (lambda: layers.ZeroPadding2D(((1, 2), (0, 3))), (1, 3, 4, 2), (None, 6, 7, 2)),
    (lambda: layers.ZeroPadding2D((2, 1), data_format="channels_first"), (1, 2, 3, 4),
     (None, 2, 7, 6)),
    (lambda: layers.Cropping2D(1), (2, 4, 5, 2), (None, 2, 3, 2)),
    (lambda: layers.Cropping2D(((0, 2), (1, 1)), data_format="channels_first"),
     (1, 2, 5, 4), (None, 2, 3, 2)),
    (lambda: layers.Reshape((-1, 4)), (2, 3, 4, 2), (None, 6, 4)),
    (lambda: layers.Reshape((8, 3)), (2, 3, 4, 2), (None, 8, 3)),
    (lambda: layers.Permute((3, 1, 2)), (2, 3, 4, 2), (None, 2, 3, 4)),
    (lambda: layers.Permute((2, 1)), (2, 3, 5), (None, 5, 3)),
]


@pytest.mark.parametrize("make, shape, out_shape", LAYER_CASES)
def test_reshaping_layers_shapes_and_gradients(make, shape, out_shape, rng):
    layer = make()
    assert layer.compute_output_shape((None,) + shape[1:]) == out_shape
    _built(layer, shape)
    x = rng.normal(size=shape)
    assert layer.forward(x)[0].shape == (shape[0],) + out_shape[1:]
    _check_layer(layer, x, rng)
    clone = type(layer).from_config(layer.get_config())
    np.testing.assert_array_equal(clone(x), layer(x))


def test_reshaping_layer_values():
    x = np.arange(6.0).reshape(1, 2, 3, 1)
    pad = layers.ZeroPadding2D(((1, 0), (0, 2)))(x)[0, :, :, 0]
    np.testing.assert_array_equal(pad, [[0, 0, 0, 0, 0], [0, 1, 2, 0, 0], [3, 4, 5, 0, 0]])
    crop = layers.Cropping2D(((0, 1), (1, 0)))(x)[0, :, :, 0]
    np.testing.assert_array_equal(crop, [[1, 2]])
    up = layers.UpSampling2D((1, 2))(x)[0, :, :, 0]
    np.testing.assert_array_equal(up, [[0, 0, 1, 1, 2, 2], [3, 3, 4, 4, 5, 5]])
    perm = layers.Permute((2, 1, 3))(x)
    assert perm.shape == (1, 3, 2, 1) and perm[0, 2, 1, 0] == 5
    np.testing.assert_array_equal(layers.Reshape((3, 2))(x)[0], [[0, 1], [2, 3], [4, 5]])


@pytest.mark.parametrize("make, exc, message", [
    (lambda: layers.UpSampling2D(0), ValueError, "`size` must be"),
    (lambda: layers.UpSampling2D(interpolation="area"), ValueError, "`interpolation` must"),
    (lambda: layers.ZeroPadding2D(-1), ValueError, "`padding` must be"),
    (lambda: layers.ZeroPadding2D("same"), ValueError, "`padding` must be"),
    (lambda: layers.Cropping2D((1, 2, 3)), ValueError, "`cropping` must be"),
    (lambda: layers.Reshape((-1, -1)), ValueError, "`target_shape` must be"),
    (lambda: layers.Reshape((2, 0)), ValueError, "`target_shape` must be"),
    (lambda: layers.Reshape("ab"), TypeError, "`target_shape` must be"),
    (lambda: layers.Permute((1, 3)), ValueError, "`dims` must be"),
    (lambda: layers.Permute((0, 1)), ValueError, "`dims` must be"),
])
def test_reshaping_bad_arguments(make, exc, message):
    with pytest.raises(exc, match=message):
        make()


@pytest.mark.parametrize("layer, shape, message", [
    (layers.Cropping2D(2), (None, 4, 8, 1), "leaves nothing"),
    (layers.Reshape((5, -1)), (None, 2, 3), "do not fill"),
    (layers.Reshape((5, 2)), (None, 2, 3), "cannot take"),
    (layers.Permute((2, 1)), (None, 2, 3, 4), "permutes 2 axes"),
    (layers.UpSampling2D(), (None, 2, 3), "4-D input"),
])
def test_reshaping_bad_shapes(layer, shape, message):
    with pytest.raises(ValueError, match=message):
        layer.compute_output_shape(shape)


def test_reshaping_layers_train_in_sequential_and_functional_and_save(tmp_path, rng):
    from fastconv import keras

    def build(inputs):
        x = keras.layers.ZeroPadding2D(((1, 0), (0, 1)))(inputs)
        x = keras.layers.UpSampling2D(2, interpolation="bilinear")(x)
        x = keras.layers.Cropping2D(1)(x)
        x = keras.layers.Permute((3, 1, 2))(x)
        x = keras.layers.Reshape((-1,))(x)
        return keras.layers.Dense(2)(x)

    inputs = keras.Input((3, 3, 2))
    functional = keras.Model(inputs, build(inputs))
    sequential = keras.Sequential([keras.Input((3, 3, 2)), keras.layers.UpSampling2D(),
                                   keras.layers.Flatten(), keras.layers.Dense(2)])
    x, y = rng.normal(size=(8, 3, 3, 2)), rng.normal(size=(8, 2))
    for model in (functional, sequential):
        model.compile("sgd", "mse")
        before = model.evaluate(x, y, verbose=0)
        model.fit(x, y, epochs=3, verbose=0)
        assert model.evaluate(x, y, verbose=0) < before
        path = str(tmp_path / f"{model.name}.keras")
        model.save(path)
        again = keras.models.load_model(path)
        np.testing.assert_array_equal(again.predict(x, verbose=0), model.predict(x, verbose=0))


def test_bench_upsampling_rows_run_the_resize_ops():
    from fastconv import bench

    assert [u.name for u in bench.UPSAMPLE_LAYERS] == ["u1n", "u1b", "u2n", "u2b"]
    layer = bench.UpsampleLayer("t", "bilinear", 1, 3, 4, 2)
    fwd, bwd, fwd_bwd, keep = bench.upsample_fns(layer, np.float32)
    out, dx = fwd_bwd()
    assert out.shape == (1, 6, 8, 2) and dx.shape == (1, 3, 4, 2) and keep > 0
    np.testing.assert_array_equal(fwd()[0], out)
    np.testing.assert_array_equal(bwd(), dx)
