# cython: boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
#
# Directives: fastconv.backends._args.channel_args checked every shape (u, v and out
# (A, R, B), the coefficients and shifts (A, B), the partial sums (A, T, B) with T the
# number of row blocks), so every pointer below stays inside its array.
"""The kernels of the normalisation layers, float32/float64: per-channel sums over
rows, and a per-channel affine map.

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
    void fc_sums_f32(const float* u, const float* v, const double* shift, double* s1,
                     double* s2, Py_ssize_t rows, Py_ssize_t B)
    void fc_sums_f64(const double* u, const double* v, const double* shift, double* s1,
                     double* s2, Py_ssize_t rows, Py_ssize_t B)
    void fc_affine_f32(const float* u, const float* v, const float* p, const float* q,
                       const float* r, float* out, Py_ssize_t rows, Py_ssize_t B)
    void fc_affine_f64(const double* u, const double* v, const double* p, const double* q,
                       const double* r, double* out, Py_ssize_t rows, Py_ssize_t B)

fc_isa_init()

# Rows per task: a fixed number (not the thread count), so the partials, and the bits
# of their sum, do not depend on the threads.
cdef Py_ssize_t _ROWS = 256
ROWS = _ROWS


def channel_sums(const floating[:, :, ::1] u,      # IN  (A, R, B)
                 const floating[:, :, ::1] v,      # IN  (A, R, B) or None
                 const double[:, ::1] shift,       # IN  (A, B)
                 double[:, :, ::1] s1,             # OUT (A, T, B) partials, T = ceil(R / ROWS)
                 double[:, :, ::1] s2,             # OUT (A, T, B)
                 int n_threads):
    """Per block of rows, s1 = sum(u - shift), s2 = sum((u - shift)^2) (v None), or
    s1 = sum(u), s2 = sum(u * (v - shift)), in double."""
    cdef Py_ssize_t A = u.shape[0], R = u.shape[1], B = u.shape[2]
    cdef Py_ssize_t T = s1.shape[1], task, a, t, r0
    cdef bint has_v = v is not None
    if A == 0 or R == 0 or B == 0:
        return
    for task in prange(A * T, nogil=True, schedule="static", num_threads=n_threads):
        a = task // T
        t = task - a * T
        r0 = t * _ROWS
        if floating is float:
            fc_sums_f32(&u[a, r0, 0], &v[a, r0, 0] if has_v else NULL, &shift[a, 0],
                        &s1[a, t, 0], &s2[a, t, 0], min(_ROWS, R - r0), B)
        else:
            fc_sums_f64(&u[a, r0, 0], &v[a, r0, 0] if has_v else NULL, &shift[a, 0],
                        &s1[a, t, 0], &s2[a, t, 0], min(_ROWS, R - r0), B)


def channel_affine(const floating[:, :, ::1] u,    # IN  (A, R, B)
                   const floating[:, :, ::1] v,    # IN  (A, R, B) or None
                   const floating[:, ::1] p,       # IN  (A, B)
                   const floating[:, ::1] q,       # IN  (A, B), None with v
                   const floating[:, ::1] r,       # IN  (A, B)
                   floating[:, :, ::1] out,        # OUT (A, R, B)
                   int n_threads):
    """out = p * u + q * v + r per channel (without v: p * u + r)."""
    cdef Py_ssize_t A = u.shape[0], R = u.shape[1], B = u.shape[2]
    cdef Py_ssize_t T = (R + _ROWS - 1) // _ROWS, task, a, t, r0
    cdef bint has_v = v is not None
    if A == 0 or R == 0 or B == 0:
        return
    for task in prange(A * T, nogil=True, schedule="static", num_threads=n_threads):
        a = task // T
        t = task - a * T
        r0 = t * _ROWS
        if floating is float:
            fc_affine_f32(&u[a, r0, 0], &v[a, r0, 0] if has_v else NULL, &p[a, 0],
                          &q[a, 0] if has_v else NULL, &r[a, 0], &out[a, r0, 0],
                          min(_ROWS, R - r0), B)
        else:
            fc_affine_f64(&u[a, r0, 0], &v[a, r0, 0] if has_v else NULL, &p[a, 0],
                          &q[a, 0] if has_v else NULL, &r[a, 0], &out[a, r0, 0],
                          min(_ROWS, R - r0), B)
