# cython: boundscheck=False, wraparound=False, initializedcheck=False
#
# Directives: the caller passes flat, equally sized, C-contiguous arrays
# (fastconv.backends.cython checks this), so indices stay in range.
"""Element-wise kernels (ReLU), flat arrays, float32/float64, OpenMP over elements."""

from cython cimport floating
from cython.parallel cimport prange

# Below this many elements a parallel region costs more than it saves.
cdef Py_ssize_t PARALLEL_MIN = 1 << 15


def relu_forward(const floating[::1] x,    # IN  (n,)
                 floating[::1] out,        # OUT (n,)
                 int n_threads):
    """out = max(x, 0); NaN stays NaN (as np.maximum)."""
    cdef Py_ssize_t i, n = x.shape[0]
    cdef floating v
    if n < PARALLEL_MIN:
        n_threads = 1
    for i in prange(n, nogil=True, schedule="static", num_threads=n_threads):
        v = x[i]
        out[i] = 0 if v <= 0 else v


def relu_backward(const floating[::1] dout,  # IN  (n,)
                  const floating[::1] x,     # IN  (n,) the forward input (or output)
                  floating[::1] dx,          # OUT (n,)
                  int n_threads):
    """dx = dout where x > 0, else 0."""
    cdef Py_ssize_t i, n = x.shape[0]
    if n < PARALLEL_MIN:
        n_threads = 1
    for i in prange(n, nogil=True, schedule="static", num_threads=n_threads):
        dx[i] = dout[i] if x[i] > 0 else 0
