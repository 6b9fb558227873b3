"""Depthwise 2-D convolution: the reference by hand, against loops and numerically; the
compiled kernel against the reference; bad input."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastconv
from fastconv import _depthwise, ops
from fastconv.backends import cython as fast
from fastconv.backends import numpy as ref
from fastconv.testing import assert_close, numerical_gradient, relative_error

from . import naive
from .strategies import _pair, conv_cases

DTYPES = [np.float32, np.float64]
BACKENDS = pytest.mark.parametrize("be", [ref, fast], ids=["numpy", "cython"])
FIXTURES_OK = [HealthCheck.function_scoped_fixture]


def raises(exc, *names):
    return pytest.raises(exc, match="".join(f"(?=.*`{n}`)" for n in names))


@BACKENDS
def test_by_hand(be):
    # x: one 3x3 image, channel 0 = 1..9, channel 1 = 10 * channel 0.
    c0 = np.arange(1.0, 10.0).reshape(3, 3)
    x = np.stack([c0, 10 * c0], axis=-1)[None]
    # Two filters per channel (M = 2): 2x2 "sum" and 2x2 "top-left minus bottom-right".
    w = np.zeros((2, 2, 2, 2))
    w[:, :, :, 0] = 1
    w[0, 0, :, 1], w[1, 1, :, 1] = 1, -1
    b = np.array([0.5, 0, 0, 100])
    out, cache = be.depthwise_conv2d_forward(x, w, b)
    # Window sums of c0: [[1+2+4+5, 2+3+5+6], [4+5+7+8, 5+6+8+9]] = [[12, 16], [24, 28]];
    # top-left minus bottom-right: 1-5, 2-6, 4-8, 5-9 = -4 everywhere.
    assert out.shape == (1, 2, 2, 4)
    np.testing.assert_array_equal(out[0, :, :, 0], [[12.5, 16.5], [24.5, 28.5]])
    np.testing.assert_array_equal(out[0, :, :, 1], [[-4, -4], [-4, -4]])
    np.testing.assert_array_equal(out[0, :, :, 2], [[120, 160], [240, 280]])
    np.testing.assert_array_equal(out[0, :, :, 3], [[60, 60], [60, 60]])
    # All-ones upstream gradient: dx[p] = sum, over the windows holding p, of the taps
    # of both filters that read p. Corner (0, 0): window (0, 0), tap (0, 0): 1 + 1 = 2.
    # (0, 1): taps (0, 1) and (0, 0): 2 from "sum", 0 + 1 from the other = 3. (0, 2):
    # tap (0, 1) only: 1 + 0. Centre: 4 windows, "sum" 4, the other +1 - 1 = 0.
    # (2, 2): tap (1, 1) only: 1 - 1 = 0.
    dx, dw, db = be.depthwise_conv2d_backward(np.ones(out.shape), cache)
    np.testing.assert_array_equal(dx[0, :, :, 0], [[2, 3, 1], [3, 4, 1], [1, 1, 0]])
    np.testing.assert_array_equal(dx[0, :, :, 1], dx[0, :, :, 0])
    # dw[i, j, c, m] = sum of the 2x2 block of channel c starting at (i, j).
    np.testing.assert_array_equal(dw[:, :, 0, 0], [[12, 16], [24, 28]])
    np.testing.assert_array_equal(dw[:, :, 1, 1], [[120, 160], [240, 280]])
    np.testing.assert_array_equal(db, [4, 4, 4, 4])


LOOP_CASES = [
    dict(x=(2, 5, 6, 3), w=(3, 3, 3, 1), stride=1, padding="valid", dilation=1,
         pads=(0, 0, 0, 0)),
    dict(x=(1, 7, 6, 2), w=(2, 3, 2, 3), stride=(2, 1), padding="same", dilation=1,
         pads=(0, 1, 1, 1)),
    dict(x=(2, 8, 7, 2), w=(3, 2, 2, 2), stride=2, padding=((1, 2), (0, 1)), dilation=(2, 1),
         pads=(1, 2, 0, 1)),
    dict(x=(1, 5, 5, 1), w=(3, 3, 1, 4), stride=3, padding=2, dilation=1, pads=(2, 2, 2, 2)),
]


@BACKENDS
@pytest.mark.parametrize("case", LOOP_CASES, ids=lambda c: str(c["x"]) + str(c["w"]))
def test_matches_loops(be, case, rng):
    x, w = rng.standard_normal(case["x"]), rng.standard_normal(case["w"])
    b = rng.standard_normal(case["w"][2] * case["w"][3])
    out, _ = be.depthwise_conv2d_forward(x, w, b, case["stride"], case["padding"],
                                         case["dilation"])
    want = naive.depthwise_conv2d(x, w, b, _pair(case["stride"]), case["pads"],
                                  _pair(case["dilation"]))
    assert_close(out, want, np.float64)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("case", LOOP_CASES, ids=lambda c: str(c["x"]) + str(c["w"]))
def test_reference_gradients_numerically(case, bias, rng):
    x, w = rng.standard_normal(case["x"]), rng.standard_normal(case["w"])
    b = rng.standard_normal(case["w"][2] * case["w"][3]) if bias else None
    args = (case["stride"], case["padding"], case["dilation"])
    out, cache = ref.depthwise_conv2d_forward(x, w, b, *args)
    dout = rng.standard_normal(out.shape)
    dx, dw, db = ref.depthwise_conv2d_backward(dout, cache)

    def f():
        return ref.depthwise_conv2d_forward(x, w, b, *args)[0]

    assert relative_error(dx, numerical_gradient(f, x, dout)) < 1e-7
    assert relative_error(dw, numerical_gradient(f, w, dout)) < 1e-7
    if bias:
        assert relative_error(db, numerical_gradient(f, b, dout)) < 1e-7
    else:
        assert db is None


def _results(be, x, w, b, dout, args, input_grad=True):
    out, cache = be.depthwise_conv2d_forward(x, w, b, *args)
    return (out, *be.depthwise_conv2d_backward(dout, cache, input_grad))


@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=40, deadline=None, suppress_health_check=FIXTURES_OK)
@given(case=conv_cases(max_channels=6), m=st.integers(1, 3))
def test_compiled_matches_reference(case, m, dtype, threads):
    x, w4, b4, *args = case.arrays(dtype)
    rng = np.random.default_rng(case.seed)
    w = rng.standard_normal(w4.shape[:3] + (m,)).astype(dtype)
    b = rng.standard_normal(x.shape[3] * m).astype(dtype) if b4 is not None else None
    out_shape = ref.depthwise_conv2d_forward(x, w, b, *args)[0].shape
    dout = rng.standard_normal(out_shape).astype(dtype)
    got = _results(fast, x, w, b, dout, args)
    want = _results(ref, x, w, b, dout, args)
    scale = _results(ref, np.abs(x), np.abs(w), None if b is None else np.abs(b),
                     np.abs(dout), args)
    for name, a, e, s in zip(["out", "dx", "dw", "db"], got, want, scale):
        if e is None:
            assert a is None, name
            continue
        assert a.dtype == dtype and a.shape == e.shape, name
        assert_close(a, e, dtype, scale=s)


@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=20, deadline=None)
@given(case=conv_cases(max_channels=6, max_batch=4), m=st.integers(1, 3))
def test_compiled_bit_identical_across_thread_counts(case, m, dtype):
    x, w4, b4, *args = case.arrays(dtype)
    rng = np.random.default_rng(case.seed)
    w = rng.standard_normal(w4.shape[:3] + (m,)).astype(dtype)
    b = rng.standard_normal(x.shape[3] * m).astype(dtype)
    dout = rng.standard_normal(fast.depthwise_conv2d_forward(x, w, b, *args)[0].shape)
    dout = dout.astype(dtype)
    before = fastconv._threads._num_threads
    try:
        runs = []
        for n in (1, 2):
            fastconv.set_num_threads(n)
            runs.append(_results(fast, x, w, b, dout, args))
    finally:
        fastconv.set_num_threads(before)
    for a, e in zip(*runs):
        np.testing.assert_array_equal(a, e)


ROW_FAMILIES = pytest.mark.parametrize("rows", [True, False], ids=["avx512-rows", "loops"])


def _with_row_kernels(rows, run):
    """run() with the AVX-512 row kernels on or off (skipped where the CPU lacks them)."""
    if rows and not _depthwise.have_row_kernels():
        pytest.skip("this CPU has no AVX-512F: the row kernels never run here")
    previous = _depthwise.set_row_kernels(rows)
    try:
        return run()
    finally:
        _depthwise.set_row_kernels(previous)


@ROW_FAMILIES
@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=30, deadline=None)
@given(case=conv_cases(max_channels=40, max_batch=3))
def test_each_kernel_family_matches_reference_on_wide_channels(case, rows, dtype):
    # Depth multiplier 1 with up to 40 channels: several vector blocks of 16 floats or
    # 8 doubles and a masked tail, for the AVX-512 row kernels and for the loops; on 1
    # and 2 threads, with the same bits on both.
    x, w4, b4, *args = case.arrays(dtype)
    rng = np.random.default_rng(case.seed)
    w = rng.standard_normal(w4.shape[:3] + (1,)).astype(dtype)
    b = rng.standard_normal(x.shape[3]).astype(dtype) if b4 is not None else None
    out_shape = ref.depthwise_conv2d_forward(x, w, b, *args)[0].shape
    dout = rng.standard_normal(out_shape).astype(dtype)
    want = _results(ref, x, w, b, dout, args)
    scale = _results(ref, np.abs(x), np.abs(w), None if b is None else np.abs(b),
                     np.abs(dout), args)
    before = fastconv._threads._num_threads
    runs = []
    try:
        for n in (1, 2):
            fastconv.set_num_threads(n)
            runs.append(_with_row_kernels(rows, lambda: _results(fast, x, w, b, dout, args)))
    finally:
        fastconv.set_num_threads(before)
    for name, a, a2, e, sc in zip(["out", "dx", "dw", "db"], *runs, want, scale):
        if e is None:
            assert a is None and a2 is None, name
            continue
        assert a.dtype == dtype and a.shape == e.shape, name
        assert_close(a, e, dtype, scale=sc)
        np.testing.assert_array_equal(a, a2)


@ROW_FAMILIES
@pytest.mark.parametrize("kernel", [(7, 7), (5, 6), (5, 5)])
def test_large_kernels_on_both_families(kernel, rows, rng):
    # 49 and 30 taps are more than the row kernels hold (25): the loops run them; 25
    # taps is the row kernels' largest. Both match the reference.
    x = rng.standard_normal((2, 11, 10, 20)).astype(np.float32)
    w = rng.standard_normal(kernel + (20, 1)).astype(np.float32)
    b = rng.standard_normal(20).astype(np.float32)
    args = (1, "same", 1)
    dout = rng.standard_normal((2, 11, 10, 20)).astype(np.float32)
    got = _with_row_kernels(rows, lambda: _results(fast, x, w, b, dout, args))
    want = _results(ref, x, w, b, dout, args)
    scale = _results(ref, np.abs(x), np.abs(w), np.abs(b), np.abs(dout), args)
    for a, e, sc in zip(got, want, scale):
        assert_close(a, e, np.float32, scale=sc)


@BACKENDS
def test_input_grad_false_skips_dx(be, rng):
    x, w = rng.standard_normal((2, 5, 5, 3)), rng.standard_normal((3, 3, 3, 2))
    out, cache = be.depthwise_conv2d_forward(x, w, None, 1, "same")
    dx, dw, db = be.depthwise_conv2d_backward(np.ones(out.shape), cache, input_grad=False)
    assert dx is None and db is None and dw.shape == w.shape


def test_ops_dispatch_on_the_cache(rng):
    x, w = rng.standard_normal((1, 4, 4, 2)), rng.standard_normal((2, 2, 2, 1))
    with fastconv.use_backend("numpy"):
        out, cache = ops.depthwise_conv2d_forward(x, w)
    assert cache.backend == "numpy"
    dx, dw, _ = ops.depthwise_conv2d_backward(np.ones(out.shape), cache)  # on numpy
    want = ref.depthwise_conv2d_backward(np.ones(out.shape), cache)
    np.testing.assert_array_equal(dx, want[0])
    np.testing.assert_array_equal(dw, want[1])


X = np.zeros((2, 8, 8, 3), dtype=np.float32)
W = np.zeros((3, 3, 3, 2), dtype=np.float32)

BAD = [
    ("x ndim", dict(x=np.zeros((8, 8, 3))), ValueError, "x"),
    ("w ndim", dict(w=np.zeros((3, 3, 3))), ValueError, "w"),
    ("channels", dict(w=np.zeros((3, 3, 2, 2))), ValueError, "w"),
    ("zero multiplier", dict(w=np.zeros((3, 3, 3, 0))), ValueError, "w"),
    ("bias shape", dict(b=np.zeros(3)), ValueError, "b"),
    ("stride 0", dict(stride=0), ValueError, "stride"),
    ("stride float", dict(stride=1.5), TypeError, "stride"),
    ("dilation 0", dict(dilation=(1, 0)), ValueError, "dilation"),
    ("negative padding", dict(padding=-1), ValueError, "padding"),
    ("padding string", dict(padding="full"), ValueError, "padding"),
    ("float16 x", dict(x=X.astype(np.float16)), TypeError, "x"),
    ("None w", dict(w=None), TypeError, "w"),
]


@BACKENDS
@pytest.mark.parametrize("label, change, exc, name", BAD, ids=[c[0] for c in BAD])
def test_bad_arguments(be, label, change, exc, name):
    args = dict(x=X, w=W, b=None, stride=1, padding=0, dilation=1) | change
    with raises(exc, name):
        be.depthwise_conv2d_forward(**args)


@BACKENDS
def test_window_larger_than_padded_input(be):
    with pytest.raises(ValueError, match="window must fit"):
        be.depthwise_conv2d_forward(np.zeros((1, 2, 9, 3)), W)


@BACKENDS
def test_bad_dout_and_cache(be):
    out, cache = be.depthwise_conv2d_forward(X, W)
    with raises(ValueError, "dout"):
        be.depthwise_conv2d_backward(np.zeros((2, 6, 6, 5)), cache)
    _, conv_cache = be.conv2d_forward(X, np.zeros((3, 3, 3, 6)))
    with raises(ValueError, "cache"):
        be.depthwise_conv2d_backward(np.zeros(out.shape), conv_cache)
    with raises(TypeError, "cache"):
        be.depthwise_conv2d_backward(np.zeros(out.shape), {"x": X})
