"""The compiled backend against the NumPy reference, on random problems.

Tolerances: fastconv.testing.RTOL (1e-5 in float32, 1e-12 in float64, norm-wise).
"""

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import fastconv
from fastconv import _conv
from fastconv.backends import cython as fast
from fastconv.backends import dispatch
from fastconv.backends import numpy as ref
from fastconv.testing import assert_close

from .strategies import _pair, conv_cases, int_or_pair, pool_cases

DTYPES = [np.float32, np.float64]
# The `threads` fixture is meant to hold for every example of a test.
FIXTURES_OK = [HealthCheck.function_scoped_fixture]


def _conv_results(be, x, w, b, dout, args):
    out, cache = be.conv2d_forward(x, w, b, *args)
    return (out, *be.conv2d_backward(dout, cache))


def _conv_compare(dtype, x, w, b, dout, args):
    """Compiled vs reference: forward, dx, dw, db, each within RTOL of its scale.

    The scale of each result is the reference run on absolute values (the sum of
    |terms| of every entry), so that entries which cancel to nearly zero are judged
    by the rounding error their terms can produce.
    """
    got = _conv_results(fast, x, w, b, dout, args)
    want = _conv_results(ref, x, w, b, dout, args)
    absb = None if b is None else np.abs(b)
    scale = _conv_results(ref, np.abs(x), np.abs(w), absb, np.abs(dout), args)
    for name, a, b_, s in zip(["out", "dx", "dw", "db"], got, want, scale):
        if b_ is None:
            assert a is None, name
            continue
        assert a.dtype == dtype and a.shape == b_.shape, name
        assert_close(a, b_, dtype, scale=s)


@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=30, deadline=None, suppress_health_check=FIXTURES_OK)
@given(case=conv_cases())
def test_conv_matches_reference(case, dtype, threads, conv_path):
    x, w, b, *args = case.arrays(dtype)
    out_shape = ref.conv2d_forward(x, w, b, *args)[0].shape
    dout = np.random.default_rng(case.seed).standard_normal(out_shape).astype(dtype)
    _conv_compare(dtype, x, w, b, dout, args)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op", ["maxpool2d", "avgpool2d"])
@settings(max_examples=40, deadline=None, suppress_health_check=FIXTURES_OK)
@given(case=pool_cases())
def test_pool_matches_reference(case, op, dtype, threads):
    x = case.array(dtype)
    args = (case.pool_size, case.strides, case.padding)
    got, gcache = getattr(fast, op + "_forward")(x, *args)
    want, wcache = getattr(ref, op + "_forward")(x, *args)
    assert got.dtype == dtype
    # Averages of |x| bound the rounding error of the sums inside avg pooling.
    assert_close(got, want, dtype, scale=getattr(ref, op + "_forward")(np.abs(x), *args)[0])
    dout = np.random.default_rng(case.seed + 1).standard_normal(want.shape).astype(dtype)
    assert_close(getattr(fast, op + "_backward")(dout, gcache),
                 getattr(ref, op + "_backward")(dout, wcache), dtype,
                 scale=getattr(ref, op + "_backward")(np.abs(dout), wcache))


@pytest.mark.parametrize("dtype", DTYPES)
def test_relu_matches_reference(dtype, threads, rng):
    # Large enough to take the parallel path in the kernel.
    x = rng.standard_normal((4, 33, 33, 16)).astype(dtype)
    x.reshape(-1)[:5] = [0.0, -0.0, np.nan, np.inf, -np.inf]
    got, gcache = fast.relu_forward(x)
    want, wcache = ref.relu_forward(x)
    np.testing.assert_array_equal(got, want)
    dout = rng.standard_normal(x.shape).astype(dtype)
    np.testing.assert_array_equal(fast.relu_backward(dout, gcache), ref.relu_backward(dout, wcache))


# Shapes of the benchmark layers, at small batch: they take the multi-tile paths
# (several tiles per image, several weight-gradient groups).
LAYERS = [
    ((2, 28, 28, 1), (3, 3, 1, 32), "valid", 1),
    ((2, 28, 28, 1), (3, 3, 1, 32), "same", 1),
    ((2, 32, 30, 3), (5, 3, 3, 48), "same", 1),
    ((2, 26, 26, 32), (3, 3, 32, 64), "valid", 1),
    ((3, 32, 32, 3), (3, 3, 3, 32), "valid", 1),
    ((2, 20, 20, 64), (3, 3, 64, 16), "same", 1),
    ((1, 56, 56, 8), (5, 5, 8, 8), "same", 1),
    ((3, 17, 19, 8), (3, 3, 8, 16), "same", 2),
    ((9, 6, 6, 16), (3, 3, 16, 16), "valid", 1),      # col2im: runs of 2 images
    ((19, 7, 5, 3), (3, 2, 3, 8), "same", 2),          # col2im: runs of 3, strided
    # dx vectorised over pixels (2-4 channels, stride 1): several pixel blocks per
    # row and a partial one, one image split into row blocks, asymmetric padding.
    ((1, 9, 70, 3), (3, 3, 3, 16), "same", 1),
    ((5, 6, 50, 2), (2, 5, 2, 8), "valid", 1),
    ((1, 13, 30, 4), (3, 3, 4, 24), ((2, 0), (3, 1)), 1),
    # F a multiple of 4 but not 8: direct in float64 (three 4-wide vectors), GEMM in
    # float32; and the CS231n first layer with 32 filters (stride 2, direct both).
    ((2, 12, 11, 3), (3, 3, 3, 12), "same", 1),
    ((3, 31, 31, 3), (3, 3, 3, 32), 1, 2),
    # F padded to the vector width with zero filters: CS231n's 25 filters, LeNet's 6.
    ((3, 31, 31, 3), (3, 3, 3, 25), 1, 2),
    ((2, 32, 32, 1), (5, 5, 1, 6), "valid", 1),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("xs, ws, padding, stride", LAYERS)
def test_conv_layer_shapes_match_reference(xs, ws, padding, stride, dtype, threads, conv_path,
                                           rng):
    x = rng.standard_normal(xs).astype(dtype)
    w = rng.standard_normal(ws).astype(dtype)
    b = rng.standard_normal(ws[-1]).astype(dtype)
    args = (stride, padding, 1)
    dout = rng.standard_normal(ref.conv2d_forward(x, w, b, *args)[0].shape).astype(dtype)
    _conv_compare(dtype, x, w, b, dout, args)


@pytest.mark.skipif(not fast._HAVE_AVX2, reason="the direct kernels need AVX2 and FMA")
@pytest.mark.parametrize("dtype, f", [(np.float32, 8), (np.float64, 4), (np.float64, 20),
                                      (np.float32, 6), (np.float64, 25)])
def test_short_reductions_take_the_direct_kernels(dtype, f, rng, monkeypatch):
    # The direct kernels run for both dtypes (F a multiple of the vector width, or
    # padded to one with zero filters): the reference comparisons above test them
    # only if they are actually chosen.
    called = []
    for name in ("conv2d_forward_direct", "conv2d_weight_grad_direct",
                 "conv2d_input_grad_direct"):
        kernel = getattr(fast._conv, name)
        monkeypatch.setattr(fast._conv, name,
                            lambda *a, _k=kernel, _n=name: called.append(_n) or _k(*a))
    x = rng.standard_normal((2, 9, 9, 3)).astype(dtype)
    w = rng.standard_normal((3, 3, 3, f)).astype(dtype)
    out, cache = fast.conv2d_forward(x, w, None, 1, "same")
    fast.conv2d_backward(np.ones_like(out), cache)
    want = ["conv2d_forward_direct", "conv2d_input_grad_direct", "conv2d_weight_grad_direct"]
    if dtype == np.float32:
        want.remove("conv2d_input_grad_direct")  # three channels: the planar kernel
    assert called == want


@pytest.mark.parametrize("dtype", DTYPES)
def test_padded_filters_forward_in_bounded_chunks(dtype, rng, monkeypatch):
    # Padded to the vector width, the forward pass goes through a buffer of a few
    # whole images at a time: the same bits whether the batch takes one chunk or many.
    x = rng.standard_normal((5, 9, 11, 3)).astype(dtype)
    w = rng.standard_normal((3, 3, 3, 5)).astype(dtype)
    b = rng.standard_normal(5).astype(dtype)
    whole = fast.conv2d_relu_forward(x, w, b, 1, "same")[0]
    monkeypatch.setattr(fast, "_TILE_BYTES", 64)  # one image per chunk
    chunked = fast.conv2d_relu_forward(x, w, b, 1, "same")[0]
    np.testing.assert_array_equal(chunked, whole)
    want = ref.conv2d_relu_forward(x, w, b, 1, "same")[0]
    assert_close(whole, want, dtype, scale=ref.conv2d_forward(np.abs(x), np.abs(w),
                                                              np.abs(b), 1, "same")[0])


@st.composite
def wide_cases(draw):
    """Long reductions (K >= 64) for the wide blocks: rows of 1-20 windows (every block
    size 1-6), strides, dilation, padding on some sides, filter counts that leave a
    remainder after the two-vector blocks, and K not a multiple of six taps."""
    c = draw(st.sampled_from([8, 16, 20, 24]))
    kh, kw = draw(st.integers(2, 4)), draw(st.integers(2, 4))
    assume(kh * kw * c >= 64)
    stride, dilation = draw(int_or_pair(1, 2)), draw(int_or_pair(1, 2))
    padding = draw(st.sampled_from(["valid", "same", ((0, 1), (2, 0))]))
    h, w = draw(st.integers(kh * 2, kh * 2 + 6)), draw(st.integers(kw * 2, kw * 2 + 24))
    f = draw(st.sampled_from([8, 16, 24, 40, 48, 64]))
    return (draw(st.integers(1, 3)), h, w, c), (kh, kw, c, f), stride, padding, dilation


@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=25, deadline=None, suppress_health_check=FIXTURES_OK)
@given(case=wide_cases(), relu=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_wide_blocks_match_reference(case, relu, seed, dtype, threads, conv_path):
    xs, ws, stride, padding, dilation = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(xs).astype(dtype)
    w = rng.standard_normal(ws).astype(dtype)
    b = rng.standard_normal(ws[-1]).astype(dtype)
    assume(all(n > 0 for n in ref.conv2d_forward(x, w, b, stride, padding, dilation)[0].shape))
    op = "conv2d_relu_forward" if relu else "conv2d_forward"
    got = getattr(fast, op)(x, w, b, stride, padding, dilation)[0]
    want = getattr(ref, op)(x, w, b, stride, padding, dilation)[0]
    assert_close(got, want, dtype, scale=ref.conv2d_forward(np.abs(x), np.abs(w), np.abs(b),
                                                            stride, padding, dilation)[0])
    # and the gradients (the wide weight-gradient and input-gradient blocks)
    dout = rng.standard_normal(want.shape).astype(dtype)
    _conv_compare(dtype, x, w, b, dout, (stride, padding, dilation))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("xs, ks, dilation, padding", [
    ((2, 1, 7, 16), (2, 3), (2, 1), "same"),        # a forward row with no tap inside
    ((2, 3, 2, 16), (2, 2), (3, 3), ((3, 3), (3, 3))),  # every window at the edges
    ((2, 5, 9, 24), (2, 3), (4, 1), "valid"),       # dx rows with no tap of dout
])
@pytest.mark.parametrize("avx512", [True, False])  # (AVX2 twice on a CPU without it)
def test_wide_blocks_with_taps_only_in_the_padding(xs, ks, dilation, padding, dtype, avx512,
                                                   threads):
    # With finite weights the wide blocks skip the taps outside the image (outside
    # dout for dx); windows left with no tap at all get the bias, ReLU'd. (dx takes
    # the wide blocks here whatever the image's size against dout's.)
    before = _conv.simd().startswith("AVX-512")
    _conv.set_wide_avx512(avx512)
    try:
        with dispatch.force("dx", "wide"):
            _check_taps_only_in_the_padding(xs, ks, dilation, padding, dtype)
    finally:
        _conv.set_wide_avx512(before)


def _check_taps_only_in_the_padding(xs, ks, dilation, padding, dtype):
    rng = np.random.default_rng(7)
    x = rng.standard_normal(xs).astype(dtype)
    w = rng.standard_normal((*ks, xs[-1], 16)).astype(dtype)
    b = rng.standard_normal(16).astype(dtype)
    for op in ("conv2d_forward", "conv2d_relu_forward"):
        want = getattr(ref, op)(x, w, b, 1, padding, dilation)[0]
        got = getattr(fast, op)(x, w, b, 1, padding, dilation)[0]
        assert_close(got, want, dtype, scale=ref.conv2d_forward(
            np.abs(x), np.abs(w), np.abs(b), 1, padding, dilation)[0])
    dout = rng.standard_normal(want.shape).astype(dtype)
    _conv_compare(dtype, x, w, b, dout, (1, padding, dilation))


@pytest.mark.skipif(not (fast._HAVE_AVX2 and _conv.have_avx512()),
                    reason="the AVX-512 wide blocks need a CPU with AVX-512")
@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=20, deadline=None, suppress_health_check=FIXTURES_OK)
@given(case=wide_cases(), seed=st.integers(0, 2**32 - 1))
def test_avx512_wide_blocks_give_the_avx2_bits(case, seed, dtype, threads):
    # The AVX-512 copies of the wide blocks compute every sum in the AVX2 order: the
    # forward (with ReLU), dx, dw and db must be the same bits on either.
    xs, ws, stride, padding, dilation = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(xs).astype(dtype)
    w = rng.standard_normal(ws).astype(dtype)
    b = rng.standard_normal(ws[-1]).astype(dtype)
    args = (stride, padding, dilation)
    shape = ref.conv2d_forward(x, w, b, *args)[0].shape
    assume(all(n > 0 for n in shape))
    dout = rng.standard_normal(shape).astype(dtype)
    results = []
    before = _conv.simd().startswith("AVX-512")
    try:
        for on in (True, False):
            assert _conv.set_wide_avx512(on) is on
            results.append(_conv_results(fast, x, w, b, dout, args)
                           + (fast.conv2d_relu_forward(x, w, b, *args)[0],))
    finally:
        _conv.set_wide_avx512(before)
    for a, b_ in zip(*results):
        np.testing.assert_array_equal(a, b_)


@pytest.mark.parametrize("dtype", DTYPES)
def test_padded_wide_layers_in_chunks_of_images(dtype, rng, monkeypatch):
    # Padded layers with a long reduction run their weight gradient (and, with a
    # non-finite weight, their forward pass) on zero-padded copies of a few images at a
    # time: with small chunks they must agree with the reference too, and the forward
    # pass bit for bit with one chunk.
    x = rng.standard_normal((3, 9, 10, 16)).astype(dtype)
    w = rng.standard_normal((3, 3, 16, 16)).astype(dtype)
    b = rng.standard_normal(16).astype(dtype)
    dout = rng.standard_normal((3, 9, 10, 16)).astype(dtype)
    w_inf = w.copy()
    w_inf[0, 0, 0, 3] = np.inf
    whole_inf = fast.conv2d_forward(x, w_inf, b, 1, "same")[0]
    assert np.isnan(whole_inf[:, 0, :, 3]).all()  # (0 * Inf in the top padding)
    whole = fast.conv2d_forward(x, w, b, 1, "same")[0]
    # one image per chunk; then two and one (a last chunk with fewer rows than the
    # first chunk's groups of partial weight gradients)
    for tile in (64, 2 * 11 * 12 * 16 * x.itemsize // 4):
        monkeypatch.setattr(fast, "_TILE_BYTES", tile)
        assert dispatch.wide_forward(fast.conv2d_forward(x, w, b, 1, "same")[1].geom, dtype)
        np.testing.assert_array_equal(fast.conv2d_forward(x, w, b, 1, "same")[0], whole)
        np.testing.assert_array_equal(fast.conv2d_forward(x, w_inf, b, 1, "same")[0],
                                      whole_inf)
        _conv_compare(dtype, x, w, b, dout, (1, "same", 1))


def _run_all(x, w, b, dout, pool_dout):
    out, c = fast.conv2d_forward(x, w, b, stride=1, padding="same")
    grads = fast.conv2d_backward(dout, c)
    # A first layer (C = 1, 32 filters): the direct kernels where available.
    first, fc = fast.conv2d_forward(x[..., :1], w[:, :, :1, :16], b[:16], padding="same")
    grads += fast.conv2d_backward(dout[..., :16], fc) + (first,)
    fused, fuc = fast.conv2d_relu_maxpool_forward(x[..., :1], w[:, :, :1, :16], b[:16],
                                                  pool_size=2)
    grads += (fused,) + fast.conv2d_relu_maxpool_backward(dout[:, :14, :14, :16], fuc, False)[1:]
    # A middle layer without padding: the direct forward's wide blocks.
    grads += (fast.conv2d_forward(x, w, b, padding="valid")[0],)
    p, pc = fast.maxpool2d_forward(x, 3, 2, "same")
    a, ac = fast.avgpool2d_forward(x, 3, 1, "same")  # overlapping windows
    return (out, *grads, p, fast.maxpool2d_backward(pool_dout, pc), a,
            fast.avgpool2d_backward(fast.avgpool2d_forward(x, 3, 1, "same")[0], ac))


@pytest.mark.parametrize("dtype", DTYPES)
def test_bit_identical_across_runs_and_thread_counts(dtype, rng):
    x = rng.standard_normal((5, 30, 30, 16)).astype(dtype)
    w = rng.standard_normal((3, 3, 16, 24)).astype(dtype)
    b = rng.standard_normal(24).astype(dtype)
    dout = rng.standard_normal((5, 30, 30, 24)).astype(dtype)
    pool_dout = rng.standard_normal((5, 15, 15, 16)).astype(dtype)
    results = []
    try:
        for n in (1, 2, 2, 1):
            fastconv.set_num_threads(n)
            results.append(_run_all(x, w, b, dout, pool_dout))
    finally:
        fastconv.set_num_threads(None)
    for other in results[1:]:
        for a, b_ in zip(results[0], other):
            assert np.array_equal(a, b_)


def test_nan_and_inf_propagate(threads):
    x = np.ones((1, 6, 6, 2), dtype=np.float32)
    x[0, 2, 2, 0] = np.nan
    x[0, 4, 4, 1] = np.inf
    w = np.ones((3, 3, 2, 1), dtype=np.float32)
    out, cache = fast.conv2d_forward(x, w)
    want, _ = ref.conv2d_forward(x, w)
    np.testing.assert_array_equal(np.isnan(out), np.isnan(want))
    assert np.isnan(out).sum() == 9  # every window containing (2, 2)
    dx, dw, _ = fast.conv2d_backward(np.ones_like(out), cache)
    assert np.isnan(dw).any() and np.isfinite(dx).all()
    p, _ = fast.maxpool2d_forward(x, 2)
    np.testing.assert_array_equal(p, ref.maxpool2d_forward(x, 2)[0])
    assert np.isnan(p[0, 1, 1, 0]) and np.isinf(p[0, 2, 2, 1])


@pytest.mark.parametrize("batch", [1, 2])
@pytest.mark.parametrize("channels", [1, 2, 3, 4, 8, 16, 24])
@pytest.mark.parametrize("bad", [np.inf, np.nan])
def test_nonfinite_weight_reaches_only_the_pixels_it_touches(batch, channels, bad, threads,
                                                            monkeypatch):
    # An Inf/NaN weight tap must leave dx finite where the reference skips that tap
    # (pixels near the border): no path may multiply it by padding zeros. 16 channels
    # take the wide blocks, which skip dout's padding taps (24: the last 8 channels
    # would multiply zeros, so another path).
    x = np.ones((batch, 9, 20, channels), dtype=np.float32)
    w = np.ones((3, 3, channels, 8), dtype=np.float32)
    w[0, 0, 0, 0] = bad
    wide = []
    real_wide = fast._input_grad_wide
    monkeypatch.setattr(fast, "_input_grad_wide", lambda *a: (wide.append(1), real_wide(*a)))
    out, cache = fast.conv2d_forward(x, w, padding="same")
    with np.errstate(invalid="ignore"):  # the reference's matmul meets inf * 0 too
        want_out, wcache = ref.conv2d_forward(x, w, padding="same")
        dout = np.ones_like(want_out)
        want = ref.conv2d_backward(dout, wcache)[0]
    got = fast.conv2d_backward(dout, cache)[0]
    np.testing.assert_array_equal(np.isfinite(got), np.isfinite(want))
    assert np.isfinite(want).any() and not np.isfinite(want).all()
    ok = np.isfinite(want)
    np.testing.assert_allclose(got[ok], want[ok], rtol=1e-6)
    assert bool(wide) == (channels == 16 and fast._HAVE_AVX2)


@pytest.mark.parametrize("dtype, f, c", [(np.float32, 8, 1), (np.float32, 6, 1),
                                         (np.float64, 4, 1), (np.float64, 25, 1),
                                         (np.float32, 16, 16), (np.float64, 8, 16)])
def test_nonfinite_weight_meets_the_padding_like_the_reference(dtype, f, c):
    # The reference pads with zeros, so an Inf weight over the padding gives NaN there
    # (0 * Inf); the direct forward must not skip padded rows or columns (c = 16: a
    # long reduction, whose wide blocks skip them for finite weights only).
    x = np.ones((2, 4, 5, c), dtype=dtype)
    w = np.ones((3, 3, c, f), dtype=dtype)
    w[0, 0, 0, 0] = np.inf
    for op in ("conv2d_forward", "conv2d_relu_forward"):
        got = getattr(fast, op)(x, w, None, 1, 1)[0]
        with np.errstate(invalid="ignore"):
            want = getattr(ref, op)(x, w, None, 1, 1)[0]
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
        assert np.isnan(want[:, 0, :, 0]).all() and np.isnan(want[:, :, 0, 0]).all()


@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=20, deadline=None, suppress_health_check=FIXTURES_OK)
@given(n=st.integers(16, 40), h=st.integers(3, 12), w=st.integers(3, 12),
       c=st.integers(1, 4), f=st.sampled_from([8, 16, 24]), k=st.integers(1, 3),
       padding=st.sampled_from(["valid", "same"]), dilation=st.integers(1, 2),
       bias=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_fused_first_layer_backward_gives_the_separate_bits(n, h, w, c, f, k, padding,
                                                          dilation, bias, seed, dtype,
                                                          threads):
    # A first layer's dx and dw in one pass over dout (batches of 16 images or more):
    # the same kernel calls as the two passes, so the same bits, and the reference's
    # values.
    assume(dilation * (k - 1) < min(h, w))
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, h, w, c)).astype(dtype)
    wt = rng.standard_normal((k, k, c, f)).astype(dtype)
    b = rng.standard_normal(f).astype(dtype) if bias else None
    out, cache = fast.conv2d_forward(x, wt, b, 1, padding, dilation)
    dout = rng.standard_normal(out.shape).astype(dtype)
    fused = fast.conv2d_backward(dout, cache)
    with dispatch.force("dw", "direct"):
        separate = fast.conv2d_backward(dout, cache)
    for a, b_ in zip(fused, separate):
        assert (a is None) == (b_ is None)
        if a is not None:
            np.testing.assert_array_equal(a, b_)
    _conv_compare(dtype, x, wt, b, dout, (1, padding, dilation))


@pytest.mark.skipif(not fast._HAVE_AVX2, reason="the direct kernels need AVX2 and FMA")
def test_fused_first_layer_backward_is_reached(monkeypatch):
    # (so that the test above compares two paths, not one with itself)
    calls = []
    real = fast._backward_fused
    monkeypatch.setattr(fast, "_backward_fused", lambda *a: (calls.append(1), real(*a)))
    x = np.ones((16, 6, 6, 1), np.float64)
    out, cache = fast.conv2d_forward(x, np.ones((3, 3, 1, 8)), None)
    fast.conv2d_backward(np.ones_like(out), cache)
    assert calls


@pytest.mark.skipif(not fast._HAVE_AVX2, reason="the direct kernels need AVX2 and FMA")
def test_planar_drivers_refuse_scratch_they_would_overrun():
    # Widths that would take the planar dx kernel outside its scratch, and a dout of
    # fewer images than x, raise instead of running (they overran the heap once).
    from fastconv.backends import _args

    x = np.zeros((16, 6, 7, 3), np.float32)
    w = np.zeros((3, 3, 3, 8), np.float32)
    g = _args.conv_args(x, w, None, 1, "same", 1)[3]
    dout = np.zeros((16, 6, 7, 8), np.float32)
    koff, kdi, kdj = fast._tap_offsets(g)
    dw_part, dx = np.empty((16, 27, 8), np.float32), np.empty_like(x)
    wt = np.ascontiguousarray(w.transpose(0, 1, 3, 2))
    tbuf, rowbuf, wp, left, wb = fast._planar_scratch(g, 6, 1)
    args = (koff, kdi, kdj, 1, 1, 1, 1, 2, 2, 1, False, wt, dx, 1, 1)
    for scratch in [(tbuf, np.empty((1, 3), np.float32), wp, left, 1),   # Wb < W
                    (tbuf, rowbuf, wp, 0, wb),                           # L too small
                    (tbuf, rowbuf, left + wb, left, wb)]:                # Wp too small
        with pytest.raises(ValueError, match="planar dx"):
            fast._conv.conv2d_weight_grad_direct(x, dout, dw_part, None, *args, *scratch)
        with pytest.raises(ValueError, match="planar dx"):
            fast._conv.conv2d_input_grad_planar(dout, wt, dx, scratch[0], scratch[1], 1, 1, 1,
                                                1, scratch[2], scratch[3], scratch[4], 6, 1)
    with pytest.raises(ValueError, match="images"):
        fast._conv.conv2d_weight_grad_direct(x, dout[:8], dw_part, None, *args, tbuf, rowbuf,
                                             wp, left, wb)
    # the widths _planar_scratch gives pass
    fast._conv.conv2d_weight_grad_direct(x, dout, dw_part, None, *args, tbuf, rowbuf, wp,
                                         left, wb)


@pytest.mark.skipif(not fast._HAVE_AVX2, reason="the direct kernels need AVX2 and FMA")
def test_weight_grad_groups_without_rows_are_zeros(rng):
    # More groups of partial gradients than output rows: the groups left without rows
    # must hold zeros (dw and db alike), not whatever their buffers held.
    x = rng.standard_normal((1, 6, 6, 16)).astype(np.float32)
    dout = rng.standard_normal((1, 4, 4, 16)).astype(np.float32)
    koff, kdi, kdj = fast._tap_offsets_for(3, 3, 16, 1, 1, 6)
    dw_part = np.full((8, 144, 16), np.nan, np.float32)
    db_part = np.full((8, 16), np.nan, np.float32)
    fast._conv.conv2d_weight_grad_direct(x, dout, dw_part, db_part, koff, kdi, kdj,
                                         1, 1, 0, 0, 2, 2, 2)
    assert np.isfinite(dw_part).all() and np.isfinite(db_part).all()
    w = np.zeros((3, 3, 16, 16), np.float32)
    _, want_dw, want_db = ref.conv2d_backward(dout, ref.conv2d_forward(x, w, np.zeros(16))[1])
    assert_close(dw_part.sum(0).reshape(want_dw.shape), want_dw, np.float32)
    assert_close(db_part.sum(0), want_db, np.float32)


@pytest.mark.skipif(not fast._HAVE_AVX2, reason="the direct kernels need AVX2 and FMA")
def test_direct_kernels_refuse_a_filter_count_off_the_vector_width():
    # Only the wrappers' own checks stand between these drivers and whole-vector
    # reads past an array; they must refuse such a call rather than run it.
    x = np.ones((1, 5, 5, 1))
    koff, kdi, kdj = fast._tap_offsets_for(3, 3, 1, 1, 1, 5)
    with pytest.raises(ValueError, match="multiple of 4"):
        fast._conv.conv2d_forward_direct(x, np.ones((3, 3, 1, 6)), None, np.empty((1, 3, 3, 6)),
                                         koff, kdi, kdj, 1, 1, 0, 0, 2, 2, False, 1)
    with pytest.raises(ValueError, match="multiple of 8"):
        fast._conv.conv2d_input_grad_direct(np.ones((1, 3, 3, 4), np.float32),
                                            np.ones((3, 3, 1, 4), np.float32),
                                            np.empty((1, 5, 5, 1), np.float32), 1, 1, 0, 0, 1)
    with pytest.raises(ValueError, match="multiple of 4"):
        fast._conv.conv2d_weight_grad_direct(x, np.ones((1, 3, 3, 2)), np.empty((1, 9, 2)),
                                             None, koff, kdi, kdj, 1, 1, 0, 0, 2, 2, 1)
    # An empty output row (OW = 0) on the wide weight-gradient blocks: nothing to add,
    # and no division by the row's width (it crashed the interpreter once).
    koff, kdi, kdj = fast._tap_offsets_for(2, 2, 16, 1, 1, 4)
    dw_part = np.zeros((1, 64, 16), np.float32)
    fast._conv.conv2d_weight_grad_direct(np.ones((1, 4, 4, 16), np.float32),
                                         np.ones((1, 2, 0, 16), np.float32), dw_part, None,
                                         koff, kdi, kdj, 1, 1, 0, 0, 1, 1, 1)
    assert not dw_part.any()


def test_maxpool_ties_and_nan_like_reference():
    x = np.array([[1, 5], [5, 5]], dtype=np.float64)[None, :, :, None]
    out, cache = fast.maxpool2d_forward(x, 2)
    np.testing.assert_array_equal(fast.maxpool2d_backward(np.ones_like(out), cache)[0, :, :, 0],
                                  [[0, 1], [0, 0]])
    x = np.array([[1, np.nan], [np.nan, 2]])[None, :, :, None]
    out, cache = fast.maxpool2d_forward(x, 2)
    assert np.isnan(out).all()
    np.testing.assert_array_equal(fast.maxpool2d_backward(np.ones_like(out), cache)[0, :, :, 0],
                                  [[0, 1], [0, 0]])


def _variants(a):
    """The same values as non-contiguous, Fortran, read-only, byte-swapped, memmapped."""
    big = np.zeros(a.shape[:-1] + (2 * a.shape[-1],), dtype=a.dtype)
    big[..., ::2] = a
    ro = a.copy()
    ro.flags.writeable = False
    return {
        "strided": big[..., ::2],
        "fortran": np.asfortranarray(a),
        "readonly": ro,
        "byteswapped": a.astype(a.dtype.newbyteorder(">" if a.dtype.byteorder != ">" else "<")),
    }


@pytest.mark.parametrize("dtype", DTYPES)
def test_unusual_memory_layouts(dtype, rng, tmp_path):
    x = rng.standard_normal((2, 9, 8, 3)).astype(dtype)
    w = rng.standard_normal((3, 2, 3, 4)).astype(dtype)
    want, _ = ref.conv2d_forward(x, w, padding="same")
    mm = np.lib.format.open_memmap(tmp_path / "x.npy", mode="w+", dtype=dtype, shape=x.shape)
    mm[...] = x
    mm.flush()
    cases = _variants(x) | {"memmap": np.load(tmp_path / "x.npy", mmap_mode="r")}
    for name, xv in cases.items():
        for wv in (_variants(w) | {"plain": w}).values():
            got, cache = fast.conv2d_forward(xv, wv, padding="same")
            assert got.dtype == dtype, name
            assert_close(got, want, dtype)
        p, _ = fast.maxpool2d_forward(xv, 2)
        np.testing.assert_array_equal(p, ref.maxpool2d_forward(x, 2)[0])


@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=30, deadline=None, suppress_health_check=FIXTURES_OK)
@given(case=conv_cases())
def test_conv_relu_matches_reference(case, dtype, threads, conv_path):
    x, w, b, *args = case.arrays(dtype)
    want, wcache = ref.conv2d_relu_forward(x, w, b, *args)
    got, gcache = fast.conv2d_relu_forward(x, w, b, *args)
    absb = None if b is None else np.abs(b)
    scale, _ = ref.conv2d_forward(np.abs(x), np.abs(w), absb, *args)
    assert_close(got, want, dtype, scale=scale)
    dout = np.random.default_rng(case.seed).standard_normal(want.shape).astype(dtype)
    # The same ReLU mask on both sides, so that a pre-activation within rounding of 0
    # cannot flip one gradient entry: compare the conv backward of the masked dout.
    masked = np.where((want > 0) & (got > 0), dout, 0).astype(dtype)
    gdx, gdw, gdb = fast.conv2d_relu_backward(masked, gcache)
    wdx, wdw, wdb = ref.conv2d_relu_backward(masked, wcache)
    scales = ref.conv2d_backward(np.abs(masked), ref.conv2d_forward(
        np.abs(x), np.abs(w), absb, *args)[1])
    for a, b_, s in zip((gdx, gdw, gdb), (wdx, wdw, wdb), scales):
        if b_ is None:
            assert a is None
        else:
            assert_close(a, b_, dtype, scale=s)


@pytest.mark.parametrize("op", ["conv2d", "conv2d_relu"])
def test_input_grad_false_skips_dx_only(op, conv_path, rng):
    x = rng.standard_normal((3, 10, 9, 1)).astype(np.float32)
    w = rng.standard_normal((3, 3, 1, 16)).astype(np.float32)
    b = rng.standard_normal(16).astype(np.float32)
    for be in (fast, ref):
        out, cache = getattr(be, op + "_forward")(x, w, b)
        dout = rng.standard_normal(out.shape).astype(np.float32)
        dx, dw, db = getattr(be, op + "_backward")(dout, cache)
        ndx, ndw, ndb = getattr(be, op + "_backward")(dout, cache, input_grad=False)
        assert ndx is None and dx.shape == x.shape
        np.testing.assert_array_equal(ndw, dw)
        np.testing.assert_array_equal(ndb, db)


def _pool_windows(z, ph, pw):
    """(N, OH, OW, F) -> (N, OH // ph, OW // pw, F, ph * pw): the 'valid' windows."""
    n, oh, ow, f = z.shape
    z = z[:, :oh // ph * ph, :ow // pw * pw]
    z = z.reshape(n, oh // ph, ph, ow // pw, pw, f).transpose(0, 1, 3, 5, 2, 4)
    return z.reshape(n, oh // ph, ow // pw, f, ph * pw)


@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=30, deadline=None, suppress_health_check=FIXTURES_OK)
@given(case=conv_cases(), pool=int_or_pair(1, 3))
def test_conv_relu_maxpool_matches_reference(case, pool, dtype, threads, conv_path):
    x, w, b, *args = case.arrays(dtype)
    ph, pw = _pair(pool)
    z, _ = ref.conv2d_forward(x, w, b, *args)
    assume(z.shape[1] >= ph and z.shape[2] >= pw)
    absb = None if b is None else np.abs(b)
    zabs, abs_cache = ref.conv2d_forward(np.abs(x), np.abs(w), absb, *args)
    want, wcache = ref.conv2d_relu_maxpool_forward(x, w, b, *args, pool_size=pool)
    got, gcache = fast.conv2d_relu_maxpool_forward(x, w, b, *args, pool_size=pool)
    # Each pooled value is within rounding of its window's largest |terms| sum.
    window_scale = _pool_windows(zabs, ph, pw).max(axis=-1)
    assert got.dtype == dtype
    assert_close(got, want, dtype, scale=window_scale)
    # Where a window's two largest values, or its largest and 0 (the ReLU), lie within
    # rounding of each other, the two backends may pick different winners: give those
    # windows no gradient, so both must route every other gradient the same way.
    top = np.sort(_pool_windows(np.maximum(z, 0), ph, pw), axis=-1)
    tol = (1e-4 if dtype == np.float32 else 1e-10) * window_scale
    second = top[..., -2] if ph * pw > 1 else np.zeros_like(top[..., -1])
    clear = (top[..., -1] - second > tol) & (top[..., -1] > tol)
    dout = np.random.default_rng(case.seed).standard_normal(want.shape).astype(dtype)
    dout = np.where(clear, dout, 0).astype(dtype)
    # Scales: the convolution's backward on |dz|, dz the gradient the winners get.
    dz_abs = np.abs(ref.maxpool2d_backward(np.abs(dout), wcache.arrays["pool"]))
    scales = ref.conv2d_backward(dz_abs, abs_cache)
    for input_grad in (True, False):
        gres = fast.conv2d_relu_maxpool_backward(dout, gcache, input_grad)
        wres = ref.conv2d_relu_maxpool_backward(dout, wcache, input_grad)
        for name, a, b_, s in zip(("dx", "dw", "db"), gres, wres, scales):
            if b_ is None:
                assert a is None, name
            else:
                assert a.dtype == dtype and a.shape == b_.shape, name
                assert_close(a, b_, dtype, scale=s)


FUSED_2X2 = [  # (x shape, w shape, stride, padding, dilation): 2x2 pooling, F % 8 == 0
    ((3, 28, 28, 1), (3, 3, 1, 32), 1, "valid", 1),      # the lecture's first block
    ((2, 11, 13, 3), (3, 3, 3, 24), 1, "same", 1),       # borders; 16 + 8 filters; K = 27
    ((2, 12, 9, 2), (2, 3, 2, 8), 2, ((1, 0), (2, 1)), (2, 1)),
    ((1, 9, 9, 4), (4, 4, 4, 16), 1, 2, 1),              # K = 64, the register kernel's limit
    ((1, 9, 9, 5), (4, 4, 5, 8), 1, 2, 1),               # K = 80: the row-buffer path
]


@pytest.mark.parametrize("xs, ws, stride, padding, dilation", FUSED_2X2)
def test_conv_relu_maxpool_2x2_cases(xs, ws, stride, padding, dilation, threads, rng):
    with dispatch.force("relu_maxpool", "fused-direct"), \
            dispatch.force("dw", "direct"):  # also for K > DIRECT_MAX_K
        _check_relu_maxpool_2x2(xs, ws, stride, padding, dilation, rng)


def _check_relu_maxpool_2x2(xs, ws, stride, padding, dilation, rng):
    x = rng.standard_normal(xs).astype(np.float32)
    w = rng.standard_normal(ws).astype(np.float32)
    b = rng.standard_normal(ws[-1]).astype(np.float32)
    args = (stride, padding, dilation)
    want, wc = ref.conv2d_relu_maxpool_forward(x, w, b, *args, pool_size=2)
    got, gc = fast.conv2d_relu_maxpool_forward(x, w, b, *args, pool_size=2)
    assert ("win" in gc.arrays) == fast._HAVE_AVX2
    zabs, abs_cache = ref.conv2d_forward(np.abs(x), np.abs(w), np.abs(b), *args)
    assert_close(got, want, np.float32, scale=_pool_windows(zabs, 2, 2).max(axis=-1))
    dout = rng.standard_normal(want.shape).astype(np.float32)
    scales = ref.conv2d_backward(
        np.abs(ref.maxpool2d_backward(np.abs(dout), wc.arrays["pool"])), abs_cache)
    for input_grad in (False, True):
        gres = fast.conv2d_relu_maxpool_backward(dout, gc, input_grad)
        wres = ref.conv2d_relu_maxpool_backward(dout, wc, input_grad)
        for a, b_, s in zip(gres, wres, scales):
            if b_ is None:
                assert a is None
            else:
                assert_close(a, b_, np.float32, scale=s)


def test_conv_relu_maxpool_nan_like_reference(threads):
    x = np.ones((1, 7, 7, 1), dtype=np.float32)
    x[0, 3, 3, 0] = np.nan
    w = np.ones((2, 2, 1, 8), dtype=np.float32)
    b = np.zeros(8, dtype=np.float32)
    want, wc = ref.conv2d_relu_maxpool_forward(x, w, b, pool_size=2)
    got, gc = fast.conv2d_relu_maxpool_forward(x, w, b, pool_size=2)
    np.testing.assert_array_equal(got, want)
    # The NaN reaches conv outputs (2..3, 2..3): all in pooled window (1, 1).
    assert np.isnan(got[0, 1, 1]).all() and np.isnan(got).sum() == 8
    # A NaN winner passes no gradient through the ReLU (NaN > 0 is false); dw is NaN
    # all the same, as x holds a NaN (times a zero gradient).
    results = [be.conv2d_relu_maxpool_backward(np.ones_like(got), c, input_grad=False)
               for be, c in ((fast, gc), (ref, wc))]
    for _, _, db in results:
        assert (db == 8).all()  # 9 windows, one of them NaN
    np.testing.assert_array_equal(np.isnan(results[0][1]), np.isnan(results[1][1]))


def test_batched_col2im_is_bit_identical_across_thread_counts(rng):
    # 20 images of 4x4 outputs: col2im in 8 runs of 3 images (the last of 2).
    x = rng.standard_normal((20, 6, 6, 16)).astype(np.float32)
    w = rng.standard_normal((3, 3, 16, 24)).astype(np.float32)
    out, cache = fast.conv2d_forward(x, w)
    dout = rng.standard_normal(out.shape).astype(np.float32)
    results = []
    try:
        for n in (1, 2, 1):
            fastconv.set_num_threads(n)
            results.append(fast.conv2d_backward(dout, cache)[0])
    finally:
        fastconv.set_num_threads(None)
    for other in results[1:]:
        assert np.array_equal(results[0], other)
    want = ref.conv2d_backward(dout, ref.conv2d_forward(x, w)[1])[0]
    assert_close(results[0], want, np.float32)


@pytest.mark.parametrize("padding, dilation", [("valid", 1), ("same", 1), (((2, 0), (1, 3)), 2),
                                               ((1, 2), (2, 1))])
def test_single_channel_input_gradient_four_pixels_at_a_time(padding, dilation, threads, rng,
                                                             conv_path):
    # C = 1, F = 32: the direct input gradient takes four pixels at a time inside
    # the image and one at a time at its borders.
    x = rng.standard_normal((3, 13, 19, 1)).astype(np.float32)
    w = rng.standard_normal((3, 2, 1, 32)).astype(np.float32)
    b = rng.standard_normal(32).astype(np.float32)
    args = (1, padding, dilation)
    dout = rng.standard_normal(ref.conv2d_forward(x, w, b, *args)[0].shape).astype(np.float32)
    _conv_compare(np.float32, x, w, b, dout, args)


@pytest.mark.skipif(not fast._HAVE_AVX2, reason="the pixel-vectorised dx is an AVX2 kernel")
@pytest.mark.parametrize("c", [2, 3, 4])
def test_pixel_vectorised_input_gradient_same_bits_any_threads(c, rng):
    # Row blocks (one image) or whole images (many): each pixel's sum has one order.
    x = rng.standard_normal((1, 11, 45, c)).astype(np.float32)
    w = rng.standard_normal((3, 3, c, 16)).astype(np.float32)
    out, cache = fast.conv2d_forward(x, w, None, 1, "same", 2)
    dout = rng.standard_normal(out.shape).astype(np.float32)
    results = []
    before = fastconv._threads._num_threads
    try:
        for threads in (1, 2, 3):
            fastconv.set_num_threads(threads)
            results.append(fast.conv2d_backward(dout, cache)[0])
        fastconv.set_num_threads(2)
        many = fast.conv2d_backward(np.concatenate([dout] * 6),
                                    fast.conv2d_forward(np.concatenate([x] * 6), w, None, 1,
                                                        "same", 2)[1])[0]
    finally:
        fastconv.set_num_threads(before)
    for r in results[1:]:
        assert np.array_equal(r, results[0])
    assert np.array_equal(many[:1], results[0]) and np.array_equal(many[5:], results[0])
    assert_close(results[0], ref.conv2d_backward(
        dout, ref.conv2d_forward(x, w, None, 1, "same", 2)[1])[0], np.float32)


# -- matmul (the Dense layer's forward) ------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=40, deadline=None, suppress_health_check=FIXTURES_OK)
@given(shape=st.tuples(st.integers(0, 150), st.integers(0, 90), st.integers(0, 300)),
       seed=st.integers(0, 2**16))
def test_matmul_matches_reference(shape, seed, dtype, threads):
    m, k, n = shape
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((m, k)).astype(dtype)
    b = rng.standard_normal((k, n)).astype(dtype)
    got = fast.matmul(a, b)
    want = ref.matmul(a, b)
    assert got.dtype == dtype and got.shape == want.shape == (m, n)
    if got.size:
        # Judged against the sum of |terms| of each entry, as the convolutions are, and
        # against a float64 product of the same numbers.
        scale = ref.matmul(np.abs(a), np.abs(b))
        assert_close(got, want, dtype, scale=scale)
        assert_close(got, a.astype(np.float64) @ b.astype(np.float64), dtype, scale=scale)


@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=30, deadline=None, suppress_health_check=FIXTURES_OK)
@given(shape=st.tuples(st.integers(0, 200), st.integers(0, 90), st.integers(0, 300)),
       trans=st.sampled_from([(True, False), (False, True), (True, True)]),
       into=st.booleans(), seed=st.integers(0, 2**16))
def test_matmul_reads_transposed_operands_in_place(shape, trans, into, seed, dtype):
    # x.T and W.T (Dense's backward) are read as they lie (trans_a/trans_b of the
    # blocks); against the reference, into `out` or not, and the same bits on 1 and 2
    # threads.
    m, k, n = shape
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((k, m)).astype(dtype).T if trans[0] else \
        rng.standard_normal((m, k)).astype(dtype)
    b = rng.standard_normal((n, k)).astype(dtype).T if trans[1] else \
        rng.standard_normal((k, n)).astype(dtype)
    assert fast._transposed_view(a) == (trans[0] and m > 1 and k > 1)
    want = ref.matmul(a, b)
    runs = []
    before = fastconv._threads._num_threads
    try:
        for threads in (1, 2):
            fastconv.set_num_threads(threads)
            out = np.full((m, n), np.nan, dtype) if into else None
            got = fast.matmul(a, b, out=out)
            assert out is None or got is out
            runs.append(got)
    finally:
        fastconv.set_num_threads(before)
    np.testing.assert_array_equal(runs[0], runs[1])
    if want.size:
        assert_close(runs[0], want, dtype, scale=ref.matmul(np.abs(a), np.abs(b)))


def test_matmul_into_an_operand_is_computed_aside():
    rng = np.random.default_rng(1)
    a = rng.standard_normal((70, 70)).astype(np.float32)
    b = rng.standard_normal((70, 70)).astype(np.float32)
    want = a @ b
    got = fast.matmul(a, b, out=a)  # out is a: the product must not read what it wrote
    assert got is a
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)


def test_matmul_by_hand():
    a = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], np.float32)   # (3, 2)
    b = np.array([[1.0, 0.0, -1.0], [2.0, 1.0, 0.5]], np.float32)    # (2, 3)
    want = [[5.0, 2.0, 0.0], [11.0, 4.0, -1.0], [17.0, 6.0, -2.0]]
    for be in (fast, ref):
        assert be.matmul(a, b).tolist() == want
        out = np.full((3, 3), np.nan, np.float32)
        assert be.matmul(a, b, out=out) is out and out.tolist() == want
        # float64 with float32 computes in float64; a float32 `out` takes the cast
        assert be.matmul(a.astype(np.float64), b).dtype == np.float64
        out64 = np.zeros((3, 3), np.float64)[:, ::-1]  # not contiguous: computed aside
        assert be.matmul(a, b, out=out64).tolist() == want
        assert be.matmul(np.zeros((2, 0)), np.zeros((0, 3))).tolist() == [[0.0] * 3] * 2


@pytest.mark.parametrize("dtype", DTYPES)
def test_matmul_bit_identical_across_thread_counts(dtype, rng):
    # The lecture model's Dense(128) on 5408 inputs, a product NumPy's OpenBLAS gives
    # other bits on 1 and 2 threads ((256, 3000) @ (3000, 64)), and small ones.
    cases = [((32, 5408), (5408, 128)), ((256, 3000), (3000, 64)), ((300, 70), (70, 600)),
             ((7, 5), (5, 3)), ((1, 10), (10, 1))]
    operands = [(rng.standard_normal(sa).astype(dtype), rng.standard_normal(sb).astype(dtype))
                for sa, sb in cases]
    runs = []
    try:
        for n in (1, 2, 2, 1):
            fastconv.set_num_threads(n)
            runs.append([fast.matmul(a, b) for a, b in operands])
    finally:
        fastconv.set_num_threads(None)
    for other in runs[1:]:
        for u, v in zip(runs[0], other):
            np.testing.assert_array_equal(u, v)


def test_pieces_of_work_follow_the_shapes():
    # The groups of dw and the blocks of matmul are cut from the shapes alone: powers
    # of two, at most 16 (8), covering the work, fewer for small problems.
    from fastconv.backends import _args

    tiny = _args.conv_geometry((1, 8, 8, 48), (1, 1, 48, 64), 2, "valid", 1)
    big = _args.conv_geometry((2, 32, 32, 96), (7, 7, 96, 256), 2, "valid", 1)
    many = _args.conv_geometry((64, 56, 56, 64), (3, 3, 64, 64), 1, "same", 1)
    assert fast._dw_groups(tiny, tiny.N * tiny.OH) == 1
    assert fast._dw_groups(big, big.N * big.OH) == 2      # 338 positions
    assert fast._dw_groups(many, many.N * many.OH) == 16
    assert fast._dw_groups(tiny, 1, at_least=2) == 1      # never more than the pieces
    for m, n, k in [(128, 5408, 128), (4096, 512, 192), (192, 512, 4096), (7, 3, 5),
                    (128, 128, 10), (1000, 1, 1000)]:
        rows, cols = fast._mm_blocks(m, n, k)
        blocks = -(-m // rows) * -(-n // cols)
        assert 1 <= blocks <= fast.MM_BLOCKS and blocks & (blocks - 1) == 0
        assert rows * -(-m // rows) >= m and cols * -(-n // cols) >= n
    assert fast._mm_blocks(128, 128, 5408) == (128, 64)    # a square result: columns
    assert fast._mm_blocks(128, 10, 128) == (128, 10)     # 0.3 MFLOP: one block
