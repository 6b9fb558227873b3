"""64-byte aligned arrays for the compiled kernels (fastconv.backends._aligned)."""

import numpy as np
import pytest

from fastconv.backends import _aligned
from fastconv.backends import cython as fast
from fastconv.layers import Conv2D


@pytest.mark.parametrize("shape", [(0,), (1,), (3, 5), (2, 7, 7, 3), 17, 20000,
                                   (16384,), (2, 33, 33, 17), (4099, 3)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int8])
def test_empty_and_zeros_start_on_a_boundary(shape, dtype):
    for _ in range(5):  # (malloc's placements vary)
        a = _aligned.empty(shape, dtype)
        z = _aligned.zeros(shape, dtype)
        want = (shape,) if isinstance(shape, int) else shape
        assert a.shape == z.shape == want and a.dtype == z.dtype == dtype
        assert a.flags.c_contiguous and a.flags.writeable
        if a.nbytes >= _aligned.SMALL:
            assert _aligned.is_aligned(a) and _aligned.is_aligned(z)
        assert not z.any()
        a[...] = 1  # (all of it is the array's own memory)
        assert a.sum() == a.size


def test_aligned_copies_only_what_is_off_a_boundary():
    raw = np.arange(40000, dtype=np.float32)
    off = raw[1:32001]  # 4 bytes past wherever raw starts: not on a 64-byte boundary
    assert not (_aligned.is_aligned(off) and _aligned.is_aligned(raw))
    for a in (raw, off, raw[::2], raw.reshape(400, 100).T):
        b = _aligned.aligned(a)
        assert _aligned.is_aligned(b) and b.flags.c_contiguous
        np.testing.assert_array_equal(a, b)
        assert (b is a) == (_aligned.is_aligned(a) and a.flags.c_contiguous)
    small = raw[1:11]
    assert _aligned.aligned(small) is small  # (under SMALL bytes: left alone)


def test_kernel_results_and_layer_weights_are_aligned():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 19, 19, 16)).astype(np.float32)
    w = rng.standard_normal((3, 3, 16, 128)).astype(np.float32)[..., ::2]
    out, cache = fast.conv2d_forward(x, w, None, 1, "same")
    dx, dw, _ = fast.conv2d_backward(rng.standard_normal(out.shape).astype(np.float32), cache)
    assert all(_aligned.is_aligned(a) for a in (out, dx, dw, cache.arrays["w"]))
    layer = Conv2D(64, 3)
    layer.build((None, 9, 9, 16))
    assert _aligned.is_aligned(layer._weight("kernel"))
