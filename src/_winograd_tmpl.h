/*
 * The transforms of Winograd F(2x2, 3x3) (Lavin and Gray, 2016), NHWC, for one element
 * type and one instruction set: included from _winograd.h once per pair, with
 * FC_T (float or double), FC_ATTR (a target attribute, or nothing) and FC_NAME (which
 * appends the type and ISA to a name) defined. No include guard; it #undefs its
 * parameters at the end.
 *
 * The loops run over channels (or filters), contiguous in NHWC, and are plain C that
 * the compiler vectorises under FC_ATTR. They only add, subtract and halve (exact), so
 * every copy computes the same bits: no product feeds an addition that could be
 * contracted into an FMA.
 *
 * With d a 4x4 input tile, g a 3x3 filter and y the 2x2 output tile,
 *     y = A^T [(G g G^T) . (B^T d B)] A,
 *     B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1],
 *     G   = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1],
 *     A^T = [1 1 1 0; 0 1 -1 -1],
 * and "." the element-wise product, summed over the input channels (16 matrix
 * products, one per element of the 4x4 transformed tile). The weight gradient of a
 * tile is G^T [(B^T d B) . (A dy A^T)] G, summed over tiles.
 */

/* U[k, c, f] = (G g G^T)[k] of g = w[:, :, c, f]: w (3, 3, C, F), U (16, C, F). */
FC_ATTR static void FC_NAME(fc_wg_filter)(const FC_T *restrict w, ptrdiff_t C, ptrdiff_t F,
                                          FC_T *restrict U)
{
    const ptrdiff_t CF = C * F;
    const FC_T h = (FC_T)0.5;
#pragma GCC ivdep
    for (ptrdiff_t e = 0; e < CF; e++) {
        FC_T t[4][3];
        for (int j = 0; j < 3; j++) {
            const FC_T g0 = w[j * CF + e], g1 = w[(3 + j) * CF + e], g2 = w[(6 + j) * CF + e];
            t[0][j] = g0;
            t[1][j] = h * ((g0 + g1) + g2);
            t[2][j] = h * ((g0 - g1) + g2);
            t[3][j] = g2;
        }
        for (int a = 0; a < 4; a++) {
            U[(a * 4 + 0) * CF + e] = t[a][0];
            U[(a * 4 + 1) * CF + e] = h * ((t[a][0] + t[a][1]) + t[a][2]);
            U[(a * 4 + 2) * CF + e] = h * ((t[a][0] - t[a][1]) + t[a][2]);
            U[(a * 4 + 3) * CF + e] = t[a][2];
        }
    }
}

/* v[k * ld + c] = (B^T d B)[k] for c < C, d[r][s] = p[r * 4 + s][c] (rows of C values:
 * input pixels, or zeros outside the image). */
FC_ATTR static void FC_NAME(fc_wg_input_tile)(const FC_T *const *p, ptrdiff_t C,
                                              FC_T *restrict v, ptrdiff_t ld)
{
    const FC_T *p0 = p[0], *p1 = p[1], *p2 = p[2], *p3 = p[3];
    const FC_T *p4 = p[4], *p5 = p[5], *p6 = p[6], *p7 = p[7];
    const FC_T *p8 = p[8], *p9 = p[9], *p10 = p[10], *p11 = p[11];
    const FC_T *p12 = p[12], *p13 = p[13], *p14 = p[14], *p15 = p[15];
    /* (ivdep: v never overlaps the rows read; without it GCC does not vectorise) */
#pragma GCC ivdep
    for (ptrdiff_t c = 0; c < C; c++) {
        /* rows: s[r][.] = d[r][.] B */
        FC_T s[4][4];
#define FC_WG_ROW(r, a, b, cc, dd)                                                     \
        s[r][0] = a[c] - cc[c]; s[r][1] = b[c] + cc[c];                                 \
        s[r][2] = cc[c] - b[c]; s[r][3] = b[c] - dd[c];
        FC_WG_ROW(0, p0, p1, p2, p3)
        FC_WG_ROW(1, p4, p5, p6, p7)
        FC_WG_ROW(2, p8, p9, p10, p11)
        FC_WG_ROW(3, p12, p13, p14, p15)
#undef FC_WG_ROW
        for (int j = 0; j < 4; j++) {
            v[j * ld + c] = s[0][j] - s[2][j];
            v[(4 + j) * ld + c] = s[1][j] + s[2][j];
            v[(8 + j) * ld + c] = s[2][j] - s[1][j];
            v[(12 + j) * ld + c] = s[1][j] - s[3][j];
        }
    }
}

/* The transformed input tiles t0 .. t1-1 of x (N, H, W, C) into V (16, t1 - t0, C):
 * tile t is image t / (TH * TW), tile row th and column tw of it, whose corner is
 * input pixel (2 th - pt, 2 tw - pl) (pt, pl may be negative); pixels outside the
 * image read `zeros` (C zeros). */
FC_ATTR static void FC_NAME(fc_wg_input)(const FC_T *x, ptrdiff_t H, ptrdiff_t W, ptrdiff_t C,
                                         ptrdiff_t pt, ptrdiff_t pl, ptrdiff_t TH,
                                         ptrdiff_t TW, ptrdiff_t t0, ptrdiff_t t1,
                                         const FC_T *zeros, FC_T *V)
{
    const ptrdiff_t ld = (t1 - t0) * C;
    for (ptrdiff_t t = t0; t < t1; t++) {
        const ptrdiff_t n = t / (TH * TW), q = t - n * TH * TW;
        const ptrdiff_t i0 = 2 * (q / TW) - pt, j0 = 2 * (q % TW) - pl;
        const FC_T *p[16];
        for (int r = 0; r < 4; r++) {
            const ptrdiff_t i = i0 + r;
            for (int s = 0; s < 4; s++) {
                const ptrdiff_t j = j0 + s;
                p[r * 4 + s] = (i >= 0 && i < H && j >= 0 && j < W)
                                   ? x + ((n * H + i) * W + j) * C : zeros;
            }
        }
        FC_NAME(fc_wg_input_tile)(p, C, V + (t - t0) * C, ld);
    }
}

/* Output tiles t0 .. t0+m-1 from M (16, m, F): y = A^T M A (+ bias) (ReLU: 0 where
 * y <= 0, NaN kept), written to out (N, OH, OW, F) where inside it; the outputs past
 * the last row or column (odd OH, OW) go to `junk` (F values). */
FC_ATTR static void FC_NAME(fc_wg_output)(const FC_T *M, ptrdiff_t m, ptrdiff_t F,
                                          const FC_T *bias, int relu, FC_T *out,
                                          ptrdiff_t OH, ptrdiff_t OW, ptrdiff_t TH,
                                          ptrdiff_t TW, ptrdiff_t t0, FC_T *junk)
{
    const ptrdiff_t ld = m * F;
    for (ptrdiff_t r = 0; r < m; r++) {
        const ptrdiff_t t = t0 + r, n = t / (TH * TW), q = t - n * TH * TW;
        const ptrdiff_t oh = 2 * (q / TW), ow = 2 * (q % TW);
        FC_T *o[4];
        for (int a = 0; a < 2; a++)
            for (int b = 0; b < 2; b++)
                o[a * 2 + b] = (oh + a < OH && ow + b < OW)
                                   ? out + ((n * OH + oh + a) * OW + ow + b) * F : junk;
        FC_T *restrict o0 = o[0], *restrict o1 = o[1], *restrict o2 = o[2];
        FC_T *restrict o3 = o[3];
        const FC_T *mk = M + r * F;
#pragma GCC ivdep
        for (ptrdiff_t f = 0; f < F; f++) {
            FC_T u[2][4];
            for (int j = 0; j < 4; j++) {  /* rows: A^T M */
                const FC_T m0 = mk[j * ld + f], m1 = mk[(4 + j) * ld + f];
                const FC_T m2 = mk[(8 + j) * ld + f], m3 = mk[(12 + j) * ld + f];
                u[0][j] = (m0 + m1) + m2;
                u[1][j] = (m1 - m2) - m3;
            }
            FC_T y[4];
            for (int a = 0; a < 2; a++) {  /* columns: (A^T M) A */
                y[a * 2] = (u[a][0] + u[a][1]) + u[a][2];
                y[a * 2 + 1] = (u[a][1] - u[a][2]) - u[a][3];
            }
            o0[f] = y[0];
            o1[f] = y[1];
            o2[f] = y[2];
            o3[f] = y[3];
        }
        /* (a second pass over the tile's rows, in L1, so that both loops vectorise) */
        for (int k = 0; bias && k < 4; k++) {
            FC_T *restrict ok = o[k];
            for (ptrdiff_t f = 0; f < F; f++) ok[f] = ok[f] + bias[f];
        }
        for (int k = 0; relu && k < 4; k++) {
            FC_T *restrict ok = o[k];
            for (ptrdiff_t f = 0; f < F; f++) ok[f] = ok[f] <= 0 ? 0 : ok[f];
        }
    }
}

/* The transformed output gradients of tiles t0 .. t1-1 of dout (N, OH, OW, F) into
 * E (16, t1 - t0, F): E = A dy A^T, dy the tile's 2x2 gradients (zeros past the last
 * row or column, read from `zeros`, F zeros). db (F), when not NULL, accumulates each
 * tile's gradients (in tile order, then a b). */
FC_ATTR static void FC_NAME(fc_wg_dout)(const FC_T *dout, ptrdiff_t OH, ptrdiff_t OW,
                                        ptrdiff_t F, ptrdiff_t TH, ptrdiff_t TW,
                                        ptrdiff_t t0, ptrdiff_t t1, const FC_T *zeros,
                                        FC_T *restrict E, FC_T *restrict db)
{
    const ptrdiff_t ld = (t1 - t0) * F;
    for (ptrdiff_t t = t0; t < t1; t++) {
        const ptrdiff_t n = t / (TH * TW), q = t - n * TH * TW;
        const ptrdiff_t oh = 2 * (q / TW), ow = 2 * (q % TW);
        const FC_T *y[4];
        for (int a = 0; a < 2; a++)
            for (int b = 0; b < 2; b++)
                y[a * 2 + b] = (oh + a < OH && ow + b < OW)
                                   ? dout + ((n * OH + oh + a) * OW + ow + b) * F : zeros;
        const FC_T *y0 = y[0], *y1 = y[1], *y2 = y[2], *y3 = y[3];
        FC_T *e = E + (t - t0) * F;
#pragma GCC ivdep
        for (ptrdiff_t f = 0; f < F; f++) {
            /* rows, A dy, then columns, (A dy) A^T; A = [1 0; 1 1; 1 -1; 0 -1] */
            const FC_T r0[2] = {y0[f], y1[f]};
            const FC_T r1[2] = {y2[f], y3[f]};
            FC_T s[4][2];
            for (int b = 0; b < 2; b++) {
                s[0][b] = r0[b];
                s[1][b] = r0[b] + r1[b];
                s[2][b] = r0[b] - r1[b];
                s[3][b] = -r1[b];
            }
            for (int a = 0; a < 4; a++) {
                e[(a * 4 + 0) * ld + f] = s[a][0];
                e[(a * 4 + 1) * ld + f] = s[a][0] + s[a][1];
                e[(a * 4 + 2) * ld + f] = s[a][0] - s[a][1];
                e[(a * 4 + 3) * ld + f] = -s[a][1];
            }
            if (db) db[f] = ((db[f] + y0[f]) + y1[f] + y2[f]) + y3[f];
        }
    }
}

/* dw (3, 3, C, F) = G^T S[k] G of S (16, C, F), the sum over tiles of V^T E. */
FC_ATTR static void FC_NAME(fc_wg_filter_grad)(const FC_T *restrict S, ptrdiff_t C,
                                               ptrdiff_t F, FC_T *restrict dw)
{
    const ptrdiff_t CF = C * F;
    const FC_T h = (FC_T)0.5;
    /* G^T = [1 1/2 1/2 0; 0 1/2 -1/2 0; 0 1/2 1/2 1], halved last (exact), so that no
     * product feeds an addition */
#pragma GCC ivdep
    for (ptrdiff_t e = 0; e < CF; e++) {
        FC_T t[3][4];
        for (int b = 0; b < 4; b++) {
            const FC_T s0 = S[b * CF + e], s1 = S[(4 + b) * CF + e];
            const FC_T s2 = S[(8 + b) * CF + e], s3 = S[(12 + b) * CF + e];
            t[0][b] = h * ((s0 + s0) + (s1 + s2));
            t[1][b] = h * (s1 - s2);
            t[2][b] = h * ((s1 + s2) + (s3 + s3));
        }
        for (int i = 0; i < 3; i++) {
            dw[(i * 3 + 0) * CF + e] = h * ((t[i][0] + t[i][0]) + (t[i][1] + t[i][2]));
            dw[(i * 3 + 1) * CF + e] = h * (t[i][1] - t[i][2]);
            dw[(i * 3 + 2) * CF + e] = h * ((t[i][1] + t[i][2]) + (t[i][3] + t[i][3]));
        }
    }
}

#undef FC_T
#undef FC_ATTR
#undef FC_NAME
