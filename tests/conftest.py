import numpy as np
import pytest

import fastconv


@pytest.fixture(params=[1, 2], ids=["1thread", "2threads"])
def threads(request):
    """Run the test with fastconv's kernels on 1, then 2 threads."""
    before = fastconv._threads._num_threads
    fastconv.set_num_threads(request.param)
    yield request.param
    fastconv.set_num_threads(before)


@pytest.fixture
def rng():
    return np.random.default_rng(20261123)


@pytest.fixture(params=["auto", "direct", "gemm-flip", "gemm-col2im"])
def conv_path(request):
    """Force the compiled backend's convolution path where it is valid.

    'direct': the AVX2 kernels wherever F % 8 == 0 (float32) or F % 4 == 0 (float64);
    'gemm-*': im2col + GEMM,
    with the input gradient by flipped-filter convolution or by col2im.
    """
    from fastconv.backends import cython as fast

    saved = fast._COL2IM_MIN_POSITIONS
    fast._force_path = {"auto": None, "direct": "direct"}.get(request.param, "gemm")
    if request.param == "gemm-flip":
        fast._COL2IM_MIN_POSITIONS = 10**9
    elif request.param == "gemm-col2im":
        fast._COL2IM_MIN_POSITIONS = 0
    yield request.param
    fast._force_path = None
    fast._COL2IM_MIN_POSITIONS = saved

