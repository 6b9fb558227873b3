# cython: boundscheck=False, wraparound=False, initializedcheck=False, cdivision=True
#
# Directives: the caller passes flat, equally sized, C-contiguous arrays
# (fastconv.backends.cython, fastconv.layers and fastconv.optimizers check this), so
# indices stay in range; chunk sizes are positive.
"""Element-wise kernels: ReLU, bias (+ReLU), dropout and the Adam update, float32/float64.

The loops themselves are in ``_ew_inner.h`` (plain C on restrict pointers, so they
vectorise, with an AVX2 copy picked at run time); here they run on fixed chunks of
the arrays in parallel. Chunks never depend on the thread count and every element
is computed on its own, so results are the same for any number of threads.
"""

from cython cimport floating
from cython.parallel cimport prange
from libc.stdint cimport uint32_t, uint64_t

cdef extern from "_ew_inner.h" nogil:
    void fc_ew_init()
    void fc_relu_fwd_f32(const float* x, float* out, Py_ssize_t n)
    void fc_relu_fwd_f64(const double* x, double* out, Py_ssize_t n)
    void fc_relu_bwd_f32(const float* d, const float* x, float* dx, Py_ssize_t n)
    void fc_relu_bwd_f64(const double* d, const double* x, double* dx, Py_ssize_t n)
    void fc_dropout_fwd_f32(const float* x, float* out, float* keep, Py_ssize_t n,
                            uint32_t start, uint32_t k1, uint32_t k2, uint32_t threshold,
                            float scale)
    void fc_dropout_fwd_f64(const double* x, double* out, double* keep, Py_ssize_t n,
                            uint32_t start, uint32_t k1, uint32_t k2, uint32_t threshold,
                            double scale)
    void fc_dropout_bwd_f32(const float* d, const float* keep, float* dx, Py_ssize_t n)
    void fc_dropout_bwd_f64(const double* d, const double* keep, double* dx, Py_ssize_t n)
    void fc_bias_act_f32(float* z, const float* b, Py_ssize_t rows, Py_ssize_t cols, int relu)
    void fc_bias_act_f64(double* z, const double* b, Py_ssize_t rows, Py_ssize_t cols,
                         int relu)
    void fc_adam_f32(float* p, const float* g, float* m, float* v, Py_ssize_t n,
                     float c1, float c2, float eps, float a)
    void fc_adam_f64(double* p, const double* g, double* m, double* v, Py_ssize_t n,
                     double c1, double c2, double eps, double a)

fc_ew_init()

# Elements per task: large enough to amortise scheduling, small enough to share.
cdef Py_ssize_t CHUNK = 1 << 15


cdef inline int _threads(Py_ssize_t n, int n_threads) noexcept nogil:
    return 1 if n <= CHUNK else n_threads


def relu_forward(const floating[::1] x,    # IN  (n,)
                 floating[::1] out,        # OUT (n,)
                 int n_threads):
    """out = max(x, 0); NaN stays NaN (as np.maximum)."""
    cdef Py_ssize_t n = x.shape[0], c, i0
    if n == 0:
        return
    for c in prange((n + CHUNK - 1) // CHUNK, nogil=True, schedule="static",
                    num_threads=_threads(n, n_threads)):
        i0 = c * CHUNK
        if floating is float:
            fc_relu_fwd_f32(&x[i0], &out[i0], min(CHUNK, n - i0))
        else:
            fc_relu_fwd_f64(&x[i0], &out[i0], min(CHUNK, n - i0))


def relu_backward(const floating[::1] dout,  # IN  (n,)
                  const floating[::1] x,     # IN  (n,) the forward input (or output)
                  floating[::1] dx,          # OUT (n,)
                  int n_threads):
    """dx = dout where x > 0, else 0."""
    cdef Py_ssize_t n = x.shape[0], c, i0
    if n == 0:
        return
    for c in prange((n + CHUNK - 1) // CHUNK, nogil=True, schedule="static",
                    num_threads=_threads(n, n_threads)):
        i0 = c * CHUNK
        if floating is float:
            fc_relu_bwd_f32(&dout[i0], &x[i0], &dx[i0], min(CHUNK, n - i0))
        else:
            fc_relu_bwd_f64(&dout[i0], &x[i0], &dx[i0], min(CHUNK, n - i0))


def bias_act(floating[:, ::1] z,          # IN/OUT (rows, cols)
             const floating[::1] b,        # IN     (cols,) or None
             bint relu, int n_threads):
    """z += b (per row), then z = max(z, 0) if ``relu``: a Dense layer's epilogue."""
    cdef Py_ssize_t rows = z.shape[0], cols = z.shape[1], c, r0, step
    cdef const floating* bp = NULL
    if rows == 0 or cols == 0:
        return
    if b is not None:
        bp = &b[0]
    step = max(1, CHUNK // cols)  # rows per task
    for c in prange((rows + step - 1) // step, nogil=True, schedule="static",
                    num_threads=_threads(rows * cols, n_threads)):
        r0 = c * step
        if floating is float:
            fc_bias_act_f32(&z[r0, 0], bp, min(step, rows - r0), cols, relu)
        else:
            fc_bias_act_f64(&z[r0, 0], bp, min(step, rows - r0), cols, relu)


def adam_update(floating[::1] p,          # IN/OUT (n,) parameters
                const floating[::1] g,    # IN     (n,) gradient
                floating[::1] m,          # IN/OUT (n,) first moment
                floating[::1] v,          # IN/OUT (n,) second moment
                double one_minus_b1, double one_minus_b2, double eps, double alpha,
                int n_threads):
    """One Adam step in one pass, in the same operation order as the NumPy version
    in fastconv.optimizers (so the results are the same bits):
    m += (1-b1)*(g-m); v += (1-b2)*(g*g-v); p -= (m / (sqrt(v) + eps)) * alpha."""
    cdef Py_ssize_t n = p.shape[0], c, i0
    if n == 0:
        return
    for c in prange((n + CHUNK - 1) // CHUNK, nogil=True, schedule="static",
                    num_threads=_threads(n, n_threads)):
        i0 = c * CHUNK
        if floating is float:
            fc_adam_f32(&p[i0], &g[i0], &m[i0], &v[i0], min(CHUNK, n - i0),
                        <float> one_minus_b1, <float> one_minus_b2, <float> eps,
                        <float> alpha)
        else:
            fc_adam_f64(&p[i0], &g[i0], &m[i0], &v[i0], min(CHUNK, n - i0),
                        one_minus_b1, one_minus_b2, eps, alpha)


cdef inline uint64_t _mix64(uint64_t z) noexcept nogil:
    """SplitMix64's finaliser: a bijective hash with good avalanche."""
    z = (z ^ (z >> 30)) * <uint64_t> 0xbf58476d1ce4e5b9ULL
    z = (z ^ (z >> 27)) * <uint64_t> 0x94d049bb133111ebULL
    return z ^ (z >> 31)


def dropout_forward(const floating[::1] x,   # IN  (n,), n < 2**32
                    floating[::1] out,       # OUT (n,)
                    floating[::1] keep,      # OUT (n,) 1 / (1 - rate) where kept, else 0
                    double rate, uint64_t seed, uint64_t step, int n_threads):
    """Inverted dropout with a counter-based generator.

    Call ``step`` of a layer keyed by ``seed`` derives two 32-bit keys from
    hash64(seed, step); element i is kept when the top 24 bits of
    fmix32(fmix32(i ^ k1) + k2), as a fraction of 2**24, are >= rate. The mask
    depends only on (seed, step, i), never on the thread count.
    """
    cdef Py_ssize_t n = x.shape[0], c, i0
    cdef uint64_t key = _mix64(seed ^ _mix64(step + <uint64_t> 0x9e3779b97f4a7c15ULL))
    cdef uint32_t k1 = <uint32_t> key, k2 = <uint32_t> (key >> 32)
    cdef uint32_t threshold = <uint32_t> (rate * 16777216.0 + 0.5)
    cdef double scale = 1.0 / (1.0 - rate)
    if n == 0:
        return
    for c in prange((n + CHUNK - 1) // CHUNK, nogil=True, schedule="static",
                    num_threads=_threads(n, n_threads)):
        i0 = c * CHUNK
        if floating is float:
            fc_dropout_fwd_f32(&x[i0], &out[i0], &keep[i0], min(CHUNK, n - i0),
                               <uint32_t> i0, k1, k2, threshold, <float> scale)
        else:
            fc_dropout_fwd_f64(&x[i0], &out[i0], &keep[i0], min(CHUNK, n - i0),
                               <uint32_t> i0, k1, k2, threshold, scale)


def dropout_backward(const floating[::1] dout,   # IN  (n,)
                     const floating[::1] keep,   # IN  (n,) from dropout_forward
                     floating[::1] dx,           # OUT (n,)
                     int n_threads):
    """dx = dout * keep where kept (keep = 1 / (1 - rate)), else 0."""
    cdef Py_ssize_t n = dout.shape[0], c, i0
    if n == 0:
        return
    for c in prange((n + CHUNK - 1) // CHUNK, nogil=True, schedule="static",
                    num_threads=_threads(n, n_threads)):
        i0 = c * CHUNK
        if floating is float:
            fc_dropout_bwd_f32(&dout[i0], &keep[i0], &dx[i0], min(CHUNK, n - i0))
        else:
            fc_dropout_bwd_f64(&dout[i0], &keep[i0], &dx[i0], min(CHUNK, n - i0))
