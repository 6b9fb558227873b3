"""The classic image-processing kernels, applied with fastconv's convolution.

The pictures every CNN lecture starts with: sharpen, blur, edge detection,
emboss and Sobel kernels slid over a photograph. :func:`apply` runs them on
fastconv's compiled convolution, :func:`initializer` lets a Conv2D layer start
from one, and ``python -m fastconv filter IMAGE --kernel sharpen -o OUT.png``
does it from the shell.

Like every deep learning library (and unlike ``scipy.ndimage.convolve``), the
convolution is a cross-correlation: the kernel is not flipped. So ``sobel_x`` is
positive where brightness increases to the right, ``sobel_y`` where it increases
downwards, and ``emboss`` brightens edges where the image gets brighter towards
the bottom right.

Reading and writing images (:func:`read_image`, :func:`write_image`) needs
Pillow: ``pip install 'fastconv[image]'``.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any, Callable, Dict, Optional, Tuple, Union

import numpy as np

from . import ops
from .backends._args import as_float_array, fail

__all__ = ["NAMES", "get", "apply", "initializer", "ClassicKernel", "read_image",
           "write_image"]

_KERNELS: Dict[str, np.ndarray] = {
    "identity": np.array([[0, 0, 0], [0, 1, 0], [0, 0, 0]], dtype=float),
    "sharpen": np.array([[0, -1, 0], [-1, 5, -1], [0, -1, 0]], dtype=float),
    "blur": np.full((3, 3), 1 / 9),
    "gaussian": np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1]], dtype=float) / 16,
    "edge": np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0]], dtype=float),
    "emboss": np.array([[-2, -1, 0], [-1, 1, 1], [0, 1, 2]], dtype=float),
    "sobel_x": np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], dtype=float),
    "sobel_y": np.array([[-1, -2, -1], [0, 0, 0], [1, 2, 1]], dtype=float),
}

#: The names :func:`get` knows.
NAMES: Tuple[str, ...] = tuple(_KERNELS)

_PADDINGS = ("same", "valid", "reflect", "edge")

Kernel = Union[str, np.ndarray]


def get(name: str) -> np.ndarray:
    """The classic kernel called ``name``, as a new (3, 3) float64 array.

    Parameters
    ----------
    name : str
        One of :data:`NAMES`: 'identity', 'sharpen', 'blur' (the 3x3 box average),
        'gaussian' (3x3 binomial, sums to 1), 'edge' (the Laplacian
        0 1 0 / 1 -4 1 / 0 1 0), 'emboss' (-2 -1 0 / -1 1 1 / 0 1 2), 'sobel_x',
        'sobel_y'. Case does not matter.

    Returns
    -------
    kernel : ndarray, shape (3, 3), float64
        A copy: changing it does not change the table.

    Examples
    --------
    >>> from fastconv import filters
    >>> filters.get("edge")
    array([[ 0.,  1.,  0.],
           [ 1., -4.,  1.],
           [ 0.,  1.,  0.]])
    """
    if not isinstance(name, str):
        raise fail("name", "a kernel name (str)", name, TypeError)
    key = name.strip().lower()
    if key not in _KERNELS:
        raise fail("name", "one of " + ", ".join(repr(n) for n in NAMES), name)
    return _KERNELS[key].copy()


def _kernel(kernel: Any, name: str = "kernel") -> np.ndarray:
    """A name or a 2-D array, as a (KH, KW) float64 array."""
    if isinstance(kernel, str):
        try:
            return get(kernel)
        except ValueError:
            raise fail(name, "one of " + ", ".join(repr(n) for n in NAMES) +
                       " or a 2-D array", kernel) from None
    k = as_float_array(kernel, name, np.float64)
    if k.ndim != 2 or 0 in k.shape:
        raise fail(name, "a kernel name or a non-empty 2-D array (KH, KW)", k)
    return k


def apply(image: Any, kernel: Kernel, padding: str = "same") -> np.ndarray:
    """Filter an image with a kernel, each colour channel separately.

    Parameters
    ----------
    image : array_like, shape (H, W) or (H, W, C)
        Grayscale, or C channels (3 for RGB), each filtered on its own. dtype
        uint8 (values 0..255), float32 or float64 (any range).
    kernel : str or array_like, shape (KH, KW)
        A name from :data:`NAMES` or any 2-D kernel (applied unflipped, as a
        Conv2D layer would).
    padding : {'same', 'valid', 'reflect', 'edge'}
        'same': zeros around the image, output (H, W) (Keras's 'same'; borders
        darken under a blur). 'valid': no padding, output (H - KH + 1, W - KW + 1).
        'reflect' and 'edge': output (H, W), the image mirrored (without repeating
        the border pixel) or its border pixels repeated, as ``np.pad`` does, which
        avoids dark or bright borders.

    Returns
    -------
    out : ndarray, shape (OH, OW) or (OH, OW, C)
        uint8 input gives uint8 output, rounded to the nearest integer and clipped
        to 0..255; float input keeps its dtype, unclipped.

    Notes
    -----
    The channels become the batch of one call to
    :func:`fastconv.ops.conv2d_forward`, with a (KH, KW, 1, 1) weight.

    Examples
    --------
    >>> import numpy as np
    >>> from fastconv import filters
    >>> image = np.full((4, 5), 100, dtype=np.uint8)
    >>> filters.apply(image, "blur", padding="edge")[1:3, 1:4]
    array([[100, 100, 100],
           [100, 100, 100]], dtype=uint8)
    """
    img = np.asarray(image)
    if img.dtype == np.uint8:
        work = np.float32  # exact for 0..255 and for the sums of any small kernel
    elif img.dtype in (np.float32, np.float64):
        work = img.dtype.type
    else:
        raise fail("image", "an array of dtype uint8, float32 or float64", img, TypeError)
    if img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[2] < 1):
        raise fail("image", "a 2-D (H, W) grayscale or 3-D (H, W, C) colour image", img)
    k = _kernel(kernel)
    if not isinstance(padding, str) or padding.lower() not in _PADDINGS:
        raise fail("padding", "one of " + ", ".join(repr(p) for p in _PADDINGS), padding)
    mode = padding.lower()
    planes = img[None] if img.ndim == 2 else np.moveaxis(img, 2, 0)  # (C, H, W)
    x = planes[..., None].astype(work)  # channels as the batch: (C, H, W, 1)
    conv_padding = mode if mode in ("same", "valid") else "valid"
    if mode in ("reflect", "edge"):
        # Where 'same' would put zeros, put image pixels: the same amounts, odd one last.
        (top, bottom), (left, right) = (((s - 1) // 2, s - 1 - (s - 1) // 2) for s in k.shape)
        x = np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)), mode=mode)
    try:
        out, _ = ops.conv2d_forward(x, k[:, :, None, None], None, 1, conv_padding)
    except ValueError as err:
        raise fail("image", f"at least as large as the kernel {k.shape} with "
                   f"padding={padding!r}", img) from err
    out = out[..., 0]
    out = out[0] if img.ndim == 2 else np.moveaxis(out, 0, 2)
    if img.dtype == np.uint8:
        return np.clip(np.rint(out), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(out)


class ClassicKernel:
    """A Keras-style initializer that fills a Conv2D kernel with a classic kernel.

    Call it as ``init(shape, dtype=None)`` with ``shape = (KH, KW, C_in, C_out)``;
    (KH, KW) must be the kernel's shape. Make one with :func:`initializer`.

    Parameters
    ----------
    kernel : str or array_like, shape (KH, KW)
        A name from :data:`NAMES` or a 2-D array.
    channels : {'mean', 'separate'}
        How the input and output channels are filled. 'mean' (default): every
        output channel applies the kernel to the average of the input channels,
        ``w[:, :, c, f] = kernel / C_in`` (for RGB input: the filtered grayscale
        image in every feature map). 'separate': output channel f filters input
        channel f only (``w[:, :, f, f] = kernel``, zeros elsewhere), as
        :func:`apply` does; needs C_in == C_out.
    """

    def __init__(self, kernel: Kernel, channels: str = "mean") -> None:
        if channels not in ("mean", "separate"):
            raise fail("channels", "'mean' or 'separate'", channels)
        self.kernel = kernel if isinstance(kernel, str) else _kernel(kernel).tolist()
        self.channels = channels
        self._k = _kernel(kernel)

    def __call__(self, shape: Tuple[int, ...], dtype: Optional[Any] = None) -> np.ndarray:
        """The (KH, KW, C_in, C_out) weights, of ``dtype`` (default float32)."""
        dtype = np.dtype(np.float32 if dtype is None else dtype)
        if dtype.kind != "f":
            raise fail("dtype", "a floating dtype", dtype, TypeError)
        shape = tuple(shape)
        if len(shape) != 4 or shape[:2] != self._k.shape or min(shape) < 1:
            raise fail("shape", f"(KH, KW, C_in, C_out) with (KH, KW) = {self._k.shape}, "
                       "the classic kernel's shape", shape)
        _, _, c_in, c_out = shape
        w = np.zeros(shape, dtype=np.float64)
        if self.channels == "mean":
            w[...] = self._k[:, :, None, None] / c_in
        else:
            if c_in != c_out:
                raise fail("shape", "one with C_in == C_out for channels='separate'", shape)
            for f in range(c_out):
                w[:, :, f, f] = self._k
        return w.astype(dtype)

    def get_config(self) -> dict:
        return {"kernel": self.kernel, "channels": self.channels}

    @classmethod
    def from_config(cls, config: dict) -> "ClassicKernel":
        return cls(**config)

    def __repr__(self) -> str:
        return f"ClassicKernel(kernel={self.kernel!r}, channels={self.channels!r})"


def initializer(kernel: Kernel, channels: str = "mean") -> Callable[..., np.ndarray]:
    """A Keras-style kernel initializer that starts a Conv2D from a classic kernel.

    Use as ``Conv2D(8, (3, 3), kernel_initializer=filters.initializer('edge'))``.

    Parameters
    ----------
    kernel : str or array_like, shape (KH, KW)
        A name from :data:`NAMES` or a 2-D array; the layer's kernel_size must match.
    channels : {'mean', 'separate'}
        'mean': ``w[:, :, c, f] = kernel / C_in`` for every input channel c and output
        channel f, so each feature map is the kernel applied to the channel average.
        'separate': ``w[:, :, f, f] = kernel`` and zeros elsewhere, each output channel
        filtering its own input channel (C_in must equal C_out).

    Returns
    -------
    init : ClassicKernel
        ``init(shape, dtype=None)`` returns an array of ``shape`` (KH, KW, C_in, C_out)
        and ``dtype`` (default float32); ``init.get_config()`` describes it.

    Examples
    --------
    >>> from fastconv import filters
    >>> w = filters.initializer("edge")((3, 3, 1, 2))
    >>> w.shape, float(w[1, 1, 0, 1])
    ((3, 3, 1, 2), -4.0)
    """
    return ClassicKernel(kernel, channels)


# ------------------------------------------------------------------------ image files


def _pillow():
    try:
        from PIL import Image
    except ImportError as err:
        raise ImportError(
            "Reading and writing images needs Pillow, an optional dependency of fastconv: "
            "pip install 'fastconv[image]'"
        ) from err
    return Image


def read_image(path: Union[str, os.PathLike]) -> np.ndarray:
    """Read a PNG, JPEG or other Pillow-readable image as a uint8 array.

    Returns
    -------
    image : ndarray, uint8, shape (H, W) for grayscale, (H, W, 3) for colour, or
        (H, W, 2) / (H, W, 4) for grayscale / colour with an alpha channel. Other
        modes (palette, 16-bit, CMYK, ...) are converted to RGB.
    """
    Image = _pillow()
    with Image.open(path) as im:
        if im.mode not in ("L", "LA", "RGB", "RGBA"):
            im = im.convert("RGBA" if "transparency" in im.info or "A" in im.mode else "RGB")
        return np.asarray(im).copy()


def write_image(path: Union[str, os.PathLike], image: Any) -> None:
    """Write a uint8 image (H, W), (H, W, 3) or with alpha (H, W, 2), (H, W, 4).

    The format follows the file's extension (.png, .jpg, ...). The file is written
    next to its destination under a temporary name, then moved over it, so an
    existing file is never left half written. JPEG has no alpha: it is dropped.
    """
    Image = _pillow()
    img = np.asarray(image)
    if img.dtype != np.uint8:
        raise fail("image", "an array of dtype uint8", img, TypeError)
    if not (img.ndim == 2 or (img.ndim == 3 and img.shape[2] in (1, 2, 3, 4))):
        raise fail("image", "an array of shape (H, W) or (H, W, C) with C in 1..4", img)
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    path = os.fspath(path)
    ext = os.path.splitext(path)[1].lower()
    fmt = Image.registered_extensions().get(ext)
    if fmt is None:
        raise fail("path", "a file name ending in an image extension such as .png or .jpg",
                   path)
    pil = Image.fromarray(img)
    if fmt == "JPEG" and pil.mode in ("LA", "RGBA"):
        pil = pil.convert(pil.mode[:-1])
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".fastconv-", suffix=ext)
    try:
        with os.fdopen(fd, "wb") as f:
            pil.save(f, format=fmt)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
