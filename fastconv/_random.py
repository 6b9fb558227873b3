"""The one random number generator behind weight initialisation, shuffling and Dropout.

:func:`fastconv.utils.set_random_seed` reseeds it; the same seed, the same model built
in the same order and the same ``fit`` then give bit-identical weights.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

_rng = np.random.default_rng()


def seed(value: Optional[int]) -> None:
    """Reseed the global generator (``None``: fresh entropy from the OS)."""
    global _rng
    _rng = np.random.default_rng(value)


def get_rng() -> np.random.Generator:
    """The global generator."""
    return _rng


def child_seed() -> int:
    """A seed for an object that keeps its own generator (a Dropout layer)."""
    return int(_rng.integers(0, 2**63 - 1))
