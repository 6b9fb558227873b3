"""Keras 3's image preprocessing layers; they live in :mod:`fastconv.layers.preprocessing`
and are importable from :mod:`fastconv.layers` as in Keras."""

from .layers.preprocessing import *  # noqa: F401,F403
from .layers.preprocessing import __all__  # noqa: F401
