"""Arrays whose data start on a 64-byte boundary, for the compiled kernels.

NumPy's allocations are aligned to 16 bytes only, so where an AVX-512 vector (64
bytes) of an array starts depends on where malloc put it, which changes from run to
run. The direct kernels load the filters one vector of output channels at a time; on
filters off a 64-byte boundary every load spans two cache lines. Measured (2
threads, float32, forward on the padded wide blocks, the filter array's start moved
by hand): 32x14x14x128 -> 128 5x5 'same' 21-24 ms aligned against 32-35 ms at 16 or 32
bytes past a boundary; 2x32x32x32 -> 256 7x7 'same' 6.6-7.2 ms against 9.6-12.6. Left
to malloc, the same layer runs at either speed from one process to the next.
"""

from __future__ import annotations

import math

import numpy as np

#: Bytes of the boundary: one AVX-512 vector, one cache line.
ALIGNMENT = 64
#: Arrays below this many bytes are left where NumPy puts them: the kernels on them
#: take microseconds, and the aligned allocation costs about one more.
SMALL = 16384
_U8 = np.dtype(np.uint8)


def is_aligned(a: np.ndarray) -> bool:
    """Whether ``a``'s data start on an ``ALIGNMENT`` boundary."""
    return a.ctypes.data % ALIGNMENT == 0


def empty(shape, dtype=np.float64) -> np.ndarray:
    """``np.empty(shape, dtype)`` (C order), its data on an ``ALIGNMENT`` boundary
    from ``SMALL`` bytes on."""
    dtype = np.dtype(dtype)
    shape = (int(shape),) if isinstance(shape, (int, np.integer)) else tuple(shape)
    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes < SMALL:
        return np.empty(shape, dtype)
    raw = np.empty(nbytes + ALIGNMENT, _U8)
    return np.ndarray(shape, dtype, raw, -raw.ctypes.data % ALIGNMENT)


def zeros(shape, dtype=np.float64) -> np.ndarray:
    """``np.zeros(shape, dtype)``, placed as :func:`empty`."""
    out = empty(shape, dtype)
    out.fill(0)
    return out


def aligned(a: np.ndarray) -> np.ndarray:
    """``a`` itself when it is C-contiguous and aligned (or under ``SMALL`` bytes),
    else an aligned copy."""
    if a.flags.c_contiguous and (a.nbytes < SMALL or is_aligned(a)):
        return a
    out = empty(a.shape, a.dtype)
    np.copyto(out, a)
    return out
