"""Loop-by-loop definitions, independent of fastconv, used as oracles in tests.

They follow the textbook formulas literally (one output element at a time), so
they are slow but easy to check by eye.
"""

import numpy as np


def conv2d(x, w, b, stride, pads, dilation):
    """out[n, oh, ow, f] = b[f] + sum x_padded[n, oh*s + i*d, ow*s + j*d, c] w[i, j, c, f]."""
    (sh, sw), (pt, pb, pl, pr), (dh, dw) = stride, pads, dilation
    N, H, W, C = x.shape
    KH, KW, _, F = w.shape
    xp = np.zeros((N, H + pt + pb, W + pl + pr, C))
    xp[:, pt:pt + H, pl:pl + W, :] = x
    OH = (H + pt + pb - dh * (KH - 1) - 1) // sh + 1
    OW = (W + pl + pr - dw * (KW - 1) - 1) // sw + 1
    out = np.zeros((N, OH, OW, F))
    for n in range(N):
        for oh in range(OH):
            for ow in range(OW):
                for f in range(F):
                    acc = 0.0 if b is None else float(b[f])
                    for i in range(KH):
                        for j in range(KW):
                            for c in range(C):
                                acc += xp[n, oh * sh + i * dh, ow * sw + j * dw, c] * w[i, j, c, f]
                    out[n, oh, ow, f] = acc
    return out


def pool2d(x, pool, stride, pads, reduce):
    """Each output is ``reduce`` over the window's elements that lie inside x."""
    (ph, pw), (sh, sw), (pt, pb, pl, pr) = pool, stride, pads
    N, H, W, C = x.shape
    OH = (H + pt + pb - ph) // sh + 1
    OW = (W + pl + pr - pw) // sw + 1
    out = np.zeros((N, OH, OW, C))
    for n in range(N):
        for oh in range(OH):
            for ow in range(OW):
                for c in range(C):
                    vals = [x[n, oh * sh + i - pt, ow * sw + j - pl, c]
                            for i in range(ph) for j in range(pw)
                            if 0 <= oh * sh + i - pt < H and 0 <= ow * sw + j - pl < W]
                    out[n, oh, ow, c] = reduce(vals)
    return out


def depthwise_conv2d(x, w, b, stride, pads, dilation):
    """out[n, oh, ow, c*M + m] = b[c*M + m] + sum_ij x_padded[n, oh*s + i*d, ow*s + j*d, c]
    * w[i, j, c, m]: each channel with its own M filters."""
    (sh, sw), (pt, pb, pl, pr), (dh, dw) = stride, pads, dilation
    N, H, W, C = x.shape
    KH, KW, _, M = w.shape
    xp = np.zeros((N, H + pt + pb, W + pl + pr, C))
    xp[:, pt:pt + H, pl:pl + W, :] = x
    OH = (H + pt + pb - dh * (KH - 1) - 1) // sh + 1
    OW = (W + pl + pr - dw * (KW - 1) - 1) // sw + 1
    out = np.zeros((N, OH, OW, C * M))
    for n in range(N):
        for oh in range(OH):
            for ow in range(OW):
                for c in range(C):
                    for m in range(M):
                        acc = 0.0 if b is None else float(b[c * M + m])
                        for i in range(KH):
                            for j in range(KW):
                                acc += xp[n, oh * sh + i * dh, ow * sw + j * dw, c] * w[i, j, c, m]
                        out[n, oh, ow, c * M + m] = acc
    return out


def conv2d_transpose(x, k, stride, offset, out_hw):
    """The transposed convolution as a scatter: input pixel (i, j) adds x[i, j] @ k[p, q]
    (k is (KH, KW, F, C), Keras's layout) to output (i*s + p - offset[0], j*s + q -
    offset[1]) when that lies inside the ``out_hw`` output."""
    (sh, sw), (oh0, ow0), (OH, OW) = stride, offset, out_hw
    N, H, W, C = x.shape
    KH, KW, F, _ = k.shape
    out = np.zeros((N, OH, OW, F))
    for n in range(N):
        for i in range(H):
            for j in range(W):
                for p in range(KH):
                    for q in range(KW):
                        r, s = i * sh + p - oh0, j * sw + q - ow0
                        if 0 <= r < OH and 0 <= s < OW:
                            out[n, r, s] += k[p, q] @ x[n, i, j]
    return out


def conv1d(x, w, b, stride, left, right, dilation):
    """out[n, t, f] = b[f] + sum x_padded[n, t*s + i*d, c] w[i, c, f]; ``left``/``right``
    zeros before/after the steps."""
    N, L, C = x.shape
    K, _, F = w.shape
    xp = np.zeros((N, L + left + right, C))
    xp[:, left:left + L] = x
    T = (L + left + right - dilation * (K - 1) - 1) // stride + 1
    out = np.zeros((N, T, F))
    for n in range(N):
        for t in range(T):
            for f in range(F):
                acc = 0.0 if b is None else float(b[f])
                for i in range(K):
                    for c in range(C):
                        acc += xp[n, t * stride + i * dilation, c] * w[i, c, f]
                out[n, t, f] = acc
    return out
