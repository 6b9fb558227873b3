/*
 * Winograd F(2x2, 3x3) transforms (see _winograd_tmpl.h), each compiled three times:
 * for the baseline ISA, for AVX2 and for AVX-512F (target attributes; the extension
 * itself is built without -march=native). fc_wg_set_isa chooses the copy the entry
 * points below call; all copies compute the same bits (a test compares them), so the
 * choice changes only the speed. The matrix products between the transforms are BLAS
 * calls made from _winograd.pyx.
 */
#ifndef FASTCONV_WINOGRAD_H
#define FASTCONV_WINOGRAD_H

#include <stddef.h>

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__)) && !defined(FC_NO_SIMD)
#define FC_WG_X86 1
#define FC_WG_AVX2 __attribute__((target("avx2,fma")))
#define FC_WG_AVX512 __attribute__((target("avx512f,avx2,fma")))
#else
#define FC_WG_X86 0
#endif

/* 0: baseline, 1: AVX2, 2: AVX-512F */
static int fc_wg_isa = 0;

/* The best copy this CPU runs, at most `level`; returns the one chosen. */
static int fc_wg_set_isa(int level)
{
    int best = 0;
#if FC_WG_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
        best = 1;
        if (__builtin_cpu_supports("avx512f")) best = 2;
    }
#endif
    fc_wg_isa = level < best ? level : best;
    return fc_wg_isa;
}

#define FC_T float
#define FC_ATTR
#define FC_NAME(f) f##_f32_base
#include "_winograd_tmpl.h"
#define FC_T double
#define FC_ATTR
#define FC_NAME(f) f##_f64_base
#include "_winograd_tmpl.h"
#if FC_WG_X86
#define FC_T float
#define FC_ATTR FC_WG_AVX2
#define FC_NAME(f) f##_f32_avx2
#include "_winograd_tmpl.h"
#define FC_T double
#define FC_ATTR FC_WG_AVX2
#define FC_NAME(f) f##_f64_avx2
#include "_winograd_tmpl.h"
#define FC_T float
#define FC_ATTR FC_WG_AVX512
#define FC_NAME(f) f##_f32_avx512
#include "_winograd_tmpl.h"
#define FC_T double
#define FC_ATTR FC_WG_AVX512
#define FC_NAME(f) f##_f64_avx512
#include "_winograd_tmpl.h"
#define FC_WG_CALL(f, args)                                                          \
    do {                                                                             \
        if (fc_wg_isa == 2) f##_avx512 args;                                         \
        else if (fc_wg_isa == 1) f##_avx2 args;                                      \
        else f##_base args;                                                          \
    } while (0)
#else
#define FC_WG_CALL(f, args) f##_base args
#endif

/* The entry points, for T = float (_f32) and double (_f64). */
#define FC_WG_ENTRIES(T, S)                                                          \
static void fc_wg_filter_##S(const T *w, ptrdiff_t C, ptrdiff_t F, T *U)             \
{ FC_WG_CALL(fc_wg_filter_##S, (w, C, F, U)); }                                       \
static void fc_wg_input_##S(const T *x, ptrdiff_t H, ptrdiff_t W, ptrdiff_t C,       \
                            ptrdiff_t pt, ptrdiff_t pl, ptrdiff_t TH, ptrdiff_t TW,  \
                            ptrdiff_t t0, ptrdiff_t t1, const T *zeros, T *V)        \
{ FC_WG_CALL(fc_wg_input_##S, (x, H, W, C, pt, pl, TH, TW, t0, t1, zeros, V)); }      \
static void fc_wg_output_##S(const T *M, ptrdiff_t m, ptrdiff_t F, const T *bias,    \
                             int relu, T *out, ptrdiff_t OH, ptrdiff_t OW,           \
                             ptrdiff_t TH, ptrdiff_t TW, ptrdiff_t t0, T *junk)      \
{ FC_WG_CALL(fc_wg_output_##S, (M, m, F, bias, relu, out, OH, OW, TH, TW, t0, junk)); } \
static void fc_wg_dout_##S(const T *dout, ptrdiff_t OH, ptrdiff_t OW, ptrdiff_t F,   \
                           ptrdiff_t TH, ptrdiff_t TW, ptrdiff_t t0, ptrdiff_t t1,   \
                           const T *zeros, T *E, T *db)                              \
{ FC_WG_CALL(fc_wg_dout_##S, (dout, OH, OW, F, TH, TW, t0, t1, zeros, E, db)); }      \
static void fc_wg_filter_grad_##S(const T *S_, ptrdiff_t C, ptrdiff_t F, T *dw)      \
{ FC_WG_CALL(fc_wg_filter_grad_##S, (S_, C, F, dw)); }

FC_WG_ENTRIES(float, f32)
FC_WG_ENTRIES(double, f64)

#endif
