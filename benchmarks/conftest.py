"""pytest-benchmark suite: ``pytest benchmarks/ --benchmark-only``.

Rows are grouped by layer, so each group compares fastconv's compiled backend, its
NumPy reference and (when importable) PyTorch on the same shape, side by side.
Threads: ``FASTCONV_BENCH_THREADS`` (default 2), applied to fastconv and PyTorch.
"""

import os

import pytest

import fastconv


@pytest.fixture(scope="session", autouse=True)
def bench_threads():
    n = int(os.environ.get("FASTCONV_BENCH_THREADS", "2"))
    fastconv.set_num_threads(n)
    try:
        import torch

        torch.set_num_threads(n)
    except ImportError:
        pass
    yield n
    fastconv.set_num_threads(None)
