"""Winograd F(2x2, 3x3): the NumPy twin (fastconv.backends.winograd) and the compiled
kernels (fastconv._winograd, reached through the dispatch table) against the float64
reference convolution, within the error bound the twin's module derives; bit-identity
across thread counts and instruction sets; NaN and Inf; the conv-algorithm switch.
"""

import tracemalloc

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import fastconv
from fastconv import _winograd
from fastconv.backends import cython as fast
from fastconv.backends import dispatch
from fastconv.backends import numpy as ref
from fastconv.backends import winograd as wino
from fastconv.backends._args import conv_args
from fastconv.testing import numerical_gradient, relative_error

from . import naive

DTYPES = [np.float32, np.float64]
FIXTURES_OK = [HealthCheck.function_scoped_fixture]


@st.composite
def cases(draw, max_size=9, max_channels=20, max_batch=3):
    """(x shape, w shape, bias?, padding, seed) of a 3x3 stride-1 layer: tiny and odd
    maps, channel counts on and off the vector widths, 'valid', 'same' and explicit
    paddings up to 3 (beyond the filter's reach: the input gradient's pass then
    starts inside dout)."""
    n = draw(st.integers(1, max_batch))
    h, w = draw(st.integers(1, max_size)), draw(st.integers(1, max_size))
    c = draw(st.one_of(st.integers(1, max_channels), st.sampled_from([16, 32])))
    f = draw(st.one_of(st.integers(1, max_channels), st.sampled_from([16, 24, 32])))
    padding = draw(st.one_of(
        st.sampled_from(["valid", "same"]),
        st.tuples(st.tuples(st.integers(0, 3), st.integers(0, 3)),
                  st.tuples(st.integers(0, 3), st.integers(0, 3)))))
    ph, pw = ((0, 0), (0, 0)) if padding == "valid" else (
        ((1, 1), (1, 1)) if padding == "same" else padding)
    assume(h + sum(ph) >= 3 and w + sum(pw) >= 3)
    return (n, h, w, c), (3, 3, c, f), draw(st.booleans()), padding, draw(
        st.integers(0, 2**32 - 1))


def _arrays(xs, ws, bias, seed, dtype):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(xs).astype(dtype)
    w = rng.standard_normal(ws).astype(dtype)
    b = rng.standard_normal(ws[-1]).astype(dtype) if bias else None
    return x, w, b


def _geometry(x, w, padding):
    return conv_args(x, w, None, 1, padding, 1)[3]


def _gamma(n, dtype):
    u = np.finfo(dtype).eps / 2
    return n * u / (1 - n * u)


def _check_against_reference(got, x, w, b, dout, padding, dtype, m=2):
    """got = (out, dx, dw, db) of a Winograd F(m x m, 3 x 3) implementation, judged
    against the float64 reference by the bounds of fastconv.backends.winograd."""
    g = _geometry(x, w, padding)
    f64 = [None if a is None else a.astype(np.float64) for a in (x, w, b, dout)]
    out, cache = ref.conv2d_forward(f64[0], f64[1], f64[2], 1, padding)
    dx, dw, db = ref.conv2d_backward(f64[3], cache)
    bound = wino.error_bound(m, g.C, dtype)
    err = relative_error(got[0], out, wino.extended_scale(x, w, b, padding, m))
    assert err <= bound, ("forward", err, bound)
    w_flip = np.ascontiguousarray(w[::-1, ::-1].transpose(0, 1, 3, 2))
    scale = wino.extended_scale_at(dout, w_flip, 2 - g.pt, 2 - g.pl, g.H, g.W, m)
    err = relative_error(got[1], dx, scale)
    assert err <= wino.error_bound(m, g.F, dtype), ("dx", err)
    tiles = g.N * -(-g.OH // m) * -(-g.OW // m)
    err = relative_error(got[2], dw, wino.extended_dw_scale(x, dout, padding, m))
    assert err <= wino.error_bound(m, tiles, dtype, "dw"), ("dw", err)
    if b is None:
        assert got[3] is None
    else:
        err = relative_error(got[3], db, np.abs(f64[3]).sum(axis=(0, 1, 2)))
        assert err <= _gamma(g.N * g.OH * g.OW + 16, dtype), ("db", err)
    for a, want in zip(got, (out, dx, dw, db)):
        if a is not None:
            assert a.dtype == dtype and a.shape == want.shape


def _compiled(x, w, b, dout, padding):
    """(out, dx, dw, db) of the compiled backend, each pass asserted to run Winograd."""
    g = _geometry(x, w, padding)
    assert dispatch.choose("forward", g, x.dtype, True).name == dispatch.WINOGRAD
    _, dx_c, dw_c = dispatch.plan_backward(g, x.dtype, True)
    assert (dx_c.name, dw_c.name) == (dispatch.WINOGRAD, dispatch.WINOGRAD)
    out, cache = fast.conv2d_forward(x, w, b, 1, padding)
    return (out, *fast.conv2d_backward(dout, cache))


def _dout(shape, seed, dtype):
    return np.random.default_rng(seed + 1).standard_normal(shape).astype(dtype)


# ------------------------------------------------------------------ the bound itself


def test_ghost_factor_of_f2x2_is_the_hand_count():
    # F(2, 3) on absolute values: output 0 = |m0| + |m1| + |m2| with m0 = (d0 - d2) g0,
    # m1, m2 = (d1 +- d2)(g0 +- g1 + g2) / 2: weight 1 on its own terms d0g0, d1g1, d2g2,
    # 1 on d1g0 and d2g1 (output 1's), 2 on d2g0 (output 2's), 1 on d1g2 (output -1's):
    # 1 + 1 + 2 + 1 = 5 (output 1 likewise). dw: each tap's ghosts are the other taps'.
    assert wino.ghost_factor(2) == 5
    assert wino.offsets(2) == (-1, 2)
    assert wino.ghost_factor(2, "dw") == 4
    assert wino.offsets(2, "dw") == (0, 2)
    assert wino.ghost_factor(4) > 6 * wino.ghost_factor(2)  # F(4x4) loses more


def test_error_bound_values():
    # 25 * gamma_(C + 23) in float32: the figures the module's docstring quotes
    assert wino.error_bound(2, 16, np.float32) == pytest.approx(25 * 39 * 2**-24, rel=1e-3)
    assert 3e-4 < wino.error_bound(2, 256, np.float32) < 5e-4
    assert wino.error_bound(2, 256, np.float64) < 1e-12
    with pytest.raises(ValueError, match="`m` must be one of"):
        wino.winograd_conv2d_forward(np.zeros((1, 4, 4, 1)), np.zeros((3, 3, 1, 1)), m=3)


# ------------------------------------------------------------------------ the twin


@pytest.mark.parametrize("m", [2, 4])
@settings(max_examples=25, deadline=None)
@given(case=cases(max_size=11, max_channels=5))
def test_twin_matches_reference_within_bound(case, m):
    xs, ws, bias, padding, seed = case
    x, w, b = _arrays(xs, ws, bias, seed, np.float64)
    out, cache = wino.winograd_conv2d_forward(x, w, b, padding, m)
    dout = _dout(out.shape, seed, np.float64)
    _check_against_reference((out, *wino.winograd_conv2d_backward(dout, cache)),
                             x, w, b, dout, padding, np.float64, m)


def test_twin_f4x4_on_float32_loses_more_than_f2x2():
    # Same data, both tile sizes in float32: F(4x4)'s larger transform constants give
    # a larger error against the float64 reference (and still within its bound).
    rng = np.random.default_rng(5)
    x = rng.standard_normal((4, 16, 16, 32)).astype(np.float32)
    w = rng.standard_normal((3, 3, 32, 16)).astype(np.float32)
    want = ref.conv2d_forward(x.astype(np.float64), w.astype(np.float64), None, 1, "same")[0]
    errs = {}
    for m in (2, 4):
        got = wino.winograd_conv2d_forward(x, w, None, "same", m)[0]
        errs[m] = relative_error(got, want, wino.extended_scale(x, w, None, "same", m))
        assert errs[m] <= wino.error_bound(m, 32, np.float32)
    assert errs[4] > 2 * errs[2]


@pytest.mark.parametrize("m", [2, 4])
@pytest.mark.parametrize("padding", ["valid", "same", ((2, 0), (1, 3))])
def test_twin_gradients_are_numerical_gradients(m, padding):
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2, 5, 6, 2))
    w = rng.standard_normal((3, 3, 2, 3))
    b = rng.standard_normal(3)
    out, cache = wino.winograd_conv2d_forward(x, w, b, padding, m)
    dout = rng.standard_normal(out.shape)
    dx, dw, db = wino.winograd_conv2d_backward(dout, cache)

    def f():
        return wino.winograd_conv2d_forward(x, w, b, padding, m)[0]

    for got, arr in ((dx, x), (dw, w), (db, b)):
        num = numerical_gradient(f, arr, dout)
        assert relative_error(got, num) < 1e-7


def test_twin_rejects_other_filters_and_strides():
    with pytest.raises(ValueError, match="`w` must be filters of shape"):
        wino.winograd_conv2d_forward(np.zeros((1, 5, 5, 1)), np.zeros((5, 5, 1, 1)))


# ------------------------------------------------------------------ compiled kernels


@pytest.fixture
def winograd():
    with fastconv.conv_algorithm("winograd"):
        yield


@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=40, deadline=None, suppress_health_check=FIXTURES_OK)
@given(case=cases())
def test_compiled_matches_reference_within_bound(case, dtype, threads, winograd):
    xs, ws, bias, padding, seed = case
    x, w, b = _arrays(xs, ws, bias, seed, dtype)
    dout = _dout(_geometry(x, w, padding).out_shape, seed, dtype)
    _check_against_reference(_compiled(x, w, b, dout, padding), x, w, b, dout, padding,
                             dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_compiled_matches_loop_oracle(dtype, winograd):
    x, w, b = _arrays((2, 7, 6, 3), (3, 3, 3, 5), True, 3, dtype)
    got = _compiled(x, w, b, np.zeros((2, 7, 6, 5), dtype), "same")[0]
    want = naive.conv2d(x.astype(np.float64), w.astype(np.float64), b.astype(np.float64),
                        (1, 1), (1, 1, 1, 1), (1, 1))
    assert relative_error(got, want, wino.extended_scale(x, w, b, "same")) <= \
        wino.error_bound(2, 3, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_compiled_float64_matches_the_twin(dtype, winograd):
    # The same algorithm in another summation order: within the bound of each other.
    rng = np.random.default_rng(11)
    x = rng.standard_normal((3, 9, 8, 12)).astype(dtype)
    w = rng.standard_normal((3, 3, 12, 20)).astype(dtype)
    dout = rng.standard_normal((3, 9, 8, 20)).astype(dtype)
    got = _compiled(x, w, None, dout, "same")
    out, cache = wino.winograd_conv2d_forward(x.astype(np.float64), w.astype(np.float64),
                                              None, "same")
    twin = (out, *wino.winograd_conv2d_backward(dout.astype(np.float64), cache))
    for name, a, t in zip(["out", "dx", "dw"], got, twin):
        assert relative_error(a, t) <= 2 * wino.error_bound(2, 3 * 5 * 4, dtype, "dw"), name


def _all_passes(x, w, b, dout, padding):
    out, cache = fast.conv2d_forward(x, w, b, 1, padding)
    return (out, *fast.conv2d_backward(dout, cache))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape, padding", [
    ((9, 16, 15, 24), "same"),   # 9 * 64 tiles: several chunks and weight-grad groups
    ((40, 7, 7, 16), "same"),
    ((3, 30, 30, 8), "valid"),
])
def test_bits_do_not_depend_on_threads(shape, padding, dtype, winograd):
    x, w, b = _arrays(shape, (3, 3, shape[3], 20), True, 2, dtype)
    dout = _dout(_geometry(x, w, padding).out_shape, 0, dtype)
    before = fastconv.get_num_threads()
    try:
        results = []
        for n in (1, 2):
            fastconv.set_num_threads(n)
            results.append(_all_passes(x, w, b, dout, padding))
    finally:
        fastconv.set_num_threads(before)
    for a, c in zip(*results):
        np.testing.assert_array_equal(a, c)


def test_concurrent_calls_get_the_bits_of_a_lone_call(winograd):
    # Four Python threads share the kernel threads; chunks and groups are fixed by the
    # shapes, so every call gives the lone call's bits (dw on Winograd too: C = 64).
    from concurrent.futures import ThreadPoolExecutor

    x, w, b = _arrays((6, 12, 12, 64), (3, 3, 64, 32), True, 1, np.float32)
    dout = _dout((6, 12, 12, 32), 1, np.float32)
    alone = _all_passes(x, w, b, dout, "same")
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: _all_passes(x, w, b, dout, "same"), range(8)))
    for res in results:
        for a, c in zip(alone, res):
            np.testing.assert_array_equal(a, c)


def test_an_image_gets_the_same_bits_alone_and_in_a_batch(winograd):
    # Chunks of tiles span images; the GEMM of a tile's row does not depend on its
    # neighbours, so an image's output does not depend on the batch around it.
    rng = np.random.default_rng(4)
    x = rng.standard_normal((37, 10, 10, 16)).astype(np.float32)
    w = rng.standard_normal((3, 3, 16, 32)).astype(np.float32)
    whole = fast.conv2d_forward(x, w, None, 1, "same")[0]
    for i in (0, 17, 36):
        alone = fast.conv2d_forward(x[i:i + 1], w, None, 1, "same")[0]
        np.testing.assert_array_equal(alone[0], whole[i])


@pytest.mark.parametrize("dtype", DTYPES)
def test_every_instruction_set_copy_gives_the_same_bits(dtype, winograd):
    x, w, b = _arrays((4, 9, 11, 20), (3, 3, 20, 24), True, 9, dtype)
    dout = _dout((4, 9, 11, 24), 1, dtype)
    results = {}
    try:
        for level in (0, 1, 2):
            chosen = _winograd.set_isa(level)
            results[chosen] = _all_passes(x, w, b, dout, "same")
    finally:
        _winograd.set_isa(2)
    first = results[0]
    for level, res in results.items():
        for a, c in zip(first, res):
            np.testing.assert_array_equal(a, c, err_msg=_winograd.ISA_NAMES[level])


def test_relu_forward_on_winograd(winograd):
    x, w, b = _arrays((2, 8, 8, 16), (3, 3, 16, 16), True, 6, np.float32)
    z = fast.conv2d_forward(x, w, b, 1, "same")[0]
    out = fast.conv2d_relu_forward(x, w, b, 1, "same")[0]
    np.testing.assert_array_equal(out, np.where(z <= 0, 0, z))


def _peak_extra(fn, keep):
    """Peak bytes ``fn()`` allocates through NumPy beyond ``keep(result)``."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        result = fn()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return peak - keep(result)


def test_workspace_does_not_grow_with_the_batch(winograd):
    # Forward and backward on 128 and 512 images: the extra memory (beyond the results)
    # is the per-thread chunk workspace, the transformed filters and the 16 dw groups,
    # the same for both batches (up to the rounding of the chunk: 61 and 64 tiles).
    peaks = []
    for n in (128, 512):
        x, w, _ = _arrays((n, 14, 14, 32), (3, 3, 32, 64), False, 0, np.float32)
        out, cache = fast.conv2d_forward(x, w, None, 1, "same")
        fwd = _peak_extra(lambda x=x, w=w: fast.conv2d_forward(x, w, None, 1, "same")[0],
                          lambda r: r.nbytes)
        bwd = _peak_extra(lambda out=out, cache=cache: fast.conv2d_backward(out, cache),
                          lambda r: r[0].nbytes + r[1].nbytes)
        peaks.append((fwd, bwd))
    (f64_, b64), (f256, b256) = peaks
    assert f256 <= 1.1 * f64_ + 65536 and b256 <= 1.1 * b64 + 65536, peaks
    assert f256 < 4 * 2**20 and b256 < 4 * 2**20, peaks  # (out: 12.8 MB at 256 images)


# ------------------------------------------------------------------------ NaN, Inf


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # (reference)
@pytest.mark.parametrize("padding", ["valid", "same"])
@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_nonfinite_input_reaches_the_outputs_direct_convolution_reaches(padding, value,
                                                                         winograd):
    # Each output of a tile depends only on its own window (the transforms' zeros are
    # skipped, not multiplied), so a non-finite pixel makes exactly the outputs whose
    # window holds it non-finite. An Inf may come out as NaN (Inf - Inf in the
    # transforms) where direct convolution gives +-Inf.
    rng = np.random.default_rng(8)
    x = rng.standard_normal((2, 9, 8, 16)).astype(np.float32)
    w = rng.standard_normal((3, 3, 16, 16)).astype(np.float32)
    for pos in [(0, 0, 0, 3), (1, 4, 5, 0), (1, 8, 7, 15), (0, 3, 0, 1)]:
        x[pos] = value
    dout = _dout(_geometry(x, w, padding).out_shape, 0, np.float32)
    dout[0, 1, 2, 5] = value
    got = _compiled(x, w, None, dout, padding)
    want = ref.conv2d_forward(x, w, None, 1, padding)
    want = (want[0], *ref.conv2d_backward(dout, want[1]))
    for name, a, c in zip(["out", "dx"], got[:2], want[:2]):
        np.testing.assert_array_equal(np.isfinite(a), np.isfinite(c), err_msg=name)
        if np.isnan(value):
            np.testing.assert_array_equal(np.isnan(a), np.isnan(c), err_msg=name)
    # dw: the same (c, f) pairs are non-finite, but within a pair more taps may be
    # (G^T S G mixes the taps a transformed tile touches): a superset of the reference's.
    dw, dw_ref = got[2], want[2]
    assert not np.isfinite(dw[~np.isfinite(dw_ref)]).any()
    np.testing.assert_array_equal(np.isfinite(dw).all(axis=(0, 1)),
                                  np.isfinite(dw_ref).all(axis=(0, 1)))


def test_nonfinite_weights_take_the_direct_kernels(winograd):
    # An Inf weight times the padding's zeros is NaN in the reference; Winograd would
    # spread it over whole tiles, so the table sends such layers to the direct kernels.
    rng = np.random.default_rng(10)
    x = rng.standard_normal((2, 8, 8, 16)).astype(np.float32)
    w = rng.standard_normal((3, 3, 16, 16)).astype(np.float32)
    w[1, 1, 0, 0] = np.inf
    g = _geometry(x, w, "same")
    assert dispatch.choose("forward", g, x.dtype, dispatch.FiniteWeights(w)).name != \
        dispatch.WINOGRAD
    got = fast.conv2d_forward(x, w, None, 1, "same")[0]
    with fastconv.conv_algorithm("direct"):
        direct = fast.conv2d_forward(x, w, None, 1, "same")[0]
    np.testing.assert_array_equal(got, direct)


# --------------------------------------------------------------- the algorithm switch


def test_set_conv_algorithm_checks_its_argument():
    for bad in ("fast", None, 2, "Winograd"):
        with pytest.raises(ValueError, match="`algorithm` must be one of"):
            fastconv.set_conv_algorithm(bad)
    assert fastconv.get_conv_algorithm() == "auto"


def test_conv_algorithm_context_nests_and_restores():
    assert fastconv.get_conv_algorithm() == "auto"
    with fastconv.conv_algorithm("winograd"):
        assert fastconv.get_conv_algorithm() == "winograd"
        with fastconv.conv_algorithm("direct"):
            assert fastconv.get_conv_algorithm() == "direct"
        assert fastconv.get_conv_algorithm() == "winograd"
    assert fastconv.get_conv_algorithm() == "auto"
    with pytest.raises(RuntimeError):
        with fastconv.conv_algorithm("direct"):
            raise RuntimeError
    assert fastconv.get_conv_algorithm() == "auto"


@pytest.mark.parametrize("xs, ws, stride, padding", [
    ((64, 14, 14, 128), (3, 3, 128, 128), 1, "same"),
    ((64, 7, 7, 256), (3, 3, 256, 256), 1, "same"),
    ((32, 26, 26, 32), (3, 3, 32, 64), 1, "valid"),
    ((4, 9, 9, 16), (3, 3, 16, 24), 1, ((3, 0), (0, 2))),
])
def test_direct_never_takes_winograd_and_keeps_the_table_bits(xs, ws, stride, padding):
    rng = np.random.default_rng(1)
    x = rng.standard_normal(xs).astype(np.float32)
    w = rng.standard_normal(ws).astype(np.float32)
    g = _geometry(x, w, padding)
    with fastconv.conv_algorithm("direct"):
        fwd = dispatch.choose("forward", g, x.dtype, True)
        _, dx_c, dw_c = dispatch.plan_backward(g, x.dtype, True)
        assert dispatch.WINOGRAD not in (fwd.name, dx_c.name, dw_c.name)
        # the choice of a table without the Winograd candidates
        assert fwd == dispatch.choose("forward", g, x.dtype, True, (dispatch.WINOGRAD,))
        out = fast.conv2d_forward(x, w, None, stride, padding)[0]
    with dispatch.force("forward", fwd.name), fastconv.conv_algorithm("auto"):
        forced = fast.conv2d_forward(x, w, None, stride, padding)[0]
    np.testing.assert_array_equal(out, forced)


def test_winograd_only_where_valid():
    x = np.zeros((2, 9, 9, 16), np.float32)
    with fastconv.conv_algorithm("winograd"):
        for ws, stride, dil in [((5, 5, 16, 16), 1, 1), ((3, 3, 16, 16), 2, 1),
                                ((3, 3, 16, 16), 1, 2), ((3, 1, 16, 16), 1, 1)]:
            g = conv_args(x, np.zeros(ws, np.float32), None, stride, "same", dil)[3]
            assert dispatch.choose("forward", g, x.dtype, True).name != dispatch.WINOGRAD
        g = _geometry(x, np.zeros((3, 3, 16, 16), np.float32), "same")
        assert dispatch.choose("forward", g, x.dtype, True).name == dispatch.WINOGRAD
        assert dispatch.choose("forward", g, np.dtype(np.float64), True).name == \
            dispatch.WINOGRAD


def test_show_config_reports_the_algorithm_and_transforms(capsys):
    with fastconv.conv_algorithm("direct"):
        fastconv.show_config()
    line = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("conv:")]
    assert line == [f"conv:      algorithm 'direct', Winograd transforms: {_winograd.isa()}"]
    assert _winograd.isa() in _winograd.ISA_NAMES


def test_explain_conv_names_winograd(capsys):
    with fastconv.conv_algorithm("winograd"):
        choices = fastconv.explain_conv((64, 14, 14, 128), (3, 3, 128, 128), padding="same")
    assert [c.kernel for c in choices.values()] == [dispatch.WINOGRAD] * 3
    text = capsys.readouterr().out
    assert "Winograd" in text and "conv algorithm: winograd" in text


# ------------------------------------------------------------------------- training


def _train_sample(algorithm):
    """A small two-conv CNN (3x3 'same' layers of 16 and 32 filters, the second on 16
    channels) trained 3 epochs on the embedded Fashion-MNIST sample's 2000 images;
    (test accuracy on its 500 test images, final weights)."""
    from fastconv.datasets import fashion_mnist
    from fastconv.keras.utils import set_random_seed
    from fastconv.layers import Conv2D, Dense, Flatten, MaxPooling2D
    from fastconv.models import Sequential
    from fastconv.utils import to_categorical

    (x_train, y_train), (x_test, y_test) = fashion_mnist.load_sample()
    x_train = x_train.reshape(-1, 28, 28, 1).astype("float32") / 255
    x_test = x_test.reshape(-1, 28, 28, 1).astype("float32") / 255
    set_random_seed(3)
    model = Sequential([
        Conv2D(16, 3, padding="same", activation="relu", input_shape=(28, 28, 1)),
        MaxPooling2D(2),
        Conv2D(32, 3, padding="same", activation="relu"),
        MaxPooling2D(2),
        Flatten(),
        Dense(10, activation="softmax"),
    ])
    model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    with fastconv.conv_algorithm(algorithm):
        model.fit(x_train, to_categorical(y_train, 10), batch_size=64, epochs=3, verbose=0)
        acc = model.evaluate(x_test, to_categorical(y_test, 10), verbose=0)[1]
    return acc, model.get_weights()


def test_training_with_winograd_reaches_the_accuracy_of_direct():
    # The second conv layer (16 -> 32 channels, 14x14) runs all three passes on
    # Winograd under 'winograd' (checked below), so the runs round differently; the
    # same seed then gives test accuracies within 0.03 of each other (500 images: 15).
    g = _geometry(np.zeros((64, 14, 14, 16), np.float32),
                  np.zeros((3, 3, 16, 32), np.float32), "same")
    with fastconv.conv_algorithm("winograd"):
        assert dispatch.choose("forward", g, np.dtype(np.float32), True).name == "winograd"
        assert [c.name for c in dispatch.plan_backward(g, np.dtype(np.float32), True)[1:]] \
            == ["winograd", "winograd"]
    acc_w, weights_w = _train_sample("winograd")
    acc_d, weights_d = _train_sample("direct")
    assert not all(np.array_equal(a, b) for a, b in zip(weights_w, weights_d))
    assert acc_d > 0.6 and acc_w > 0.6  # (chance: 0.1)
    assert abs(acc_w - acc_d) <= 0.03, (acc_w, acc_d)
