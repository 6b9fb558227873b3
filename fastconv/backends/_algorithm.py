"""The convolution algorithm the compiled backend may use: a process-wide switch.

- ``'auto'`` (the default): the dispatch table's choice, which takes Winograd
  F(2x2, 3x3) only for the 3x3 stride-1 layers where it was measured faster (see the
  'winograd' candidates in :mod:`fastconv.backends.dispatch` and docs/kernels.md);
- ``'direct'``: never Winograd: the direct and im2col + GEMM kernels, whose sums are
  those of the reference's formula (the bits fastconv gave before Winograd existed);
- ``'winograd'``: Winograd wherever it can run (3x3 filters, stride 1, dilation 1,
  finite weights), the table's choice elsewhere.

Winograd rounds differently from direct convolution; its error bound is given in
:mod:`fastconv.backends.winograd`. The NumPy backend always computes the reference's
formula. This module imports no compiled code.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

from ._args import fail

__all__ = ["ALGORITHMS", "set_conv_algorithm", "get_conv_algorithm", "conv_algorithm"]

ALGORITHMS = ("auto", "direct", "winograd")
_algorithm = "auto"


def _checked(algorithm) -> str:
    if not isinstance(algorithm, str) or algorithm not in ALGORITHMS:
        raise fail("algorithm", f"one of {ALGORITHMS}", algorithm)
    return algorithm


def set_conv_algorithm(algorithm: str) -> None:
    """Set the convolution algorithm: 'auto', 'direct' or 'winograd' (see the module
    docstring). Raises ValueError naming ``algorithm`` for anything else."""
    global _algorithm
    _algorithm = _checked(algorithm)


def get_conv_algorithm() -> str:
    """The convolution algorithm in force: 'auto', 'direct' or 'winograd'."""
    return _algorithm


@contextlib.contextmanager
def conv_algorithm(algorithm: str) -> Iterator[None]:
    """Use ``algorithm`` inside the block, then restore the one set before.

    Examples
    --------
    >>> with fastconv.conv_algorithm("direct"):  # doctest: +SKIP
    ...     model.fit(x, y)
    """
    before = _algorithm
    set_conv_algorithm(algorithm)
    try:
        yield
    finally:
        set_conv_algorithm(before)
