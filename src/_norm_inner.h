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
 * fc_affine: out = p[b] * u + q[b] * v + r[b] (q and v NULL: out = p[b] * u + r[b]);
 * with relu, out = 0 where that is <= 0 (NaN kept, as fc_relu_fwd).
 * The gate (gp, gr, both NULL or neither; with v): u counts as 0 wherever
 * gp[b] * v + gr[b] > 0 fails, in both loops. That is the gradient through a ReLU that
 * followed the affine map v -> gp * v + gr (computed here with the bits fc_affine gave
 * it), so a normalisation's backward pass and the ReLU's run as one.
 */
#ifndef FASTCONV_NORM_INNER_H
#define FASTCONV_NORM_INNER_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "_isa.h"

#define FC_NM_LOOPS(SUFFIX, ATTR, T, UT)                                              \
ATTR static void fc_sums_##SUFFIX(const T *restrict u, const T *restrict v,           \
                                  const double *restrict shift, const T *restrict gp, \
                                  const T *restrict gr, double *restrict s1,          \
                                  double *restrict s2, ptrdiff_t rows, ptrdiff_t B)   \
{                                                                                     \
    for (ptrdiff_t b = 0; b < B; b++) { s1[b] = 0; s2[b] = 0; }                       \
    for (ptrdiff_t i = 0; i < rows; i++) {                                            \
        const T *restrict ui = u + i * B;                                             \
        if (v && gp) {                                                                \
            const T *restrict vi = v + i * B;                                         \
            for (ptrdiff_t b = 0; b < B; b++) {                                       \
                /* u or +0 by a bit mask: a branch (or a select GCC cannot prove   \
                 * free of FP exceptions before the conversion) keeps the loop       \
                 * scalar */                                                        \
                const T y = gp[b] * vi[b] + gr[b];                                    \
                UT bits;                                                              \
                memcpy(&bits, ui + b, sizeof bits);                                   \
                bits &= (UT) 0 - (UT) (y > 0);                                        \
                T ub;                                                                 \
                memcpy(&ub, &bits, sizeof ub);                                        \
                const double x = (double) ub;                                         \
                s1[b] += x;                                                           \
                s2[b] += x * ((double) vi[b] - shift[b]);                             \
            }                                                                         \
        } else if (v) {                                                               \
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
                                    const T *restrict r, const T *restrict gp,        \
                                    const T *restrict gr, int relu, T *restrict out,  \
                                    ptrdiff_t rows, ptrdiff_t B)                      \
{                                                                                     \
    for (ptrdiff_t i = 0; i < rows; i++) {                                            \
        const T *restrict ui = u + i * B;                                             \
        T *restrict oi = out + i * B;                                                 \
        if (v && gp) {                                                                \
            const T *restrict vi = v + i * B;                                         \
            for (ptrdiff_t b = 0; b < B; b++) {                                       \
                const T y = gp[b] * vi[b] + gr[b], ub = ui[b];                        \
                const T d = y > 0 ? ub : (T) 0;                                       \
                oi[b] = p[b] * d + q[b] * vi[b] + r[b];                               \
            }                                                                         \
        } else if (v) {                                                               \
            const T *restrict vi = v + i * B;                                         \
            for (ptrdiff_t b = 0; b < B; b++) oi[b] = p[b] * ui[b] + q[b] * vi[b] + r[b]; \
        } else {                                                                      \
            for (ptrdiff_t b = 0; b < B; b++) oi[b] = p[b] * ui[b] + r[b];            \
        }                                                                             \
        if (relu)                                                                     \
            for (ptrdiff_t b = 0; b < B; b++) oi[b] = oi[b] <= 0 ? (T) 0 : oi[b];     \
    }                                                                                 \
}

/* Layer normalisation of the rows of x (rows, C) (fc_ln_fwd) and its gradient
 * (fc_ln_bwd), each row on its own: statistics from shifted sums in double,
 * mean[i] = (T) (x[i,0] + s1/C), var = (T) max(s2/C - (s1/C)^2, 0),
 * inv[i] = 1 / sqrt(var + eps) in T; xhat = (x - mean) * inv, out = xhat * g + b.
 * Backward, with dxhat = dout * g: a = sum dxhat, s = sum dxhat * xhat (double),
 * dx = (dxhat - (T)(a/C) - xhat * (T)(s/C)) * inv; and the rows' sums of dout * xhat
 * and dout added, in row order, to dg and db (double). g, b, dg, db may be NULL. */
#define FC_LN_LOOPS(SUFFIX, ATTR, T, SQRT)                                            \
ATTR static void fc_ln_fwd_##SUFFIX(const T *restrict x, const T *restrict g,         \
                                    const T *restrict b, T *restrict out,             \
                                    T *restrict mean, T *restrict inv, ptrdiff_t rows, \
                                    ptrdiff_t C, T eps)                               \
{                                                                                     \
    for (ptrdiff_t i = 0; i < rows; i++) {                                            \
        const T *restrict xi = x + i * C;                                             \
        T *restrict oi = out + i * C;                                                 \
        const double shift = (double) xi[0];                                          \
        double s1 = 0, s2 = 0;                                                        \
        for (ptrdiff_t c = 0; c < C; c++) {                                           \
            const double d = (double) xi[c] - shift;                                  \
            s1 += d;                                                                  \
            s2 += d * d;                                                              \
        }                                                                             \
        s1 /= (double) C;                                                             \
        s2 /= (double) C;                                                             \
        const double var = s2 - s1 * s1 > 0 ? s2 - s1 * s1 : 0.0;                     \
        const T m = (T) (shift + s1), v = (T) var;                                    \
        const T r = (T) 1 / SQRT(v + eps);                                            \
        mean[i] = m;                                                                  \
        inv[i] = r;                                                                   \
        for (ptrdiff_t c = 0; c < C; c++) {                                           \
            const T xh = (xi[c] - m) * r;                                             \
            const T y = g ? xh * g[c] : xh;                                           \
            oi[c] = b ? y + b[c] : y;                                                 \
        }                                                                             \
    }                                                                                 \
}                                                                                     \
ATTR static void fc_ln_bwd_##SUFFIX(const T *restrict dout, const T *restrict x,      \
                                    const T *restrict mean, const T *restrict inv,    \
                                    const T *restrict g, T *restrict dx,              \
                                    double *restrict dg, double *restrict db,         \
                                    ptrdiff_t rows, ptrdiff_t C)                      \
{                                                                                     \
    for (ptrdiff_t i = 0; i < rows; i++) {                                            \
        const T *restrict di = dout + i * C;                                          \
        const T *restrict xi = x + i * C;                                             \
        T *restrict dxi = dx + i * C;                                                 \
        const T m = mean[i], r = inv[i];                                              \
        double a = 0, s = 0;                                                          \
        for (ptrdiff_t c = 0; c < C; c++) {                                           \
            const T xh = (xi[c] - m) * r;                                             \
            const T dxh = g ? di[c] * g[c] : di[c];                                   \
            a += (double) dxh;                                                        \
            s += (double) dxh * (double) xh;                                          \
            if (dg) dg[c] += (double) di[c] * (double) xh;                            \
            if (db) db[c] += (double) di[c];                                          \
        }                                                                             \
        const T ka = (T) (a / (double) C), ks = (T) (s / (double) C);                 \
        for (ptrdiff_t c = 0; c < C; c++) {                                           \
            const T xh = (xi[c] - m) * r;                                             \
            const T dxh = g ? di[c] * g[c] : di[c];                                   \
            dxi[c] = (dxh - ka - xh * ks) * r;                                        \
        }                                                                             \
    }                                                                                 \
}

FC_LN_LOOPS(f32_base, , float, sqrtf)
FC_LN_LOOPS(f64_base, , double, sqrt)
#if FC_ISA_X86
FC_LN_LOOPS(f32_avx2, FC_ISA_AVX2, float, sqrtf)
FC_LN_LOOPS(f64_avx2, FC_ISA_AVX2, double, sqrt)
#endif

FC_NM_LOOPS(f32_base, , float, uint32_t)
FC_NM_LOOPS(f64_base, , double, uint64_t)
#if FC_ISA_X86
FC_NM_LOOPS(f32_avx2, FC_ISA_AVX2, float, uint32_t)
FC_NM_LOOPS(f64_avx2, FC_ISA_AVX2, double, uint64_t)
#define FC_NM_PICK(NAME, T, ...) \
    (fc_isa_use_avx2 ? NAME##_##T##_avx2(__VA_ARGS__) : NAME##_##T##_base(__VA_ARGS__))
#else
#define FC_NM_PICK(NAME, T, ...) NAME##_##T##_base(__VA_ARGS__)
#endif

#define FC_NM_ENTRIES(T, CT)                                                          \
static void fc_sums_##T(const CT *u, const CT *v, const double *shift, const CT *gp,  \
                        const CT *gr, double *s1, double *s2, ptrdiff_t rows,         \
                        ptrdiff_t B)                                                  \
{ FC_NM_PICK(fc_sums, T, u, v, shift, gp, gr, s1, s2, rows, B); }                     \
static void fc_affine_##T(const CT *u, const CT *v, const CT *p, const CT *q,         \
                          const CT *r, const CT *gp, const CT *gr, int relu, CT *out, \
                          ptrdiff_t rows, ptrdiff_t B)                                \
{ FC_NM_PICK(fc_affine, T, u, v, p, q, r, gp, gr, relu, out, rows, B); }

#define FC_LN_ENTRIES(T, CT)                                                          \
static void fc_ln_fwd_##T(const CT *x, const CT *g, const CT *b, CT *out, CT *mean,     \
                          CT *inv, ptrdiff_t rows, ptrdiff_t C, CT eps)               \
{ FC_NM_PICK(fc_ln_fwd, T, x, g, b, out, mean, inv, rows, C, eps); }                   \
static void fc_ln_bwd_##T(const CT *dout, const CT *x, const CT *mean, const CT *inv,   \
                          const CT *g, CT *dx, double *dg, double *db, ptrdiff_t rows, \
                          ptrdiff_t C)                                                \
{ FC_NM_PICK(fc_ln_bwd, T, dout, x, mean, inv, g, dx, dg, db, rows, C); }

FC_LN_ENTRIES(f32, float)
FC_LN_ENTRIES(f64, double)
FC_NM_ENTRIES(f32, float)
FC_NM_ENTRIES(f64, double)

#endif
