"""Process settings fastconv applies when imported, and why.

A training step alternates fastconv's OpenMP kernels, NumPy's BLAS (Dense layers)
and NumPy element-wise code, and allocates many large temporaries. Two defaults of
the runtime libraries cost more than the arithmetic there (measured on a 2-core
machine with the lecture's MNIST model, batch 128; see the notes in README.md):

- libgomp's threads spin after every parallel region (OMP_WAIT_POLICY unset), taking
  a core from the BLAS threads that run next; the step ran about 2x slower than with
  ``OMP_WAIT_POLICY=PASSIVE``. fastconv sets PASSIVE unless the variable is set.
- glibc returns every freed block above 128 KiB-32 MiB to the kernel, so each new
  multi-megabyte array is faulted in page by page again; raising glibc's mmap and
  trim thresholds lets freed blocks be reused. fastconv raises them to 64 and
  256 MiB (heap memory kept for reuse is bounded by the latter).

Set ``FASTCONV_RUNTIME_DEFAULTS=0`` before importing fastconv to leave both alone.
Both must happen before the OpenMP runtime starts, so this module runs first.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

#: What was applied, for ``fastconv.show_config()``.
APPLIED: list = []

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


def apply() -> None:
    if os.environ.get("FASTCONV_RUNTIME_DEFAULTS", "1") == "0":
        return
    if "OMP_WAIT_POLICY" not in os.environ:
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
        APPLIED.append("OMP_WAIT_POLICY=PASSIVE")
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            mallopt = libc.mallopt
        except (OSError, AttributeError):  # not glibc (musl has no mallopt)
            return
        if mallopt(_M_MMAP_THRESHOLD, 64 << 20) and mallopt(_M_TRIM_THRESHOLD, 256 << 20):
            APPLIED.append("glibc mmap/trim thresholds 64/256 MiB")
