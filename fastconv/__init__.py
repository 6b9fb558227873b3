"""fastconv: fast CPU convolutional networks for Python.

Cython + OpenMP convolution and pooling kernels (:mod:`fastconv.ops`), checked
against a readable NumPy reference (:mod:`fastconv.backends.numpy`).
"""

from __future__ import annotations

from . import _runtime

_runtime.apply()  # before any compiled module starts the OpenMP runtime

from . import backends, ops  # noqa: E402
from ._info import show_config  # noqa: E402
from ._threads import get_num_threads, set_num_threads  # noqa: E402
from .backends import get_backend, set_backend, use_backend  # noqa: E402
from .backends._algorithm import (  # noqa: E402
    conv_algorithm,
    get_conv_algorithm,
    set_conv_algorithm,
)

__version__ = "0.1.0"


def explain_conv(x_shape, w_shape, stride=1, padding="valid", dilation=1, dtype="float32"):
    """Return and print the compiled kernel each pass of a convolution takes, and why:
    :func:`fastconv.backends.dispatch.explain_conv` (imported on first use, so that
    fastconv imports without its compiled modules)."""
    from .backends import dispatch

    return dispatch.explain_conv(x_shape, w_shape, stride, padding, dilation, dtype)

__all__ = [
    "ops",
    "backends",
    "set_backend",
    "get_backend",
    "use_backend",
    "set_num_threads",
    "get_num_threads",
    "show_config",
    "explain_conv",
    "set_conv_algorithm",
    "get_conv_algorithm",
    "conv_algorithm",
    "__version__",
]
