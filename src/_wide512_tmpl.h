/*
 * The middle layers' wide blocks (see fc_conv_fwd_rows_wide and fc_conv_dw_rows_wide
 * in _direct_tmpl.h) for AVX-512: 32 vector registers of FC_WL lanes (16 floats or
 * 8 doubles), so that one block holds six windows (or taps) x up to four vectors of
 * filters, 24 accumulators, and a 64-filter layer runs as one block wide instead of
 * four.
 *
 * Every output is the same sum, in the same order, as the AVX2 blocks compute:
 * bias, then tap k = 0 .. K-1 for the forward; positions in order for dw; one FMA per
 * term, lane by lane. So the results are bit for bit those of the AVX2 code (a test
 * compares them), and do not depend on which of the two runs.
 *
 * Included from _direct.h once per element type, with FC_T, FC_WV (the 512-bit
 * vector), FC_WL, the FC_W* intrinsic wrappers and FC_NAME defined. No include guard;
 * it #undefs its parameters at the end.
 */

/* The forward's tap chunks and the weight gradient's row runs are sized to this
 * (their weights, their dout block) where the AVX2 code sizes them to 16 KB, half an
 * L1: with 512-bit blocks no chunking was fastest (f's forward 73 -> 66-70 ms, its
 * dw 80 -> 74 ms, b and d 3-8%, one run each on Zen 4); the bound keeps a huge layer's
 * block within L2. */
#ifndef FC_WIDE512_BLOCK_BYTES
#define FC_WIDE512_BLOCK_BYTES 262144
#endif

/* the accumulator a<p><v> / c<j><v> grid, six rows of four */
#define FC_X4(M, p) M(p, 0) M(p, 1) M(p, 2) M(p, 3)
#define FC_X6x4(M) FC_X4(M, 0) FC_X4(M, 1) FC_X4(M, 2) FC_X4(M, 3) FC_X4(M, 4) FC_X4(M, 5)

/* P windows (1-6) x NV vectors of filters (1, 2 or 4), both literals after inlining,
 * the first window's corner at element `base` of img (a signed index: the corner may
 * lie in the padding; only in-image taps are read), into o0 for taps [t0, t1): as
 * fc_fwd_wide_block. b holds the bias vectors (zeros without bias). */
#define FC_WF_INIT(p, v)                                                              \
    FC_WV a##p##v = z;                                                                \
    if (p < P && v < NV) a##p##v = first ? b[v] : FC_WLOADU(o0 + p * F + v * FC_WL);
#define FC_WF_FMA(p, v) if (v < NV) a##p##v = FC_WFMA(xb, w##v, a##p##v);
/* one broadcast at a time, feeding its NV FMAs (all six loaded first spill) */
#define FC_WF_WINDOW(p)                                                               \
    if (p < P) { const FC_WV xb = FC_WSET1(xt[c + p * step]); FC_X4(FC_WF_FMA, p) }
#define FC_WF_STORE(p, v)                                                             \
    if (p < P && v < NV) {                                                            \
        if (relu && last) a##p##v = FC_WRELU(a##p##v, z);                             \
        FC_WSTOREU(o0 + p * F + v * FC_WL, a##p##v);                                  \
    }
#define FC_WF_WLOAD(v)                                                                \
    FC_WV w##v = z;                                                                   \
    if (v < NV) { w##v = FC_WLOADU(wf + v * FC_WL); FC_IN_ZMM(w##v); }
FC_AVX512 static inline __attribute__((always_inline)) void FC_NAME(fc_fwd_wide512_block)(
    const FC_T *img, ptrdiff_t base, const FC_T *w, FC_T *o0, ptrdiff_t F, ptrdiff_t C,
    ptrdiff_t step, const ptrdiff_t *koff, ptrdiff_t t0, ptrdiff_t t1, const FC_WV *b,
    int first, int last, int relu, const int P, const int NV)
{
    const FC_WV z = FC_WZERO();
    FC_X6x4(FC_WF_INIT)
    for (ptrdiff_t t = t0; t < t1; t++) {
        const FC_T *xt = img + (base + koff[t * C]);
        const FC_T *wf = w + t * C * F;
        for (ptrdiff_t c = 0; c < C; c++, wf += F) {
            FC_WF_WLOAD(0) FC_WF_WLOAD(1) FC_WF_WLOAD(2) FC_WF_WLOAD(3)
            FC_WF_WINDOW(0) FC_WF_WINDOW(1) FC_WF_WINDOW(2)
            FC_WF_WINDOW(3) FC_WF_WINDOW(4) FC_WF_WINDOW(5)
        }
    }
    FC_X6x4(FC_WF_STORE)
}
#undef FC_WF_INIT
#undef FC_WF_FMA
#undef FC_WF_WINDOW
#undef FC_WF_STORE
#undef FC_WF_WLOAD

/* Filters [f0, f0 + NV*FC_WL) of fc_conv_fwd_rows_wide's blocked part: the loops of
 * FC_WIDE_COLS_LOOPS (_direct.h) over fc_fwd_wide512_block, tap chunks whose weights
 * fit in L1. */
FC_AVX512 static inline __attribute__((always_inline)) void FC_NAME(fc_fwd_wide512_cols)(
    const FC_T *img, ptrdiff_t H, ptrdiff_t W, ptrdiff_t C, const FC_T *w,
    const FC_T *bias, FC_T *out, ptrdiff_t oh0, ptrdiff_t oh1, ptrdiff_t OW, ptrdiff_t F,
    ptrdiff_t taps, const ptrdiff_t *koff, const int *kdi, const int *kdj, int sh,
    int sw, int pt, int pl, int max_di, ptrdiff_t lo, ptrdiff_t hi, int relu, int skip,
    ptrdiff_t f0, const int NV)
{
    const ptrdiff_t step = (ptrdiff_t)sw * C;
    ptrdiff_t chunk = (ptrdiff_t)(FC_WIDE512_BLOCK_BYTES
                                  / (C * NV * FC_WL * (ptrdiff_t)sizeof(FC_T)));
    if (chunk < 1) chunk = 1;
    FC_WV b[4];
    for (int v = 0; v < 4; v++)
        b[v] = bias && v < NV ? FC_WLOADU(bias + f0 + v * FC_WL) : FC_WZERO();
#define FC_WF_CALL(base, o, t0, t1, first, last, P)                                  \
    FC_NAME(fc_fwd_wide512_block)(img, base, w + f0, o, F, C, step, koff, t0, t1, b,    \
                                  first, last, relu, P, NV)
    FC_WIDE_COLS_LOOPS(FC_WF_CALL)
#undef FC_WF_CALL
}

/* The blocked part of fc_conv_fwd_rows_wide on AVX-512: filters [0, f_wide), four
 * vectors of filters at a time, then two, then one; returns f_wide (F rounded down to
 * a multiple of FC_WL), the caller doing the rest. */
FC_AVX512 static ptrdiff_t FC_NAME(fc_fwd_wide512)(
    const FC_T *img, ptrdiff_t H, ptrdiff_t W, ptrdiff_t C,   /* IN  (H, W, C) */
    const FC_T *w, const FC_T *bias,                          /* IN  (K, F), (F,)/NULL */
    FC_T *out,                                                /* OUT (OH, OW, F) */
    ptrdiff_t oh0, ptrdiff_t oh1, ptrdiff_t OW, ptrdiff_t F, ptrdiff_t taps,
    const ptrdiff_t *koff, const int *kdi, const int *kdj, int sh, int sw, int pt,
    int pl, int max_di, ptrdiff_t lo, ptrdiff_t hi, int relu, int skip)
{
    ptrdiff_t f0 = 0;
#define FC_WF_COLS(NV) FC_NAME(fc_fwd_wide512_cols)(img, H, W, C, w, bias, out, oh0, oh1, \
                           OW, F, taps, koff, kdi, kdj, sh, sw, pt, pl, max_di, lo, hi,   \
                           relu, skip, f0, NV)
    for (; f0 + 4 * FC_WL <= F; f0 += 4 * FC_WL) FC_WF_COLS(4);
    for (; f0 + 2 * FC_WL <= F; f0 += 2 * FC_WL) FC_WF_COLS(2);
    for (; f0 + FC_WL <= F; f0 += FC_WL) FC_WF_COLS(1);
#undef FC_WF_COLS
    return f0;
}

/* Taps [k0, k0 + NK) (NK 1-6) x filters [f0, f0 + NV*FC_WL) (NV 1, 2 or 4) of the
 * weight gradient over output rows [q0, q1): as fc_dw_wide_block. */
#define FC_WD_ACC(j, v)                                                               \
    FC_WV c##j##v = z;                                                                \
    if (j < NK && v < NV) c##j##v = FC_WLOADU(dw + (k0 + j) * F + f0 + v * FC_WL);
#define FC_WD_OFF(j) const ptrdiff_t o##j = j < NK ? koff[k0 + j] : 0;
#define FC_WD_DLOAD(v) FC_WV d##v = z; if (v < NV) d##v = FC_WLOADU(dp + v * FC_WL);
#define FC_WD_FMA(j, v) if (v < NV) c##j##v = FC_WFMA(xb, d##v, c##j##v);
#define FC_WD_TAP(j) if (j < NK) { const FC_WV xb = FC_WSET1(src[o##j]); FC_X4(FC_WD_FMA, j) }
#define FC_WD_STORE(j, v)                                                             \
    if (j < NK && v < NV) FC_WSTOREU(dw + (k0 + j) * F + f0 + v * FC_WL, c##j##v);
FC_AVX512 static inline __attribute__((always_inline)) void FC_NAME(fc_dw_wide512_block)(
    const FC_T *img, ptrdiff_t W, ptrdiff_t C, const FC_T *dout, FC_T *dw,
    ptrdiff_t r0, ptrdiff_t q0, ptrdiff_t q1, ptrdiff_t OW, ptrdiff_t F,
    const ptrdiff_t *koff, int sh, int sw, ptrdiff_t f0, ptrdiff_t k0, const int NK,
    const int NV)
{
    const FC_WV z = FC_WZERO();
    FC_X6x4(FC_WD_ACC)
    FC_WD_OFF(0) FC_WD_OFF(1) FC_WD_OFF(2) FC_WD_OFF(3) FC_WD_OFF(4) FC_WD_OFF(5)
    for (ptrdiff_t oh = q0; oh < q1; oh++) {
        const FC_T *xrow = img + oh * sh * W * C;
        const FC_T *drow = dout + (oh - r0) * OW * F + f0;
        for (ptrdiff_t ow = 0; ow < OW; ow++) {
            const FC_T *src = xrow + ow * sw * C, *dp = drow + ow * F;
            FC_WD_DLOAD(0) FC_WD_DLOAD(1) FC_WD_DLOAD(2) FC_WD_DLOAD(3)
            FC_WD_TAP(0) FC_WD_TAP(1) FC_WD_TAP(2) FC_WD_TAP(3) FC_WD_TAP(4) FC_WD_TAP(5)
        }
    }
    FC_X6x4(FC_WD_STORE)
}
#undef FC_WD_ACC
#undef FC_WD_OFF
#undef FC_WD_DLOAD
#undef FC_WD_TAP
#undef FC_WD_FMA
#undef FC_WD_STORE

/* Filters [f0, f0 + NV*FC_WL) of fc_conv_dw_rows_wide's loop: rows in runs whose
 * dout block fits in L1, six taps at a time. */
FC_AVX512 static inline __attribute__((always_inline)) void FC_NAME(fc_dw_wide512_cols)(
    const FC_T *img, ptrdiff_t W, ptrdiff_t C, const FC_T *dout, FC_T *dw,
    ptrdiff_t r0, ptrdiff_t r1, ptrdiff_t OW, ptrdiff_t F, ptrdiff_t K,
    const ptrdiff_t *koff, int sh, int sw, ptrdiff_t f0, const int NV)
{
    ptrdiff_t run = (ptrdiff_t)(FC_WIDE512_BLOCK_BYTES
                                / (OW * NV * FC_WL * (ptrdiff_t)sizeof(FC_T)));
    if (run < 1) run = 1;
    for (ptrdiff_t q0 = r0; q0 < r1; q0 += run) {
        const ptrdiff_t q1 = q0 + run < r1 ? q0 + run : r1;
        ptrdiff_t k0 = 0;
#define FC_WD_CALL(NK) FC_NAME(fc_dw_wide512_block)(img, W, C, dout, dw, r0, q0, q1, OW, \
                                                    F, koff, sh, sw, f0, k0, NK, NV)
        for (; k0 + 6 <= K; k0 += 6) FC_WD_CALL(6);
        switch (K - k0) {
        case 5: FC_WD_CALL(5); break;
        case 4: FC_WD_CALL(4); break;
        case 3: FC_WD_CALL(3); break;
        case 2: FC_WD_CALL(2); break;
        case 1: FC_WD_CALL(1); break;
        default: break;
        }
#undef FC_WD_CALL
    }
}

/* fc_conv_dw_rows_wide on AVX-512 (F a multiple of FC_WL): four vectors of filters at
 * a time, then two, then one. */
FC_AVX512 static void FC_NAME(fc_dw_wide512)(
    const FC_T *img, ptrdiff_t W, ptrdiff_t C,   /* IN  (H, W, C), every window inside */
    const FC_T *dout,                            /* IN  (r1 - r0, OW, F) */
    FC_T *dw,                                    /* IN/OUT (K, F) */
    ptrdiff_t r0, ptrdiff_t r1, ptrdiff_t OW, ptrdiff_t F, ptrdiff_t K,
    const ptrdiff_t *koff, int sh, int sw)
{
    ptrdiff_t f0 = 0;
#define FC_WD_COLS(NV) FC_NAME(fc_dw_wide512_cols)(img, W, C, dout, dw, r0, r1, OW, F, K, \
                                                   koff, sh, sw, f0, NV)
    for (; f0 + 4 * FC_WL <= F; f0 += 4 * FC_WL) FC_WD_COLS(4);
    for (; f0 + 2 * FC_WL <= F; f0 += 2 * FC_WL) FC_WD_COLS(2);
    for (; f0 + FC_WL <= F; f0 += FC_WL) FC_WD_COLS(1);
#undef FC_WD_COLS
}

#undef FC_X4
#undef FC_X6x4
#undef FC_T
#undef FC_WV
#undef FC_WL
#undef FC_WLOADU
#undef FC_WSTOREU
#undef FC_WSET1
#undef FC_WZERO
#undef FC_WFMA
#undef FC_WRELU
#undef FC_NAME
