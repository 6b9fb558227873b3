"""Drop-in replacements for popular NumPy CNN reference code, running on fastconv's kernels.

- :mod:`fastconv.compat.cs231n`: the layer functions of Stanford CS231n's
  assignments (``conv_forward_fast``, ``max_pool_backward_naive``, ...), in the
  course's (N, C, H, W) layout.
"""

from __future__ import annotations

from . import cs231n

__all__ = ["cs231n"]
