"""Images from folders (Keras: ``keras.utils.image_dataset_from_directory``) and the image
helpers ``load_img``, ``img_to_array``, ``array_to_img``, ``save_img``.

``image_dataset_from_directory("photos/train")`` with one subfolder per class gives a
dataset to pass to ``fit``, ``evaluate`` and ``predict``: it iterates NumPy batches
``(images, labels)``, images ``(batch, height, width, channels)`` float32 in 0-255.
Keras's rules:

- class names are the subfolders' names, sorted; files are found recursively in
  each, with the extensions .bmp, .gif, .jpeg, .jpg, .png (others are skipped), in
  sorted order, class by class;
- with ``shuffle`` the file list is shuffled once with ``seed`` (labels alike), then
  ``validation_split`` keeps the last fraction for ``subset="validation"`` and the rest
  for ``"training"`` (``"both"`` returns the two); with ``shuffle`` the order of the
  files is drawn again each epoch, from ``seed`` and the epoch;
- ``label_mode``: ``"int"`` (class indices), ``"categorical"`` (one-hot), ``"binary"``
  (0/1 floats of shape (batch, 1), two classes), or None (images only).

Images are decoded with Pillow (the ``image`` extra) in a background thread, a few
batches ahead of training, and resized with fastconv's compiled resize kernel
(half-pixel centres, as Keras resizes; ``crop_to_aspect_ratio`` first crops the largest
centred box of the target's aspect ratio). A file Pillow cannot decode stops the
iteration with a ValueError naming it. Without ``seed``, one is drawn from fastconv's
global generator, so :func:`fastconv.utils.set_random_seed` makes the order repeatable.
"""

from __future__ import annotations

import os
import queue
import tempfile
import threading
from typing import Any, List, Optional, Sequence, Tuple

import numpy as np

from . import _random, ops
from .backends._args import fail

__all__ = ["image_dataset_from_directory", "ImageDataset", "load_img", "img_to_array",
           "array_to_img", "save_img", "ALLOWED_EXTENSIONS"]

ALLOWED_EXTENSIONS = (".bmp", ".gif", ".jpeg", ".jpg", ".png")
_MODES = {"grayscale": ("L", 1), "rgb": ("RGB", 3), "rgba": ("RGBA", 4)}
_PREFETCH = 2  # batches decoded ahead of the consumer


def _pil():
    try:
        from PIL import Image
    except ImportError as exc:  # pragma: no cover - Pillow is in the dev extra
        raise ImportError("Reading images needs Pillow: pip install 'fastconv[image]' "
                          f"({exc})") from exc
    return Image


def _pair(name, value):
    if isinstance(value, (tuple, list)) and len(value) == 2 and all(
            isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 1
            for v in value):
        return int(value[0]), int(value[1])
    raise fail(name, "a pair (height, width) of positive ints", value)


def _list_files(directory: str, follow_links: bool) -> List[str]:
    found = []
    for root, dirs, files in os.walk(directory, followlinks=follow_links):
        dirs.sort()
        for f in sorted(files):
            if f.lower().endswith(ALLOWED_EXTENSIONS):
                found.append(os.path.join(root, f))
    return found


def _crop_box(h: int, w: int, target: Tuple[int, int]):
    """The largest centred (top, left, height, width) box of the target's aspect ratio."""
    th, tw = target
    ch = min(h, int(round(w * th / tw)))
    cw = min(w, int(round(h * tw / th)))
    return (h - ch) // 2, (w - cw) // 2, ch, cw


def _load(path: str, mode: str, size, interpolation: str, crop: bool) -> np.ndarray:
    Image = _pil()
    try:
        with Image.open(path) as img:
            arr = np.asarray(img.convert(mode), dtype=np.float32)
    except Exception as exc:  # Pillow raises many types for a bad file
        raise ValueError(f"The image file {path!r} cannot be decoded: {exc}") from exc
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if crop:
        top, left, ch, cw = _crop_box(arr.shape[0], arr.shape[1], size)
        arr = arr[top:top + ch, left:left + cw]
    if arr.shape[:2] != tuple(size):
        arr = ops.resize2d_forward(np.ascontiguousarray(arr[None]), size, interpolation)[0][0]
    return arr


class ImageDataset:
    """Batches of images (and labels) read from files; what
    :func:`image_dataset_from_directory` returns.

    Iterating gives one epoch of ``(images, labels)`` batches (``images`` alone with
    ``label_mode=None``); ``len()`` is the number of batches; ``class_names`` and
    ``file_paths`` are Keras's attributes.
    """

    def __init__(self, file_paths: Sequence[str], labels: Optional[np.ndarray],
                 class_names: List[str], batch_size: Optional[int], image_size, mode: str,
                 interpolation: str, crop: bool, shuffle: bool, seed: int):
        self.file_paths = list(file_paths)
        self._labels = labels
        self.class_names = list(class_names)
        self.batch_size = batch_size
        self.image_size, self._mode = image_size, mode
        self._interpolation, self._crop = interpolation, crop
        self._shuffle, self._seed = shuffle, seed
        self._epoch = 0

    def __len__(self) -> int:
        if self.batch_size is None:
            return len(self.file_paths)
        return -(-len(self.file_paths) // self.batch_size)

    def _order(self, epoch: int) -> np.ndarray:
        n = len(self.file_paths)
        if not self._shuffle:
            return np.arange(n)
        return np.random.default_rng((self._seed, epoch)).permutation(n)

    def _batch(self, idx) -> Any:
        images = np.stack([_load(self.file_paths[i], self._mode, self.image_size,
                                 self._interpolation, self._crop) for i in idx])
        if self.batch_size is None:
            images = images[0]
        if self._labels is None:
            return images
        labels = self._labels[idx]
        return images, (labels[0] if self.batch_size is None else labels)

    def __iter__(self):
        order = self._order(self._epoch)
        self._epoch += 1
        step = self.batch_size or 1
        chunks = [order[i:i + step] for i in range(0, len(order), step)]
        q: "queue.Queue" = queue.Queue(maxsize=_PREFETCH)
        stop = threading.Event()

        def produce():
            try:
                for idx in chunks:
                    item = ("batch", self._batch(idx))
                    while not stop.is_set():
                        try:
                            q.put(item, timeout=0.1)
                            break
                        except queue.Full:
                            continue
                    if stop.is_set():
                        return
                q.put(("end", None))
            except BaseException as exc:  # handed to the consumer, raised there
                q.put(("error", exc))

        worker = threading.Thread(target=produce, name="fastconv-images", daemon=True)
        worker.start()
        try:
            while True:
                kind, item = q.get()
                if kind == "end":
                    return
                if kind == "error":
                    raise item
                yield item
        finally:
            stop.set()
            worker.join(timeout=5)

    def __repr__(self) -> str:
        return (f"ImageDataset({len(self.file_paths)} files, {len(self.class_names)} "
                f"classes, {len(self)} batches of {self.batch_size})")


def image_dataset_from_directory(directory: str, labels: Any = "inferred",
                                 label_mode: Optional[str] = "int",
                                 class_names: Optional[Sequence[str]] = None,
                                 color_mode: str = "rgb", batch_size: Optional[int] = 32,
                                 image_size: Sequence[int] = (256, 256), shuffle: bool = True,
                                 seed: Optional[int] = None,
                                 validation_split: Optional[float] = None,
                                 subset: Optional[str] = None,
                                 interpolation: str = "bilinear", follow_links: bool = False,
                                 crop_to_aspect_ratio: bool = False,
                                 pad_to_aspect_ratio: bool = False, data_format: Any = None,
                                 verbose: bool = True):
    """A dataset of images from ``directory`` (see the module docstring for the rules).

    Returns
    -------
    ImageDataset, or a pair of them ``(training, validation)`` with ``subset="both"``.
    """
    if not isinstance(directory, (str, os.PathLike)) or not os.path.isdir(directory):
        raise fail("directory", "an existing directory", directory)
    directory = os.fspath(directory)
    if label_mode not in ("int", "categorical", "binary", None):
        raise fail("label_mode", "'int', 'categorical', 'binary' or None", label_mode)
    if color_mode not in _MODES:
        raise fail("color_mode", "'grayscale', 'rgb' or 'rgba'", color_mode)
    if interpolation not in ("bilinear", "nearest"):
        raise fail("interpolation", "'bilinear' or 'nearest' (fastconv's resize kernel)",
                   interpolation)
    if pad_to_aspect_ratio:
        raise NotImplementedError("fastconv does not implement pad_to_aspect_ratio yet")
    if data_format not in (None, "channels_last"):
        raise NotImplementedError("image_dataset_from_directory gives channels_last images")
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(
            batch_size, (int, np.integer)) or batch_size < 1):
        raise fail("batch_size", "a positive int or None", batch_size)
    size = _pair("image_size", image_size)
    if validation_split is not None and not 0 < validation_split < 1:
        raise fail("validation_split", "a number between 0 and 1, or None", validation_split)
    if subset not in (None, "training", "validation", "both"):
        raise fail("subset", "'training', 'validation', 'both' or None", subset)
    if (subset is None) != (validation_split is None):
        raise ValueError("`validation_split` and `subset` go together: give both or "
                         f"neither. Received: validation_split={validation_split}, "
                         f"subset={subset!r}")
    if validation_split is not None and shuffle and seed is None:
        raise ValueError("If using `validation_split` and shuffling the data, you must "
                         "provide a `seed` argument, to make sure that there is no overlap "
                         "between the training and validation subset.")

    if labels == "inferred":
        subdirs = sorted(d for d in os.listdir(directory)
                         if os.path.isdir(os.path.join(directory, d)))
        if class_names is not None:
            if sorted(class_names) != subdirs and set(class_names) != set(subdirs):
                raise fail("class_names", f"the subdirectories of {directory!r}: {subdirs}",
                           class_names)
            names = list(class_names)
        else:
            names = subdirs
        paths, label_list = [], []
        for k, name in enumerate(names):
            found = _list_files(os.path.join(directory, name), follow_links)
            paths += found
            label_list += [k] * len(found)
        label_array = np.array(label_list, np.int64)
    else:
        paths = _list_files(directory, follow_links)
        names = list(class_names or [])
        if labels is None:
            label_array = None
        else:
            label_array = np.asarray(labels)
            if label_array.ndim != 1 or len(label_array) != len(paths):
                raise ValueError(f"`labels` must give one label per image file: {len(paths)} "
                                 f"files found in {directory!r}, {len(label_array)} labels")
            label_array = label_array.astype(np.int64)
            names = names or [str(i) for i in range(int(label_array.max()) + 1)]
    if not paths:
        raise ValueError(f"No images found in directory {directory!r}. Allowed formats: "
                         f"{ALLOWED_EXTENSIONS}")
    if label_mode == "binary" and label_array is not None and len(names) != 2:
        raise ValueError(f"When passing label_mode='binary', there must be exactly 2 "
                         f"class_names. Received: class_names={names}")
    if verbose:
        print(f"Found {len(paths)} files belonging to {len(names)} classes.")

    if seed is None:
        seed = int(_random.get_rng().integers(0, 10**6))
    if shuffle:
        order = np.random.default_rng(seed).permutation(len(paths))
        paths = [paths[i] for i in order]
        if label_array is not None:
            label_array = label_array[order]

    if label_array is None or label_mode is None:
        encoded = None
    elif label_mode == "int":
        encoded = label_array.astype(np.int32)
    elif label_mode == "categorical":
        encoded = np.eye(len(names), dtype=np.float32)[label_array]
    else:
        encoded = label_array.astype(np.float32)[:, None]

    mode = _MODES[color_mode][0]

    def make(sel, tag):
        ds = ImageDataset([paths[i] for i in sel], None if encoded is None else encoded[sel],
                          names, batch_size, size, mode, interpolation, crop_to_aspect_ratio,
                          shuffle, seed)
        if verbose and tag:
            print(f"Using {len(sel)} files for {tag}.")
        return ds

    everything = np.arange(len(paths))
    if validation_split is None:
        return make(everything, None)
    n_val = int(validation_split * len(paths))
    train_sel, val_sel = everything[:len(paths) - n_val], everything[len(paths) - n_val:]
    if subset == "training":
        return make(train_sel, "training")
    if subset == "validation":
        return make(val_sel, "validation")
    return make(train_sel, "training"), make(val_sel, "validation")


def load_img(path: str, color_mode: str = "rgb", target_size: Optional[Sequence[int]] = None,
             interpolation: str = "nearest", keep_aspect_ratio: bool = False):
    """A PIL image from ``path`` in ``color_mode``, resized to ``target_size`` (height,
    width) when given (with Pillow's ``interpolation``; ``keep_aspect_ratio`` crops the
    centre to the target's aspect ratio first)."""
    Image = _pil()
    if color_mode not in _MODES:
        raise fail("color_mode", "'grayscale', 'rgb' or 'rgba'", color_mode)
    methods = {"nearest": Image.NEAREST, "bilinear": Image.BILINEAR,
               "bicubic": Image.BICUBIC, "lanczos": Image.LANCZOS, "box": Image.BOX,
               "hamming": Image.HAMMING}
    if interpolation not in methods:
        raise fail("interpolation", f"one of {sorted(methods)}", interpolation)
    target = None if target_size is None else _pair("target_size", target_size)
    try:
        with Image.open(path) as img:
            img = img.convert(_MODES[color_mode][0])
    except Exception as exc:
        raise ValueError(f"The image file {os.fspath(path)!r} cannot be decoded: {exc}") from exc
    if target is not None:
        th, tw = target
        if keep_aspect_ratio:
            top, left, ch, cw = _crop_box(img.height, img.width, (th, tw))
            img = img.crop((left, top, left + cw, top + ch))
        if (img.height, img.width) != (th, tw):
            img = img.resize((tw, th), methods[interpolation])
    return img


def img_to_array(img, data_format: Optional[str] = None, dtype: Any = "float32") -> np.ndarray:
    """A PIL image as an array (height, width, channels) (channels_first: (channels,
    height, width))."""
    arr = np.asarray(img, dtype=dtype)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3:
        raise fail("img", "an image of 2 or 3 axes", arr)
    return np.transpose(arr, (2, 0, 1)).copy() if data_format == "channels_first" else arr


def array_to_img(x, data_format: Optional[str] = None, scale: bool = True,
                 dtype: Any = "float32"):
    """An array (height, width, channels) of 1, 3 or 4 channels as a PIL image; with
    ``scale`` its values are stretched to 0-255 first; then truncated to uint8, as
    Keras does."""
    Image = _pil()
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 3:
        raise fail("x", "an array of shape (height, width, channels)", arr)
    if data_format == "channels_first":
        arr = np.transpose(arr, (1, 2, 0))
    if scale:
        arr = arr - np.min(arr)
        top = np.max(arr)
        if top:
            arr = arr / top
        arr = arr * 255
    channels = arr.shape[2]
    if channels not in (1, 3, 4):
        raise fail("x", "1, 3 or 4 channels", arr)
    arr = np.clip(arr, 0, 255).astype(np.uint8)
    if channels == 1:
        return Image.fromarray(arr[:, :, 0], "L")
    return Image.fromarray(arr, "RGB" if channels == 3 else "RGBA")


def save_img(path: str, x, data_format: Optional[str] = None, file_format: Optional[str] = None,
             scale: bool = True, **kwargs: Any) -> None:
    """Save an array as an image file, written atomically (temporary file, then
    rename); the format comes from ``file_format`` or the file's extension."""
    img = array_to_img(x, data_format=data_format, scale=scale)
    path = os.fspath(path)
    fmt = file_format or os.path.splitext(path)[1].lstrip(".").upper() or None
    if fmt is None:
        raise fail("path", "a file name with an image extension (.png, .jpg, ...), or "
                           "file_format", path)
    if fmt == "JPG":
        fmt = "JPEG"
    if fmt == "JPEG" and img.mode == "RGBA":
        img = img.convert("RGB")
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            img.save(f, format=fmt, **kwargs)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
