"""CIFAR-10: 60,000 32x32 colour images in 10 classes.

Krizhevsky, "Learning Multiple Layers of Features from Tiny Images", 2009.
Labels: 0 airplane, 1 automobile, 2 bird, 3 cat, 4 deer, 5 dog, 6 frog, 7 horse,
8 ship, 9 truck.
"""

from __future__ import annotations

import codecs
import io
import os
import pickle
import tarfile
import zlib
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np

from . import _fetch
from ._fetch import Remote
from ._idx import DatasetFileError

__all__ = ["load_data", "CLASS_NAMES"]

CLASS_NAMES = ("airplane", "automobile", "bird", "cat", "deer",
               "dog", "frog", "horse", "ship", "truck")

# The official archive from the CIFAR page (https://www.cs.toronto.edu/~kriz/cifar.html).
# SHA-256 from keras-team/keras, keras/src/datasets/cifar10.py (the `file_hash` it
# passes to get_file for this URL).
_ARCHIVE = "cifar-10-python.tar.gz"
_REMOTES = (
    Remote(_ARCHIVE, "https://www.cs.toronto.edu/~kriz/" + _ARCHIVE,
           "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce"),
)
_NAME = "cifar-10"
_FOLDER = "cifar-10-batches-py"
_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
_TEST = ("test_batch",)
_PER_BATCH = 10000


def _latin1_encode(text: str, encoding: str) -> bytes:
    # Python 3 writes bytes into protocol-2 pickles as _codecs.encode(text, 'latin1').
    if codecs.lookup(encoding).name != "iso8859-1":
        raise pickle.UnpicklingError(f"refusing _codecs.encode with encoding {encoding!r}")
    return text.encode("latin-1")


_RECONSTRUCT = np.empty(0).__reduce__()[0]   # numpy's array-rebuilding function

# Everything a CIFAR batch (a dict of bytes, ints, lists and one uint8 array) needs.
_ALLOWED: Dict[Tuple[str, str], Callable] = {
    ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): _latin1_encode,
}


class _BatchUnpickler(pickle.Unpickler):
    """An unpickler that can rebuild plain containers and NumPy arrays, nothing else.

    A pickle may name any importable callable and have it called; this one refuses every
    name outside ``_ALLOWED``, so a tampered batch file cannot run code.
    """

    def find_class(self, module: str, name: str):
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"a CIFAR-10 batch may only hold NumPy arrays and plain data; it refers to "
                f"{module}.{name}"
            ) from None


def _parse_batch(data: bytes, where: str) -> Tuple[np.ndarray, np.ndarray]:
    """One batch's bytes -> images (n, 32, 32, 3) and labels (n,), both uint8."""
    try:
        batch = _BatchUnpickler(io.BytesIO(data), encoding="bytes").load()
    except Exception as err:  # a corrupt pickle can raise nearly anything
        raise DatasetFileError(
            f"{where} must be a CIFAR-10 python batch (a pickled dict). Received: a file that "
            f"cannot be read as one ({type(err).__name__}: {err})"
        ) from None
    if not isinstance(batch, dict) or b"data" not in batch or b"labels" not in batch:
        keys = sorted(batch) if isinstance(batch, dict) else type(batch).__name__
        raise DatasetFileError(
            f"{where} must be a dict with keys b'data' and b'labels'. Received: {keys}"
        )
    x, labels = batch[b"data"], batch[b"labels"]
    n = _PER_BATCH
    if not isinstance(x, np.ndarray) or x.dtype != np.uint8 or x.shape != (n, 3072):
        got = f"shape {x.shape}, dtype {x.dtype}" if isinstance(x, np.ndarray) else type(x)
        raise DatasetFileError(
            f"{where} must hold b'data' as a uint8 array of shape ({n}, 3072). Received: {got}"
        )
    try:
        y = np.asarray(labels, dtype=np.int64)
    except (TypeError, ValueError, OverflowError):
        y = np.zeros(0)
    if y.shape != (n,) or (y.size and (y.min() < 0 or y.max() > 9)):
        raise DatasetFileError(
            f"{where} must hold b'labels' as {n} integers 0-9. Received: "
            f"{len(labels) if hasattr(labels, '__len__') else type(labels)} values"
            + (f" from {y.min()} to {y.max()}" if y.size else "")
        )
    images = x.reshape(n, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), y.astype(np.uint8)


def _read_dir(folder: Path) -> List[Tuple[bytes, str]]:
    return [((folder / name).read_bytes(), str(folder / name)) for name in _TRAIN + _TEST]


def _read_tar(archive: Path) -> List[Tuple[bytes, str]]:
    # Members are read into memory, never extracted, so archive paths cannot escape.
    out = []
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for name in _TRAIN + _TEST:
                member = f"{_FOLDER}/{name}"
                try:
                    f = tar.extractfile(member)
                except KeyError:
                    f = None
                if f is None:
                    raise DatasetFileError(
                        f"{archive} must contain the file {member}. Received: an archive "
                        "without it"
                    )
                out.append((f.read(), f"{archive}:{member}"))
    except (tarfile.TarError, OSError, EOFError, zlib.error) as err:
        raise DatasetFileError(
            f"{archive} must be a complete .tar.gz archive. Received: a corrupt or truncated "
            f"file ({type(err).__name__}: {err})"
        ) from None
    return out


def _find(place: Path) -> Optional[Callable[[], List[Tuple[bytes, str]]]]:
    """How to read the batches at ``place`` (an archive or a directory), or None."""
    if place.is_file() and place.name.endswith((".tar.gz", ".tgz")):
        return lambda: _read_tar(place)
    if not place.is_dir():
        return None
    for folder in (place / _FOLDER, place):
        if all((folder / name).is_file() for name in _TRAIN + _TEST):
            return lambda folder=folder: _read_dir(folder)
    if (place / _ARCHIVE).is_file():
        return lambda: _read_tar(place / _ARCHIVE)
    return None


def _assemble(batches: List[Tuple[bytes, str]]):
    parsed = [_parse_batch(data, where) for data, where in batches]
    k = len(_TRAIN)
    x_train = np.concatenate([x for x, _ in parsed[:k]])
    y_train = np.concatenate([y for _, y in parsed[:k]]).reshape(-1, 1)
    x_test, y_test = parsed[k]
    return (x_train, y_train), (x_test, y_test.reshape(-1, 1))


def load_data(
    path: Optional[os.PathLike] = None, *, download: bool = True
) -> Tuple[Tuple[np.ndarray, np.ndarray], Tuple[np.ndarray, np.ndarray]]:
    """Load CIFAR-10 as Keras's ``keras.datasets.cifar10.load_data`` does.

    Parameters
    ----------
    path : path-like, optional
        The archive ``cifar-10-python.tar.gz``, the extracted ``cifar-10-batches-py``
        directory, or a directory holding either (directly or in a subdirectory
        ``cifar-10``). Searched first.
    download : bool, default True
        Whether to download the archive into the cache when no place has the data.

    Returns
    -------
    (x_train, y_train), (x_test, y_test)
        ``x_train`` uint8 (50000, 32, 32, 3) (channels last), ``y_train`` uint8
        (50000, 1) with labels 0-9 (see ``CLASS_NAMES``), ``x_test`` uint8
        (10000, 32, 32, 3), ``y_test`` uint8 (10000, 1).

    Raises
    ------
    fastconv.datasets.DataNotFoundError
        No place has the data and downloading failed or was turned off; the message
        lists every place looked in and how to get the archive.
    fastconv.datasets.DatasetFileError
        The archive or a batch is corrupt or truncated, or a batch has the wrong
        content or number of images; the message names the file.
    ValueError
        The downloaded archive's SHA-256 is wrong (the file is not kept).

    Notes
    -----
    The batches are Python pickles. They are read with a restricted unpickler that
    can only rebuild plain data (dicts, lists, bytes, ints) and NumPy arrays and
    refuses any other class or function, so a tampered file cannot execute code.
    The archive is read in memory and never extracted.

    Places searched, in order: ``path``; ``$FASTCONV_DATA``; the cache
    ``~/.fastconv/datasets`` (``$FASTCONV_CACHE`` overrides it). The download (about
    163 MiB) goes to ``<cache>/cifar-10`` through pooch, verified by SHA-256 before it
    is moved into place, with a progress bar when tqdm is installed.
    """
    searched = _fetch.places(path)
    for _, where in searched:
        if where is None:
            continue
        for candidate in _fetch.candidate_dirs(where, _NAME, system=where.is_file()):
            reader = _find(candidate)
            if reader is not None:
                return _assemble(reader())
    dest = _fetch.cache_dir() / _NAME
    reason = "downloading was turned off (download=False)"
    if download:
        try:
            _fetch.download(_REMOTES, dest)
        except (OSError, ImportError) as err:
            reason = f"downloading {_REMOTES[0].url} failed: {err}"
        else:
            return _assemble(_read_tar(dest / _ARCHIVE))
    raise _fetch.DataNotFoundError(
        f"CIFAR-10 ({_ARCHIVE} or its extracted {_FOLDER} directory) was not found. Looked "
        f"in, in this order:\n{_fetch.describe(searched)}\n(each directory also in its "
        f"subdirectory '{_NAME}'), and {reason}.\nTo get it: download {_REMOTES[0].url} "
        "on a connected machine and pass it (or its directory) as `path`, set "
        f"FASTCONV_DATA to its directory, or put it in the cache directory {dest}."
    )
