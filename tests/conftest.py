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


def _conv_path_params():
    """'auto', then forcings that between them name every candidate of every pass:
    the i-th forces the i-th candidate (cyclically) of forward, dx and dw at once."""
    from fastconv.backends import dispatch

    names = {p: [c.name for c in dispatch.CANDIDATES[p]] for p in ("forward", "dx", "dw")}
    rows = max(len(v) for v in names.values())
    combos = [{p: v[i % len(v)] for p, v in names.items()} for i in range(rows)]
    ids = [",".join(f"{p}={n}" for p, n in c.items()) for c in combos]
    return [None] + combos, ["auto"] + ids


_PARAMS, _IDS = _conv_path_params()


@pytest.fixture(params=_PARAMS, ids=_IDS)
def conv_path(request):
    """Force the compiled backend's convolution kernels where they are valid.

    'auto': the dispatch table's choice; otherwise one named candidate per pass
    (``fastconv.backends.dispatch.force``), the usual choice where it is not valid.
    """
    import contextlib

    from fastconv.backends import dispatch

    with contextlib.ExitStack() as stack:
        for pass_, name in (request.param or {}).items():
            stack.enter_context(dispatch.force(pass_, name))
        yield request.param
