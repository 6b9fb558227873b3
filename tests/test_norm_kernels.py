"""The per-channel kernels behind BatchNormalization and GroupNormalization
(ops.channel_sums, ops.channel_affine): the reference by hand, the compiled backend
against it, bad input."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastconv
from fastconv import _norm, layers
from fastconv.backends import cython as fast
from fastconv.backends import numpy as ref

DTYPES = [np.float32, np.float64]


def test_reference_by_hand():
    # u: one group, rows [1, 10], [3, 20], [5, 30]: sums 9 and 60; shifted by (1, 10):
    # deviations [0, 2, 4] and [0, 10, 20]: s1 = 6, 30; s2 = 0+4+16, 0+100+400.
    u = np.array([[[1.0, 10.0], [3.0, 20.0], [5.0, 30.0]]])
    s1, s2 = ref.channel_sums(u, shift=np.array([[1.0, 10.0]]))
    np.testing.assert_array_equal(s1, [[6.0, 30.0]])
    np.testing.assert_array_equal(s2, [[20.0, 500.0]])
    # with v = 2u and shift 0: s1 = sum u, s2 = sum 2u^2 = 2 (1+9+25), 2 (100+400+900)
    s1, s2 = ref.channel_sums(u, 2 * u)
    np.testing.assert_array_equal(s1, [[9.0, 60.0]])
    np.testing.assert_array_equal(s2, [[70.0, 2800.0]])
    # affine: 2u + 1 per channel 0, -u + 0.5 per channel 1; with v = u and q = 1: + u
    out = ref.channel_affine(u, np.array([[2.0, -1.0]]), np.array([[1.0, 0.5]]))
    np.testing.assert_array_equal(out, [[[3, -9.5], [7, -19.5], [11, -29.5]]])
    out = ref.channel_affine(u, np.array([[2.0, -1.0]]), np.array([[1.0, 0.5]]), u,
                             np.ones((1, 2)))
    np.testing.assert_array_equal(out, [[[4, 0.5], [10, 0.5], [16, 0.5]]])


@st.composite
def blocks(draw):
    a = draw(st.integers(1, 3))
    r = draw(st.one_of(st.integers(1, 20), st.integers(250, 700)))  # one or several blocks
    b = draw(st.one_of(st.integers(1, 9), st.sampled_from([16, 33, 64])))
    return a, r, b, draw(st.integers(0, 2**32 - 1)), draw(st.booleans())


@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=30, deadline=None)
@given(case=blocks())
def test_compiled_matches_reference_and_threads(case, dtype):
    a, r, b, seed, with_v = case
    rng = np.random.default_rng(seed)
    u = (rng.standard_normal((a, r, b)) * 3 + 5).astype(dtype)
    v = rng.standard_normal((a, r, b)).astype(dtype) if with_v else None
    shift = rng.standard_normal((a, b))
    p, q, c = (rng.standard_normal((a, b)).astype(dtype) for _ in range(3))
    want_s = ref.channel_sums(u, v, shift)
    want_a = ref.channel_affine(u, p, c, v, q if with_v else None)
    # the sums' scale: sum of |terms| (the compiled backend adds blocks in another order)
    scale = ref.channel_sums(np.abs(u), None if v is None else np.abs(v),
                             np.zeros_like(shift) if v is None else -np.abs(shift))
    before = fastconv._threads._num_threads
    runs = []
    try:
        for n in (1, 2):
            fastconv.set_num_threads(n)
            runs.append((fast.channel_sums(u, v, shift),
                         fast.channel_affine(u, p, c, v, q if with_v else None)))
    finally:
        fastconv.set_num_threads(before)
    for (s1, s2), out in runs:
        for got, want in zip((s1, s2), want_s):
            assert got.dtype == np.float64 and got.shape == (a, b)
        np.testing.assert_allclose(s1, want_s[0], rtol=0, atol=1e-12 * scale[0].max() + 1e-300)
        assert np.all(np.abs(s2 - want_s[1]) <= 1e-12 * (np.abs(scale[1]) + np.abs(want_s[1])
                                                        + 1e-300))
        assert out.dtype == dtype
        np.testing.assert_array_equal(out, want_a)  # the same expression: the same bits
    for x, y in zip(runs[0][0] + (runs[0][1],), runs[1][0] + (runs[1][1],)):
        np.testing.assert_array_equal(x, y)


BAD = [
    (lambda be: be.channel_sums(np.zeros((3, 4))), ValueError, "`u`"),
    (lambda be: be.channel_sums(np.zeros((1, 3, 4)), np.zeros((1, 3, 5))), ValueError, "`v`"),
    (lambda be: be.channel_sums(np.zeros((1, 3, 4)), shift=np.zeros((1, 3))), ValueError,
     "`shift`"),
    (lambda be: be.channel_sums(np.zeros((1, 3, 4), np.complex64)), TypeError, "`u`"),
    (lambda be: be.channel_affine(np.zeros((2, 3, 4)), np.zeros((1, 4)), np.zeros((2, 4))),
     ValueError, "`p`"),
    (lambda be: be.channel_affine(np.zeros((2, 3, 4)), np.zeros((2, 4)), np.zeros((2, 4)),
                                  np.zeros((2, 3, 4))), ValueError, "`v` and `q` go together"),
    (lambda be: be.channel_affine(np.zeros((2, 3, 4)), np.zeros((2, 4)), None), TypeError, "`r`"),
]


@pytest.mark.parametrize("be", [ref, fast], ids=["numpy", "cython"])
@pytest.mark.parametrize("call, exc, match", BAD)
def test_bad_arguments(be, call, exc, match):
    with pytest.raises(exc, match=match):
        call(be)


def test_rows_per_task_is_fixed():
    # The block size sets the order of the sums: a constant, not the thread count.
    assert _norm.ROWS == 256


@pytest.mark.parametrize("make, shape", [
    (lambda: layers.BatchNormalization(), (6, 5, 7, 16)),
    (lambda: layers.BatchNormalization(center=False), (300, 33)),
    (lambda: layers.GroupNormalization(groups=4), (3, 6, 5, 8)),
    (lambda: layers.GroupNormalization(groups=-1, scale=False), (2, 9, 4, 6)),
])
@pytest.mark.parametrize("dtype", DTYPES)
def test_layers_on_the_kernels_agree_across_backends(make, shape, dtype, rng):
    # The layers run on ops.channel_* of the active backend: both backends give the
    # same outputs and gradients within rounding (and training updates the moving
    # statistics alike).
    x = (rng.standard_normal(shape) * 2 + 1).astype(dtype)
    dout = rng.standard_normal(shape).astype(dtype)
    results = []
    for backend in ("numpy", "cython"):
        layer = make()
        layer.build_for((None,) + shape[1:], dtype)
        with fastconv.use_backend(backend):
            for training in (True, False):
                out, ctx = layer.forward(x, training)
                dx, wg = layer.backward(dout, ctx)
                results.append((out, dx, [g for _, g in wg], layer.get_weights()))
    tol = 2e-5 if dtype == np.float32 else 1e-12
    for a, b in zip(results[:2], results[2:]):
        for u, v in zip(a[:2] + tuple(a[2]) + tuple(a[3]), b[:2] + tuple(b[2]) + tuple(b[3])):
            np.testing.assert_allclose(u, v, rtol=tol, atol=tol)
