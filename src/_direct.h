/*
 * Direct (no im2col, no BLAS) convolution kernels with AVX2 + FMA: for layers whose
 * reduction K = KH*KW*C is too short for a GEMM to run well (the first layer of a
 * network, C = 1 or 3) and, with the wide blocks, for the middle layers too.
 *
 * The extension is built for the baseline ISA (no -march=native); these functions
 * alone are compiled for AVX2/FMA through the target attribute, and the Python
 * wrapper calls them only when fc_have_avx2() says the CPU has both. Elsewhere
 * (other CPUs, other compilers) fc_have_avx2() is 0 and the im2col + BLAS path runs.
 * On a CPU with AVX-512F the wide blocks run as 512-bit copies (_wide512_tmpl.h,
 * target attribute avx512f), which compute the same bits.
 *
 * Layouts (row-major): img (H, W, C) of one image; w (KH, KW, C, F); out rows
 * (OW, F); dout (OH, OW, F). F must be a multiple of 8 (checked by the caller; 4
 * for the float64 copies of the shared kernels in _direct_tmpl.h).
 * Every output value is accumulated by one thread in a fixed order, so results do
 * not depend on the number of threads.
 */
#ifndef FASTCONV_DIRECT_H
#define FASTCONV_DIRECT_H

#include <stddef.h>
#include <string.h>

/* (FC_NO_SIMD: build without these kernels, as on a non-x86 CPU; for testing) */
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__)) && !defined(FC_NO_SIMD)
#define FC_HAVE_X86 1
#include <immintrin.h>
#define FC_AVX2 __attribute__((target("avx2,fma")))
#define FC_AVX512 __attribute__((target("avx512f,avx2,fma")))
#else
#define FC_HAVE_X86 0
#endif

static int fc_have_avx2(void)
{
#if FC_HAVE_X86
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    return 0;
#endif
}

static int fc_have_avx512(void)
{
#if FC_HAVE_X86
    __builtin_cpu_init();
    /* (GCC's check includes the OS saving the 512-bit registers) */
    return fc_have_avx2() && __builtin_cpu_supports("avx512f");
#else
    return 0;
#endif
}

/* 1 while the middle layers' wide blocks run on AVX-512 (_wide512_tmpl.h), else 0:
 * on by default where the CPU has it (fc_set_wide_avx512(1) at import), switched
 * only between kernel calls (the tests compare the two). Both compute the same bits. */
static int fc_wide_avx512 = 0;

static int fc_set_wide_avx512(int on)
{
    fc_wide_avx512 = on && fc_have_avx512();
    return fc_wide_avx512;
}

/* acc[f] += d[r, f] for r = 0 .. rows-1 in order (a bias gradient's partial sum):
 * plain C on restrict pointers, which the compiler vectorises over f. */
#define FC_ROWS_SUM(T, NAME)                                                          \
static void NAME(const T *restrict d, ptrdiff_t rows, ptrdiff_t F, T *restrict acc)   \
{                                                                                     \
    for (ptrdiff_t r = 0; r < rows; r++)                                              \
        for (ptrdiff_t f = 0; f < F; f++) acc[f] = acc[f] + d[r * F + f];             \
}
FC_ROWS_SUM(float, fc_rows_sum_f32)
FC_ROWS_SUM(double, fc_rows_sum_f64)

/* Reductions at least this long take the forward kernel's wide blocks. */
#define FC_WIDE_MIN_K 64

#if FC_HAVE_X86

/* Keep a loaded vector in a register: without this GCC folds the load into each FMA
 * that uses it, and a weight vector feeding two FMAs is loaded twice (the direct
 * kernels are bound by loads, not FMAs). An empty asm, so no instruction. */
#define FC_IN_REGISTER(v) __asm__("" : "+x"(v))
#define FC_IN_ZMM(v) __asm__("" : "+v"(v))  /* (any of the 32 AVX-512 registers) */

/* The four hot direct kernels below are each an always-inlined body (..._impl)
 * and an entry that calls it with C, K and the strides as literals for the usual
 * first layers (3x3, stride 1, one or three channels), so that GCC compiles copies
 * for those constants: tap loops unrolled, tap offsets and tap-block sizes known.
 * Built generically they ran 15-40% slower (C harness, one thread). Any other shape
 * takes the generic copy; all copies compute the same sums in the same order. */
#define FC_SPECIALISE(CALL_C1, CALL_C3, CALL_ANY)                                      \
    if (C == 1 && K == 9 && sh == 1 && sw == 1) { CALL_C1; }                          \
    else if (C == 3 && K == 27 && sh == 1 && sw == 1) { CALL_C3; }                    \
    else { CALL_ANY; }

FC_AVX2 static inline float fc_hsum256(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    return _mm_cvtss_f32(s);
}

FC_AVX2 static inline double fc_hsum256d(__m256d v)
{
    __m128d s = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
    return _mm_cvtsd_f64(_mm_add_sd(s, _mm_unpackhi_pd(s, s)));
}

/* Taps [*ta, *tb) of a window whose top row is i0 that lie in the image's rows
 * 0..H-1: a range, since the taps are ordered (ki, kj), kdi[t * C] non-decreasing. */
static inline void fc_row_taps(ptrdiff_t i0, ptrdiff_t H, ptrdiff_t taps, ptrdiff_t C,
                               const int *kdi, ptrdiff_t *ta, ptrdiff_t *tb)
{
    ptrdiff_t a = 0;
    while (a < taps && i0 + kdi[a * C] < 0) a++;
    ptrdiff_t e = a;
    while (e < taps && i0 + kdi[e * C] < H) e++;
    *ta = a;
    *tb = e;
}

/* Whether tap t of a window whose left column is j0 lies in the image's columns. */
static inline int fc_col_in(ptrdiff_t j0, ptrdiff_t W, ptrdiff_t C, const int *kdj,
                            ptrdiff_t t)
{
    const ptrdiff_t j = j0 + kdj[t * C];
    return j >= 0 && j < W;
}

/* The last tap of [ta, tb) in the image's columns for a window at column j0, or -1. */
static inline ptrdiff_t fc_edge_last(ptrdiff_t j0, ptrdiff_t W, ptrdiff_t C,
                                     const int *kdj, ptrdiff_t ta, ptrdiff_t tb)
{
    for (ptrdiff_t t = tb - 1; t >= ta; t--)
        if (fc_col_in(j0, W, C, kdj, t)) return t;
    return -1;
}

/* The next run [*t, *t1) of consecutive taps in the image's columns, from *t on and
 * before tb, for a window at column j0; 0 when there is none left. */
static inline int fc_edge_taps(ptrdiff_t j0, ptrdiff_t W, ptrdiff_t C, const int *kdj,
                               ptrdiff_t *t, ptrdiff_t *t1, ptrdiff_t tb)
{
    ptrdiff_t a = *t;
    while (a < tb && !fc_col_in(j0, W, C, kdj, a)) a++;
    if (a >= tb) return 0;
    ptrdiff_t e = a;
    while (e < tb && fc_col_in(j0, W, C, kdj, e)) e++;
    *t = a;
    *t1 = e;
    return 1;
}

/* The loops of the wide forward's drivers, written once for the AVX2 and AVX-512
 * blocks (fc_fwd_wide_cols, fc_fwd_wide512_cols): tap chunks of `chunk` taps, each
 * over all the rows' windows [lo, hi) in blocks of 1-6 windows of nearly equal size
 * (13 = 5 + 4 + 4, not 6 + 6 + 1: a block of one or two windows has too few
 * accumulators to hide the FMA latency). A border row is skipped, or with `skip`
 * runs on its taps [ta, tb) inside the image's rows; with `skip` the windows outside
 * [lo, hi) follow, one at a time, on each run of taps inside the image, and a window
 * with no tap inside gets the bias (ReLU'd). BLOCK(base, o, t0, t1, first, last, P)
 * runs P windows (a literal), the first one's corner at img[base], into o. */
#define FC_WIDE_COLS_LOOPS(BLOCK)                                                     \
    for (ptrdiff_t t0 = 0; t0 < taps; t0 += chunk) {                                  \
        const ptrdiff_t t1 = t0 + chunk < taps ? t0 + chunk : taps;                   \
        for (ptrdiff_t oh = oh0; oh < oh1; oh++) {                                    \
            const ptrdiff_t i0 = oh * sh - pt;                                        \
            ptrdiff_t ta = 0, tb = taps;                                              \
            if (!(i0 >= 0 && i0 + max_di < H)) {  /* a border row */                  \
                if (!skip) continue;                                                  \
                fc_row_taps(i0, H, taps, C, kdi, &ta, &tb);                           \
            }                                                                         \
            const ptrdiff_t u0 = t0 > ta ? t0 : ta, u1 = t1 < tb ? t1 : tb;           \
            if (u0 >= u1) continue;                                                   \
            const int first = u0 == ta, last = u1 == tb;                              \
            const ptrdiff_t xrow = i0 * W - pl, n = hi - lo, nb = (n + 5) / 6;        \
            ptrdiff_t ow = lo;                                                        \
            for (ptrdiff_t blk = 0; blk < nb; blk++) {                                \
                const ptrdiff_t P = n / nb + (blk < n % nb);                          \
                const ptrdiff_t base = (xrow + ow * sw) * C;                          \
                FC_T *o = out + (oh * OW + ow) * F + f0;                              \
                switch (P) {                                                          \
                case 6: BLOCK(base, o, u0, u1, first, last, 6); break;                \
                case 5: BLOCK(base, o, u0, u1, first, last, 5); break;                \
                case 4: BLOCK(base, o, u0, u1, first, last, 4); break;                \
                case 3: BLOCK(base, o, u0, u1, first, last, 3); break;                \
                case 2: BLOCK(base, o, u0, u1, first, last, 2); break;                \
                default: BLOCK(base, o, u0, u1, first, last, 1); break;               \
                }                                                                     \
                ow += P;                                                              \
            }                                                                         \
        }                                                                             \
    }                                                                                 \
    for (ptrdiff_t oh = oh0; skip && oh < oh1; oh++) {                                \
        const ptrdiff_t i0 = oh * sh - pt;                                            \
        ptrdiff_t ta, tb;                                                             \
        fc_row_taps(i0, H, taps, C, kdi, &ta, &tb);                                   \
        for (ptrdiff_t ow = 0; ow < OW; ow++) {                                       \
            if (ow == lo && ta < tb) ow = hi;  /* (done above) */                     \
            if (ow >= OW) break;                                                      \
            const ptrdiff_t j0 = ow * sw - pl, base = (i0 * W + j0) * C;              \
            FC_T *o = out + (oh * OW + ow) * F + f0;                                  \
            ptrdiff_t t = ta, t1, tl = fc_edge_last(j0, W, C, kdj, ta, tb);           \
            if (tl < 0) BLOCK(0, o, 0, 0, 1, 1, 1);  /* (no tap: the bias) */         \
            for (int first = 1; fc_edge_taps(j0, W, C, kdj, &t, &t1, tb);             \
                 first = 0, t = t1)                                                   \
                BLOCK(base, o, t, t1, first, t1 > tl, 1);                             \
        }                                                                             \
    }

/* The AVX-512 wide blocks, which the AVX2 kernels below call when fc_wide_avx512. */
#define FC_T float
#define FC_WV __m512
#define FC_WL 16
#define FC_WLOADU _mm512_loadu_ps
#define FC_WSTOREU _mm512_storeu_ps
#define FC_WSET1 _mm512_set1_ps
#define FC_WZERO _mm512_setzero_ps
#define FC_WFMA _mm512_fmadd_ps
/* max(a, 0) with NaN kept: 0 where a <= 0, else a */
#define FC_WRELU(a, z) _mm512_mask_blend_ps(_mm512_cmp_ps_mask(a, z, _CMP_LE_OQ), a, z)
#define FC_NAME(f) f##_f32
#include "_wide512_tmpl.h"  /* which #undefs these */

#define FC_T double
#define FC_WV __m512d
#define FC_WL 8
#define FC_WLOADU _mm512_loadu_pd
#define FC_WSTOREU _mm512_storeu_pd
#define FC_WSET1 _mm512_set1_pd
#define FC_WZERO _mm512_setzero_pd
#define FC_WFMA _mm512_fmadd_pd
#define FC_WRELU(a, z) _mm512_mask_blend_pd(_mm512_cmp_pd_mask(a, z, _CMP_LE_OQ), a, z)
#define FC_NAME(f) f##_f64
#include "_wide512_tmpl.h"  /* which #undefs these */

/* The shared kernels (fc_conv_fwd_row, fc_conv_dw_rows, fc_conv_dx_row), once for
 * float and once for double. */
#define FC_T float
#define FC_V __m256
#define FC_L 8
#define FC_LOADU _mm256_loadu_ps
#define FC_STOREU _mm256_storeu_ps
#define FC_SET1 _mm256_set1_ps
#define FC_ZERO _mm256_setzero_ps
#define FC_FMA _mm256_fmadd_ps
#define FC_ADD _mm256_add_ps
#define FC_BLENDV _mm256_blendv_ps
#define FC_CMP _mm256_cmp_ps
#define FC_HSUM fc_hsum256
#define FC_NAME(f) f##_f32
#include "_direct_tmpl.h"  /* which #undefs these */

#define FC_T double
#define FC_V __m256d
#define FC_L 4
#define FC_LOADU _mm256_loadu_pd
#define FC_STOREU _mm256_storeu_pd
#define FC_SET1 _mm256_set1_pd
#define FC_ZERO _mm256_setzero_pd
#define FC_FMA _mm256_fmadd_pd
#define FC_ADD _mm256_add_pd
#define FC_BLENDV _mm256_blendv_pd
#define FC_CMP _mm256_cmp_pd
#define FC_HSUM fc_hsum256d
#define FC_NAME(f) f##_f64
#include "_direct_tmpl.h"  /* which #undefs these */

/* win[0..7] = best where m > 0, else -1 (as int8) */
FC_AVX2 static inline void fc_store_win8(signed char *dst, __m256 m, __m256 best)
{
    best = _mm256_blendv_ps(_mm256_set1_ps(-1.f), best,
                            _mm256_cmp_ps(m, _mm256_setzero_ps(), _CMP_GT_OQ));
    const __m256i i32 = _mm256_cvtps_epi32(best);
    const __m128i i16 = _mm_packs_epi32(_mm256_castsi256_si128(i32),
                                        _mm256_extracti128_si256(i32, 1));
    _mm_storel_epi64((__m128i *)dst, _mm_packs_epi16(i16, i16));
}

/* Max pooling after a convolution with ReLU. s holds PH rows of ReLU'd convolution
 * output, (PH, OWs, F) with OWs = PWo * PW, and becomes one pooled row out (PWo, F)
 * of PH x PW windows with stride (PH, PW). win (PWo, F), when not NULL, gets the
 * window-order index a * PW + b of each output's first maximum, or -1 where that
 * maximum is not > 0: ReLU passes no gradient there, so the backward pass skips it.
 * As in the reference, a NaN beats every number and the first NaN stays. */
FC_AVX2 static void fc_relu_maxpool_row_f32(
    const float *s, ptrdiff_t PWo, ptrdiff_t F, int PH, int PW,  /* IN  (PH, PWo*PW, F) */
    float *out,                                                 /* OUT (PWo, F) */
    signed char *win)                                           /* OUT (PWo, F) or NULL */
{
    const ptrdiff_t OWs = PWo * PW;
    const __m256 zero = _mm256_setzero_ps();
    for (ptrdiff_t pw = 0; pw < PWo; pw++) {
        for (ptrdiff_t f = 0; f < F; f += 8) {
            const float *s0 = s + pw * PW * F + f;
            __m256 m = _mm256_loadu_ps(s0);
            __m256 best = zero;  /* window index, as a float */
            for (int a = 0; a < PH; a++) {
                for (int b = a == 0; b < PW; b++) {
                    const __m256 v = _mm256_loadu_ps(s0 + (a * OWs + b) * F);
                    /* take v where !(v <= m) and m is not NaN: larger, or a first NaN */
                    const __m256 up = _mm256_and_ps(_mm256_cmp_ps(v, m, _CMP_NLE_UQ),
                                                    _mm256_cmp_ps(m, m, _CMP_ORD_Q));
                    m = _mm256_blendv_ps(m, v, up);
                    best = _mm256_blendv_ps(best, _mm256_set1_ps((float)(a * PW + b)), up);
                }
            }
            _mm256_storeu_ps(out + pw * F + f, m);
            if (win) fc_store_win8(win + pw * F + f, m, best);
        }
    }
}

/* The transpose of fc_relu_maxpool_row_f32 for the gradient: PH rows dz (PH, OWz, F)
 * with dz[a, pw*PW + b, f] = dp[pw, f] where win[pw, f] == a*PW + b, else 0 (so the
 * ReLU mask is included); columns PWo*PW .. OWz-1 are zeroed. db (F), when not NULL,
 * accumulates dp where win >= 0, i.e. the sum of dz. */
FC_AVX2 static void fc_relu_maxpool_grad_row_f32(
    const float *dp, const signed char *win,          /* IN  (PWo, F) each */
    ptrdiff_t PWo, ptrdiff_t F, int PH, int PW,
    float *dz, ptrdiff_t OWz,                          /* OUT (PH, OWz, F) */
    float *db)                                         /* IN/OUT (F,) or NULL */
{
    for (ptrdiff_t pw = 0; pw < PWo; pw++) {
        for (ptrdiff_t f = 0; f < F; f += 8) {
            const __m256 d = _mm256_loadu_ps(dp + pw * F + f);
            const __m256i wi = _mm256_cvtepi8_epi32(
                _mm_loadl_epi64((const __m128i *)(win + pw * F + f)));
            float *z0 = dz + pw * PW * F + f;
            for (int a = 0; a < PH; a++) {
                for (int b = 0; b < PW; b++) {
                    const __m256 hit = _mm256_castsi256_ps(
                        _mm256_cmpeq_epi32(wi, _mm256_set1_epi32(a * PW + b)));
                    _mm256_storeu_ps(z0 + (a * OWz + b) * F, _mm256_and_ps(d, hit));
                }
            }
            if (db) {
                const __m256 any = _mm256_castsi256_ps(
                    _mm256_cmpgt_epi32(wi, _mm256_set1_epi32(-1)));
                _mm256_storeu_ps(db + f, _mm256_add_ps(_mm256_loadu_ps(db + f),
                                                       _mm256_and_ps(d, any)));
            }
        }
    }
    if (OWz > PWo * PW)
        for (int a = 0; a < PH; a++)
            memset(dz + (a * OWz + PWo * PW) * F, 0, (OWz - PWo * PW) * F * sizeof(float));
}

/* ---- Conv + ReLU + 2x2 max pooling (stride 2), the usual block, kept in registers.
 * A window's four convolution outputs are (oh, ow) = (2ph + qi, 2pw + qj), q = 2qi + qj
 * in window order. FC_POOL2_MAX_K bounds K (the caller checks it). */
#define FC_POOL2_MAX_K 64

/* The four positions' taps of window (ph, pw) where some fall into the padding:
 * xs[q * K + k], zero in the padding. */
FC_AVX2 static void fc_pool2_gather(
    const float *img, ptrdiff_t H, ptrdiff_t W, ptrdiff_t C,
    ptrdiff_t i0, ptrdiff_t j0, int sh, int sw, ptrdiff_t k0, ptrdiff_t nk,
    const int *kdi, const int *kdj, float *xs)
{
    for (int q = 0; q < 4; q++) {
        const ptrdiff_t ii = i0 + (q >> 1) * sh, jj = j0 + (q & 1) * sw;
        for (ptrdiff_t k = 0; k < nk; k++) {
            const ptrdiff_t ih = ii + kdi[k0 + k], iw = jj + kdj[k0 + k];
            xs[q * nk + k] = (ih < 0 || ih >= H || iw < 0 || iw >= W)
                             ? 0.f : img[(ih * W + iw) * C + (k0 + k) % C];
        }
    }
}

static const ptrdiff_t fc_ident64[FC_POOL2_MAX_K] = {
    0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23,
    24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 45,
    46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63};

/* relu(v) = v where v > 0 or NaN, else 0 (as the other kernels) */
#define FC_RELU(v) _mm256_blendv_ps((v), zero, _mm256_cmp_ps((v), zero, _CMP_LE_OQ))

#define FC_POOL2_FWD_BLOCK(NV)                                                        \
    for (ptrdiff_t pw = 0; pw < PWo; pw++) {                                          \
        const ptrdiff_t j0 = 2 * pw * sw - pl;                                        \
        __m256 acc[4][NV];                                                            \
        for (int v = 0; v < NV; v++) {                                                \
            acc[0][v] = bias ? _mm256_loadu_ps(bias + f0 + 8 * v) : zero;             \
            acc[1][v] = acc[0][v]; acc[2][v] = acc[0][v]; acc[3][v] = acc[0][v];      \
        }                                                                             \
        const float *p0, *p1, *p2, *p3;                                               \
        const ptrdiff_t *ko;                                                          \
        if (rows_inside && j0 >= 0 && j0 + sw + max_dj < W) {                         \
            p0 = img + (i0 * W + j0) * C; p1 = p0 + sw * C;                           \
            p2 = p0 + sh * W * C; p3 = p2 + sw * C;                                   \
            ko = koff;                                                                \
        } else {                                                                      \
            fc_pool2_gather(img, H, W, C, i0, j0, sh, sw, 0, K, kdi, kdj, xs);        \
            p0 = xs; p1 = xs + K; p2 = xs + 2 * K; p3 = xs + 3 * K;                   \
            ko = fc_ident64;                                                          \
        }                                                                             \
        const float *wf = w + f0;                                                     \
        for (ptrdiff_t k = 0; k < K; k++) {                                           \
            const ptrdiff_t o = ko[k];                                                \
            const __m256 b0 = _mm256_set1_ps(p0[o]), b1 = _mm256_set1_ps(p1[o]);      \
            const __m256 b2 = _mm256_set1_ps(p2[o]), b3 = _mm256_set1_ps(p3[o]);      \
            for (int v = 0; v < NV; v++) {                                            \
                __m256 wv = _mm256_loadu_ps(wf + k * F + 8 * v);                      \
                FC_IN_REGISTER(wv);                                                   \
                acc[0][v] = _mm256_fmadd_ps(b0, wv, acc[0][v]);                       \
                acc[1][v] = _mm256_fmadd_ps(b1, wv, acc[1][v]);                       \
                acc[2][v] = _mm256_fmadd_ps(b2, wv, acc[2][v]);                       \
                acc[3][v] = _mm256_fmadd_ps(b3, wv, acc[3][v]);                       \
            }                                                                         \
        }                                                                             \
        for (int v = 0; v < NV; v++) {                                                \
            __m256 m = FC_RELU(acc[0][v]), best = zero;                               \
            for (int q = 1; q < 4; q++) {                                             \
                const __m256 r = FC_RELU(acc[q][v]);                                  \
                const __m256 up = _mm256_and_ps(_mm256_cmp_ps(r, m, _CMP_NLE_UQ),     \
                                                _mm256_cmp_ps(m, m, _CMP_ORD_Q));     \
                m = _mm256_blendv_ps(m, r, up);                                       \
                best = _mm256_blendv_ps(best, _mm256_set1_ps((float)q), up);          \
            }                                                                         \
            _mm256_storeu_ps(out + pw * F + f0 + 8 * v, m);                           \
            if (win) fc_store_win8(win + pw * F + f0 + 8 * v, m, best);               \
        }                                                                             \
    }

/* One pooled row ph: out (PWo, F) = max over each 2x2 window of ReLU(conv + bias),
 * and win as fc_relu_maxpool_row_f32 gives it. Per window and 16 filters, the four
 * positions x two vectors of accumulators stay in registers; each weight vector
 * loaded feeds four FMAs. Same sums, in the same order, as fc_conv_fwd_row_f32. */
#define FC_PARAMS_CONV_RELU_POOL2_ROW \
    const float *img, ptrdiff_t H, ptrdiff_t W, ptrdiff_t C,   /* IN  (H, W, C) */ \
    const float *w, const float *bias,                         /* IN  (K, F), (F,)/NULL */ \
    float *out, signed char *win,                              /* OUT (PWo, F) each */ \
    ptrdiff_t ph, ptrdiff_t PWo, ptrdiff_t F, ptrdiff_t K, \
    const ptrdiff_t *koff, const int *kdi, const int *kdj, \
    int sh, int sw, int pt, int pl, int max_di, int max_dj
FC_AVX2 static inline __attribute__((always_inline))
void fc_conv_relu_pool2_row_impl(FC_PARAMS_CONV_RELU_POOL2_ROW)
{
    float xs[4 * FC_POOL2_MAX_K];
    const __m256 zero = _mm256_setzero_ps();
    const ptrdiff_t i0 = 2 * ph * sh - pt;
    const int rows_inside = i0 >= 0 && i0 + sh + max_di < H;
    ptrdiff_t f0 = 0;
    for (; f0 + 16 <= F; f0 += 16) { FC_POOL2_FWD_BLOCK(2) }
    for (; f0 < F; f0 += 8) { FC_POOL2_FWD_BLOCK(1) }
}

FC_AVX2 static void fc_conv_relu_pool2_row_f32(FC_PARAMS_CONV_RELU_POOL2_ROW)
{
    FC_SPECIALISE(
        fc_conv_relu_pool2_row_impl(img, H, W, 1, w, bias, out, win, ph, PWo, F, 9,
            koff, kdi, kdj, 1, 1, pt, pl, max_di, max_dj),
        fc_conv_relu_pool2_row_impl(img, H, W, 3, w, bias, out, win, ph, PWo, F, 27,
            koff, kdi, kdj, 1, 1, pt, pl, max_di, max_dj),
        fc_conv_relu_pool2_row_impl(img, H, W, C, w, bias, out, win, ph, PWo, F, K,
            koff, kdi, kdj, sh, sw, pt, pl, max_di, max_dj))
}

/* Weight (and bias) gradient of conv + ReLU + 2x2 max pooling over pooled rows
 * [r0, r1) of one image, accumulated into dw (K, F) and db (F,) (or NULL). dz at a
 * window's position q is dp where win == q, else 0: built in registers, never stored.
 * Per 8 filters, nine taps of accumulators stay in registers while the windows
 * stream past. Every position of a window is multiplied, zero gradients included,
 * so that a NaN or Inf in x reaches dw as in the reference; positions that no
 * window covers (rows and columns past PHo*2, PWo*2) are not visited at all. */
#define FC_PARAMS_CONV_RELU_POOL2_DW \
    const float *img, ptrdiff_t H, ptrdiff_t W, ptrdiff_t C,   /* IN  (H, W, C) */ \
    const float *dp, const signed char *win,                   /* IN  (PHo, PWo, F) each */ \
    float *dw, float *db,                                      /* IN/OUT (K, F), (F,) */ \
    ptrdiff_t r0, ptrdiff_t r1, ptrdiff_t PWo, ptrdiff_t F, ptrdiff_t K, \
    const ptrdiff_t *koff, const int *kdi, const int *kdj, \
    int sh, int sw, int pt, int pl, int max_di, int max_dj
FC_AVX2 static inline __attribute__((always_inline))
void fc_conv_relu_pool2_dw_impl(FC_PARAMS_CONV_RELU_POOL2_DW)
{
    float xs[4 * 9];
    const __m256 zero = _mm256_setzero_ps();
    const __m256i none = _mm256_set1_epi32(-1);
    for (ptrdiff_t f0 = 0; f0 < F; f0 += 8) {
        for (ptrdiff_t k0 = 0; k0 < K; k0 += 9) {
            const int nk = (int)(K - k0 < 9 ? K - k0 : 9);
            ptrdiff_t ko[9];
            for (int k = 0; k < 9; k++) ko[k] = k < nk ? koff[k0 + k] : 0;
            __m256 acc[9], dbacc = zero;
            for (int k = 0; k < 9; k++) acc[k] = zero;  /* unrolled: registers */
            for (ptrdiff_t ph = r0; ph < r1; ph++) {
                const ptrdiff_t i0 = 2 * ph * sh - pt;
                const int rows_inside = i0 >= 0 && i0 + sh + max_di < H;
                for (ptrdiff_t pw = 0; pw < PWo; pw++) {
                    const ptrdiff_t at = (ph * PWo + pw) * F + f0;
                    const __m256i wi = _mm256_cvtepi8_epi32(
                        _mm_loadl_epi64((const __m128i *)(win + at)));
                    const __m256 any = _mm256_castsi256_ps(_mm256_cmpgt_epi32(wi, none));
                    const __m256 d = _mm256_loadu_ps(dp + at);
                    if (k0 == 0) dbacc = _mm256_add_ps(dbacc, _mm256_and_ps(d, any));
#define FC_DZ(q) _mm256_and_ps(d, _mm256_castsi256_ps(                          \
                                   _mm256_cmpeq_epi32(wi, _mm256_set1_epi32(q))))
                    const __m256 z0 = FC_DZ(0), z1 = FC_DZ(1), z2 = FC_DZ(2), z3 = FC_DZ(3);
#undef FC_DZ
                    const ptrdiff_t j0 = 2 * pw * sw - pl;
                    const float *p0, *p1, *p2, *p3;
                    const ptrdiff_t *o = ko;
                    if (rows_inside && j0 >= 0 && j0 + sw + max_dj < W) {
                        p0 = img + (i0 * W + j0) * C; p1 = p0 + sw * C;
                        p2 = p0 + sh * W * C; p3 = p2 + sw * C;
                    } else {
                        fc_pool2_gather(img, H, W, C, i0, j0, sh, sw, k0, nk, kdi, kdj, xs);
                        p0 = xs; p1 = xs + nk; p2 = xs + 2 * nk; p3 = xs + 3 * nk;
                        o = fc_ident64;
                    }
                    for (int k = 0; k < 9; k++) {  /* constant bound: unrolled */
                        if (k < nk) {
                            acc[k] = _mm256_fmadd_ps(_mm256_set1_ps(p0[o[k]]), z0, acc[k]);
                            acc[k] = _mm256_fmadd_ps(_mm256_set1_ps(p1[o[k]]), z1, acc[k]);
                            acc[k] = _mm256_fmadd_ps(_mm256_set1_ps(p2[o[k]]), z2, acc[k]);
                            acc[k] = _mm256_fmadd_ps(_mm256_set1_ps(p3[o[k]]), z3, acc[k]);
                        }
                    }
                }
            }
            for (int k = 0; k < 9; k++) {
                if (k < nk) {
                    float *dst = dw + (k0 + k) * F + f0;
                    _mm256_storeu_ps(dst, _mm256_add_ps(_mm256_loadu_ps(dst), acc[k]));
                }
            }
            if (k0 == 0 && db)
                _mm256_storeu_ps(db + f0, _mm256_add_ps(_mm256_loadu_ps(db + f0), dbacc));
        }
    }
}

FC_AVX2 static void fc_conv_relu_pool2_dw_f32(FC_PARAMS_CONV_RELU_POOL2_DW)
{
    FC_SPECIALISE(
        fc_conv_relu_pool2_dw_impl(img, H, W, 1, dp, win, dw, db, r0, r1, PWo, F, 9,
            koff, kdi, kdj, 1, 1, pt, pl, max_di, max_dj),
        fc_conv_relu_pool2_dw_impl(img, H, W, 3, dp, win, dw, db, r0, r1, PWo, F, 27,
            koff, kdi, kdj, 1, 1, pt, pl, max_di, max_dj),
        fc_conv_relu_pool2_dw_impl(img, H, W, C, dp, win, dw, db, r0, r1, PWo, F, K,
            koff, kdi, kdj, sh, sw, pt, pl, max_di, max_dj))
}

/* ---- Input gradient for 2-4 input channels, vectorised over pixels ----------------
 *
 * dx[i, j, c] = sum_{ki, kj, f} dout[i + pt - ki*dh, j + pl - kj*dw, f] * w[ki, kj, c, f]
 * (stride 1). With C <= 4 a vector over f yields only C outputs per pixel, so here
 * the vectors run over 8 consecutive pixels j instead: the dout rows a task needs are
 * first transposed to planes t[f][L + ow] (zero outside 0 <= ow < OW, so that no tap
 * needs a check), then NC channels x NV vectors of pixels are accumulated in
 * registers, each plane vector loaded feeding NC FMAs, the filter values broadcast.
 * Rows of dx come out channel-planar in a row buffer and are interleaved into
 * (W, C). The sum runs over ki, kj, f in that order for every pixel, whatever rows
 * a task covers, so the bits depend on neither the tasks nor the threads. */

/* dst[r][q] = src[q][r] for an 8x8 block: src rows sstride apart, dst rows dstride. */
FC_AVX2 static inline void fc_transpose8x8(const float *src, ptrdiff_t sstride,
                                           float *dst, ptrdiff_t dstride)
{
    __m256 r[8], t[8];
    for (int q = 0; q < 8; q++) r[q] = _mm256_loadu_ps(src + q * sstride);
    for (int q = 0; q < 8; q += 2) {
        t[q] = _mm256_unpacklo_ps(r[q], r[q + 1]);
        t[q + 1] = _mm256_unpackhi_ps(r[q], r[q + 1]);
    }
    for (int q = 0; q < 8; q += 4) {
        r[q] = _mm256_shuffle_ps(t[q], t[q + 2], _MM_SHUFFLE(1, 0, 1, 0));
        r[q + 1] = _mm256_shuffle_ps(t[q], t[q + 2], _MM_SHUFFLE(3, 2, 3, 2));
        r[q + 2] = _mm256_shuffle_ps(t[q + 1], t[q + 3], _MM_SHUFFLE(1, 0, 1, 0));
        r[q + 3] = _mm256_shuffle_ps(t[q + 1], t[q + 3], _MM_SHUFFLE(3, 2, 3, 2));
    }
    /* r[q], q < 4: column q of rows 0-3 (low half), column q + 4 (high half); r[q + 4]
     * the same for rows 4-7. */
    for (int q = 0; q < 4; q++) {
        _mm256_storeu_ps(dst + q * dstride, _mm256_permute2f128_ps(r[q], r[q + 4], 0x20));
        _mm256_storeu_ps(dst + (q + 4) * dstride,
                         _mm256_permute2f128_ps(r[q], r[q + 4], 0x31));
    }
}

/* One block of pixels from j0 of dx row i, NC channels x NV vectors: planar into
 * rowbuf. The accumulators are named variables (a##c##v): GCC keeps an array of them
 * in memory across these loops, which halves the speed. */
#define FC_DXP_LOAD(v) __m256 t##v = _mm256_loadu_ps(t + 8 * v)
#define FC_DXP_FMA(c, v) a##c##v = _mm256_fmadd_ps(b##c, t##v, a##c##v)
#define FC_DXP_STORE(c, v) _mm256_storeu_ps(rowbuf + c * Wb + j0 + 8 * v, a##c##v)
#define FC_DXP_BCAST(c) const __m256 b##c = _mm256_broadcast_ss(wf + c)
#define FC_DX_PLANAR_BLOCK(NC)                                                        \
FC_AVX2 static void fc_dx_planar_block_##NC(                                          \
    const float *tbuf, ptrdiff_t oh_lo, ptrdiff_t oh_hi, ptrdiff_t F, ptrdiff_t Wp,    \
    ptrdiff_t L, const float *wt, float *rowbuf, ptrdiff_t Wb, ptrdiff_t i,            \
    ptrdiff_t j0, int KH, int KW, int dh, int dw, int pt, int pl)                      \
{                                                                                     \
    __m256 FC_DXP_DECL_##NC;                                                          \
    for (int ki = 0; ki < KH; ki++) {                                                 \
        const ptrdiff_t oh = i + pt - (ptrdiff_t)ki * dh;                             \
        if (oh < oh_lo || oh >= oh_hi) continue;                                      \
        const float *trow = tbuf + (oh - oh_lo) * F * Wp + L + j0 + pl;               \
        for (int kj = 0; kj < KW; kj++) {                                             \
            const float *t = trow - (ptrdiff_t)kj * dw;                               \
            const float *wf = wt + (ptrdiff_t)(ki * KW + kj) * F * NC;                \
            for (ptrdiff_t f = 0; f < F; f++, t += Wp, wf += NC) {                    \
                FC_DXP_BODY_##NC                                                      \
            }                                                                         \
        }                                                                             \
    }                                                                                 \
    FC_DXP_STORE_##NC                                                                 \
}

/* Per channel c: its accumulators over NV = 3, 4 or 6 pixel vectors, zeroed, fed
 * (one FMA per vector) and stored. */
#define FC_Z _mm256_setzero_ps()
#define FC_DXP_ZERO3(c) a##c##0 = FC_Z, a##c##1 = FC_Z, a##c##2 = FC_Z
#define FC_DXP_ZERO4(c) FC_DXP_ZERO3(c), a##c##3 = FC_Z
#define FC_DXP_ZERO6(c) FC_DXP_ZERO4(c), a##c##4 = FC_Z, a##c##5 = FC_Z
#define FC_DXP_FMA3(c) FC_DXP_FMA(c, 0); FC_DXP_FMA(c, 1); FC_DXP_FMA(c, 2)
#define FC_DXP_STORE3(c) FC_DXP_STORE(c, 0); FC_DXP_STORE(c, 1); FC_DXP_STORE(c, 2)
#define FC_DXP_STORE4(c) FC_DXP_STORE3(c); FC_DXP_STORE(c, 3)
#define FC_DXP_STORE6(c) FC_DXP_STORE4(c); FC_DXP_STORE(c, 4); FC_DXP_STORE(c, 5)
#define FC_DXP_LOAD3 FC_DXP_LOAD(0); FC_DXP_LOAD(1); FC_DXP_LOAD(2)
/* 2 channels x 6 vectors (48 pixels), 3 x 4 (32), 4 x 3 (24): twelve accumulators,
 * and the order of loads chosen so that the rest fits in the other four registers
 * (one plane vector and the broadcasts, or three plane vectors and one broadcast):
 * 7-8 loads per 12 FMAs, none repeated. */
#define FC_DXP_DECL_2 FC_DXP_ZERO6(0), FC_DXP_ZERO6(1)
#define FC_DXP_COL2(v) FC_DXP_LOAD(v); FC_IN_REGISTER(t##v); FC_DXP_FMA(0, v); \
    FC_DXP_FMA(1, v)
#define FC_DXP_BODY_2 FC_DXP_BCAST(0); FC_DXP_BCAST(1); FC_DXP_COL2(0); FC_DXP_COL2(1); \
    FC_DXP_COL2(2); FC_DXP_COL2(3); FC_DXP_COL2(4); FC_DXP_COL2(5);
#define FC_DXP_STORE_2 FC_DXP_STORE6(0); FC_DXP_STORE6(1);
#define FC_DXP_DECL_3 FC_DXP_ZERO4(0), FC_DXP_ZERO4(1), FC_DXP_ZERO4(2)
#define FC_DXP_COL3(v) FC_DXP_LOAD(v); FC_IN_REGISTER(t##v); FC_DXP_FMA(0, v); \
    FC_DXP_FMA(1, v); FC_DXP_FMA(2, v)
#define FC_DXP_BODY_3 FC_DXP_BCAST(0); FC_DXP_BCAST(1); FC_DXP_BCAST(2); \
    FC_DXP_COL3(0); FC_DXP_COL3(1); FC_DXP_COL3(2); FC_DXP_COL3(3);
#define FC_DXP_STORE_3 FC_DXP_STORE4(0); FC_DXP_STORE4(1); FC_DXP_STORE4(2);
#define FC_DXP_DECL_4 FC_DXP_ZERO3(0), FC_DXP_ZERO3(1), FC_DXP_ZERO3(2), FC_DXP_ZERO3(3)
#define FC_DXP_ROW4(c) FC_DXP_BCAST(c); FC_DXP_FMA3(c)
#define FC_DXP_BODY_4 FC_DXP_LOAD3; FC_IN_REGISTER(t0); FC_IN_REGISTER(t1); \
    FC_IN_REGISTER(t2); FC_DXP_ROW4(0); FC_DXP_ROW4(1); FC_DXP_ROW4(2); FC_DXP_ROW4(3);
#define FC_DXP_STORE_4 FC_DXP_STORE3(0); FC_DXP_STORE3(1); FC_DXP_STORE3(2); FC_DXP_STORE3(3);
FC_DX_PLANAR_BLOCK(2)
FC_DX_PLANAR_BLOCK(3)
FC_DX_PLANAR_BLOCK(4)
#undef FC_Z

/* Pixels per block for C input channels (0: not handled here). */
static inline ptrdiff_t fc_dx_planar_width(ptrdiff_t C)
{
    return C == 2 ? 48 : C == 3 ? 32 : C == 4 ? 24 : 0;
}

/* Rows [i0, i1) of dx for one image. tbuf: (i1 - i0 + (KH-1)*dh, F, Wp) scratch whose
 * columns outside [L, L + OW) the caller has zeroed (they are never written);
 * rowbuf: (C, Wb) scratch, Wb = W rounded up to the block width; Wp >= L + Wb + pl
 * and >= L + OW, L = max(0, (KW-1)*dw - pl). wt: the filters as (KH, KW, F, C). */
FC_AVX2 static void fc_conv_dx_planar_f32(
    const float *dout, ptrdiff_t OH, ptrdiff_t OW, ptrdiff_t F,  /* IN  (OH, OW, F) */
    const float *wt,                                             /* IN  (KH, KW, F, C) */
    float *dx, ptrdiff_t W, ptrdiff_t C,                         /* OUT (H, W, C) */
    ptrdiff_t i0, ptrdiff_t i1, int KH, int KW, int dh, int dw, int pt, int pl,
    float *tbuf, ptrdiff_t Wp, ptrdiff_t L, float *rowbuf, ptrdiff_t Wb)
{
    const ptrdiff_t bw = fc_dx_planar_width(C);
    ptrdiff_t oh_lo = i0 + pt - (ptrdiff_t)(KH - 1) * dh, oh_hi = i1 + pt;
    if (oh_lo < 0) oh_lo = 0;
    if (oh_hi > OH) oh_hi = OH;
    for (ptrdiff_t oh = oh_lo; oh < oh_hi; oh++) {
        const float *src = dout + oh * OW * F;
        float *dst = tbuf + (oh - oh_lo) * F * Wp + L;
        ptrdiff_t ow = 0;
        for (; ow + 8 <= OW; ow += 8)
            for (ptrdiff_t f = 0; f < F; f += 8)
                fc_transpose8x8(src + ow * F + f, F, dst + f * Wp + ow, Wp);
        for (; ow < OW; ow++)
            for (ptrdiff_t f = 0; f < F; f++) dst[f * Wp + ow] = src[ow * F + f];
    }
    for (ptrdiff_t i = i0; i < i1; i++) {
        for (ptrdiff_t j0 = 0; j0 < W; j0 += bw) {
            if (C == 2)
                fc_dx_planar_block_2(tbuf, oh_lo, oh_hi, F, Wp, L, wt, rowbuf, Wb, i, j0,
                                     KH, KW, dh, dw, pt, pl);
            else if (C == 3)
                fc_dx_planar_block_3(tbuf, oh_lo, oh_hi, F, Wp, L, wt, rowbuf, Wb, i, j0,
                                     KH, KW, dh, dw, pt, pl);
            else
                fc_dx_planar_block_4(tbuf, oh_lo, oh_hi, F, Wp, L, wt, rowbuf, Wb, i, j0,
                                     KH, KW, dh, dw, pt, pl);
        }
        float *drow = dx + i * W * C;
        for (ptrdiff_t j = 0; j < W; j++)
            for (ptrdiff_t c = 0; c < C; c++) drow[j * C + c] = rowbuf[c * Wb + j];
    }
}

#else  /* no x86 SIMD: never called (fc_have_avx2() is 0), but must compile */

static void fc_conv_fwd_rows_f32(const float *img, ptrdiff_t H, ptrdiff_t W, ptrdiff_t C,
    const float *w, const float *bias, float *out, ptrdiff_t oh0, ptrdiff_t oh1, ptrdiff_t OW,
    ptrdiff_t F, ptrdiff_t K, const ptrdiff_t *koff, const int *kdi, const int *kdj,
    int sh, int sw, int pt, int pl, int max_di, int max_dj, int relu, int skip) {}
static void fc_conv_fwd_row_f32(const float *img, ptrdiff_t H, ptrdiff_t W, ptrdiff_t C,
    const float *w, const float *bias, float *orow, ptrdiff_t oh, ptrdiff_t OW, ptrdiff_t F,
    ptrdiff_t K, const ptrdiff_t *koff, const int *kdi, const int *kdj,
    int sh, int sw, int pt, int pl, int max_di, int max_dj, int relu) {}
static void fc_conv_dw_rows_f32(const float *img, ptrdiff_t H, ptrdiff_t W, ptrdiff_t C,
    const float *dout, float *dw, ptrdiff_t r0, ptrdiff_t r1, ptrdiff_t OW, ptrdiff_t F,
    ptrdiff_t K, const ptrdiff_t *koff, const int *kdi, const int *kdj,
    int sh, int sw, int pt, int pl, int max_di, int max_dj) {}
static void fc_conv_dx_row_f32(const float *dout, ptrdiff_t OH, ptrdiff_t OW, ptrdiff_t F,
    const float *w, float *dxrow, ptrdiff_t i, ptrdiff_t W, ptrdiff_t C,
    int KH, int KW, int dh, int dw, int pt, int pl) {}
static void fc_conv_fwd_rows_f64(const double *img, ptrdiff_t H, ptrdiff_t W, ptrdiff_t C,
    const double *w, const double *bias, double *out, ptrdiff_t oh0, ptrdiff_t oh1, ptrdiff_t OW,
    ptrdiff_t F, ptrdiff_t K, const ptrdiff_t *koff, const int *kdi, const int *kdj,
    int sh, int sw, int pt, int pl, int max_di, int max_dj, int relu, int skip) {}
static void fc_conv_fwd_row_f64(const double *img, ptrdiff_t H, ptrdiff_t W, ptrdiff_t C,
    const double *w, const double *bias, double *orow, ptrdiff_t oh, ptrdiff_t OW,
    ptrdiff_t F, ptrdiff_t K, const ptrdiff_t *koff, const int *kdi, const int *kdj,
    int sh, int sw, int pt, int pl, int max_di, int max_dj, int relu) {}
static void fc_conv_dw_rows_f64(const double *img, ptrdiff_t H, ptrdiff_t W, ptrdiff_t C,
    const double *dout, double *dw, ptrdiff_t r0, ptrdiff_t r1, ptrdiff_t OW, ptrdiff_t F,
    ptrdiff_t K, const ptrdiff_t *koff, const int *kdi, const int *kdj,
    int sh, int sw, int pt, int pl, int max_di, int max_dj) {}
static void fc_conv_dx_row_f64(const double *dout, ptrdiff_t OH, ptrdiff_t OW, ptrdiff_t F,
    const double *w, double *dxrow, ptrdiff_t i, ptrdiff_t W, ptrdiff_t C,
    int KH, int KW, int dh, int dw, int pt, int pl) {}
static void fc_relu_maxpool_row_f32(const float *s, ptrdiff_t PWo, ptrdiff_t F, int PH,
    int PW, float *out, signed char *win) {}
static void fc_relu_maxpool_grad_row_f32(const float *dp, const signed char *win,
    ptrdiff_t PWo, ptrdiff_t F, int PH, int PW, float *dz, ptrdiff_t OWz, float *db) {}
static void fc_conv_relu_pool2_row_f32(const float *img, ptrdiff_t H, ptrdiff_t W,
    ptrdiff_t C, const float *w, const float *bias, float *out, signed char *win,
    ptrdiff_t ph, ptrdiff_t PWo, ptrdiff_t F, ptrdiff_t K, const ptrdiff_t *koff,
    const int *kdi, const int *kdj, int sh, int sw, int pt, int pl, int max_di,
    int max_dj) {}
static inline ptrdiff_t fc_dx_planar_width(ptrdiff_t C) { return 0; }
static void fc_conv_dx_planar_f32(const float *dout, ptrdiff_t OH, ptrdiff_t OW, ptrdiff_t F,
    const float *wt, float *dx, ptrdiff_t W, ptrdiff_t C, ptrdiff_t i0, ptrdiff_t i1,
    int KH, int KW, int dh, int dw, int pt, int pl, float *tbuf, ptrdiff_t Wp, ptrdiff_t L,
    float *rowbuf, ptrdiff_t Wb) {}
static void fc_conv_relu_pool2_dw_f32(const float *img, ptrdiff_t H, ptrdiff_t W,
    ptrdiff_t C, const float *dp, const signed char *win, float *dw, float *db,
    ptrdiff_t r0, ptrdiff_t r1, ptrdiff_t PWo, ptrdiff_t F, ptrdiff_t K,
    const ptrdiff_t *koff, const int *kdi, const int *kdj, int sh, int sw, int pt, int pl,
    int max_di, int max_dj) {}
#define FC_POOL2_MAX_K 64

#endif
#endif
