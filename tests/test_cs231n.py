"""fastconv.compat.cs231n: the course's layer API on fastconv's kernels.

Checked three ways: against loop-by-loop definitions written here in the course's
(N, C, H, W) layout, against fastconv's NumPy reference transposed to that layout,
and by the course's own gradient check (central differences contracted with dout).
"""

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import fastconv
from fastconv import ops
from fastconv.backends import numpy as ref
from fastconv.compat import cs231n
from fastconv.testing import assert_close, numerical_gradient

BACKENDS = pytest.mark.parametrize("backend", ["cython", "numpy"])
DTYPES = pytest.mark.parametrize("dtype", [np.float32, np.float64])


# ------------------------------------------------------------- loop-by-loop oracles


def conv_loops(x, w, b, stride, pad):
    """out[n, f, i, j] = b[f] + sum(xpad[n, :, window(i, j)] * w[f]), one output at a time."""
    N, C, H, W = x.shape
    F, _, HH, WW = w.shape
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    OH, OW = 1 + (H + 2 * pad - HH) // stride, 1 + (W + 2 * pad - WW) // stride
    out = np.zeros((N, F, OH, OW))
    for n in range(N):
        for f in range(F):
            for i in range(OH):
                for j in range(OW):
                    window = xp[n, :, i * stride:i * stride + HH, j * stride:j * stride + WW]
                    out[n, f, i, j] = np.sum(window * w[f]) + b[f]
    return out


def conv_backward_loops(dout, x, w, stride, pad):
    """Each output scatters dout * w into dx and gathers dout * window into dw."""
    N, C, H, W = x.shape
    F, _, HH, WW = w.shape
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    dxp, dw, db = np.zeros_like(xp), np.zeros(w.shape), np.zeros(F)
    for n in range(N):
        for f in range(F):
            for i in range(dout.shape[2]):
                for j in range(dout.shape[3]):
                    rows = slice(i * stride, i * stride + HH)
                    cols = slice(j * stride, j * stride + WW)
                    dxp[n, :, rows, cols] += w[f] * dout[n, f, i, j]
                    dw[f] += xp[n, :, rows, cols] * dout[n, f, i, j]
                    db[f] += dout[n, f, i, j]
    return dxp[:, :, pad:pad + H, pad:pad + W], dw, db


def pool_loops(x, dout, ph, pw, stride):
    """Max of each window, and dx with each window's dout at its first maximum."""
    N, C, H, W = x.shape
    OH, OW = 1 + (H - ph) // stride, 1 + (W - pw) // stride
    out, dx = np.zeros((N, C, OH, OW)), np.zeros(x.shape)
    for n in range(N):
        for c in range(C):
            for i in range(OH):
                for j in range(OW):
                    window = x[n, c, i * stride:i * stride + ph, j * stride:j * stride + pw]
                    out[n, c, i, j] = window.max()
                    a, bb = np.unravel_index(np.argmax(window), window.shape)
                    dx[n, c, i * stride + a, j * stride + bb] += dout[n, c, i, j]
    return out, dx


def rel_error(x, y):
    """The course's relative error: max |x - y| / max(1e-8, |x| + |y|), element-wise."""
    return np.max(np.abs(x - y) / np.maximum(1e-8, np.abs(x) + np.abs(y)))


# ------------------------------------------------------------------- random problems


@st.composite
def conv_problems(draw):
    """Shapes where the stride tiles the padded input exactly, as the course requires."""
    HH, WW = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    stride, pad = draw(st.integers(1, 3)), draw(st.integers(0, 2))
    OH, OW = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    H, W = (OH - 1) * stride + HH - 2 * pad, (OW - 1) * stride + WW - 2 * pad
    assume(H >= 1 and W >= 1)
    N, C, F = draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    seed = draw(st.integers(0, 2**32 - 1))
    return (N, C, H, W), (F, C, HH, WW), stride, pad, seed


@st.composite
def pool_problems(draw):
    ph, pw, stride = draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    OH, OW = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, 3)),
             (OH - 1) * stride + ph, (OW - 1) * stride + pw)
    return shape, ph, pw, stride, draw(st.integers(0, 2**32 - 1))


SETTINGS = settings(max_examples=25, deadline=None)


# ------------------------------------------------------------------------ conv tests


@BACKENDS
@DTYPES
@SETTINGS
@given(problem=conv_problems())
def test_conv_matches_loops(backend, dtype, problem):
    x_shape, w_shape, stride, pad, seed = problem
    rng = np.random.default_rng(seed)
    x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
    b = rng.standard_normal(w_shape[0])
    param = {"stride": stride, "pad": pad}
    with fastconv.use_backend(backend):
        out, cache = cs231n.conv_forward_fast(x.astype(dtype), w.astype(dtype),
                                              b.astype(dtype), param)
    dout = rng.standard_normal(out.shape)
    dx, dw, db = cs231n.conv_backward_fast(dout.astype(dtype), cache)
    # The oracle sees the same rounded inputs, so only the arithmetic differs.
    x, w, b, dout = (a.astype(dtype) for a in (x, w, b, dout))
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    assert out.dtype == dx.dtype == dw.dtype == db.dtype == dtype
    assert_close(out, conv_loops(x, w, b, stride, pad), rtol=rtol)
    for got, want in zip((dx, dw, db), conv_backward_loops(dout, x, w, stride, pad)):
        assert got.shape == want.shape
        assert_close(got, want, rtol=rtol,
                     scale=np.abs(dout).sum() * max(np.abs(x).max(), np.abs(w).max(), 1))


@DTYPES
@SETTINGS
@given(problem=conv_problems())
def test_conv_matches_transposed_reference(dtype, problem):
    """The compiled path through the wrapper equals the NumPy reference in NHWC."""
    x_shape, w_shape, stride, pad, seed = problem
    rng = np.random.default_rng(seed)
    x, w = rng.standard_normal(x_shape).astype(dtype), rng.standard_normal(w_shape).astype(dtype)
    b = rng.standard_normal(w_shape[0]).astype(dtype)
    out, cache = cs231n.conv_forward_fast(x, w, b, {"stride": stride, "pad": pad})
    dout = rng.standard_normal(out.shape).astype(dtype)
    dx, dw, db = cs231n.conv_backward_fast(dout, cache)

    def reference(x, w, b, dout):
        """The NumPy reference in NHWC, results transposed to the course's layouts."""
        nhwc = ref.conv2d_forward(x.transpose(0, 2, 3, 1), w.transpose(2, 3, 1, 0), b,
                                  stride, pad)
        rdx, rdw, rdb = ref.conv2d_backward(dout.transpose(0, 2, 3, 1), nhwc[1])
        return (nhwc[0].transpose(0, 3, 1, 2), rdx.transpose(0, 3, 1, 2),
                rdw.transpose(3, 2, 0, 1), rdb)

    # Sums that cancel are judged against the same sums of absolute values.
    scales = reference(np.abs(x), np.abs(w), np.abs(b), np.abs(dout))
    for got, want, scale in zip((out, dx, dw, db), reference(x, w, b, dout), scales):
        assert got.shape == want.shape
        assert_close(got, want, scale=scale)


@BACKENDS
@pytest.mark.parametrize("x_shape, w_shape, param", [
    ((2, 2, 7, 7), (3, 2, 3, 3), {"stride": 1, "pad": 1}),
    ((2, 2, 7, 8), (2, 2, 3, 2), {"stride": 2, "pad": 1}),   # non-square kernel
    ((2, 2, 7, 9), (2, 2, 1, 3), {"stride": 3, "pad": 0}),
])
def test_conv_gradient_check(backend, x_shape, w_shape, param):
    """The course's check: numerical gradients, relative error < 1e-8 in float64."""
    rng = np.random.default_rng(7)
    x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
    b = rng.standard_normal(w_shape[0])
    with fastconv.use_backend(backend):
        out, cache = cs231n.conv_forward_naive(x, w, b, param)
        dout = rng.standard_normal(out.shape)
        dx, dw, db = cs231n.conv_backward_naive(dout, cache)

        def f():
            return cs231n.conv_forward_naive(x, w, b, param)[0]

        # The layer is linear in each of x, w and b, so central differences have no
        # truncation error and a large step keeps rounding error far below 1e-8.
        for analytic, variable in ((dx, x), (dw, w), (db, b)):
            assert rel_error(analytic, numerical_gradient(f, variable, dout, 1e-2)) < 1e-8


def test_conv_without_bias_gives_no_db():
    x, w = np.ones((1, 1, 3, 3)), np.ones((2, 1, 3, 3))
    out, cache = cs231n.conv_forward_fast(x, w, None, {"stride": 1, "pad": 0})
    np.testing.assert_array_equal(out, np.full((1, 2, 1, 1), 9.0))
    assert cs231n.conv_backward_fast(np.ones_like(out), cache)[2] is None


def test_conv_by_hand():
    """One 2x2 filter over a 3x3 image with pad 1, stride 3, computed by hand."""
    x = np.arange(9.0).reshape(1, 1, 3, 3)
    w = np.array([[[[1.0, 2.0], [3.0, 4.0]]]])
    out, _ = cs231n.conv_forward_fast(x, w, np.array([0.5]), {"stride": 3, "pad": 1})
    # Windows start at rows/cols -1 and 2 of x; each holds one pixel of x.
    want = np.array([[4 * 0, 3 * 2], [2 * 6, 1 * 8]])
    np.testing.assert_array_equal(out[0, 0], want + 0.5)


# --------------------------------------------------------------------- pooling tests


@BACKENDS
@DTYPES
@SETTINGS
@given(problem=pool_problems())
def test_max_pool_matches_loops(backend, dtype, problem):
    shape, ph, pw, stride, seed = problem
    rng = np.random.default_rng(seed)
    # Few distinct values, so ties are common and the first-maximum rule is exercised.
    x = rng.integers(-2, 3, shape).astype(dtype)
    param = {"pool_height": ph, "pool_width": pw, "stride": stride}
    with fastconv.use_backend(backend):
        out, cache = cs231n.max_pool_forward_fast(x, param)
    dout = rng.standard_normal(out.shape).astype(dtype)
    dx = cs231n.max_pool_backward_fast(dout, cache)
    want_out, want_dx = pool_loops(x, dout, ph, pw, stride)
    assert out.dtype == dx.dtype == dtype
    np.testing.assert_array_equal(out, want_out)
    assert_close(dx, want_dx, rtol=1e-6 if dtype == np.float32 else 1e-15)


@SETTINGS
@given(problem=pool_problems())
def test_max_pool_matches_transposed_reference(problem):
    shape, ph, pw, stride, seed = problem
    x = np.random.default_rng(seed).standard_normal(shape)
    out, cache = cs231n.max_pool_forward_reshape(
        x, {"pool_height": ph, "pool_width": pw, "stride": stride})
    ref_out, ref_cache = ref.maxpool2d_forward(x.transpose(0, 2, 3, 1), (ph, pw), stride)
    np.testing.assert_array_equal(out, ref_out.transpose(0, 3, 1, 2))
    dout = np.random.default_rng(seed + 1).standard_normal(out.shape)
    dx = cs231n.max_pool_backward_reshape(dout, cache)
    want = ref.maxpool2d_backward(dout.transpose(0, 2, 3, 1), ref_cache).transpose(0, 3, 1, 2)
    assert_close(dx, want)


@BACKENDS
def test_max_pool_tie_gives_gradient_to_one_element(backend):
    x = np.zeros((1, 1, 4, 4))
    x[0, 0, 2:, 2:] = [[5.0, 5.0], [5.0, 1.0]]
    param = {"pool_height": 2, "pool_width": 2, "stride": 2}
    with fastconv.use_backend(backend):
        out, cache = cs231n.max_pool_forward_naive(x, param)
        dx = cs231n.max_pool_backward_naive(np.ones_like(out), cache)
    want = np.zeros((4, 4))
    want[0, 0] = want[0, 2] = want[2, 0] = want[2, 2] = 1.0  # first maximum of each window
    np.testing.assert_array_equal(dx[0, 0], want)
    assert dx.sum() == out.size


def test_max_pool_gradient_check():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3, 6, 7))
    param = {"pool_height": 2, "pool_width": 3, "stride": 2}
    out, cache = cs231n.max_pool_forward_im2col(x, param)
    dout = rng.standard_normal(out.shape)
    dx = cs231n.max_pool_backward_im2col(dout, cache)
    num = numerical_gradient(lambda: cs231n.max_pool_forward_im2col(x, param)[0], x, dout, 1e-5)
    assert rel_error(dx, num) < 1e-8


# ------------------------------------------------------------------- composite layers

# ReLU and max pooling are piecewise linear: a step small enough not to cross a kink
# (no pre-activation within 1e-4 of 0 or of its window's runner-up, for these seeds)
# gives exact differences, and large enough to keep rounding error below 1e-8.
STEP = 1e-4


@BACKENDS
def test_conv_relu_pool_gradient_check_and_composition(backend):
    rng = np.random.default_rng(11)
    x, w, b = rng.standard_normal((2, 3, 8, 8)), rng.standard_normal((3, 3, 3, 3)), \
        rng.standard_normal(3)
    conv_param = {"stride": 1, "pad": 1}
    pool_param = {"pool_height": 2, "pool_width": 2, "stride": 2}
    with fastconv.use_backend(backend):
        out, cache = cs231n.conv_relu_pool_forward(x, w, b, conv_param, pool_param)
        conv_out, _ = cs231n.conv_forward_fast(x, w, b, conv_param)
        want, _ = cs231n.max_pool_forward_fast(np.maximum(conv_out, 0), pool_param)
        np.testing.assert_array_equal(out, want)
        assert len(cache) == 3
        dout = rng.standard_normal(out.shape)
        grads = cs231n.conv_relu_pool_backward(dout, cache)

        def f():
            return cs231n.conv_relu_pool_forward(x, w, b, conv_param, pool_param)[0]

        for analytic, variable in zip(grads, (x, w, b)):
            assert rel_error(analytic, numerical_gradient(f, variable, dout, STEP)) < 1e-8


def test_conv_relu_gradient_check_and_composition():
    rng = np.random.default_rng(12)
    x, w, b = rng.standard_normal((2, 2, 5, 6)), rng.standard_normal((3, 2, 3, 2)), \
        rng.standard_normal(3)
    param = {"stride": 1, "pad": 0}
    out, cache = cs231n.conv_relu_forward(x, w, b, param)
    np.testing.assert_array_equal(out, np.maximum(cs231n.conv_forward_fast(x, w, b, param)[0], 0))
    assert len(cache) == 2
    dout = rng.standard_normal(out.shape)
    grads = cs231n.conv_relu_backward(dout, cache)
    for analytic, variable in zip(grads, (x, w, b)):
        num = numerical_gradient(lambda: cs231n.conv_relu_forward(x, w, b, param)[0],
                                 variable, dout, STEP)
        assert rel_error(analytic, num) < 1e-8


# ---------------------------------------------------------------- dtypes and aliases


def test_dtypes_and_layout():
    x = np.ones((1, 2, 4, 4), dtype=np.float32)
    w = np.ones((3, 2, 3, 3))  # float64 weights follow x
    out, cache = cs231n.conv_forward_fast(x, w, np.zeros(3), {"stride": 1, "pad": 1})
    assert out.dtype == np.float32 and out.flags.c_contiguous
    dx, dw, db = cs231n.conv_backward_fast(np.ones(out.shape), cache)
    assert dx.dtype == dw.dtype == db.dtype == np.float32
    assert dx.flags.c_contiguous and dw.flags.c_contiguous
    p, _ = cs231n.max_pool_forward_fast(np.arange(16).reshape(1, 1, 4, 4),
                                        {"pool_height": 2, "pool_width": 2, "stride": 2})
    assert p.dtype == np.float32
    np.testing.assert_array_equal(p[0, 0], [[5, 7], [13, 15]])


def test_non_contiguous_input():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 3, 9, 9))[:, :, ::-1, ::2]
    w = rng.standard_normal((2, 3, 3, 3))
    b = np.zeros(2)
    out, _ = cs231n.conv_forward_fast(x, w, b, {"stride": 1, "pad": 1})
    assert_close(out, conv_loops(np.ascontiguousarray(x), w, b, 1, 1))


def test_cache_is_the_course_tuple():
    x, w, b = np.ones((1, 1, 3, 3)), np.ones((1, 1, 3, 3)), np.zeros(1)
    param = {"stride": 1, "pad": 0}
    _, cache = cs231n.conv_forward_fast(x, w, b, param)
    cx, cw, cb, cparam, _ = cache
    assert cparam is param
    np.testing.assert_array_equal(cx, x)
    np.testing.assert_array_equal(cw, w)


def test_every_name_is_exported():
    for prefix in ("conv", "max_pool"):
        for variant in ("fast", "naive", "im2col", "strides" if prefix == "conv" else "reshape"):
            for direction in ("forward", "backward"):
                name = f"{prefix}_{direction}_{variant}"
                assert name in cs231n.__all__ and callable(getattr(cs231n, name))


def test_backward_runs_on_the_backend_of_the_forward():
    x, w = np.ones((1, 1, 4, 4)), np.ones((1, 1, 3, 3))
    with fastconv.use_backend("numpy"):
        out, cache = cs231n.conv_forward_fast(x, w, np.zeros(1), {"stride": 1, "pad": 0})
    assert cache[-1].backend == "numpy"
    dx, _, _ = cs231n.conv_backward_fast(np.ones_like(out), cache)
    assert_close(dx, ops.conv2d_backward(np.ones((1, 2, 2, 1)), cache[-1])[0].transpose(0, 3, 1, 2))


# ------------------------------------------------------------------------- bad input


X = np.zeros((2, 3, 7, 7))
W = np.zeros((4, 3, 3, 3))
B = np.zeros(4)


def raises(exc, name):
    """The message must name the argument in backticks, as everywhere in fastconv."""
    import re

    return pytest.raises(exc, match=re.escape(f"`{name}`"))


CONV_BAD = [
    ("x 3-D", dict(x=np.zeros((3, 7, 7))), ValueError, "x"),
    ("x complex", dict(x=X.astype(complex)), TypeError, "x"),
    ("w 3-D", dict(w=np.zeros((4, 3, 3))), ValueError, "w"),
    ("channels differ", dict(w=np.zeros((4, 2, 3, 3))), ValueError, "w"),
    ("bias shape", dict(b=np.zeros(3)), ValueError, "b"),
    ("param not a dict", dict(conv_param=[1, 1]), TypeError, "conv_param"),
    ("missing pad", dict(conv_param={"stride": 1}), ValueError, "conv_param"),
    ("missing stride", dict(conv_param={"pad": 1}), ValueError, "conv_param"),
    ("stride 0", dict(conv_param={"stride": 0, "pad": 1}), ValueError, "conv_param['stride']"),
    ("stride float", dict(conv_param={"stride": 1.0, "pad": 1}), TypeError,
     "conv_param['stride']"),
    ("stride does not tile", dict(conv_param={"stride": 4, "pad": 1}), ValueError,
     "conv_param['stride']"),
    ("pad negative", dict(conv_param={"stride": 1, "pad": -1}), ValueError, "conv_param['pad']"),
    ("pad None", dict(conv_param={"stride": 1, "pad": None}), TypeError, "conv_param['pad']"),
]


@pytest.mark.parametrize("label, change, exc, name", CONV_BAD, ids=[c[0] for c in CONV_BAD])
def test_conv_bad_input(label, change, exc, name):
    args = dict(x=X, w=W, b=B, conv_param={"stride": 1, "pad": 1}) | change
    with raises(exc, name):
        cs231n.conv_forward_fast(**args)


def test_missing_key_is_named():
    with pytest.raises(ValueError, match=r"missing: 'pad'"):
        cs231n.conv_forward_fast(X, W, B, {"stride": 1})
    with pytest.raises(ValueError, match=r"missing: 'pool_width', 'stride'"):
        cs231n.max_pool_forward_fast(X, {"pool_height": 2})


def test_window_larger_than_padded_input():
    with pytest.raises(ValueError, match="window must fit"):
        cs231n.conv_forward_fast(np.zeros((1, 3, 2, 2)), W, B, {"stride": 1, "pad": 0})


POOL_BAD = [
    ("x 3-D", dict(x=np.zeros((3, 8, 8))), ValueError, "x"),
    ("not a dict", dict(pool_param=None), TypeError, "pool_param"),
    ("missing stride", dict(pool_param={"pool_height": 2, "pool_width": 2}), ValueError,
     "pool_param"),
    ("height 0", dict(pool_param={"pool_height": 0, "pool_width": 2, "stride": 2}), ValueError,
     "pool_param['pool_height']"),
    ("width too big", dict(pool_param={"pool_height": 2, "pool_width": 9, "stride": 2}),
     ValueError, "pool_param['pool_width']"),
    ("stride does not tile", dict(pool_param={"pool_height": 2, "pool_width": 2, "stride": 4}),
     ValueError, "pool_param['stride']"),
]


@pytest.mark.parametrize("label, change, exc, name", POOL_BAD, ids=[c[0] for c in POOL_BAD])
def test_pool_bad_input(label, change, exc, name):
    args = dict(x=np.zeros((1, 2, 8, 8)), pool_param={"pool_height": 2, "pool_width": 2,
                                                      "stride": 2}) | change
    with raises(exc, name):
        cs231n.max_pool_forward_fast(**args)


def test_composite_checks_pool_param_against_conv_output():
    # 7x7 conv output, 2x2 pool with stride 2 does not tile it.
    with raises(ValueError, "pool_param['stride']"):
        cs231n.conv_relu_pool_forward(X, W, B, {"stride": 1, "pad": 1},
                                      {"pool_height": 2, "pool_width": 2, "stride": 2})


def test_bad_dout_and_cache():
    out, cache = cs231n.conv_forward_fast(X, W, B, {"stride": 1, "pad": 1})
    with raises(ValueError, "dout"):
        cs231n.conv_backward_fast(out.transpose(0, 2, 3, 1), cache)
    with raises(TypeError, "cache"):
        cs231n.conv_backward_fast(out, cache[:4])
    p, pcache = cs231n.max_pool_forward_fast(X[:, :, :6, :6],
                                             {"pool_height": 2, "pool_width": 2, "stride": 2})
    with raises(TypeError, "cache"):
        cs231n.conv_backward_fast(out, pcache)
    with raises(TypeError, "cache"):
        cs231n.max_pool_backward_fast(p, cache)
    with raises(TypeError, "cache"):
        cs231n.conv_relu_pool_backward(p, pcache)
    with raises(ValueError, "dout"):
        cs231n.max_pool_backward_fast(p[:, :, :2], pcache)


@DTYPES
@pytest.mark.parametrize("shape, size", [((3, 4, 8, 6), 2), ((2, 3, 9, 6), 3), ((1, 2, 5, 5), 1),
                                         ((2, 1, 33, 33), 11),
                                         ((2, 3, 10, 18), 2)])  # AVX2: 8 columns + 1
def test_max_pool_planes_path_matches_reference(dtype, shape, size, threads):
    # stride == window: the compiled backend pools NCHW planes where they lie.
    rng = np.random.default_rng(7)
    x = rng.integers(-2, 3, shape).astype(dtype)  # ties everywhere
    x.flat[5] = np.nan
    x.flat[-7] = np.nan
    param = {"pool_height": size, "pool_width": size, "stride": size}
    out, cache = cs231n.max_pool_forward_fast(x, param)
    assert cache[-1].op == "maxpool2d_planes"
    dout = rng.standard_normal(out.shape).astype(dtype)
    dx = cs231n.max_pool_backward_fast(dout, cache)
    with fastconv.use_backend("numpy"):
        want, want_cache = cs231n.max_pool_forward_fast(x, param)
        want_dx = cs231n.max_pool_backward_fast(dout, want_cache)
    assert out.dtype == dx.dtype == dtype
    np.testing.assert_array_equal(out, want)
    np.testing.assert_array_equal(dx, want_dx)
    with pytest.raises(ValueError, match="`dout`"):
        cs231n.max_pool_backward_fast(dout[:, :, :-1], cache)


def test_max_pool_planes_same_bits_on_one_and_two_threads(monkeypatch):
    from fastconv.backends import cython as fast

    monkeypatch.setattr(fast, "_PLANES_PARALLEL_MIN", 0)  # threads even for this size
    x = np.random.default_rng(3).standard_normal((3, 5, 20, 24))
    param = {"pool_height": 2, "pool_width": 2, "stride": 2}
    results = []
    try:
        for n in (1, 2):
            fastconv.set_num_threads(n)
            out, cache = cs231n.max_pool_forward_fast(x, param)
            results.append((out, cs231n.max_pool_backward_fast(np.ones_like(out), cache)))
    finally:
        fastconv.set_num_threads(None)
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)


# ------------------------------------------------------------- layers.py functions


def _num_grad(f, x, dout, h=1e-5):
    """Central differences of sum(f(x) * dout) with respect to x (changed in place).

    The difference f(x + h) - f(x - h) is taken before contracting with dout, as the
    course's gradient check does, so the cancellation stays per element.
    """
    g = np.zeros_like(x)
    it = np.nditer(x, flags=["multi_index"])
    for _ in it:
        i = it.multi_index
        old = x[i]
        x[i] = old + h
        plus = f().copy()
        x[i] = old - h
        minus = f()
        x[i] = old
        g[i] = np.sum((plus - minus) * dout) / (2 * h)
    return g


def _rel_error(a, b):
    """||a - b|| / (||a|| + ||b||): per-element ratios blow up on entries near zero."""
    return np.linalg.norm(a - b) / max(1e-300, np.linalg.norm(a) + np.linalg.norm(b))


def _check_grads(forward, backward, arrays, out_shape, rng):
    dout = rng.standard_normal(out_shape)
    _, cache = forward()
    grads = backward(dout, cache)
    for a, g in zip(arrays, grads):
        assert _rel_error(_num_grad(lambda: forward()[0], a, dout), g) < 1e-8


def test_affine_forward_matches_matmul_and_grads():
    rng = np.random.default_rng(0)
    x, w, b = rng.standard_normal((4, 2, 3)), rng.standard_normal((6, 5)), rng.standard_normal(5)
    out, _ = cs231n.affine_forward(x, w, b)
    assert out.dtype == np.float64
    np.testing.assert_allclose(out, x.reshape(4, 6) @ w + b, rtol=1e-12)
    _check_grads(lambda: cs231n.affine_forward(x, w, b), cs231n.affine_backward,
                 (x, w, b), (4, 5), rng)
    _check_grads(lambda: cs231n.affine_relu_forward(x, w, b), cs231n.affine_relu_backward,
                 (x, w, b), (4, 5), rng)


def test_affine_shape_errors_name_the_argument():
    with pytest.raises(ValueError, match="`w`"):
        cs231n.affine_forward(np.zeros((2, 3)), np.zeros((4, 5)), np.zeros(5))
    with pytest.raises(ValueError, match="`b`"):
        cs231n.affine_forward(np.zeros((2, 3)), np.zeros((3, 5)), np.zeros(4))


def test_relu():
    x = np.array([[-1.0, 0.0, 2.0]])
    out, cache = cs231n.relu_forward(x)
    np.testing.assert_array_equal(out, [[0.0, 0.0, 2.0]])
    np.testing.assert_array_equal(cs231n.relu_backward(np.array([[5.0, 6.0, 7.0]]), cache),
                                  [[0.0, 0.0, 7.0]])


def test_batchnorm_train_test_and_running_stats_by_hand():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((8, 3)) * 2 + 1
    gamma, beta = rng.standard_normal(3), rng.standard_normal(3)
    rm, rv = rng.standard_normal(3), rng.random(3) + 0.5
    bn = {"mode": "train", "eps": 1e-5, "momentum": 0.8, "running_mean": rm.copy(),
          "running_var": rv.copy()}
    out, _ = cs231n.batchnorm_forward(x, gamma, beta, bn)
    mu, var = x.sum(0) / 8, ((x - x.sum(0) / 8) ** 2).sum(0) / 8
    np.testing.assert_allclose(out, gamma * (x - mu) / np.sqrt(var + 1e-5) + beta, rtol=1e-12)
    np.testing.assert_allclose(bn["running_mean"], 0.8 * rm + 0.2 * mu, rtol=1e-12)
    np.testing.assert_allclose(bn["running_var"], 0.8 * rv + 0.2 * var, rtol=1e-12)
    bn["mode"] = "test"
    out, _ = cs231n.batchnorm_forward(x, gamma, beta, bn)
    expect = gamma * (x - bn["running_mean"]) / np.sqrt(bn["running_var"] + 1e-5) + beta
    np.testing.assert_allclose(out, expect, rtol=1e-12)
    with pytest.raises(ValueError, match="bn_param\\['mode'\\]"):
        cs231n.batchnorm_forward(x, gamma, beta, {"mode": "eval"})


@pytest.mark.parametrize("name", ["batchnorm_backward", "batchnorm_backward_alt"])
def test_batchnorm_grads(name):
    rng = np.random.default_rng(2)
    x, gamma, beta = rng.standard_normal((5, 4)), rng.standard_normal(4), rng.standard_normal(4)
    _check_grads(lambda: cs231n.batchnorm_forward(x, gamma, beta, {"mode": "train"}),
                 getattr(cs231n, name), (x, gamma, beta), (5, 4), rng)


def test_layernorm_forward_and_grads():
    rng = np.random.default_rng(3)
    x, gamma, beta = rng.standard_normal((3, 6)), rng.standard_normal(6), rng.standard_normal(6)
    out, _ = cs231n.layernorm_forward(x, gamma, beta, {})
    mu, sd = x.mean(1, keepdims=True), np.sqrt(x.var(1, keepdims=True) + 1e-5)
    np.testing.assert_allclose(out, gamma * (x - mu) / sd + beta, rtol=1e-12)
    _check_grads(lambda: cs231n.layernorm_forward(x, gamma, beta, {}),
                 cs231n.layernorm_backward, (x, gamma, beta), (3, 6), rng)


def test_spatial_batchnorm_forward_and_grads():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 3, 4, 5))
    gamma, beta = rng.standard_normal(3), rng.standard_normal(3)
    out, _ = cs231n.spatial_batchnorm_forward(x, gamma, beta, {"mode": "train"})
    mu = x.mean((0, 2, 3))[None, :, None, None]
    sd = np.sqrt(x.var((0, 2, 3))[None, :, None, None] + 1e-5)
    np.testing.assert_allclose(out, gamma[None, :, None, None] * (x - mu) / sd
                               + beta[None, :, None, None], rtol=1e-11)
    _check_grads(lambda: cs231n.spatial_batchnorm_forward(x, gamma, beta, {"mode": "train"}),
                 cs231n.spatial_batchnorm_backward, (x, gamma, beta), x.shape, rng)


def test_spatial_groupnorm_forward_and_grads():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 6, 3, 2))
    gamma, beta = rng.standard_normal((1, 6, 1, 1)), rng.standard_normal((1, 6, 1, 1))
    out, _ = cs231n.spatial_groupnorm_forward(x, gamma, beta, 3, {"eps": 1e-5})
    g = x.reshape(2, 3, -1)
    xhat = ((g - g.mean(2, keepdims=True)) / np.sqrt(g.var(2, keepdims=True) + 1e-5))
    np.testing.assert_allclose(out, gamma * xhat.reshape(x.shape) + beta, rtol=1e-11)
    _check_grads(lambda: cs231n.spatial_groupnorm_forward(x, gamma, beta, 3, {}),
                 cs231n.spatial_groupnorm_backward, (x, gamma, beta), x.shape, rng)
    with pytest.raises(ValueError, match="`G`"):
        cs231n.spatial_groupnorm_forward(x, gamma, beta, 4, {})


def test_dropout_seed_reproducible_and_inverted():
    x = np.ones((50, 40))
    param = {"p": 0.25, "mode": "train", "seed": 7}
    out1, cache = cs231n.dropout_forward(x, param)
    out2, _ = cs231n.dropout_forward(x, param)
    np.testing.assert_array_equal(out1, out2)
    assert set(np.unique(out1)) == {0.0, 4.0}  # kept units scaled by 1 / p
    assert abs((out1 > 0).mean() - 0.25) < 0.05
    dout = np.arange(x.size, dtype=np.float64).reshape(x.shape)
    np.testing.assert_array_equal(cs231n.dropout_backward(dout, cache), dout * (out1 / 1.0))
    out, cache = cs231n.dropout_forward(x, {"p": 0.25, "mode": "test"})
    np.testing.assert_array_equal(out, x)
    np.testing.assert_array_equal(cs231n.dropout_backward(dout, cache), dout)


@pytest.mark.parametrize("name", ["softmax_loss", "svm_loss"])
def test_losses_against_loops_and_grads(name):
    rng = np.random.default_rng(6)
    x, y = rng.standard_normal((6, 4)), rng.integers(0, 4, 6)
    loss, dx = getattr(cs231n, name)(x, y)
    expect = 0.0
    for i in range(6):
        if name == "softmax_loss":
            expect -= x[i, y[i]] - np.log(np.sum(np.exp(x[i])))
        else:
            expect += sum(max(0.0, x[i, j] - x[i, y[i]] + 1) for j in range(4) if j != y[i])
    assert abs(loss - expect / 6) < 1e-12
    num = _num_grad(lambda: np.array(getattr(cs231n, name)(x, y)[0]), x, 1.0)
    assert _rel_error(num, dx) < 1e-8
    with pytest.raises(ValueError, match="`y`"):
        getattr(cs231n, name)(x, y[:3])


def test_conv_bn_relu_grads():
    rng = np.random.default_rng(7)
    x, w, b = rng.standard_normal((2, 2, 5, 5)), rng.standard_normal((3, 2, 3, 3)), \
        rng.standard_normal(3)
    gamma, beta = rng.standard_normal(3), rng.standard_normal(3)
    conv = {"stride": 1, "pad": 1}

    def forward():
        return cs231n.conv_bn_relu_forward(x, w, b, gamma, beta, conv, {"mode": "train"})

    dout = rng.standard_normal((2, 3, 5, 5))
    grads = cs231n.conv_bn_relu_backward(dout, forward()[1])
    for a, g in zip((x, w, gamma, beta), grads[:2] + grads[3:]):
        assert _rel_error(_num_grad(lambda: forward()[0], a, dout), g) < 1e-8
