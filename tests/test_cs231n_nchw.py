"""The course-layout convolution kernels (src/_nchw.*) behind fastconv.compat.cs231n.

Each test runs on the compiled backend and first checks that the course-layout kernels
took the call (the kernel cache's op), so that it tests them and not the channels-last
path. Expected values come from fastconv's NumPy reference in NHWC, transposed to the
course's layouts, or from central differences.
"""

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import fastconv
from fastconv import _nchw
from fastconv.backends import numpy as ref
from fastconv.compat import cs231n
from fastconv.testing import assert_close, numerical_gradient

pytestmark = pytest.mark.skipif(_nchw.isa() == 0, reason="the kernels need AVX2 + FMA")

DTYPES = pytest.mark.parametrize("dtype", [np.float32, np.float64])


@pytest.fixture(autouse=True)
def every_reduction_on_the_kernels(monkeypatch):
    """These tests are about the kernels: float32 takes them at every K here (the
    rule that sends long float32 reductions elsewhere has its own test below)."""
    from fastconv.backends import cython as fast

    monkeypatch.setattr(fast, "NCHW_FLOAT32_MAX_K", 10**9)


def reference(x, w, b, dout, stride, pad):
    """The NumPy reference in NHWC, results in the course's layouts: out, dx, dw, db."""
    out, cache = ref.conv2d_forward(x.transpose(0, 2, 3, 1), w.transpose(2, 3, 1, 0), b,
                                    stride, pad)
    dx, dw, db = ref.conv2d_backward(dout.transpose(0, 2, 3, 1), cache)
    return out.transpose(0, 3, 1, 2), dx.transpose(0, 3, 1, 2), dw.transpose(3, 2, 0, 1), db


def run(x, w, b, dout, stride, pad, threads=None):
    """Forward and backward through the wrapper on ``threads`` threads."""
    fastconv.set_num_threads(threads)
    try:
        out, cache = cs231n.conv_forward_fast(x, w, b, {"stride": stride, "pad": pad})
        assert cache[-1].op == "conv2d_nchw"
        return (out,) + tuple(cs231n.conv_backward_fast(dout, cache))
    finally:
        fastconv.set_num_threads(None)


@st.composite
def problems(draw):
    """Shapes across the kernels' blocks: filters and taps around the 6-row register
    blocks, output positions around the 8/16-lane vectors and 4-vector panels, and
    reductions long enough for several position tiles."""
    HH, WW = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    stride, pad = draw(st.integers(1, 3)), draw(st.integers(0, 3))
    OH, OW = draw(st.integers(1, 18)), draw(st.integers(1, 18))
    H, W = (OH - 1) * stride + HH - 2 * pad, (OW - 1) * stride + WW - 2 * pad
    assume(H >= 1 and W >= 1)
    N = draw(st.integers(1, 20))
    C = draw(st.sampled_from([1, 2, 3, 5, 8, 24]))
    F = draw(st.sampled_from([1, 3, 6, 7, 13, 25, 33]))
    return (N, C, H, W), (F, C, HH, WW), stride, pad, draw(st.integers(0, 2**32 - 1))


def arrays(problem, dtype):
    x_shape, w_shape, stride, pad, seed = problem
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal(w_shape).astype(dtype)
    b = rng.standard_normal(w_shape[0]).astype(dtype)
    N, _, H, W = x_shape
    OH, OW = (H + 2 * pad - w_shape[2]) // stride + 1, (W + 2 * pad - w_shape[3]) // stride + 1
    dout = rng.standard_normal((N, w_shape[0], OH, OW)).astype(dtype)
    return x, w, b, dout


@DTYPES
@settings(max_examples=40, deadline=None)
@given(problem=problems())
def test_matches_reference_and_threads_give_the_same_bits(dtype, problem):
    x, w, b, dout = arrays(problem, dtype)
    stride, pad = problem[2], problem[3]
    one = run(x, w, b, dout, stride, pad, threads=1)
    two = run(x, w, b, dout, stride, pad, threads=2)
    # Sums that cancel are judged against the same sums of absolute values.
    scales = reference(np.abs(x), np.abs(w), np.abs(b), np.abs(dout), stride, pad)
    for got, want, scale in zip(one, reference(x, w, b, dout, stride, pad), scales):
        assert got.dtype == dtype and got.shape == want.shape
        assert_close(got, want, scale=scale)
    for a, c in zip(one, two):
        np.testing.assert_array_equal(a, c)


@pytest.mark.parametrize("x_shape, w_shape, stride, pad", [
    ((3, 24, 27, 27), (13, 24, 3, 3), 2, 1),    # K = 216: 64-position tiles, last partial
    ((2, 8, 30, 17), (7, 8, 5, 4), 1, 2),       # K = 160, 30 x 18 positions
])
@DTYPES
def test_several_tiles_per_image(x_shape, w_shape, stride, pad, dtype):
    from fastconv.backends import cython as fast

    k = w_shape[1] * w_shape[2] * w_shape[3]
    oh = (x_shape[2] + 2 * pad - w_shape[2]) // stride + 1
    ow = (x_shape[3] + 2 * pad - w_shape[3]) // stride + 1
    assert fast._nchw_tile(k, oh * ow) < oh * ow  # the case this test is for
    x, w, b, dout = arrays((x_shape, w_shape, stride, pad, 5), dtype)
    got = run(x, w, b, dout, stride, pad)
    scales = reference(np.abs(x), np.abs(w), np.abs(b), np.abs(dout), stride, pad)
    for g, want, scale in zip(got, reference(x, w, b, dout, stride, pad), scales):
        assert_close(g, want, scale=scale)


@pytest.mark.skipif(_nchw.isa() < 2, reason="compares the AVX-512 copy with the AVX2 one")
@DTYPES
def test_avx2_and_avx512_copies_give_the_same_bits(dtype):
    x, w, b, dout = arrays(((5, 3, 31, 29), (25, 3, 3, 3), 2, 1, 9), dtype)
    results = []
    try:
        for level in (2, 1):
            assert _nchw.set_isa(level) == level
            results.append(run(x, w, b, dout, 2, 1))
    finally:
        _nchw.set_isa(2)
    for a, c in zip(*results):
        np.testing.assert_array_equal(a, c)


def rel_error(x, y):
    """The course's relative error: max |x - y| / max(1e-8, |x| + |y|), element-wise."""
    return np.max(np.abs(x - y) / np.maximum(1e-8, np.abs(x) + np.abs(y)))


@pytest.mark.parametrize("x_shape, w_shape, param", [
    ((3, 3, 9, 8), (7, 3, 3, 2), {"stride": 2, "pad": 1}),
    ((2, 2, 6, 11), (9, 2, 2, 5), {"stride": 1, "pad": 2}),
    ((2, 1, 10, 10), (4, 1, 4, 4), {"stride": 3, "pad": 0}),
])
def test_gradient_check(x_shape, w_shape, param):
    """The course's check: central differences contracted with dout, float64."""
    rng = np.random.default_rng(17)
    x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
    b = rng.standard_normal(w_shape[0])
    out, cache = cs231n.conv_forward_fast(x, w, b, param)
    assert cache[-1].op == "conv2d_nchw"
    dout = rng.standard_normal(out.shape)
    grads = cs231n.conv_backward_fast(dout, cache)

    def f():
        return cs231n.conv_forward_fast(x, w, b, param)[0]

    # Linear in each of x, w and b: central differences have no truncation error.
    for analytic, variable in zip(grads, (x, w, b)):
        assert rel_error(analytic, numerical_gradient(f, variable, dout, 1e-2)) < 1e-8


def test_without_bias():
    x, w, _, dout = arrays(((2, 3, 8, 8), (5, 3, 3, 3), 1, 1, 3), np.float64)
    out, cache = cs231n.conv_forward_fast(x, w, None, {"stride": 1, "pad": 1})
    assert cache[-1].op == "conv2d_nchw"
    dx, dw, db = cs231n.conv_backward_fast(dout, cache)
    assert db is None
    want = reference(x, w, None, dout, 1, 1)
    for got, exp in zip((out, dx, dw), want[:3]):
        assert_close(got, exp)


@pytest.mark.filterwarnings("ignore:invalid value encountered")
def test_infinite_weight_meets_the_padding_as_in_the_reference():
    """inf * 0 (a padded tap) is NaN in the reference; the kernels multiply the
    padding's zeros too."""
    x, w, b, dout = arrays(((1, 2, 5, 5), (3, 2, 3, 3), 1, 1, 4), np.float64)
    w[1, 0, 0, 0] = np.inf
    got = run(x, w, b, dout, 1, 1)
    want = reference(x, w, b, dout, 1, 1)
    assert np.isnan(want[0]).any() and np.isinf(want[0]).any()  # the case tested
    for g, exp in zip(got, want):
        np.testing.assert_array_equal(np.isnan(g), np.isnan(exp))
        np.testing.assert_array_equal(np.isinf(g), np.isinf(exp))


def test_composites_run_on_the_course_layouts():
    rng = np.random.default_rng(8)
    x, w, b = rng.standard_normal((4, 3, 8, 8)), rng.standard_normal((6, 3, 3, 3)), \
        rng.standard_normal(6)
    conv_param = {"stride": 1, "pad": 1}
    pool_param = {"pool_height": 2, "pool_width": 2, "stride": 2}
    out, cache = cs231n.conv_relu_pool_forward(x, w, b, conv_param, pool_param)
    assert cache[0][-1].op == "conv2d_nchw"
    a, _ = ref.conv2d_forward(x.transpose(0, 2, 3, 1), w.transpose(2, 3, 1, 0), b, 1, 1)
    p, _ = ref.maxpool2d_forward(np.maximum(a, 0), 2, 2)
    assert_close(out, p.transpose(0, 3, 1, 2))
    out, cache = cs231n.conv_relu_forward(x, w, b, conv_param)
    assert cache[0][-1].op == "conv2d_nchw"
    assert_close(out, np.maximum(a, 0).transpose(0, 3, 1, 2))


def test_long_float32_reductions_keep_the_channels_last_kernels(monkeypatch):
    from fastconv.backends import cython as fast

    monkeypatch.setattr(fast, "NCHW_FLOAT32_MAX_K", 147)
    for w_shape, dtype, op in [((4, 3, 7, 7), np.float32, "conv2d_nchw"),     # K = 147
                               ((4, 4, 7, 7), np.float32, "conv2d"),          # K = 196
                               ((4, 4, 7, 7), np.float64, "conv2d_nchw")]:
        xx = np.zeros((2, w_shape[1], 9, 9), dtype=dtype)
        _, cache = cs231n.conv_forward_fast(xx, np.zeros(w_shape, dtype), None,
                                            {"stride": 1, "pad": 3})
        assert cache[-1].op == op, (w_shape, dtype)


def test_kernel_refuses_sizes_that_do_not_agree():
    """The Cython entry checks the sizes against each other before running."""
    x = np.zeros((2, 3, 8, 8))
    w = np.zeros((4, 3, 3, 3))
    out = np.empty((2, 4, 8, 8))
    with pytest.raises(ValueError, match="do not agree"):
        _nchw.forward(x, w, None, out, np.empty((1, 10)), 1, 1, 64, 1)  # workspace
    with pytest.raises(ValueError, match="do not agree"):
        _nchw.forward(x, w, None, np.empty((2, 4, 9, 8)), np.empty((1, 27 * 64)), 1, 1,
                      64, 1)  # windows past the padded image
    with pytest.raises(ValueError, match="must fit"):
        _nchw.forward(x, w, np.zeros(5), out, np.empty((1, 27 * 64)), 1, 1, 64, 1)
    with pytest.raises(ValueError, match="do not agree"):  # an empty image, all padding
        _nchw.forward(np.zeros((2, 3, 0, 8)), w, None, np.empty((2, 4, 1, 8)),
                      np.empty((1, 27 * 64)), 1, 1, 64, 1)


# ------------------------------------------------------- spatial batch normalisation


def _spatial_bn(x, gamma, beta, dout, bn_param, backend, threads=None):
    """Forward and (train mode) backward on ``backend``: out, dx, dgamma, dbeta."""
    fastconv.set_num_threads(threads)
    try:
        with fastconv.use_backend(backend):
            out, cache = cs231n.spatial_batchnorm_forward(x, gamma, beta, bn_param)
            if bn_param["mode"] == "test":
                return (out,)
            return (out,) + tuple(cs231n.spatial_batchnorm_backward(dout, cache))
    finally:
        fastconv.set_num_threads(None)


@DTYPES
@settings(max_examples=30, deadline=None)
@given(shape=st.tuples(st.integers(1, 6), st.integers(1, 9), st.integers(1, 9),
                       st.integers(1, 11)),
       offset=st.sampled_from([0.0, 3.0, -50.0]), seed=st.integers(0, 2**32 - 1))
def test_spatial_batchnorm_matches_the_numpy_path(dtype, shape, offset, seed):
    """The compiled kernels against the NumPy path ((N * H * W, C) rows through
    batchnorm_forward), train mode with running statistics, then test mode. The NumPy
    path runs on the same values in float64: in float32 its own statistics are the
    less accurate (the kernels sum in double), e.g. 1e-3 off for 6 values near -50."""
    rng = np.random.default_rng(seed)
    x = (offset + rng.standard_normal(shape) * rng.uniform(0.1, 3)).astype(dtype)
    gamma, beta = (rng.standard_normal(shape[1]).astype(dtype) for _ in range(2))
    dout = rng.standard_normal(shape).astype(dtype)
    running = rng.standard_normal(shape[1]), rng.uniform(0.5, 2, shape[1])
    params = {}
    for backend in ("cython", "numpy"):
        params[backend] = {"mode": "train", "momentum": 0.8, "running_mean": running[0],
                           "running_var": running[1]}
    got = _spatial_bn(x, gamma, beta, dout, params["cython"], "cython", threads=1)
    f64 = [a.astype(np.float64) for a in (x, gamma, beta, dout)]
    want = _spatial_bn(*f64, params["numpy"], "numpy")
    assert _spatial_bn(x, gamma, beta, dout, dict(params["cython"]) | {"running_mean":
                       running[0], "running_var": running[1]}, "cython", threads=2)[0] \
        .tobytes() == got[0].tobytes()
    rtol = 2e-4 if dtype == np.float32 else 1e-9
    # out and dx are O(1) per element (xhat, dout): judged absolutely at that scale;
    # dgamma and dbeta are sums of M terms of size O(1).
    scale = np.sqrt(x.size / shape[1])
    for g, w, s in zip(got, want, (1, np.abs(gamma).max() + 1, scale * 3, scale * 3)):
        assert g.dtype == dtype and g.shape == w.shape
        np.testing.assert_allclose(g, w, rtol=rtol, atol=rtol * s)
    for key in ("running_mean", "running_var"):
        np.testing.assert_allclose(params["cython"][key], params["numpy"][key],
                                   rtol=rtol, atol=rtol * (abs(offset) + 1))
    for backend in ("cython", "numpy"):
        params[backend]["mode"] = "test"
    got = _spatial_bn(x, gamma, beta, dout, params["cython"], "cython")
    want = _spatial_bn(*f64, params["numpy"], "numpy")
    np.testing.assert_allclose(got[0], want[0], rtol=rtol, atol=rtol * (abs(offset) + 1) *
                               (np.abs(gamma).max() + 1))


def test_spatial_batchnorm_same_bits_on_one_and_two_threads():
    rng = np.random.default_rng(21)
    x = 2 + rng.standard_normal((7, 12, 9, 10))
    gamma, beta, dout = rng.standard_normal(12), rng.standard_normal(12), \
        rng.standard_normal(x.shape)
    one = _spatial_bn(x, gamma, beta, dout, {"mode": "train"}, "cython", threads=1)
    two = _spatial_bn(x, gamma, beta, dout, {"mode": "train"}, "cython", threads=2)
    for a, c in zip(one, two):
        np.testing.assert_array_equal(a, c)


@pytest.mark.skipif(_nchw.isa() < 2, reason="compares the AVX-512 copy with the AVX2 one")
@DTYPES
def test_spatial_batchnorm_avx2_and_avx512_copies_give_the_same_bits(dtype):
    rng = np.random.default_rng(22)
    x = (1 + rng.standard_normal((5, 6, 7, 9))).astype(dtype)
    gamma, beta = rng.standard_normal(6).astype(dtype), rng.standard_normal(6).astype(dtype)
    dout = rng.standard_normal(x.shape).astype(dtype)
    results = []
    try:
        for level in (2, 1):
            assert _nchw.set_isa(level) == level
            results.append(_spatial_bn(x, gamma, beta, dout, {"mode": "train"}, "cython"))
    finally:
        _nchw.set_isa(2)
    for a, c in zip(*results):
        np.testing.assert_array_equal(a, c)


def test_spatial_batchnorm_by_hand_and_gradient_check():
    """Batch statistics, output and running statistics computed here from the
    definition; gradients by central differences contracted with dout."""
    rng = np.random.default_rng(23)
    x = 5 + 2 * rng.standard_normal((3, 4, 5, 6))
    gamma, beta = rng.standard_normal(4), rng.standard_normal(4)
    bn_param = {"mode": "train", "momentum": 0.7, "eps": 1e-3,
                "running_mean": np.ones(4), "running_var": np.full(4, 2.0)}
    out, cache = cs231n.spatial_batchnorm_forward(x, gamma, beta, bn_param)
    mean = x.mean(axis=(0, 2, 3))
    var = ((x - mean[None, :, None, None]) ** 2).mean(axis=(0, 2, 3))
    c = (None, slice(None), None, None)
    np.testing.assert_allclose(out, gamma[c] * (x - mean[c]) / np.sqrt(var[c] + 1e-3)
                               + beta[c], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(bn_param["running_mean"], 0.7 + 0.3 * mean, rtol=1e-12)
    np.testing.assert_allclose(bn_param["running_var"], 1.4 + 0.3 * var, rtol=1e-12)
    dout = rng.standard_normal(x.shape)
    grads = cs231n.spatial_batchnorm_backward(dout, cache)

    def f():
        return cs231n.spatial_batchnorm_forward(x, gamma, beta, {"mode": "train",
                                                                 "eps": 1e-3})[0]

    # Not linear in x: judged as the layers' checks in test_cs231n.py are, by norms
    # (an element near zero of dx carries the differences' rounding, ~1e-10, alone).
    for analytic, variable in zip(grads, (x, gamma, beta)):
        num = numerical_gradient(f, variable, dout, 1e-5)
        assert np.linalg.norm(analytic - num) / (np.linalg.norm(analytic)
                                                 + np.linalg.norm(num)) < 1e-8


def test_spatial_batchnorm_bad_input():
    x = np.zeros((2, 3, 4, 4))
    g = b = np.ones(3)
    with pytest.raises(ValueError, match="`gamma`"):
        cs231n.spatial_batchnorm_forward(x, np.ones(4), b, {"mode": "train"})
    with pytest.raises(ValueError, match="`beta`"):
        cs231n.spatial_batchnorm_forward(x, g, np.ones((3, 1)), {"mode": "train"})
    with pytest.raises(ValueError, match=r"`bn_param\['mode'\]`"):
        cs231n.spatial_batchnorm_forward(x, g, b, {"mode": "eval"})
    with pytest.raises(ValueError, match=r"`bn_param\['running_var'\]`"):
        cs231n.spatial_batchnorm_forward(x, g, b, {"mode": "train", "running_var": [1.0]})
    with pytest.raises(ValueError, match="`x`"):
        cs231n.spatial_batchnorm_forward(x[0], g, b, {"mode": "train"})
    out, cache = cs231n.spatial_batchnorm_forward(x + np.arange(3)[:, None, None], g, b,
                                                  {"mode": "train"})
    with pytest.raises(ValueError, match="`dout`"):
        cs231n.spatial_batchnorm_backward(out[:1], cache)
    _, test_cache = cs231n.spatial_batchnorm_forward(x, g, b, {"mode": "test"})
    with pytest.raises(TypeError, match="`cache`"):
        cs231n.spatial_batchnorm_backward(out, test_cache)
