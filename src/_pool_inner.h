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
#endif
