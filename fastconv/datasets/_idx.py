"""Reading and writing IDX files, the format of MNIST and Fashion-MNIST.

An IDX file is a 4-byte magic number, ``0, 0, type, ndim``, then ``ndim`` big-endian
uint32 sizes, then the values in C order. Only type ``0x08`` (unsigned byte) is used
by these data sets. Files may be gzip-compressed (name ending in ``.gz``).
"""

from __future__ import annotations

import gzip
import os
import struct
import tempfile
import zlib
from pathlib import Path
from typing import Tuple

import numpy as np

__all__ = ["DatasetFileError", "read_idx", "write_idx", "read_bytes"]

_UBYTE = 0x08


class DatasetFileError(ValueError):
    """A data set file is corrupt, truncated or not what its name says."""


def read_bytes(path: Path) -> bytes:
    """The file's content, gunzipped if its name ends in ``.gz``."""
    path = Path(path)
    if path.suffix != ".gz":
        return path.read_bytes()
    try:
        with gzip.open(path, "rb") as f:
            return f.read()
    except (OSError, EOFError, zlib.error) as err:
        # gzip raises BadGzipFile (an OSError) for bad headers, EOFError for a cut stream.
        raise DatasetFileError(
            f"{path} must be a complete gzip file. Received: a file that is not gzip or is "
            f"truncated ({err})"
        ) from None


def _read_bounded(path: Path, ndim: int) -> bytes:
    """The file's content (gunzipped), read no further than one byte past what its IDX
    header declares: a gzip bomb or an overlong file costs no more memory than the data
    set it claims to be."""
    try:
        with (gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")) as f:
            head = f.read(4 + 4 * ndim)
            if len(head) == 4 + 4 * ndim and head[3] == ndim:
                shape = struct.unpack(f">{ndim}I", head[4:])
                return head + f.read(int(np.prod(shape, dtype=np.int64)) + 1)
            return head
    except (OSError, EOFError, zlib.error) as err:
        # gzip raises BadGzipFile (an OSError) for bad headers, EOFError for a cut stream.
        raise DatasetFileError(
            f"{path} must be a complete gzip file. Received: a file that is not gzip or is "
            f"truncated ({err})"
        ) from None


def read_idx(path: os.PathLike, ndim: int) -> np.ndarray:
    """Read an IDX file of unsigned bytes with ``ndim`` dimensions.

    Parameters
    ----------
    path : path-like
        The file; gunzipped on the fly when its name ends in ``.gz``.
    ndim : int
        The number of dimensions the file must have (3 for images, 1 for labels).

    Returns
    -------
    ndarray of uint8, with the shape stored in the file's header.

    Raises
    ------
    DatasetFileError (a ValueError)
        Naming the file, for a wrong magic number, a wrong number of dimensions, or a
        payload shorter (truncated) or longer than the header's sizes say.
    """
    path = Path(path)
    data = _read_bounded(path, ndim)
    header = 4 + 4 * ndim
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != _UBYTE:
        raise DatasetFileError(
            f"{path} must start with the IDX magic number 0x0000080{ndim} (unsigned bytes, "
            f"{ndim}-D). Received: {data[:4].hex() or 'an empty file'}"
        )
    if data[3] != ndim:
        raise DatasetFileError(
            f"{path} must hold a {ndim}-D IDX array. Received: a {data[3]}-D array"
        )
    if len(data) < header:
        raise DatasetFileError(f"{path} is truncated: its {len(data)} bytes end inside the header")
    shape: Tuple[int, ...] = struct.unpack(f">{ndim}I", data[4:header])
    expected = int(np.prod(shape, dtype=np.int64))
    got = len(data) - header
    if got != expected:
        what = "truncated" if got < expected else "too long"
        raise DatasetFileError(
            f"{path} is {what}: its header says shape {shape}, {expected} bytes of values. "
            f"Received: {got} bytes"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape).copy()


def write_idx(path: os.PathLike, array: np.ndarray, mtime: int = 0) -> None:
    """Write a uint8 array as IDX (gzipped when ``path`` ends in ``.gz``), atomically.

    The file is written to a temporary file in the same directory and moved into place,
    so an existing file is never left half-written. ``mtime`` is stored in the gzip
    header; the default 0 makes the bytes depend only on the array.
    """
    path = Path(path)
    array = np.ascontiguousarray(array)
    if array.dtype != np.uint8:
        raise TypeError(f"`array` must be of dtype uint8. Received: array.dtype={array.dtype}")
    header = bytes([0, 0, _UBYTE, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + array.tobytes()
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            if path.suffix == ".gz":
                # No file name in the header and a fixed mtime: reproducible bytes.
                with gzip.GzipFile(filename="", fileobj=f, mode="wb", compresslevel=9,
                                   mtime=mtime) as gz:
                    gz.write(payload)
            else:
                f.write(payload)
        # mkstemp makes the file private (0600); give it the mode a plain open() would.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
