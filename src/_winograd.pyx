# cython: boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
#
# Directives: every shape and padding reaching these kernels was validated by
# fastconv.backends._args and the caller (3x3 filters, stride 1, dilation 1), the tile
# and chunk counts are computed here from those shapes, divisors are positive sizes
# (cdivision), no negative index is used (wraparound), and every memoryview is a
# NumPy array allocated by the Python caller (initializedcheck).
"""Winograd F(2x2, 3x3) convolution kernels, NHWC, float32/float64 (fused type).

Layering (Python validates and allocates, Cython computes):

- ``_winograd.h``: the transforms, plain C vectorised over channels, one copy per ISA
  (baseline, AVX2, AVX-512F) chosen at run time, all with the same bits.
- ``filter_transform``: U (16, C, F) = G g G^T of every (input, output) channel pair.
- ``forward``: the (N, ceil(OH/2), ceil(OW/2)) 2x2 output tiles, in image-major order,
  are cut into chunks of ``chunk`` tiles (a chunk may span images). A thread takes a
  whole chunk: it transforms the chunk's 4x4 input tiles into V (16, m, C) in its own
  workspace, runs the 16 products M[k] (m, F) = V[k] (m, C) @ U[k] (C, F) on
  single-threaded BLAS, and transforms M back into the output tiles (bias, ReLU). The
  chunk size depends on the shapes only, so the bits do not depend on the threads.
  The input gradient of a stride-1 3x3 layer is this forward on dout with the filters
  flipped and transposed.
- ``weight_grad``: the chunks are split into a fixed number of contiguous groups; a
  group accumulates S_g[k] (C, F) += V[k]^T @ E[k] with E = A dy A^T of the chunk's
  output-gradient tiles (and its bias-gradient partial); the caller sums the groups
  in a fixed order and ``filter_grad`` maps the sum back: dw = G^T S G.

Workspace: ``work`` has one row per thread of 16 * chunk * (C + F) + F elements, so
memory does not grow with the batch.
"""

from cython cimport floating
from cython.parallel cimport parallel, prange, threadid

from _blas cimport gemm_rm


cdef extern from "_winograd.h" nogil:
    int fc_wg_isa
    int fc_wg_set_isa(int level)
    void fc_wg_filter_f32(const float* w, Py_ssize_t C, Py_ssize_t F, float* U)
    void fc_wg_filter_f64(const double* w, Py_ssize_t C, Py_ssize_t F, double* U)
    void fc_wg_input_f32(const float* x, Py_ssize_t H, Py_ssize_t W, Py_ssize_t C,
                         Py_ssize_t pt, Py_ssize_t pl, Py_ssize_t TH, Py_ssize_t TW,
                         Py_ssize_t t0, Py_ssize_t t1, const float* zeros, float* V)
    void fc_wg_input_f64(const double* x, Py_ssize_t H, Py_ssize_t W, Py_ssize_t C,
                         Py_ssize_t pt, Py_ssize_t pl, Py_ssize_t TH, Py_ssize_t TW,
                         Py_ssize_t t0, Py_ssize_t t1, const double* zeros, double* V)
    void fc_wg_output_f32(const float* M, Py_ssize_t m, Py_ssize_t F, const float* bias,
                          int relu, float* out, Py_ssize_t OH, Py_ssize_t OW,
                          Py_ssize_t TH, Py_ssize_t TW, Py_ssize_t t0, float* junk)
    void fc_wg_output_f64(const double* M, Py_ssize_t m, Py_ssize_t F, const double* bias,
                          int relu, double* out, Py_ssize_t OH, Py_ssize_t OW,
                          Py_ssize_t TH, Py_ssize_t TW, Py_ssize_t t0, double* junk)
    void fc_wg_dout_f32(const float* dout, Py_ssize_t OH, Py_ssize_t OW, Py_ssize_t F,
                        Py_ssize_t TH, Py_ssize_t TW, Py_ssize_t t0, Py_ssize_t t1,
                        const float* zeros, float* E, float* db)
    void fc_wg_dout_f64(const double* dout, Py_ssize_t OH, Py_ssize_t OW, Py_ssize_t F,
                        Py_ssize_t TH, Py_ssize_t TW, Py_ssize_t t0, Py_ssize_t t1,
                        const double* zeros, double* E, double* db)
    void fc_wg_filter_grad_f32(const float* S, Py_ssize_t C, Py_ssize_t F, float* dw)
    void fc_wg_filter_grad_f64(const double* S, Py_ssize_t C, Py_ssize_t F, double* dw)


ISA_NAMES = ("baseline", "avx2", "avx512")


def set_isa(int level):
    """Run the transforms' copy for ISA ``level`` (0 baseline, 1 AVX2, 2 AVX-512F), or
    the best this CPU has below it; returns the level chosen. Only between calls."""
    return fc_wg_set_isa(level)


set_isa(2)


def isa():
    """The name of the transforms' copy in use: 'baseline', 'avx2' or 'avx512'."""
    return ISA_NAMES[fc_wg_isa]


def workspace(Py_ssize_t chunk, Py_ssize_t C, Py_ssize_t F):
    """Elements of one thread's workspace row for chunks of ``chunk`` tiles."""
    return 16 * chunk * (C + F) + F


def filter_transform(const floating[:, :, :, ::1] w,   # IN  (3, 3, C, F)
                     floating[:, :, ::1] U):           # OUT (16, C, F)
    """U[k] = (G g G^T)[k] for every filter g = w[:, :, c, f]."""
    cdef Py_ssize_t C = w.shape[2], F = w.shape[3]
    with nogil:
        if floating is float:
            fc_wg_filter_f32(&w[0, 0, 0, 0], C, F, &U[0, 0, 0])
        else:
            fc_wg_filter_f64(&w[0, 0, 0, 0], C, F, &U[0, 0, 0])


def filter_grad(const floating[:, :, ::1] S,   # IN  (16, C, F)
                floating[:, :, :, ::1] dw):    # OUT (3, 3, C, F)
    """dw = G^T S G for every (c, f)."""
    cdef Py_ssize_t C = S.shape[1], F = S.shape[2]
    with nogil:
        if floating is float:
            fc_wg_filter_grad_f32(&S[0, 0, 0], C, F, &dw[0, 0, 0, 0])
        else:
            fc_wg_filter_grad_f64(&S[0, 0, 0], C, F, &dw[0, 0, 0, 0])


def forward(const floating[:, :, :, ::1] x,     # IN  (N, H, W, C)
            const floating[:, :, ::1] U,        # IN  (16, C, F), filter_transform's
            const floating[::1] bias,           # IN  (F,) or None
            floating[:, :, :, ::1] out,         # OUT (N, OH, OW, F)
            floating[:, ::1] work,              # scratch (n_threads, workspace(...))
            const floating[::1] zeros,          # IN  (C,) zeros
            Py_ssize_t pt, Py_ssize_t pl, Py_ssize_t chunk, bint relu, int n_threads):
    """out = conv(x, w) (+ bias) (ReLU) of a 3x3 stride-1 layer whose input is padded
    by (pt, pl) at the top and left (either may be negative: the input then starts
    inside x); OH, OW are out's. See the module docstring."""
    cdef Py_ssize_t N = x.shape[0], H = x.shape[1], W = x.shape[2], C = x.shape[3]
    cdef Py_ssize_t OH = out.shape[1], OW = out.shape[2], F = out.shape[3]
    cdef Py_ssize_t TH = (OH + 1) // 2, TW = (OW + 1) // 2
    cdef Py_ssize_t tiles = N * TH * TW
    cdef Py_ssize_t chunks = (tiles + chunk - 1) // chunk
    cdef Py_ssize_t ci, t0, t1, m, k
    cdef const floating* xptr = &x[0, 0, 0, 0]
    cdef const floating* uptr = &U[0, 0, 0]
    cdef const floating* bptr = NULL
    cdef const floating* zptr = &zeros[0]
    cdef floating* optr = &out[0, 0, 0, 0]
    cdef floating* wkptr = &work[0, 0]
    cdef Py_ssize_t wstride = work.shape[1]
    cdef floating* V = NULL  # set per thread inside the parallel block
    cdef floating* M = NULL
    cdef floating* junk = NULL
    if bias is not None:
        bptr = &bias[0]
    with nogil, parallel(num_threads=n_threads):
        V = wkptr + threadid() * wstride
        M = V + 16 * chunk * C
        junk = M + 16 * chunk * F
        for ci in prange(chunks, schedule="static"):
            t0 = ci * chunk
            t1 = min(t0 + chunk, tiles)
            m = t1 - t0
            if floating is float:
                fc_wg_input_f32(xptr, H, W, C, pt, pl, TH, TW, t0, t1, zptr, V)
            else:
                fc_wg_input_f64(xptr, H, W, C, pt, pl, TH, TW, t0, t1, zptr, V)
            for k in range(16):
                gemm_rm(False, False, <int> m, <int> F, <int> C, 1.0, V + k * m * C,
                        <int> C, uptr + k * C * F, <int> F, 0.0, M + k * m * F, <int> F)
            if floating is float:
                fc_wg_output_f32(M, m, F, bptr, relu, optr, OH, OW, TH, TW, t0, junk)
            else:
                fc_wg_output_f64(M, m, F, bptr, relu, optr, OH, OW, TH, TW, t0, junk)


def weight_grad(const floating[:, :, :, ::1] x,     # IN  (N, H, W, C)
                const floating[:, :, :, ::1] dout,  # IN  (N, OH, OW, F)
                floating[:, :, :, ::1] S_part,      # OUT (G, 16, C, F)
                floating[:, ::1] db_part,           # OUT (G, F) or None
                floating[:, ::1] work,              # scratch (n_threads, workspace(...))
                const floating[::1] zeros,          # IN  (max(C, F),) zeros
                Py_ssize_t pt, Py_ssize_t pl, Py_ssize_t chunk, int n_threads):
    """Per-group partial sums S_g (16, C, F) of V^T E over the group's tiles (and the
    bias gradient's partials); the caller sums over G and applies filter_grad."""
    cdef Py_ssize_t N = x.shape[0], H = x.shape[1], W = x.shape[2], C = x.shape[3]
    cdef Py_ssize_t OH = dout.shape[1], OW = dout.shape[2], F = dout.shape[3]
    cdef Py_ssize_t G = S_part.shape[0]
    cdef Py_ssize_t TH = (OH + 1) // 2, TW = (OW + 1) // 2
    cdef Py_ssize_t tiles = N * TH * TW
    cdef Py_ssize_t chunks = (tiles + chunk - 1) // chunk
    cdef Py_ssize_t g, ci, t0, t1, m, k, f
    cdef bint has_db = db_part is not None
    cdef const floating* xptr = &x[0, 0, 0, 0]
    cdef const floating* dptr = &dout[0, 0, 0, 0]
    cdef const floating* zptr = &zeros[0]
    cdef floating* sptr = &S_part[0, 0, 0, 0]
    cdef floating* dbptr = NULL
    cdef floating* dbg = NULL
    cdef floating* wkptr = &work[0, 0]
    cdef Py_ssize_t wstride = work.shape[1]
    cdef floating* V = NULL  # set per thread inside the parallel block
    cdef floating* E = NULL
    cdef floating beta
    if has_db:
        dbptr = &db_part[0, 0]
    with nogil, parallel(num_threads=n_threads):
        V = wkptr + threadid() * wstride
        E = V + 16 * chunk * C
        # Groups are fixed by the shapes; which thread runs one does not matter.
        for g in prange(G, schedule="dynamic"):
            dbg = NULL
            if has_db:
                dbg = dbptr + g * F
                for f in range(F):
                    dbg[f] = 0
            for ci in range(g * chunks // G, (g + 1) * chunks // G):
                t0 = ci * chunk
                t1 = min(t0 + chunk, tiles)
                m = t1 - t0
                if floating is float:
                    fc_wg_input_f32(xptr, H, W, C, pt, pl, TH, TW, t0, t1, zptr, V)
                    fc_wg_dout_f32(dptr, OH, OW, F, TH, TW, t0, t1, zptr, E, dbg)
                else:
                    fc_wg_input_f64(xptr, H, W, C, pt, pl, TH, TW, t0, t1, zptr, V)
                    fc_wg_dout_f64(dptr, OH, OW, F, TH, TW, t0, t1, zptr, E, dbg)
                beta = 0.0 if ci == g * chunks // G else 1.0
                for k in range(16):
                    # S_g[k] (C, F) += V[k]^T (C, m) @ E[k] (m, F)
                    gemm_rm(True, False, <int> C, <int> F, <int> m, 1.0, V + k * m * C,
                            <int> C, E + k * m * F, <int> F, beta,
                            sptr + (g * 16 + k) * C * F, <int> F)
