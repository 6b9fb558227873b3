"""fastconv's kernel backends and the switch between them.

- ``fastconv.backends.numpy``: the readable pure-NumPy reference (the specification).
- ``fastconv.backends.cython``: the compiled Cython + OpenMP kernels, a drop-in
  replacement with the same functions, arguments, errors and caches.

:mod:`fastconv.ops` calls the active backend. The default is 'cython'; when its
compiled modules cannot be imported, fastconv falls back to 'numpy' and warns once,
saying why.
"""

from __future__ import annotations

import contextlib
import importlib
import warnings
from types import ModuleType
from typing import Iterator

__all__ = ["set_backend", "get_backend", "use_backend", "get_module", "available_backends"]

_NAMES = ("cython", "numpy")
_active: str | None = None
_import_error: str | None = None
_modules: dict = {}  # imported backends: every op asks, so the lookup is kept cheap


def get_module(name: str) -> ModuleType:
    """The module of backend ``name`` ('cython' or 'numpy')."""
    module = _modules.get(name)
    if module is not None:
        return module
    if name not in _NAMES:
        raise ValueError(f"`backend` must be one of {list(_NAMES)}. Received: backend={name!r}")
    module = _modules[name] = importlib.import_module(f"{__name__}.{name}")
    return module


def available_backends() -> list:
    """Names of the backends that can be imported here."""
    names = []
    for name in _NAMES:
        try:
            get_module(name)
        except ImportError:
            continue
        names.append(name)
    return names


def _default() -> str:
    global _import_error
    try:
        get_module("cython")
    except ImportError as exc:
        _import_error = str(exc)
        warnings.warn(
            "fastconv: the compiled backend could not be imported, so the NumPy "
            f"reference will be used (much slower). Reason: {exc}",
            RuntimeWarning,
            stacklevel=3,
        )
        return "numpy"
    return "cython"


def get_backend() -> str:
    """Name of the active backend: 'cython' or 'numpy'."""
    global _active
    if _active is None:
        _active = _default()
    return _active


def set_backend(name: str) -> None:
    """Make ``name`` ('cython' or 'numpy') the backend that :mod:`fastconv.ops` uses."""
    global _active
    if not isinstance(name, str):
        raise TypeError(f"`backend` must be 'cython' or 'numpy'. Received: backend={name!r}")
    get_module(name)  # validates the name and raises ImportError if not built
    _active = name


@contextlib.contextmanager
def use_backend(name: str) -> Iterator[None]:
    """``with use_backend('numpy'): ...`` runs the block on backend ``name``."""
    previous = get_backend()
    set_backend(name)
    try:
        yield
    finally:
        set_backend(previous)


def active_module() -> ModuleType:
    """The module of the active backend."""
    return get_module(get_backend())
