# cython: boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
#
# Directives: fastconv.backends._args.channel_args checked every shape (u, v and out
# (A, R, B), the coefficients and shifts (A, B), the partial sums (A, T, B) with T the
# number of row blocks), so every pointer below stays inside its array.
"""The kernels of the normalisation layers, float32/float64: per-channel sums over
rows and a per-channel affine map (batch and group normalisation; either can take a
ReLU's gate, and the map a ReLU, for a normalisation followed by a ReLU), and layer
normalisation of rows (``layernorm_forward``/``layernorm_backward``).

The arrays are (A, R, B): A independent groups (1 for BatchNormalization, the batch
for GroupNormalization), R rows reduced over, B channels. Both kernels run in parallel
over tasks of (group a, block of ROWS rows); ``channel_sums`` writes each task's sums
to its own slot of the partials (A, T, B), which the caller adds up in block order, so
every result is the same for any number of threads. The loops are in
``_norm_inner.h``.
"""

from cython cimport floating
from cython.parallel cimport prange

cdef extern from "_norm_inner.h" nogil:
    void fc_isa_init()
    void fc_sums_f32(const float* u, const float* v, const double* shift, const float* gp,
                     const float* gr, double* s1, double* s2, Py_ssize_t rows, Py_ssize_t B)
    void fc_sums_f64(const double* u, const double* v, const double* shift,
                     const double* gp, const double* gr, double* s1, double* s2,
                     Py_ssize_t rows, Py_ssize_t B)
    void fc_affine_f32(const float* u, const float* v, const float* p, const float* q,
                       const float* r, const float* gp, const float* gr, int relu,
                       float* out, Py_ssize_t rows, Py_ssize_t B)
    void fc_affine_f64(const double* u, const double* v, const double* p, const double* q,
                       const double* r, const double* gp, const double* gr, int relu,
                       double* out, Py_ssize_t rows, Py_ssize_t B)
    void fc_ln_fwd_f32(const float* x, const float* g, const float* b, float* out,
                       float* mean, float* inv, Py_ssize_t rows, Py_ssize_t C, float eps)
    void fc_ln_fwd_f64(const double* x, const double* g, const double* b, double* out,
                       double* mean, double* inv, Py_ssize_t rows, Py_ssize_t C, double eps)
    void fc_ln_bwd_f32(const float* dout, const float* x, const float* mean,
                       const float* inv, const float* g, float* dx, double* dg, double* db,
                       Py_ssize_t rows, Py_ssize_t C)
    void fc_ln_bwd_f64(const double* dout, const double* x, const double* mean,
                       const double* inv, const double* g, double* dx, double* dg,
                       double* db, Py_ssize_t rows, Py_ssize_t C)

fc_isa_init()

# Rows per task: a fixed number (not the thread count), so the partials, and the bits
# of their sum, do not depend on the threads.
cdef Py_ssize_t _ROWS = 256
ROWS = _ROWS


def channel_sums(const floating[:, :, ::1] u,      # IN  (A, R, B)
                 const floating[:, :, ::1] v,      # IN  (A, R, B) or None
                 const double[:, ::1] shift,       # IN  (A, B)
                 const floating[:, ::1] gp,        # IN  (A, B) or None (needs v)
                 const floating[:, ::1] gr,        # IN  (A, B), None with gp
                 double[:, :, ::1] s1,             # OUT (A, T, B) partials, T = ceil(R / ROWS)
                 double[:, :, ::1] s2,             # OUT (A, T, B)
                 int n_threads):
    """Per block of rows, s1 = sum(u - shift), s2 = sum((u - shift)^2) (v None), or
    s1 = sum(u), s2 = sum(u * (v - shift)), in double; with the gate (gp, gr), u counts
    as 0 where gp * v + gr > 0 fails."""
    cdef Py_ssize_t A = u.shape[0], R = u.shape[1], B = u.shape[2]
    cdef Py_ssize_t T = s1.shape[1], task, a, t, r0
    cdef bint has_v = v is not None, has_g = gp is not None
    if A == 0 or R == 0 or B == 0:
        return
    for task in prange(A * T, nogil=True, schedule="static", num_threads=n_threads):
        a = task // T
        t = task - a * T
        r0 = t * _ROWS
        if floating is float:
            fc_sums_f32(&u[a, r0, 0], &v[a, r0, 0] if has_v else NULL, &shift[a, 0],
                        &gp[a, 0] if has_g else NULL, &gr[a, 0] if has_g else NULL,
                        &s1[a, t, 0], &s2[a, t, 0], min(_ROWS, R - r0), B)
        else:
            fc_sums_f64(&u[a, r0, 0], &v[a, r0, 0] if has_v else NULL, &shift[a, 0],
                        &gp[a, 0] if has_g else NULL, &gr[a, 0] if has_g else NULL,
                        &s1[a, t, 0], &s2[a, t, 0], min(_ROWS, R - r0), B)


def channel_affine(const floating[:, :, ::1] u,    # IN  (A, R, B)
                   const floating[:, :, ::1] v,    # IN  (A, R, B) or None
                   const floating[:, ::1] p,       # IN  (A, B)
                   const floating[:, ::1] q,       # IN  (A, B), None with v
                   const floating[:, ::1] r,       # IN  (A, B)
                   const floating[:, ::1] gp,      # IN  (A, B) or None (needs v)
                   const floating[:, ::1] gr,      # IN  (A, B), None with gp
                   bint relu,
                   floating[:, :, ::1] out,        # OUT (A, R, B)
                   int n_threads):
    """out = p * u + q * v + r per channel (without v: p * u + r), then max(out, 0)
    (NaN kept) with relu; with the gate (gp, gr), u counts as 0 where gp * v + gr > 0
    fails."""
    cdef Py_ssize_t A = u.shape[0], R = u.shape[1], B = u.shape[2]
    cdef Py_ssize_t T = (R + _ROWS - 1) // _ROWS, task, a, t, r0
    cdef bint has_v = v is not None, has_g = gp is not None
    if A == 0 or R == 0 or B == 0:
        return
    for task in prange(A * T, nogil=True, schedule="static", num_threads=n_threads):
        a = task // T
        t = task - a * T
        r0 = t * _ROWS
        if floating is float:
            fc_affine_f32(&u[a, r0, 0], &v[a, r0, 0] if has_v else NULL, &p[a, 0],
                          &q[a, 0] if has_v else NULL, &r[a, 0],
                          &gp[a, 0] if has_g else NULL, &gr[a, 0] if has_g else NULL,
                          relu, &out[a, r0, 0], min(_ROWS, R - r0), B)
        else:
            fc_affine_f64(&u[a, r0, 0], &v[a, r0, 0] if has_v else NULL, &p[a, 0],
                          &q[a, 0] if has_v else NULL, &r[a, 0],
                          &gp[a, 0] if has_g else NULL, &gr[a, 0] if has_g else NULL,
                          relu, &out[a, r0, 0], min(_ROWS, R - r0), B)


def layernorm_forward(const floating[:, ::1] x,      # IN  (M, C)
                      const floating[::1] gamma,     # IN  (C,) or None
                      const floating[::1] beta,      # IN  (C,) or None
                      floating[:, ::1] out,          # OUT (M, C)
                      floating[::1] mean,            # OUT (M,)
                      floating[::1] inv,             # OUT (M,)
                      double epsilon, int n_threads):
    """Each row standardised over its C values, then ``* gamma + beta``; blocks of
    ROWS rows in parallel (every row on its own: any thread count, the same bits)."""
    cdef Py_ssize_t M = x.shape[0], C = x.shape[1], T = (M + _ROWS - 1) // _ROWS, t, r0
    cdef bint has_g = gamma is not None, has_b = beta is not None
    if M == 0 or C == 0:
        return
    for t in prange(T, nogil=True, schedule="static", num_threads=n_threads):
        r0 = t * _ROWS
        if floating is float:
            fc_ln_fwd_f32(&x[r0, 0], &gamma[0] if has_g else NULL,
                          &beta[0] if has_b else NULL, &out[r0, 0], &mean[r0], &inv[r0],
                          min(_ROWS, M - r0), C, <float> epsilon)
        else:
            fc_ln_fwd_f64(&x[r0, 0], &gamma[0] if has_g else NULL,
                          &beta[0] if has_b else NULL, &out[r0, 0], &mean[r0], &inv[r0],
                          min(_ROWS, M - r0), C, epsilon)


def layernorm_backward(const floating[:, ::1] dout,   # IN  (M, C)
                       const floating[:, ::1] x,      # IN  (M, C)
                       const floating[::1] mean,      # IN  (M,)
                       const floating[::1] inv,       # IN  (M,)
                       const floating[::1] gamma,     # IN  (C,) or None
                       floating[:, ::1] dx,           # OUT (M, C)
                       double[:, ::1] dgamma_part,    # OUT (T, C) zeroed, or None
                       double[:, ::1] dbeta_part,     # OUT (T, C) zeroed, or None
                       int n_threads):
    """dx of layernorm_forward, and per block of ROWS rows the sums of dout * xhat and
    dout (the caller adds the blocks in order)."""
    cdef Py_ssize_t M = x.shape[0], C = x.shape[1], T = (M + _ROWS - 1) // _ROWS, t, r0
    cdef bint has_g = gamma is not None
    cdef bint has_dg = dgamma_part is not None, has_db = dbeta_part is not None
    if M == 0 or C == 0:
        return
    for t in prange(T, nogil=True, schedule="static", num_threads=n_threads):
        r0 = t * _ROWS
        if floating is float:
            fc_ln_bwd_f32(&dout[r0, 0], &x[r0, 0], &mean[r0], &inv[r0],
                          &gamma[0] if has_g else NULL, &dx[r0, 0],
                          &dgamma_part[t, 0] if has_dg else NULL,
                          &dbeta_part[t, 0] if has_db else NULL, min(_ROWS, M - r0), C)
        else:
            fc_ln_bwd_f64(&dout[r0, 0], &x[r0, 0], &mean[r0], &inv[r0],
                          &gamma[0] if has_g else NULL, &dx[r0, 0],
                          &dgamma_part[t, 0] if has_dg else NULL,
                          &dbeta_part[t, 0] if has_db else NULL, min(_ROWS, M - r0), C)
