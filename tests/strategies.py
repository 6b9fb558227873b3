"""Hypothesis strategies for random convolution and pooling problems."""

from dataclasses import dataclass

import numpy as np
from hypothesis import assume
from hypothesis import strategies as st


@dataclass
class ConvCase:
    x_shape: tuple
    w_shape: tuple
    bias: bool
    stride: object
    padding: object
    dilation: object
    seed: int

    def arrays(self, dtype):
        rng = np.random.default_rng(self.seed)
        x = rng.standard_normal(self.x_shape).astype(dtype)
        w = rng.standard_normal(self.w_shape).astype(dtype)
        b = rng.standard_normal(self.w_shape[-1]).astype(dtype) if self.bias else None
        return x, w, b, self.stride, self.padding, self.dilation


@dataclass
class PoolCase:
    x_shape: tuple
    pool_size: object
    strides: object
    padding: str
    seed: int

    def array(self, dtype):
        return np.random.default_rng(self.seed).standard_normal(self.x_shape).astype(dtype)


def int_or_pair(lo, hi):
    return st.one_of(st.integers(lo, hi), st.tuples(st.integers(lo, hi), st.integers(lo, hi)))


def paddings(max_pad=2):
    return st.one_of(
        st.sampled_from(["valid", "same"]),
        int_or_pair(0, max_pad),
        st.tuples(st.tuples(st.integers(0, max_pad), st.integers(0, max_pad)),
                  st.tuples(st.integers(0, max_pad), st.integers(0, max_pad))),
    )


def _pair(v):
    return v if isinstance(v, tuple) else (v, v)


def _fits(size, k, pad, stride, dil):
    if pad == "same":
        return True
    return size + pad[0] + pad[1] >= dil * (k - 1) + 1


@st.composite
def conv_cases(draw, max_size=9, max_channels=4, max_batch=3):
    n = draw(st.integers(1, max_batch))
    h, w = draw(st.integers(1, max_size)), draw(st.integers(1, max_size))
    c = draw(st.integers(1, max_channels))
    # Multiples of 8 (float32) or 4 (float64) reach the direct AVX2 kernels as they
    # are; other counts on short reductions through zero-padded filters.
    f = draw(st.one_of(st.integers(1, max_channels), st.sampled_from([8, 16, 40])))
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    stride = draw(int_or_pair(1, 3))
    dilation = draw(int_or_pair(1, 2))
    padding = draw(paddings())
    dh, dw = _pair(dilation)
    if padding == "valid":
        ph = pw = (0, 0)
    elif padding == "same":
        ph = pw = "same"
    elif isinstance(padding, tuple) and isinstance(padding[0], tuple):
        ph, pw = padding
    else:
        p = _pair(padding)
        ph, pw = (p[0], p[0]), (p[1], p[1])
    assume(_fits(h, kh, ph, 1, dh) and _fits(w, kw, pw, 1, dw))
    return ConvCase((n, h, w, c), (kh, kw, c, f), draw(st.booleans()), stride, padding,
                    dilation, draw(st.integers(0, 2**32 - 1)))


@st.composite
def pool_cases(draw, max_size=9, max_channels=4, max_batch=3):
    n = draw(st.integers(1, max_batch))
    h, w = draw(st.integers(1, max_size)), draw(st.integers(1, max_size))
    c = draw(st.integers(1, max_channels))
    pool_size = draw(int_or_pair(1, 3))
    strides = draw(st.one_of(st.none(), int_or_pair(1, 3)))
    padding = draw(st.sampled_from(["valid", "same"]))
    ph, pw = _pair(pool_size)
    if padding == "valid":
        assume(h >= ph and w >= pw)
    return PoolCase((n, h, w, c), pool_size, strides, padding, draw(st.integers(0, 2**32 - 1)))
