"""Fashion-MNIST: 70,000 28x28 grayscale images of Zalando articles in 10 classes.

Xiao, Rasul and Vollgraf, "Fashion-MNIST: a Novel Image Dataset for Benchmarking
Machine Learning Algorithms", 2017. (c) 2017 Zalando SE, MIT licence.
Labels: 0 T-shirt/top, 1 Trouser, 2 Pullover, 3 Dress, 4 Coat, 5 Sandal, 6 Shirt,
7 Sneaker, 8 Bag, 9 Ankle boot.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Tuple

import numpy as np

from ._fetch import Remote
from ._idx import DatasetFileError, read_idx
from ._idxset import STEMS, IdxDataset, load

__all__ = ["load_data", "load_sample", "CLASS_NAMES", "DEBIAN_DIR"]

CLASS_NAMES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
               "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")

# Where Debian's package dataset-fashion-mnist installs the four .gz files.
DEBIAN_DIR = "/usr/share/datasets/fashion-mnist"

# The official host named in zalandoresearch/fashion-mnist's README. Sizes and SHA-256
# from tensorflow/datasets, tensorflow_datasets/url_checksums/fashion_mnist.txt.
# (Debian's copies decompress to the same IDX bytes but were recompressed, so their
# .gz files have other SHA-256s; local files are checked by structure, not hash.)
_BASE = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
_SPEC = IdxDataset(
    name="fashion-mnist",
    title="Fashion-MNIST",
    remotes=(
        Remote("train-images-idx3-ubyte.gz", _BASE + "train-images-idx3-ubyte.gz",
               "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84"),
        Remote("train-labels-idx1-ubyte.gz", _BASE + "train-labels-idx1-ubyte.gz",
               "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845"),
        Remote("t10k-images-idx3-ubyte.gz", _BASE + "t10k-images-idx3-ubyte.gz",
               "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073"),
        Remote("t10k-labels-idx1-ubyte.gz", _BASE + "t10k-labels-idx1-ubyte.gz",
               "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5"),
    ),
    system=(("Debian's package dataset-fashion-mnist", DEBIAN_DIR),),
    how_to_get=(
        "on Debian or Ubuntu, `sudo apt-get install dataset-fashion-mnist` (it installs them "
        f"in {DEBIAN_DIR}, which is searched); or download the four files from {_BASE} on "
        "a connected machine"
    ),
)

# The embedded sample, written by tools/make_sample.py; shipped as package data.
SAMPLE_DIR = Path(__file__).resolve().parent.parent / "data" / "fashion-mnist-sample"


def load_data(
    path: Optional[os.PathLike] = None, *, download: bool = True
) -> Tuple[Tuple[np.ndarray, np.ndarray], Tuple[np.ndarray, np.ndarray]]:
    """Load Fashion-MNIST as Keras's ``keras.datasets.fashion_mnist.load_data`` does.

    Parameters
    ----------
    path : path-like, optional
        A directory holding the four original IDX files (``train-images-idx3-ubyte``,
        ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``,
        ``t10k-labels-idx1-ubyte``, each gzipped with ``.gz`` or not), directly or in a
        subdirectory ``fashion-mnist``. Searched first.
    download : bool, default True
        Whether to download the files into the cache when no place has them.

    Returns
    -------
    (x_train, y_train), (x_test, y_test)
        ``x_train`` uint8 (60000, 28, 28), ``y_train`` uint8 (60000,) with labels 0-9
        (see ``CLASS_NAMES``), ``x_test`` uint8 (10000, 28, 28), ``y_test`` uint8
        (10000,). Pixels are 0-255.

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
    ``~/.fastconv/datasets`` (``$FASTCONV_CACHE`` overrides it);
    ``/usr/share/datasets/fashion-mnist``, where Debian's package
    ``dataset-fashion-mnist`` puts the files. Downloads go to ``<cache>/fashion-mnist``
    through pooch, verified by SHA-256 before they are moved into place, with a progress
    bar when tqdm is installed.
    """
    return load(_SPEC, path, download)


def load_sample() -> Tuple[Tuple[np.ndarray, np.ndarray], Tuple[np.ndarray, np.ndarray]]:
    """Load the small real sample of Fashion-MNIST shipped inside fastconv.

    The sample needs no network and no files outside the package. It holds the first
    200 training and the first 50 test images of each class, in their original order,
    taken from the original files by ``tools/make_sample.py``; see
    ``fastconv/data/fashion-mnist-sample/README.md`` for the licence (MIT, (c) 2017
    Zalando SE).

    Returns
    -------
    (x_train, y_train), (x_test, y_test)
        ``x_train`` uint8 (2000, 28, 28), ``y_train`` uint8 (2000,) with 200 of each label
        0-9, ``x_test`` uint8 (500, 28, 28), ``y_test`` uint8 (500,) with 50 of each.
    """
    root = SAMPLE_DIR
    arrays = [read_idx(root / (STEMS[key] + ".gz"), ndim)
              for key, ndim in (("x_train", 3), ("y_train", 1), ("x_test", 3), ("y_test", 1))]
    x_train, y_train, x_test, y_test = arrays
    if len(x_train) != len(y_train) or len(x_test) != len(y_test):
        raise DatasetFileError(
            f"The embedded sample in {root} must have as many labels as images. Received: "
            f"{len(x_train)}/{len(y_train)} (train), {len(x_test)}/{len(y_test)} (test)"
        )
    return (x_train, y_train), (x_test, y_test)
