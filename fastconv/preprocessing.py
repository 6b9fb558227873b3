"""Keras 3 preprocessing layers for images: ``Rescaling`` and random augmentation.

``RandomFlip``, ``RandomTranslation`` and ``RandomRotation`` change their input only
when ``training=True`` (inside ``fit``); in ``evaluate``/``predict`` they are the
identity, as in Keras. ``Rescaling`` is not random and applies always.

All three random layers are one vectorised NumPy gather over the whole batch: each
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
from typing import Any, List, Optional, Sequence, Tuple, Union

import numpy as np

from ._random import child_seed
from .backends._args import fail
from .layers import Layer, _data_format

__all__ = ["Rescaling", "RandomFlip", "RandomTranslation", "RandomRotation"]

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
    if fill_mode == "wrap":
        return np.mod(index, size)
    if fill_mode == "reflect":
        # Period 2*size: 0..size-1 forwards, then size-1..0 backwards.
        index = np.mod(index, 2 * size)
        return np.where(index >= size, 2 * size - 1 - index, index)
    return np.clip(index, 0, size - 1)


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

    def forward(self, x, training=False):
        out = np.multiply(x, x.dtype.type(self.scale), dtype=x.dtype)
        if self.offset:
            out += x.dtype.type(self.offset)
        return out

    def backward(self, dout):
        return np.multiply(dout, dout.dtype.type(self.scale), dtype=dout.dtype)

    def get_config(self):
        config = super().get_config()
        config.update({"scale": self.scale, "offset": self.offset})
        return config


class _RandomGather(_ImageLayer):
    """A random spatial transform applied by one gather; subclasses give the coordinates.

    ``_source(n, h, w)`` returns float arrays ``(rows, cols)`` of shape ``(n, h, w)``:
    where output pixel ``(k, i, j)`` reads from in image ``k``.
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
        self._taps: Optional[List[Tuple[np.ndarray, Optional[np.ndarray]]]] = None

    def _source(self, n: int, h: int, w: int) -> Tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def _is_identity(self) -> bool:
        return False

    def forward(self, x, training=False):
        self._taps = None
        if not training or self._is_identity():
            return x
        x = self._to_nhwc(x)
        n, h, w, c = x.shape
        rows, cols = self._source(n, h, w)
        base = (np.arange(n) * (h * w))[:, None, None]
        flat = x.reshape(n * h * w, c)
        if self.interpolation == "nearest":
            r, q = np.rint(rows).astype(np.intp), np.rint(cols).astype(np.intp)
            corners = [(r, q, None)]
        else:
            r0, q0 = np.floor(rows), np.floor(cols)
            fr, fq = rows - r0, cols - q0
            r0, q0 = r0.astype(np.intp), q0.astype(np.intp)
            corners = [(r0, q0, (1 - fr) * (1 - fq)), (r0, q0 + 1, (1 - fr) * fq),
                       (r0 + 1, q0, fr * (1 - fq)), (r0 + 1, q0 + 1, fr * fq)]
        out = None
        taps = []
        for r, q, weight in corners:
            if self.fill_mode == "constant":
                inside = (r >= 0) & (r < h) & (q >= 0) & (q < w)
                # An outside tap contributes fill_value; folding it to a clipped index
                # and zeroing its weight keeps the gather a single fancy index.
                weight = inside.astype(x.dtype) if weight is None else weight * inside
            index = (base + _fold(r, h, self.fill_mode) * w + _fold(q, w, self.fill_mode))
            index = index.reshape(-1)
            wt = None if weight is None else weight.reshape(-1, 1).astype(x.dtype, copy=False)
            term = flat[index] if wt is None else flat[index] * wt
            out = term if out is None else out + term
            taps.append((index, wt))
        if self.fill_mode == "constant" and self.fill_value != 0:
            total = sum(wt for _, wt in taps)
            out += (1 - total) * x.dtype.type(self.fill_value)
        self._taps = taps
        return self._from_nhwc(out.reshape(n, h, w, c))

    def backward(self, dout):
        if self._taps is None:
            return dout
        d = self._to_nhwc(dout)
        n, h, w, c = d.shape
        flat = d.reshape(n * h * w, c)
        dx = np.zeros((n * h * w, c), dtype=dout.dtype)
        for index, wt in self._taps:
            contrib = flat if wt is None else flat * wt
            # Columns one by one: bincount is the fast scatter-add NumPy has.
            for k in range(c):
                dx[:, k] += np.bincount(index, weights=contrib[:, k], minlength=n * h * w)
        return self._from_nhwc(dx.reshape(n, h, w, c))

    def get_config(self):
        config = super().get_config()
        config.update({"fill_mode": self.fill_mode, "interpolation": self.interpolation,
                       "fill_value": self.fill_value, "seed": self.seed})
        return config


def _grid(n: int, h: int, w: int) -> Tuple[np.ndarray, np.ndarray]:
    rows = np.broadcast_to(np.arange(h, dtype=np.float64)[None, :, None], (n, h, w))
    cols = np.broadcast_to(np.arange(w, dtype=np.float64)[None, None, :], (n, h, w))
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
        angle = self._rng.uniform(*self.factor, size=n) * (2 * np.pi)
        cos, sin = np.cos(angle)[:, None, None], np.sin(angle)[:, None, None]
        cy, cx = (h - 1) / 2, (w - 1) / 2
        y = np.arange(h, dtype=np.float64)[None, :, None] - cy
        x = np.arange(w, dtype=np.float64)[None, None, :] - cx
        return x * sin + y * cos + cy, x * cos - y * sin + cx

    def get_config(self):
        config = super().get_config()
        config["factor"] = list(self.factor)
        return config
