/*
 * One copy of the course-layout kernels, convolution and spatial batch normalisation
 * (_nchw.h includes this file once per instruction set and dtype). The includer
 * defines:
 *
 *   FC_T            float or double
 *   FC_V, FC_L      the vector type and its lanes
 *   FC_M            the lane-mask type; FC_MASK(r) the mask of the first r lanes
 *   FC_LOADU, FC_STOREU, FC_SET1, FC_ZERO, FC_FMA
 *   FC_LOADM(p, m)  load of the lanes in m (the others 0, nothing read past them)
 *   FC_STOREM(p, m, v)  store of the lanes in m
 *   FC_V4, FC_M4, FC_MASK4(r), FC_LOADM4(p, m), FC_STOREU4  the same for 4
 *                   lanes (AVX2's, for both instruction sets): short window rows
 *   FC_EVENS(a, b)  the even-indexed lanes of the concatenation [a, b]
 *   FC_ADD; FC_SPREAD(s, lo)  the first (lo) or second half of s's lanes, each
 *                   followed by a zero (FC_EVENS's inverse, a half at a time)
 *   FC_LOAD8(&v, p) 8 consecutive values as a vector of 8 doubles (fc_v8d)
 *   FC_MR, FC_NR    the register block: FC_MR rows x FC_NR vectors of columns
 *   FC_TARGET       the target attribute (instruction set) of these functions
 *   FC_NAME(f)      the name of f in this copy
 *
 * and this file #undefs them at its end.
 */

/* The register block of fc_nchw_gemm: rows [0, MRc) of C, columns [0, NVc * L) plus,
 * with TAIL, the lanes of mask m of the next vector. Every C element is its start
 * value (C itself with acc, else bias[i], else 0) followed by one FMA per k in
 * k order: the result does not depend on the block's shape or the instruction set.
 * Called with literal MRc, NVc and TAIL, so that the loops unroll and c[][] lives in
 * registers. */
static inline __attribute__((always_inline)) FC_TARGET void FC_NAME(fc_nchw_block)(
    const int MRc, const int NVc, const int TAIL, ptrdiff_t Kr,
    const FC_T *A, ptrdiff_t ars, ptrdiff_t acs,   /* IN  A[i * ars + k * acs] */
    const FC_T *B, ptrdiff_t ldb,                  /* IN  B[k * ldb + j] */
    FC_T *Cp, ptrdiff_t ldc,                       /* IN/OUT C[i * ldc + j] */
    const FC_T *bias, int acc, FC_M m)
{
    FC_V c[FC_MR][FC_NR + 1];
    FC_V bv[FC_NR + 1];
    for (int i = 0; i < MRc; i++)
        for (int j = 0; j < NVc + TAIL; j++) {
            if (acc)
                c[i][j] = j < NVc ? FC_LOADU(Cp + i * ldc + j * FC_L)
                                  : FC_LOADM(Cp + i * ldc + j * FC_L, m);
            else
                c[i][j] = bias ? FC_SET1(bias[i]) : FC_ZERO();
        }
    for (ptrdiff_t k = 0; k < Kr; k++) {
        const FC_T *b = B + k * ldb;
        for (int j = 0; j < NVc; j++) bv[j] = FC_LOADU(b + j * FC_L);
        if (TAIL) bv[NVc] = FC_LOADM(b + NVc * FC_L, m);
        for (int i = 0; i < MRc; i++) {
            FC_V a = FC_SET1(A[i * ars + k * acs]);
            for (int j = 0; j < NVc + TAIL; j++) c[i][j] = FC_FMA(a, bv[j], c[i][j]);
        }
    }
    for (int i = 0; i < MRc; i++) {
        for (int j = 0; j < NVc; j++) FC_STOREU(Cp + i * ldc + j * FC_L, c[i][j]);
        if (TAIL) FC_STOREM(Cp + i * ldc + NVc * FC_L, m, c[i][NVc]);
    }
}

/* One row count's cases of the block: a full panel, or nv < FC_NR full vectors and,
 * with tail, a masked one (FC_NR is 3 or 4). */
#if FC_NR > 3
#define FC_NCHW_COLS_3(MRc)                                                           \
    case 6: FC_NAME(fc_nchw_block)(MRc, 3, 0, ARGS); break;                           \
    case 7: FC_NAME(fc_nchw_block)(MRc, 3, 1, ARGS); break;
#else
#define FC_NCHW_COLS_3(MRc)
#endif
#define FC_NCHW_COLS(MRc)                                                             \
    if (nv == FC_NR) FC_NAME(fc_nchw_block)(MRc, FC_NR, 0, ARGS);                     \
    else switch (nv * 2 + tail) {                                                     \
    case 1: FC_NAME(fc_nchw_block)(MRc, 0, 1, ARGS); break;                           \
    case 2: FC_NAME(fc_nchw_block)(MRc, 1, 0, ARGS); break;                           \
    case 3: FC_NAME(fc_nchw_block)(MRc, 1, 1, ARGS); break;                           \
    case 4: FC_NAME(fc_nchw_block)(MRc, 2, 0, ARGS); break;                           \
    case 5: FC_NAME(fc_nchw_block)(MRc, 2, 1, ARGS); break;                           \
    FC_NCHW_COLS_3(MRc)                                                               \
    default: break;                                                                   \
    }

/* C (M, Ncol) = start + A (M, Kr) @ B (Kr, Ncol), start as in fc_nchw_block.
 * A is read through strides (ars, acs), so that A may be a transposed matrix; B and
 * C are row-major with leading dimensions ldb and ldc. The columns are taken in
 * panels of FC_NR vectors (a panel of B stays in L1 while every row block uses it)
 * and the rows in blocks of at most FC_MR, of near-equal sizes. Nothing is read or
 * written outside the rows and columns given. */
static FC_TARGET void FC_NAME(fc_nchw_gemm)(
    ptrdiff_t M, ptrdiff_t Ncol, ptrdiff_t Kr,
    const FC_T *A, ptrdiff_t ars, ptrdiff_t acs, const FC_T *B, ptrdiff_t ldb,
    FC_T *C, ptrdiff_t ldc, const FC_T *bias, int acc)
{
    ptrdiff_t nb = (M + FC_MR - 1) / FC_MR;
    for (ptrdiff_t j0 = 0; j0 < Ncol; j0 += FC_NR * FC_L) {
        ptrdiff_t rem = Ncol - j0;
        int nv = rem >= FC_NR * FC_L ? FC_NR : (int)(rem / FC_L);
        int tail = rem < FC_NR * FC_L && rem % FC_L != 0;
        FC_M m = FC_MASK(tail ? (int)(rem % FC_L) : FC_L);
        for (ptrdiff_t ib = 0; ib < nb; ib++) {
            ptrdiff_t i0 = ib * M / nb, i1 = (ib + 1) * M / nb;
#define ARGS Kr, A + i0 * ars, ars, acs, B + j0, ldb, C + i0 * ldc + j0, ldc, \
             bias ? bias + i0 : NULL, acc, m
            switch (i1 - i0) {
            case 1: FC_NCHW_COLS(1) break;
            case 2: FC_NCHW_COLS(2) break;
            case 3: FC_NCHW_COLS(3) break;
            case 4: FC_NCHW_COLS(4) break;
#if FC_MR > 4
            case 5: FC_NCHW_COLS(5) break;
            case 6: FC_NCHW_COLS(6) break;
#endif
            default: break;
            }
#undef ARGS
        }
    }
}
#undef FC_NCHW_COLS
#undef FC_NCHW_COLS_3

/* d[i * sp] = row[i * sw] for i < n. The forward's rows (sp = 1) at strides 1 and 2
 * go by whole vectors (stride 2: the even lanes of two), the last one masked, so
 * that nothing is read past row[(n - 1) * sw] or written past d[n - 1]. */
static inline FC_TARGET void FC_NAME(fc_nchw_copy)(FC_T *d, ptrdiff_t sp, const FC_T *row,
                                                   int sw, ptrdiff_t n)
{
    ptrdiff_t i = 0;
    if (sp == 1 && sw == 1) {
        for (; i + FC_L <= n; i += FC_L) FC_STOREU(d + i, FC_LOADU(row + i));
        if (i < n) {
            FC_M m = FC_MASK((int)(n - i));
            FC_STOREM(d + i, m, FC_LOADM(row + i, m));
        }
    } else if (sp == 1 && sw == 2) {
        for (; i + FC_L < n; i += FC_L)  /* inputs 2i .. 2i + 2L - 1, before 2n - 2 */
            FC_STOREU(d + i, FC_EVENS(FC_LOADU(row + 2 * i), FC_LOADU(row + 2 * i + FC_L)));
        if (i < n) {
            int span = (int)(2 * (n - i) - 1);  /* inputs 2i .. 2n - 2 */
            FC_V a = FC_LOADM(row + 2 * i, FC_MASK(span < FC_L ? span : FC_L));
            FC_V b = FC_LOADM(row + 2 * i + FC_L, FC_MASK(span > FC_L ? span - FC_L : 0));
            FC_STOREM(d + i, FC_MASK((int)(n - i)), FC_EVENS(a, b));
        }
    } else {
        for (; i < n; i++) d[i * sp] = row[i * sw];
    }
}

/* The receptive fields of output positions [p0, p1) of one image:
 * cols[k * sk + (p - p0) * sp] = x[c, oh * sh + kh - pt, ow * sw + kw - pl], 0 where
 * that falls outside the image, for k = (c * HH + kh) * WW + kw and p = oh * OW + ow.
 * x is one image (C, H, W). sp = 1 gives the forward's (K, p1 - p0) rows (sk =
 * p1 - p0); other strides give other layouts. Positions are walked as runs along
 * output rows. */
static FC_TARGET void FC_NAME(fc_nchw_im2col)(
    const FC_T *x, ptrdiff_t C, ptrdiff_t H, ptrdiff_t W, int HH, int WW,
    int sh, int sw, int pt, int pl, ptrdiff_t OW, ptrdiff_t p0, ptrdiff_t p1,
    FC_T *cols, ptrdiff_t sk, ptrdiff_t sp)
{
    ptrdiff_t np = p1 - p0, oh_first = p0 / OW, ow_first = p0 - oh_first * OW;
    for (ptrdiff_t c = 0; c < C; c++)
        for (int kh = 0; kh < HH; kh++)
            for (int kw = 0; kw < WW; kw++) {
                FC_T *dst = cols + ((c * HH + kh) * WW + kw) * sk;
                ptrdiff_t oh = oh_first, ow0 = ow_first, in_lo, in_hi;
                fc_nchw_cols_inside(W, OW, kw, sw, pl, &in_lo, &in_hi);
                for (ptrdiff_t done = 0; done < np; done += OW - ow0, oh++, ow0 = 0) {
                    ptrdiff_t ow1 = OW - ow0 < np - done ? OW : ow0 + np - done;
                    ptrdiff_t ih = oh * sh + kh - pt, lo = ow1, hi = ow1;
                    FC_T *d = dst + done * sp;  /* d[(ow - ow0) * sp]: position ow */
                    if (ih >= 0 && ih < H) {
                        lo = in_lo > ow0 ? in_lo : ow0;
                        hi = in_hi < ow1 ? in_hi : ow1;
                    }
                    if (hi > lo)
                        FC_NAME(fc_nchw_copy)(d + (lo - ow0) * sp, sp,
                                              x + (c * H + ih) * W + lo * sw + kw - pl,
                                              sw, hi - lo);
                    else
                        lo = hi = ow1;
                    for (ptrdiff_t ow = ow0; ow < lo; ow++) d[(ow - ow0) * sp] = 0;
                    for (ptrdiff_t ow = hi; ow < ow1; ow++) d[(ow - ow0) * sp] = 0;
                }
            }
}

/* The weight gradient's layout of the same fields: colsT[(p - p0) * ldt + k] as
 * cols[k, p] of fc_nchw_im2col, and colsT[(p - p0) * ldt + K] = 1 (the bias
 * gradient's column), with rows of ldt = K + FC_L elements (the entries past K are
 * scratch). Window rows (c, kh) outer, output positions inner: a window row inside
 * the image is WW consecutive inputs copied to WW consecutive places, one masked
 * vector load and one whole-vector store when WW fits a vector; the store's lanes
 * past WW land on entries that a later window row (or the bias column, written
 * last) overwrites, or on the row's scratch. */
static FC_TARGET void FC_NAME(fc_nchw_im2col_t)(
    const FC_T *x, ptrdiff_t C, ptrdiff_t H, ptrdiff_t W, int HH, int WW,
    int sh, int sw, int pt, int pl, ptrdiff_t OW, ptrdiff_t p0, ptrdiff_t p1,
    FC_T *colsT)
{
    ptrdiff_t K = C * HH * WW, ldt = K + FC_L, np = p1 - p0;
    ptrdiff_t oh_first = p0 / OW, ow_first = p0 - oh_first * OW;
    /* [wlo, whi): the ow whose whole window row lies inside the image's columns */
    ptrdiff_t wlo = (pl + sw - 1) / sw;
    ptrdiff_t whi = W - WW + pl < 0 ? 0 : (W - WW + pl) / sw + 1;
    wlo = wlo < OW ? wlo : OW;
    whi = whi < OW ? (whi > wlo ? whi : wlo) : OW;
    FC_M m = FC_MASK(WW <= FC_L ? WW : FC_L);
    FC_M4 m4 = FC_MASK4(WW <= 4 ? WW : 4);
    for (ptrdiff_t c = 0; c < C; c++)
        for (int kh = 0; kh < HH; kh++) {
            FC_T *dst = colsT + (c * HH + kh) * WW;
            ptrdiff_t oh = oh_first, ow0 = ow_first;
            for (ptrdiff_t done = 0; done < np; done += OW - ow0, oh++, ow0 = 0) {
                ptrdiff_t ow1 = OW - ow0 < np - done ? OW : ow0 + np - done;
                ptrdiff_t ih = oh * sh + kh - pt;
                FC_T *d = dst + done * ldt;  /* + (ow - ow0) * ldt: position ow */
                if (ih < 0 || ih >= H) {
                    for (ptrdiff_t ow = ow0; ow < ow1; ow++)
                        for (int kw = 0; kw < WW; kw++) d[(ow - ow0) * ldt + kw] = 0;
                    continue;
                }
                const FC_T *row = x + (c * H + ih) * W;
                ptrdiff_t lo = wlo > ow0 ? wlo : ow0, hi = whi < ow1 ? whi : ow1;
                if (hi < lo || WW > FC_L) hi = lo;  /* (then all by the loop below) */
                if (WW <= 4)  /* (a 4-lane store is half the 512-bit one's cost) */
                    for (ptrdiff_t ow = lo; ow < hi; ow++)
                        FC_STOREU4(d + (ow - ow0) * ldt, FC_LOADM4(row + ow * sw - pl, m4));
                else
                    for (ptrdiff_t ow = lo; ow < hi; ow++)
                        FC_STOREU(d + (ow - ow0) * ldt, FC_LOADM(row + ow * sw - pl, m));
                for (ptrdiff_t ow = ow0; ow < ow1; ow++) {
                    if (ow == lo) ow = hi;  /* the edges, one tap at a time */
                    if (ow >= ow1) break;
                    for (int kw = 0; kw < WW; kw++) {
                        ptrdiff_t iw = ow * sw - pl + kw;
                        d[(ow - ow0) * ldt + kw] = iw >= 0 && iw < W ? row[iw] : 0;
                    }
                }
            }
        }
    for (ptrdiff_t p = 0; p < np; p++) colsT[p * ldt + K] = 1;
}

/* row[i * sw] += s[i] for i < n. Strides 1 and 2 by whole vectors (stride 2: s's
 * lanes spread over two vectors of row, zeros between), the last ones masked, so
 * that no element past row[(n - 1) * sw] is read or written (it may be another
 * image's, written by another thread). */
static inline FC_TARGET void FC_NAME(fc_nchw_add_row)(FC_T *row, int sw, const FC_T *s,
                                                      ptrdiff_t n)
{
    ptrdiff_t i = 0;
    if (sw == 1) {
        for (; i + FC_L <= n; i += FC_L) FC_STOREU(row + i, FC_ADD(FC_LOADU(row + i),
                                                                  FC_LOADU(s + i)));
        if (i < n) {
            FC_M m = FC_MASK((int)(n - i));
            FC_STOREM(row + i, m, FC_ADD(FC_LOADM(row + i, m), FC_LOADM(s + i, m)));
        }
    } else if (sw == 2) {
        for (; i + FC_L < n; i += FC_L) {  /* row 2i .. 2i + 2L - 1, all before 2n - 2 */
            FC_V v = FC_LOADU(s + i);
            FC_T *r = row + 2 * i;
            FC_STOREU(r, FC_ADD(FC_LOADU(r), FC_SPREAD(v, 1)));
            FC_STOREU(r + FC_L, FC_ADD(FC_LOADU(r + FC_L), FC_SPREAD(v, 0)));
        }
        if (i < n) {
            int span = (int)(2 * (n - i) - 1);  /* row 2i .. 2n - 2 */
            FC_M ma = FC_MASK(span < FC_L ? span : FC_L);
            FC_M mb = FC_MASK(span > FC_L ? span - FC_L : 0);
            FC_V v = FC_LOADM(s + i, FC_MASK((int)(n - i)));
            FC_T *r = row + 2 * i;
            FC_STOREM(r, ma, FC_ADD(FC_LOADM(r, ma), FC_SPREAD(v, 1)));
            FC_STOREM(r + FC_L, mb, FC_ADD(FC_LOADM(r + FC_L, mb), FC_SPREAD(v, 0)));
        }
    } else {
        for (; i < n; i++) row[i * sw] += s[i];
    }
}

/* dx[c, oh * sh + kh - pt, ow * sw + kw - pl] += dcols[k * (p1 - p0) + (p - p0)] for
 * the positions p = oh * OW + ow in [p0, p1) and taps k = (c, kh, kw) that land in
 * the image (C, H, W); k outer, p inner, so every dx element sums in a fixed order. */
static FC_TARGET void FC_NAME(fc_nchw_col2im)(
    const FC_T *dcols, FC_T *dx, ptrdiff_t C, ptrdiff_t H, ptrdiff_t W, int HH, int WW,
    int sh, int sw, int pt, int pl, ptrdiff_t OW, ptrdiff_t p0, ptrdiff_t p1)
{
    ptrdiff_t np = p1 - p0, oh_first = p0 / OW, ow_first = p0 - oh_first * OW;
    for (ptrdiff_t c = 0; c < C; c++)
        for (int kh = 0; kh < HH; kh++)
            for (int kw = 0; kw < WW; kw++) {
                const FC_T *src = dcols + ((c * HH + kh) * WW + kw) * np;
                ptrdiff_t oh = oh_first, ow0 = ow_first, in_lo, in_hi;
                fc_nchw_cols_inside(W, OW, kw, sw, pl, &in_lo, &in_hi);
                for (ptrdiff_t done = 0; done < np; done += OW - ow0, oh++, ow0 = 0) {
                    ptrdiff_t ow1 = OW - ow0 < np - done ? OW : ow0 + np - done;
                    ptrdiff_t ih = oh * sh + kh - pt;
                    ptrdiff_t lo = in_lo > ow0 ? in_lo : ow0, hi = in_hi < ow1 ? in_hi : ow1;
                    if (ih < 0 || ih >= H || hi <= lo) continue;
                    FC_T *row = dx + (c * H + ih) * W + lo * sw + kw - pl;
                    const FC_T *s = src + done - ow0 + lo;  /* s[ow - lo]: position ow */
                    FC_NAME(fc_nchw_add_row)(row, sw, s, hi - lo);
                }
            }
}

/* Forward of output positions [p0, p1) of one image x (C, H, W): out[f, p] =
 * b[f] + sum_k w[f, k] * cols[k, p] (out (F, P), w (F, K), K = C * HH * WW, b (F,)
 * or NULL), through the workspace cols (K, p1 - p0). */
static void FC_NAME(fc_nchw_forward_tile)(
    const FC_T *x, const FC_T *w, const FC_T *b, FC_T *out, FC_T *cols,
    ptrdiff_t C, ptrdiff_t H, ptrdiff_t W, ptrdiff_t F, int HH, int WW,
    int sh, int sw, int pt, int pl, ptrdiff_t OW, ptrdiff_t P, ptrdiff_t p0, ptrdiff_t p1)
{
    ptrdiff_t K = C * HH * WW, np = p1 - p0;
    FC_NAME(fc_nchw_im2col)(x, C, H, W, HH, WW, sh, sw, pt, pl, OW, p0, p1, cols, np, 1);
    FC_NAME(fc_nchw_gemm)(F, np, K, w, K, 1, cols, np, out + p0, P, b, 0);
}

/* Backward of positions [p0, p1) of one image, through two workspaces:
 * dw_part (F, K + 1) += dout[:, p0:p1] @ [cols^T | 1] (the last column the bias
 * gradient), with colsT (p1 - p0, K + FC_L); dx (the image, zeroed by the caller)
 * += col2im(w^T @ dout[:, p0:p1]), with dcols (K, p1 - p0). */
static void FC_NAME(fc_nchw_backward_tile)(
    const FC_T *x, const FC_T *w, const FC_T *dout, FC_T *dx, FC_T *dw_part,
    FC_T *colsT, FC_T *dcols,
    ptrdiff_t C, ptrdiff_t H, ptrdiff_t W, ptrdiff_t F, int HH, int WW,
    int sh, int sw, int pt, int pl, ptrdiff_t OW, ptrdiff_t P, ptrdiff_t p0, ptrdiff_t p1)
{
    ptrdiff_t K = C * HH * WW, np = p1 - p0;
    FC_NAME(fc_nchw_im2col_t)(x, C, H, W, HH, WW, sh, sw, pt, pl, OW, p0, p1, colsT);
    FC_NAME(fc_nchw_gemm)(F, K + 1, np, dout + p0, P, 1, colsT, K + FC_L, dw_part, K + 1,
                          NULL, 1);
    FC_NAME(fc_nchw_gemm)(K, np, F, w, 1, K, dout + p0, P, dcols, np, NULL, 0);
    FC_NAME(fc_nchw_col2im)(dcols, dx, C, H, W, HH, WW, sh, sw, pt, pl, OW, p0, p1);
}

/* Spatial batch normalisation of one channel: its N planes of S values, plane n at
 * x + n * cs. Sums in double in the 8 lanes of a GCC vector (lane j takes the values
 * i = j mod 8 of every plane, in order; one 512-bit or two 256-bit registers), added
 * by fc_bn_lanes_total at the end: a fixed order, the same for every copy. */
/* mean and var (mean squared deviation from the mean) of the channel, in one pass:
 * the sums of d = x - k and d * d with k the channel's first value, so that
 * var = mean(d * d) - mean(d) ** 2 does not cancel as it would for |mean| >> std
 * (k is within the data's spread of the mean). */
static FC_TARGET void FC_NAME(fc_bn_stats)(const FC_T *x, ptrdiff_t N, ptrdiff_t cs,
                                           ptrdiff_t S, double *mean, double *var)
{
    fc_v8d a1 = {0}, a2 = {0};
    double M = (double)N * (double)S, k = x[0];
    for (ptrdiff_t n = 0; n < N; n++) {
        const FC_T *v = x + n * cs;
        ptrdiff_t i = 0;
        for (; i + FC_BN_LANES <= S; i += FC_BN_LANES) {
            fc_v8d d;
            FC_LOAD8(&d, v + i);
            d -= k;
            a1 += d;
            a2 += d * d;
        }
        for (int j = 0; i < S; i++, j++) {
            double d = v[i] - k;
            a1[j] += d;
            a2[j] += d * d;
        }
    }
    double m1 = fc_bn_lanes_total(&a1) / M, m2 = fc_bn_lanes_total(&a2) / M - m1 * m1;
    *mean = k + m1;
    *var = m2 > 0 ? m2 : 0;
}

/* out = (x - mu) * a + shift over the channel's planes (out's planes also cs apart). */
static FC_TARGET void FC_NAME(fc_bn_apply)(const FC_T *x, FC_T *out, ptrdiff_t N,
                                           ptrdiff_t cs, ptrdiff_t S, double mu, double a,
                                           double shift)
{
    for (ptrdiff_t n = 0; n < N; n++) {
        const FC_T *v = x + n * cs;
        FC_T *o = out + n * cs;
        for (ptrdiff_t i = 0; i < S; i++) o[i] = (FC_T)((v[i] - mu) * a + shift);
    }
}

/* *sd = sum(dout), *sdx = sum(dout * (x - mu)) over the channel. */
static FC_TARGET void FC_NAME(fc_bn_grad_sums)(const FC_T *dout, const FC_T *x, ptrdiff_t N,
                                               ptrdiff_t cs, ptrdiff_t S, double mu,
                                               double *sd, double *sdx)
{
    fc_v8d a1 = {0}, a2 = {0};
    for (ptrdiff_t n = 0; n < N; n++) {
        const FC_T *d = dout + n * cs, *v = x + n * cs;
        ptrdiff_t i = 0;
        for (; i + FC_BN_LANES <= S; i += FC_BN_LANES) {
            fc_v8d dv, xv;
            FC_LOAD8(&dv, d + i);
            FC_LOAD8(&xv, v + i);
            a1 += dv;
            a2 += dv * (xv - mu);
        }
        for (int j = 0; i < S; i++, j++) {
            a1[j] += d[i];
            a2[j] += (double)d[i] * (v[i] - mu);
        }
    }
    *sd = fc_bn_lanes_total(&a1);
    *sdx = fc_bn_lanes_total(&a2);
}

/* dx = k1 * dout + k2 * (x - mu) + k3 over the channel. */
static FC_TARGET void FC_NAME(fc_bn_dx)(const FC_T *dout, const FC_T *x, FC_T *dx,
                                        ptrdiff_t N, ptrdiff_t cs, ptrdiff_t S, double mu,
                                        double k1, double k2, double k3)
{
    for (ptrdiff_t n = 0; n < N; n++) {
        const FC_T *d = dout + n * cs, *v = x + n * cs;
        FC_T *o = dx + n * cs;
        for (ptrdiff_t i = 0; i < S; i++) o[i] = (FC_T)(k1 * d[i] + k2 * (v[i] - mu) + k3);
    }
}

#undef FC_T
#undef FC_V
#undef FC_L
#undef FC_M
#undef FC_MASK
#undef FC_LOADU
#undef FC_STOREU
#undef FC_SET1
#undef FC_ZERO
#undef FC_FMA
#undef FC_LOADM
#undef FC_STOREM
#undef FC_MR
#undef FC_NR
#undef FC_TARGET
#undef FC_NAME
#undef FC_LOAD8
#undef FC_V4
#undef FC_EVENS
#undef FC_ADD
#undef FC_SPREAD
#undef FC_M4
#undef FC_MASK4
#undef FC_LOADM4
#undef FC_STOREU4
