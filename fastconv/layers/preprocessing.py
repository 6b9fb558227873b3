"""Keras 3 preprocessing layers for images: ``Rescaling`` and random augmentation.

``RandomFlip``, ``RandomTranslation`` and ``RandomRotation`` change their input only
when ``training=True`` (inside ``fit``); in ``evaluate``/``predict`` they are the
identity, as in Keras. ``Rescaling`` is not random and applies always.

All three random layers are one gather over the whole batch (for float images a
compiled loop, ``fastconv._image``, with the same arithmetic as the vectorised NumPy
gather kept as its reference; flips are reversed copies): each
output pixel ``(n, i, j)`` reads the input at source coordinates ``(r, c)`` computed by
inverse-mapping the output grid through the sampled transform (a flip, a shift, a
rotation about the image centre). ``interpolation='nearest'`` rounds ``(r, c)`` and
gathers once; ``'bilinear'`` gathers the four neighbours and blends them. Source
coordinates outside the image are handled by ``fill_mode`` (Keras's names):

- ``'constant'``: the value ``fill_value``;
- ``'nearest'``: the closest edge pixel (``a a a | a b c d | d d d``);
- ``'reflect'``: mirrored about the edge of the last pixel (``c b a | a b c d | d c b``);
- ``'wrap'``: the opposite edge (``b c d | a b c d | a b c``).

Every layer keeps its own generator (``seed``, or a seed drawn from fastconv's global
generator when the layer is made, so :func:`fastconv.utils.set_random_seed` makes a
whole model reproducible). ``backward`` returns the exact gradient with respect to the
input (the transpose of the gather); at a model's input it is simply discarded.

Images are ``(N, H, W, C)`` (``channels_last``) or ``(N, C, H, W)``
(``data_format='channels_first'``).
"""

from __future__ import annotations

import math
import threading
from typing import Any, Optional, Sequence, Tuple, Union

import numpy as np

from .._random import child_seed
from .._threads import get_num_threads
from ..backends._args import fail
from .base import Layer, _data_format

try:
    from .. import _image
except ImportError:  # no compiled extensions: the NumPy gather below
    _image = None

__all__ = ["Rescaling", "RandomFlip", "RandomTranslation", "RandomRotation", "RandomZoom"]

_FILL_MODES = ("constant", "nearest", "reflect", "wrap")
_INTERPOLATIONS = ("nearest", "bilinear")

Factor = Union[float, Tuple[float, float]]


def _number(name: str, value: Any) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer,
                                                                     np.floating)):
        raise fail(name, "a number", value, TypeError)
    if not math.isfinite(value):
        raise fail(name, "a finite number", value)
    return float(value)


def _factor(name: str, value: Any, bound: Optional[float]) -> Tuple[float, float]:
    """Keras's factor: ``f`` means ``(-f, f)``; a pair is ``(lower, upper)``."""
    expected = ("a number or a pair (lower, upper)" if bound is None
                else f"a number in [-{bound:g}, {bound:g}] or a pair (lower, upper) of them")
    if isinstance(value, (list, tuple)):
        if len(value) != 2:
            raise fail(name, expected, value)
        lower, upper = (_number(name, v) for v in value)
    else:
        f = _number(name, value)
        lower, upper = -abs(f), abs(f)
    if lower > upper or (bound is not None and not -bound <= lower <= upper <= bound):
        raise fail(name, expected + " with lower <= upper", value)
    return lower, upper


def _choice(name: str, value: Any, options: Sequence[str]) -> str:
    if not isinstance(value, str) or value not in options:
        raise fail(name, "one of " + ", ".join(repr(o) for o in options), value)
    return value


def _seed(value: Any) -> Optional[int]:
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) \
            or value < 0:
        raise fail("seed", "None or an int >= 0", value, TypeError)
    return int(value)


def _fold(index: np.ndarray, size: int, fill_mode: str) -> np.ndarray:
    """Map integer indices (any range) into ``[0, size)`` by ``fill_mode``.

    For ``'constant'`` the indices are clipped; the caller masks them out.
    """
    if fill_mode == "reflect" or fill_mode == "wrap":
        if index.size and index.min() >= -size and index.max() < 2 * size:
            # The usual case (shifts and turns stay within one image of the edge): two
            # selects instead of an integer modulo, which costs several times more.
            below, above = index < 0, index >= size
            if fill_mode == "reflect":
                return np.where(below, -1 - index, np.where(above, 2 * size - 1 - index, index))
            return np.where(below, index + size, np.where(above, index - size, index))
        if fill_mode == "wrap":
            return np.mod(index, size)
        # Period 2*size: 0..size-1 forwards, then size-1..0 backwards.
        index = np.mod(index, 2 * size)
        return np.where(index >= size, 2 * size - 1 - index, index)
    return np.clip(index, 0, size - 1)


def _taps(coord: np.ndarray, size: int, interpolation: str, fill_mode: str, dtype):
    """``[(folded integer index, weight or None)]`` along one axis for float ``coord``.

    Nearest: one tap. Bilinear: the two neighbours, weighted by distance. With
    ``fill_mode='constant'`` an outside tap gets weight 0 (the fill is added later).
    """
    if interpolation == "nearest":
        ints = [(np.rint(coord).astype(np.intp), None)]
    else:
        low = np.floor(coord)
        frac = (coord - low).astype(dtype)
        low = low.astype(np.intp)
        ints = [(low, 1 - frac), (low + 1, frac)]
    taps = []
    for index, weight in ints:
        if fill_mode == "constant":
            inside = (index >= 0) & (index < size)
            if not inside.all():
                weight = inside.astype(dtype) if weight is None else weight * inside
        taps.append((_fold(index, size, fill_mode), weight))
    return taps


def _product(a, b):
    if a is None:
        return b
    return a if b is None else a * b


class _ImageLayer(Layer):
    """Shared argument handling for the image preprocessing layers."""

    def __init__(self, data_format: Optional[str] = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.data_format = _data_format(data_format)

    def compute_output_shape(self, input_shape):
        self._need_ndim(input_shape, 4, "(batch, height, width, channels)"
                        if self.data_format == "channels_last"
                        else "(batch, channels, height, width)")
        return tuple(input_shape)

    def _to_nhwc(self, x: np.ndarray) -> np.ndarray:
        if x.ndim != 4:
            raise fail("inputs", "a 4-D image batch", f"an array of shape {x.shape}")
        return x.transpose(0, 2, 3, 1) if self.data_format == "channels_first" else x

    def _from_nhwc(self, x: np.ndarray) -> np.ndarray:
        return x.transpose(0, 3, 1, 2) if self.data_format == "channels_first" else x

    def get_config(self):
        config = super().get_config()
        config["data_format"] = self.data_format
        return config


class Rescaling(Layer):
    """``out = x * scale + offset``, in training and in inference (as Keras).

    Parameters
    ----------
    scale : float
        E.g. ``1 / 255`` to map uint8 pixels to [0, 1].
    offset : float
        Added after scaling (``scale=1/127.5, offset=-1`` maps to [-1, 1]).

    Any input shape; the output has the input's shape and dtype.
    """

    def __init__(self, scale: float, offset: float = 0.0, **kwargs: Any):
        super().__init__(**kwargs)
        self.scale = _number("scale", scale)
        self.offset = _number("offset", offset)

    def forward(self, x, training=False, workspace=None):
        out = np.multiply(x, x.dtype.type(self.scale), dtype=x.dtype)
        if self.offset:
            out += x.dtype.type(self.offset)
        return out, None

    def backward(self, dout, ctx, need_dx=True):
        return np.multiply(dout, dout.dtype.type(self.scale), dtype=dout.dtype), []

    def get_config(self):
        config = super().get_config()
        config.update({"scale": self.scale, "offset": self.offset})
        return config


class _RandomGather(_ImageLayer):
    """A random spatial transform applied by one gather; subclasses give the coordinates.

    ``_source(n, h, w)`` returns float arrays ``(rows, cols)`` broadcastable to
    ``(n, h, w)``: where output pixel ``(k, i, j)`` reads from in image ``k``.
    """

    def __init__(self, fill_mode: str = "reflect", interpolation: str = "bilinear",
                 seed: Optional[int] = None, fill_value: float = 0.0,
                 data_format: Optional[str] = None, **kwargs: Any):
        super().__init__(data_format=data_format, **kwargs)
        self.fill_mode = _choice("fill_mode", fill_mode, _FILL_MODES)
        self.interpolation = _choice("interpolation", interpolation, _INTERPOLATIONS)
        self.fill_value = _number("fill_value", fill_value)
        self.seed = _seed(seed)
        self._rng = np.random.default_rng(self.seed if self.seed is not None else child_seed())
        self._rng_lock = threading.Lock()

    def _source(self, n: int, h: int, w: int) -> Tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def _is_identity(self) -> bool:
        return False

    def forward(self, x, training=False, workspace=None):
        """``(out, ctx)``: ctx is None (nothing moved), the coordinates ``(rows, cols,
        shape)`` of the gather, or what :meth:`_coordinates` makes them from."""
        if not training or self._is_identity():
            return x, None
        x = self._to_nhwc(x)
        if x.size == 0:  # nothing to move
            return self._from_nhwc(x), None
        if _image is not None and x.dtype in (np.float32, np.float64):
            # One compiled pass, folding each source pixel by fill_mode: the same bits
            # as the NumPy gather (_gather_numpy).
            x = np.ascontiguousarray(x)
            out = np.empty_like(x)
            ctx = self._gather_fast(x, out, (self.interpolation == "bilinear",
                                             _FILL_MODES.index(self.fill_mode),
                                             self.fill_value))
            return self._from_nhwc(out), ctx
        rows, cols = self._sample(*x.shape[:3])
        return self._from_nhwc(self._gather_numpy(x, rows, cols)), (rows, cols, x.shape)

    def _sample(self, n: int, h: int, w: int):
        with self._rng_lock:  # one draw at a time from the layer's generator
            return self._source(n, h, w)

    def _coordinates(self, ctx):
        """``(rows, cols, shape)`` of the forward pass that returned ``ctx``, or None."""
        return ctx

    def _gather_fast(self, x, out, how):
        """out = x gathered at ``_source``'s coordinates, by the compiled kernels;
        returns the context."""
        n, h, w, c = x.shape
        rows, cols = self._sample(n, h, w)
        coords = (rows, cols, x.shape)
        rows = np.asarray(rows, np.float64)
        cols = np.asarray(cols, np.float64)
        if rows.shape[1:] == (h, 1) and cols.shape[1:] == (1, w):
            # Rows from the output row only, columns from the column only (flips,
            # translations): column taps folded once per image.
            _image.gather_separable(
                x, np.ascontiguousarray(np.broadcast_to(rows[:, :, 0], (n, h))),
                np.ascontiguousarray(np.broadcast_to(cols[:, 0, :], (n, w))), *how, out,
                np.empty((n, w, 2), np.intp), np.empty((n, w), x.dtype), get_num_threads())
        else:
            _image.gather(x, np.broadcast_to(rows, (n, h, w)),
                          np.broadcast_to(cols, (n, h, w)), *how, out, get_num_threads())
        return coords

    def _gather_numpy(self, x, rows, cols):
        """The gather in NumPy (the reference for the compiled one)."""
        n, h, w, c = x.shape
        # Pad once by fill_mode (np.pad's 'symmetric' is Keras's 'reflect'), wide enough
        # for every source coordinate: then the gather needs no per-pixel folding.
        below = max(-float(rows.min()), -float(cols.min()), 0.0)
        above = max(float(rows.max()) - (h - 1), float(cols.max()) - (w - 1), 0.0)
        m = int(math.ceil(max(below, above))) + (self.interpolation == "bilinear")
        if m:
            mode = {"reflect": "symmetric", "wrap": "wrap", "nearest": "edge",
                    "constant": "constant"}[self.fill_mode]
            extra = {"constant_values": self.fill_value} if mode == "constant" else {}
            x = np.pad(x, ((0, 0), (m, m), (m, m), (0, 0)), mode=mode, **extra)
        hp, wp = h + 2 * m, w + 2 * m
        flat = x.reshape(n * hp * wp, c)
        base = (np.arange(n, dtype=np.intp) * (hp * wp)).reshape(n, 1, 1)
        if self.interpolation == "nearest":
            r = np.rint(rows).astype(np.intp) + m
            q = np.rint(cols).astype(np.intp) + m
            index = np.broadcast_to(base + r * wp + q, (n, h, w)).reshape(-1)
            return np.take(flat, index, axis=0).reshape(n, h, w, c)
        r0, q0 = np.floor(rows), np.floor(cols)
        fr = (rows - r0).astype(x.dtype)[..., None]
        fq = (cols - q0).astype(x.dtype)[..., None]
        i00 = np.broadcast_to(base + (r0.astype(np.intp) + m) * wp
                              + (q0.astype(np.intp) + m), (n, h, w))

        def lerp(a, b, t):
            """``pixels[a] + (pixels[b] - pixels[a]) * t``, in place in one new array."""
            start = np.take(flat, a, axis=0).reshape(n, h, w, c)
            out = np.take(flat, b, axis=0).reshape(n, h, w, c)
            out -= start
            out *= t
            out += start
            return out

        top = lerp(i00, i00 + 1, fq)
        low = lerp(i00 + wp, i00 + (wp + 1), fq)
        low -= top
        low *= fr
        low += top
        return low

    def backward(self, dout, ctx, need_dx=True):
        coords = self._coordinates(ctx)
        if coords is None:
            return dout, []
        rows, cols, (n, h, w, c) = coords
        d = self._to_nhwc(dout)
        flat = d.reshape(n * h * w, c)
        dx = np.zeros((n * h * w, c), dtype=dout.dtype)
        # The transpose of the forward gather, with the padding folded back onto the image.
        base = (np.arange(n, dtype=np.intp) * (h * w)).reshape(n, 1, 1)
        row_taps = _taps(rows, h, self.interpolation, self.fill_mode, dout.dtype)
        col_taps = _taps(cols, w, self.interpolation, self.fill_mode, dout.dtype)
        for r, wr in row_taps:
            for q, wq in col_taps:
                index = np.broadcast_to(base + r * w + q, (n, h, w)).reshape(-1)
                weight = _product(wr, wq)
                contrib = flat if weight is None else flat * np.broadcast_to(
                    weight, (n, h, w)).reshape(-1, 1)
                # Columns one by one: bincount is the fast scatter-add NumPy has.
                for k in range(c):
                    dx[:, k] += np.bincount(index, weights=contrib[:, k],
                                            minlength=n * h * w)
        return self._from_nhwc(dx.reshape(n, h, w, c)), []

    def get_config(self):
        config = super().get_config()
        config.update({"fill_mode": self.fill_mode, "interpolation": self.interpolation,
                       "fill_value": self.fill_value, "seed": self.seed})
        return config


def _grid(n: int, h: int, w: int) -> Tuple[np.ndarray, np.ndarray]:
    """Row coordinates (n, h, 1) and column coordinates (n, 1, w) of the output grid."""
    rows = np.broadcast_to(np.arange(h, dtype=np.float64)[None, :, None], (n, h, 1))
    cols = np.broadcast_to(np.arange(w, dtype=np.float64)[None, None, :], (n, 1, w))
    return rows, cols


class RandomFlip(_RandomGather):
    """Flip each image, independently, with probability 1/2 (training only).

    Parameters
    ----------
    mode : {'horizontal', 'vertical', 'horizontal_and_vertical'}
        'horizontal' mirrors left-right (the width axis), 'vertical' up-down; with both,
        each axis is decided separately.
    seed : int, optional

    Input and output ``(N, H, W, C)``. A flip moves whole pixels, so it is exact
    (no interpolation or filling is involved).
    """

    def __init__(self, mode: str = "horizontal_and_vertical", seed: Optional[int] = None,
                 data_format: Optional[str] = None, **kwargs: Any):
        super().__init__(fill_mode="nearest", interpolation="nearest", seed=seed,
                         data_format=data_format, **kwargs)
        self.mode = _choice("mode", mode, ("horizontal", "vertical", "horizontal_and_vertical"))

    def _source(self, n, h, w):
        rows, cols = _grid(n, h, w)
        if self.mode in ("vertical", "horizontal_and_vertical"):
            flip = self._rng.random(n) < 0.5
            rows = np.where(flip[:, None, None], h - 1 - rows, rows)
        if self.mode in ("horizontal", "horizontal_and_vertical"):
            flip = self._rng.random(n) < 0.5
            cols = np.where(flip[:, None, None], w - 1 - cols, cols)
        return rows, cols

    def _gather_fast(self, x, out, how):
        # A flip is a reversed copy: the same values as the gather, in two passes.
        n, h, w, _ = x.shape
        rows, cols = self._sample(n, h, w)
        out[...] = x
        down = np.broadcast_to(rows, (n, h, 1))[:, 0, 0] != 0   # row 0 reads row h-1
        across = np.broadcast_to(cols, (n, 1, w))[:, 0, 0] != 0
        if down.any():
            out[down] = out[down, ::-1]
        if across.any():
            out[across] = out[across, :, ::-1]
        return rows, cols, x.shape

    def get_config(self):
        config = Layer.get_config(self)
        config.update({"mode": self.mode, "seed": self.seed, "data_format": self.data_format})
        return config


class RandomTranslation(_RandomGather):
    """Shift each image by a random fraction of its height and width (training only).

    Parameters
    ----------
    height_factor : float or (float, float)
        Vertical shift as a fraction of the height, drawn uniformly per image from
        ``(lower, upper)`` (a single ``f`` means ``(-f, f)``); positive moves the image
        down. Each bound in [-1, 1].
    width_factor : float or (float, float)
        The same for the width; positive moves the image right.
    fill_mode : {'reflect', 'constant', 'nearest', 'wrap'}
        How pixels shifted in from outside are filled (module docstring).
    interpolation : {'bilinear', 'nearest'}
        'nearest' shifts by whole pixels (the shift rounded), which is exact and faster.
    seed : int, optional
    fill_value : float
        The value for ``fill_mode='constant'``.

    Input and output ``(N, H, W, C)``.
    """

    def __init__(self, height_factor: Factor, width_factor: Factor, fill_mode: str = "reflect",
                 interpolation: str = "bilinear", seed: Optional[int] = None,
                 fill_value: float = 0.0, data_format: Optional[str] = None, **kwargs: Any):
        super().__init__(fill_mode=fill_mode, interpolation=interpolation, seed=seed,
                         fill_value=fill_value, data_format=data_format, **kwargs)
        self.height_factor = _factor("height_factor", height_factor, 1.0)
        self.width_factor = _factor("width_factor", width_factor, 1.0)

    def _is_identity(self):
        return self.height_factor == (0.0, 0.0) and self.width_factor == (0.0, 0.0)

    def _source(self, n, h, w):
        dy = self._rng.uniform(*self.height_factor, size=n) * h
        dx = self._rng.uniform(*self.width_factor, size=n) * w
        if self.interpolation == "nearest":
            dy, dx = np.rint(dy), np.rint(dx)
        rows, cols = _grid(n, h, w)
        return rows - dy[:, None, None], cols - dx[:, None, None]

    def get_config(self):
        config = super().get_config()
        config.update({"height_factor": list(self.height_factor),
                       "width_factor": list(self.width_factor)})
        return config


class RandomRotation(_RandomGather):
    """Rotate each image about its centre by a random angle (training only).

    Parameters
    ----------
    factor : float or (float, float)
        The angle as a fraction of a full turn (2 pi), drawn uniformly per image from
        ``(lower, upper)`` (a single ``f`` means ``(-f, f)``); positive turns
        counter-clockwise. ``0.25`` with ``(0.25, 0.25)`` is a quarter turn.
    fill_mode : {'reflect', 'constant', 'nearest', 'wrap'}
        How the corners brought in from outside the image are filled.
    interpolation : {'bilinear', 'nearest'}
    seed : int, optional
    fill_value : float
        The value for ``fill_mode='constant'``.

    Input and output ``(N, H, W, C)``.

    Notes
    -----
    Output pixel ``(i, j)``, centred as ``y = i - (H-1)/2``, ``x = j - (W-1)/2``, reads
    the input at ``x' = x cos a - y sin a``, ``y' = x sin a + y cos a`` (the inverse of a
    counter-clockwise turn by ``a`` with rows growing downwards).
    """

    def __init__(self, factor: Factor, fill_mode: str = "reflect",
                 interpolation: str = "bilinear", seed: Optional[int] = None,
                 fill_value: float = 0.0, data_format: Optional[str] = None, **kwargs: Any):
        super().__init__(fill_mode=fill_mode, interpolation=interpolation, seed=seed,
                         fill_value=fill_value, data_format=data_format, **kwargs)
        self.factor = _factor("factor", factor, None)

    def _is_identity(self):
        return self.factor == (0.0, 0.0)

    def _source(self, n, h, w):
        return self._turn(self._angles(n), h, w)

    def _angles(self, n):
        return self._rng.uniform(*self.factor, size=n) * (2 * np.pi)

    @staticmethod
    def _turn(angle, h, w):
        """Source coordinates of the turns by ``angle`` (n,) of (h, w) images."""
        cos, sin = np.cos(angle)[:, None, None], np.sin(angle)[:, None, None]
        cy, cx = (h - 1) / 2, (w - 1) / 2
        y = np.arange(h, dtype=np.float64)[None, :, None] - cy
        x = np.arange(w, dtype=np.float64)[None, None, :] - cx
        return x * sin + y * cos + cy, x * cos - y * sin + cx

    def _gather_fast(self, x, out, how):
        # The kernel works the coordinates out itself (as _turn does), so the forward
        # pass never stores them; backward computes them only if it is called.
        with self._rng_lock:
            angle = self._angles(x.shape[0])
        _image.gather_rotated(x, np.sin(angle), np.cos(angle), *how, out, get_num_threads())
        return ("turn", angle, x.shape)

    def _coordinates(self, ctx):
        if ctx is not None and ctx[0] == "turn":
            _, angle, shape = ctx
            return self._turn(angle, shape[1], shape[2]) + (shape,)
        return ctx

    def get_config(self):
        config = super().get_config()
        config["factor"] = list(self.factor)
        return config


class RandomZoom(_RandomGather):
    """Zoom each image about its centre by a random factor (training only).

    Parameters
    ----------
    height_factor : float or (float, float)
        Drawn per image from ``(lower, upper)`` (a single ``f`` means ``(-f, f)``), each
        bound in (-1, 1]: the source spans ``1 + factor`` times the image's height, so a
        positive factor zooms out and a negative one zooms in (Keras's convention).
    width_factor : float or (float, float), optional
        The same for the width; None (the default) zooms the width as the height, which
        keeps the aspect ratio.
    fill_mode, interpolation, seed, fill_value, data_format
        As :class:`RandomTranslation`.

    Notes
    -----
    Output pixel ``(i, j)`` reads the input at ``(cy + zy * (i - cy), cx + zx * (j -
    cx))`` with ``cy = (H - 1) / 2``, ``cx = (W - 1) / 2`` (Keras's zoom matrix).
    """

    def __init__(self, height_factor: Factor, width_factor: Optional[Factor] = None,
                 fill_mode: str = "reflect", interpolation: str = "bilinear",
                 seed: Optional[int] = None, fill_value: float = 0.0,
                 data_format: Optional[str] = None, **kwargs: Any):
        super().__init__(fill_mode=fill_mode, interpolation=interpolation, seed=seed,
                         fill_value=fill_value, data_format=data_format, **kwargs)
        self.height_factor = _zoom_factor("height_factor", height_factor)
        self.width_factor = None if width_factor is None else _zoom_factor(
            "width_factor", width_factor)

    def _is_identity(self):
        return self.height_factor == (0.0, 0.0) and self.width_factor in (None, (0.0, 0.0))

    def _source(self, n, h, w):
        zy = 1 + self._rng.uniform(*self.height_factor, size=n)
        zx = zy if self.width_factor is None else 1 + self._rng.uniform(
            *self.width_factor, size=n)
        rows, cols = _grid(n, h, w)
        cy, cx = (h - 1) / 2, (w - 1) / 2
        return cy + zy[:, None, None] * (rows - cy), cx + zx[:, None, None] * (cols - cx)

    def get_config(self):
        config = super().get_config()
        config.update({"height_factor": list(self.height_factor),
                       "width_factor": None if self.width_factor is None
                       else list(self.width_factor)})
        return config


def _zoom_factor(name: str, value: Any) -> Tuple[float, float]:
    """Keras's zoom factor: each bound in (-1, 1]; a pair is sorted."""
    expected = "a number in (-1, 1] or a pair of them"
    items = list(value) if isinstance(value, (list, tuple)) else [value]
    if len(items) not in (1, 2):
        raise fail(name, expected, value)
    nums = [_number(name, v) for v in items]
    if any(not -1 < v <= 1 for v in nums):
        raise fail(name, expected, value)
    if len(nums) == 1:
        return -abs(nums[0]), abs(nums[0])
    lower, upper = sorted(nums)
    return lower, upper
