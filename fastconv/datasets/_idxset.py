"""The loader shared by MNIST and Fashion-MNIST: four IDX files, found or downloaded."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Optional, Tuple

import numpy as np

from . import _fetch
from ._idx import DatasetFileError, read_idx

Split = Tuple[np.ndarray, np.ndarray]

# The names the files have in the original distributions; Kaggle-style extracted copies
# use "train-images.idx3-ubyte" instead, which is accepted too.
STEMS = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}


@dataclass
class IdxDataset:
    """What differs between MNIST and Fashion-MNIST."""

    name: str                  # subdirectory of the cache
    title: str                 # for messages
    remotes: Tuple[_fetch.Remote, ...]
    system: Tuple[Tuple[str, str], ...] = ()
    counts: Dict[str, int] = field(default_factory=lambda: {"train": 60000, "test": 10000})
    how_to_get: str = ""


def find_files(directory: Path) -> Optional[Dict[str, Path]]:
    """The four files in ``directory`` (gzipped or not), or None if any is missing."""
    if not directory.is_dir():
        return None
    found = {}
    for key, stem in STEMS.items():
        dotted = stem.replace("-idx", ".idx")
        for name in (stem + ".gz", stem, dotted + ".gz", dotted):
            if (directory / name).is_file():
                found[key] = directory / name
                break
        else:
            return None
    return found


def read_files(files: Dict[str, Path], spec: IdxDataset) -> Tuple[Split, Split]:
    """Read and check the four files: shapes, counts, agreement, label range."""
    out = {}
    for split in ("train", "test"):
        xs, ys = files[f"x_{split}"], files[f"y_{split}"]
        x = read_idx(xs, 3)
        y = read_idx(ys, 1)
        n = spec.counts[split]
        if x.shape != (n, 28, 28):
            raise DatasetFileError(
                f"{xs} must hold {spec.title}'s {split} images, shape ({n}, 28, 28). "
                f"Received: shape {x.shape}"
            )
        if y.shape != (n,):
            raise DatasetFileError(
                f"{ys} must hold {spec.title}'s {n} {split} labels. Received: {y.shape[0]} labels"
            )
        if y.size and y.max() > 9:
            raise DatasetFileError(
                f"{ys} must hold labels 0-9. Received: a label {int(y.max())}"
            )
        out[split] = (x, y)
    return out["train"], out["test"]


def load(spec: IdxDataset, path: Optional[os.PathLike], download: bool) -> Tuple[Split, Split]:
    """Search the places in order, else download into the cache; see ``_fetch``."""
    system = tuple((what, Path(p)) for what, p in spec.system)
    searched = _fetch.places(path, system)
    n_user = len(searched) - len(system)
    for i, (_, where) in enumerate(searched):
        if where is None:
            continue
        for directory in _fetch.candidate_dirs(where, spec.name, system=i >= n_user):
            files = find_files(directory)
            if files is not None:
                return read_files(files, spec)
    dest = _fetch.cache_dir() / spec.name
    reason = "downloading was turned off (download=False)"
    if download:
        try:
            _fetch.download(spec.remotes, dest)
        except (OSError, ImportError) as err:
            reason = f"downloading from {spec.remotes[0].url.rsplit('/', 1)[0]}/ failed: {err}"
        else:
            files = find_files(dest)
            if files is not None:
                return read_files(files, spec)
            reason = f"the download did not leave the files in {dest}"
    names = ", ".join(s + "[.gz]" for s in STEMS.values())
    raise _fetch.DataNotFoundError(
        f"{spec.title} files ({names}) were not found. Looked in, in this order:\n"
        f"{_fetch.describe(searched)}\n"
        f"(each user directory also in its subdirectory '{spec.name}'), and {reason}.\n"
        f"To get the files: {spec.how_to_get}. Put downloaded files in a directory and pass "
        f"it as `path`, set FASTCONV_DATA to it, or use the cache directory {dest}."
    )
