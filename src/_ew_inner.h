/*
 * Inner loops of the element-wise kernels, on plain restrict pointers so that the
 * compiler vectorises them (Cython's prange bodies, indexed through memoryview
 * structs, are not). Each loop is compiled twice: for the baseline ISA and, on x86
 * with GCC or clang, for AVX2 (picked at run time by fc_ew_use_avx2). The AVX2 copy
 * is compiled without FMA, so no multiply-add is contracted and both copies give
 * the same bits as the NumPy expressions they replace.
 *
 * Semantics: relu_fwd keeps NaN (x <= 0 is false for NaN); bias_act adds a bias row
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

#define FC_EW_LOOPS(SUFFIX, ATTR, T)                                                  \
ATTR static void fc_relu_fwd_##SUFFIX(const T *restrict x, T *restrict out, ptrdiff_t n) \
{                                                                                     \
    for (ptrdiff_t i = 0; i < n; i++) out[i] = x[i] <= 0 ? (T)0 : x[i];               \
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
}

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
static void fc_adam_##T(CT *p, const CT *g, CT *m, CT *v, ptrdiff_t n, CT c1, CT c2,  \
                        CT eps, CT a)                                                 \
{ FC_EW_PICK(fc_adam, T, p, g, m, v, n, c1, c2, eps, a); }

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
