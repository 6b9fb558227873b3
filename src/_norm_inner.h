/*
 * Inner loops of the normalisation kernels (_norm.pyx) on plain restrict pointers, so
 * that the compiler vectorises them over the channels b of a (rows, B) block: compiled
 * for the baseline ISA and, on x86 with GCC or clang, for AVX2 (picked at run time),
 * without FMA, so both copies give the bits of the NumPy reference's expressions.
 *
 * fc_sums: for each channel b, over the block's rows in order, in double:
 *   v == NULL:  s1[b] += (u - shift[b]),  s2[b] += (u - shift[b])^2
 *   otherwise:  s1[b] += u,               s2[b] += u * (v - shift[b])
 * (s1, s2 are set, not added to: each block's sums are its own partials.)
 * fc_affine: out = p[b] * u + q[b] * v + r[b] (q and v NULL: out = p[b] * u + r[b]).
 */
#ifndef FASTCONV_NORM_INNER_H
#define FASTCONV_NORM_INNER_H

#include <stddef.h>

#include "_isa.h"

#define FC_NM_LOOPS(SUFFIX, ATTR, T)                                                  \
ATTR static void fc_sums_##SUFFIX(const T *restrict u, const T *restrict v,           \
                                  const double *restrict shift, double *restrict s1,  \
                                  double *restrict s2, ptrdiff_t rows, ptrdiff_t B)   \
{                                                                                     \
    for (ptrdiff_t b = 0; b < B; b++) { s1[b] = 0; s2[b] = 0; }                       \
    for (ptrdiff_t i = 0; i < rows; i++) {                                            \
        const T *restrict ui = u + i * B;                                             \
        if (v) {                                                                      \
            const T *restrict vi = v + i * B;                                         \
            for (ptrdiff_t b = 0; b < B; b++) {                                       \
                const double x = (double) ui[b];                                      \
                s1[b] += x;                                                           \
                s2[b] += x * ((double) vi[b] - shift[b]);                             \
            }                                                                         \
        } else {                                                                      \
            for (ptrdiff_t b = 0; b < B; b++) {                                       \
                const double d = (double) ui[b] - shift[b];                           \
                s1[b] += d;                                                           \
                s2[b] += d * d;                                                       \
            }                                                                         \
        }                                                                             \
    }                                                                                 \
}                                                                                     \
ATTR static void fc_affine_##SUFFIX(const T *restrict u, const T *restrict v,         \
                                    const T *restrict p, const T *restrict q,         \
                                    const T *restrict r, T *restrict out,             \
                                    ptrdiff_t rows, ptrdiff_t B)                      \
{                                                                                     \
    for (ptrdiff_t i = 0; i < rows; i++) {                                            \
        const T *restrict ui = u + i * B;                                             \
        T *restrict oi = out + i * B;                                                 \
        if (v) {                                                                      \
            const T *restrict vi = v + i * B;                                         \
            for (ptrdiff_t b = 0; b < B; b++) oi[b] = p[b] * ui[b] + q[b] * vi[b] + r[b]; \
        } else {                                                                      \
            for (ptrdiff_t b = 0; b < B; b++) oi[b] = p[b] * ui[b] + r[b];            \
        }                                                                             \
    }                                                                                 \
}

FC_NM_LOOPS(f32_base, , float)
FC_NM_LOOPS(f64_base, , double)
#if FC_ISA_X86
FC_NM_LOOPS(f32_avx2, FC_ISA_AVX2, float)
FC_NM_LOOPS(f64_avx2, FC_ISA_AVX2, double)
#define FC_NM_PICK(NAME, T, ...) \
    (fc_isa_use_avx2 ? NAME##_##T##_avx2(__VA_ARGS__) : NAME##_##T##_base(__VA_ARGS__))
#else
#define FC_NM_PICK(NAME, T, ...) NAME##_##T##_base(__VA_ARGS__)
#endif

#define FC_NM_ENTRIES(T, CT)                                                          \
static void fc_sums_##T(const CT *u, const CT *v, const double *shift, double *s1,    \
                        double *s2, ptrdiff_t rows, ptrdiff_t B)                      \
{ FC_NM_PICK(fc_sums, T, u, v, shift, s1, s2, rows, B); }                             \
static void fc_affine_##T(const CT *u, const CT *v, const CT *p, const CT *q,         \
                          const CT *r, CT *out, ptrdiff_t rows, ptrdiff_t B)          \
{ FC_NM_PICK(fc_affine, T, u, v, p, q, r, out, rows, B); }

FC_NM_ENTRIES(f32, float)
FC_NM_ENTRIES(f64, double)

#endif
