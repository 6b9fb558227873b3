"""The NumPy reference against hand-computed results, loop oracles and numerical gradients."""

import numpy as np
import pytest
from hypothesis import given, settings

from fastconv.backends import numpy as ref
from fastconv.testing import numerical_gradient, relative_error

from . import naive
from .strategies import conv_cases, pool_cases


def image(a):
    """A 2-D list as one grayscale image, shape (1, H, W, 1), float64."""
    return np.asarray(a, dtype=np.float64)[None, :, :, None]


def kernel(k):
    """A 2-D list as one single-channel filter, shape (KH, KW, 1, 1)."""
    return np.asarray(k, dtype=np.float64)[:, :, None, None]


# ------------------------------------------------------------ hand-computed cases

def test_sliding_dot_product_by_hand():
    x = image([[1, 2, 3, 0], [0, 1, 2, 3], [3, 0, 1, 2], [2, 3, 0, 1]])
    w = kernel([[2, 0, 1], [0, 1, 2], [1, 0, 2]])
    out, _ = ref.conv2d_forward(x, w, np.array([3.0]))
    np.testing.assert_array_equal(out[0, :, :, 0], [[18, 19], [9, 18]])


SMILEY = [
    [0, 0, 0, 0, 0, 0, 0],
    [0, 1, 0, 0, 0, 1, 0],
    [0, 1, 0, 0, 0, 1, 0],
    [0, 0, 0, 0, 0, 0, 0],
    [1, 0, 0, 0, 0, 0, 1],
    [0, 1, 1, 1, 1, 1, 0],
    [0, 0, 0, 0, 0, 0, 0],
]


def test_smiley_feature_detector_fires_on_the_eyes():
    # A detector of two vertically stacked pixels: out[i, j] = x[i, j+1] + x[i+1, j+1].
    out, _ = ref.conv2d_forward(image(SMILEY), kernel([[0, 1, 0], [0, 1, 0], [0, 0, 0]]))
    expected = [[1, 0, 0, 0, 1],
                [2, 0, 0, 0, 2],
                [1, 0, 0, 0, 1],
                [0, 0, 0, 0, 0],
                [1, 1, 1, 1, 1]]
    np.testing.assert_array_equal(out[0, :, :, 0], expected)
    assert np.argwhere(out[0, :, :, 0] == 2).tolist() == [[1, 0], [1, 4]]


RAMP = [[1, 2, 3], [4, 5, 6], [7, 8, 9]]


@pytest.mark.parametrize("name, k, expected", [
    ("sharpen", [[0, -1, 0], [-1, 5, -1], [0, -1, 0]], 25 - (2 + 4 + 6 + 8)),
    ("blur", np.full((3, 3), 1 / 9), 5.0),
    ("edge", [[0, 1, 0], [1, -4, 1], [0, 1, 0]], 0.0),  # a linear ramp has no curvature
    ("emboss", [[-2, -1, 0], [-1, 1, 1], [0, 1, 2]], -2 - 2 - 4 + 5 + 6 + 8 + 18),
])
def test_classic_filters_by_hand(name, k, expected):
    out, _ = ref.conv2d_forward(image(RAMP), kernel(k))
    assert out.shape == (1, 1, 1, 1)
    assert out[0, 0, 0, 0] == pytest.approx(expected)


def test_sharpen_same_padding_by_hand():
    out, _ = ref.conv2d_forward(image(RAMP), kernel([[0, -1, 0], [-1, 5, -1], [0, -1, 0]]),
                                padding="same")
    np.testing.assert_array_equal(out[0, :, :, 0], [[-1, 1, 7], [7, 5, 13], [23, 19, 31]])


@pytest.mark.parametrize("name, k", [
    ("blur", np.full((3, 3), 1 / 9)),
    ("sharpen", [[0, -1, 0], [-1, 5, -1], [0, -1, 0]]),
    ("emboss", [[-2, -1, 0], [-1, 1, 1], [0, 1, 2]]),
    ("edge", [[0, 1, 0], [1, -4, 1], [0, 1, 0]]),
])
def test_constant_image(name, k):
    out, _ = ref.conv2d_forward(np.full((1, 6, 5, 1), 7.0), kernel(k))
    expected = 0.0 if name == "edge" else 7.0  # all but the Laplacian sum to 1
    np.testing.assert_allclose(out, expected, atol=1e-12)


@pytest.mark.parametrize("size, k, pad, stride, dil, expected", [
    (32, 5, 2, 1, 1, 32),    # the lecture's ((W - F + 2P) / S) + 1
    (7, 3, 0, 2, 1, 3),
    (7, 3, 1, 2, 1, 4),
    (227, 11, 0, 4, 1, 55),  # AlexNet's first layer
    (10, 3, 0, 1, 2, 6),     # dilation 2: effective window 5
    (8, 3, 0, 3, 1, 2),      # floor: the last column does not fit a window
])
def test_output_size_formula(size, k, pad, stride, dil, expected):
    out, _ = ref.conv2d_forward(np.zeros((1, size, size, 1)), np.zeros((k, k, 1, 1)),
                                stride=stride, padding=pad, dilation=dil)
    assert out.shape == (1, expected, expected, 1)


@pytest.mark.parametrize("size, stride, pads", [
    (5, 2, (1, 1)),
    (6, 2, (0, 1)),  # odd total padding: the extra row goes to the bottom (TensorFlow)
    (7, 1, (1, 1)),
    (4, 3, (1, 1)),
    (8, 3, (0, 1)),
])
def test_same_padding_is_tensorflows(size, stride, pads, rng):
    x = rng.standard_normal((1, size, size, 2))
    w = rng.standard_normal((3, 3, 2, 2))
    same, _ = ref.conv2d_forward(x, w, stride=stride, padding="same")
    explicit, _ = ref.conv2d_forward(x, w, stride=stride, padding=(pads, pads))
    assert same.shape[1] == -(-size // stride)
    np.testing.assert_array_equal(same, explicit)


def test_pooling_by_hand():
    x = image([[1, 3, 2, 0], [4, 2, 1, 5], [0, 0, 7, 1], [2, 6, 1, 1]])
    out, _ = ref.maxpool2d_forward(x, 2)
    np.testing.assert_array_equal(out[0, :, :, 0], [[4, 5], [6, 7]])
    out, _ = ref.avgpool2d_forward(x, 2)
    np.testing.assert_array_equal(out[0, :, :, 0], [[2.5, 2], [2, 2.5]])
    # 'same' on 3x3 with a 2x2 window: the bottom/right windows hold fewer elements.
    out, _ = ref.avgpool2d_forward(image(RAMP), 2, padding="same")
    np.testing.assert_array_equal(out[0, :, :, 0], [[3, 4.5], [7.5, 9]])


def test_maxpool_ties_go_to_the_first_in_window_order():
    x = image([[1, 5], [5, 5]])
    out, cache = ref.maxpool2d_forward(x, 2)
    dx = ref.maxpool2d_backward(np.ones_like(out), cache)
    np.testing.assert_array_equal(dx[0, :, :, 0], [[0, 1], [0, 0]])


def test_maxpool_nan_wins_and_propagates():
    x = image([[1, np.nan], [np.nan, 2]])
    out, cache = ref.maxpool2d_forward(x, 2)
    assert np.isnan(out).all()
    dx = ref.maxpool2d_backward(np.ones_like(out), cache)
    np.testing.assert_array_equal(dx[0, :, :, 0], [[0, 1], [0, 0]])


# ------------------------------------------------------------ against loop oracles

@settings(max_examples=40, deadline=None)
@given(conv_cases(max_size=7))
def test_conv_matches_loops(case):
    x, w, b, stride, padding, dilation = case.arrays(np.float64)
    out, cache = ref.conv2d_forward(x, w, b, stride, padding, dilation)
    g = cache.geom
    expected = naive.conv2d(x, w, b, (g.sh, g.sw), (g.pt, g.pb, g.pl, g.pr), (g.dh, g.dw))
    assert relative_error(out, expected) < 1e-13


@settings(max_examples=40, deadline=None)
@given(pool_cases(max_size=7))
def test_pooling_matches_loops(case):
    x = case.array(np.float64)
    for fwd, reduce in ((ref.maxpool2d_forward, max), (ref.avgpool2d_forward, np.mean)):
        out, cache = fwd(x, case.pool_size, case.strides, case.padding)
        g = cache.geom
        expected = naive.pool2d(x, (g.PH, g.PW), (g.sh, g.sw), (g.pt, g.pb, g.pl, g.pr), reduce)
        assert relative_error(out, expected) < 1e-13


# ------------------------------------------------------------ numerical gradients

GRAD_CASES = [
    dict(x=(2, 5, 6, 3), w=(3, 3, 3, 2), stride=1, padding=0, dilation=1),
    dict(x=(1, 7, 6, 2), w=(2, 3, 2, 3), stride=(2, 1), padding="same", dilation=1),
    dict(x=(2, 8, 7, 1), w=(3, 2, 1, 2), stride=2, padding=((1, 2), (0, 1)), dilation=(2, 1)),
    dict(x=(1, 4, 4, 2), w=(3, 3, 2, 1), stride=3, padding=2, dilation=1),
]


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("case", GRAD_CASES, ids=lambda c: str(c["x"]) + str(c["w"]))
def test_conv_gradients_numerically(case, bias, rng):
    x = rng.standard_normal(case["x"])
    w = rng.standard_normal(case["w"])
    b = rng.standard_normal(case["w"][-1]) if bias else None
    args = (case["stride"], case["padding"], case["dilation"])
    out, cache = ref.conv2d_forward(x, w, b, *args)
    dout = rng.standard_normal(out.shape)
    dx, dw, db = ref.conv2d_backward(dout, cache)

    def f():
        return ref.conv2d_forward(x, w, b, *args)[0]

    assert relative_error(dx, numerical_gradient(f, x, dout)) < 1e-7
    assert relative_error(dw, numerical_gradient(f, w, dout)) < 1e-7
    if bias:
        assert relative_error(db, numerical_gradient(f, b, dout)) < 1e-7
    else:
        assert db is None


@pytest.mark.parametrize("pool_size, strides, padding", [
    (2, None, "valid"), (3, 2, "same"), ((2, 3), 1, "valid"), ((3, 2), (1, 2), "same"),
])
@pytest.mark.parametrize("op", ["maxpool2d", "avgpool2d"])
def test_pool_gradients_numerically(op, pool_size, strides, padding, rng):
    fwd, bwd = getattr(ref, op + "_forward"), getattr(ref, op + "_backward")
    x = rng.standard_normal((2, 6, 7, 3))
    out, cache = fwd(x, pool_size, strides, padding)
    dout = rng.standard_normal(out.shape)
    dx = bwd(dout, cache)
    num = numerical_gradient(lambda: fwd(x, pool_size, strides, padding)[0], x, dout)
    assert relative_error(dx, num) < 1e-7


def test_relu_gradient_numerically(rng):
    x = rng.standard_normal((3, 4, 5, 2))
    out, cache = ref.relu_forward(x)
    dout = rng.standard_normal(out.shape)
    num = numerical_gradient(lambda: ref.relu_forward(x)[0], x, dout)
    assert relative_error(ref.relu_backward(dout, cache), num) < 1e-7


@pytest.mark.parametrize("dtype", [np.int32, np.uint8, np.int64, bool])
def test_integer_input_becomes_float32(dtype):
    out, _ = ref.conv2d_forward(np.ones((1, 3, 3, 1), dtype=dtype), np.ones((3, 3, 1, 1)))
    assert out.dtype == np.float32 and out[0, 0, 0, 0] == 9


def test_batch_of_zero_images():
    out, cache = ref.conv2d_forward(np.zeros((0, 5, 5, 2)), np.ones((3, 3, 2, 4)))
    assert out.shape == (0, 3, 3, 4)
    dx, dw, db = ref.conv2d_backward(out, cache)
    assert dx.shape == (0, 5, 5, 2) and not dw.any() and db is None


def test_conv_relu_gradients_numerically(rng):
    x = rng.standard_normal((2, 6, 5, 2))
    w = rng.standard_normal((3, 2, 2, 3))
    b = rng.standard_normal(3)
    out, cache = ref.conv2d_relu_forward(x, w, b, 1, "same")
    np.testing.assert_array_equal(out, np.maximum(ref.conv2d_forward(x, w, b, 1, "same")[0], 0))
    dout = rng.standard_normal(out.shape)
    dx, dw, db = ref.conv2d_relu_backward(dout, cache)

    def f():
        return ref.conv2d_relu_forward(x, w, b, 1, "same")[0]

    for got, arr in ((dx, x), (dw, w), (db, b)):
        assert relative_error(got, numerical_gradient(f, arr, dout)) < 1e-6


def test_conv_relu_maxpool_gradients_numerically(rng):
    x = rng.standard_normal((2, 7, 6, 2))
    w = rng.standard_normal((2, 2, 2, 3))
    b = rng.standard_normal(3)
    args = (1, "valid", 1)
    out, cache = ref.conv2d_relu_maxpool_forward(x, w, b, *args, pool_size=(2, 3))
    z = np.maximum(ref.conv2d_forward(x, w, b, *args)[0], 0)  # (2, 6, 5, 3)
    # By hand: the maximum of each 2x3 window; column 4 of z is in no window.
    want = z[:, :, :3].reshape(2, 3, 2, 1, 3, 3).max(axis=(2, 4))
    np.testing.assert_array_equal(out, want)
    dout = rng.standard_normal(out.shape)
    dx, dw, db = ref.conv2d_relu_maxpool_backward(dout, cache)

    def f():
        return ref.conv2d_relu_maxpool_forward(x, w, b, *args, pool_size=(2, 3))[0]

    for got, arr in ((dx, x), (dw, w), (db, b)):
        assert relative_error(got, numerical_gradient(f, arr, dout)) < 1e-6
