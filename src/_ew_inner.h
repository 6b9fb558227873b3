/*
 * Inner loops of the element-wise kernels, on plain restrict pointers so that the
 * compiler vectorises them (Cython's prange bodies, indexed through memoryview
 * structs, are not). Each loop is compiled twice: for the baseline ISA and, on x86
 * with GCC or clang, for AVX2 (picked at run time by fc_ew_use_avx2). The AVX2 copy
 * is compiled without FMA, so no multiply-add is contracted and both copies give
 * the same bits as the NumPy expressions they replace.
 *
 * Semantics: relu_fwd keeps NaN (x <= 0 is false for NaN); add is a + b and add_relu
 * relu_fwd of it (for an Add followed by a ReLU); bias_act adds a bias row
 * and optionally applies the same ReLU; relu_bwd passes dout
 * where x > 0; dropout keeps element i when the top 24 bits of a 32-bit hash of
 * (i, key) are >= threshold and multiplies by the mask (scale or 0), as NumPy's
 * x * mask does, so inf or NaN times a dropped 0 is NaN; adam follows
 * fastconv.optimizers' operation order.
 */
#ifndef FASTCONV_EW_INNER_H
#define FASTCONV_EW_INNER_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

/* Adam's sqrt vectorises only without errno handling: setup.py compiles with
 * -fno-math-errno (the square root of a second moment is never negative). */
#define FC_EW_OPT

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define FC_EW_X86 1
#define FC_EW_AVX2_ATTR __attribute__((target("avx2"))) FC_EW_OPT
#else
#define FC_EW_X86 0
#define FC_EW_AVX2_ATTR
#endif

static int fc_ew_use_avx2 = 0;

static void fc_ew_init(void)
{
#if FC_EW_X86
    __builtin_cpu_init();
    fc_ew_use_avx2 = __builtin_cpu_supports("avx2");
#endif
}

/* murmur3's 32-bit finaliser: bijective, good avalanche, vectorisable. */
static inline uint32_t fc_fmix32(uint32_t h)
{
    h ^= h >> 16; h *= 0x85ebca6bu; h ^= h >> 13; h *= 0xc2b2ae35u; h ^= h >> 16;
    return h;
}

/* The optimizers' update rules, one loop per rule, each in the operation order of
 * its NumPy version in fastconv.optimizers (same bits; no FMA contraction). p is
 * updated from g with up to three slot arrays s0..s2 (a rule reads only those it
 * has); c holds the rule's coefficients, already rounded to T by the caller. With
 * decay, p = p - (p * c[6]) * c[7] comes first (weight decay, as the NumPy code). */
enum { FC_OPT_SGD = 0, FC_OPT_MOMENTUM = 1, FC_OPT_NESTEROV = 2, FC_OPT_ADAM = 3,
       FC_OPT_AMSGRAD = 4, FC_OPT_NADAM = 5, FC_OPT_ADAMAX = 6, FC_OPT_ADAGRAD = 7,
       FC_OPT_ADADELTA = 8, FC_OPT_LION = 9, FC_OPT_RMSPROP = 10 };

/* np.maximum: NaN if either is NaN. */
#define FC_NANMAX(a, b) (((a) != (a) || (a) >= (b)) ? (a) : (b))
/* np.sign: -1, 0 or 1, NaN for NaN. */
#define FC_SIGN(T, a) ((a) > 0 ? (T)1 : ((a) < 0 ? (T)-1 : (a) == 0 ? (T)0 : (a)))

#define FC_OPT_LOOPS(SUFFIX, ATTR, T)                                                 \
ATTR static void fc_opt_##SUFFIX(int rule, T *restrict p, const T *restrict g,        \
                                 T *restrict s0, T *restrict s1, T *restrict s2,      \
                                 ptrdiff_t n, const T *c, int decay)                  \
{                                                                                     \
    const T c0 = c[0], c1 = c[1], c2 = c[2], c3 = c[3], c4 = c[4], c5 = c[5];         \
    if (decay)                                                                        \
        for (ptrdiff_t i = 0; i < n; i++) p[i] = p[i] - (p[i] * c[6]) * c[7];         \
    switch (rule) {                                                                   \
    case FC_OPT_SGD:              /* c0 lr */                                         \
        for (ptrdiff_t i = 0; i < n; i++) p[i] = p[i] - c0 * g[i];                    \
        break;                                                                        \
    case FC_OPT_MOMENTUM:         /* s0 velocity; c0 lr, c1 momentum */               \
        for (ptrdiff_t i = 0; i < n; i++) {                                           \
            const T v = s0[i] * c1 - c0 * g[i];                                       \
            s0[i] = v;                                                                \
            p[i] = p[i] + v;                                                          \
        }                                                                             \
        break;                                                                        \
    case FC_OPT_NESTEROV:                                                             \
        for (ptrdiff_t i = 0; i < n; i++) {                                           \
            const T v = s0[i] * c1 - c0 * g[i];                                       \
            s0[i] = v;                                                                \
            p[i] = p[i] + (c1 * v - c0 * g[i]);                                       \
        }                                                                             \
        break;                                                                        \
    case FC_OPT_AMSGRAD:          /* s0 m, s1 v, s2 v_hat; c0 1-b1, c1 1-b2, c2 eps,  \
                                     c3 alpha */                                      \
        for (ptrdiff_t i = 0; i < n; i++) {                                           \
            const T gi = g[i];                                                        \
            const T mi = s0[i] + (gi - s0[i]) * c0;                                   \
            const T vi = s1[i] + (gi * gi - s1[i]) * c1;                              \
            const T hi = FC_NANMAX(s2[i], vi);                                        \
            s0[i] = mi;                                                               \
            s1[i] = vi;                                                               \
            s2[i] = hi;                                                               \
            p[i] = p[i] - (mi / (FC_SQRT_##SUFFIX(hi) + c2)) * c3;                    \
        }                                                                             \
        break;                                                                        \
    case FC_OPT_NADAM:            /* s0 m, s1 v; c0 1-b1, c1 1-b2, c2 u_t1 / c4:      \
                                     (1-u_prod_1), c3 1-u_t / c5: (1-u_prod),         \
                                     c[8] 1-b2^t, c[9] lr, c[10] eps */               \
    {                                                                                 \
        const T bc2 = c[8], lr = c[9], eps = c[10];                                   \
        for (ptrdiff_t i = 0; i < n; i++) {                                           \
            const T gi = g[i];                                                        \
            const T mi = s0[i] + (gi - s0[i]) * c0;                                   \
            const T vi = s1[i] + (gi * gi - s1[i]) * c1;                              \
            const T mh = (c2 * mi) / c4 + (c3 * gi) / c5;                             \
            s0[i] = mi;                                                               \
            s1[i] = vi;                                                               \
            p[i] = p[i] - (mh * lr) / (FC_SQRT_##SUFFIX(vi / bc2) + eps);             \
        }                                                                             \
        break;                                                                        \
    }                                                                                 \
    case FC_OPT_ADAMAX:           /* s0 m, s1 u; c0 1-b1, c1 b2, c2 lr, c3 1-b1^t,    \
                                     c4 eps */                                        \
        for (ptrdiff_t i = 0; i < n; i++) {                                           \
            const T gi = g[i];                                                        \
            const T mi = s0[i] + (gi - s0[i]) * c0;                                   \
            const T bu = c1 * s1[i], ag = gi < 0 ? -gi : gi;                          \
            const T ui = FC_NANMAX(bu, ag);                                           \
            s0[i] = mi;                                                               \
            s1[i] = ui;                                                               \
            p[i] = p[i] - (c2 * mi) / (c3 * (ui + c4));                               \
        }                                                                             \
        break;                                                                        \
    case FC_OPT_ADAGRAD:          /* s0 accumulator; c0 lr, c1 eps */                 \
        for (ptrdiff_t i = 0; i < n; i++) {                                           \
            const T a = s0[i] + g[i] * g[i];                                          \
            s0[i] = a;                                                                \
            p[i] = p[i] - (c0 * g[i]) / FC_SQRT_##SUFFIX(a + c1);                     \
        }                                                                             \
        break;                                                                        \
    case FC_OPT_ADADELTA:         /* s0 E[g^2], s1 E[dx^2]; c0 rho, c1 1-rho, c2 eps, \
                                     c3 lr */                                         \
        for (ptrdiff_t i = 0; i < n; i++) {                                           \
            const T gi = g[i];                                                        \
            const T ag = c0 * s0[i] + c1 * (gi * gi);                                 \
            const T d = -(FC_SQRT_##SUFFIX(s1[i] + c2) * gi) / FC_SQRT_##SUFFIX(ag + c2); \
            s0[i] = ag;                                                               \
            s1[i] = c0 * s1[i] + c1 * (d * d);                                        \
            p[i] = p[i] + c3 * d;                                                     \
        }                                                                             \
        break;                                                                        \
    case FC_OPT_LION:             /* s0 m; c0 lr, c1 b1, c2 1-b1, c3 b2, c4 1-b2 */   \
        for (ptrdiff_t i = 0; i < n; i++) {                                           \
            const T gi = g[i], u = s0[i] * c1 + gi * c2;                              \
            p[i] = p[i] - c0 * FC_SIGN(T, u);                                         \
            s0[i] = s0[i] * c3 + gi * c4;                                             \
        }                                                                             \
        break;                                                                        \
    case FC_OPT_RMSPROP:          /* s0 v, s1 mean g (centered) or NULL, s2 momentum  \
                                     buffer or NULL; c0 rho, c1 1-rho, c2 eps, c3 lr, \
                                     c4 momentum */                                   \
        for (ptrdiff_t i = 0; i < n; i++) {                                           \
            const T gi = g[i];                                                        \
            const T v = s0[i] * c0 + (gi * gi) * c1;                                  \
            T t = v;                                                                  \
            s0[i] = v;                                                                \
            if (s1) {                                                                 \
                const T mg = s1[i] * c0 + c1 * gi;                                    \
                s1[i] = mg;                                                           \
                t = v - mg * mg;                                                      \
            }                                                                         \
            t = (gi / FC_SQRT_##SUFFIX(t + c2)) * c3;                                 \
            if (s2) {                                                                 \
                const T mo = s2[i] * c4 + t;                                          \
                s2[i] = mo;                                                           \
                t = mo;                                                               \
            }                                                                         \
            p[i] = p[i] - t;                                                          \
        }                                                                             \
        break;                                                                        \
    default:                      /* FC_OPT_ADAM: s0 m, s1 v; as fc_adam */           \
        fc_adam_##SUFFIX(p, g, s0, s1, n, c0, c1, c2, c3);                            \
    }                                                                                 \
}

#define FC_EW_LOOPS(SUFFIX, ATTR, T)                                                  \
ATTR static void fc_relu_fwd_##SUFFIX(const T *restrict x, T *restrict out, ptrdiff_t n) \
{                                                                                     \
    for (ptrdiff_t i = 0; i < n; i++) out[i] = x[i] <= 0 ? (T)0 : x[i];               \
}                                                                                     \
ATTR static void fc_add_##SUFFIX(const T *restrict a, const T *restrict b,            \
                                 T *restrict out, ptrdiff_t n)                        \
{                                                                                     \
    for (ptrdiff_t i = 0; i < n; i++) out[i] = a[i] + b[i];                           \
}                                                                                     \
ATTR static void fc_add_relu_##SUFFIX(const T *restrict a, const T *restrict b,       \
                                      T *restrict out, ptrdiff_t n)                   \
{                                                                                     \
    for (ptrdiff_t i = 0; i < n; i++) {                                               \
        const T y = a[i] + b[i];                                                      \
        out[i] = y <= 0 ? (T)0 : y;                                                   \
    }                                                                                 \
}                                                                                     \
ATTR static void fc_relu_bwd_##SUFFIX(const T *restrict d, const T *restrict x,       \
                                      T *restrict dx, ptrdiff_t n)                    \
{                                                                                     \
    for (ptrdiff_t i = 0; i < n; i++) dx[i] = x[i] > 0 ? d[i] : (T)0;                 \
}                                                                                     \
ATTR static void fc_dropout_fwd_##SUFFIX(const T *restrict x, T *restrict out,        \
                                         T *restrict keep, ptrdiff_t n,               \
                                         uint32_t start, uint32_t k1, uint32_t k2,    \
                                         uint32_t threshold, T scale)                 \
{                                                                                     \
    /* keep[i] is scale or 0 (one type throughout, so the loop vectorises) */         \
    for (ptrdiff_t i = 0; i < n; i++) {                                               \
        const uint32_t h = fc_fmix32(fc_fmix32((start + (uint32_t)i) ^ k1) + k2);     \
        const T kv = (h >> 8) >= threshold ? scale : (T)0;                            \
        keep[i] = kv;                                                                 \
        out[i] = x[i] * kv;  /* as NumPy's x * mask: a dropped NaN stays NaN */       \
    }                                                                                 \
}                                                                                     \
ATTR static void fc_dropout_bwd_##SUFFIX(const T *restrict d, const T *restrict keep,  \
                                         T *restrict dx, ptrdiff_t n)                 \
{                                                                                     \
    for (ptrdiff_t i = 0; i < n; i++) dx[i] = d[i] * keep[i];                         \
}                                                                                     \
ATTR static void fc_bias_act_##SUFFIX(T *restrict z, const T *restrict b,            \
                                      ptrdiff_t rows, ptrdiff_t cols, int relu)       \
{                                                                                     \
    /* z[i, j] += b[j], then ReLU if asked: NumPy's z += b, then max(z, 0) */          \
    for (ptrdiff_t i = 0; i < rows; i++) {                                            \
        T *restrict zi = z + i * cols;                                                \
        if (b)                                                                        \
            for (ptrdiff_t j = 0; j < cols; j++) zi[j] = zi[j] + b[j];                \
        if (relu)                                                                     \
            for (ptrdiff_t j = 0; j < cols; j++) zi[j] = zi[j] <= 0 ? (T)0 : zi[j];   \
    }                                                                                 \
}                                                                                     \
ATTR static void fc_column_sum_##SUFFIX(const T *restrict d, const T *restrict y,      \
                                       T *restrict dz, T *restrict db, ptrdiff_t rows, \
                                       ptrdiff_t cols, ptrdiff_t ld)                  \
{                                                                                     \
    /* Columns [0, cols) of (rows, ld) arrays. With y (a ReLU's output): dz = d where \
     * y > 0, else 0. db[j] = the column sum of dz (or of d without y), row after row \
     * from the first, which is NumPy's order for np.add.reduce(., axis=0). */        \
    if (rows == 0) {                                                                  \
        for (ptrdiff_t j = 0; j < cols; j++) db[j] = (T)0;                            \
        return;                                                                       \
    }                                                                                 \
    for (ptrdiff_t i = 0; i < rows; i++) {                                            \
        /* (di is a plain pointer: it is re-pointed at dz's row, which a restrict     \
         * pointer of this block may not be) */                                       \
        const T *di = d + i * ld;                                                     \
        if (y) {                                                                      \
            const T *restrict yi = y + i * ld;                                        \
            T *restrict dzi = dz + i * ld;                                            \
            for (ptrdiff_t j = 0; j < cols; j++) dzi[j] = yi[j] > 0 ? di[j] : (T)0;   \
            di = dz + i * ld;                                                         \
        }                                                                             \
        if (i == 0)                                                                   \
            for (ptrdiff_t j = 0; j < cols; j++) db[j] = di[j];                       \
        else                                                                          \
            for (ptrdiff_t j = 0; j < cols; j++) db[j] = db[j] + di[j];               \
    }                                                                                 \
}                                                                                     \
ATTR static void fc_adam_##SUFFIX(T *restrict p, const T *restrict g, T *restrict m,  \
                                  T *restrict v, ptrdiff_t n, T c1, T c2, T eps, T a) \
{                                                                                     \
    for (ptrdiff_t i = 0; i < n; i++) {                                               \
        const T gi = g[i];                                                            \
        const T mi = m[i] + (gi - m[i]) * c1;                                         \
        const T vi = v[i] + (gi * gi - v[i]) * c2;                                    \
        m[i] = mi;                                                                    \
        v[i] = vi;                                                                    \
        p[i] = p[i] - (mi / (FC_SQRT_##SUFFIX(vi) + eps)) * a;                        \
    }                                                                                 \
}                                                                                     \
FC_OPT_LOOPS(SUFFIX, ATTR, T)

#define FC_SQRT_f32_base sqrtf
#define FC_SQRT_f64_base sqrt
#define FC_SQRT_f32_avx2 sqrtf
#define FC_SQRT_f64_avx2 sqrt

FC_EW_LOOPS(f32_base, FC_EW_OPT, float)
FC_EW_LOOPS(f64_base, FC_EW_OPT, double)
#if FC_EW_X86
FC_EW_LOOPS(f32_avx2, FC_EW_AVX2_ATTR, float)
FC_EW_LOOPS(f64_avx2, FC_EW_AVX2_ATTR, double)
#define FC_EW_PICK(NAME, T, ...) \
    (fc_ew_use_avx2 ? NAME##_##T##_avx2(__VA_ARGS__) : NAME##_##T##_base(__VA_ARGS__))
#else
#define FC_EW_PICK(NAME, T, ...) NAME##_##T##_base(__VA_ARGS__)
#endif

/* The entry points Cython calls. */
#define FC_EW_ENTRIES(T, CT)                                                          \
static void fc_relu_fwd_##T(const CT *x, CT *out, ptrdiff_t n)                        \
{ FC_EW_PICK(fc_relu_fwd, T, x, out, n); }                                            \
static void fc_add_##T(const CT *a, const CT *b, CT *out, ptrdiff_t n)               \
{ FC_EW_PICK(fc_add, T, a, b, out, n); }                                               \
static void fc_add_relu_##T(const CT *a, const CT *b, CT *out, ptrdiff_t n)          \
{ FC_EW_PICK(fc_add_relu, T, a, b, out, n); }                                          \
static void fc_relu_bwd_##T(const CT *d, const CT *x, CT *dx, ptrdiff_t n)            \
{ FC_EW_PICK(fc_relu_bwd, T, d, x, dx, n); }                                          \
static void fc_dropout_fwd_##T(const CT *x, CT *out, CT *keep, ptrdiff_t n,          \
                               uint32_t start, uint32_t k1, uint32_t k2,              \
                               uint32_t threshold, CT scale)                          \
{ FC_EW_PICK(fc_dropout_fwd, T, x, out, keep, n, start, k1, k2, threshold, scale); }  \
static void fc_dropout_bwd_##T(const CT *d, const CT *keep, CT *dx, ptrdiff_t n)     \
{ FC_EW_PICK(fc_dropout_bwd, T, d, keep, dx, n); }                                    \
static void fc_bias_act_##T(CT *z, const CT *b, ptrdiff_t rows, ptrdiff_t cols,      \
                            int relu)                                                 \
{ FC_EW_PICK(fc_bias_act, T, z, b, rows, cols, relu); }                               \
static void fc_column_sum_##T(const CT *d, const CT *y, CT *dz, CT *db, ptrdiff_t rows, \
                             ptrdiff_t cols, ptrdiff_t ld)                            \
{ FC_EW_PICK(fc_column_sum, T, d, y, dz, db, rows, cols, ld); }                        \
static void fc_opt_##T(int rule, CT *p, const CT *g, CT *s0, CT *s1, CT *s2,          \
                       ptrdiff_t n, const CT *c, int decay)                           \
{ FC_EW_PICK(fc_opt, T, rule, p, g, s0, s1, s2, n, c, decay); }

FC_EW_ENTRIES(f32, float)
FC_EW_ENTRIES(f64, double)

/* Row-wise kernels on (rows, k) arrays, the row sums accumulated in double and
 * rounded once; a NaN in a row makes that row's results NaN, as in NumPy.
 *
 * fc_row_exp: the row's max mx, and the sum of exp(z - mx), also stored in e
 * unless e is NULL.
 *
 * Softmax cross-entropy from logits, as fastconv.losses computes it: logp = z - mx -
 * log(sum(exp(z - mx))); with integer labels the row's loss is -logp[label] and its
 * gradient (exp(logp) - onehot) / m; with target rows y (one-hot or soft) the loss is
 * -sum(y * logp) and the gradient (exp(logp) * sum(y) - y) / m. Returns the sum of
 * the rows' losses.
 *
 * Softmax: out = exp(z - mx) / sum(exp(z - mx)). */
#define FC_ROWS(T, CT, EXP, LOG)                                                      \
static inline double fc_row_exp_##T(const CT *restrict zi, ptrdiff_t k, CT *mx_out,   \
                                    CT *restrict e)                                   \
{                                                                                     \
    CT mx = zi[0];                                                                    \
    double sum = 0;                                                                   \
    for (ptrdiff_t j = 1; j < k; j++) mx = zi[j] > mx ? zi[j] : mx;                   \
    for (ptrdiff_t j = 0; j < k; j++) {                                               \
        const CT ej = EXP(zi[j] - mx);                                                \
        if (e) e[j] = ej;                                                             \
        sum += (double)ej;                                                            \
    }                                                                                 \
    *mx_out = mx;                                                                     \
    return sum;                                                                       \
}                                                                                     \
static double fc_softmax_xent_##T(const CT *restrict z, const ptrdiff_t *restrict labels, \
                                  const CT *restrict y, CT *restrict grad,            \
                                  ptrdiff_t rows, ptrdiff_t k, CT m)                  \
{                                                                                     \
    double total = 0;                                                                 \
    for (ptrdiff_t i = 0; i < rows; i++) {                                            \
        const CT *restrict zi = z + i * k;                                            \
        CT *restrict gi = grad + i * k;                                               \
        CT mx;                                                                        \
        const CT lse = LOG((CT)fc_row_exp_##T(zi, k, &mx, NULL));                     \
        if (labels) {                                                                 \
            const ptrdiff_t t = labels[i];                                            \
            for (ptrdiff_t j = 0; j < k; j++)                                         \
                gi[j] = (EXP((zi[j] - mx) - lse) - (j == t ? (CT)1 : (CT)0)) / m;     \
            total -= (double)((zi[t] - mx) - lse);                                    \
        } else {                                                                      \
            const CT *restrict yi = y + i * k;                                        \
            double ysum = 0, row = 0;                                                 \
            for (ptrdiff_t j = 0; j < k; j++) {                                       \
                const CT logp = (zi[j] - mx) - lse;                                   \
                ysum += (double)yi[j];                                                \
                row += (double)(yi[j] * logp);                                        \
            }                                                                         \
            for (ptrdiff_t j = 0; j < k; j++)                                         \
                gi[j] = (EXP((zi[j] - mx) - lse) * (CT)ysum - yi[j]) / m;             \
            total -= row;                                                             \
        }                                                                             \
    }                                                                                 \
    return total;                                                                     \
}                                                                                     \
static void fc_softmax_rows_##T(const CT *restrict z, CT *restrict out, ptrdiff_t rows, \
                                ptrdiff_t k)                                          \
{                                                                                     \
    for (ptrdiff_t i = 0; i < rows; i++) {                                            \
        CT *restrict oi = out + i * k;                                                \
        CT mx;                                                                        \
        const CT s = (CT)fc_row_exp_##T(z + i * k, k, &mx, oi);                       \
        for (ptrdiff_t j = 0; j < k; j++) oi[j] = oi[j] / s;                          \
    }                                                                                 \
}                                                                                     \
/* How many rows have their largest value at labels[i], with np.argmax's rule: the  \
 * first largest, and a NaN counts as largest (the first NaN). */                    \
static ptrdiff_t fc_argmax_hits_##T(const CT *restrict z, const ptrdiff_t *restrict labels, \
                                    ptrdiff_t rows, ptrdiff_t k)                      \
{                                                                                     \
    ptrdiff_t hits = 0;                                                               \
    for (ptrdiff_t i = 0; i < rows; i++) {                                            \
        const CT *restrict zi = z + i * k;                                            \
        ptrdiff_t best = 0;                                                           \
        if (zi[0] == zi[0]) {                                                         \
            for (ptrdiff_t j = 1; j < k; j++) {                                       \
                if (zi[j] != zi[j]) { best = j; break; }                              \
                if (zi[j] > zi[best]) best = j;                                       \
            }                                                                         \
        }                                                                             \
        hits += best == labels[i];                                                    \
    }                                                                                 \
    return hits;                                                                      \
}

FC_ROWS(f32, float, expf, logf)
FC_ROWS(f64, double, exp, log)

#endif
