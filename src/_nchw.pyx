# cython: boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
#
# Directives: the Python caller (fastconv.backends.cython) validated every shape,
# stride and padding and allocated every array; the checks below (before any
# nogil block) make sure the sizes agree with each other, so no index leaves its
# array (boundscheck, wraparound); divisors are positive sizes (cdivision); every
# memoryview is a NumPy array (initializedcheck).
"""Convolution on the course layouts (N, C, H, W) x (F, C, HH, WW) -> (N, F, OH, OW).

For :mod:`fastconv.compat.cs231n`: the C kernels of ``_nchw.h`` read and write the
course's layouts themselves, so nothing is transposed (see that header for the
algorithm). Layering:

- ``forward``: tasks are (image, tile of output positions), a tile at most ``tile``
  positions; each thread builds the tile's im2col in its own workspace row and
  multiplies it by the filters straight into ``out``.
- ``backward``: the images are cut into ``dw_part.shape[0]`` fixed groups of
  consecutive images; a group zeroes and accumulates its own partial weight and bias
  gradient (F, K + 1) over its images in order, and writes those images' dx. The
  Python caller sums the partials in a fixed order.

Tiles and groups depend only on the shapes, never on the thread count, so results
are bit-identical for any number of threads. They are handed out dynamically, so
that a thread the OS holds back (a busy machine) does not hold up the others.
Workspaces are allocated by the caller, one row per thread.
"""

from cython cimport floating
from cython.parallel cimport prange, threadid
from libc.math cimport sqrt
from libc.string cimport memset

cdef extern from "_nchw.h" nogil:
    int FC_NCHW_PAD
    int fc_nchw_isa()
    void fc_nchw_forward_tile_f32(int isa, const float* x, const float* w,
                                  const float* b, float* out, float* cols, Py_ssize_t C,
                                  Py_ssize_t H, Py_ssize_t W, Py_ssize_t F, int HH, int WW,
                                  int sh, int sw, int pt, int pl, Py_ssize_t OW,
                                  Py_ssize_t P, Py_ssize_t p0, Py_ssize_t p1)
    void fc_nchw_forward_tile_f64(int isa, const double* x, const double* w,
                                  const double* b, double* out, double* cols,
                                  Py_ssize_t C, Py_ssize_t H, Py_ssize_t W, Py_ssize_t F,
                                  int HH, int WW, int sh, int sw, int pt, int pl,
                                  Py_ssize_t OW, Py_ssize_t P, Py_ssize_t p0,
                                  Py_ssize_t p1)
    void fc_nchw_backward_tile_f32(int isa, const float* x, const float* w,
                                   const float* dout, float* dx, float* dw_part,
                                   float* colsT, float* dcols, Py_ssize_t C,
                                   Py_ssize_t H, Py_ssize_t W, Py_ssize_t F, int HH,
                                   int WW, int sh, int sw, int pt, int pl, Py_ssize_t OW,
                                   Py_ssize_t P, Py_ssize_t p0, Py_ssize_t p1)
    void fc_nchw_backward_tile_f64(int isa, const double* x, const double* w,
                                   const double* dout, double* dx, double* dw_part,
                                   double* colsT, double* dcols, Py_ssize_t C,
                                   Py_ssize_t H, Py_ssize_t W, Py_ssize_t F, int HH,
                                   int WW, int sh, int sw, int pt, int pl, Py_ssize_t OW,
                                   Py_ssize_t P, Py_ssize_t p0, Py_ssize_t p1)
    void fc_bn_stats_f32(int isa, const float* x, Py_ssize_t N, Py_ssize_t cs,
                         Py_ssize_t S, double* mean, double* var)
    void fc_bn_stats_f64(int isa, const double* x, Py_ssize_t N, Py_ssize_t cs,
                         Py_ssize_t S, double* mean, double* var)
    void fc_bn_apply_f32(int isa, const float* x, float* out, Py_ssize_t N, Py_ssize_t cs,
                         Py_ssize_t S, double mu, double a, double shift)
    void fc_bn_apply_f64(int isa, const double* x, double* out, Py_ssize_t N,
                         Py_ssize_t cs, Py_ssize_t S, double mu, double a, double shift)
    void fc_bn_grad_sums_f32(int isa, const float* dout, const float* x, Py_ssize_t N,
                             Py_ssize_t cs, Py_ssize_t S, double mu, double* sd,
                             double* sdx)
    void fc_bn_grad_sums_f64(int isa, const double* dout, const double* x, Py_ssize_t N,
                             Py_ssize_t cs, Py_ssize_t S, double mu, double* sd,
                             double* sdx)
    void fc_bn_dx_f32(int isa, const float* dout, const float* x, float* dx, Py_ssize_t N,
                      Py_ssize_t cs, Py_ssize_t S, double mu, double k1, double k2,
                      double k3)
    void fc_bn_dx_f64(int isa, const double* dout, const double* x, double* dx,
                      Py_ssize_t N, Py_ssize_t cs, Py_ssize_t S, double mu, double k1,
                      double k2, double k3)

cdef int _cpu_isa = fc_nchw_isa()
# The backward's workspace per thread: (2K + PAD) * tile elements.
PAD = FC_NCHW_PAD
cdef int _isa = _cpu_isa


def isa():
    """The instruction set the kernels run on: 2 AVX-512F, 1 AVX2 + FMA, 0 none (the
    kernels are then unavailable)."""
    return _isa


def set_isa(int level):
    """Run the kernels on at most ``level`` (2, 1; the CPU's best when higher); for
    the tests, which compare the copies. Returns the level now in use."""
    global _isa
    _isa = min(max(level, 0), _cpu_isa)
    return _isa


cdef int _check(Py_ssize_t N, Py_ssize_t C, Py_ssize_t H, Py_ssize_t W,
                Py_ssize_t F, Py_ssize_t HH, Py_ssize_t WW, Py_ssize_t OH, Py_ssize_t OW,
                int stride, int pad, Py_ssize_t tile, Py_ssize_t rows,
                Py_ssize_t row_len, Py_ssize_t per_thread, int n_threads) except -1:
    """The sizes must agree: the windows inside the padded image, a workspace row per
    thread of ``per_thread`` elements, a kernel to run."""
    if (_isa == 0 or N < 1 or C < 1 or H < 1 or W < 1 or F < 1 or HH < 1 or WW < 1
            or OH < 1 or OW < 1
            or stride < 1 or pad < 0 or n_threads < 1 or tile < 1
            or (OH - 1) * stride + HH > H + 2 * pad or (OW - 1) * stride + WW > W + 2 * pad
            or rows < n_threads or row_len < per_thread):
        raise ValueError(
            "fastconv._nchw: sizes that do not agree (or no AVX2 here): "
            f"x {(N, C, H, W)}, w {(F, C, HH, WW)}, out {(OH, OW)}, stride {stride}, "
            f"pad {pad}, tile {tile}, workspace {(rows, row_len)} for {n_threads} "
            f"threads of {per_thread}, isa {_isa}")
    return 0


def forward(const floating[:, :, :, ::1] x,   # IN  (N, C, H, W)
            const floating[:, :, :, ::1] w,   # IN  (F, C, HH, WW)
            const floating[::1] b,            # IN  (F,) or None
            floating[:, :, :, ::1] out,       # OUT (N, F, OH, OW)
            floating[:, ::1] work,            # scratch (n_threads, K * tile)
            int stride, int pad, Py_ssize_t tile, int n_threads):
    """out = the cross-correlation of x with w (zero padding ``pad``, ``stride``) + b."""
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef Py_ssize_t F = w.shape[0], HH = w.shape[2], WW = w.shape[3]
    cdef Py_ssize_t OH = out.shape[2], OW = out.shape[3], P = OH * OW
    cdef Py_ssize_t K = C * HH * WW
    cdef Py_ssize_t tiles = (P + tile - 1) // tile if tile > 0 else 0
    cdef Py_ssize_t t, n, p0, p1
    cdef const floating* bp = NULL
    _check(N, C, H, W, F, HH, WW, OH, OW, stride, pad, tile, work.shape[0],
           work.shape[1], K * min(tile, P), n_threads)
    if (w.shape[1] != C or out.shape[0] != N or out.shape[1] != F
            or (b is not None and b.shape[0] != F)):
        raise ValueError("fastconv._nchw.forward: w, b and out must fit x's shape")
    if b is not None:
        bp = &b[0]
    for t in prange(N * tiles, nogil=True, schedule="dynamic", num_threads=n_threads):
        n = t // tiles
        p0 = (t - n * tiles) * tile
        p1 = min(P, p0 + tile)
        if floating is float:
            fc_nchw_forward_tile_f32(_isa, &x[n, 0, 0, 0], &w[0, 0, 0, 0], bp,
                                     &out[n, 0, 0, 0], &work[threadid(), 0], C, H, W, F,
                                     HH, WW, stride, stride, pad, pad, OW, P, p0, p1)
        else:
            fc_nchw_forward_tile_f64(_isa, &x[n, 0, 0, 0], &w[0, 0, 0, 0], bp,
                                     &out[n, 0, 0, 0], &work[threadid(), 0], C, H, W, F,
                                     HH, WW, stride, stride, pad, pad, OW, P, p0, p1)


def backward(const floating[:, :, :, ::1] x,      # IN  (N, C, H, W)
             const floating[:, :, :, ::1] w,      # IN  (F, C, HH, WW)
             const floating[:, :, :, ::1] dout,   # IN  (N, F, OH, OW)
             floating[:, :, :, ::1] dx,           # OUT (N, C, H, W)
             floating[:, :, ::1] dw_part,         # OUT (G, F, K + 1): dw, db per group
             floating[:, ::1] work,               # scratch (n_threads, (2K + PAD) * tile)
             int stride, int pad, Py_ssize_t tile, int n_threads):
    """Partial weight and bias gradients per group of images, and dx.

    Group g holds images [g * N // G, (g + 1) * N // G); dw_part[g, :, :K] is its
    weight gradient as (F, K) with K = C * HH * WW in w's order, dw_part[g, :, K] its
    bias gradient.
    """
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef Py_ssize_t F = w.shape[0], HH = w.shape[2], WW = w.shape[3]
    cdef Py_ssize_t OH = dout.shape[2], OW = dout.shape[3], P = OH * OW
    cdef Py_ssize_t K = C * HH * WW, G = dw_part.shape[0]
    cdef Py_ssize_t g, n, p0, p1, tid, tl = min(tile, P)
    _check(N, C, H, W, F, HH, WW, OH, OW, stride, pad, tile, work.shape[0],
           work.shape[1], (2 * K + FC_NCHW_PAD) * tl, n_threads)
    if (w.shape[1] != C or dout.shape[0] != N or dout.shape[1] != F
            or dx.shape[0] != N or dx.shape[1] != C or dx.shape[2] != H or dx.shape[3] != W
            or G < 1 or dw_part.shape[1] != F or dw_part.shape[2] != K + 1):
        raise ValueError("fastconv._nchw.backward: w, dout, dx and dw_part must fit "
                         "x's shape")
    for g in prange(G, nogil=True, schedule="dynamic", num_threads=n_threads):
        tid = threadid()
        memset(&dw_part[g, 0, 0], 0, F * (K + 1) * sizeof(floating))
        for n in range(g * N // G, (g + 1) * N // G):
            memset(&dx[n, 0, 0, 0], 0, C * H * W * sizeof(floating))
            p0 = 0
            while p0 < P:
                p1 = min(P, p0 + tile)
                if floating is float:
                    fc_nchw_backward_tile_f32(_isa, &x[n, 0, 0, 0], &w[0, 0, 0, 0],
                                              &dout[n, 0, 0, 0], &dx[n, 0, 0, 0],
                                              &dw_part[g, 0, 0], &work[tid, 0],
                                              &work[tid, (K + FC_NCHW_PAD) * tl], C, H, W,
                                              F, HH, WW,
                                              stride, stride, pad, pad, OW, P, p0, p1)
                else:
                    fc_nchw_backward_tile_f64(_isa, &x[n, 0, 0, 0], &w[0, 0, 0, 0],
                                              &dout[n, 0, 0, 0], &dx[n, 0, 0, 0],
                                              &dw_part[g, 0, 0], &work[tid, 0],
                                              &work[tid, (K + FC_NCHW_PAD) * tl], C, H, W,
                                              F, HH, WW,
                                              stride, stride, pad, pad, OW, P, p0, p1)
                p0 = p1


# ------------------------------------------------------- spatial batch normalisation
#
# Per channel c of x (N, C, S), S = H * W, over its M = N * S values: each channel is
# one task, its sums taken by one thread in a fixed order, in double (the C functions
# fc_bn_* of _nchw.h), so the bits do not depend on the thread count.

def spatial_bn_forward(const floating[:, :, ::1] x,   # IN  (N, C, S)
                       const floating[::1] gamma,     # IN  (C,)
                       const floating[::1] beta,      # IN  (C,)
                       floating[:, :, ::1] out,       # OUT (N, C, S)
                       double[::1] mean,              # IN/OUT (C,)
                       double[::1] var,               # IN/OUT (C,)
                       double eps, bint train, int n_threads):
    """out = gamma * (x - mean) / sqrt(var + eps) + beta per channel. With ``train``
    mean and var (the mean squared deviation) are first computed from x, in one pass
    of shifted sums, and written out; else they are the given statistics."""
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], S = x.shape[2]
    cdef Py_ssize_t c
    cdef double a
    if (_isa == 0 or N < 1 or S < 1 or gamma.shape[0] != C or beta.shape[0] != C
            or mean.shape[0] != C or var.shape[0] != C or out.shape[0] != N
            or out.shape[1] != C or out.shape[2] != S or n_threads < 1):
        raise ValueError("fastconv._nchw.spatial_bn_forward: sizes that do not agree "
                         "(or no AVX2 here)")
    for c in prange(C, nogil=True, schedule="dynamic", num_threads=n_threads):
        if floating is float:
            if train:
                fc_bn_stats_f32(_isa, &x[0, c, 0], N, C * S, S, &mean[c], &var[c])
            a = gamma[c] / sqrt(var[c] + eps)
            fc_bn_apply_f32(_isa, &x[0, c, 0], &out[0, c, 0], N, C * S, S, mean[c], a,
                            beta[c])
        else:
            if train:
                fc_bn_stats_f64(_isa, &x[0, c, 0], N, C * S, S, &mean[c], &var[c])
            a = gamma[c] / sqrt(var[c] + eps)
            fc_bn_apply_f64(_isa, &x[0, c, 0], &out[0, c, 0], N, C * S, S, mean[c], a,
                            beta[c])


def spatial_bn_backward(const floating[:, :, ::1] x,      # IN  (N, C, S)
                        const floating[:, :, ::1] dout,   # IN  (N, C, S)
                        const floating[::1] gamma,        # IN  (C,)
                        const double[::1] mean,           # IN  (C,) the batch's
                        const double[::1] var,            # IN  (C,) the batch's
                        floating[:, :, ::1] dx,           # OUT (N, C, S)
                        double[::1] dgamma,               # OUT (C,)
                        double[::1] dbeta,                # OUT (C,)
                        double eps, int n_threads):
    """Gradients of the train-mode forward, xhat = (x - mean) * r, r = 1 / sqrt(var +
    eps): dbeta = sum(dout), dgamma = sum(dout * xhat), and
    dx = gamma * r * (dout - dbeta / M - xhat * dgamma / M), M = N * S."""
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], S = x.shape[2]
    cdef Py_ssize_t c
    cdef double sd = 0, sdx = 0, r, k1, M = N * S
    if (_isa == 0 or N < 1 or S < 1 or dout.shape[0] != N or dout.shape[1] != C
            or dout.shape[2] != S or dx.shape[0] != N or dx.shape[1] != C
            or dx.shape[2] != S or gamma.shape[0] != C or mean.shape[0] != C
            or var.shape[0] != C or dgamma.shape[0] != C or dbeta.shape[0] != C
            or n_threads < 1):
        raise ValueError("fastconv._nchw.spatial_bn_backward: sizes that do not agree "
                         "(or no AVX2 here)")
    for c in prange(C, nogil=True, schedule="dynamic", num_threads=n_threads):
        if floating is float:
            fc_bn_grad_sums_f32(_isa, &dout[0, c, 0], &x[0, c, 0], N, C * S, S, mean[c],
                                &dbeta[c], &dgamma[c])
        else:
            fc_bn_grad_sums_f64(_isa, &dout[0, c, 0], &x[0, c, 0], N, C * S, S, mean[c],
                                &dbeta[c], &dgamma[c])
        r = 1.0 / sqrt(var[c] + eps)
        sd = dbeta[c]
        sdx = dgamma[c]
        dgamma[c] = sdx * r
        # dx = k1 * dout + k2 * (x - mean) + k3
        k1 = gamma[c] * r
        if floating is float:
            fc_bn_dx_f32(_isa, &dout[0, c, 0], &x[0, c, 0], &dx[0, c, 0], N, C * S, S,
                         mean[c], k1, -k1 * r * r * sdx / M, -k1 * sd / M)
        else:
            fc_bn_dx_f64(_isa, &dout[0, c, 0], &x[0, c, 0], &dx[0, c, 0], N, C * S, S,
                         mean[c], k1, -k1 * r * r * sdx / M, -k1 * sd / M)
