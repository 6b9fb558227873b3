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


@pytest.fixture(params=["auto", "direct", "gemm"])
def conv_path(request):
    """Force the compiled backend's convolution path where it is valid."""
    from fastconv.backends import cython as fast

    fast._force_path = None if request.param == "auto" else request.param
    yield request.param
    fast._force_path = None
