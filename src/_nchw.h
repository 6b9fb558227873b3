/*
 * Convolution kernels on the course layouts of fastconv.compat.cs231n: images
 * x (N, C, H, W), filters w (F, C, HH, WW), output (N, F, OH, OW), row-major, so
 * that no pass moves the channels last and back.
 *
 * Each pass is im2col of a tile of output positions into a small workspace and a
 * product on the register-blocked kernel fc_nchw_gemm, whose rows are filters (or
 * taps) and whose columns are output positions in the images' own order:
 *
 *   forward  out[n] (F, P)      = b + w (F, K) @ cols (K, P)
 *   dw, db   part (F, K + 1)   += dout[n] (F, P) @ [cols^T (P, K) | 1]
 *   dx       dcols (K, P)       = w^T (K, F) @ dout[n] (F, P), then col2im into dx[n]
 *
 * with K = C * HH * WW and P = OH * OW. Every output element is a start value and one
 * FMA per term in a fixed order (the same for AVX2 and AVX-512 and any tile split),
 * so results do not depend on the thread count or the instruction set.
 *
 * Spatial batch normalisation (fc_bn_*) works a channel at a time: its N planes of
 * H * W values, sums in double.
 *
 * The extension is built for the baseline ISA; these functions alone are compiled
 * for AVX2/FMA or AVX-512F through target attributes, and the Cython caller picks a
 * copy from what the CPU has (fc_nchw_isa()); with neither, it says so and the
 * Python side keeps the channels-last kernels (and the NumPy spatial batchnorm).
 */
#ifndef FASTCONV_NCHW_H
#define FASTCONV_NCHW_H

#include <stddef.h>
#include <string.h>

/* [*lo, *hi): the output columns ow in [0, OW) whose input column ow * sw + kw - pl
 * lies in 0 .. W - 1 (empty: *lo == *hi). Two divisions: once per tap, not per row. */
static inline void fc_nchw_cols_inside(ptrdiff_t W, ptrdiff_t OW, int kw, int sw, int pl,
                                       ptrdiff_t *lo, ptrdiff_t *hi)
{
    ptrdiff_t a = kw >= pl ? 0 : (pl - kw + sw - 1) / sw;
    ptrdiff_t b = W - 1 + pl - kw < 0 ? 0 : (W - 1 + pl - kw) / sw + 1;
    a = a < OW ? a : OW;
    b = b < OW ? b : OW;
    *lo = a;
    *hi = b > a ? b : a;
}

/* The weight gradient's im2col rows hold K + FC_L elements, at most K + FC_NCHW_PAD
 * (the widest vector, 16 floats). */
#define FC_NCHW_PAD 16

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__)) && !defined(FC_NO_SIMD)
#define FC_NCHW_X86 1
#include <immintrin.h>
#else
#define FC_NCHW_X86 0
#endif

/* 2 with AVX-512F, 1 with AVX2 and FMA, 0 without (or on another CPU). */
static int fc_nchw_isa(void)
{
#if FC_NCHW_X86
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) return 0;
    return __builtin_cpu_supports("avx512f") ? 2 : 1;
#else
    return 0;
#endif
}

/* The spatial batch normalisation's partial sums per channel (see _nchw_tmpl.h):
 * 8 doubles as a GCC vector, whatever the instruction set. */
#define FC_BN_LANES 8
typedef double fc_v8d __attribute__((vector_size(64)));
typedef float fc_v8f __attribute__((vector_size(32)));

static inline double fc_bn_lanes_total(const fc_v8d *a)
{
    return (((*a)[0] + (*a)[1]) + ((*a)[2] + (*a)[3]))
           + (((*a)[4] + (*a)[5]) + ((*a)[6] + (*a)[7]));
}

/* *v = 8 consecutive values as doubles (unaligned loads; by pointer, so that no
 * vector crosses a call boundary of the baseline ABI) */
static inline __attribute__((always_inline)) void fc_load8_f64(fc_v8d *v, const double *p)
{
    memcpy(v, p, sizeof *v);
}

static inline __attribute__((always_inline)) void fc_load8_f32(fc_v8d *v, const float *p)
{
    fc_v8f f;
    memcpy(&f, p, sizeof f);
    *v = __builtin_convertvector(f, fc_v8d);
}

#if FC_NCHW_X86

/* AVX-512: 6 rows x 4 vectors, 24 of the 32 registers accumulate. */
#define FC_T float
#define FC_V __m512
#define FC_L 16
#define FC_M __mmask16
#define FC_MASK(r) ((__mmask16)((1u << (r)) - 1u))
#define FC_LOADU _mm512_loadu_ps
#define FC_STOREU _mm512_storeu_ps
#define FC_SET1 _mm512_set1_ps
#define FC_ZERO _mm512_setzero_ps
#define FC_FMA _mm512_fmadd_ps
#define FC_LOADM(p, m) _mm512_maskz_loadu_ps(m, p)
#define FC_STOREM(p, m, v) _mm512_mask_storeu_ps(p, m, v)
#define FC_MR 6
#define FC_NR 4
#define FC_TARGET __attribute__((target("avx512f,avx2,fma")))
#define FC_NAME(f) f##_512_f32
#define FC_ADD _mm512_add_ps
#define FC_SPREAD(s, lo) _mm512_permutex2var_ps(s, lo ? _mm512_setr_epi32(0, 16, 1, 16, 2, 16, \
    3, 16, 4, 16, 5, 16, 6, 16, 7, 16) : _mm512_setr_epi32(8, 16, 9, 16, 10, 16, 11, 16, 12, 16, \
    13, 16, 14, 16, 15, 16), _mm512_setzero_ps())
#define FC_EVENS(a, b) _mm512_permutex2var_ps(a, _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, \
    16, 18, 20, 22, 24, 26, 28, 30), b)
#define FC_V4 __m128
#define FC_M4 __m128i
#define FC_MASK4(r) _mm_cmpgt_epi32(_mm_set1_epi32(r), _mm_setr_epi32(0, 1, 2, 3))
#define FC_LOADM4(p, m) _mm_maskload_ps(p, m)
#define FC_STOREU4 _mm_storeu_ps
#define FC_LOAD8 fc_load8_f32
#include "_nchw_tmpl.h"

#define FC_T double
#define FC_V __m512d
#define FC_L 8
#define FC_M __mmask8
#define FC_MASK(r) ((__mmask8)((1u << (r)) - 1u))
#define FC_LOADU _mm512_loadu_pd
#define FC_STOREU _mm512_storeu_pd
#define FC_SET1 _mm512_set1_pd
#define FC_ZERO _mm512_setzero_pd
#define FC_FMA _mm512_fmadd_pd
#define FC_LOADM(p, m) _mm512_maskz_loadu_pd(m, p)
#define FC_STOREM(p, m, v) _mm512_mask_storeu_pd(p, m, v)
#define FC_MR 6
#define FC_NR 4
#define FC_TARGET __attribute__((target("avx512f,avx2,fma")))
#define FC_NAME(f) f##_512_f64
#define FC_ADD _mm512_add_pd
#define FC_SPREAD(s, lo) _mm512_permutex2var_pd(s, lo ? _mm512_setr_epi64(0, 8, 1, 8, 2, 8, 3, 8) \
    : _mm512_setr_epi64(4, 8, 5, 8, 6, 8, 7, 8), _mm512_setzero_pd())
#define FC_EVENS(a, b) _mm512_permutex2var_pd(a, _mm512_setr_epi64(0, 2, 4, 6, 8, 10, 12, 14), b)
#define FC_V4 __m256d
#define FC_M4 __m256i
#define FC_MASK4(r) _mm256_cmpgt_epi64(_mm256_set1_epi64x(r), _mm256_setr_epi64x(0, 1, 2, 3))
#define FC_LOADM4(p, m) _mm256_maskload_pd(p, m)
#define FC_STOREU4 _mm256_storeu_pd
#define FC_LOAD8 fc_load8_f64
#include "_nchw_tmpl.h"

/* AVX2: 4 rows x 3 vectors, 12 of the 16 registers accumulate. */
#define FC_T float
#define FC_V __m256
#define FC_L 8
#define FC_M __m256i
#define FC_MASK(r) _mm256_cmpgt_epi32(_mm256_set1_epi32(r), \
                                      _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7))
#define FC_LOADU _mm256_loadu_ps
#define FC_STOREU _mm256_storeu_ps
#define FC_SET1 _mm256_set1_ps
#define FC_ZERO _mm256_setzero_ps
#define FC_FMA _mm256_fmadd_ps
#define FC_LOADM(p, m) _mm256_maskload_ps(p, m)
#define FC_STOREM(p, m, v) _mm256_maskstore_ps(p, m, v)
#define FC_MR 4
#define FC_NR 3
#define FC_TARGET __attribute__((target("avx2,fma")))
#define FC_NAME(f) f##_256_f32
#define FC_ADD _mm256_add_ps
#define FC_SPREAD(s, lo) (lo ? _mm256_unpacklo_ps : _mm256_unpackhi_ps)(_mm256_castpd_ps( \
    _mm256_permute4x64_pd(_mm256_castps_pd(s), 0xD8)), _mm256_setzero_ps())
#define FC_EVENS(a, b) _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd( \
    _mm256_shuffle_ps(a, b, 0x88)), 0xD8))
#define FC_V4 __m128
#define FC_M4 __m128i
#define FC_MASK4(r) _mm_cmpgt_epi32(_mm_set1_epi32(r), _mm_setr_epi32(0, 1, 2, 3))
#define FC_LOADM4(p, m) _mm_maskload_ps(p, m)
#define FC_STOREU4 _mm_storeu_ps
#define FC_LOAD8 fc_load8_f32
#include "_nchw_tmpl.h"

#define FC_T double
#define FC_V __m256d
#define FC_L 4
#define FC_M __m256i
#define FC_MASK(r) _mm256_cmpgt_epi64(_mm256_set1_epi64x(r), _mm256_setr_epi64x(0, 1, 2, 3))
#define FC_LOADU _mm256_loadu_pd
#define FC_STOREU _mm256_storeu_pd
#define FC_SET1 _mm256_set1_pd
#define FC_ZERO _mm256_setzero_pd
#define FC_FMA _mm256_fmadd_pd
#define FC_LOADM(p, m) _mm256_maskload_pd(p, m)
#define FC_STOREM(p, m, v) _mm256_maskstore_pd(p, m, v)
#define FC_MR 4
#define FC_NR 3
#define FC_TARGET __attribute__((target("avx2,fma")))
#define FC_NAME(f) f##_256_f64
#define FC_ADD _mm256_add_pd
#define FC_SPREAD(s, lo) (lo ? _mm256_unpacklo_pd : _mm256_unpackhi_pd)( \
    _mm256_permute4x64_pd(s, 0xD8), _mm256_setzero_pd())
#define FC_EVENS(a, b) _mm256_permute4x64_pd(_mm256_unpacklo_pd(a, b), 0xD8)
#define FC_V4 __m256d
#define FC_M4 __m256i
#define FC_MASK4(r) _mm256_cmpgt_epi64(_mm256_set1_epi64x(r), _mm256_setr_epi64x(0, 1, 2, 3))
#define FC_LOADM4(p, m) _mm256_maskload_pd(p, m)
#define FC_STOREU4 _mm256_storeu_pd
#define FC_LOAD8 fc_load8_f64
#include "_nchw_tmpl.h"

#endif /* FC_NCHW_X86 */

/* The entry points: the copy for isa (2 AVX-512, 1 AVX2; the caller passes only
 * what fc_nchw_isa() allows; without x86 copies they do nothing and are never
 * called). */
#if FC_NCHW_X86
#define FC_ON_ISA(f, suf, args)                                                        \
    do {                                                                               \
        if (isa == 2) f##_512_##suf args;                                              \
        else if (isa == 1) f##_256_##suf args;                                         \
    } while (0)
#else
#define FC_ON_ISA(f, suf, args) do { (void)isa; } while (0)
#endif

#define FC_NCHW_ENTRY(T, SUF)                                                          \
static void fc_nchw_forward_tile_##SUF(int isa, const T *x, const T *w, const T *b,   \
    T *out, T *cols, ptrdiff_t C, ptrdiff_t H, ptrdiff_t W, ptrdiff_t F, int HH,      \
    int WW, int sh, int sw, int pt, int pl, ptrdiff_t OW, ptrdiff_t P, ptrdiff_t p0,  \
    ptrdiff_t p1)                                                                     \
{                                                                                     \
    FC_ON_ISA(fc_nchw_forward_tile, SUF, (x, w, b, out, cols, C, H, W, F, HH, WW, sh, \
                                          sw, pt, pl, OW, P, p0, p1));                \
}                                                                                     \
static void fc_nchw_backward_tile_##SUF(int isa, const T *x, const T *w,              \
    const T *dout, T *dx, T *dw_part, T *colsT, T *dcols, ptrdiff_t C, ptrdiff_t H,   \
    ptrdiff_t W, ptrdiff_t F, int HH, int WW, int sh, int sw, int pt, int pl,         \
    ptrdiff_t OW, ptrdiff_t P, ptrdiff_t p0, ptrdiff_t p1)                            \
{                                                                                     \
    FC_ON_ISA(fc_nchw_backward_tile, SUF, (x, w, dout, dx, dw_part, colsT, dcols, C,  \
                                           H, W, F, HH, WW, sh, sw, pt, pl, OW, P, p0, \
                                           p1));                                      \
}                                                                                     \
static void fc_bn_stats_##SUF(int isa, const T *x, ptrdiff_t N, ptrdiff_t cs,         \
                              ptrdiff_t S, double *mean, double *var)                 \
{                                                                                     \
    FC_ON_ISA(fc_bn_stats, SUF, (x, N, cs, S, mean, var));                            \
}                                                                                     \
static void fc_bn_apply_##SUF(int isa, const T *x, T *out, ptrdiff_t N, ptrdiff_t cs, \
                              ptrdiff_t S, double mu, double a, double shift)         \
{                                                                                     \
    FC_ON_ISA(fc_bn_apply, SUF, (x, out, N, cs, S, mu, a, shift));                    \
}                                                                                     \
static void fc_bn_grad_sums_##SUF(int isa, const T *dout, const T *x, ptrdiff_t N,    \
                                  ptrdiff_t cs, ptrdiff_t S, double mu, double *sd,   \
                                  double *sdx)                                        \
{                                                                                     \
    FC_ON_ISA(fc_bn_grad_sums, SUF, (dout, x, N, cs, S, mu, sd, sdx));                \
}                                                                                     \
static void fc_bn_dx_##SUF(int isa, const T *dout, const T *x, T *dx, ptrdiff_t N,    \
                           ptrdiff_t cs, ptrdiff_t S, double mu, double k1,           \
                           double k2, double k3)                                      \
{                                                                                     \
    FC_ON_ISA(fc_bn_dx, SUF, (dout, x, dx, N, cs, S, mu, k1, k2, k3));                \
}

FC_NCHW_ENTRY(float, f32)
FC_NCHW_ENTRY(double, f64)

#endif /* FASTCONV_NCHW_H */
