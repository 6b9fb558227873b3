# cython: boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
#
# Directives: every tap index (r0, r1, q0, q1) and every range (lo, hi) is computed and
# checked in fastconv.backends.cython (_resize_plan) to lie inside the input image, and
# all loops run over the shapes of the arrays themselves.
"""Image resizing for UpSampling2D and Resizing, float32/float64.

Layering: ``resize_forward`` and ``resize_backward`` are loops, parallel over rows of
their output, around small nogil row functions. Python (``fastconv.backends.cython``)
plans the taps: for output row i the two source rows ``r0[i] <= r1[i]`` and the weight
``fr[i]`` of ``r1`` (nearest: r0 = r1 and fr = 0), the same for the columns, and for
each source row ``a`` the range ``[rlo[a], rhi[a])`` of output rows that read it.

Forward, bilinear: ``out = top * (1 - fr) + low * fr`` with
``top = x[r0, q0] * (1 - fq) + x[r0, q1] * fq`` (``low`` likewise on row r1), the
inner loop over channels in ``_resize_inner.h``.
Backward is the transposed map, computed as a gather so that every element of the
result is summed by one thread in a fixed order (bit-identical for any thread count):
first along rows into ``tmp`` (N, H, OW, C), then along columns into ``dx``.
"""

from cython cimport floating
from cython.parallel cimport prange

cdef extern from "_resize_inner.h" nogil:
    void fc_isa_init()
    void fc_bilinear_f32(float* o, const float* a, const float* b, const float* c,
                         const float* d, Py_ssize_t n, float wq, float wr)
    void fc_bilinear_f64(double* o, const double* a, const double* b, const double* c,
                         const double* d, Py_ssize_t n, double wq, double wr)

fc_isa_init()


cdef inline floating _weight(Py_ssize_t a, Py_ssize_t r0, Py_ssize_t r1,
                             floating f) noexcept nogil:
    """The weight of source index ``a`` in an output that blends r0 (1 - f) and r1 (f)."""
    cdef floating w = 0
    if r0 == a:
        w = w + (1 - f)
    if r1 == a:
        w = w + f
    return w


def resize_forward(const floating[:, :, :, ::1] x,     # IN  (N, H, W, C)
                   const Py_ssize_t[::1] r0,           # IN  (OH,) upper source row
                   const Py_ssize_t[::1] r1,           # IN  (OH,) lower source row
                   const floating[::1] fr,             # IN  (OH,) weight of r1
                   const Py_ssize_t[::1] q0,           # IN  (OW,) left source column
                   const Py_ssize_t[::1] q1,           # IN  (OW,) right source column
                   const floating[::1] fq,             # IN  (OW,) weight of q1
                   bint bilinear,
                   floating[:, :, :, ::1] out,         # OUT (N, OH, OW, C)
                   int n_threads):
    """out[n, i, j] = x[n] resampled at output pixel (i, j), nearest or bilinear."""
    cdef Py_ssize_t N = out.shape[0], OH = out.shape[1], OW = out.shape[2]
    cdef Py_ssize_t C = out.shape[3]
    cdef Py_ssize_t row, n, i, j, k
    cdef const floating* a
    cdef const floating* b
    cdef const floating* c
    cdef const floating* d
    cdef floating* o
    cdef floating wr, wq
    for row in prange(N * OH, nogil=True, schedule="static", num_threads=n_threads):
        n = row // OH
        i = row - n * OH
        wr = fr[i]
        for j in range(OW):
            o = &out[n, i, j, 0]
            a = &x[n, r0[i], q0[j], 0]
            if not bilinear:
                for k in range(C):
                    o[k] = a[k]
                continue
            b = &x[n, r0[i], q1[j], 0]
            c = &x[n, r1[i], q0[j], 0]
            d = &x[n, r1[i], q1[j], 0]
            wq = fq[j]
            if floating is float:
                fc_bilinear_f32(o, a, b, c, d, C, wq, wr)
            else:
                fc_bilinear_f64(o, a, b, c, d, C, wq, wr)


def resize_backward(const floating[:, :, :, ::1] dout,  # IN  (N, OH, OW, C)
                    const Py_ssize_t[::1] r0,           # IN  (OH,)
                    const Py_ssize_t[::1] r1,           # IN  (OH,)
                    const floating[::1] fr,             # IN  (OH,)
                    const Py_ssize_t[::1] rlo,          # IN  (H,) first output row reading a
                    const Py_ssize_t[::1] rhi,          # IN  (H,) one past the last
                    const Py_ssize_t[::1] q0,           # IN  (OW,)
                    const Py_ssize_t[::1] q1,           # IN  (OW,)
                    const floating[::1] fq,             # IN  (OW,)
                    const Py_ssize_t[::1] qlo,          # IN  (W,)
                    const Py_ssize_t[::1] qhi,          # IN  (W,)
                    floating[:, :, :, ::1] tmp,         # scratch (N, H, OW, C)
                    floating[:, :, :, ::1] dx,          # OUT (N, H, W, C)
                    int n_threads):
    """dx = the transpose of resize_forward applied to dout (a row pass, a column pass)."""
    cdef Py_ssize_t N = dx.shape[0], H = dx.shape[1], W = dx.shape[2], C = dx.shape[3]
    cdef Py_ssize_t OW = tmp.shape[2]
    cdef Py_ssize_t row, n, a, i, j, k
    cdef floating w
    cdef floating* t
    cdef floating* o
    cdef const floating* s
    for row in prange(N * H, nogil=True, schedule="static", num_threads=n_threads):
        n = row // H
        a = row - n * H
        t = &tmp[n, a, 0, 0]
        for k in range(OW * C):
            t[k] = 0
        for i in range(rlo[a], rhi[a]):
            w = _weight(a, r0[i], r1[i], fr[i])
            s = &dout[n, i, 0, 0]
            for k in range(OW * C):
                t[k] = t[k] + w * s[k]
    for row in prange(N * H, nogil=True, schedule="static", num_threads=n_threads):
        n = row // H
        a = row - n * H
        for j in range(W):
            o = &dx[n, a, j, 0]
            for k in range(C):
                o[k] = 0
            for i in range(qlo[j], qhi[j]):
                w = _weight(j, q0[i], q1[i], fq[i])
                s = &tmp[n, a, i, 0]
                for k in range(C):
                    o[k] = o[k] + w * s[k]
