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

All three compute each result in an order that does not depend on the thread
count, so results are bit-identical for any number of threads.
"""

from cython cimport floating
from cython.parallel cimport prange


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
