"""The dispatch table of the compiled convolution (fastconv.backends.dispatch).

Every candidate of every pass is reached by a shape below, which also runs against
the reference; forcing, explain_conv and FASTCONV_VERBOSE.
"""

import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import fastconv
from fastconv.backends import cython as fast
from fastconv.backends import dispatch
from fastconv.backends import numpy as ref
from fastconv.backends._args import conv_args, conv_pool_args

from .test_cython_backend import _conv_compare

# (pass, candidate, x shape, w shape, stride, padding, finite weights): float32.
REACH = [
    ("forward", "winograd", (2, 8, 8, 16), (3, 3, 16, 16), 1, "same", True),
    ("dx", "winograd", (2, 8, 8, 16), (3, 3, 16, 16), 1, "same", True),
    ("dw", "winograd", (2, 8, 8, 16), (3, 3, 16, 16), 1, "same", True),
    ("forward", "direct-padded-filters", (2, 8, 8, 3), (3, 3, 3, 6), 1, "valid", True),
    ("forward", "direct-wide-skip", (2, 8, 8, 16), (3, 3, 16, 16), 1, "same", True),
    ("forward", "direct-wide-padded-copy", (2, 8, 8, 16), (3, 3, 16, 16), 1, "same", False),
    ("forward", "direct", (2, 8, 8, 3), (3, 3, 3, 8), 1, "valid", True),
    ("forward", "im2col-gemm", (2, 8, 8, 8), (3, 3, 8, 8), 1, "valid", True),  # K = 72, F = 8
    ("dx", "planar", (2, 8, 8, 3), (3, 3, 3, 8), 1, "valid", True),
    ("dx", "direct", (2, 8, 8, 1), (3, 3, 1, 8), 1, "same", True),
    ("dx", "wide", (2, 8, 8, 16), (3, 3, 16, 16), 1, "same", True),
    ("dx", "col2im", (2, 8, 8, 16), (3, 3, 16, 16), 1, "valid", True),  # area 64/36
    ("dx", "col2im", (1, 8, 8, 16), (3, 3, 16, 16), 2, "valid", True),  # one image, strided
    ("dx", "flip", (1, 30, 30, 16), (7, 7, 16, 128), 1, "valid", True),  # 116 MFLOP
    ("dw", "direct-fused", (16, 8, 8, 1), (3, 3, 1, 8), 1, "valid", True),
    ("dw", "direct-wide-padded-copy", (2, 8, 8, 16), (3, 3, 16, 16), 1, "same", True),
    ("dw", "direct", (2, 8, 8, 16), (3, 3, 16, 16), 1, "valid", True),
    ("dw", "im2col-gemm", (2, 8, 8, 8), (3, 3, 8, 8), 1, "valid", True),
    ("relu_maxpool", "fused-direct", (2, 8, 8, 1), (3, 3, 1, 8), 1, "valid", True),
    ("relu_maxpool", "separate", (2, 8, 8, 8), (3, 3, 8, 8), 1, "valid", True),
]
DIRECT_ONLY = {"im2col-gemm", "col2im", "flip", "separate"}


def _arrays(xs, ws, finite, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(xs).astype(np.float32)
    w = rng.standard_normal(ws).astype(np.float32)
    if not finite:
        w[1, 1, 0, 0] = np.inf
    return x, w


def _chosen(pass_, x, w, stride, padding):
    x, w, _, g = conv_args(x, w, None, stride, padding, 1)
    finite = dispatch.FiniteWeights(w)
    if pass_ == "forward":
        return dispatch.choose("forward", g, x.dtype, finite).name
    if pass_ == "relu_maxpool":
        return dispatch.choose("relu_maxpool", (g, conv_pool_args(g, 2)), x.dtype, True).name
    _, dx, dw = dispatch.plan_backward(g, x.dtype, finite)
    return (dx if pass_ == "dx" else dw).name


def test_every_candidate_has_a_reaching_shape():
    listed = {(p, c.name) for p, cands in dispatch.CANDIDATES.items() for c in cands}
    assert listed == {(r[0], r[1]) for r in REACH}


@pytest.mark.parametrize("pass_, name, xs, ws, stride, padding, finite", REACH,
                         ids=[f"{r[0]}={r[1]}" for r in REACH])
def test_candidate_is_reached_and_matches_reference(pass_, name, xs, ws, stride, padding,
                                                    finite, threads):
    if not dispatch.HAVE_AVX2 and name not in DIRECT_ONLY:
        pytest.skip("the direct kernels need AVX2 and FMA")
    x, w = _arrays(xs, ws, finite)
    # (the Winograd rows under set_conv_algorithm("winograd"), the others under "direct")
    with fastconv.conv_algorithm("winograd" if name == dispatch.WINOGRAD else "direct"):
        assert _chosen(pass_, x, w, stride, padding) == name
        _reached_matches_reference(x, w, ws, stride, padding, finite)


def _reached_matches_reference(x, w, ws, stride, padding, finite):
    if not finite:  # (Inf and NaN against the reference: test_cython_backend)
        got = fast.conv2d_forward(x, w, None, stride, padding)[0]
        want = ref.conv2d_forward(x, w, None, stride, padding)[0]
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
        return
    out = ref.conv2d_forward(x, w, None, stride, padding)[0]
    dout = np.random.default_rng(1).standard_normal(out.shape).astype(np.float32)
    b = np.random.default_rng(2).standard_normal(ws[-1]).astype(np.float32)
    _conv_compare(np.float32, x, w, b, dout, (stride, padding, 1))


def test_force_runs_a_valid_candidate_and_falls_back_otherwise():
    x, w = _arrays((2, 8, 8, 3), (3, 3, 3, 8), True)
    assert _chosen("forward", x, w, 1, "valid") == "direct"
    with dispatch.force("forward", "im2col-gemm"):
        assert _chosen("forward", x, w, 1, "valid") == "im2col-gemm"
        with dispatch.force("forward", "direct-wide-skip"):  # not valid: no padding
            assert _chosen("forward", x, w, 1, "valid") == "direct"
        assert _chosen("forward", x, w, 1, "valid") == "im2col-gemm"
    assert _chosen("forward", x, w, 1, "valid") == "direct"
    assert dispatch.forced("forward") is None


def test_force_rejects_unknown_names():
    with pytest.raises(ValueError, match="`name` must be None or a dx candidate"):
        with dispatch.force("dx", "no-such-kernel"):
            pass
    with pytest.raises(ValueError, match="`pass_` must be one of"):
        with dispatch.force("backward", "direct"):
            pass


@pytest.mark.parametrize("xs, ws, padding", [
    ((64, 28, 28, 1), (7, 7, 1, 64), "same"),  # K = 49: once between 48 and the wide 64
    ((64, 32, 32, 7), (3, 3, 7, 32), "same"),  # K = 63
    ((64, 32, 32, 3), (7, 7, 3, 8), "same"),   # K = 147, a first layer of 8 filters
])
def test_explain_conv_first_layers_past_48_take_the_direct_kernels(xs, ws, padding, capsys):
    if not dispatch.HAVE_AVX2:
        pytest.skip("the direct kernels need AVX2 and FMA")
    got = fastconv.explain_conv(xs, ws, padding=padding)
    k = ws[0] * ws[1] * ws[2]
    dx = "direct" if xs[3] in (1, 7) else "planar"
    assert {p: c.kernel for p, c in got.items()} == {
        "forward": "direct", "dx": dx if xs[3] <= 4 else "col2im",
        "dw": "direct-fused" if xs[3] <= 4 else "direct"}
    text = capsys.readouterr().out
    assert f"K = KH*KW*C = {k}" in text
    assert "passed over: winograd, direct-padded-filters" in text


def test_explain_conv_long_reduction_of_few_filters_takes_gemm():
    got = fastconv.explain_conv((8, 16, 16, 8), (3, 3, 8, 8))  # K = 72, C = 8, F = 8
    assert (got["forward"].kernel, got["dw"].kernel) == ("im2col-gemm", "im2col-gemm")
    assert got["forward"].passed_over == (
        "winograd", "direct-padded-filters", "direct-wide-skip", "direct-wide-padded-copy",
        "direct")


def test_explain_conv_reports_padded_filters():
    if not dispatch.HAVE_AVX2:
        pytest.skip("the direct kernels need AVX2 and FMA")
    got = fastconv.explain_conv((32, 28, 28, 3), (3, 3, 3, 25), padding="same",
                                dtype="float64")
    assert got["forward"].kernel == "direct-padded-filters"
    assert got["forward"].note == "filters padded 25 -> 32"
    assert (got["dx"].kernel, got["dw"].kernel) == ("direct", "direct-fused")


@pytest.mark.parametrize("kwargs, exc, match", [
    ({"dtype": "float16"}, ValueError, "`dtype` must be 'float32' or 'float64'"),
    ({"x_shape": (28, 28, 1)}, TypeError, "`x_shape` must be a tuple of 4"),
    ({"w_shape": (3, 3, 2, 8)}, ValueError, "C_in = w.shape"),
    ({"stride": 0}, ValueError, "`stride` must be"),
])
def test_explain_conv_bad_arguments(kwargs, exc, match):
    args = {"x_shape": (1, 8, 8, 1), "w_shape": (3, 3, 1, 8), **kwargs}
    with pytest.raises(exc, match=match):
        fastconv.explain_conv(**args)


def test_verbose_logs_each_call_to_stderr():
    code = ("import numpy as np; from fastconv.backends import cython as f\n"
            "x = np.ones((2, 8, 8, 8), np.float32); w = np.ones((3, 3, 8, 8), np.float32)\n"
            "out, c = f.conv2d_forward(x, w)\n"
            "f.conv2d_backward(np.ones_like(out), c)\n")
    env = dict(os.environ, FASTCONV_VERBOSE="1")
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    lines = [ln for ln in res.stderr.splitlines() if ln.startswith("fastconv_verbose")]
    assert [ln.split(",")[2:4] for ln in lines] == [
        ["forward", "im2col-gemm"], ["dx", "col2im"], ["dw", "im2col-gemm"]]
    assert "x=(2, 8, 8, 8),w=(3, 3, 8, 8)" in lines[0]
    quiet = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           env={k: v for k, v in os.environ.items()
                                if k != "FASTCONV_VERBOSE"}, timeout=120)
    assert "fastconv_verbose" not in quiet.stderr


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 20), h=st.integers(7, 16), c=st.integers(1, 7),
       k=st.sampled_from([3, 5, 7]), f=st.sampled_from([6, 8, 16, 24, 32]),
       stride=st.integers(1, 2), padding=st.sampled_from(["valid", "same"]),
       seed=st.integers(0, 2**32 - 1))
def test_reductions_past_48_on_the_direct_kernels(n, h, c, k, f, stride, padding, seed, dtype):
    # K = 49-63, and first layers (C <= 3) up to 7x7x3 = 147, moved from GEMM to the
    # direct kernels: against the reference, and the same bits on 1 and 2 threads.
    assume(48 < k * k * c and (k * k * c <= 63 or c <= 3))
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, h, h, c)).astype(dtype)
    w = rng.standard_normal((k, k, c, f)).astype(dtype)
    b = rng.standard_normal(f).astype(dtype)
    out = ref.conv2d_forward(x, w, b, stride, padding)[0]
    dout = rng.standard_normal(out.shape).astype(dtype)
    _conv_compare(dtype, x, w, b, dout, (stride, padding, 1))
    results = []
    before = fastconv._threads._num_threads
    try:
        for threads in (1, 2):
            fastconv.set_num_threads(threads)
            o, cache = fast.conv2d_forward(x, w, b, stride, padding)
            results.append((o, *fast.conv2d_backward(dout, cache)))
    finally:
        fastconv.set_num_threads(before)
    for a, b_ in zip(*results):
        np.testing.assert_array_equal(a, b_)
