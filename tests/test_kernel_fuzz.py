"""Every compiled op against the reference on odd problems: size-1 axes, maps smaller
than the window (with padding), strides larger than the kernel, filter and channel
counts off every vector width, and inputs that are non-contiguous or misaligned.

Run in the normal suite, and by tools/sanitize.sh against an AddressSanitizer and
UBSan build, where an out-of-bounds read or write in any kernel aborts the run.
"""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastconv.backends import cython as fast
from fastconv.backends import numpy as ref
from fastconv.testing import assert_close

from .test_cython_backend import _conv_compare

FIXTURES_OK = [HealthCheck.function_scoped_fixture]


def _misaligned(a):
    """The same values, C-contiguous, starting one element past an aligned address."""
    buf = np.empty(a.size + 1, a.dtype)
    out = buf[1:].reshape(a.shape)
    out[...] = a
    return out


def _strided(a):
    big = np.zeros(a.shape[:-1] + (2 * a.shape[-1],), a.dtype)
    big[..., ::2] = a
    return big[..., ::2]


LAYOUTS = {"plain": lambda a: a, "misaligned": _misaligned, "strided": _strided}


@st.composite
def odd_conv(draw):
    n = draw(st.integers(1, 3))
    h, w = draw(st.integers(1, 7)), draw(st.integers(1, 7))
    c = draw(st.sampled_from([1, 2, 3, 5, 7, 9, 15, 17, 33]))
    f = draw(st.sampled_from([1, 3, 5, 7, 9, 15, 17, 25, 33]))
    kh, kw = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    stride = (draw(st.integers(1, 6)), draw(st.integers(1, 6)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    padding = draw(st.sampled_from(["same", "valid", 1, 2]))
    eh, ew = dilation[0] * (kh - 1) + 1, dilation[1] * (kw - 1) + 1
    pad = {"same": 10**6, "valid": 0}.get(padding, padding)
    # keep the output non-empty: 'same' always is; otherwise the padded map must fit
    if padding != "same" and (h + 2 * pad < eh or w + 2 * pad < ew):
        padding = "same"
    layout = draw(st.sampled_from(sorted(LAYOUTS)))
    bias = draw(st.booleans())
    return n, h, w, c, f, kh, kw, stride, padding, dilation, layout, bias, draw(
        st.integers(0, 2**16))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@settings(max_examples=40, deadline=None, suppress_health_check=FIXTURES_OK)
@given(case=odd_conv())
def test_conv_on_odd_shapes_and_layouts(case, dtype, threads):
    n, h, w, c, f, kh, kw, stride, padding, dilation, layout, bias, seed = case
    rng = np.random.default_rng(seed)
    x = LAYOUTS[layout](rng.standard_normal((n, h, w, c)).astype(dtype))
    wt = LAYOUTS[layout](rng.standard_normal((kh, kw, c, f)).astype(dtype))
    b = rng.standard_normal(f).astype(dtype) if bias else None
    args = (stride, padding, dilation)
    out = ref.conv2d_forward(np.ascontiguousarray(x), np.ascontiguousarray(wt), b, *args)[0]
    dout = LAYOUTS[layout](rng.standard_normal(out.shape).astype(dtype))
    _conv_compare(dtype, x, wt, b, dout, args)
    # The fused conv + ReLU + pooling block, where its pooling window fits.
    pool = min(2, out.shape[1], out.shape[2])
    got, gc = fast.conv2d_relu_maxpool_forward(x, wt, b, *args, pool)
    want, wc = ref.conv2d_relu_maxpool_forward(x, wt, b, *args, pool)
    # judged against the sum of |terms|, as _conv_compare does (an output that cancels
    # to nearly zero carries the rounding of its terms)
    scale = ref.conv2d_relu_maxpool_forward(np.abs(np.ascontiguousarray(x)),
                                            np.abs(np.ascontiguousarray(wt)),
                                            None if b is None else np.abs(b), *args, pool)[0]
    assert_close(got, want, dtype, scale=scale)
    d = rng.standard_normal(want.shape).astype(dtype)
    for a, e in zip(fast.conv2d_relu_maxpool_backward(d, gc),
                    ref.conv2d_relu_maxpool_backward(d, wc)):
        if e is not None:
            assert_close(a, e, dtype, scale=np.abs(e).max() + 1)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@settings(max_examples=40, deadline=None, suppress_health_check=FIXTURES_OK)
@given(case=odd_conv(), m=st.sampled_from([1, 2, 3, 5]))
def test_depthwise_on_odd_shapes_and_layouts(case, m, dtype, threads):
    n, h, w, c, _, kh, kw, stride, padding, dilation, layout, bias, seed = case
    rng = np.random.default_rng(seed)
    x = LAYOUTS[layout](rng.standard_normal((n, h, w, c)).astype(dtype))
    wt = LAYOUTS[layout](rng.standard_normal((kh, kw, c, m)).astype(dtype))
    b = rng.standard_normal(c * m).astype(dtype) if bias else None
    args = (stride, padding, dilation)
    got, gc = fast.depthwise_conv2d_forward(x, wt, b, *args)
    want, wc = ref.depthwise_conv2d_forward(x, wt, b, *args)
    assert_close(got, want, dtype, scale=np.abs(want).max() + 1)
    d = LAYOUTS[layout](rng.standard_normal(want.shape).astype(dtype))
    for a, e in zip(fast.depthwise_conv2d_backward(d, gc), ref.depthwise_conv2d_backward(d, wc)):
        if e is None:
            assert a is None
        else:
            assert_close(a, e, dtype, scale=np.abs(e).max() + 1)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("op", ["maxpool2d", "avgpool2d"])
@settings(max_examples=40, deadline=None, suppress_health_check=FIXTURES_OK)
@given(n=st.integers(1, 3), h=st.integers(1, 8), w=st.integers(1, 8),
       c=st.sampled_from([1, 3, 7, 8, 9, 17, 33]), p=st.integers(1, 5), s=st.integers(1, 6),
       padding=st.sampled_from(["valid", "same"]), layout=st.sampled_from(sorted(LAYOUTS)),
       seed=st.integers(0, 2**16))
def test_pooling_on_odd_shapes_and_layouts(n, h, w, c, p, s, padding, layout, seed, op, dtype,
                                           threads):
    if padding == "valid" and (h < p or w < p):
        padding = "same"
    rng = np.random.default_rng(seed)
    x = LAYOUTS[layout](rng.standard_normal((n, h, w, c)).astype(dtype))
    got, gc = getattr(fast, op + "_forward")(x, p, s, padding)
    want, wc = getattr(ref, op + "_forward")(x, p, s, padding)
    assert_close(got, want, dtype)
    d = LAYOUTS[layout](rng.standard_normal(want.shape).astype(dtype))
    assert_close(getattr(fast, op + "_backward")(d, gc), getattr(ref, op + "_backward")(d, wc),
                 dtype, scale=np.abs(d).max() + 1)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@settings(max_examples=30, deadline=None, suppress_health_check=FIXTURES_OK)
@given(shape=st.lists(st.integers(1, 9), min_size=1, max_size=4),
       layout=st.sampled_from(sorted(LAYOUTS)), seed=st.integers(0, 2**16))
def test_relu_on_odd_shapes_and_layouts(shape, layout, seed, dtype, threads):
    x = LAYOUTS[layout](np.random.default_rng(seed).standard_normal(shape).astype(dtype))
    got, gc = fast.relu_forward(x)
    want, wc = ref.relu_forward(x)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(fast.relu_backward(x, gc), ref.relu_backward(x, wc))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@settings(max_examples=40, deadline=None, suppress_health_check=FIXTURES_OK)
@given(n=st.integers(1, 3), h=st.integers(1, 7), w=st.integers(1, 7),
       c=st.sampled_from([1, 3, 7, 8, 17]), oh=st.integers(1, 23), ow=st.integers(1, 23),
       how=st.sampled_from(["nearest", "bilinear"]), layout=st.sampled_from(sorted(LAYOUTS)),
       seed=st.integers(0, 2**16))
def test_resize_on_odd_shapes_and_layouts(n, h, w, c, oh, ow, how, layout, seed, dtype,
                                          threads):
    rng = np.random.default_rng(seed)
    x = LAYOUTS[layout](rng.standard_normal((n, h, w, c)).astype(dtype))
    got, gc = fast.resize2d_forward(x, (oh, ow), how)
    want, wc = ref.resize2d_forward(x, (oh, ow), how)
    assert_close(got, want, dtype, scale=np.abs(x).max() + 1)
    d = LAYOUTS[layout](rng.standard_normal(want.shape).astype(dtype))
    assert_close(fast.resize2d_backward(d, gc), ref.resize2d_backward(d, wc), dtype,
                 scale=np.abs(d).max() * (oh * ow) / (h * w) + 1)
