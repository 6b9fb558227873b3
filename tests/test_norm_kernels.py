"""The per-channel kernels behind BatchNormalization and GroupNormalization
(ops.channel_sums, ops.channel_affine, with a following ReLU's gate), and
ops.add_relu_forward: the reference by hand, the compiled backend against it, bad
input."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastconv
from fastconv import _norm, layers
from fastconv.backends import cython as fast
from fastconv.backends import numpy as ref
from fastconv.graph import add as graph_add

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


def test_gate_and_relu_reference_by_hand():
    # v = [-1, 2], [3, -4] with the map 2 v + 1 per channel: [-1, 5], [7, -7], so the
    # ReLU passes (row, channel) (0, 1) and (1, 0). u = [10, 20], [30, 40] gated:
    # [0, 20], [30, 0]: sums 30, 20; with v and shift 0: s2 = 30 * 3, 20 * 2.
    u = np.array([[[10.0, 20.0], [30.0, 40.0]]])
    v = np.array([[[-1.0, 2.0], [3.0, -4.0]]])
    gate = (np.full((1, 2), 2.0), np.ones((1, 2)))
    s1, s2 = ref.channel_sums(u, v, gate=gate)
    np.testing.assert_array_equal(s1, [[30.0, 20.0]])
    np.testing.assert_array_equal(s2, [[90.0, 40.0]])
    # affine of the gated u: 1 * [0, 20], [30, 0] + 0.5 v + 1
    out = ref.channel_affine(u, np.ones((1, 2)), np.ones((1, 2)), v, np.full((1, 2), 0.5),
                             gate=gate)
    np.testing.assert_array_equal(out, [[[0.5, 22.0], [32.5, -1.0]]])
    # relu: 2 v + 1 -> [0, 5], [7, 0]
    out = ref.channel_affine(v, *gate, relu=True)
    np.testing.assert_array_equal(out, [[[0.0, 5.0], [7.0, 0.0]]])
    # add_relu: max(a + b, 0), NaN kept; its cache is relu_forward's of the output
    a = np.array([1.0, -2.0, np.nan, 0.5])
    out, cache = ref.add_relu_forward(a, np.array([1.0, 1.0, 0.0, -0.5]))
    np.testing.assert_array_equal(out, [2.0, 0.0, np.nan, 0.0])
    np.testing.assert_array_equal(ref.relu_backward(np.ones(4), cache), [1, 0, 0, 0])


@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=30, deadline=None)
@given(case=blocks())
def test_gated_kernels_match_the_relu_then_the_kernel(case, dtype):
    # The gate is a ReLU's gradient taken inside the pass: the compiled and reference
    # kernels give the bits of relu_backward followed by the ungated kernel (sums:
    # the same expression on the same values), and relu=True those of the map followed
    # by relu_forward; for 1 and 2 threads alike.
    a, r, b, seed, _ = case
    rng = np.random.default_rng(seed)
    u, v = (rng.standard_normal((a, r, b)).astype(dtype) for _ in range(2))
    if r > 2:
        v[0, 1, 0] = np.nan  # NaN's ReLU passes no gradient
        v[0, 2, 0] = np.inf
    gp, gr, p, q, c = (rng.standard_normal((a, b)).astype(dtype) for _ in range(5))
    shift = rng.standard_normal((a, b))
    y, rcache = ref.relu_forward(ref.channel_affine(v, gp, gr))
    ug = ref.relu_backward(u, rcache)
    want_affine = ref.channel_affine(ug, p, c, v, q)
    before = fastconv._threads._num_threads
    try:
        for be, n in ((ref, 1), (fast, 1), (fast, 2)):
            fastconv.set_num_threads(n)
            with np.errstate(invalid="ignore"):  # (0 * inf in s2, gated or not)
                got = (be.channel_sums(u, v, shift, gate=(gp, gr)),
                       be.channel_affine(u, p, c, v, q, gate=(gp, gr)),
                       be.channel_affine(v, gp, gr, relu=True))
                # the sums: as the backend's own ungated sums of the gated u
                plain = be.channel_sums(ug, v, shift)
            for x, w in zip(got[0], plain):
                np.testing.assert_array_equal(x, w)
            np.testing.assert_array_equal(got[1], want_affine)
            np.testing.assert_array_equal(got[2], y)
    finally:
        fastconv.set_num_threads(before)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(0, 3), (7,), (5, 300, 33), (2, 1 << 16)])
def test_add_and_add_relu_match_reference_and_threads(shape, dtype, rng):
    a, b = (rng.standard_normal(shape).astype(dtype) for _ in range(2))
    if a.size > 3:
        a.flat[0], a.flat[1], b.flat[2] = np.nan, np.inf, -np.inf
    want, _ = ref.add_relu_forward(a, b)
    np.testing.assert_array_equal(want, np.maximum(a + b, 0))
    dout = rng.standard_normal(shape).astype(dtype)
    before = fastconv._threads._num_threads
    try:
        for n in (1, 2):
            fastconv.set_num_threads(n)
            out, cache = fast.add_relu_forward(a, b)
            assert out.dtype == dtype
            np.testing.assert_array_equal(out, want)
            for be in (ref, fast):
                total = be.add(a, b)
                assert total.dtype == dtype
                np.testing.assert_array_equal(total, a + b)
            # (the graph's sum of gradients and merges: the kernel where it applies,
            # NumPy's broadcasting operator otherwise)
            np.testing.assert_array_equal(graph_add(a, b), a + b)
            np.testing.assert_array_equal(graph_add(a, b[:1]), a + b[:1])
            np.testing.assert_array_equal(fast.relu_backward(dout, cache),
                                          np.where(a + b > 0, dout, 0))
    finally:
        fastconv.set_num_threads(before)


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
    (lambda be: be.channel_sums(np.zeros((1, 3, 4)), gate=(np.zeros((1, 4)),) * 2),
     ValueError, "needs `v`"),
    (lambda be: be.channel_sums(np.zeros((1, 3, 4)), np.zeros((1, 3, 4)),
                                gate=(np.zeros((1, 4)), np.zeros((1, 3)))), ValueError,
     r"`gate\[1\]`"),
    (lambda be: be.channel_affine(np.zeros((1, 3, 4)), np.zeros((1, 4)), np.zeros((1, 4)),
                                  np.zeros((1, 3, 4)), np.zeros((1, 4)), gate=np.zeros(4)),
     TypeError, "`gate`"),
    (lambda be: be.add_relu_forward(np.zeros((2, 3)), np.zeros((3,))), ValueError, "`b`"),
    (lambda be: be.add(np.zeros((2, 3)), np.zeros((2, 4))), ValueError, "`b`"),
    (lambda be: be.add_relu_forward(np.zeros(3, np.complex64), np.zeros(3)), TypeError, "`a`"),
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
    (lambda: layers.LayerNormalization(), (3, 5, 4, 12)),
    (lambda: layers.LayerNormalization(center=False), (300, 7)),
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


def test_layernorm_reference_by_hand():
    # Row [1, 2, 3, 6]: mean 3, deviations -2, -1, 0, 3, variance 14/4 = 3.5; with
    # epsilon 0.5 inv = 1/2: xhat = -1, -0.5, 0, 1.5; gamma 2, beta 1: -1, 0, 1, 4.
    x = np.array([[1.0, 2.0, 3.0, 6.0]])
    out, mean, inv = ref.layernorm_forward(x, np.full(4, 2.0), np.ones(4), 0.5)
    np.testing.assert_array_equal(mean, [3.0])
    np.testing.assert_array_equal(inv, [0.5])
    np.testing.assert_array_equal(out, [[-1.0, 0.0, 1.0, 4.0]])
    # dout = 1 everywhere: dxhat = 2, mean(dxhat) = 2, mean(dxhat * xhat) = 0: dx = 0;
    # dgamma = xhat, dbeta = 1.
    dx, dgamma, dbeta = ref.layernorm_backward(np.ones((1, 4)), x, mean, inv, np.full(4, 2.0))
    np.testing.assert_array_equal(dx, np.zeros((1, 4)))
    np.testing.assert_array_equal(dgamma, [-1.0, -0.5, 0.0, 1.5])
    np.testing.assert_array_equal(dbeta, np.ones(4))


def test_layernorm_reference_gradients_numerically(rng):
    from fastconv.testing import numerical_gradient, relative_error

    x = rng.standard_normal((5, 7))
    g, b = rng.standard_normal(7), rng.standard_normal(7)
    out, mean, inv = ref.layernorm_forward(x, g, b, 1e-3)
    dout = rng.standard_normal(out.shape)
    dx, dg, db = ref.layernorm_backward(dout, x, mean, inv, g)

    def f():
        return ref.layernorm_forward(x, g, b, 1e-3)[0]

    assert relative_error(dx, numerical_gradient(f, x, dout)) < 1e-7
    assert relative_error(dg, numerical_gradient(f, g, dout)) < 1e-7
    assert relative_error(db, numerical_gradient(f, b, dout)) < 1e-7


@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=30, deadline=None)
@given(m=st.one_of(st.integers(1, 9), st.integers(250, 600)),
       c=st.one_of(st.integers(1, 9), st.sampled_from([16, 33, 96])),
       affine=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_layernorm_compiled_matches_reference_and_threads(m, c, affine, seed, dtype):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((m, c)) * 2 + 3).astype(dtype)
    g = rng.standard_normal(c).astype(dtype) if affine else None
    b = rng.standard_normal(c).astype(dtype) if affine else None
    dout = rng.standard_normal((m, c)).astype(dtype)
    want_f = ref.layernorm_forward(x, g, b, 1e-3)
    want_b = ref.layernorm_backward(dout, x, want_f[1], want_f[2], g)
    before = fastconv._threads._num_threads
    runs = []
    try:
        for n in (1, 2):
            fastconv.set_num_threads(n)
            f = fast.layernorm_forward(x, g, b, 1e-3)
            runs.append(f + fast.layernorm_backward(dout, x, f[1], f[2], g))
    finally:
        fastconv.set_num_threads(before)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    for got, want in zip(runs[0], want_f + want_b):
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol * (1 + np.abs(want).max()))
    for u, v in zip(*runs):
        np.testing.assert_array_equal(u, v)


LN_BAD = [
    (lambda be: be.layernorm_forward(np.zeros((2, 3, 4))), ValueError, "`x`"),
    (lambda be: be.layernorm_forward(np.zeros((2, 3)), np.zeros(4)), ValueError, "`gamma`"),
    (lambda be: be.layernorm_forward(np.zeros((2, 3)), None, np.zeros((3, 1))), ValueError,
     "`beta`"),
    (lambda be: be.layernorm_forward(np.zeros((2, 3)), epsilon=0), ValueError, "`epsilon`"),
    (lambda be: be.layernorm_backward(np.zeros((2, 4)), np.zeros((2, 3)), np.zeros(2),
                                      np.ones(2)), ValueError, "`dout`"),
    (lambda be: be.layernorm_backward(np.zeros((2, 3)), np.zeros((2, 3)), np.zeros(3),
                                      np.ones(2)), ValueError, "`mean`"),
    (lambda be: be.layernorm_backward(np.zeros((2, 3)), np.zeros((2, 3)), np.zeros(2),
                                      None), TypeError, "`inv`"),
]


@pytest.mark.parametrize("be", [ref, fast], ids=["numpy", "cython"])
@pytest.mark.parametrize("call, exc, match", LN_BAD)
def test_layernorm_bad_arguments(be, call, exc, match):
    with pytest.raises(exc, match=match):
        call(be)
