# cython: boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
#
# Directives: every shape, stride and padding reaching these kernels was validated
# by fastconv.backends._args (bounds and non-negative sizes), divisors are positive
# sizes or strides (cdivision), no negative index is ever used (wraparound), and
# every memoryview is a NumPy array allocated by the Python caller (initializedcheck).
"""Convolution kernels, NHWC, float32/float64 (fused), OpenMP over output tiles.

Layering (Python validates, Cython computes):

- ``_im2col_rows``: copies the receptive fields of a run of output positions of one
  image into a row-major (positions, KH*KW*C) buffer, zeros where the window
  falls into padding. It also handles *input dilation* (zeros between input rows
  and columns), which turns the input gradient of a strided convolution into an
  ordinary stride-1 convolution with flipped weights.
- ``conv2d_forward``: the output, as (N*OH*OW, F) rows, is cut into tiles of at
  most ``tile`` positions (a tile may span images); each thread copies a tile into its own workspace row and multiplies
  it by the (K, F) weight matrix with single-threaded BLAS, then adds the bias and
  optionally applies ReLU while the tile is still in cache. The tile size depends
  only on the shapes, never on the thread count, so results are bit-identical for
  any number of threads.
- ``conv2d_weight_grad``: tiles are split into a fixed number of contiguous groups;
  each group accumulates its own partial (K, F) weight gradient and bias gradient,
  and the Python caller sums the partials in a fixed order: no races, and the same
  bits whatever the thread count.

Workspaces are allocated by the caller: ``work`` has one row per thread, each of
``tile * K`` elements, so memory does not grow with the batch size.
"""

import os as _os

from cython cimport floating
from cython.parallel cimport parallel, prange, threadid
from libc.string cimport memcpy, memset

from _blas cimport gemm_rm


cdef void _im2col_rows(const floating* x,          # IN  (N, H, W, C)
                       Py_ssize_t H, Py_ssize_t W, Py_ssize_t C,
                       floating* col,              # OUT (p1 - p0, KH*KW*C)
                       Py_ssize_t p0, Py_ssize_t p1, Py_ssize_t OH, Py_ssize_t OW,
                       int KH, int KW, int sh, int sw, int dh, int dw,
                       int pt, int pl, int idh, int idw) noexcept nogil:
    """Receptive fields of output positions p0..p1-1, row-major over (N, OH, OW).

    A run of positions may span several images, so that layers with small images
    still get GEMMs of a useful size. Output (oh, ow) and tap (ki, kj) read the
    input-dilated, padded input at row oh*sh + ki*dh - pt; that row exists in the
    image only when it is >= 0, a multiple of idh, and (row / idh) < H. Columns
    likewise.
    """
    cdef Py_ssize_t p, n, q, oh, ow, i, j, ih, iw
    cdef int ki, kj
    cdef floating* dst = col
    cdef const floating* img
    cdef size_t row_bytes = C * sizeof(floating)
    for p in range(p0, p1):
        n = p // (OH * OW)
        q = p - n * (OH * OW)
        img = x + n * H * W * C
        oh = q // OW
        ow = q - oh * OW
        for ki in range(KH):
            i = oh * sh + ki * dh - pt
            ih = -1
            if i >= 0 and i % idh == 0:
                ih = i // idh
                if ih >= H:
                    ih = -1
            if ih < 0:
                memset(dst, 0, KW * row_bytes)
                dst += KW * C
                continue
            for kj in range(KW):
                j = ow * sw + kj * dw - pl
                iw = -1
                if j >= 0 and j % idw == 0:
                    iw = j // idw
                    if iw >= W:
                        iw = -1
                if iw < 0:
                    memset(dst, 0, row_bytes)
                else:
                    memcpy(dst, img + (ih * W + iw) * C, row_bytes)
                dst += C


def conv2d_forward(const floating[:, :, :, ::1] x,     # IN  (N, H, W, C)
                   const floating[:, ::1] wmat,        # IN  (KH*KW*C, F)
                   const floating[::1] bias,           # IN  (F,) or None
                   floating[:, :, :, ::1] out,         # OUT (N, OH, OW, F)
                   floating[:, ::1] work,              # scratch (n_threads, tile*K)
                   int KH, int KW, int sh, int sw, int dh, int dw,
                   int pt, int pl, int idh, int idw,
                   Py_ssize_t tile, bint relu, int n_threads):
    """out = conv(x, w) (+ bias) (then ReLU if ``relu``); see the module docstring."""
    cdef Py_ssize_t N = x.shape[0], H = x.shape[1], W = x.shape[2], C = x.shape[3]
    cdef Py_ssize_t OH = out.shape[1], OW = out.shape[2], F = out.shape[3]
    cdef Py_ssize_t K = wmat.shape[0]
    cdef Py_ssize_t P = N * OH * OW
    cdef Py_ssize_t tiles = (P + tile - 1) // tile
    cdef Py_ssize_t t, p0, p1, m, r, f
    cdef bint has_bias = bias is not None
    cdef const floating* bptr = NULL
    cdef const floating* xptr = &x[0, 0, 0, 0]
    cdef const floating* wptr = &wmat[0, 0]
    cdef floating* optr = &out[0, 0, 0, 0]
    cdef floating* wkptr = &work[0, 0]
    cdef Py_ssize_t wstride = work.shape[1]
    cdef floating* col = NULL  # set per thread inside the parallel block
    cdef floating* o
    cdef floating v
    if has_bias:
        bptr = &bias[0]
    with nogil, parallel(num_threads=n_threads):
        col = wkptr + threadid() * wstride
        for t in prange(tiles, schedule="static"):
            p0 = t * tile
            p1 = min(p0 + tile, P)
            m = p1 - p0
            _im2col_rows(xptr, H, W, C, col, p0, p1, OH, OW,
                         KH, KW, sh, sw, dh, dw, pt, pl, idh, idw)
            o = optr + p0 * F
            gemm_rm(False, False, <int> m, <int> F, <int> K, 1.0, col, <int> K,
                    wptr, <int> F, 0.0, o, <int> F)
            if has_bias or relu:
                for r in range(m):
                    for f in range(F):
                        v = o[r * F + f]
                        if has_bias:
                            v = v + bptr[f]
                        # NaN passes through ReLU, as np.maximum(v, 0) does.
                        if relu and v <= 0:
                            v = 0
                        o[r * F + f] = v


def conv2d_weight_grad(const floating[:, :, :, ::1] x,     # IN  (N, H, W, C)
                       const floating[:, :, :, ::1] dout,  # IN  (N, OH, OW, F)
                       floating[:, :, ::1] dw_part,        # OUT (G, K, F)
                       floating[:, ::1] db_part,           # OUT (G, F) or None
                       floating[:, ::1] work,              # scratch (n_threads, tile*K)
                       int KH, int KW, int sh, int sw, int dh, int dw,
                       int pt, int pl, Py_ssize_t tile, int n_threads):
    """Per-group partial weight (and bias) gradients; the caller sums over G."""
    cdef Py_ssize_t N = x.shape[0], H = x.shape[1], W = x.shape[2], C = x.shape[3]
    cdef Py_ssize_t OH = dout.shape[1], OW = dout.shape[2], F = dout.shape[3]
    cdef Py_ssize_t K = dw_part.shape[1], G = dw_part.shape[0]
    cdef Py_ssize_t P = N * OH * OW
    cdef Py_ssize_t total = (P + tile - 1) // tile
    cdef Py_ssize_t g, t, p0, p1, m, r, f
    cdef bint has_db = db_part is not None
    cdef const floating* xptr = &x[0, 0, 0, 0]
    cdef const floating* dptr = &dout[0, 0, 0, 0]
    cdef floating* dwptr = &dw_part[0, 0, 0]
    cdef floating* dbptr = NULL
    cdef floating* wkptr = &work[0, 0]
    cdef Py_ssize_t wstride = work.shape[1]
    cdef floating* col = NULL  # set per thread inside the parallel block
    cdef const floating* d
    cdef floating* dbg
    cdef floating beta
    if has_db:
        dbptr = &db_part[0, 0]
    with nogil, parallel(num_threads=n_threads):
        col = wkptr + threadid() * wstride
        # Groups are fixed by the shapes; which thread runs one does not matter.
        for g in prange(G, schedule="dynamic"):
            if has_db:
                dbg = dbptr + g * F
                memset(dbg, 0, F * sizeof(floating))
            for t in range(g * total // G, (g + 1) * total // G):
                p0 = t * tile
                p1 = min(p0 + tile, P)
                m = p1 - p0
                _im2col_rows(xptr, H, W, C, col, p0, p1, OH, OW,
                             KH, KW, sh, sw, dh, dw, pt, pl, 1, 1)
                d = dptr + p0 * F
                beta = 0.0 if t == g * total // G else 1.0
                # dW_g (K, F) += col^T (K, m) @ dout_tile (m, F)
                gemm_rm(True, False, <int> K, <int> F, <int> m, 1.0, col, <int> K,
                        d, <int> F, beta, dwptr + g * K * F, <int> F)
                if has_db:
                    for r in range(m):
                        for f in range(F):
                            dbg[f] = dbg[f] + d[r * F + f]


# --------------------------------------------------------------------------
# Direct kernels (AVX2 + FMA, dispatched at run time): see _direct.h. The Python
# wrapper only calls them when have_avx2() is True and F is a multiple of the vector
# width (8 floats, 4 doubles). The forward, weight-gradient and row input-gradient
# kernels exist for both dtypes; the others (planar dx, fused pooling) are float32.

cdef extern from "_direct.h" nogil:
    int fc_have_avx2()
    int fc_have_avx512()
    int fc_set_wide_avx512(int on)
    int fc_wide_avx512
    void fc_rows_sum_f32(const float* d, Py_ssize_t rows, Py_ssize_t F, float* acc)
    void fc_rows_sum_f64(const double* d, Py_ssize_t rows, Py_ssize_t F, double* acc)
    void fc_conv_fwd_rows_f32(const float* img, Py_ssize_t H, Py_ssize_t W, Py_ssize_t C,
                              const float* w, const float* bias, float* out,
                              Py_ssize_t oh0, Py_ssize_t oh1, Py_ssize_t OW, Py_ssize_t F,
                              Py_ssize_t K, const Py_ssize_t* koff, const int* kdi,
                              const int* kdj, int sh, int sw, int pt, int pl, int max_di,
                              int max_dj, int relu, int skip)
    void fc_conv_fwd_row_f32(const float* img, Py_ssize_t H, Py_ssize_t W, Py_ssize_t C,
                             const float* w, const float* bias, float* orow,
                             Py_ssize_t oh, Py_ssize_t OW, Py_ssize_t F, Py_ssize_t K,
                             const Py_ssize_t* koff, const int* kdi, const int* kdj,
                             int sh, int sw, int pt, int pl, int max_di, int max_dj,
                             int relu)
    void fc_conv_dw_rows_f32(const float* img, Py_ssize_t H, Py_ssize_t W, Py_ssize_t C,
                             const float* dout, float* dw,
                             Py_ssize_t r0, Py_ssize_t r1, Py_ssize_t OW, Py_ssize_t F,
                             Py_ssize_t K, const Py_ssize_t* koff, const int* kdi,
                             const int* kdj, int sh, int sw, int pt, int pl,
                             int max_di, int max_dj)
    void fc_conv_dx_row_f32(const float* dout, Py_ssize_t OH, Py_ssize_t OW, Py_ssize_t F,
                            const float* w, float* dxrow, Py_ssize_t i, Py_ssize_t W,
                            Py_ssize_t C, int KH, int KW, int dh, int dw, int pt, int pl)
    void fc_conv_fwd_rows_f64(const double* img, Py_ssize_t H, Py_ssize_t W, Py_ssize_t C,
                              const double* w, const double* bias, double* out,
                              Py_ssize_t oh0, Py_ssize_t oh1, Py_ssize_t OW, Py_ssize_t F,
                              Py_ssize_t K, const Py_ssize_t* koff, const int* kdi,
                              const int* kdj, int sh, int sw, int pt, int pl, int max_di,
                              int max_dj, int relu, int skip)
    void fc_conv_fwd_row_f64(const double* img, Py_ssize_t H, Py_ssize_t W, Py_ssize_t C,
                             const double* w, const double* bias, double* orow,
                             Py_ssize_t oh, Py_ssize_t OW, Py_ssize_t F, Py_ssize_t K,
                             const Py_ssize_t* koff, const int* kdi, const int* kdj,
                             int sh, int sw, int pt, int pl, int max_di, int max_dj,
                             int relu)
    void fc_conv_dw_rows_f64(const double* img, Py_ssize_t H, Py_ssize_t W, Py_ssize_t C,
                             const double* dout, double* dw,
                             Py_ssize_t r0, Py_ssize_t r1, Py_ssize_t OW, Py_ssize_t F,
                             Py_ssize_t K, const Py_ssize_t* koff, const int* kdi,
                             const int* kdj, int sh, int sw, int pt, int pl,
                             int max_di, int max_dj)
    void fc_conv_dx_row_f64(const double* dout, Py_ssize_t OH, Py_ssize_t OW, Py_ssize_t F,
                            const double* w, double* dxrow, Py_ssize_t i, Py_ssize_t W,
                            Py_ssize_t C, int KH, int KW, int dh, int dw, int pt, int pl)
    Py_ssize_t fc_dx_planar_width(Py_ssize_t C)
    void fc_conv_dx_planar_f32(const float* dout, Py_ssize_t OH, Py_ssize_t OW, Py_ssize_t F,
                               const float* wt, float* dx, Py_ssize_t W, Py_ssize_t C,
                               Py_ssize_t i0, Py_ssize_t i1, int KH, int KW, int dh, int dw,
                               int pt, int pl, float* tbuf, Py_ssize_t Wp, Py_ssize_t L,
                               float* rowbuf, Py_ssize_t Wb)
    void fc_relu_maxpool_row_f32(const float* s, Py_ssize_t PWo, Py_ssize_t F, int PH, int PW,
                                 float* out, signed char* win)
    void fc_relu_maxpool_grad_row_f32(const float* dp, const signed char* win, Py_ssize_t PWo,
                                      Py_ssize_t F, int PH, int PW, float* dz, Py_ssize_t OWz,
                                      float* db)
    int FC_POOL2_MAX_K
    int FC_WIDE_MIN_K
    void fc_conv_relu_pool2_row_f32(const float* img, Py_ssize_t H, Py_ssize_t W, Py_ssize_t C,
                                    const float* w, const float* bias, float* out,
                                    signed char* win, Py_ssize_t ph, Py_ssize_t PWo,
                                    Py_ssize_t F, Py_ssize_t K, const Py_ssize_t* koff,
                                    const int* kdi, const int* kdj, int sh, int sw, int pt,
                                    int pl, int max_di, int max_dj)
    void fc_conv_relu_pool2_dw_f32(const float* img, Py_ssize_t H, Py_ssize_t W, Py_ssize_t C,
                                   const float* dp, const signed char* win, float* dw,
                                   float* db, Py_ssize_t r0, Py_ssize_t r1, Py_ssize_t PWo,
                                   Py_ssize_t F, Py_ssize_t K, const Py_ssize_t* koff,
                                   const int* kdi, const int* kdj, int sh, int sw, int pt,
                                   int pl, int max_di, int max_dj)


def have_avx2():
    """True when this CPU runs the AVX2/FMA direct kernels."""
    return bool(fc_have_avx2())


def have_avx512():
    """True when this CPU (and its OS) runs the AVX-512 copies of the wide blocks."""
    return bool(fc_have_avx512())


def set_wide_avx512(bint on):
    """Run the middle layers' wide blocks on AVX-512 (``on`` and the CPU has it) or
    on AVX2; returns whether AVX-512 is now in use. Both give the same bits. Not
    thread-safe: call it only while no kernel runs (the tests use it to compare)."""
    return bool(fc_set_wide_avx512(on))


# On by default where the CPU has AVX-512; FASTCONV_AVX512=0 keeps the AVX2 blocks (a
# CPU whose clock drops under 512-bit work may run them faster; the bits are the same).
set_wide_avx512(_os.environ.get("FASTCONV_AVX512", "1") != "0")


def simd():
    """What the direct kernels run on here: 'AVX-512 + AVX2/FMA' (the middle layers'
    wide blocks on AVX-512, the rest on AVX2), 'AVX2/FMA', or 'none' (the im2col +
    BLAS path everywhere)."""
    if not fc_have_avx2():
        return "none"
    return "AVX-512 + AVX2/FMA" if fc_wide_avx512 else "AVX2/FMA"


# Reductions K at least this long take the direct forward kernel's wide blocks.
WIDE_MIN_K = FC_WIDE_MIN_K


cdef int _check_lanes(Py_ssize_t F, Py_ssize_t lanes) except -1:
    """The direct kernels read and write whole vectors of filters: refuse any other F
    (the Python wrapper never passes one; this guards direct callers)."""
    if F % lanes:
        raise ValueError(f"the direct kernels need a number of filters that is a "
                         f"multiple of {lanes} for this dtype. Received: {F}")
    return 0


def conv2d_forward_direct(const floating[:, :, :, ::1] x,     # IN  (N, H, W, C)
                          const floating[:, :, :, ::1] w,     # IN  (KH, KW, C, F)
                          const floating[::1] bias,           # IN  (F,) or None
                          floating[:, :, :, ::1] out,         # OUT (N, OH, OW, F)
                          const Py_ssize_t[::1] koff,         # IN  (K,) tap offsets
                          const int[::1] kdi,                 # IN  (K,) tap row shifts
                          const int[::1] kdj,                 # IN  (K,) tap column shifts
                          int sh, int sw, int pt, int pl, int max_di, int max_dj,
                          bint relu, int n_threads, bint skip=False):
    """Direct convolution, a few output rows per task (no workspace): one row for a
    short reduction, four for a long one (the wide kernel reuses its weight blocks
    across them). With ``skip``, a long reduction's taps in the padding are skipped
    rather than multiplied by zero: the caller passes it only for finite weights."""
    cdef Py_ssize_t N = x.shape[0], H = x.shape[1], W = x.shape[2], C = x.shape[3]
    cdef Py_ssize_t OH = out.shape[1], OW = out.shape[2], F = out.shape[3]
    cdef Py_ssize_t K = koff.shape[0]
    # (rows per task change which task computes a row, never a row's sums: the bits
    # do not depend on it, so it may follow the thread count)
    cdef Py_ssize_t rows = 4 if K >= FC_WIDE_MIN_K else 1
    if rows > 1 and N * ((OH + 3) // 4) < 4 * n_threads:
        rows = 1  # a small batch: enough tasks for every thread
    cdef Py_ssize_t groups = (OH + rows - 1) // rows
    cdef Py_ssize_t task, n, oh0, oh1
    cdef const floating* bptr = NULL
    _check_lanes(F, 8 if floating is float else 4)
    if bias is not None:
        bptr = &bias[0]
    for task in prange(N * groups, nogil=True, schedule="static", num_threads=n_threads):
        n = task // groups
        oh0 = (task - n * groups) * rows
        oh1 = min(OH, oh0 + rows)
        if floating is float:
            fc_conv_fwd_rows_f32(&x[n, 0, 0, 0], H, W, C, &w[0, 0, 0, 0], bptr,
                                 &out[n, 0, 0, 0], oh0, oh1, OW, F, K, &koff[0], &kdi[0],
                                 &kdj[0], sh, sw, pt, pl, max_di, max_dj, relu, skip)
        else:
            fc_conv_fwd_rows_f64(&x[n, 0, 0, 0], H, W, C, &w[0, 0, 0, 0], bptr,
                                 &out[n, 0, 0, 0], oh0, oh1, OW, F, K, &koff[0], &kdi[0],
                                 &kdj[0], sh, sw, pt, pl, max_di, max_dj, relu, skip)


cdef int _check_planar_scratch(Py_ssize_t W, Py_ssize_t C, Py_ssize_t OW, Py_ssize_t F,
                               int KH, int KW, int dh, int dw, int pl, Py_ssize_t rows,
                               float[:, ::1] tbuf, float[:, ::1] rowbuf, Py_ssize_t Wp,
                               Py_ssize_t L, Py_ssize_t Wb, int n_threads) except -1:
    """The planar dx kernel reads and writes its scratch where these widths say
    (fc_conv_dx_planar_f32): refuse any that would take it outside (the Python wrapper
    never passes one; this guards direct callers)."""
    cdef Py_ssize_t bw = fc_dx_planar_width(C)
    if (bw == 0 or dh < 1 or dw < 1 or pl < 0 or n_threads < 1 or rows < 1
            or Wb < W or Wb % bw != 0 or L < dw * (KW - 1) - pl or L < 0
            or Wp < L + Wb + pl or Wp < L + OW
            or tbuf is None or rowbuf is None
            or tbuf.shape[0] < n_threads or rowbuf.shape[0] < n_threads
            or tbuf.shape[1] < (rows + dh * (KH - 1)) * F * Wp or rowbuf.shape[1] < C * Wb):
        raise ValueError("the planar dx kernel needs 2-4 channels and scratch of the "
                         "widths its comment gives (see _planar_scratch); received "
                         f"C={C}, Wp={Wp}, L={L}, Wb={Wb}, rows={rows}")
    return 0


def conv2d_weight_grad_direct(const floating[:, :, :, ::1] x,     # IN  (N, H, W, C)
                              const floating[:, :, :, ::1] dout,  # IN  (N, OH, OW, F)
                              floating[:, :, ::1] dw_part,        # OUT (G, K, F)
                              floating[:, ::1] db_part,           # OUT (G, F) or None
                              const Py_ssize_t[::1] koff,         # IN  (K,) tap offsets
                              const int[::1] kdi,                 # IN  (K,) tap row shifts
                              const int[::1] kdj,                 # IN  (K,) tap column shifts
                              int sh, int sw, int pt, int pl, int max_di, int max_dj,
                              int n_threads, bint accumulate=False,
                              const floating[:, :, :, ::1] w=None,  # IN  (KH, KW, C, F)
                              floating[:, :, :, ::1] dx=None,       # OUT (N, H, W, C)
                              int dh=1, int dw=1,
                              float[:, ::1] tbuf=None, float[:, ::1] rowbuf=None,
                              Py_ssize_t Wp=0, Py_ssize_t L=0, Py_ssize_t Wb=0):
    """Per-group partial weight/bias gradients; groups are fixed runs of output rows.
    With ``accumulate`` they are added to dw_part and db_part instead of replacing
    them (a batch taken in chunks). With ``w`` and ``dx`` (stride 1, dilation dh, dw),
    also conv2d_input_grad_direct's dx in the same pass over dout: the group holding an
    image's last output row computes that image's dx right after its dw rows, while
    its dout is in cache; every dx row comes from the same kernel call as there, so
    the bits are those of the two passes. With ``tbuf`` and ``rowbuf`` too (float32,
    2-4 channels; ``w`` then holds the filters as (KH, KW, F, C)), dx comes from
    conv2d_input_grad_planar's kernel instead, a whole image per call, its scratch
    sized as there for blocks of H rows, one row of each per thread."""
    cdef Py_ssize_t N = x.shape[0], H = x.shape[1], W = x.shape[2], C = x.shape[3]
    cdef Py_ssize_t OH = dout.shape[1], OW = dout.shape[2], F = dout.shape[3]
    cdef Py_ssize_t G = dw_part.shape[0], K = dw_part.shape[1]
    cdef Py_ssize_t total = N * OH
    cdef Py_ssize_t g, start, stop, n, r0, r1, i
    cdef bint has_db = db_part is not None
    cdef floating* dbg
    cdef floating* dxp = NULL
    cdef const floating* wp = NULL
    cdef int KH = 0, KW = 0
    cdef bint planar = tbuf is not None
    cdef Py_ssize_t tid
    _check_lanes(F, 8 if floating is float else 4)
    if dout.shape[0] != N or n_threads < 1:
        raise ValueError(f"conv2d_weight_grad_direct: dout must hold x's {N} images and "
                         f"n_threads be >= 1. Received {dout.shape[0]} and {n_threads}")
    if dx is not None:
        if (w is None or sh != 1 or sw != 1 or dx.shape[0] != N or dx.shape[1] != H
                or dx.shape[2] != W or dx.shape[3] != C
                or (w.shape[2], w.shape[3]) != ((F, C) if planar else (C, F))):
            raise ValueError("conv2d_weight_grad_direct: dx needs stride 1, the filters "
                             "and x's shape")
        if planar and floating is float:
            _check_planar_scratch(W, C, OW, F, w.shape[0], w.shape[1], dh, dw, pl, H,
                                  tbuf, rowbuf, Wp, L, Wb, n_threads)
        elif planar:
            raise ValueError("conv2d_weight_grad_direct: the planar dx is float32 only")
        dxp, wp, KH, KW = &dx[0, 0, 0, 0], &w[0, 0, 0, 0], w.shape[0], w.shape[1]
    for g in prange(G, nogil=True, schedule="dynamic", num_threads=n_threads):
        if not accumulate:  # (a group may have no rows: zeroed all the same)
            memset(&dw_part[g, 0, 0], 0, K * F * sizeof(floating))
            if has_db:
                memset(&db_part[g, 0], 0, F * sizeof(floating))
        start = g * total // G
        stop = (g + 1) * total // G
        while start < stop:
            n = start // OH
            r0 = start - n * OH
            r1 = min(OH, r0 + stop - start)
            if floating is float:
                fc_conv_dw_rows_f32(&x[n, 0, 0, 0], H, W, C, &dout[n, r0, 0, 0],
                                    &dw_part[g, 0, 0], r0, r1, OW, F, K, &koff[0], &kdi[0],
                                    &kdj[0], sh, sw, pt, pl, max_di, max_dj)
            else:
                fc_conv_dw_rows_f64(&x[n, 0, 0, 0], H, W, C, &dout[n, r0, 0, 0],
                                    &dw_part[g, 0, 0], r0, r1, OW, F, K, &koff[0], &kdi[0],
                                    &kdj[0], sh, sw, pt, pl, max_di, max_dj)
            if has_db:
                dbg = &db_part[g, 0]
                if floating is float:
                    fc_rows_sum_f32(&dout[n, r0, 0, 0], (r1 - r0) * OW, F, dbg)
                else:
                    fc_rows_sum_f64(&dout[n, r0, 0, 0], (r1 - r0) * OW, F, dbg)
            if dxp != NULL and r1 == OH and planar:  # the image's last row: its dx
                if floating is float:
                    tid = threadid()
                    fc_conv_dx_planar_f32(&dout[n, 0, 0, 0], OH, OW, F, wp,
                                          dxp + n * H * W * C, W, C, 0, H, KH, KW, dh, dw,
                                          pt, pl, &tbuf[tid, 0], Wp, L, &rowbuf[tid, 0], Wb)
            elif dxp != NULL and r1 == OH:
                for i in range(H):
                    if floating is float:
                        fc_conv_dx_row_f32(&dout[n, 0, 0, 0], OH, OW, F, wp,
                                           dxp + (n * H + i) * W * C, i, W, C, KH, KW,
                                           dh, dw, pt, pl)
                    else:
                        fc_conv_dx_row_f64(&dout[n, 0, 0, 0], OH, OW, F, wp,
                                           dxp + (n * H + i) * W * C, i, W, C, KH, KW,
                                           dh, dw, pt, pl)
            start = start + (r1 - r0)


def conv2d_input_grad_direct(const floating[:, :, :, ::1] dout,  # IN  (N, OH, OW, F)
                             const floating[:, :, :, ::1] w,     # IN  (KH, KW, C, F)
                             floating[:, :, :, ::1] dx,          # OUT (N, H, W, C)
                             int dh, int dw, int pt, int pl, int n_threads):
    """Input gradient of a stride-1 convolution, one input row per task."""
    cdef Py_ssize_t N = dx.shape[0], H = dx.shape[1], W = dx.shape[2], C = dx.shape[3]
    cdef Py_ssize_t OH = dout.shape[1], OW = dout.shape[2], F = dout.shape[3]
    cdef int KH = w.shape[0], KW = w.shape[1]
    cdef Py_ssize_t row, n
    _check_lanes(F, 8 if floating is float else 4)
    for row in prange(N * H, nogil=True, schedule="static", num_threads=n_threads):
        n = row // H
        if floating is float:
            fc_conv_dx_row_f32(&dout[n, 0, 0, 0], OH, OW, F, &w[0, 0, 0, 0],
                               &dx[n, row - n * H, 0, 0], row - n * H, W, C,
                               KH, KW, dh, dw, pt, pl)
        else:
            fc_conv_dx_row_f64(&dout[n, 0, 0, 0], OH, OW, F, &w[0, 0, 0, 0],
                               &dx[n, row - n * H, 0, 0], row - n * H, W, C,
                               KH, KW, dh, dw, pt, pl)


def dx_planar_width(Py_ssize_t C):
    """Pixels per block of conv2d_input_grad_planar for C input channels (0: C not
    handled there)."""
    return fc_dx_planar_width(C)


def conv2d_input_grad_planar(const float[:, :, :, ::1] dout,  # IN  (N, OH, OW, F)
                             const float[:, :, :, ::1] wt,    # IN  (KH, KW, F, C)
                             float[:, :, :, ::1] dx,          # OUT (N, H, W, C)
                             float[:, ::1] tbuf,              # scratch (n_threads, rows*F*Wp), zeroed
                             float[:, ::1] rowbuf,            # scratch (n_threads, C*Wb)
                             int dh, int dw, int pt, int pl,
                             Py_ssize_t Wp, Py_ssize_t L, Py_ssize_t Wb,
                             Py_ssize_t rows, int n_threads):
    """Input gradient of a stride-1 convolution with 2-4 input channels, vectorised
    over pixels (see fc_conv_dx_planar_f32): one task per block of ``rows`` input rows
    of one image. The caller sizes the scratch: tbuf rows * F * Wp with
    rows = block + (KH - 1) * dh, and Wp, L, Wb as the kernel's comment says."""
    cdef Py_ssize_t N = dx.shape[0], H = dx.shape[1], W = dx.shape[2], C = dx.shape[3]
    cdef Py_ssize_t OH = dout.shape[1], OW = dout.shape[2], F = dout.shape[3]
    cdef int KH = wt.shape[0], KW = wt.shape[1]
    cdef Py_ssize_t blocks, t, n, i0, tid
    if (dout.shape[0] != N or wt.shape[2] != F or wt.shape[3] != C):
        raise ValueError("conv2d_input_grad_planar: dout, the filters (KH, KW, F, C) and "
                         "dx disagree")
    _check_planar_scratch(W, C, OW, F, KH, KW, dh, dw, pl, rows, tbuf, rowbuf, Wp, L, Wb,
                          n_threads)
    blocks = (H + rows - 1) // rows
    for t in prange(N * blocks, nogil=True, schedule="static", num_threads=n_threads):
        tid = threadid()
        n = t // blocks
        i0 = (t - n * blocks) * rows
        fc_conv_dx_planar_f32(&dout[n, 0, 0, 0], OH, OW, F, &wt[0, 0, 0, 0], &dx[n, 0, 0, 0],
                              W, C, i0, min(H, i0 + rows), KH, KW, dh, dw, pt, pl,
                              &tbuf[tid, 0], Wp, L, &rowbuf[tid, 0], Wb)


cdef void _col2im_add(const floating* dcol,   # IN  (p1 - p0, KH*KW*C)
                      floating* img,          # IN/OUT (H, W, C) one image
                      Py_ssize_t H, Py_ssize_t W, Py_ssize_t C,
                      Py_ssize_t p0, Py_ssize_t p1, Py_ssize_t OW,
                      int KH, int KW, int sh, int sw, int dh, int dw,
                      int pt, int pl) noexcept nogil:
    """Add the receptive-field gradients of positions p0..p1-1 back into the image:
    the transpose of _im2col_rows for one image (padding taps are dropped)."""
    cdef Py_ssize_t p, oh, ow, ih, iw, c
    cdef int ki, kj
    cdef const floating* src = dcol
    cdef floating* dst
    for p in range(p0, p1):
        oh = p // OW
        ow = p - oh * OW
        for ki in range(KH):
            ih = oh * sh + ki * dh - pt
            if ih < 0 or ih >= H:
                src += KW * C
                continue
            for kj in range(KW):
                iw = ow * sw + kj * dw - pl
                if iw >= 0 and iw < W:
                    dst = img + (ih * W + iw) * C
                    for c in range(C):
                        dst[c] += src[c]
                src += C


def conv2d_input_grad_col2im(const floating[:, :, :, ::1] dout,  # IN  (N, OH, OW, F)
                             const floating[:, ::1] wmat,        # IN  (KH*KW*C, F)
                             floating[:, :, :, ::1] dx,          # OUT (N, H, W, C), zeroed
                             floating[:, ::1] work,              # scratch (n_threads, rows*K)
                             int KH, int KW, int sh, int sw, int dh, int dw,
                             int pt, int pl, Py_ssize_t tile, Py_ssize_t imgs,
                             int n_threads):
    """dx = col2im(dout @ W^T), one run of whole images per task so that scatters
    never race.

    With ``imgs`` > 1 (small images) a task takes ``imgs`` consecutive images and
    multiplies all their positions at once (``imgs * OH * OW`` rows, at most the
    workspace), so that the GEMM is not starved by images of a few positions; with
    ``imgs`` == 1 it takes one image in chunks of ``tile`` positions. Only real
    (non-padding) products are computed, whatever the stride, and the order of
    additions into each image is fixed: same bits for any thread count.
    """
    cdef Py_ssize_t N = dx.shape[0], H = dx.shape[1], W = dx.shape[2], C = dx.shape[3]
    cdef Py_ssize_t OH = dout.shape[1], OW = dout.shape[2], F = dout.shape[3]
    cdef Py_ssize_t K = wmat.shape[0], P = OH * OW
    cdef Py_ssize_t t, n, n0, n1, p0, p1
    cdef Py_ssize_t tasks = (N + imgs - 1) // imgs
    cdef const floating* dptr = &dout[0, 0, 0, 0]
    cdef const floating* wptr = &wmat[0, 0]
    cdef floating* xptr = &dx[0, 0, 0, 0]
    cdef floating* wkptr = &work[0, 0]
    cdef Py_ssize_t wstride = work.shape[1]
    cdef floating* col = NULL  # set per thread inside the parallel block
    with nogil, parallel(num_threads=n_threads):
        col = wkptr + threadid() * wstride
        for t in prange(tasks, schedule="dynamic"):
            n0 = t * imgs
            n1 = min(N, n0 + imgs)
            if imgs > 1:
                # dcol (rows, K) = dout of images n0..n1-1 (rows, F) @ wmat^T (F, K)
                gemm_rm(False, True, <int> ((n1 - n0) * P), <int> K, <int> F, 1.0,
                        dptr + n0 * P * F, <int> F, wptr, <int> F, 0.0, col, <int> K)
                for n in range(n0, n1):
                    _col2im_add(col + (n - n0) * P * K, xptr + n * H * W * C, H, W, C,
                                0, P, OW, KH, KW, sh, sw, dh, dw, pt, pl)
                continue
            p0 = 0
            while p0 < P:
                p1 = min(p0 + tile, P)
                # dcol (m, K) = dout_tile (m, F) @ wmat^T (F, K)
                gemm_rm(False, True, <int> (p1 - p0), <int> K, <int> F, 1.0,
                        dptr + (n0 * P + p0) * F, <int> F, wptr, <int> F, 0.0, col, <int> K)
                _col2im_add(col, xptr + n0 * H * W * C, H, W, C, p0, p1, OW,
                            KH, KW, sh, sw, dh, dw, pt, pl)
                p0 = p1


# --------------------------------------------------------------------------
# Convolution + ReLU + max pooling (PH x PW windows, stride PH x PW, 'valid'),
# fused: the convolution's output never leaves a per-thread buffer of PH rows.

def conv2d_relu_maxpool_forward_direct(
        const float[:, :, :, ::1] x,     # IN  (N, H, W, C)
        const float[:, :, :, ::1] w,     # IN  (KH, KW, C, F)
        const float[::1] bias,           # IN  (F,) or None
        float[:, :, :, ::1] out,         # OUT (N, PHo, PWo, F) pooled
        signed char[:, :, :, ::1] win,   # OUT (N, PHo, PWo, F) winner index or -1; or None
        float[:, ::1] work,              # scratch (n_threads, PH * PWo*PW * F)
        const Py_ssize_t[::1] koff, const int[::1] kdi, const int[::1] kdj,
        int sh, int sw, int pt, int pl, int max_di, int max_dj,
        int PH, int PW, int n_threads):
    """One pooled row per task. 2x2 windows: each window's four outputs are computed
    and pooled in registers. Other windows: PH convolution rows (bias, ReLU) into the
    thread's buffer with the direct kernel, then pooled from there. Columns and rows
    that no pooling window covers are never computed."""
    cdef Py_ssize_t N = x.shape[0], H = x.shape[1], W = x.shape[2], C = x.shape[3]
    cdef Py_ssize_t PHo = out.shape[1], PWo = out.shape[2], F = out.shape[3]
    cdef Py_ssize_t K = koff.shape[0], OWs = PWo * PW
    cdef Py_ssize_t row, n, ph
    cdef int a
    cdef const float* bptr = NULL
    cdef signed char* wbase = NULL
    cdef float* wk = &work[0, 0]
    cdef Py_ssize_t wstride = work.shape[1]
    cdef float* s = NULL  # set per thread inside the parallel block
    if bias is not None:
        bptr = &bias[0]
    if win is not None:
        wbase = &win[0, 0, 0, 0]
    cdef bint pool2 = PH == 2 and PW == 2 and K <= FC_POOL2_MAX_K
    with nogil, parallel(num_threads=n_threads):
        s = wk + threadid() * wstride
        for row in prange(N * PHo, schedule="static"):
            n = row // PHo
            ph = row - n * PHo
            if pool2:
                fc_conv_relu_pool2_row_f32(&x[n, 0, 0, 0], H, W, C, &w[0, 0, 0, 0], bptr,
                                           &out[n, ph, 0, 0],
                                           wbase + row * PWo * F if wbase != NULL else NULL,
                                           ph, PWo, F, K, &koff[0], &kdi[0], &kdj[0],
                                           sh, sw, pt, pl, max_di, max_dj)
                continue
            for a in range(PH):
                fc_conv_fwd_row_f32(&x[n, 0, 0, 0], H, W, C, &w[0, 0, 0, 0], bptr,
                                    s + a * OWs * F, ph * PH + a, OWs, F, K, &koff[0],
                                    &kdi[0], &kdj[0], sh, sw, pt, pl, max_di, max_dj, 1)
            fc_relu_maxpool_row_f32(s, PWo, F, PH, PW, &out[n, ph, 0, 0],
                                    wbase + row * PWo * F if wbase != NULL else NULL)


def conv2d_relu_maxpool_weight_grad_direct(
        const float[:, :, :, ::1] x,           # IN  (N, H, W, C)
        const float[:, :, :, ::1] dpool,       # IN  (N, PHo, PWo, F)
        const signed char[:, :, :, ::1] win,   # IN  (N, PHo, PWo, F) from the forward pass
        float[:, :, ::1] dw_part,              # OUT (G, K, F)
        float[:, ::1] db_part,                 # OUT (G, F) or None
        float[:, ::1] work,                    # scratch (n_threads, PH * PWo*PW * F)
        const Py_ssize_t[::1] koff, const int[::1] kdi, const int[::1] kdj,
        int sh, int sw, int pt, int pl, int max_di, int max_dj,
        int PH, int PW, int n_threads):
    """Per-group partial weight/bias gradients; groups are fixed runs of pooled rows.

    2x2 windows: the gradient at each window's four positions (the pooled gradient
    where that position won, ReLU mask included) is formed in registers and consumed
    there. Other windows: each pooled row's gradient is spread back over its PH
    convolution rows in the thread's buffer and fed from there to the direct
    weight-gradient kernel. Either way the full-size gradient is never stored.
    """
    cdef Py_ssize_t N = x.shape[0], H = x.shape[1], W = x.shape[2], C = x.shape[3]
    cdef Py_ssize_t PHo = dpool.shape[1], PWo = dpool.shape[2], F = dpool.shape[3]
    cdef Py_ssize_t G = dw_part.shape[0], K = dw_part.shape[1], OWs = PWo * PW
    cdef Py_ssize_t total = N * PHo
    cdef Py_ssize_t g, r, n, ph
    cdef float* dbbase = NULL
    cdef float* dbg = NULL
    cdef float* wk = &work[0, 0]
    cdef Py_ssize_t wstride = work.shape[1]
    cdef float* s = NULL  # set per thread inside the parallel block
    cdef Py_ssize_t start, stop, r1
    cdef bint pool2 = PH == 2 and PW == 2 and K <= FC_POOL2_MAX_K
    if db_part is not None:
        dbbase = &db_part[0, 0]
    with nogil, parallel(num_threads=n_threads):
        s = wk + threadid() * wstride
        for g in prange(G, schedule="dynamic"):
            memset(&dw_part[g, 0, 0], 0, K * F * sizeof(float))
            dbg = NULL
            if dbbase != NULL:
                dbg = dbbase + g * F
                memset(dbg, 0, F * sizeof(float))
            start = g * total // G
            stop = (g + 1) * total // G
            if pool2:
                while start < stop:  # runs of pooled rows within one image
                    n = start // PHo
                    ph = start - n * PHo
                    r1 = min(PHo, ph + stop - start)
                    fc_conv_relu_pool2_dw_f32(&x[n, 0, 0, 0], H, W, C, &dpool[n, 0, 0, 0],
                                              &win[n, 0, 0, 0], &dw_part[g, 0, 0], dbg,
                                              ph, r1, PWo, F, K, &koff[0], &kdi[0],
                                              &kdj[0], sh, sw, pt, pl, max_di, max_dj)
                    start = start + (r1 - ph)
                continue
            for r in range(start, stop):
                n = r // PHo
                ph = r - n * PHo
                fc_relu_maxpool_grad_row_f32(&dpool[n, ph, 0, 0], &win[n, ph, 0, 0], PWo, F,
                                             PH, PW, s, OWs, dbg)
                fc_conv_dw_rows_f32(&x[n, 0, 0, 0], H, W, C, s, &dw_part[g, 0, 0],
                                    ph * PH, ph * PH + PH, OWs, F, K, &koff[0], &kdi[0],
                                    &kdj[0], sh, sw, pt, pl, max_di, max_dj)


def relu_maxpool_grad(const float[:, :, :, ::1] dpool,       # IN  (N, PHo, PWo, F)
                      const signed char[:, :, :, ::1] win,   # IN  (N, PHo, PWo, F)
                      float[:, :, :, ::1] dz,                # OUT (N, OH, OW, F)
                      int PH, int PW, int n_threads):
    """The convolution-output gradient of the fused op (for its input gradient).

    Writes rows below PHo*PH of dz; the caller zeroes the rest.
    """
    cdef Py_ssize_t N = dpool.shape[0], PHo = dpool.shape[1], PWo = dpool.shape[2]
    cdef Py_ssize_t F = dpool.shape[3], OW = dz.shape[2]
    cdef Py_ssize_t row, n, ph
    for row in prange(N * PHo, nogil=True, schedule="static", num_threads=n_threads):
        n = row // PHo
        ph = row - n * PHo
        fc_relu_maxpool_grad_row_f32(&dpool[n, ph, 0, 0], &win[n, ph, 0, 0], PWo, F, PH, PW,
                                     &dz[n, ph * PH, 0, 0], OW, NULL)


def matmul_blocks(const floating[:, ::1] a,    # IN  (m, k), or (k, m) if trans_a
                  const floating[:, ::1] b,    # IN  (k, n), or (n, k) if trans_b
                  floating[:, ::1] out,        # OUT (m, n)
                  int n_threads, int rows=64, int cols=64,
                  bint trans_a=False, bint trans_b=False):
    """out = op(a) @ op(b) (op: transposed if trans_*) as one single-threaded BLAS
    product per block of rows x cols of out, the blocks in parallel: each element is
    computed by the same call, over the whole of k, whatever the number of threads, so
    the bits do not depend on it (the caller fixes the blocks from the shapes alone)."""
    cdef int m = out.shape[0], n = out.shape[1]
    cdef int k = a.shape[0] if trans_a else a.shape[1]
    cdef int rb, cb, t, i0, j0
    if ((a.shape[1] if trans_a else a.shape[0]) != m
            or (b.shape[1] if trans_b else b.shape[0]) != k
            or (b.shape[0] if trans_b else b.shape[1]) != n):
        raise ValueError(f"matmul_blocks: op(a) (m, k) @ op(b) (k, n) must fit out "
                         f"{(m, n)}. Received a {(a.shape[0], a.shape[1])}, b "
                         f"{(b.shape[0], b.shape[1])}, transposed {trans_a}, {trans_b}")
    if rows < 1 or cols < 1 or n_threads < 1:
        raise ValueError(f"matmul_blocks: rows, cols and n_threads must be >= 1. "
                         f"Received {rows}, {cols}, {n_threads}")
    if m == 0 or n == 0:
        return
    if k == 0:
        out[:, :] = 0
        return
    rb = (m + rows - 1) // rows
    cb = (n + cols - 1) // cols
    for t in prange(rb * cb, nogil=True, schedule="dynamic", num_threads=n_threads):
        i0 = (t // cb) * rows
        j0 = (t % cb) * cols
        gemm_rm(trans_a, trans_b, min(rows, m - i0), min(cols, n - j0), k, 1,
                &a[0, i0] if trans_a else &a[i0, 0], m if trans_a else k,
                &b[j0, 0] if trans_b else &b[0, j0], k if trans_b else n,
                0, &out[i0, j0], n)
