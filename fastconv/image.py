"""Image files as arrays, Keras's ``keras.utils`` functions (needs Pillow, the ``image`` extra).

``load_img`` reads a file into a Pillow image, ``img_to_array`` makes it a float array of
shape ``(H, W, C)`` (``(C, H, W)`` with ``data_format='channels_first'``), C = 1, 3 or 4
for ``color_mode`` 'grayscale', 'rgb' or 'rgba'; ``array_to_img`` and ``save_img`` go
back, by default rescaling the array to 0..255 as Keras does.
"""

from __future__ import annotations

import io
import os
from typing import Any, Optional, Sequence

import numpy as np

from .backends._args import fail

__all__ = ["load_img", "img_to_array", "array_to_img", "save_img"]

_MODES = {"grayscale": "L", "rgb": "RGB", "rgba": "RGBA"}
_CHANNELS = {1: "L", 3: "RGB", 4: "RGBA"}


def _pil():
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - Pillow is in the dev extra
        raise ImportError("Image files need Pillow: pip install 'fastconv[image]'.") from None
    return Image


def _format(data_format: Optional[str]) -> str:
    if data_format is None:
        from .layers import _data_format

        return _data_format(None)
    if data_format not in ("channels_last", "channels_first"):
        raise fail("data_format", "'channels_last' or 'channels_first'", data_format)
    return data_format


def load_img(path: Any, color_mode: str = "rgb", target_size: Optional[Sequence[int]] = None,
             interpolation: str = "nearest", keep_aspect_ratio: bool = False):
    """The image in file ``path`` as a Pillow image in ``color_mode``, resized to
    ``target_size = (height, width)`` when given (Pillow's resampling ``interpolation``,
    after a centred crop to the target's aspect ratio when ``keep_aspect_ratio``)."""
    Image = _pil()
    if color_mode not in _MODES:
        raise fail("color_mode", "one of 'grayscale', 'rgb', 'rgba'", color_mode)
    methods = {"nearest": Image.NEAREST, "bilinear": Image.BILINEAR,
               "bicubic": Image.BICUBIC, "lanczos": Image.LANCZOS, "box": Image.BOX,
               "hamming": Image.HAMMING}
    if interpolation not in methods:
        raise fail("interpolation", f"one of {sorted(methods)}", interpolation)
    if target_size is not None and (len(target_size) != 2 or not all(
            isinstance(d, (int, np.integer)) and d > 0 for d in target_size)):
        raise fail("target_size", "None or (height, width) of positive ints", target_size)
    try:
        with Image.open(os.fspath(path)) as f:
            img = f.convert(_MODES[color_mode])
    except (OSError, SyntaxError, ValueError) as e:
        raise ValueError(f"{os.fspath(path)!r} is not an image Pillow can decode ({e}).") \
            from None
    if target_size is not None:
        height, width = int(target_size[0]), int(target_size[1])
        box = None
        if keep_aspect_ratio:
            w, h = img.size
            crop_h, crop_w = min(h, w * height // width), min(w, h * width // height)
            top, left = (h - crop_h) // 2, (w - crop_w) // 2
            box = (left, top, left + crop_w, top + crop_h)
        if img.size != (width, height) or box is not None:
            img = img.resize((width, height), methods[interpolation], box=box)
    return img


def img_to_array(img: Any, data_format: Optional[str] = None, dtype: Any = None) -> np.ndarray:
    """A Pillow image (or array) as an array ``(H, W, C)`` or ``(C, H, W)``, float32 by
    default; a grey image gets C = 1."""
    data_format = _format(data_format)
    x = np.asarray(img, dtype=np.dtype(dtype or "float32"))
    if x.ndim == 2:
        x = x[:, :, None]
    if x.ndim != 3:
        raise fail("img", "an image of 2 or 3 dimensions", x.shape)
    return np.ascontiguousarray(x.transpose(2, 0, 1)) if data_format == "channels_first" else x


def array_to_img(x: Any, data_format: Optional[str] = None, scale: bool = True,
                 dtype: Any = None):
    """A Pillow image from an array ``(H, W, C)`` (C = 1, 3, 4; ``(C, H, W)`` with
    channels_first); ``scale`` maps its minimum..maximum to 0..255 first."""
    Image = _pil()
    data_format = _format(data_format)
    x = np.asarray(x, dtype=np.dtype(dtype or "float32"))
    if x.ndim != 3:
        raise fail("x", "an image array of 3 dimensions", x.shape)
    if data_format == "channels_first":
        x = x.transpose(1, 2, 0)
    if x.shape[2] not in _CHANNELS:
        raise fail("x", "an image with 1, 3 or 4 channels", x.shape)
    if scale:
        x = x - np.min(x)
        top = np.max(x)
        if top != 0:
            x = x / top
        x = x * 255
    pixels = np.clip(x, 0, 255).astype(np.uint8)
    return Image.fromarray(pixels[:, :, 0] if x.shape[2] == 1 else pixels,
                           _CHANNELS[x.shape[2]])


def save_img(path: Any, x: Any, data_format: Optional[str] = None,
             file_format: Optional[str] = None, scale: bool = True, **kwargs: Any) -> None:
    """Write array ``x`` as an image file (format from ``file_format`` or the name's
    extension), atomically: a temporary file in the same directory, then os.replace."""
    from ._saving import _atomic_write

    Image = _pil()
    img = array_to_img(x, data_format=data_format, scale=scale)
    if file_format is None:
        ext = os.path.splitext(os.fspath(path))[1].lower()
        file_format = Image.registered_extensions().get(ext)
        if file_format is None:
            raise fail("path", "a name with an image extension (or give file_format)", path)
    if img.mode == "RGBA" and file_format.upper() in ("JPEG", "JPG"):
        img = img.convert("RGB")  # JPEG has no alpha, as Keras does
    buf = io.BytesIO()
    img.save(buf, format=file_format, **kwargs)
    _atomic_write(path, buf.getvalue(), overwrite=True)
