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
