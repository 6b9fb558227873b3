/*
 * AVX-512 row kernels of the depthwise convolution with a depth multiplier of 1
 * (MobileNet's and Xception's), NHWC, float32 and float64. _depthwise.pyx runs them
 * in parallel over rows when fc_dw_have_avx512() says the CPU has AVX-512F, and its
 * own loops (compiled for the baseline ISA) otherwise.
 *
 * Layouts (row-major): one image x (H, W, C); filters w (KH, KW, C); an output row
 * (OW, C); dout of one image (OH, OW, C). The channels run in blocks of one vector
 * (16 floats or 8 doubles, the last block masked). Each block's filter taps stay in
 * registers while the block's row is computed, and the columns whose windows lie
 * inside the input skip the per-tap bounds checks; the strided input gradient instead
 * finds each pixel's taps once and runs them over every block:
 *
 * - fc_dw_fwd_row: out[ow, c] = bias[c] + sum over taps (ki, kj) in that order of
 *   x[ih, iw, c] * w[ki, kj, c], as fused multiply-adds;
 * - fc_dw_dx_row: dx[ih, iw, c] = sum over the taps (ki, kj) whose window covers
 *   (ih, iw), in that order, of dout[oh, ow, c] * w[ki, kj, c];
 * - fc_dw_dw_rows: over output rows [r0, r1) of the batch, in order, and each row's
 *   pixels in order, dw[ki, kj, c] += x[ih, iw, c] * dout[oh, ow, c] and
 *   db[c] += dout[oh, ow, c] (each written once, at the end; the caller zeroes nothing).
 *
 * Each result is computed by one call in an order fixed by the shapes, so the bits do
 * not depend on the number of threads. Windows that fall outside the input (padding)
 * are skipped tap by tap. Kernels of more than FC_DW_MAX_TAPS taps are left to the
 * baseline loops.
 */
#ifndef FASTCONV_DEPTHWISE_INNER_H
#define FASTCONV_DEPTHWISE_INNER_H

#include <stddef.h>

#define FC_DW_MAX_TAPS 25

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__)) && !defined(FC_NO_SIMD)
#define FC_DW_X86 1
#include <immintrin.h>
#define FC_DW_AVX512 __attribute__((target("avx512f,avx2,fma")))
#define FC_DW_INLINE static inline __attribute__((always_inline))
#else
#define FC_DW_X86 0
#endif

static int fc_dw_have_avx512(void)
{
#if FC_DW_X86
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("fma");
#else
    return 0;
#endif
}

#if FC_DW_X86

/* The output columns [lo, hi) whose windows lie inside the row: o * s + k * d - p in
 * [0, n) for every tap k < K (the rest, at the borders, check each tap). */
static inline void fc_dw_interior(ptrdiff_t n, ptrdiff_t K, ptrdiff_t s, ptrdiff_t d,
                                  ptrdiff_t p, ptrdiff_t count, ptrdiff_t *lo, ptrdiff_t *hi)
{
    ptrdiff_t a = (p + s - 1) / s;                       /* first o with o*s - p >= 0 */
    ptrdiff_t last = n - 1 + p - (K - 1) * d;            /* o*s <= last */
    ptrdiff_t b = last < 0 ? 0 : last / s + 1;
    if (a > count) a = count;
    if (b > count) b = count;
    if (b < a) b = a;
    *lo = a;
    *hi = b;
}

#define FC_DW_KERNELS(SFX, T, V, L, MASK, MASKZ_LOAD, MASK_STORE, FMA, ADD, ZERO)       \
static inline MASK fc_dw_mask_##SFX(ptrdiff_t left)                                   \
{                                                                                     \
    return left >= L ? (MASK) -1 : (MASK) ((1u << left) - 1u);                        \
}                                                                                     \
                                                                                      \
FC_DW_AVX512 FC_DW_INLINE void fc_dw_fwd_row_body_##SFX(                              \
    const T *x, const T *w, const T *bias, T *out, ptrdiff_t H, ptrdiff_t W,          \
    ptrdiff_t C, ptrdiff_t KH, ptrdiff_t KW, ptrdiff_t OW, ptrdiff_t oh, ptrdiff_t sh, \
    ptrdiff_t sw, ptrdiff_t dh, ptrdiff_t dw, ptrdiff_t pt, ptrdiff_t pl)             \
{                                                                                     \
    V wk[FC_DW_MAX_TAPS];                                                             \
    ptrdiff_t lo, hi;                                                                 \
    fc_dw_interior(W, KW, sw, dw, pl, OW, &lo, &hi);                                  \
    for (ptrdiff_t c0 = 0; c0 < C; c0 += L) {                                         \
        const MASK m = fc_dw_mask_##SFX(C - c0);                                      \
        for (ptrdiff_t t = 0; t < KH * KW; t++) wk[t] = MASKZ_LOAD(m, w + t * C + c0); \
        const V b = bias ? MASKZ_LOAD(m, bias + c0) : ZERO();                         \
        for (ptrdiff_t ow = 0; ow < OW; ow++) {                                       \
            if (ow >= lo && ow + 4 <= hi) {                                           \
                /* four interior columns at once: four independent sums (each in the  \
                 * same order as alone), so the FMAs' latency overlaps */             \
                V a0 = b, a1 = b, a2 = b, a3 = b;                                     \
                const ptrdiff_t step = sw * C;                                        \
                for (ptrdiff_t ki = 0; ki < KH; ki++) {                               \
                    const ptrdiff_t ih = oh * sh + ki * dh - pt;                      \
                    if (ih < 0 || ih >= H) continue;                                  \
                    const T *xp = x + ih * W * C + c0 + (ow * sw - pl) * C;           \
                    const V *wr = wk + ki * KW;                                       \
                    for (ptrdiff_t kj = 0; kj < KW; kj++) {                           \
                        const T *q = xp + kj * dw * C;                                \
                        const V wv = wr[kj];                                          \
                        a0 = FMA(MASKZ_LOAD(m, q), wv, a0);                           \
                        a1 = FMA(MASKZ_LOAD(m, q + step), wv, a1);                    \
                        a2 = FMA(MASKZ_LOAD(m, q + 2 * step), wv, a2);                \
                        a3 = FMA(MASKZ_LOAD(m, q + 3 * step), wv, a3);                \
                    }                                                                 \
                }                                                                     \
                MASK_STORE(out + ow * C + c0, m, a0);                                 \
                MASK_STORE(out + (ow + 1) * C + c0, m, a1);                           \
                MASK_STORE(out + (ow + 2) * C + c0, m, a2);                           \
                MASK_STORE(out + (ow + 3) * C + c0, m, a3);                           \
                ow += 3;                                                              \
                continue;                                                             \
            }                                                                         \
            V acc = b;                                                                \
            const int inside = ow >= lo && ow < hi;                                   \
            for (ptrdiff_t ki = 0; ki < KH; ki++) {                                   \
                const ptrdiff_t ih = oh * sh + ki * dh - pt;                          \
                if (ih < 0 || ih >= H) continue;                                      \
                const T *xr = x + ih * W * C + c0;                                    \
                const V *wr = wk + ki * KW;                                           \
                if (inside) {                                                         \
                    const T *xp = xr + (ow * sw - pl) * C;                            \
                    for (ptrdiff_t kj = 0; kj < KW; kj++)                             \
                        acc = FMA(MASKZ_LOAD(m, xp + kj * dw * C), wr[kj], acc);      \
                    continue;                                                         \
                }                                                                     \
                for (ptrdiff_t kj = 0; kj < KW; kj++) {                               \
                    const ptrdiff_t iw = ow * sw + kj * dw - pl;                      \
                    if (iw < 0 || iw >= W) continue;                                  \
                    acc = FMA(MASKZ_LOAD(m, xr + iw * C), wr[kj], acc);               \
                }                                                                     \
            }                                                                         \
            MASK_STORE(out + ow * C + c0, m, acc);                                    \
        }                                                                             \
    }                                                                                 \
}                                                                                     \
                                                                                      \
FC_DW_AVX512 FC_DW_INLINE void fc_dw_dx_row_body_##SFX(                               \
    const T *dout, const T *w, T *dx, ptrdiff_t W, ptrdiff_t C, ptrdiff_t KH,         \
    ptrdiff_t KW, ptrdiff_t OH, ptrdiff_t OW, ptrdiff_t ih, ptrdiff_t sh, ptrdiff_t sw, \
    ptrdiff_t dh, ptrdiff_t dw, ptrdiff_t pt, ptrdiff_t pl)                           \
{                                                                                     \
    V wk[FC_DW_MAX_TAPS];                                                             \
    if (sh != 1 || sw != 1) {                                                         \
        /* strided: the taps that reach (ih, iw) are found once per pixel (divisions  \
         * are slow) and then run over every channel block */                         \
        const T *drow[FC_DW_MAX_TAPS];                                                \
        ptrdiff_t krow[FC_DW_MAX_TAPS], nk = 0;                                       \
        for (ptrdiff_t ki = 0; ki < KH; ki++) {                                       \
            const ptrdiff_t th = ih + pt - ki * dh;                                   \
            if (th < 0 || th % sh != 0 || th / sh >= OH) continue;                    \
            drow[nk] = dout + (th / sh) * OW * C;                                     \
            krow[nk++] = ki;                                                          \
        }                                                                             \
        for (ptrdiff_t iw = 0; iw < W; iw++) {                                        \
            ptrdiff_t kcol[FC_DW_MAX_TAPS], ocol[FC_DW_MAX_TAPS], nj = 0;             \
            for (ptrdiff_t kj = 0; kj < KW; kj++) {                                   \
                const ptrdiff_t tw = iw + pl - kj * dw;                               \
                if (tw < 0 || tw % sw != 0 || tw / sw >= OW) continue;                \
                ocol[nj] = (tw / sw) * C;                                             \
                kcol[nj++] = kj;                                                      \
            }                                                                         \
            for (ptrdiff_t c0 = 0; c0 < C; c0 += L) {                                 \
                const MASK m = fc_dw_mask_##SFX(C - c0);                              \
                V acc = ZERO();                                                       \
                for (ptrdiff_t a = 0; a < nk; a++)                                    \
                    for (ptrdiff_t b = 0; b < nj; b++)                                \
                        acc = FMA(MASKZ_LOAD(m, drow[a] + ocol[b] + c0),              \
                                  MASKZ_LOAD(m, w + (krow[a] * KW + kcol[b]) * C + c0), acc); \
                MASK_STORE(dx + iw * C + c0, m, acc);                                 \
            }                                                                         \
        }                                                                             \
        return;                                                                       \
    }                                                                                 \
    /* stride 1: the columns iw whose taps all read inside dout's row, tw = iw + pl - \
     * kj*dw in [0, OW) for every kj, i.e. iw in [(KW-1)*dw - pl, OW - pl) */         \
    ptrdiff_t lo = (KW - 1) * dw - pl, hi = OW - pl;                                  \
    if (lo < 0) lo = 0;                                                               \
    if (hi > W) hi = W;                                                               \
    if (hi < lo) hi = lo;                                                             \
    for (ptrdiff_t c0 = 0; c0 < C; c0 += L) {                                         \
        const MASK m = fc_dw_mask_##SFX(C - c0);                                      \
        for (ptrdiff_t t = 0; t < KH * KW; t++) wk[t] = MASKZ_LOAD(m, w + t * C + c0); \
        for (ptrdiff_t iw = 0; iw < W; iw++) {                                        \
            if (iw >= lo && iw + 4 <= hi) {   /* four columns at once, as forward */  \
                V a0 = ZERO(), a1 = ZERO(), a2 = ZERO(), a3 = ZERO();                 \
                for (ptrdiff_t ki = 0; ki < KH; ki++) {                               \
                    const ptrdiff_t oh = ih + pt - ki * dh;                           \
                    if (oh < 0 || oh >= OH) continue;                                 \
                    const T *dp = dout + oh * OW * C + c0 + (iw + pl) * C;            \
                    const V *wr = wk + ki * KW;                                       \
                    for (ptrdiff_t kj = 0; kj < KW; kj++) {                           \
                        const T *q = dp - kj * dw * C;                                \
                        const V wv = wr[kj];                                          \
                        a0 = FMA(MASKZ_LOAD(m, q), wv, a0);                           \
                        a1 = FMA(MASKZ_LOAD(m, q + C), wv, a1);                       \
                        a2 = FMA(MASKZ_LOAD(m, q + 2 * C), wv, a2);                   \
                        a3 = FMA(MASKZ_LOAD(m, q + 3 * C), wv, a3);                   \
                    }                                                                 \
                }                                                                     \
                MASK_STORE(dx + iw * C + c0, m, a0);                                  \
                MASK_STORE(dx + (iw + 1) * C + c0, m, a1);                            \
                MASK_STORE(dx + (iw + 2) * C + c0, m, a2);                            \
                MASK_STORE(dx + (iw + 3) * C + c0, m, a3);                            \
                iw += 3;                                                              \
                continue;                                                             \
            }                                                                         \
            V acc = ZERO();                                                           \
            const int inside = iw >= lo && iw < hi;                                   \
            for (ptrdiff_t ki = 0; ki < KH; ki++) {                                   \
                const ptrdiff_t oh = ih + pt - ki * dh;                               \
                if (oh < 0 || oh >= OH) continue;                                     \
                const T *dr = dout + oh * OW * C + c0;                                \
                const V *wr = wk + ki * KW;                                           \
                if (inside) {                                                         \
                    const T *dp = dr + (iw + pl) * C;                                 \
                    for (ptrdiff_t kj = 0; kj < KW; kj++)                             \
                        acc = FMA(MASKZ_LOAD(m, dp - kj * dw * C), wr[kj], acc);      \
                    continue;                                                         \
                }                                                                     \
                for (ptrdiff_t kj = 0; kj < KW; kj++) {                               \
                    const ptrdiff_t ow = iw + pl - kj * dw;                           \
                    if (ow < 0 || ow >= OW) continue;                                 \
                    acc = FMA(MASKZ_LOAD(m, dr + ow * C), wr[kj], acc);               \
                }                                                                     \
            }                                                                         \
            MASK_STORE(dx + iw * C + c0, m, acc);                                     \
        }                                                                             \
    }                                                                                 \
}                                                                                     \
                                                                                      \
FC_DW_AVX512 FC_DW_INLINE void fc_dw_dw_rows_body_##SFX(                              \
    const T *x, const T *dout, T *dwp, T *db, ptrdiff_t r0, ptrdiff_t r1, ptrdiff_t H, \
    ptrdiff_t W, ptrdiff_t C, ptrdiff_t KH, ptrdiff_t KW, ptrdiff_t OH, ptrdiff_t OW,  \
    ptrdiff_t sh, ptrdiff_t sw, ptrdiff_t dh, ptrdiff_t dw, ptrdiff_t pt, ptrdiff_t pl) \
{                                                                                     \
    V acc[FC_DW_MAX_TAPS];                                                            \
    ptrdiff_t lo, hi;                                                                 \
    fc_dw_interior(W, KW, sw, dw, pl, OW, &lo, &hi);                                  \
    for (ptrdiff_t c0 = 0; c0 < C; c0 += L) {                                         \
        const MASK m = fc_dw_mask_##SFX(C - c0);                                      \
        V bacc = ZERO();                                                              \
        for (ptrdiff_t t = 0; t < KH * KW; t++) acc[t] = ZERO();                      \
        for (ptrdiff_t row = r0; row < r1; row++) {                                   \
            const ptrdiff_t n = row / OH, oh = row - n * OH;                          \
            const T *xn = x + n * H * W * C + c0;                                     \
            const T *dr = dout + row * OW * C + c0;                                   \
            for (ptrdiff_t ow = 0; ow < OW; ow++) {                                   \
                const V d = MASKZ_LOAD(m, dr + ow * C);                               \
                const int inside = ow >= lo && ow < hi;                               \
                bacc = ADD(bacc, d);                                                  \
                for (ptrdiff_t ki = 0; ki < KH; ki++) {                               \
                    const ptrdiff_t ih = oh * sh + ki * dh - pt;                      \
                    if (ih < 0 || ih >= H) continue;                                  \
                    const T *xr = xn + ih * W * C;                                    \
                    V *ar = acc + ki * KW;                                            \
                    if (inside) {                                                     \
                        const T *xp = xr + (ow * sw - pl) * C;                        \
                        for (ptrdiff_t kj = 0; kj < KW; kj++)                         \
                            ar[kj] = FMA(MASKZ_LOAD(m, xp + kj * dw * C), d, ar[kj]); \
                        continue;                                                     \
                    }                                                                 \
                    for (ptrdiff_t kj = 0; kj < KW; kj++) {                           \
                        const ptrdiff_t iw = ow * sw + kj * dw - pl;                  \
                        if (iw < 0 || iw >= W) continue;                              \
                        ar[kj] = FMA(MASKZ_LOAD(m, xr + iw * C), d, ar[kj]);          \
                    }                                                                 \
                }                                                                     \
            }                                                                         \
        }                                                                             \
        for (ptrdiff_t t = 0; t < KH * KW; t++) MASK_STORE(dwp + t * C + c0, m, acc[t]); \
        if (db) MASK_STORE(db + c0, m, bacc);                                         \
    }                                                                                 \
}                                                                                      \
/* The 3x3 kernels (almost every depthwise layer) get their own copy of each body,  \
 * the window a constant, so that its loops unroll and the taps and sums stay in     \
 * registers; the arithmetic and its order are the same as for any other window. */  \
FC_DW_AVX512 static void fc_dw_fwd_row_##SFX(                                         \
    const T *x, const T *w, const T *bias, T *out, ptrdiff_t H, ptrdiff_t W,          \
    ptrdiff_t C, ptrdiff_t KH, ptrdiff_t KW, ptrdiff_t OW, ptrdiff_t oh, ptrdiff_t sh, \
    ptrdiff_t sw, ptrdiff_t dh, ptrdiff_t dw, ptrdiff_t pt, ptrdiff_t pl)             \
{                                                                                     \
    if (KH == 3 && KW == 3)                                                           \
        fc_dw_fwd_row_body_##SFX(x, w, bias, out, H, W, C, 3, 3, OW, oh, sh, sw, dh, dw, pt, pl); \
    else                                                                              \
        fc_dw_fwd_row_body_##SFX(x, w, bias, out, H, W, C, KH, KW, OW, oh, sh, sw, dh, dw, pt, pl); \
}                                                                                     \
FC_DW_AVX512 static void fc_dw_dx_row_##SFX(                                          \
    const T *dout, const T *w, T *dx, ptrdiff_t W, ptrdiff_t C, ptrdiff_t KH,         \
    ptrdiff_t KW, ptrdiff_t OH, ptrdiff_t OW, ptrdiff_t ih, ptrdiff_t sh, ptrdiff_t sw, \
    ptrdiff_t dh, ptrdiff_t dw, ptrdiff_t pt, ptrdiff_t pl)                           \
{                                                                                     \
    if (KH == 3 && KW == 3)                                                           \
        fc_dw_dx_row_body_##SFX(dout, w, dx, W, C, 3, 3, OH, OW, ih, sh, sw, dh, dw, pt, pl); \
    else                                                                              \
        fc_dw_dx_row_body_##SFX(dout, w, dx, W, C, KH, KW, OH, OW, ih, sh, sw, dh, dw, pt, pl); \
}                                                                                     \
FC_DW_AVX512 static void fc_dw_dw_rows_##SFX(                                         \
    const T *x, const T *dout, T *dwp, T *db, ptrdiff_t r0, ptrdiff_t r1, ptrdiff_t H, \
    ptrdiff_t W, ptrdiff_t C, ptrdiff_t KH, ptrdiff_t KW, ptrdiff_t OH, ptrdiff_t OW,  \
    ptrdiff_t sh, ptrdiff_t sw, ptrdiff_t dh, ptrdiff_t dw, ptrdiff_t pt, ptrdiff_t pl) \
{                                                                                     \
    if (KH == 3 && KW == 3)                                                           \
        fc_dw_dw_rows_body_##SFX(x, dout, dwp, db, r0, r1, H, W, C, 3, 3, OH, OW, sh, sw, \
                                 dh, dw, pt, pl);                                     \
    else                                                                              \
        fc_dw_dw_rows_body_##SFX(x, dout, dwp, db, r0, r1, H, W, C, KH, KW, OH, OW, sh, \
                                 sw, dh, dw, pt, pl);                                 \
}

FC_DW_KERNELS(f32, float, __m512, 16, __mmask16, _mm512_maskz_loadu_ps,
              _mm512_mask_storeu_ps, _mm512_fmadd_ps, _mm512_add_ps, _mm512_setzero_ps)
FC_DW_KERNELS(f64, double, __m512d, 8, __mmask8, _mm512_maskz_loadu_pd,
              _mm512_mask_storeu_pd, _mm512_fmadd_pd, _mm512_add_pd, _mm512_setzero_pd)

#else  /* no x86: fc_dw_have_avx512() is 0 and these are never called */

#define FC_DW_STUBS(SFX, T)                                                           \
static void fc_dw_fwd_row_##SFX(const T *x, const T *w, const T *bias, T *out,        \
    ptrdiff_t H, ptrdiff_t W, ptrdiff_t C, ptrdiff_t KH, ptrdiff_t KW, ptrdiff_t OW,  \
    ptrdiff_t oh, ptrdiff_t sh, ptrdiff_t sw, ptrdiff_t dh, ptrdiff_t dw, ptrdiff_t pt, \
    ptrdiff_t pl) {}                                                                  \
static void fc_dw_dx_row_##SFX(const T *dout, const T *w, T *dx, ptrdiff_t W,         \
    ptrdiff_t C, ptrdiff_t KH, ptrdiff_t KW, ptrdiff_t OH, ptrdiff_t OW, ptrdiff_t ih, \
    ptrdiff_t sh, ptrdiff_t sw, ptrdiff_t dh, ptrdiff_t dw, ptrdiff_t pt, ptrdiff_t pl) {} \
static void fc_dw_dw_rows_##SFX(const T *x, const T *dout, T *dwp, T *db, ptrdiff_t r0, \
    ptrdiff_t r1, ptrdiff_t H, ptrdiff_t W, ptrdiff_t C, ptrdiff_t KH, ptrdiff_t KW,  \
    ptrdiff_t OH, ptrdiff_t OW, ptrdiff_t sh, ptrdiff_t sw, ptrdiff_t dh, ptrdiff_t dw, \
    ptrdiff_t pt, ptrdiff_t pl) {}
FC_DW_STUBS(f32, float)
FC_DW_STUBS(f64, double)

#endif
#endif
