/*
 * The bilinear blend of resize_forward on plain restrict pointers, so that the compiler
 * vectorises it (the same loop through Cython's memoryviews does not), compiled for
 * the baseline ISA and, on x86 with GCC or clang, for AVX2 (picked at run time). No
 * FMA contraction: both copies give the bits of the loop written out in _resize.pyx's
 * docstring, top = a (1 - wq) + b wq, low = c (1 - wq) + d wq,
 * out = top (1 - wr) + low wr.
 */
#ifndef FASTCONV_RESIZE_INNER_H
#define FASTCONV_RESIZE_INNER_H

#include <stddef.h>

#include "_isa.h"

#define FC_RS_LOOP(SUFFIX, ATTR, T)                                                   \
ATTR static void fc_bilinear_##SUFFIX(T *restrict o, const T *restrict a,             \
                                      const T *restrict b, const T *restrict c,       \
                                      const T *restrict d, ptrdiff_t n, T wq, T wr)   \
{                                                                                     \
    const T vq = 1 - wq, vr = 1 - wr;                                                 \
    for (ptrdiff_t k = 0; k < n; k++) {                                               \
        const T top = a[k] * vq + b[k] * wq;                                          \
        const T low = c[k] * vq + d[k] * wq;                                          \
        o[k] = top * vr + low * wr;                                                   \
    }                                                                                 \
}

FC_RS_LOOP(f32_base, , float)
FC_RS_LOOP(f64_base, , double)
#if FC_ISA_X86
FC_RS_LOOP(f32_avx2, FC_ISA_AVX2, float)
FC_RS_LOOP(f64_avx2, FC_ISA_AVX2, double)
#define FC_RS_PICK(T, ...) \
    (fc_isa_use_avx2 ? fc_bilinear_##T##_avx2(__VA_ARGS__) : fc_bilinear_##T##_base(__VA_ARGS__))
#else
#define FC_RS_PICK(T, ...) fc_bilinear_##T##_base(__VA_ARGS__)
#endif

static void fc_bilinear_f32(float *o, const float *a, const float *b, const float *c,
                            const float *d, ptrdiff_t n, float wq, float wr)
{ FC_RS_PICK(f32, o, a, b, c, d, n, wq, wr); }
static void fc_bilinear_f64(double *o, const double *a, const double *b, const double *c,
                            const double *d, ptrdiff_t n, double wq, double wr)
{ FC_RS_PICK(f64, o, a, b, c, d, n, wq, wr); }

#endif
