# cython: boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
#
# Directives: shapes, strides, dilations and paddings were validated by
# fastconv.backends._args.depthwise_args (every window fits the padded input, the
# output is non-empty); each index below is tested against [0, H) or [0, W) before
# use, so no access leaves the arrays and no negative index is used (wraparound);
# divisors are strides, which are >= 1, applied to non-negative numbers (cdivision);
# every memoryview is a NumPy array the Python caller allocated (initializedcheck).
"""Depthwise 2-D convolution kernels, NHWC, float32/float64 (fused), direct loops.

Input x (N, H, W, C), filters w (KH, KW, C, M), output (N, OH, OW, C*M) with
output channel ``c*M + m`` from input channel c and filter m. The arithmetic
intensity is KH*KW*M multiply-adds per input element, too low for a GEMM to pay,
so each pass is a direct loop whose innermost loop runs over the contiguous
channels (and vectorises):

- ``depthwise_forward``: in parallel over output rows (n, oh); each output pixel
  starts from the bias and adds its window's taps.
- ``depthwise_input_grad``: a gather, in parallel over input rows (n, ih): each
  input pixel sums the outputs whose windows contain it, so every element of dx is
  written by one thread, in a fixed order, and once.
- ``depthwise_weight_grad``: the output rows are cut into ``G`` contiguous groups
  (G chosen by the caller from the shapes only); each group accumulates its own
  partial gradient and the caller sums the partials in group order.

With a depth multiplier of 1 and at most 25 taps, on a CPU with AVX-512F, each pass
runs the row kernels of ``_depthwise_inner.h`` instead (the same loops, each channel
block's taps held in registers, fused multiply-adds); elsewhere, the loops here.

All of them compute each result in an order that does not depend on the thread
count, so results are bit-identical for any number of threads.
"""

from cython cimport floating
from cython.parallel cimport prange

cdef extern from "_depthwise_inner.h" nogil:
    int FC_DW_MAX_TAPS
    int fc_dw_have_avx512()
    void fc_dw_fwd_row_f32(const float* x, const float* w, const float* bias, float* out,
                           Py_ssize_t H, Py_ssize_t W, Py_ssize_t C, Py_ssize_t KH,
                           Py_ssize_t KW, Py_ssize_t OW, Py_ssize_t oh, Py_ssize_t sh,
                           Py_ssize_t sw, Py_ssize_t dh, Py_ssize_t dw, Py_ssize_t pt,
                           Py_ssize_t pl)
    void fc_dw_fwd_row_f64(const double* x, const double* w, const double* bias,
                           double* out, Py_ssize_t H, Py_ssize_t W, Py_ssize_t C,
                           Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t OW, Py_ssize_t oh,
                           Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t dh, Py_ssize_t dw,
                           Py_ssize_t pt, Py_ssize_t pl)
    void fc_dw_dx_row_f32(const float* dout, const float* w, float* dx, Py_ssize_t W,
                          Py_ssize_t C, Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t OH,
                          Py_ssize_t OW, Py_ssize_t ih, Py_ssize_t sh, Py_ssize_t sw,
                          Py_ssize_t dh, Py_ssize_t dw, Py_ssize_t pt, Py_ssize_t pl)
    void fc_dw_dx_row_f64(const double* dout, const double* w, double* dx, Py_ssize_t W,
                          Py_ssize_t C, Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t OH,
                          Py_ssize_t OW, Py_ssize_t ih, Py_ssize_t sh, Py_ssize_t sw,
                          Py_ssize_t dh, Py_ssize_t dw, Py_ssize_t pt, Py_ssize_t pl)
    void fc_dw_dw_rows_f32(const float* x, const float* dout, float* dwp, float* db,
                           Py_ssize_t r0, Py_ssize_t r1, Py_ssize_t H, Py_ssize_t W,
                           Py_ssize_t C, Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t OH,
                           Py_ssize_t OW, Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t dh,
                           Py_ssize_t dw, Py_ssize_t pt, Py_ssize_t pl)
    void fc_dw_dw_rows_f64(const double* x, const double* dout, double* dwp, double* db,
                           Py_ssize_t r0, Py_ssize_t r1, Py_ssize_t H, Py_ssize_t W,
                           Py_ssize_t C, Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t OH,
                           Py_ssize_t OW, Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t dh,
                           Py_ssize_t dw, Py_ssize_t pt, Py_ssize_t pl)

# Whether the AVX-512 row kernels run where they apply; tests switch it to compare
# them with the loops below (set_row_kernels).
cdef bint _use_rows = fc_dw_have_avx512()


def have_row_kernels():
    """Whether this CPU can run the AVX-512 row kernels."""
    return bool(fc_dw_have_avx512())


def set_row_kernels(bint on):
    """Use the AVX-512 row kernels where they apply (on) or the baseline loops (off);
    returns the previous setting. Between kernel calls only (the tests compare both)."""
    global _use_rows
    previous = _use_rows
    _use_rows = on and fc_dw_have_avx512()
    return previous


cdef inline bint _rows_apply(Py_ssize_t M, Py_ssize_t KH, Py_ssize_t KW) noexcept nogil:
    return _use_rows and M == 1 and KH * KW <= FC_DW_MAX_TAPS


cdef inline void _tap_product(floating* o, const floating* s, const floating* k,
                              Py_ssize_t C, Py_ssize_t M) noexcept nogil:
    """o[c*M + m] += s[c] * k[c*M + m] for one window tap: the forward pass (s the input,
    k the filters) and the weight gradient (s the input, k the upstream gradient)."""
    cdef Py_ssize_t c, m
    if M == 1:
        for c in range(C):
            o[c] += s[c] * k[c]
    else:
        for c in range(C):
            for m in range(M):
                o[c * M + m] += s[c] * k[c * M + m]


cdef inline void _dx_tap(floating* g, const floating* d, const floating* k,
                         Py_ssize_t C, Py_ssize_t M) noexcept nogil:
    """g[c] += sum_m d[c*M + m] * k[c*M + m] for one window tap."""
    cdef Py_ssize_t c, m
    cdef floating acc
    if M == 1:
        for c in range(C):
            g[c] += d[c] * k[c]
    else:
        for c in range(C):
            acc = 0
            for m in range(M):
                acc = acc + d[c * M + m] * k[c * M + m]
            g[c] += acc


def depthwise_forward(const floating[:, :, :, ::1] x,     # IN  (N, H, W, C)
                      const floating[:, :, :, ::1] w,     # IN  (KH, KW, C, M)
                      const floating[::1] bias,           # IN  (C*M,) or None
                      floating[:, :, :, ::1] out,         # OUT (N, OH, OW, C*M)
                      int sh, int sw, int dh, int dw, int pt, int pl, int n_threads):
    cdef Py_ssize_t N = x.shape[0], H = x.shape[1], W = x.shape[2], C = x.shape[3]
    cdef Py_ssize_t KH = w.shape[0], KW = w.shape[1], M = w.shape[3]
    cdef Py_ssize_t OH = out.shape[1], OW = out.shape[2], F = out.shape[3]
    cdef Py_ssize_t row, n, oh, ow, ih, iw, ki, kj, f
    cdef bint has_bias = bias is not None
    cdef floating* o
    cdef const floating* bp = &bias[0] if has_bias else NULL
    if _rows_apply(M, KH, KW):
        for row in prange(N * OH, nogil=True, schedule="static", num_threads=n_threads):
            n = row // OH
            oh = row - n * OH
            if floating is float:
                fc_dw_fwd_row_f32(&x[n, 0, 0, 0], &w[0, 0, 0, 0], bp, &out[n, oh, 0, 0],
                                  H, W, C, KH, KW, OW, oh, sh, sw, dh, dw, pt, pl)
            else:
                fc_dw_fwd_row_f64(&x[n, 0, 0, 0], &w[0, 0, 0, 0], bp, &out[n, oh, 0, 0],
                                  H, W, C, KH, KW, OW, oh, sh, sw, dh, dw, pt, pl)
        return
    for row in prange(N * OH, nogil=True, schedule="static", num_threads=n_threads):
        n = row // OH
        oh = row - n * OH
        for ow in range(OW):
            o = &out[n, oh, ow, 0]
            for f in range(F):
                o[f] = bias[f] if has_bias else 0
            for ki in range(KH):
                ih = oh * sh + ki * dh - pt
                if ih < 0 or ih >= H:
                    continue
                for kj in range(KW):
                    iw = ow * sw + kj * dw - pl
                    if iw < 0 or iw >= W:
                        continue
                    _tap_product(o, &x[n, ih, iw, 0], &w[ki, kj, 0, 0], C, M)


def depthwise_input_grad(const floating[:, :, :, ::1] dout,  # IN  (N, OH, OW, C*M)
                         const floating[:, :, :, ::1] w,     # IN  (KH, KW, C, M)
                         floating[:, :, :, ::1] dx,          # OUT (N, H, W, C)
                         int sh, int sw, int dh, int dw, int pt, int pl, int n_threads):
    cdef Py_ssize_t N = dx.shape[0], H = dx.shape[1], W = dx.shape[2], C = dx.shape[3]
    cdef Py_ssize_t KH = w.shape[0], KW = w.shape[1], M = w.shape[3]
    cdef Py_ssize_t OH = dout.shape[1], OW = dout.shape[2]
    cdef Py_ssize_t row, n, ih, iw, ki, kj, th, tw, oh, ow, c
    cdef floating* g
    if _rows_apply(M, KH, KW):
        for row in prange(N * H, nogil=True, schedule="static", num_threads=n_threads):
            n = row // H
            ih = row - n * H
            if floating is float:
                fc_dw_dx_row_f32(&dout[n, 0, 0, 0], &w[0, 0, 0, 0], &dx[n, ih, 0, 0], W, C,
                                 KH, KW, OH, OW, ih, sh, sw, dh, dw, pt, pl)
            else:
                fc_dw_dx_row_f64(&dout[n, 0, 0, 0], &w[0, 0, 0, 0], &dx[n, ih, 0, 0], W, C,
                                 KH, KW, OH, OW, ih, sh, sw, dh, dw, pt, pl)
        return
    for row in prange(N * H, nogil=True, schedule="static", num_threads=n_threads):
        n = row // H
        ih = row - n * H
        for iw in range(W):
            g = &dx[n, ih, iw, 0]
            for c in range(C):
                g[c] = 0
            for ki in range(KH):
                # the output row oh whose tap ki reads input row ih, if any
                th = ih + pt - ki * dh
                if th < 0 or th % sh != 0:
                    continue
                oh = th // sh
                if oh >= OH:
                    continue
                for kj in range(KW):
                    tw = iw + pl - kj * dw
                    if tw < 0 or tw % sw != 0:
                        continue
                    ow = tw // sw
                    if ow >= OW:
                        continue
                    _dx_tap(g, &dout[n, oh, ow, 0], &w[ki, kj, 0, 0], C, M)


def depthwise_weight_grad(const floating[:, :, :, ::1] x,      # IN  (N, H, W, C)
                          const floating[:, :, :, ::1] dout,   # IN  (N, OH, OW, C*M)
                          floating[:, :, :, :, ::1] dw_part,   # IN/OUT (G, KH, KW, C, M), zeroed
                          floating[:, ::1] db_part,            # IN/OUT (G, C*M), zeroed, or None
                          int sh, int sw, int dh, int dw, int pt, int pl, int n_threads):
    cdef Py_ssize_t N = x.shape[0], H = x.shape[1], W = x.shape[2], C = x.shape[3]
    cdef Py_ssize_t G = dw_part.shape[0], KH = dw_part.shape[1], KW = dw_part.shape[2]
    cdef Py_ssize_t M = dw_part.shape[4]
    cdef Py_ssize_t OH = dout.shape[1], OW = dout.shape[2], F = dout.shape[3]
    cdef Py_ssize_t rows = N * OH
    cdef Py_ssize_t grp, row, n, oh, ow, ih, iw, ki, kj, f
    cdef bint has_bias = db_part is not None
    cdef const floating* d
    # Strided, the loops' weight gradient ran faster than the row kernel (32x56x56x128,
    # stride 2, 2 threads: 3.4 against 4.7-5.1 ms in three runs; 2.5 against 4.6-4.7 with
    # the 3x3 copy): rows at stride 1 only.
    if _rows_apply(M, KH, KW) and sh == 1 and sw == 1:
        for grp in prange(G, nogil=True, schedule="static", num_threads=n_threads):
            if floating is float:
                fc_dw_dw_rows_f32(&x[0, 0, 0, 0], &dout[0, 0, 0, 0], &dw_part[grp, 0, 0, 0, 0],
                                  &db_part[grp, 0] if has_bias else NULL,
                                  grp * rows // G, (grp + 1) * rows // G, H, W, C, KH, KW,
                                  OH, OW, sh, sw, dh, dw, pt, pl)
            else:
                fc_dw_dw_rows_f64(&x[0, 0, 0, 0], &dout[0, 0, 0, 0], &dw_part[grp, 0, 0, 0, 0],
                                  &db_part[grp, 0] if has_bias else NULL,
                                  grp * rows // G, (grp + 1) * rows // G, H, W, C, KH, KW,
                                  OH, OW, sh, sw, dh, dw, pt, pl)
        return
    for grp in prange(G, nogil=True, schedule="static", num_threads=n_threads):
        for row in range(grp * rows // G, (grp + 1) * rows // G):
            n = row // OH
            oh = row - n * OH
            for ow in range(OW):
                d = &dout[n, oh, ow, 0]
                if has_bias:
                    for f in range(F):
                        db_part[grp, f] += d[f]
                for ki in range(KH):
                    ih = oh * sh + ki * dh - pt
                    if ih < 0 or ih >= H:
                        continue
                    for kj in range(KW):
                        iw = ow * sw + kj * dw - pl
                        if iw < 0 or iw >= W:
                            continue
                        _tap_product(&dw_part[grp, ki, kj, 0, 0], &x[n, ih, iw, 0], d, C, M)
