/*
 * The direct convolution kernels of _direct.h, written once for both element types:
 * included twice from there, with FC_T (float or double), FC_V (its AVX vector),
 * FC_L (lanes per vector: 8 or 4), the FC_* intrinsic wrappers and FC_NAME (which
 * appends _f32 or _f64) defined for each. F must be a multiple of FC_L. The float
 * copy is the same code, instruction for instruction, as before it was shared.
 * No include guard: meant to be included more than once; it #undefs its parameters
 * at the end.
 */

/* One output row (n, oh): orow[ow, f0:f0+FC_L*NV] for every ow, two columns at a
 * time so that each weight vector loaded feeds two FMAs. Where both windows lie
 * inside the image (the common case) the taps are read through koff, the offset
 * of tap k = (ki*KW + kj)*C + c from the window's corner, with no checks; at the
 * borders each tap is checked against the padding. */
#define FC_FWD_BLOCK(NV) FC_FWD_BLOCK_FROM(NV, 0)
#define FC_FWD_BLOCK_FROM(NV, START)                                                \
    for (ptrdiff_t ow = (START); ow < OW; ow += 2) {                                \
        const int two = ow + 1 < OW;                                                \
        FC_V a0[NV], a1[NV];                                                      \
        for (int v = 0; v < NV; v++) {                                              \
            a0[v] = bias ? FC_LOADU(bias + f0 + FC_L * v) : FC_ZERO(); \
            a1[v] = a0[v];                                                          \
        }                                                                           \
        const ptrdiff_t j0 = ow * sw - pl;                                          \
        const FC_T *wf = w + f0;                                                   \
        if (rows_inside && j0 >= 0 && j0 + (two ? sw : 0) + max_dj < W) {          \
            /* (a last single window: the second column repeats it, unstored) */   \
            const FC_T *x0 = img + (i0 * W + j0) * C;                              \
            const FC_T *x1 = two ? x0 + sw * C : x0;                               \
            for (ptrdiff_t k = 0; k < K; k++) {                                     \
                const FC_V b0 = FC_SET1(x0[koff[k]]);                      \
                const FC_V b1 = FC_SET1(x1[koff[k]]);                      \
                for (int v = 0; v < NV; v++) {                                      \
                    FC_V wv = FC_LOADU(wf + k * F + FC_L * v);                \
                    FC_IN_REGISTER(wv);                                             \
                    a0[v] = FC_FMA(b0, wv, a0[v]);                         \
                    a1[v] = FC_FMA(b1, wv, a1[v]);                         \
                }                                                                   \
            }                                                                       \
        } else {                                                                    \
            ptrdiff_t c = 0;  /* k % C, counted */                                  \
            for (ptrdiff_t k = 0; k < K; k++, c = c + 1 == C ? 0 : c + 1) {         \
                /* taps in the padding multiply a zero (not skipped: a weight of   \
                 * Inf or NaN gives NaN there, as in the reference) */              \
                const ptrdiff_t ih = i0 + kdi[k];                                   \
                const ptrdiff_t iw0 = j0 + kdj[k], iw1 = iw0 + sw;                  \
                const int row = ih >= 0 && ih < H;                                  \
                const int ok0 = row && iw0 >= 0 && iw0 < W;                         \
                const int ok1 = row && two && iw1 >= 0 && iw1 < W;                  \
                const FC_V b0 = FC_SET1(ok0 ? img[(ih * W + iw0) * C + c] : (FC_T)0); \
                const FC_V b1 = FC_SET1(ok1 ? img[(ih * W + iw1) * C + c] : (FC_T)0); \
                for (int v = 0; v < NV; v++) {                                      \
                    const FC_V wv = FC_LOADU(wf + k * F + FC_L * v);          \
                    a0[v] = FC_FMA(b0, wv, a0[v]);                         \
                    a1[v] = FC_FMA(b1, wv, a1[v]);                         \
                }                                                                   \
            }                                                                       \
        }                                                                           \
        for (int v = 0; v < NV; v++) {                                              \
            if (relu) {                                                             \
                /* max(x, 0) with NaN kept: 0 where x <= 0, else x */               \
                const FC_V z = FC_ZERO();                               \
                a0[v] = FC_BLENDV(a0[v], z, FC_CMP(a0[v], z, _CMP_LE_OQ)); \
                a1[v] = FC_BLENDV(a1[v], z, FC_CMP(a1[v], z, _CMP_LE_OQ)); \
            }                                                                       \
            FC_STOREU(orow + ow * F + f0 + FC_L * v, a0[v]);                    \
            if (two) FC_STOREU(orow + (ow + 1) * F + f0 + FC_L * v, a1[v]);     \
        }                                                                           \
    }

#define FC_PARAMS_CONV_FWD_ROW \
    const FC_T *img, ptrdiff_t H, ptrdiff_t W, ptrdiff_t C,   /* IN  (H, W, C) */ \
    const FC_T *w,                                            /* IN  (KH, KW, C, F) */ \
    const FC_T *bias,                                         /* IN  (F,) or NULL */ \
    FC_T *orow,                                               /* OUT (OW, F) */ \
    ptrdiff_t oh, ptrdiff_t OW, ptrdiff_t F, ptrdiff_t K, \
    const ptrdiff_t *koff, const int *kdi, const int *kdj,     /* IN  (K,) per tap */ \
    int sh, int sw, int pt, int pl, int max_di, int max_dj, int relu
FC_AVX2 static inline __attribute__((always_inline))
void FC_NAME(fc_conv_fwd_row_impl)(FC_PARAMS_CONV_FWD_ROW)
{
    const ptrdiff_t i0 = oh * sh - pt;
    const int rows_inside = i0 >= 0 && i0 + max_di < H;
    ptrdiff_t f0 = 0;
    for (; f0 + 4 * FC_L <= F; f0 += 4 * FC_L) { FC_FWD_BLOCK(4) }
    for (; f0 < F; f0 += FC_L) { FC_FWD_BLOCK(1) }
}

/* Output rows [oh0, oh1) of one image, out (OH, OW, F), for a long reduction (the
 * middle layers, K >= FC_WIDE_MIN_K): six windows x two vectors of filters at a
 * time, twelve accumulators, so that each weight vector loaded feeds six FMAs. The
 * taps run as (ki, kj) then c, a tap's channels being contiguous in the image, so no
 * offset table is read in the inner loop; and in chunks of taps whose weights (for
 * the two vectors) fit in L1, each chunk over all the rows' windows before the next,
 * the partial sums kept in out between chunks (stored and reloaded exactly, so the
 * chunking does not change a bit). Windows not wholly inside the image, and the
 * last few of a row, go through the two-column code (fc_conv_fwd_row_impl's blocks).
 * Every output is the same sum, in the same order (bias, then k = 0 .. K-1), as
 * there. */
#define FC_W6_FMA(p)                                                                  \
    if (p < P) { const FC_V xb = FC_SET1(xt[c + p * step]);                           \
                 a##p##0 = FC_FMA(xb, w0, a##p##0); a##p##1 = FC_FMA(xb, w1, a##p##1); }
#define FC_W6_INIT(p)                                                                 \
    FC_V a##p##0 = z, a##p##1 = z;                                                    \
    if (p < P) { a##p##0 = first ? b0 : FC_LOADU(o0 + p * F);                         \
                 a##p##1 = first ? b1 : FC_LOADU(o0 + p * F + FC_L); }
#define FC_W6_STORE(p)                                                                \
    if (p < P) {                                                                      \
        if (relu && last) {                                                           \
            a##p##0 = FC_BLENDV(a##p##0, z, FC_CMP(a##p##0, z, _CMP_LE_OQ));          \
            a##p##1 = FC_BLENDV(a##p##1, z, FC_CMP(a##p##1, z, _CMP_LE_OQ));          \
        }                                                                             \
        FC_STOREU(o0 + p * F, a##p##0);                                               \
        FC_STOREU(o0 + p * F + FC_L, a##p##1);                                        \
    }
/* P (1-6, a literal after inlining) windows, the first one's corner at element `base`
 * of img (a signed index: the corner may lie in the padding; only in-image taps are
 * read), into o0, taps [t0, t1). */
FC_AVX2 static inline __attribute__((always_inline)) void FC_NAME(fc_fwd_wide_block)(
    const FC_T *img, ptrdiff_t base, const FC_T *w, FC_T *o0, ptrdiff_t F, ptrdiff_t C,
    ptrdiff_t step, const ptrdiff_t *koff, ptrdiff_t t0, ptrdiff_t t1, FC_V b0, FC_V b1,
    int first, int last, int relu, const int P)
{
    const FC_V z = FC_ZERO();
    FC_W6_INIT(0) FC_W6_INIT(1) FC_W6_INIT(2) FC_W6_INIT(3) FC_W6_INIT(4) FC_W6_INIT(5)
    for (ptrdiff_t t = t0; t < t1; t++) {
        const FC_T *xt = img + (base + koff[t * C]);
        const FC_T *wf = w + t * C * F;
        for (ptrdiff_t c = 0; c < C; c++, wf += F) {
            FC_V w0 = FC_LOADU(wf), w1 = FC_LOADU(wf + FC_L);
            FC_IN_REGISTER(w0);
            FC_IN_REGISTER(w1);
            FC_W6_FMA(0) FC_W6_FMA(1) FC_W6_FMA(2) FC_W6_FMA(3) FC_W6_FMA(4) FC_W6_FMA(5)
        }
    }
    FC_W6_STORE(0) FC_W6_STORE(1) FC_W6_STORE(2) FC_W6_STORE(3) FC_W6_STORE(4)
    FC_W6_STORE(5)
}
#undef FC_W6_FMA
#undef FC_W6_INIT
#undef FC_W6_STORE

/* Filters [f0, f0 + 2 FC_L) of fc_conv_fwd_rows_wide's blocked part on AVX2: the
 * loops of FC_WIDE_COLS_LOOPS (_direct.h) over fc_fwd_wide_block, tap chunks whose
 * weights (for the two vectors) fit in L1. */
FC_AVX2 static void FC_NAME(fc_fwd_wide_cols)(
    const FC_T *img, ptrdiff_t H, ptrdiff_t W, ptrdiff_t C, const FC_T *w,
    const FC_T *bias, FC_T *out, ptrdiff_t oh0, ptrdiff_t oh1, ptrdiff_t OW, ptrdiff_t F,
    ptrdiff_t taps, const ptrdiff_t *koff, const int *kdi, const int *kdj, int sh,
    int sw, int pt, int pl, int max_di, ptrdiff_t lo, ptrdiff_t hi, int relu, int skip,
    ptrdiff_t f0)
{
    const ptrdiff_t step = (ptrdiff_t)sw * C;
    ptrdiff_t chunk = (ptrdiff_t)(16384 / (C * 2 * FC_L * (ptrdiff_t)sizeof(FC_T)));
    if (chunk < 1) chunk = 1;
    const FC_V zero = FC_ZERO();
    const FC_V b0 = bias ? FC_LOADU(bias + f0) : zero;
    const FC_V b1 = bias ? FC_LOADU(bias + f0 + FC_L) : zero;
#define FC_W6_CALL(base, o, t0, t1, first, last, P)                                  \
    FC_NAME(fc_fwd_wide_block)(img, base, w + f0, o, F, C, step, koff, t0, t1, b0, b1,  \
                               first, last, relu, P)
    FC_WIDE_COLS_LOOPS(FC_W6_CALL)
#undef FC_W6_CALL
}

/* (Layout assumptions, which the callers meet: the taps of koff are ordered (ki, kj, c)
 * with a tap's C channels contiguous in the image, so koff[t * C] is tap t's first
 * channel; K = taps * C. The two-column code below bounds its columns by OW, which
 * is narrowed around it and restored.)
 *
 * With `skip`, taps in the padding are skipped instead of multiplied by zero: every
 * window, border rows included, takes the wide blocks on its taps inside the image,
 * and the result is the reference's only where the weights are finite (a padding zero
 * times Inf is NaN there; the Python wrapper checks). Then only the filters from
 * f_wide on go through the two-column code, which multiplies the zeros. */
FC_AVX2 static void FC_NAME(fc_conv_fwd_rows_wide)(
    const FC_T *img, ptrdiff_t H, ptrdiff_t W, ptrdiff_t C,   /* IN  (H, W, C) */
    const FC_T *w, const FC_T *bias,                          /* IN  (K, F), (F,)/NULL */
    FC_T *out,                                                /* OUT (OH, OW, F) */
    ptrdiff_t oh0, ptrdiff_t oh1, ptrdiff_t OW, ptrdiff_t F, ptrdiff_t K,
    const ptrdiff_t *koff, const int *kdi, const int *kdj,
    int sh, int sw, int pt, int pl, int max_di, int max_dj, int relu, int skip)
{
    ptrdiff_t lo = OW, hi = OW;  /* windows [lo, hi) lie inside the image's columns */
    if (W - 1 - max_dj + pl >= 0) {
        lo = (pl + sw - 1) / sw;
        hi = (W - 1 - max_dj + pl) / sw + 1;
        if (lo > OW) lo = OW;
        if (hi > OW) hi = OW;
        if (hi < lo) hi = lo;
    }
    const ptrdiff_t taps = K / C;
    ptrdiff_t f_wide = 0;
    if (fc_wide_avx512)  /* the same sums on 512-bit vectors: _wide512_tmpl.h */
        f_wide = FC_NAME(fc_fwd_wide512)(img, H, W, C, w, bias, out, oh0, oh1, OW, F, taps,
                                         koff, kdi, kdj, sh, sw, pt, pl, max_di, lo, hi,
                                         relu, skip);
    else for (; f_wide + 2 * FC_L <= F; f_wide += 2 * FC_L)
        FC_NAME(fc_fwd_wide_cols)(img, H, W, C, w, bias, out, oh0, oh1, OW, F, taps, koff,
                                  kdi, kdj, sh, sw, pt, pl, max_di, lo, hi, relu, skip,
                                  f_wide);
    /* the rest, two windows at a time: the filters from f_wide on; without skip, also
     * border rows whole and, in the other rows, the windows outside [lo, hi) */
    for (ptrdiff_t oh = oh0; oh < oh1; oh++) {
        const ptrdiff_t i0 = oh * sh - pt;
        const int rows_inside = i0 >= 0 && i0 + max_di < H;
        FC_T *orow = out + oh * OW * F;
        ptrdiff_t f0 = 0;
        if (skip) {
            f0 = f_wide;
        } else if (rows_inside) {
            for (; f0 < f_wide; f0 += 2 * FC_L) {
                const ptrdiff_t OWall = OW;
                OW = lo;
                FC_FWD_BLOCK_FROM(2, 0)
                OW = OWall;
                FC_FWD_BLOCK_FROM(2, hi)
            }
        }
        for (; f0 + 4 * FC_L <= F; f0 += 4 * FC_L) { FC_FWD_BLOCK(4) }
        for (; f0 < F; f0 += FC_L) { FC_FWD_BLOCK(1) }
    }
}

FC_AVX2 static void FC_NAME(fc_conv_fwd_row)(FC_PARAMS_CONV_FWD_ROW)
{
    FC_SPECIALISE(
        FC_NAME(fc_conv_fwd_row_impl)(img, H, W, 1, w, bias, orow, oh, OW, F, 9, koff, kdi,
            kdj, 1, 1, pt, pl, max_di, max_dj, relu),
        FC_NAME(fc_conv_fwd_row_impl)(img, H, W, 3, w, bias, orow, oh, OW, F, 27, koff, kdi,
            kdj, 1, 1, pt, pl, max_di, max_dj, relu),
        FC_NAME(fc_conv_fwd_row_impl)(img, H, W, C, w, bias, orow, oh, OW, F, K, koff, kdi,
            kdj, sh, sw, pt, pl, max_di, max_dj, relu))
}

/* Output rows [oh0, oh1) of one image into out (OH, OW, F): the wide blocks for a
 * long reduction, else row by row. */
FC_AVX2 static void FC_NAME(fc_conv_fwd_rows)(
    const FC_T *img, ptrdiff_t H, ptrdiff_t W, ptrdiff_t C, const FC_T *w,
    const FC_T *bias, FC_T *out, ptrdiff_t oh0, ptrdiff_t oh1, ptrdiff_t OW, ptrdiff_t F,
    ptrdiff_t K, const ptrdiff_t *koff, const int *kdi, const int *kdj,
    int sh, int sw, int pt, int pl, int max_di, int max_dj, int relu, int skip)
{
    if (K >= FC_WIDE_MIN_K && F >= 2 * FC_L) {
        FC_NAME(fc_conv_fwd_rows_wide)(img, H, W, C, w, bias, out, oh0, oh1, OW, F, K, koff,
                                       kdi, kdj, sh, sw, pt, pl, max_di, max_dj, relu, skip);
        return;
    }
    for (ptrdiff_t oh = oh0; oh < oh1; oh++)
        FC_NAME(fc_conv_fwd_row)(img, H, W, C, w, bias, out + oh * OW * F, oh, OW, F, K,
                                 koff, kdi, kdj, sh, sw, pt, pl, max_di, max_dj, relu);
}

/* Taps k0 .. k0+nk-1 (nk <= 3) x filters f0 .. f0+4*FC_L-1 of fc_conv_dw_rows. Inlined,
 * so that the caller's constant nk = 3 gives a copy without the nk tests. */
FC_AVX2 static inline __attribute__((always_inline)) void FC_NAME(fc_dw_block4v)(
    const FC_T *img, ptrdiff_t H, ptrdiff_t W, ptrdiff_t C, const FC_T *dout, FC_T *dw,
    ptrdiff_t r0, ptrdiff_t r1, ptrdiff_t OW, ptrdiff_t F, const ptrdiff_t *koff,
    const int *kdi, const int *kdj, int sh, int sw, int pt, int pl, int max_di, int max_dj,
    ptrdiff_t f0, ptrdiff_t k0, const int nk)
{
    const ptrdiff_t o0 = koff[k0], o1 = nk > 1 ? koff[k0 + 1] : 0;
    const ptrdiff_t o2 = nk > 2 ? koff[k0 + 2] : 0;
    FC_V acc[3][4];
    for (int k = 0; k < 3; k++)
        for (int v = 0; v < 4; v++) acc[k][v] = FC_ZERO();
/* acc[k] += x_k * dout vectors, for the taps k < nk */
#define FC_DW3(x0, x1, x2)                                                            \
    do {                                                                              \
        const FC_T *dp = dout + ((oh - r0) * OW + ow) * F + f0;                      \
        const FC_V d0 = FC_LOADU(dp), d1 = FC_LOADU(dp + FC_L);          \
        const FC_V d2 = FC_LOADU(dp + 2 * FC_L), d3 = FC_LOADU(dp + 3 * FC_L);    \
        const FC_T xs[3] = {(x0), (x1), (x2)};                                       \
        for (int k = 0; k < 3; k++) {  /* constant bound: unrolled */                 \
            if (k < nk) {                                                             \
                const FC_V b = FC_SET1(xs[k]);                               \
                acc[k][0] = FC_FMA(b, d0, acc[k][0]);                        \
                acc[k][1] = FC_FMA(b, d1, acc[k][1]);                        \
                acc[k][2] = FC_FMA(b, d2, acc[k][2]);                        \
                acc[k][3] = FC_FMA(b, d3, acc[k][3]);                        \
            }                                                                         \
        }                                                                             \
    } while (0)
    for (ptrdiff_t oh = r0; oh < r1; oh++) {
        const ptrdiff_t i0 = oh * sh - pt;
        /* Positions [lo, hi) have their whole window inside the image: a tight loop
         * over them with the tap offsets in registers; the rest check every tap. */
        ptrdiff_t lo = OW, hi = OW;
        if (i0 >= 0 && i0 + max_di < H && W - 1 - max_dj + pl >= 0) {
            lo = (pl + sw - 1) / sw;
            hi = (W - 1 - max_dj + pl) / sw + 1;
            if (lo > OW) lo = OW;
            if (hi > OW) hi = OW;
            if (hi < lo) hi = lo;
        }
        for (ptrdiff_t ow = lo; ow < hi; ow++) {
            const FC_T *src = img + (i0 * W + ow * sw - pl) * C;
            FC_DW3(src[o0], nk > 1 ? src[o1] : (FC_T)0, nk > 2 ? src[o2] : (FC_T)0);
        }
        for (ptrdiff_t ow = 0; ow < OW; ow++) {
            if (ow == lo) ow = hi;
            if (ow >= OW) break;
            const ptrdiff_t j0 = ow * sw - pl;
            FC_T xv[3] = {(FC_T)0, (FC_T)0, (FC_T)0};
            for (int k = 0; k < nk; k++) {
                const ptrdiff_t ih = i0 + kdi[k0 + k], iw = j0 + kdj[k0 + k];
                if (ih >= 0 && ih < H && iw >= 0 && iw < W)
                    xv[k] = img[(i0 * W + j0) * C + koff[k0 + k]];
            }
            FC_DW3(xv[0], xv[1], xv[2]);
        }
    }
#undef FC_DW3
    for (int k = 0; k < 3; k++) {
        if (k < nk) {
            for (int v = 0; v < 4; v++) {
                FC_T *dst = dw + (k0 + k) * F + f0 + FC_L * v;
                FC_STOREU(dst, FC_ADD(FC_LOADU(dst), acc[k][v]));
            }
        }
    }
}

/* Weight gradient over output rows [r0, r1) of one image, accumulated into
 * dw (K, F), K = KH*KW*C: dw[k, f] += x[window(p) + k] * dout[p, f], where dout
 * points at row r0 (so that it can be a small buffer of those rows only). Taps are
 * handled twelve at a time with one vector of f, so that the accumulators
 * stay in registers while the rows stream past. koff/kdi/kdj give each k's offset
 * in the image and its row/column displacement (for the padding checks). */
#define FC_PARAMS_CONV_DW_ROWS \
    const FC_T *img, ptrdiff_t H, ptrdiff_t W, ptrdiff_t C,   /* IN  (H, W, C) */ \
    const FC_T *dout,                                         /* IN  (r1 - r0, OW, F) */ \
    FC_T *dw,                                                 /* IN/OUT (K, F) */ \
    ptrdiff_t r0, ptrdiff_t r1, ptrdiff_t OW, ptrdiff_t F, ptrdiff_t K, \
    const ptrdiff_t *koff, const int *kdi, const int *kdj, \
    int sh, int sw, int pt, int pl, int max_di, int max_dj
FC_AVX2 static inline __attribute__((always_inline))
void FC_NAME(fc_conv_dw_rows_impl)(FC_PARAMS_CONV_DW_ROWS)
{
    ptrdiff_t f0 = 0;
    /* Four vectors of filters at a time: three taps x four vectors of accumulators, so each
     * position's dout vectors are loaded once per three taps and every broadcast
     * feeds four FMAs. Blocks of exactly three taps (all but a last partial one)
     * run on a copy compiled for that constant. */
    for (; f0 + 4 * FC_L <= F; f0 += 4 * FC_L) {
        for (ptrdiff_t k0 = 0; k0 < K; k0 += 3) {
            if (K - k0 >= 3)
                FC_NAME(fc_dw_block4v)(img, H, W, C, dout, dw, r0, r1, OW, F, koff, kdi, kdj,
                              sh, sw, pt, pl, max_di, max_dj, f0, k0, 3);
            else
                FC_NAME(fc_dw_block4v)(img, H, W, C, dout, dw, r0, r1, OW, F, koff, kdi, kdj,
                              sh, sw, pt, pl, max_di, max_dj, f0, k0, (int)(K - k0));
        }
    }
    for (; f0 < F; f0 += FC_L) {
        for (ptrdiff_t k0 = 0; k0 < K; k0 += 12) {
            const int nk = (int)(K - k0 < 12 ? K - k0 : 12);
            ptrdiff_t ko[12];
            FC_T xv[12];
            static const ptrdiff_t ident[12] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};
            for (int k = 0; k < 12; k++) ko[k] = k < nk ? koff[k0 + k] : 0;
            FC_V acc[12];
            for (int k = 0; k < 12; k++) acc[k] = FC_ZERO();  /* unrolled */
            for (ptrdiff_t oh = r0; oh < r1; oh++) {
                const ptrdiff_t i0 = oh * sh - pt;
                const int rows_inside = i0 >= 0 && i0 + max_di < H;
                for (ptrdiff_t ow = 0; ow < OW; ow++) {
                    const ptrdiff_t j0 = ow * sw - pl;
                    const FC_V d = FC_LOADU(dout + ((oh - r0) * OW + ow) * F + f0);
                    /* Interior: read the taps straight from the image through ko.
                     * Border: gather them (zero in the padding) into xv first. Either
                     * way the FMAs below index acc[] by constants, so it stays in
                     * registers. */
                    const FC_T *src = img + (i0 * W + j0) * C;
                    const ptrdiff_t *off = ko;
                    if (!(rows_inside && j0 >= 0 && j0 + max_dj < W)) {
                        for (int k = 0; k < nk; k++) {
                            const ptrdiff_t ih = i0 + kdi[k0 + k], iw = j0 + kdj[k0 + k];
                            xv[k] = (ih < 0 || ih >= H || iw < 0 || iw >= W)
                                    ? (FC_T)0 : img[(i0 * W + j0) * C + ko[k]];
                        }
                        src = xv;
                        off = ident;
                    }
#define FC_DW_TAP(k) acc[k] = FC_FMA(FC_SET1(src[off[k]]), d, acc[k])
                    switch (nk) {
                    case 12: FC_DW_TAP(11); /* fall through */
                    case 11: FC_DW_TAP(10); /* fall through */
                    case 10: FC_DW_TAP(9); /* fall through */
                    case 9: FC_DW_TAP(8); /* fall through */
                    case 8: FC_DW_TAP(7); /* fall through */
                    case 7: FC_DW_TAP(6); /* fall through */
                    case 6: FC_DW_TAP(5); /* fall through */
                    case 5: FC_DW_TAP(4); /* fall through */
                    case 4: FC_DW_TAP(3); /* fall through */
                    case 3: FC_DW_TAP(2); /* fall through */
                    case 2: FC_DW_TAP(1); /* fall through */
                    default: FC_DW_TAP(0);
                    }
#undef FC_DW_TAP
                }
            }
            for (int k = 0; k < 12; k++) {  /* constant bound: unrolled, acc[] in registers */
                if (k < nk) {
                    FC_T *dst = dw + (k0 + k) * F + f0;
                    FC_STOREU(dst, FC_ADD(FC_LOADU(dst), acc[k]));
                }
            }
        }
    }
}

/* Taps [k0, k0 + NK) x filters [f0, f0 + 2 FC_L) of the wide weight gradient, over
 * the output rows [q0, q1) (all inside [r0, r1)): dw += x[window + koff] * dout, the
 * NK x 2 accumulators loaded from dw and stored back (exactly: the sums run over the
 * positions in order whatever the blocking). NK is a literal after inlining. */
#define FC_DWW_ACC(j) FC_V c##j##0 = z, c##j##1 = z;                                  \
    if (j < NK) { c##j##0 = FC_LOADU(dw + (k0 + j) * F + f0);                          \
                  c##j##1 = FC_LOADU(dw + (k0 + j) * F + f0 + FC_L); }                 \
    const ptrdiff_t o##j = j < NK ? koff[k0 + j] : 0
#define FC_DWW_FMA(j)                                                                 \
    if (j < NK) { const FC_V xb = FC_SET1(src[o##j]);                                 \
                  c##j##0 = FC_FMA(xb, d0, c##j##0); c##j##1 = FC_FMA(xb, d1, c##j##1); }
#define FC_DWW_STORE(j)                                                               \
    if (j < NK) { FC_STOREU(dw + (k0 + j) * F + f0, c##j##0);                          \
                  FC_STOREU(dw + (k0 + j) * F + f0 + FC_L, c##j##1); }
FC_AVX2 static inline __attribute__((always_inline)) void FC_NAME(fc_dw_wide_block)(
    const FC_T *img, ptrdiff_t W, ptrdiff_t C, const FC_T *dout, FC_T *dw,
    ptrdiff_t r0, ptrdiff_t q0, ptrdiff_t q1, ptrdiff_t OW, ptrdiff_t F,
    const ptrdiff_t *koff, int sh, int sw, ptrdiff_t f0, ptrdiff_t k0, const int NK)
{
    const FC_V z = FC_ZERO();
    FC_DWW_ACC(0); FC_DWW_ACC(1); FC_DWW_ACC(2); FC_DWW_ACC(3); FC_DWW_ACC(4);
    FC_DWW_ACC(5);
    for (ptrdiff_t oh = q0; oh < q1; oh++) {
        const FC_T *xrow = img + oh * sh * W * C;
        const FC_T *drow = dout + (oh - r0) * OW * F + f0;
        for (ptrdiff_t ow = 0; ow < OW; ow++) {
            const FC_T *src = xrow + ow * sw * C;
            const FC_V d0 = FC_LOADU(drow + ow * F), d1 = FC_LOADU(drow + ow * F + FC_L);
            FC_DWW_FMA(0) FC_DWW_FMA(1) FC_DWW_FMA(2) FC_DWW_FMA(3) FC_DWW_FMA(4)
            FC_DWW_FMA(5)
        }
    }
    FC_DWW_STORE(0) FC_DWW_STORE(1) FC_DWW_STORE(2) FC_DWW_STORE(3) FC_DWW_STORE(4)
    FC_DWW_STORE(5)
}
#undef FC_DWW_ACC
#undef FC_DWW_FMA
#undef FC_DWW_STORE

/* The weight gradient of a long reduction without padding (every window inside the
 * image), accumulated into dw (K, F) over output rows [r0, r1) of one image: six
 * taps x two vectors of filters in registers while the positions stream past (each
 * dout vector loaded feeds six FMAs), the rows taken in runs whose dout block (two
 * vectors wide) fits in L1, so that it is read from there by all K / 6 tap blocks.
 * F a multiple of 2 FC_L. */
FC_AVX2 static void FC_NAME(fc_conv_dw_rows_wide)(FC_PARAMS_CONV_DW_ROWS)
{
    if (fc_wide_avx512) {  /* the same sums on 512-bit vectors: _wide512_tmpl.h */
        FC_NAME(fc_dw_wide512)(img, W, C, dout, dw, r0, r1, OW, F, K, koff, sh, sw);
        return;
    }
    ptrdiff_t run = (ptrdiff_t)(16384 / (OW * 2 * FC_L * (ptrdiff_t)sizeof(FC_T)));
    if (run < 1) run = 1;
    for (ptrdiff_t f0 = 0; f0 < F; f0 += 2 * FC_L) {
        for (ptrdiff_t q0 = r0; q0 < r1; q0 += run) {
            const ptrdiff_t q1 = q0 + run < r1 ? q0 + run : r1;
            ptrdiff_t k0 = 0;
            for (; k0 + 6 <= K; k0 += 6)
                FC_NAME(fc_dw_wide_block)(img, W, C, dout, dw, r0, q0, q1, OW, F, koff, sh,
                                          sw, f0, k0, 6);
#define FC_DWW_REST(NK) FC_NAME(fc_dw_wide_block)(img, W, C, dout, dw, r0, q0, q1, OW, F, \
                                                  koff, sh, sw, f0, k0, NK)
            switch (K - k0) {
            case 5: FC_DWW_REST(5); break;
            case 4: FC_DWW_REST(4); break;
            case 3: FC_DWW_REST(3); break;
            case 2: FC_DWW_REST(2); break;
            case 1: FC_DWW_REST(1); break;
            default: break;
            }
#undef FC_DWW_REST
        }
    }
}

FC_AVX2 static void FC_NAME(fc_conv_dw_rows)(FC_PARAMS_CONV_DW_ROWS)
{
    if (K >= FC_WIDE_MIN_K && F % (2 * FC_L) == 0 && pt == 0 && pl == 0 && OW > 0
            && max_di < H && max_dj < W && (r1 - 1) * sh + max_di < H
            && (OW - 1) * sw + max_dj < W) {
        /* (every window of these rows inside the image) */
        FC_NAME(fc_conv_dw_rows_wide)(img, H, W, C, dout, dw, r0, r1, OW, F, K, koff, kdi,
                                      kdj, sh, sw, pt, pl, max_di, max_dj);
        return;
    }
    FC_SPECIALISE(
        FC_NAME(fc_conv_dw_rows_impl)(img, H, W, 1, dout, dw, r0, r1, OW, F, 9, koff, kdi, kdj,
            1, 1, pt, pl, max_di, max_dj),
        FC_NAME(fc_conv_dw_rows_impl)(img, H, W, 3, dout, dw, r0, r1, OW, F, 27, koff, kdi,
            kdj, 1, 1, pt, pl, max_di, max_dj),
        FC_NAME(fc_conv_dw_rows_impl)(img, H, W, C, dout, dw, r0, r1, OW, F, K, koff, kdi, kdj,
            sh, sw, pt, pl, max_di, max_dj))
}

/* dx of input pixels (i, j..j+3), C = 1, F a multiple of 2 FC_L, stride 1, when every
 * tap is inside dout for all four pixels or for none (all but the quads at the
 * borders): each weight vector loaded feeds four FMAs (1.25 loads per FMA against 2
 * one pixel at a time; about 40% faster on layer a in float32). Returns 0, computing
 * nothing, for a border quad. */
FC_AVX2 static int FC_NAME(fc_dx_quad_c1)(
    const FC_T *dout, ptrdiff_t OH, ptrdiff_t OW, ptrdiff_t F, const FC_T *w,
    FC_T *dxrow, ptrdiff_t i, ptrdiff_t j, int KH, int KW, int dh, int dw, int pt, int pl)
{
    for (int kj = 0; kj < KW; kj++) {  /* all four inside or all outside, or refuse */
        const ptrdiff_t ow = j + pl - (ptrdiff_t)kj * dw;
        if ((ow < 0 || ow + 3 >= OW) && !(ow + 3 < 0 || ow >= OW)) return 0;
    }
    FC_V a0 = FC_ZERO(), a1 = a0, b0 = a0, b1 = a0, c0 = a0, c1 = a0, d0 = a0, d1 = a0;
    for (int ki = 0; ki < KH; ki++) {
        const ptrdiff_t oh = i + pt - (ptrdiff_t)ki * dh;
        if (oh < 0 || oh >= OH) continue;
        for (int kj = 0; kj < KW; kj++) {
            const ptrdiff_t ow = j + pl - (ptrdiff_t)kj * dw;
            if (ow < 0 || ow >= OW) continue;
            const FC_T *p = dout + (oh * OW + ow) * F;
            const FC_T *wp = w + (ptrdiff_t)(ki * KW + kj) * F;
            for (ptrdiff_t f = 0; f < F; f += 2 * FC_L) {
                FC_V wv = FC_LOADU(wp + f);
                a0 = FC_FMA(FC_LOADU(p + f), wv, a0);
                b0 = FC_FMA(FC_LOADU(p + F + f), wv, b0);
                c0 = FC_FMA(FC_LOADU(p + 2 * F + f), wv, c0);
                d0 = FC_FMA(FC_LOADU(p + 3 * F + f), wv, d0);
                wv = FC_LOADU(wp + f + FC_L);
                a1 = FC_FMA(FC_LOADU(p + f + FC_L), wv, a1);
                b1 = FC_FMA(FC_LOADU(p + F + f + FC_L), wv, b1);
                c1 = FC_FMA(FC_LOADU(p + 2 * F + f + FC_L), wv, c1);
                d1 = FC_FMA(FC_LOADU(p + 3 * F + f + FC_L), wv, d1);
            }
        }
    }
    dxrow[j] = FC_HSUM(FC_ADD(a0, a1));
    dxrow[j + 1] = FC_HSUM(FC_ADD(b0, b1));
    dxrow[j + 2] = FC_HSUM(FC_ADD(c0, c1));
    dxrow[j + 3] = FC_HSUM(FC_ADD(d0, d1));
    return 1;
}

/* Input gradient of a stride-1 convolution for one input row (n, i):
 * dxrow[j, c] = sum_{ki, kj, f} dout[i + pt - ki*dh, j + pl - kj*dw, f] * w[ki, kj, c, f]
 * over the taps that land inside dout; dot products over f (F a multiple of FC_L).
 * For few input channels, where the flipped-filter GEMM would have only C columns.
 * With F a multiple of 4 FC_L and
 * C <= 3, every channel is accumulated at once (3 x 4 vector accumulators), so
 * each dout vector loaded feeds C FMAs; otherwise one channel at a time with four
 * independent chains. */
#define FC_PARAMS_CONV_DX_ROW \
    const FC_T *dout, ptrdiff_t OH, ptrdiff_t OW, ptrdiff_t F,  /* IN  (OH, OW, F) */ \
    const FC_T *w,                                              /* IN  (KH, KW, C, F) */ \
    FC_T *dxrow,                                                /* OUT (W, C) */ \
    ptrdiff_t i, ptrdiff_t W, ptrdiff_t C, \
    int KH, int KW, int dh, int dw, int pt, int pl
FC_AVX2 static void FC_NAME(fc_conv_dx_row)(FC_PARAMS_CONV_DX_ROW)
{
    if (F % (4 * FC_L) == 0 && C <= 3) {
        for (ptrdiff_t j = 0; j < W; j++) {
            if (C == 1 && j + 3 < W
                    && FC_NAME(fc_dx_quad_c1)(dout, OH, OW, F, w, dxrow, i, j, KH, KW,
                                              dh, dw, pt, pl)) {
                j += 3;  /* four pixels done */
                continue;
            }
            FC_V acc[3][4];
            for (int c = 0; c < 3; c++)
                for (int v = 0; v < 4; v++) acc[c][v] = FC_ZERO();
            for (int ki = 0; ki < KH; ki++) {
                const ptrdiff_t oh = i + pt - (ptrdiff_t)ki * dh;
                if (oh < 0 || oh >= OH) continue;
                for (int kj = 0; kj < KW; kj++) {
                    const ptrdiff_t ow = j + pl - (ptrdiff_t)kj * dw;
                    if (ow < 0 || ow >= OW) continue;
                    const FC_T *d = dout + (oh * OW + ow) * F;
                    const FC_T *wp = w + (ptrdiff_t)(ki * KW + kj) * C * F;
                    for (ptrdiff_t f = 0; f < F; f += 4 * FC_L) {
                        const FC_V d0 = FC_LOADU(d + f), d1 = FC_LOADU(d + f + FC_L);
                        const FC_V d2 = FC_LOADU(d + f + 2 * FC_L);
                        const FC_V d3 = FC_LOADU(d + f + 3 * FC_L);
                        for (int c = 0; c < 3; c++) {  /* constant bound: unrolled */
                            if (c < C) {
                                const FC_T *q = wp + c * F + f;
                                acc[c][0] = FC_FMA(d0, FC_LOADU(q), acc[c][0]);
                                acc[c][1] = FC_FMA(d1, FC_LOADU(q + FC_L), acc[c][1]);
                                acc[c][2] = FC_FMA(d2, FC_LOADU(q + 2 * FC_L), acc[c][2]);
                                acc[c][3] = FC_FMA(d3, FC_LOADU(q + 3 * FC_L), acc[c][3]);
                            }
                        }
                    }
                }
            }
            for (int c = 0; c < 3; c++) {
                if (c < C)
                    dxrow[j * C + c] = FC_HSUM(FC_ADD(
                        FC_ADD(acc[c][0], acc[c][1]), FC_ADD(acc[c][2], acc[c][3])));
            }
        }
        return;
    }
    for (ptrdiff_t j = 0; j < W; j++) {
        for (ptrdiff_t c = 0; c < C; c++) {
            /* four independent chains, so FMA latency does not serialise the sum */
            FC_V acc0 = FC_ZERO(), acc1 = acc0, acc2 = acc0, acc3 = acc0;
            for (int ki = 0; ki < KH; ki++) {
                const ptrdiff_t oh = i + pt - (ptrdiff_t)ki * dh;
                if (oh < 0 || oh >= OH) continue;
                for (int kj = 0; kj < KW; kj++) {
                    const ptrdiff_t ow = j + pl - (ptrdiff_t)kj * dw;
                    if (ow < 0 || ow >= OW) continue;
                    const FC_T *d = dout + (oh * OW + ow) * F;
                    const FC_T *wp = w + ((ptrdiff_t)(ki * KW + kj) * C + c) * F;
                    ptrdiff_t f = 0;
                    for (; f + 4 * FC_L <= F; f += 4 * FC_L) {
                        acc0 = FC_FMA(FC_LOADU(d + f), FC_LOADU(wp + f), acc0);
                        acc1 = FC_FMA(FC_LOADU(d + f + FC_L), FC_LOADU(wp + f + FC_L), acc1);
                        acc2 = FC_FMA(FC_LOADU(d + f + 2 * FC_L), FC_LOADU(wp + f + 2 * FC_L), acc2);
                        acc3 = FC_FMA(FC_LOADU(d + f + 3 * FC_L), FC_LOADU(wp + f + 3 * FC_L), acc3);
                    }
                    for (; f < F; f += FC_L)
                        acc0 = FC_FMA(FC_LOADU(d + f), FC_LOADU(wp + f), acc0);
                }
            }
            dxrow[j * C + c] = FC_HSUM(FC_ADD(FC_ADD(acc0, acc1),
                                                        FC_ADD(acc2, acc3)));
        }
    }
}

#undef FC_FWD_BLOCK
#undef FC_FWD_BLOCK_FROM
#undef FC_PARAMS_CONV_FWD_ROW
#undef FC_PARAMS_CONV_DW_ROWS
#undef FC_PARAMS_CONV_DX_ROW
/* the parameters too, so that the next inclusion defines them afresh */
#undef FC_T
#undef FC_V
#undef FC_L
#undef FC_LOADU
#undef FC_STOREU
#undef FC_SET1
#undef FC_ZERO
#undef FC_FMA
#undef FC_ADD
#undef FC_BLENDV
#undef FC_CMP
#undef FC_HSUM
#undef FC_NAME
