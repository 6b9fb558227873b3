"""Bad input: a clear ValueError/TypeError naming the argument, in both backends."""

import numpy as np
import pytest

from fastconv import ops
from fastconv.backends import cython as fast
from fastconv.backends import numpy as ref

BACKENDS = pytest.mark.parametrize("be", [ref, fast], ids=["numpy", "cython"])

X = np.zeros((2, 8, 8, 3), dtype=np.float32)
W = np.zeros((3, 3, 3, 4), dtype=np.float32)


def raises(exc, *names):
    """pytest.raises whose message must mention every name in backticks."""
    return pytest.raises(exc, match="".join(f"(?=.*`{n}`)" for n in names))


CONV_BAD = [
    ("x ndim", dict(x=np.zeros((8, 8, 3))), ValueError, "x"),
    ("w ndim", dict(w=np.zeros((3, 3, 3))), ValueError, "w"),
    ("C_in", dict(w=np.zeros((3, 3, 2, 4))), ValueError, "w"),
    ("bias shape", dict(b=np.zeros(5)), ValueError, "b"),
    ("bias 2-D", dict(b=np.zeros((1, 4))), ValueError, "b"),
    ("stride 0", dict(stride=0), ValueError, "stride"),
    ("stride negative pair", dict(stride=(1, -1)), ValueError, "stride"),
    ("stride float", dict(stride=1.5), TypeError, "stride"),
    ("stride triple", dict(stride=(1, 1, 1)), ValueError, "stride"),
    ("dilation 0", dict(dilation=0), ValueError, "dilation"),
    ("negative padding", dict(padding=-1), ValueError, "padding"),
    ("negative padding pair", dict(padding=((0, -1), (0, 0))), ValueError, "padding"),
    ("padding string", dict(padding="full"), ValueError, "padding"),
    ("padding object", dict(padding=object()), ValueError, "padding"),
    ("float16 x", dict(x=X.astype(np.float16)), TypeError, "x"),
    ("complex x", dict(x=X.astype(np.complex64)), TypeError, "x"),
    ("object x", dict(x=np.empty((1, 3, 3, 3), dtype=object)), TypeError, "x"),
    ("string w", dict(w=np.full((3, 3, 3, 4), "a")), TypeError, "w"),
    ("None x", dict(x=None), TypeError, "x"),
    ("zero filters", dict(w=np.zeros((3, 3, 3, 0))), ValueError, "w"),
]


@BACKENDS
@pytest.mark.parametrize("label, change, exc, name", CONV_BAD, ids=[c[0] for c in CONV_BAD])
def test_conv_forward_bad_arguments(be, label, change, exc, name):
    args = dict(x=X, w=W, b=None, stride=1, padding=0, dilation=1) | change
    with raises(exc, name):
        be.conv2d_forward(**args)


@BACKENDS
@pytest.mark.parametrize("kw", [dict(), dict(dilation=4), dict(padding="valid", stride=3)])
def test_window_larger_than_padded_input(be, kw):
    with pytest.raises(ValueError, match=r"(?=.*window must fit)(?=.*\bx\b)(?=.*\bw\b)"):
        be.conv2d_forward(np.zeros((1, 2, 9, 3)), W, **kw)


@BACKENDS
def test_dout_of_the_wrong_shape(be):
    out, cache = be.conv2d_forward(X, W)
    with raises(ValueError, "dout"):
        be.conv2d_backward(out[:, :-1], cache)
    p, pcache = be.maxpool2d_forward(X, 2)
    with raises(ValueError, "dout"):
        be.maxpool2d_backward(np.zeros((2, 4, 4, 2)), pcache)
    with raises(TypeError, "dout"):
        be.maxpool2d_backward(p.astype(np.complex128), pcache)


@BACKENDS
def test_cache_from_another_op(be):
    _, pool_cache = be.maxpool2d_forward(X, 2)
    _, conv_cache = be.conv2d_forward(X, W)
    with raises(ValueError, "cache"):
        be.conv2d_backward(np.zeros((2, 6, 6, 4)), pool_cache)
    with raises(ValueError, "cache"):
        be.avgpool2d_backward(np.zeros((2, 4, 4, 3)), pool_cache)
    with raises(ValueError, "cache"):
        be.relu_backward(X, conv_cache)
    with raises(TypeError, "cache"):
        be.conv2d_backward(np.zeros((2, 6, 6, 4)), {"x": X})


def test_cache_from_another_backend():
    _, cache = ref.conv2d_forward(X, W)
    with raises(ValueError, "cache"):
        fast.conv2d_backward(np.zeros((2, 6, 6, 4)), cache)
    # fastconv.ops dispatches on the cache, so this works.
    dx, dw, db = ops.conv2d_backward(np.zeros((2, 6, 6, 4)), cache)
    assert dx.shape == X.shape


POOL_BAD = [
    ("x ndim", dict(x=np.zeros((8, 8))), ValueError, "x"),
    ("pool_size 0", dict(pool_size=0), ValueError, "pool_size"),
    ("strides 0", dict(strides=(0, 1)), ValueError, "strides"),
    ("padding", dict(padding="full"), ValueError, "padding"),
    ("padding int", dict(padding=1), ValueError, "padding"),
    ("float16", dict(x=X.astype(np.float16)), TypeError, "x"),
]


@BACKENDS
@pytest.mark.parametrize("op", ["maxpool2d_forward", "avgpool2d_forward"])
@pytest.mark.parametrize("label, change, exc, name", POOL_BAD, ids=[c[0] for c in POOL_BAD])
def test_pool_bad_arguments(be, op, label, change, exc, name):
    args = dict(x=X, pool_size=2, strides=None, padding="valid") | change
    with raises(exc, name):
        getattr(be, op)(**args)


@BACKENDS
def test_pool_window_larger_than_input(be):
    with pytest.raises(ValueError, match=r"(?=.*window must fit)(?=.*\bx\b)(?=.*pool_size)"):
        be.maxpool2d_forward(np.zeros((1, 2, 9, 3)), 3)
    # 'same' pads instead, as Keras does.
    out, _ = be.maxpool2d_forward(np.zeros((1, 2, 9, 3)), 3, padding="same")
    assert out.shape == (1, 1, 3, 3)


@BACKENDS
def test_relu_rejects_float16(be):
    with raises(TypeError, "x"):
        be.relu_forward(np.zeros(3, dtype=np.float16))


@BACKENDS
@pytest.mark.parametrize("pool_size, exc", [(7, ValueError), ((2, 0), ValueError),
                                            (1.5, TypeError), ((7, 2), ValueError)])
def test_conv_relu_maxpool_bad_pool_size(be, pool_size, exc):
    # The 3x3 'valid' convolution of an 8x8 image has a 6x6 output.
    with raises(exc, "pool_size"):
        be.conv2d_relu_maxpool_forward(X, W, pool_size=pool_size)


@BACKENDS
def test_conv_relu_maxpool_wrong_cache_and_dout(be):
    out, cache = be.conv2d_relu_maxpool_forward(X, W, pool_size=2)
    assert out.shape == (2, 3, 3, 4)
    with raises(ValueError, "cache"):
        be.conv2d_relu_maxpool_backward(out, be.conv2d_relu_forward(X, W)[1])
    with raises(ValueError, "dout"):
        be.conv2d_relu_maxpool_backward(np.zeros((2, 6, 6, 4), np.float32), cache)


@pytest.mark.parametrize("be", [fast, ref], ids=["cython", "numpy"])
def test_matmul_bad_input(be):
    a, b = np.ones((3, 4), np.float32), np.ones((4, 2), np.float32)
    with pytest.raises(ValueError, match=r"`a` must be a 2-D array"):
        be.matmul(np.ones(4), b)
    with pytest.raises(ValueError, match=r"`b` must be a 2-D array"):
        be.matmul(a, np.ones((4, 2, 1)))
    with pytest.raises(ValueError, match="reduction axis.*a with shape \\(3, 4\\), b with shape "
                                         "\\(3, 2\\)"):
        be.matmul(a, np.ones((3, 2)))
    with pytest.raises(TypeError, match="`b` must be an array of float32 or float64"):
        be.matmul(a, np.ones((4, 2), np.complex64))
    with pytest.raises(ValueError, match="`out` must be a writeable float32 or float64 array "
                                         "of shape \\(3, 2\\)"):
        be.matmul(a, b, out=np.empty((2, 3), np.float32))
    with pytest.raises(TypeError, match="`out` must be a NumPy array"):
        be.matmul(a, b, out=[[0.0] * 2] * 3)
