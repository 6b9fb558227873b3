"""Forward+backward of the speed issue's layers, per backend and dtype."""

import numpy as np
import pytest

from fastconv import bench
from fastconv.backends import use_backend

LAYERS = bench.CONV_LAYERS + bench.POOL_LAYERS
BACKENDS = ["cython", "numpy", "torch-NCHW", "torch-NHWC"]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("layer", LAYERS, ids=[layer.name for layer in LAYERS])
def test_forward_backward(benchmark, layer, backend, dtype):
    benchmark.group = f"{layer.name} {layer.shape()} {dtype}"
    if backend.startswith("torch"):
        torch = pytest.importorskip("torch")
        fn = bench.torch_fwd_bwd(torch, layer, dtype)[backend.split("-")[1]]
    else:
        with use_backend(backend):
            # Build the callables (and their inputs) outside the timed function.
            fn = bench._fns(layer, np.dtype(dtype))[2]

        def fn(fn=fn, backend=backend):
            with use_backend(backend):
                return fn()
    # The NumPy reference is slow on the large layers: fewer rounds there.
    rounds = 3 if backend == "numpy" else 15
    benchmark.pedantic(fn, rounds=rounds, warmup_rounds=1)
