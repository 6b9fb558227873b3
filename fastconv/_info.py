"""``fastconv.show_config()`` / ``python -m fastconv info``: what this install runs on."""

from __future__ import annotations

import platform
import sys

from . import _threads, backends


def simd() -> str:
    """What the direct kernels run on (``_conv.simd()``), or why none run."""
    try:
        from . import _conv

        return _conv.simd()
    except ImportError:
        return "none (compiled modules not importable)"
    except AttributeError:  # a build older than its Python files
        return "unknown (compiled modules older than the package: rebuild them)"


def config() -> dict:
    """Version, compiler, OpenMP, threads, BLAS and backend, as a dict."""
    from . import __version__

    info = {
        "fastconv": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "backend": backends.get_backend(),
        "threads": _threads.get_num_threads(),
    }
    try:
        from . import _openmp

        info["compiler"] = _openmp.compiler()
        info["openmp"] = "on" if _openmp.openmp_enabled() else "off (single-threaded)"
    except ImportError as exc:
        info["compiler"] = f"compiled modules not importable: {exc}"
        info["openmp"] = "off"
    info["simd"] = simd()
    from .backends._algorithm import get_conv_algorithm

    try:
        from . import _winograd

        transforms = _winograd.isa()
    except ImportError:
        transforms = "not importable"
    info["conv"] = f"algorithm {get_conv_algorithm()!r}, Winograd transforms: {transforms}"
    import numpy

    from . import _runtime

    info["runtime"] = ", ".join(_runtime.APPLIED) or "library defaults"
    info["numpy"] = numpy.__version__
    try:
        blas = _threads.blas_info()
    except ImportError:
        blas = []
    info["blas"] = [
        f"{b.get('internal_api')} {b.get('version')} ({b.get('architecture')}, "
        f"{b.get('num_threads')} threads) {b.get('filepath')}"
        for b in blas
    ] or ["(none detected)"]
    return info


def show_config() -> None:
    """Print version, compiler, OpenMP on/off, threads, the BLAS libraries and backend."""
    # Import scipy's BLAS so that threadpoolctl can see the library the kernels call.
    try:
        import scipy.linalg.cython_blas  # noqa: F401
    except ImportError:
        pass
    for key, value in config().items():
        if isinstance(value, list):
            print(f"{key + ':':<10} {value[0]}")
            for more in value[1:]:
                print(f"{'':<10} {more}")
        else:
            print(f"{key + ':':<10} {value}")
