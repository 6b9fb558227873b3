/*
 * Inner loops of max pooling over the channels of one window element, written
 * so that the compiler vectorises them (no branches: compare masks and selects).
 *
 * Rule (the same as np.argmax over the window, first wins): an element replaces
 * the running maximum m when it is larger, or when it is NaN and m is not.
 */
#ifndef FASTCONV_POOL_INNER_H
#define FASTCONV_POOL_INNER_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define FC_MAX_UPDATE(T, NAME)                                                    \
static inline void NAME(T *restrict o, int32_t *restrict a, const T *restrict src, \
                        ptrdiff_t C, int32_t idx)                                 \
{                                                                                 \
    for (ptrdiff_t c = 0; c < C; c++) {                                           \
        const T v = src[c], m = o[c];                                             \
        const int take = (v > m) | ((v != v) & (m == m));                         \
        o[c] = take ? v : m;                                                      \
        a[c] = take ? idx + (int32_t)c : a[c];                                    \
    }                                                                             \
}

#define FC_MAX_FIRST(T, NAME)                                                     \
static inline void NAME(T *restrict o, int32_t *restrict a, const T *restrict src, \
                        ptrdiff_t C, int32_t idx)                                 \
{                                                                                 \
    for (ptrdiff_t c = 0; c < C; c++) {                                           \
        o[c] = src[c];                                                            \
        a[c] = idx + (int32_t)c;                                                  \
    }                                                                             \
}

FC_MAX_UPDATE(float, fc_max_update_f32)
FC_MAX_UPDATE(double, fc_max_update_f64)
FC_MAX_FIRST(float, fc_max_first_f32)
FC_MAX_FIRST(double, fc_max_first_f64)



/* Backward of one window row of non-overlapping max pooling: for output column
 * ow and window column kj, dst[(ow*PW + kj)*C + c] receives d[ow*C + c] when that
 * element was its window's winner, else 0. Every element of the row is written
 * once, so no zeroing pass is needed. */
#define FC_MAX_BWD_ROW(T, NAME)                                                    \
static inline void NAME(T *restrict dst, const T *restrict d,                      \
                        const int32_t *restrict a, ptrdiff_t OW, ptrdiff_t C,      \
                        int PW, int32_t row_base)                                  \
{                                                                                  \
    for (ptrdiff_t ow = 0; ow < OW; ow++) {                                        \
        for (int kj = 0; kj < PW; kj++) {                                          \
            const int32_t base = row_base + (int32_t)((ow * PW + kj) * C);         \
            T *restrict o = dst + (ow * PW + kj) * C;                              \
            const T *restrict dd = d + ow * C;                                     \
            const int32_t *restrict aa = a + ow * C;                               \
            for (ptrdiff_t c = 0; c < C; c++) {                                    \
                const T v = dd[c];  /* loaded unconditionally: a select vectorises */ \
                o[c] = aa[c] == base + (int32_t)c ? v : (T)0;                      \
            }                                                                      \
        }                                                                          \
    }                                                                              \
}

FC_MAX_BWD_ROW(float, fc_max_bwd_row_f32)
FC_MAX_BWD_ROW(double, fc_max_bwd_row_f64)

/* The same for average pooling: every element of a window gets d * scale. */
#define FC_AVG_BWD_ROW(T, NAME)                                                    \
static inline void NAME(T *restrict dst, const T *restrict d, ptrdiff_t OW,        \
                        ptrdiff_t C, int PW, T scale)                              \
{                                                                                  \
    for (ptrdiff_t ow = 0; ow < OW; ow++) {                                        \
        for (int kj = 0; kj < PW; kj++) {                                          \
            T *restrict o = dst + (ow * PW + kj) * C;                              \
            const T *restrict dd = d + ow * C;                                     \
            for (ptrdiff_t c = 0; c < C; c++) o[c] = dd[c] * scale;                \
        }                                                                          \
    }                                                                              \
}

FC_AVG_BWD_ROW(float, fc_avg_bwd_row_f32)
FC_AVG_BWD_ROW(double, fc_avg_bwd_row_f64)

/* One output row of 2x2, stride-2 max pooling of a plane (an NCHW channel), with
 * AVX2 (float64 below; float32 likewise, eight at a time): four outputs at a time from rows r0 and r1 (the columns split into even
 * and odd by unpack + permute), the window's four candidates compared in window order
 * with the same rule as above. Returns how many outputs it did (a multiple of 4);
 * the caller does the rest. 0 without AVX2 (checked at run time). */
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#include <immintrin.h>
#define FC_POOL_X86 1

static int fc_pool_avx2 = -1;

__attribute__((target("avx2"))) static ptrdiff_t fc_pool2x2_row_f64_avx2(
    const double *r0, const double *r1, ptrdiff_t OW, double *out, signed char *win)
{
    ptrdiff_t ow = 0;
    for (; ow + 4 <= OW; ow += 4) {
        __m256d c[4];  /* window order: (0,0) (0,1) (1,0) (1,1) */
        for (int r = 0; r < 2; r++) {
            const double *src = (r ? r1 : r0) + 2 * ow;
            const __m256d a = _mm256_loadu_pd(src), b = _mm256_loadu_pd(src + 4);
            /* unpack: [x0 x4 x2 x6] and [x1 x5 x3 x7]; permute to [x0 x2 x4 x6] ... */
            c[2 * r] = _mm256_permute4x64_pd(_mm256_unpacklo_pd(a, b), 0xD8);
            c[2 * r + 1] = _mm256_permute4x64_pd(_mm256_unpackhi_pd(a, b), 0xD8);
        }
        __m256d m = c[0], best = _mm256_setzero_pd();
        for (int q = 1; q < 4; q++) {
            const __m256d up = _mm256_and_pd(_mm256_cmp_pd(c[q], m, _CMP_NLE_UQ),
                                             _mm256_cmp_pd(m, m, _CMP_ORD_Q));
            m = _mm256_blendv_pd(m, c[q], up);
            best = _mm256_blendv_pd(best, _mm256_set1_pd((double)q), up);
        }
        _mm256_storeu_pd(out + ow, m);
        const __m128i i32 = _mm256_cvtpd_epi32(best);           /* 4 x int32 */
        const __m128i i8 = _mm_packs_epi16(_mm_packs_epi32(i32, i32), _mm_setzero_si128());
        const int packed = _mm_cvtsi128_si32(i8);
        memcpy(win + ow, &packed, 4);
    }
    return ow;
}

/* The same in float32, eight outputs at a time. */
__attribute__((target("avx2"))) static ptrdiff_t fc_pool2x2_row_f32_avx2(
    const float *r0, const float *r1, ptrdiff_t OW, float *out, signed char *win)
{
    ptrdiff_t ow = 0;
    for (; ow + 8 <= OW; ow += 8) {
        __m256 c[4];
        for (int r = 0; r < 2; r++) {
            const float *src = (r ? r1 : r0) + 2 * ow;
            const __m256 a = _mm256_loadu_ps(src), b = _mm256_loadu_ps(src + 8);
            /* shuffle: [a0 a2 b0 b2 | a4 a6 b4 b6]; permute to [a0 a2 a4 a6 b0 b2 b4 b6] */
            c[2 * r] = _mm256_castpd_ps(_mm256_permute4x64_pd(
                _mm256_castps_pd(_mm256_shuffle_ps(a, b, 0x88)), 0xD8));
            c[2 * r + 1] = _mm256_castpd_ps(_mm256_permute4x64_pd(
                _mm256_castps_pd(_mm256_shuffle_ps(a, b, 0xDD)), 0xD8));
        }
        __m256 m = c[0], best = _mm256_setzero_ps();
        for (int q = 1; q < 4; q++) {
            const __m256 up = _mm256_and_ps(_mm256_cmp_ps(c[q], m, _CMP_NLE_UQ),
                                            _mm256_cmp_ps(m, m, _CMP_ORD_Q));
            m = _mm256_blendv_ps(m, c[q], up);
            best = _mm256_blendv_ps(best, _mm256_set1_ps((float)q), up);
        }
        _mm256_storeu_ps(out + ow, m);
        const __m256i i32 = _mm256_cvtps_epi32(best);
        const __m128i i16 = _mm_packs_epi32(_mm256_castsi256_si128(i32),
                                            _mm256_extracti128_si256(i32, 1));
        _mm_storel_epi64((__m128i *)(win + ow), _mm_packs_epi16(i16, i16));
    }
    return ow;
}

static int fc_pool_use_avx2(void)
{
    if (fc_pool_avx2 < 0) {
        __builtin_cpu_init();
        fc_pool_avx2 = __builtin_cpu_supports("avx2");
    }
    return fc_pool_avx2;
}

static ptrdiff_t fc_pool2x2_row_f32(const float *r0, const float *r1, ptrdiff_t OW,
                                    float *out, signed char *win)
{
    return fc_pool_use_avx2() ? fc_pool2x2_row_f32_avx2(r0, r1, OW, out, win) : 0;
}

static ptrdiff_t fc_pool2x2_row_f64(const double *r0, const double *r1, ptrdiff_t OW,
                                    double *out, signed char *win)
{
    return fc_pool_use_avx2() ? fc_pool2x2_row_f64_avx2(r0, r1, OW, out, win) : 0;
}
#else
static ptrdiff_t fc_pool2x2_row_f64(const double *r0, const double *r1, ptrdiff_t OW,
                                    double *out, signed char *win)
{
    return 0;
}
static ptrdiff_t fc_pool2x2_row_f32(const float *r0, const float *r1, ptrdiff_t OW,
                                    float *out, signed char *win)
{
    return 0;
}
#endif
#endif
