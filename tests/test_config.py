"""Threads, backend switching and the build/runtime report."""

import os
import subprocess
import sys

import numpy as np
import pytest

import fastconv
from fastconv import _threads, ops


def test_set_and_get_num_threads():
    try:
        fastconv.set_num_threads(3)
        assert fastconv.get_num_threads() == 3
        fastconv.set_num_threads(None)
        assert fastconv.get_num_threads() == _threads.default_num_threads()
    finally:
        fastconv.set_num_threads(None)


@pytest.mark.parametrize("bad, exc", [(0, ValueError), (-2, ValueError), (1.5, TypeError),
                                      ("2", TypeError), (True, TypeError)])
def test_set_num_threads_rejects(bad, exc):
    with pytest.raises(exc, match="`n`|n must"):
        fastconv.set_num_threads(bad)


def test_default_threads_respect_omp_num_threads(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert _threads.default_num_threads() == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "nonsense")
    assert _threads.default_num_threads() >= 1
    monkeypatch.delenv("OMP_NUM_THREADS")
    import os

    assert _threads.default_num_threads() == len(os.sched_getaffinity(0))


def test_blas_is_single_threaded_inside_kernels():
    from threadpoolctl import threadpool_info

    with _threads.blas_single_thread():
        inside = [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]
    assert inside and all(n == 1 for n in inside)


def test_backend_switch():
    x = np.random.default_rng(0).standard_normal((1, 5, 5, 2))
    w = np.ones((3, 3, 2, 1))
    assert fastconv.get_backend() == "cython"
    with fastconv.use_backend("numpy"):
        assert fastconv.get_backend() == "numpy"
        out, cache = ops.conv2d_forward(x, w)
        assert cache.backend == "numpy"
    assert fastconv.get_backend() == "cython"
    out2, cache2 = ops.conv2d_forward(x, w)
    assert cache2.backend == "cython"
    np.testing.assert_allclose(out, out2, rtol=1e-12)
    with pytest.raises(ValueError, match="backend"):
        fastconv.set_backend("torch")
    with pytest.raises(TypeError, match="backend"):
        fastconv.set_backend(None)


def test_fallback_to_numpy_warns_once_with_the_reason():
    code = (
        "import sys, warnings\n"
        "sys.modules['fastconv._conv'] = None\n"  # make the compiled module unimportable
        "import fastconv\n"
        "with warnings.catch_warnings(record=True) as w:\n"
        "    warnings.simplefilter('always')\n"
        "    print(fastconv.get_backend(), fastconv.get_backend())\n"
        "    print(len(w), w[0].message)\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    first, second = res.stdout.splitlines()[:2]
    assert first == "numpy numpy"
    assert second.startswith("1 ") and "compiled backend could not be imported" in second


def test_info_command_reports_openmp_and_blas():
    res = subprocess.run([sys.executable, "-m", "fastconv", "info"], capture_output=True,
                         text=True, check=True)
    for key in ("fastconv:", "compiler:", "openmp:", "threads:", "blas:", "backend:",
                "simd:"):
        assert key in res.stdout
    assert "openmp:    on" in res.stdout, res.stdout
    from fastconv import _conv

    want = ("AVX-512 + AVX2/FMA" if _conv.have_avx512() else
            "AVX2/FMA" if _conv.have_avx2() else "none")
    assert f"simd:      {want}\n" in res.stdout, res.stdout
    # FASTCONV_AVX512=0 keeps the wide blocks on AVX2
    env = {**os.environ, "FASTCONV_AVX512": "0"}
    res = subprocess.run([sys.executable, "-m", "fastconv", "info"], capture_output=True,
                         text=True, check=True, env=env)
    want = "AVX2/FMA" if _conv.have_avx2() else "none"
    assert f"simd:      {want}\n" in res.stdout, res.stdout


@pytest.mark.parametrize("env, expected", [
    ({}, "PASSIVE 10000"),                              # fastconv's defaults
    ({"OMP_WAIT_POLICY": "ACTIVE"}, "ACTIVE None"),     # the user's choice wins
    ({"GOMP_SPINCOUNT": "5"}, "PASSIVE 5"),             # ... for either variable
    ({"FASTCONV_RUNTIME_DEFAULTS": "0"}, "None None"),  # opted out: left alone
])
def test_runtime_defaults(env, expected):
    import os

    base = {k: v for k, v in os.environ.items()
            if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "FASTCONV_RUNTIME_DEFAULTS")}
    code = ("import os, fastconv; print(os.environ.get('OMP_WAIT_POLICY'), "
            "os.environ.get('GOMP_SPINCOUNT'))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env=base | env)
    assert res.stdout.strip() == expected
