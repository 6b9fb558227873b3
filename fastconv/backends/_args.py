"""Argument checking, normalisation and output geometry shared by every backend.

Both backends call these helpers first, so they accept exactly the same inputs,
raise exactly the same errors, and no compiled kernel ever sees an argument it
has not been promised: C-contiguous native-endian float32/float64 arrays whose
shapes agree, positive strides and dilations, non-negative padding, and a
non-empty output.

Errors name the argument, say what was expected and what was received, in one
form: ``"<what> must be <expected>. Received: <name>=<value>"``.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import Any, NamedTuple, Optional, Tuple

import numpy as np

__all__ = [
    "ConvGeometry",
    "PoolGeometry",
    "Cache",
    "as_float_array",
    "pair",
    "conv_args",
    "depthwise_args",
    "conv_geometry",
    "pool_args",
    "conv_pool_args",
    "ResizeGeometry",
    "resize_args",
    "check_dout",
    "check_cache",
    "matmul_args",
]


def _received(name: str, value: Any) -> str:
    if isinstance(value, np.ndarray):
        return f"{name} with shape {value.shape} and dtype {value.dtype}"
    return f"{name}={value!r}"


def fail(name: str, expected: str, value: Any, exc: type = ValueError) -> Exception:
    """Build the error for argument ``name``: what it must be, what it was."""
    return exc(f"`{name}` must be {expected}. Received: {_received(name, value)}")


_F32 = np.dtype(np.float32)  # native byte order; numpy hands out these singletons
_F64 = np.dtype(np.float64)


def as_float_array(a: Any, name: str, dtype: Optional[np.dtype] = None) -> np.ndarray:
    """Return ``a`` as a C-contiguous, native-endian float32 or float64 array.

    Floating input keeps its precision (or takes ``dtype`` when given); integer and
    boolean input becomes float32 (or ``dtype``). float16, complex, object and other
    dtypes are rejected with a TypeError. Non-contiguous, Fortran-ordered,
    byte-swapped and memory-mapped input is copied; C-contiguous native input is not.
    """
    if type(a) is np.ndarray and a.flags.c_contiguous and (
            a.dtype is _F32 or a.dtype is _F64) and (dtype is None or a.dtype == dtype):
        return a  # the common case, already right: no conversion, no copy
    if a is None:
        raise fail(name, "an array", a, TypeError)
    arr = np.asarray(a)
    kind = arr.dtype.kind
    if kind == "f" and arr.dtype.itemsize in (4, 8):
        target = np.dtype(dtype) if dtype is not None else np.dtype(arr.dtype.type)
    elif kind in "iub":
        target = np.dtype(dtype) if dtype is not None else np.dtype(np.float32)
    else:
        raise fail(
            name,
            "an array of float32 or float64 (integers are converted to float32; "
            "float16 and complex are not supported)",
            arr,
            TypeError,
        )
    return np.ascontiguousarray(arr, dtype=target.newbyteorder("="))


def pair(value: Any, name: str, minimum: int = 1) -> Tuple[int, int]:
    """An int or a pair of ints, each >= ``minimum``, as a tuple of two ints."""
    if type(value) is tuple and len(value) == 2 and type(value[0]) is int \
            and type(value[1]) is int and value[0] >= minimum and value[1] >= minimum:
        return value  # the common case (layers pass tuples of ints)
    if type(value) is int and value >= minimum:
        return value, value
    items = value if isinstance(value, (tuple, list)) else (value, value)
    expected = f"an int >= {minimum} or a pair of them"
    if len(items) != 2:
        raise fail(name, expected, value)
    out = []
    for v in items:
        if isinstance(v, (bool, np.bool_)) or not hasattr(v, "__index__"):
            raise fail(name, expected, value, TypeError)
        v = operator.index(v)
        if v < minimum:
            raise fail(name, expected, value)
        out.append(v)
    return out[0], out[1]


def _same_padding(size: int, window: int, stride: int) -> Tuple[int, int, int]:
    """TensorFlow/Keras 'same': output ceil(size / stride), extra pad at the end."""
    out = -(-size // stride)
    total = max((out - 1) * stride + window - size, 0)
    return total // 2, total - total // 2, out


def _explicit_padding(padding: Any) -> Tuple[int, int, int, int]:
    """int, (ph, pw) or ((top, bottom), (left, right)) -> (top, bottom, left, right)."""
    expected = (
        "'valid', 'same', an int >= 0, a pair (pad_h, pad_w) or "
        "((top, bottom), (left, right))"
    )
    if isinstance(padding, (tuple, list)) and len(padding) == 2 and all(
        isinstance(p, (tuple, list)) for p in padding
    ):
        (top, bottom), (left, right) = (pair(p, "padding", 0) for p in padding)
        return top, bottom, left, right
    try:
        ph, pw = pair(padding, "padding", 0)
    except (TypeError, ValueError):
        raise fail("padding", expected, padding) from None
    return ph, ph, pw, pw


class ConvGeometry(NamedTuple):
    """Every size of one 2-D convolution; pads are (top, bottom, left, right).

    A named tuple (immutable, and built in well under a microsecond: layers make one
    on every call).
    """

    N: int
    H: int
    W: int
    C: int
    KH: int
    KW: int
    F: int
    sh: int
    sw: int
    dh: int
    dw: int
    pt: int
    pb: int
    pl: int
    pr: int
    OH: int
    OW: int

    @property
    def out_shape(self) -> Tuple[int, int, int, int]:
        return (self.N, self.OH, self.OW, self.F)

    @property
    def flops(self) -> int:
        """Multiply-adds times two of the forward pass."""
        return 2 * self.N * self.OH * self.OW * self.F * self.KH * self.KW * self.C


class PoolGeometry(NamedTuple):
    """Every size of one 2-D pooling; pads are (top, bottom, left, right)."""

    N: int
    H: int
    W: int
    C: int
    PH: int
    PW: int
    sh: int
    sw: int
    pt: int
    pb: int
    pl: int
    pr: int
    OH: int
    OW: int

    @property
    def out_shape(self) -> Tuple[int, int, int, int]:
        return (self.N, self.OH, self.OW, self.C)


def _check_ndim(a: np.ndarray, name: str, ndim: int, layout: str) -> None:
    if a.ndim != ndim:
        raise fail(name, f"a {ndim}-D array {layout}", a)


def _image_and_filters(x, w, w_axes):
    """x (N, H, W, C) and w (KH, KW, C, K) as arrays of one float dtype, all sizes of w
    >= 1 and w.shape[2] equal to C; ``w_axes`` names w's four axes for the messages."""
    x = as_float_array(x, "x")
    _check_ndim(x, "x", 4, "(N, H, W, C)")
    w = as_float_array(w, "w", x.dtype)
    _check_ndim(w, "w", 4, "(" + ", ".join(w_axes) + ")")
    C = x.shape[3]
    if C < 1 or min(w.shape) < 1:
        raise fail("w", f"an array with {', '.join(w_axes[:3])} and {w_axes[3]} all >= 1", w)
    if w.shape[2] != C:
        raise ValueError(
            f"`w` must have {w_axes[2]} = w.shape[2] equal to the channels of x, "
            f"x.shape[3] = {C}. Received: w with shape {w.shape} ({w_axes[2]} = {w.shape[2]})"
        )
    return x, w


def _bias(b, size, layout, dtype):
    """None, or b as an array of ``dtype`` and shape (size,)."""
    if b is None:
        return None
    b = as_float_array(b, "b", dtype)
    if b.shape != (size,):
        raise fail("b", f"None or an array of shape {layout} = ({size},)", b)
    return b


def _conv_geometry(N, H, W, C, KH, KW, F, stride, padding, dilation) -> ConvGeometry:
    """Validate stride, padding and dilation of a KH x KW window over (N, H, W, C)."""
    sh, sw = pair(stride, "stride")
    dh, dw = pair(dilation, "dilation")
    eh, ew = dh * (KH - 1) + 1, dw * (KW - 1) + 1  # effective (dilated) window
    if isinstance(padding, str):
        mode = padding.lower()
        if mode == "valid":
            pt = pb = pl = pr = 0
        elif mode == "same":
            pt, pb, _ = _same_padding(H, eh, sh)
            pl, pr, _ = _same_padding(W, ew, sw)
        else:
            raise fail("padding", "'valid', 'same', an int or pairs of ints", padding)
    else:
        pt, pb, pl, pr = _explicit_padding(padding)
    OH = (H + pt + pb - eh) // sh + 1
    OW = (W + pl + pr - ew) // sw + 1
    if H + pt + pb < eh or W + pl + pr < ew:
        raise ValueError(
            "The convolution window must fit in the padded input. Received: x with "
            f"H, W = {H}, {W}, padding (top, bottom, left, right) = {(pt, pb, pl, pr)} and "
            f"w with a {KH}x{KW} window (dilation {dh}x{dw}, effective {eh}x{ew})"
        )
    return ConvGeometry(N, H, W, C, KH, KW, F, sh, sw, dh, dw, pt, pb, pl, pr, OH, OW)


def conv_args(x, w, b, stride, padding, dilation):
    """Validate the arguments of ``conv2d_forward``.

    Returns
    -------
    x : ndarray (N, H, W, C), float32 or float64, C-contiguous
    w : ndarray (KH, KW, C, F), x's dtype, C-contiguous
    b : ndarray (F,) or None, x's dtype
    geom : ConvGeometry
    """
    x, w = _image_and_filters(x, w, ("KH", "KW", "C_in", "C_out"))
    N, H, W, C = x.shape
    KH, KW, _, F = w.shape
    b = _bias(b, F, "(C_out,)", x.dtype)
    return x, w, b, _conv_geometry(N, H, W, C, KH, KW, F, stride, padding, dilation)


def depthwise_args(x, w, b, stride, padding, dilation):
    """Validate the arguments of ``depthwise_conv2d_forward``.

    Returns
    -------
    x : ndarray (N, H, W, C), float32 or float64, C-contiguous
    w : ndarray (KH, KW, C, M), x's dtype, C-contiguous (M: the depth multiplier)
    b : ndarray (C * M,) or None, x's dtype
    geom : ConvGeometry
        With ``F = C * M`` output channels; output channel ``c * M + m`` is input
        channel c's m-th filter.
    """
    x, w = _image_and_filters(x, w, ("KH", "KW", "C", "depth_multiplier"))
    N, H, W, C = x.shape
    KH, KW, _, M = w.shape
    b = _bias(b, C * M, "(C * depth_multiplier,)", x.dtype)
    return x, w, b, _conv_geometry(N, H, W, C, KH, KW, C * M, stride, padding, dilation)


def conv_geometry(x_shape, w_shape, stride, padding, dilation, w=None) -> ConvGeometry:
    """Validate the sizes of a convolution and return its geometry.

    ``x_shape`` (N, H, W, C) and ``w_shape`` (KH, KW, C_in, F) are tuples of 4 ints;
    ``w``, when given, is the array named in error messages (else its shape is). The
    checks of :func:`conv_args` on shapes alone (``fastconv.explain_conv`` uses them).
    """
    w = w_shape if w is None else w
    N, H, W, C = x_shape
    KH, KW, C_in, F = w_shape
    if C < 1 or F < 1 or KH < 1 or KW < 1:
        raise fail("w", "an array with KH, KW, C_in and C_out all >= 1", w)
    if C_in != C:
        raise ValueError(
            f"`w` must have C_in = w.shape[2] equal to the channels of x, x.shape[3] = {C}. "
            f"Received: w with shape {tuple(w_shape)} (C_in = {C_in})"
        )
    return _conv_geometry(N, H, W, C, KH, KW, F, stride, padding, dilation)


def pool_args(x, pool_size, strides, padding):
    """Validate the arguments of the pooling forward passes.

    ``strides=None`` means ``strides=pool_size`` (Keras). ``padding`` is 'valid' or
    'same' (TensorFlow/Keras 'same': output ceil(H / stride), extra pad bottom/right).
    """
    x = as_float_array(x, "x")
    _check_ndim(x, "x", 4, "(N, H, W, C)")
    N, H, W, C = x.shape
    if C < 1:
        raise fail("x", "an array with at least one channel", x)
    PH, PW = pair(pool_size, "pool_size")
    sh, sw = pair(strides if strides is not None else (PH, PW), "strides")
    mode = padding.lower() if isinstance(padding, str) else None
    if mode == "valid":
        pt = pb = pl = pr = 0
        if H < PH or W < PW:
            raise ValueError(
                "The pooling window must fit in the input with padding='valid'. "
                f"Received: x with H, W = {H}, {W} and pool_size={(PH, PW)}"
            )
        OH, OW = (H - PH) // sh + 1, (W - PW) // sw + 1
    elif mode == "same":
        if H < 1 or W < 1:
            raise fail("x", "an array with H, W >= 1", x)
        pt, pb, OH = _same_padding(H, PH, sh)
        pl, pr, OW = _same_padding(W, PW, sw)
    else:
        raise fail("padding", "'valid' or 'same'", padding)
    return x, PoolGeometry(N, H, W, C, PH, PW, sh, sw, pt, pb, pl, pr, OH, OW)


def conv_pool_args(g: ConvGeometry, pool_size: Any) -> PoolGeometry:
    """Validate ``pool_size`` of a convolution followed by max pooling.

    The pooling has strides equal to ``pool_size`` and 'valid' padding (the Keras
    defaults); its input is the convolution's output, ``g.out_shape``.
    """
    PH, PW = pair(pool_size, "pool_size")
    if g.OH < PH or g.OW < PW:
        raise ValueError(
            "`pool_size` must fit in the convolution's output, of OH, OW = "
            f"{g.OH}, {g.OW}. Received: pool_size={(PH, PW)}"
        )
    return PoolGeometry(g.N, g.OH, g.OW, g.F, PH, PW, PH, PW, 0, 0, 0, 0,
                        g.OH // PH, g.OW // PW)


class ResizeTaps(NamedTuple):
    """Where each output index of one axis reads: source indices ``i0 <= i1`` (intp)
    with weights ``1 - f`` and ``f`` (float64; nearest: ``i0 == i1``, ``f == 0``), and
    for each source index ``a`` the range ``[lo[a], hi[a])`` of outputs that read it."""

    i0: np.ndarray
    i1: np.ndarray
    f: np.ndarray
    lo: np.ndarray
    hi: np.ndarray


def resize_taps(n_in: int, n_out: int, bilinear: bool) -> ResizeTaps:
    """Half-pixel centres (Keras 3 / ``jax.image.resize`` without antialiasing): output
    index i samples the source at ``(i + 0.5) * n_in / n_out - 0.5``; bilinear clamps
    that to ``[0, n_in - 1]`` (the edge pixel alone, as JAX's renormalised weights
    give), nearest takes ``floor((i + 0.5) * n_in / n_out)``."""
    centre = (np.arange(n_out, dtype=np.float64) + 0.5) * (n_in / n_out)
    if bilinear:
        src = np.clip(centre - 0.5, 0.0, n_in - 1)
        i0 = np.floor(src).astype(np.intp)
        f = src - i0
        i1 = np.minimum(i0 + 1, n_in - 1)
    else:
        i0 = np.minimum(np.floor(centre).astype(np.intp), n_in - 1)
        i1, f = i0, np.zeros(n_out)
    a = np.arange(n_in)
    # i0 and i1 never decrease and i1 <= i0 + 1: the outputs reading a are contiguous.
    lo = np.searchsorted(i1, a, side="left").astype(np.intp)
    hi = np.maximum(np.searchsorted(i0, a, side="right"), lo).astype(np.intp)
    return ResizeTaps(i0, i1, f, lo, hi)


class ResizeGeometry(NamedTuple):
    """Sizes of one resize of (N, H, W, C) to (N, OH, OW, C), and its taps per axis."""

    N: int
    H: int
    W: int
    C: int
    OH: int
    OW: int
    bilinear: bool
    rows: ResizeTaps
    cols: ResizeTaps

    @property
    def out_shape(self) -> Tuple[int, int, int, int]:
        return (self.N, self.OH, self.OW, self.C)


_INTERPOLATIONS = ("nearest", "bilinear")


def resize_args(x, size, interpolation):
    """Validate the arguments of ``resize2d_forward``: x (N, H, W, C) with H, W, C >= 1,
    ``size`` a pair of positive ints (OH, OW), ``interpolation`` 'nearest' or
    'bilinear'."""
    x = as_float_array(x, "x")
    _check_ndim(x, "x", 4, "(N, H, W, C)")
    N, H, W, C = x.shape
    if H < 1 or W < 1 or C < 1:
        raise fail("x", "an array with H, W, C >= 1", x)
    OH, OW = pair(size, "size")
    if not isinstance(interpolation, str) or interpolation.lower() not in _INTERPOLATIONS:
        raise fail("interpolation", "'nearest' or 'bilinear'", interpolation)
    bilinear = interpolation.lower() == "bilinear"
    return x, ResizeGeometry(N, H, W, C, OH, OW, bilinear, resize_taps(H, OH, bilinear),
                             resize_taps(W, OW, bilinear))


@dataclass
class Cache:
    """What a forward pass keeps for its backward pass.

    ``op`` names the operation ('conv2d', 'maxpool2d', 'avgpool2d', 'relu', ...) and
    ``backend`` the backend that made it; a backward pass refuses any other cache.
    ``arrays`` holds the tensors that backward needs, ``geom`` the sizes.
    """

    op: str
    backend: str
    geom: Any
    dtype: np.dtype
    arrays: dict

    def __repr__(self) -> str:
        names = ", ".join(self.arrays)
        return f"Cache(op={self.op!r}, backend={self.backend!r}, arrays=[{names}])"


def check_cache(cache: Any, op: str, backend: str) -> Cache:
    """The cache must come from the forward pass of ``op`` on ``backend``."""
    if not isinstance(cache, Cache):
        raise fail("cache", f"the cache returned by {op}_forward", type(cache).__name__,
                   TypeError)
    if cache.op != op:
        raise ValueError(
            f"`cache` must come from {op}_forward. Received: a cache from {cache.op}_forward"
        )
    if cache.backend != backend:
        raise ValueError(
            f"`cache` must come from the {backend!r} backend's {op}_forward. Received: a "
            f"cache from the {cache.backend!r} backend (use fastconv.ops, which "
            "dispatches on the cache)"
        )
    return cache


def check_dout(dout: Any, shape: Tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """The upstream gradient must have the forward output's shape; cast to its dtype."""
    d = as_float_array(dout, "dout", dtype)
    if d.shape != tuple(shape):
        raise fail("dout", f"an array of the forward output's shape {tuple(shape)}", d)
    return d


def matmul_args(a: Any, b: Any, out: Any, trans_a: bool = False, trans_b: bool = False):
    """Check a matrix product's arguments; return ``(a, b, out_shape, direct)``.

    ``a`` (m, k) and ``b`` (k, n) become C-contiguous arrays of their common float dtype
    (float32 with float64 gives float64, as in NumPy). With ``trans_a`` (``trans_b``)
    the array passed is the transpose of the operand, (k, m) (or (n, k)), and is kept
    as it lies. ``out``, when given, must be a writeable float32/float64 array of shape
    (m, n); ``direct`` says whether the result can be written into it as it is (same
    dtype, C-contiguous) or must be cast into it.
    """
    a = as_float_array(a, "a")
    b = as_float_array(b, "b")
    if a.dtype != b.dtype:
        a, b = a.astype(np.float64), b.astype(np.float64)
    for name, arr in (("a", a), ("b", b)):
        if arr.ndim != 2:
            raise fail(name, "a 2-D array (a matrix)", arr)
    (m, ka), (kb, n) = a.shape[::-1] if trans_a else a.shape, b.shape[::-1] if trans_b \
        else b.shape
    if ka != kb:
        raise ValueError(f"`a` and `b` must agree on the reduction axis: a is (m, k) and b "
                         f"is (k, n). Received: a with shape {(m, ka)}, b with shape "
                         f"{(kb, n)}")
    shape = (m, n)
    direct = False
    if out is not None:
        if not isinstance(out, np.ndarray):
            raise fail("out", "a NumPy array", out, TypeError)
        if out.shape != shape or out.dtype not in (_F32, _F64) or not out.flags.writeable:
            raise fail("out", f"a writeable float32 or float64 array of shape {shape}", out)
        direct = out.dtype == a.dtype and out.flags.c_contiguous
    return a, b, shape, direct


def channel_args(u: Any, v: Any, coefficients: Any, names: Tuple[str, ...]):
    """Check the arguments of the per-channel kernels (``channel_sums``,
    ``channel_affine``); return ``(u, v, coefficients)``.

    ``u`` (A, R, B) becomes a C-contiguous float32/float64 array; ``v``, when given,
    must have its shape and is taken in its dtype; each coefficient (A, B) is taken
    in ``u``'s dtype, except the first one of ``names`` when it is ``'shift'``, which is
    float64 (the sums are in double).
    """
    u = as_float_array(u, "u")
    if u.ndim != 3:
        raise fail("u", "a 3-D array (groups, rows, channels)", u)
    if v is not None:
        v = as_float_array(v, "v", u.dtype)
        if v.shape != u.shape:
            raise fail("v", f"an array of u's shape {u.shape}", v)
    A, _, B = u.shape
    out = []
    for name, c in zip(names, coefficients):
        if c is None:
            if name not in ("shift", "q"):  # the optional ones
                raise fail(name, f"an array of shape (A, B) = {(A, B)}", c, TypeError)
            out.append(None)
            continue
        c = as_float_array(c, name, _F64 if name == "shift" else u.dtype)
        if c.shape != (A, B):
            raise fail(name, f"an array of shape (A, B) = {(A, B)}", c)
        out.append(c)
    return u, v, out


def channel_affine_args(u: Any, p: Any, r: Any, v: Any, q: Any):
    """:func:`channel_args` for ``channel_affine``: ``v`` and ``q`` go together; returns
    ``(u, v, p, q, r)``."""
    if (v is None) != (q is None):
        raise ValueError("`v` and `q` go together: give both or neither. Received: "
                         f"v={'None' if v is None else 'an array'}, "
                         f"q={'None' if q is None else 'an array'}")
    u, v, (p, q, r) = channel_args(u, v, (p, q, r), ("p", "q", "r"))
    return u, v, p, q, r


def add_args(a: Any, b: Any):
    """Check ``add``'s and ``add_relu_forward``'s arguments: a C-contiguous
    float32/float64 array and one of its shape, taken in its dtype (no broadcasting);
    returns ``(a, b)``."""
    a = as_float_array(a, "a")
    b = as_float_array(b, "b", a.dtype)
    if b.shape != a.shape:
        raise fail("b", f"an array of a's shape {a.shape}", b)
    return a, b


def channel_gate_args(gate: Any, u: np.ndarray, v: Optional[np.ndarray]):
    """Check a ReLU gate of ``channel_sums``/``channel_affine``: None, or a pair
    ``(gp, gr)`` of (A, B) arrays (taken in u's dtype) with ``v`` given; returns
    ``(gp, gr)`` (None, None without a gate)."""
    if gate is None:
        return None, None
    if not isinstance(gate, (tuple, list)) or len(gate) != 2:
        raise fail("gate", "None or a pair (gp, gr) of arrays of shape (A, B)", gate,
                   TypeError)
    if v is None:
        raise ValueError("`gate` is applied where gp * v + gr > 0, so it needs `v`. "
                         "Received: v=None")
    A, _, B = u.shape
    out = []
    for name, c in zip(("gate[0]", "gate[1]"), gate):
        c = as_float_array(c, name, u.dtype)
        if c.shape != (A, B):
            raise fail(name, f"an array of shape (A, B) = {(A, B)}", c)
        out.append(c)
    return tuple(out)


def _row_vector(a: Any, name: str, size: int, dtype: np.dtype,
                optional: bool = True) -> Optional[np.ndarray]:
    if a is None:
        if not optional:
            raise fail(name, f"an array of shape ({size},)", a, TypeError)
        return None
    a = as_float_array(a, name, dtype)
    if a.shape != (size,):
        raise fail(name, f"an array of shape ({size},)", a)
    return a


def layernorm_args(x: Any, gamma: Any, beta: Any, epsilon: Any):
    """Check ``layernorm_forward``'s arguments; return ``(x, gamma, beta, epsilon)``:
    x (M, C) a C-contiguous float32/float64 array, gamma and beta None or (C,) in its
    dtype, epsilon a number > 0."""
    x = as_float_array(x, "x")
    if x.ndim != 2:
        raise fail("x", "a 2-D array (rows, features)", x)
    if isinstance(epsilon, bool) or not isinstance(epsilon, (int, float, np.floating)) \
            or not epsilon > 0:
        raise fail("epsilon", "a number > 0", epsilon)
    C = x.shape[1]
    return x, _row_vector(gamma, "gamma", C, x.dtype), _row_vector(beta, "beta", C,
                                                                   x.dtype), float(epsilon)


def layernorm_backward_args(dout: Any, x: Any, mean: Any, inv: Any, gamma: Any):
    """Check ``layernorm_backward``'s arguments; return them as arrays in x's dtype."""
    x = as_float_array(x, "x")
    if x.ndim != 2:
        raise fail("x", "a 2-D array (rows, features)", x)
    dout = as_float_array(dout, "dout", x.dtype)
    if dout.shape != x.shape:
        raise fail("dout", f"an array of x's shape {x.shape}", dout)
    M, C = x.shape
    return (dout, x, _row_vector(mean, "mean", M, x.dtype, False),
            _row_vector(inv, "inv", M, x.dtype, False), _row_vector(gamma, "gamma", C, x.dtype))
