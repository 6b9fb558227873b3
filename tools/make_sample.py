"""Regenerate fastconv/data/fashion-mnist-sample/ from the original Fashion-MNIST files.

Usage::

    python tools/make_sample.py [DIR]

DIR holds the four original files (default: wherever fastconv.datasets.fashion_mnist
finds them, e.g. /usr/share/datasets/fashion-mnist from Debian's dataset-fashion-mnist).

The selection is deterministic and needs no random numbers: the first TRAIN_PER_CLASS
training images and the first TEST_PER_CLASS test images of each class, kept in the
order of the original files. The output is gzipped IDX with a zero gzip timestamp, so
the same input always gives byte-identical files. The sizes were chosen to keep the
sample near 1 MB: Fashion-MNIST compresses to about 55% with gzip.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from fastconv.datasets import fashion_mnist  # noqa: E402
from fastconv.datasets._idx import write_idx  # noqa: E402
from fastconv.datasets._idxset import STEMS  # noqa: E402

TRAIN_PER_CLASS = 200
TEST_PER_CLASS = 50
OUT = fashion_mnist.SAMPLE_DIR


def first_per_class(y: np.ndarray, per_class: int) -> np.ndarray:
    """Indices of the first ``per_class`` items of each label, in ascending order."""
    picked = [np.flatnonzero(y == label)[:per_class] for label in range(10)]
    for label, idx in enumerate(picked):
        if len(idx) < per_class:
            raise SystemExit(f"only {len(idx)} items of class {label}; need {per_class}")
    return np.sort(np.concatenate(picked))


def main(argv: list) -> int:
    source = argv[1] if len(argv) > 1 else None
    (x_train, y_train), (x_test, y_test) = fashion_mnist.load_data(source, download=False)
    train = first_per_class(y_train, TRAIN_PER_CLASS)
    test = first_per_class(y_test, TEST_PER_CLASS)
    OUT.mkdir(parents=True, exist_ok=True)
    arrays = {"x_train": x_train[train], "y_train": y_train[train],
              "x_test": x_test[test], "y_test": y_test[test]}
    total = 0
    for key, array in arrays.items():
        target = OUT / (STEMS[key] + ".gz")
        write_idx(target, array)
        total += target.stat().st_size
        print(f"{target.relative_to(ROOT)}: {array.shape}, {target.stat().st_size} bytes")
    print(f"total {total} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
