"""Process settings fastconv applies when imported, and why.

A training step alternates fastconv's OpenMP kernels, BLAS and NumPy element-wise
code, and allocates many large temporaries. Two defaults of
the runtime libraries cost more than the arithmetic there (measured on a 2-core
machine with the lecture's MNIST model, batch 128; see the notes in README.md):

- libgomp's threads spin after every parallel region (OMP_WAIT_POLICY unset), taking
  a core from the BLAS threads that run next; the step ran about 2x slower than with
  ``OMP_WAIT_POLICY=PASSIVE``. fastconv sets PASSIVE unless the variable is set.
- PASSIVE alone puts the threads to sleep the moment a region ends, and waking one
  for the next region cost about 0.1 ms on a 2-core VM, more than a small layer's
  work. So fastconv also sets ``GOMP_SPINCOUNT=10000`` (libgomp counts about 100000
  spins per ms: a spin of about 0.1 ms, enough to catch the next kernel call of a
  layer's forward or backward) unless either variable is set. Measured with
  ``benchmarks/models_compare.py --worker fastconv`` (2 threads, batch 128, two runs
  each, images/s trained, without -> with): the lecture model 17.5-18.1k -> 19.7-20.6k,
  the three-conv MNIST convnet 9.0-9.2k -> 10.2-10.5k, the small ResNet 467-588 ->
  653-721, the lab model 3.5-3.6k -> 3.5-3.7k. (Beside NumPy's multi-threaded BLAS,
  which fastconv's Dense layers do not use, spinning costs: the lecture model trained
  20% slower with it when its Dense backward ran on NumPy's matmul.)
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

#: Spins of libgomp's threads before they sleep (see the module's docstring).
SPINCOUNT = "10000"
#: The variables fastconv sets for its own OpenMP runtime, which a benchmark hides from
#: another framework's runtime in the same environment.
OMP_VARIABLES = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


def apply() -> None:
    if os.environ.get("FASTCONV_RUNTIME_DEFAULTS", "1") == "0":
        return
    if "OMP_WAIT_POLICY" not in os.environ:
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
        APPLIED.append("OMP_WAIT_POLICY=PASSIVE")
        if "GOMP_SPINCOUNT" not in os.environ:
            os.environ["GOMP_SPINCOUNT"] = SPINCOUNT
            APPLIED.append(f"GOMP_SPINCOUNT={SPINCOUNT}")
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            mallopt = libc.mallopt
        except (OSError, AttributeError):  # not glibc (musl has no mallopt)
            return
        if mallopt(_M_MMAP_THRESHOLD, 64 << 20) and mallopt(_M_TRIM_THRESHOLD, 256 << 20):
            APPLIED.append("glibc mmap/trim thresholds 64/256 MiB")
