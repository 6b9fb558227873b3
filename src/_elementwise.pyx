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


from libc.math cimport sqrt
from libc.stdint cimport uint8_t, uint64_t


def adam_update(floating[::1] p,          # IN/OUT (n,) parameters
                const floating[::1] g,    # IN     (n,) gradient
                floating[::1] m,          # IN/OUT (n,) first moment
                floating[::1] v,          # IN/OUT (n,) second moment
                double one_minus_b1, double one_minus_b2, double eps, double alpha,
                int n_threads):
    """One Adam step in one pass, in the same operation order as the NumPy version
    in fastconv.optimizers (so the results are the same bits):
    m += (1-b1)*(g-m); v += (1-b2)*(g*g-v); p -= (m / (sqrt(v) + eps)) * alpha."""
    cdef Py_ssize_t i, n = p.shape[0]
    cdef floating c1 = <floating> one_minus_b1, c2 = <floating> one_minus_b2
    cdef floating e = <floating> eps, a = <floating> alpha
    cdef floating gi, mi, vi, root
    if n < PARALLEL_MIN:
        n_threads = 1
    for i in prange(n, nogil=True, schedule="static", num_threads=n_threads):
        gi = g[i]
        mi = m[i] + (gi - m[i]) * c1
        vi = v[i] + (gi * gi - v[i]) * c2
        m[i] = mi
        v[i] = vi
        root = <floating> sqrt(vi)
        p[i] = p[i] - (mi / (root + e)) * a


cdef inline uint64_t _mix64(uint64_t z) noexcept nogil:
    """SplitMix64's finaliser: a bijective hash with good avalanche."""
    z = (z ^ (z >> 30)) * <uint64_t> 0xbf58476d1ce4e5b9ULL
    z = (z ^ (z >> 27)) * <uint64_t> 0x94d049bb133111ebULL
    return z ^ (z >> 31)


def dropout_forward(const floating[::1] x,   # IN  (n,)
                    floating[::1] out,       # OUT (n,)
                    uint8_t[::1] keep,       # OUT (n,) 1 where kept
                    double rate, uint64_t seed, uint64_t step, int n_threads):
    """Inverted dropout with a counter-based generator.

    Element i of call ``step`` is kept when the top 24 bits of
    hash(seed, step, i), as a fraction of 2**24, are >= rate. The mask depends only
    on (seed, step, i), never on the thread count or the order of work.
    """
    cdef Py_ssize_t i, n = x.shape[0]
    cdef uint64_t base = _mix64(seed ^ _mix64(step + <uint64_t> 0x9e3779b97f4a7c15ULL))
    cdef uint64_t threshold = <uint64_t> (rate * 16777216.0 + 0.5)
    cdef floating scale = <floating> (1.0 / (1.0 - rate))
    cdef uint8_t k
    if n < PARALLEL_MIN:
        n_threads = 1
    for i in prange(n, nogil=True, schedule="static", num_threads=n_threads):
        k = (_mix64(base + <uint64_t> i) >> 40) >= threshold
        keep[i] = k
        out[i] = x[i] * scale if k else 0


def dropout_backward(const floating[::1] dout,   # IN  (n,)
                     const uint8_t[::1] keep,    # IN  (n,)
                     floating[::1] dx,           # OUT (n,)
                     double rate, int n_threads):
    """dx = dout / (1 - rate) where kept, else 0."""
    cdef Py_ssize_t i, n = dout.shape[0]
    cdef floating scale = <floating> (1.0 / (1.0 - rate))
    if n < PARALLEL_MIN:
        n_threads = 1
    for i in prange(n, nogil=True, schedule="static", num_threads=n_threads):
        dx[i] = dout[i] * scale if keep[i] else 0
