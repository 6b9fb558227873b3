# cython: boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
#
# Directives: every pixel index is folded into the image (or flagged as outside, for
# the constant fill) by _fold before it is used; C's % (cdivision) may return a
# negative remainder, which _fold corrects.
"""Image resampling for the augmentation layers (fastconv.preprocessing), float32/float64.

``gather`` gives output pixel (n, i, j) the value of image n at source coordinates
(rows[n, i, j], cols[n, i, j]): the nearest pixel, or the bilinear blend of the four
around it. Source pixels outside the image follow ``fill_mode`` (0 constant, 1
nearest edge, 2 reflect, 3 wrap), folded per pixel instead of padding the batch.
The arithmetic is the NumPy version's in ``fastconv.preprocessing``, operation for
operation (``top = a + (b - a) * fq``, ``low = c + (d - c) * fq``,
``out = top + (low - top) * fr``, fractions rounded to the image's dtype first, and
NumPy's round-half-to-even for 'nearest'), so the two give the same bits. Output
rows run in parallel and every pixel is computed on its own: results do not depend
on the number of threads.
"""

from cython cimport floating
from cython.parallel cimport prange

# Adding and subtracting 1.5 * 2**52 rounds a double to an integer, halves to even,
# as np.rint does (libm's rint is a function call on the baseline ISA).
cdef double ROUNDER = 6755399441055744.0


cdef inline Py_ssize_t _floor(double v) noexcept nogil:
    cdef Py_ssize_t t = <Py_ssize_t> v
    return t - 1 if t > v else t


cdef inline Py_ssize_t _fold(Py_ssize_t i, Py_ssize_t n, int mode) noexcept nogil:
    """Index ``i`` along an axis of ``n`` pixels, by fill mode; -1: outside (constant)."""
    if i >= 0 and i < n:
        return i
    if mode == 0:
        return -1
    if mode == 1:
        return 0 if i < 0 else n - 1
    if mode == 3:
        i = i % n
        return i + n if i < 0 else i
    i = i % (2 * n)  # reflect about the edge pixels: period 2n
    if i < 0:
        i = i + 2 * n
    return i if i < n else 2 * n - 1 - i


cdef inline void _sample(const floating* img, Py_ssize_t H, Py_ssize_t W, Py_ssize_t C,
                         double r, double q, bint bilinear, int fill_mode, floating fill,
                         floating* o) noexcept nogil:
    """o[0:C] = the image at (r, q): nearest or bilinear, outside pixels by fill_mode."""
    cdef Py_ssize_t ir, iq, r0, q0, k
    cdef floating fr, fq
    if not bilinear:
        r0 = _fold(<Py_ssize_t> ((r + ROUNDER) - ROUNDER), H, fill_mode)
        q0 = _fold(<Py_ssize_t> ((q + ROUNDER) - ROUNDER), W, fill_mode)
        for k in range(C):
            o[k] = fill if r0 < 0 or q0 < 0 else img[(r0 * W + q0) * C + k]
        return
    ir = _floor(r)
    iq = _floor(q)
    fr = <floating> (r - <double> ir)
    fq = <floating> (q - <double> iq)
    _blend(img, W, C, _fold(ir, H, fill_mode), _fold(ir + 1, H, fill_mode),
           _fold(iq, W, fill_mode), _fold(iq + 1, W, fill_mode), fr, fq, fill, o)


cdef inline void _blend(const floating* img, Py_ssize_t W, Py_ssize_t C,
                        Py_ssize_t r0, Py_ssize_t r1, Py_ssize_t q0, Py_ssize_t q1,
                        floating fr, floating fq, floating fill,
                        floating* o) noexcept nogil:
    """o[0:C] = the bilinear blend of the folded pixels (r0|r1, q0|q1); -1: fill."""
    cdef Py_ssize_t k
    cdef floating a, b, c, d, top, low
    for k in range(C):
        a = fill if r0 < 0 or q0 < 0 else img[(r0 * W + q0) * C + k]
        b = fill if r0 < 0 or q1 < 0 else img[(r0 * W + q1) * C + k]
        c = fill if r1 < 0 or q0 < 0 else img[(r1 * W + q0) * C + k]
        d = fill if r1 < 0 or q1 < 0 else img[(r1 * W + q1) * C + k]
        top = a + (b - a) * fq
        low = c + (d - c) * fq
        o[k] = top + (low - top) * fr


def gather(const floating[:, :, :, ::1] x,     # IN  (N, H, W, C)
           const double[:, :, :] rows,         # IN  (N, H, W) source rows (may broadcast)
           const double[:, :, :] cols,         # IN  (N, H, W) source columns
           bint bilinear, int fill_mode, double fill_value,
           floating[:, :, :, ::1] out,         # OUT (N, H, W, C)
           int n_threads):
    """out[n, i, j] = x[n] at (rows[n, i, j], cols[n, i, j]), nearest or bilinear."""
    cdef Py_ssize_t N = out.shape[0], H = out.shape[1], W = out.shape[2], C = out.shape[3]
    cdef Py_ssize_t row, n, i, j
    cdef floating fill = <floating> fill_value
    for row in prange(N * H, nogil=True, schedule="static", num_threads=n_threads):
        n = row // H
        i = row - n * H
        for j in range(W):
            _sample(&x[n, 0, 0, 0], H, W, C, rows[n, i, j], cols[n, i, j], bilinear,
                    fill_mode, fill, &out[n, i, j, 0])


def gather_rotated(const floating[:, :, :, ::1] x,   # IN  (N, H, W, C)
                   const double[::1] sin,            # IN  (N,) sine of each image's angle
                   const double[::1] cos,            # IN  (N,) cosine
                   bint bilinear, int fill_mode, double fill_value,
                   floating[:, :, :, ::1] out,       # OUT (N, H, W, C)
                   int n_threads):
    """``gather`` at the coordinates of a turn about the image centre, computed here
    as fastconv.preprocessing.RandomRotation computes them in NumPy:
    ``rows = (j - cx) * sin + (i - cy) * cos + cy``,
    ``cols = (j - cx) * cos - (i - cy) * sin + cx`` (the same operations, the same bits),
    without storing them."""
    cdef Py_ssize_t N = out.shape[0], H = out.shape[1], W = out.shape[2], C = out.shape[3]
    cdef Py_ssize_t row, n, i, j
    cdef double cy = (H - 1) / 2.0, cx = (W - 1) / 2.0, xj, yi
    cdef floating fill = <floating> fill_value
    for row in prange(N * H, nogil=True, schedule="static", num_threads=n_threads):
        n = row // H
        i = row - n * H
        yi = <double> i - cy
        for j in range(W):
            xj = <double> j - cx
            _sample(&x[n, 0, 0, 0], H, W, C, xj * sin[n] + yi * cos[n] + cy,
                    xj * cos[n] - yi * sin[n] + cx, bilinear, fill_mode, fill,
                    &out[n, i, j, 0])


def gather_separable(const floating[:, :, :, ::1] x,   # IN  (N, H, W, C)
                     const double[:, ::1] rows,         # IN  (N, H) source row of output row i
                     const double[:, ::1] cols,         # IN  (N, W) source column of column j
                     bint bilinear, int fill_mode, double fill_value,
                     floating[:, :, :, ::1] out,        # OUT (N, H, W, C)
                     Py_ssize_t[:, :, ::1] qidx,        # scratch (N, W, 2) column taps
                     floating[:, ::1] qfrac,            # scratch (N, W) column fractions
                     int n_threads):
    """``gather`` for coordinates that split into a row part and a column part (flips,
    translations): each image's column taps are folded once, not once per pixel. The
    same arithmetic, so the same bits, as ``gather``."""
    cdef Py_ssize_t N = out.shape[0], H = out.shape[1], W = out.shape[2], C = out.shape[3]
    cdef Py_ssize_t t, row, n, i, j, k, ir, iq, r0, r1, q0
    cdef double r, q
    cdef floating fr
    cdef floating fill = <floating> fill_value
    cdef const floating* img
    cdef floating* o
    for t in prange(N * W, nogil=True, schedule="static", num_threads=n_threads):
        n = t // W
        j = t - n * W
        q = cols[n, j]
        if bilinear:
            iq = _floor(q)
            qfrac[n, j] = <floating> (q - <double> iq)
            qidx[n, j, 0] = _fold(iq, W, fill_mode)
            qidx[n, j, 1] = _fold(iq + 1, W, fill_mode)
        else:
            qidx[n, j, 0] = _fold(<Py_ssize_t> ((q + ROUNDER) - ROUNDER), W, fill_mode)
    for row in prange(N * H, nogil=True, schedule="static", num_threads=n_threads):
        n = row // H
        i = row - n * H
        img = &x[n, 0, 0, 0]
        o = &out[n, i, 0, 0]
        r = rows[n, i]
        if not bilinear:
            r0 = _fold(<Py_ssize_t> ((r + ROUNDER) - ROUNDER), H, fill_mode)
            for j in range(W):
                q0 = qidx[n, j, 0]
                for k in range(C):
                    o[j * C + k] = fill if r0 < 0 or q0 < 0 else img[(r0 * W + q0) * C + k]
            continue
        ir = _floor(r)
        fr = <floating> (r - <double> ir)
        r0 = _fold(ir, H, fill_mode)
        r1 = _fold(ir + 1, H, fill_mode)
        for j in range(W):
            _blend(img, W, C, r0, r1, qidx[n, j, 0], qidx[n, j, 1], fr, qfrac[n, j], fill,
                   o + j * C)
