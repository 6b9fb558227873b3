"""MNIST: 70,000 28x28 grayscale images of handwritten digits in 10 classes.

LeCun, Cortes and Burges, "The MNIST database of handwritten digits".
"""

from __future__ import annotations

import os
from typing import Optional, Tuple

import numpy as np

from ._fetch import Remote
from ._idxset import IdxDataset, load

__all__ = ["load_data"]

# yann.lecun.com, the original host, often refuses scripted downloads; the files are
# fetched from the CVDF mirror that TensorFlow Datasets uses. URLs, sizes and SHA-256
# from tensorflow/datasets, tensorflow_datasets/url_checksums/mnist.txt.
_BASE = "https://storage.googleapis.com/cvdf-datasets/mnist/"
_SPEC = IdxDataset(
    name="mnist",
    title="MNIST",
    remotes=(
        Remote("train-images-idx3-ubyte.gz", _BASE + "train-images-idx3-ubyte.gz",
               "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"),
        Remote("train-labels-idx1-ubyte.gz", _BASE + "train-labels-idx1-ubyte.gz",
               "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c"),
        Remote("t10k-images-idx3-ubyte.gz", _BASE + "t10k-images-idx3-ubyte.gz",
               "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"),
        Remote("t10k-labels-idx1-ubyte.gz", _BASE + "t10k-labels-idx1-ubyte.gz",
               "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"),
    ),
    how_to_get=(
        f"download the four files from {_BASE} on a connected machine (the original host "
        "is http://yann.lecun.com/exdb/mnist/)"
    ),
)


def load_data(
    path: Optional[os.PathLike] = None, *, download: bool = True
) -> Tuple[Tuple[np.ndarray, np.ndarray], Tuple[np.ndarray, np.ndarray]]:
    """Load MNIST as Keras's ``keras.datasets.mnist.load_data`` does.

    Parameters
    ----------
    path : path-like, optional
        A directory holding the four original IDX files (``train-images-idx3-ubyte``,
        ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``,
        ``t10k-labels-idx1-ubyte``, each gzipped with ``.gz`` or not), directly or in a
        subdirectory ``mnist``. Searched first.
    download : bool, default True
        Whether to download the files into the cache when no place has them.

    Returns
    -------
    (x_train, y_train), (x_test, y_test)
        ``x_train`` uint8 (60000, 28, 28), ``y_train`` uint8 (60000,) with labels 0-9,
        ``x_test`` uint8 (10000, 28, 28), ``y_test`` uint8 (10000,). Pixels are 0-255.

    Raises
    ------
    fastconv.datasets.DataNotFoundError
        No place has the files and downloading failed or was turned off; the message
        lists every place looked in and how to get the files.
    fastconv.datasets.DatasetFileError
        A file is corrupt or truncated, has a wrong magic number, or holds the wrong
        number of images or labels; the message names the file.
    ValueError
        A downloaded file's SHA-256 is wrong (the file is not kept).

    Notes
    -----
    Places searched, in order: ``path``; ``$FASTCONV_DATA``; the cache
    ``~/.fastconv/datasets`` (``$FASTCONV_CACHE`` overrides it). Downloads go to
    ``<cache>/mnist`` through pooch, verified by SHA-256 before they are moved into
    place, with a progress bar when tqdm is installed.
    """
    return load(_SPEC, path, download)
