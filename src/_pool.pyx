# cython: boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
#
# Directives: shapes, pool sizes, strides and paddings were validated by
# fastconv.backends._args; every window has at least one element inside the input
# ('valid' or Keras 'same' padding), divisors are positive, no negative index is used.
"""2-D max and average pooling kernels, NHWC, float32/float64 (fused).

Forward passes run in parallel over output rows (n, oh). Backward passes scatter
into the input gradient and may overlap between windows (stride < pool size), so
they run in parallel over images only: within an image the order of additions is
fixed, which keeps results race-free and bit-identical for any thread count.

Max pooling picks, in each window, the first element in row-major window order
that is the maximum; a NaN counts as larger than any number (as ``np.argmax``
does), so NaN propagates. The chosen element's index within its image,
``(ih * W + iw) * C + c``, is stored in ``argmax`` for the backward pass.
Padded positions are never chosen.
"""

from cython cimport floating
from cython.parallel cimport prange
from libc.stdint cimport int32_t
from libc.string cimport memset

cdef extern from "_pool_inner.h" nogil:
    void fc_max_update_f32(float* o, int32_t* a, const float* src, Py_ssize_t C, int32_t idx)
    void fc_max_update_f64(double* o, int32_t* a, const double* src, Py_ssize_t C,
                           int32_t idx)
    void fc_max_first_f32(float* o, int32_t* a, const float* src, Py_ssize_t C, int32_t idx)
    void fc_max_first_f64(double* o, int32_t* a, const double* src, Py_ssize_t C,
                          int32_t idx)
    void fc_max_bwd_row_f32(float* dst, const float* d, const int32_t* a, Py_ssize_t OW,
                            Py_ssize_t C, int PW, int32_t row_base)
    void fc_max_bwd_row_f64(double* dst, const double* d, const int32_t* a, Py_ssize_t OW,
                            Py_ssize_t C, int PW, int32_t row_base)
    void fc_avg_bwd_row_f32(float* dst, const float* d, Py_ssize_t OW, Py_ssize_t C, int PW,
                            float scale)
    void fc_avg_bwd_row_f64(double* dst, const double* d, Py_ssize_t OW, Py_ssize_t C,
                            int PW, double scale)
    Py_ssize_t fc_pool2x2_row_f64(const double* r0, const double* r1, Py_ssize_t OW,
                                  double* out, signed char* win)
    Py_ssize_t fc_pool2x2_row_f32(const float* r0, const float* r1, Py_ssize_t OW,
                                  float* out, signed char* win)


def maxpool_forward(const floating[:, :, :, ::1] x,    # IN  (N, H, W, C)
                    floating[:, :, :, ::1] out,        # OUT (N, OH, OW, C)
                    int32_t[:, :, :, ::1] argmax,      # OUT (N, OH, OW, C)
                    int PH, int PW, int sh, int sw, int pt, int pl, int n_threads):
    cdef Py_ssize_t N = x.shape[0], H = x.shape[1], W = x.shape[2], C = x.shape[3]
    cdef Py_ssize_t OH = out.shape[1], OW = out.shape[2]
    cdef Py_ssize_t row, n, oh, ow, ih, iw, idx
    cdef int ki, kj
    cdef bint first
    cdef const floating* src
    cdef floating* o
    cdef int32_t* a
    for row in prange(N * OH, nogil=True, schedule="static", num_threads=n_threads):
        n = row // OH
        oh = row - n * OH
        for ow in range(OW):
            o = &out[n, oh, ow, 0]
            a = &argmax[n, oh, ow, 0]
            first = True
            for ki in range(PH):
                ih = oh * sh + ki - pt
                if ih < 0 or ih >= H:
                    continue
                for kj in range(PW):
                    iw = ow * sw + kj - pl
                    if iw < 0 or iw >= W:
                        continue
                    src = &x[n, ih, iw, 0]
                    idx = (ih * W + iw) * C
                    if floating is float:
                        if first:
                            fc_max_first_f32(o, a, src, C, <int32_t> idx)
                        else:
                            fc_max_update_f32(o, a, src, C, <int32_t> idx)
                    else:
                        if first:
                            fc_max_first_f64(o, a, src, C, <int32_t> idx)
                        else:
                            fc_max_update_f64(o, a, src, C, <int32_t> idx)
                    first = False


def maxpool_backward(const floating[:, :, :, ::1] dout,   # IN  (N, OH, OW, C)
                     const int32_t[:, :, :, ::1] argmax,  # IN  (N, OH, OW, C)
                     floating[:, :, :, ::1] dx,           # IN/OUT (N, H, W, C), zeroed
                     int n_threads):
    cdef Py_ssize_t N = dout.shape[0], OH = dout.shape[1], OW = dout.shape[2]
    cdef Py_ssize_t C = dout.shape[3]
    cdef Py_ssize_t img = dx.shape[1] * dx.shape[2] * dx.shape[3]
    cdef Py_ssize_t n, i, per_out = OH * OW * C
    cdef const floating* d
    cdef const int32_t* a
    cdef floating* g
    for n in prange(N, nogil=True, schedule="static", num_threads=n_threads):
        d = &dout[n, 0, 0, 0]
        a = &argmax[n, 0, 0, 0]
        g = &dx[n, 0, 0, 0]
        for i in range(per_out):
            g[a[i]] += d[i]


def pool_backward_tiled(const floating[:, :, :, ::1] dout,   # IN  (N, OH, OW, C)
                        const int32_t[:, :, :, ::1] argmax,  # IN  (N, OH, OW, C) or None
                        floating[:, :, :, ::1] dx,           # OUT (N, H, W, C)
                        int PH, int PW, int n_threads):
    """Backward of non-overlapping, unpadded windows (strides == pool size), one pass.

    Each input element lies in at most one window, so dx is written directly in
    parallel over output rows, with no zeroing pass and no scatter: for max pooling
    (``argmax`` given) the winner gets dout and the others 0, for average pooling
    (``argmax`` None) every element gets dout / (PH * PW). Rows and columns that no
    window covers are set to 0.
    """
    cdef Py_ssize_t N = dx.shape[0], H = dx.shape[1], W = dx.shape[2], C = dx.shape[3]
    cdef Py_ssize_t OH = dout.shape[1], OW = dout.shape[2]
    cdef Py_ssize_t row, n, oh, ih, i
    cdef int ki
    cdef bint is_max = argmax is not None
    cdef floating scale = <floating> (1.0 / (PH * PW))
    cdef floating* g
    for row in prange(N * OH, nogil=True, schedule="static", num_threads=n_threads):
        n = row // OH
        oh = row - n * OH
        for ki in range(PH):
            ih = oh * PH + ki
            g = &dx[n, ih, 0, 0]
            if is_max:
                if floating is float:
                    fc_max_bwd_row_f32(g, &dout[n, oh, 0, 0], &argmax[n, oh, 0, 0], OW, C,
                                       PW, <int32_t> (ih * W * C))
                else:
                    fc_max_bwd_row_f64(g, &dout[n, oh, 0, 0], &argmax[n, oh, 0, 0], OW, C,
                                       PW, <int32_t> (ih * W * C))
            else:
                if floating is float:
                    fc_avg_bwd_row_f32(g, &dout[n, oh, 0, 0], OW, C, PW, scale)
                else:
                    fc_avg_bwd_row_f64(g, &dout[n, oh, 0, 0], OW, C, PW, scale)
            for i in range(OW * PW * C, W * C):
                g[i] = 0
        if oh == OH - 1:
            for ih in range(OH * PH, H):
                g = &dx[n, ih, 0, 0]
                for i in range(W * C):
                    g[i] = 0


cdef inline Py_ssize_t _count(Py_ssize_t start, int size, Py_ssize_t limit) noexcept nogil:
    """How many of start, start+1, ..., start+size-1 lie in [0, limit)."""
    cdef Py_ssize_t lo = start if start > 0 else 0
    cdef Py_ssize_t hi = start + size if start + size < limit else limit
    return hi - lo


def avgpool_forward(const floating[:, :, :, ::1] x,    # IN  (N, H, W, C)
                    floating[:, :, :, ::1] out,        # OUT (N, OH, OW, C)
                    int PH, int PW, int sh, int sw, int pt, int pl, int n_threads):
    cdef Py_ssize_t N = x.shape[0], H = x.shape[1], W = x.shape[2], C = x.shape[3]
    cdef Py_ssize_t OH = out.shape[1], OW = out.shape[2]
    cdef Py_ssize_t row, n, oh, ow, ih, iw, c
    cdef int ki, kj
    cdef const floating* src
    cdef floating* o
    cdef floating scale
    for row in prange(N * OH, nogil=True, schedule="static", num_threads=n_threads):
        n = row // OH
        oh = row - n * OH
        for ow in range(OW):
            o = &out[n, oh, ow, 0]
            for c in range(C):
                o[c] = 0
            for ki in range(PH):
                ih = oh * sh + ki - pt
                if ih < 0 or ih >= H:
                    continue
                for kj in range(PW):
                    iw = ow * sw + kj - pl
                    if iw < 0 or iw >= W:
                        continue
                    src = &x[n, ih, iw, 0]
                    for c in range(C):
                        o[c] += src[c]
            # Average over the elements inside the input only, as Keras does.
            scale = 1.0 / (_count(oh * sh - pt, PH, H) * _count(ow * sw - pl, PW, W))
            for c in range(C):
                o[c] = o[c] * scale


def avgpool_backward(const floating[:, :, :, ::1] dout,   # IN  (N, OH, OW, C)
                     floating[:, :, :, ::1] dx,           # IN/OUT (N, H, W, C), zeroed
                     int PH, int PW, int sh, int sw, int pt, int pl, int n_threads):
    cdef Py_ssize_t N = dx.shape[0], H = dx.shape[1], W = dx.shape[2], C = dx.shape[3]
    cdef Py_ssize_t OH = dout.shape[1], OW = dout.shape[2]
    cdef Py_ssize_t n, oh, ow, ih, iw, c
    cdef int ki, kj
    cdef const floating* d
    cdef floating* g
    cdef floating scale
    for n in prange(N, nogil=True, schedule="static", num_threads=n_threads):
        for oh in range(OH):
            for ow in range(OW):
                d = &dout[n, oh, ow, 0]
                scale = 1.0 / (_count(oh * sh - pt, PH, H) * _count(ow * sw - pl, PW, W))
                for ki in range(PH):
                    ih = oh * sh + ki - pt
                    if ih < 0 or ih >= H:
                        continue
                    for kj in range(PW):
                        iw = ow * sw + kj - pl
                        if iw < 0 or iw >= W:
                            continue
                        g = &dx[n, ih, iw, 0]
                        for c in range(C):
                            g[c] += d[c] * scale


# --------------------------------------------------------------------------
# Max pooling of planes: x (P, H, W), e.g. the N*C planes of an NCHW batch, with
# non-overlapping PH x PW windows (stride = window, no padding). For the course's
# NCHW layers (fastconv.compat.cs231n), where moving the channels last and back
# would cost more than the pooling itself. Same rule as above; the winner is kept
# as its index in the window (int8, row-major).

def maxpool_planes_forward(const floating[:, :, ::1] x,    # IN  (P, H, W)
                           floating[:, :, ::1] out,        # OUT (P, OH, OW)
                           signed char[:, :, ::1] win,     # OUT (P, OH, OW)
                           int PH, int PW, int n_threads):
    cdef Py_ssize_t P = x.shape[0], W = x.shape[2], OH = out.shape[1], OW = out.shape[2]
    cdef Py_ssize_t p, oh, ow
    cdef int a, b, best, take
    cdef const floating* base
    cdef floating m, v
    cdef Py_ssize_t done = 0
    for p in prange(P, nogil=True, schedule="static", num_threads=n_threads):
        for oh in range(OH):
            done = 0
            if PH == 2 and PW == 2:  # AVX2, 4 or 8 outputs at a time, where available
                if floating is double:
                    done = fc_pool2x2_row_f64(&x[p, 2 * oh, 0], &x[p, 2 * oh + 1, 0], OW,
                                              &out[p, oh, 0], &win[p, oh, 0])
                else:
                    done = fc_pool2x2_row_f32(&x[p, 2 * oh, 0], &x[p, 2 * oh + 1, 0], OW,
                                              &out[p, oh, 0], &win[p, oh, 0])
            for ow in range(done, OW):
                base = &x[p, oh * PH, ow * PW]
                m = base[0]
                best = 0
                for a in range(PH):
                    for b in range(PW):
                        v = base[a * W + b]
                        # larger, or a first NaN; bitwise, so that it compiles to
                        # selects rather than branches that random data mispredicts
                        take = (v > m) | ((v != v) & (m == m))
                        m = v if take else m
                        best = a * PW + b if take else best
                out[p, oh, ow] = m
                win[p, oh, ow] = <signed char> best


def maxpool_planes_backward(const floating[:, :, ::1] dout,   # IN  (P, OH, OW)
                            const signed char[:, :, ::1] win, # IN  (P, OH, OW)
                            floating[:, :, ::1] dx,           # OUT (P, H, W)
                            int PH, int PW, int n_threads):
    """Every element of dx written: dout at each window's winner, 0 elsewhere."""
    cdef Py_ssize_t P = dx.shape[0], H = dx.shape[1], W = dx.shape[2]
    cdef Py_ssize_t OH = dout.shape[1], OW = dout.shape[2]
    cdef Py_ssize_t p, oh, ow
    cdef int k
    for p in prange(P, nogil=True, schedule="static", num_threads=n_threads):
        memset(&dx[p, 0, 0], 0, H * W * sizeof(floating))
        for oh in range(OH):
            for ow in range(OW):
                k = win[p, oh, ow]
                dx[p, oh * PH + k // PW, ow * PW + k % PW] = dout[p, oh, ow]
