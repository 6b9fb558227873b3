"""What the MPI scripts and tests/test_distributed.py share: the model, the data, the dump.

The scripts run as ``python tests/mpi/<script>.py`` under mpiexec (this folder is then
on ``sys.path``); the tests import this module as ``tests.mpi.common``.
"""

import json
import os

import numpy as np

from fastconv import layers, models, optimizers, utils

BATCH = 4          # per rank
SAMPLES = 25       # odd: dist.shard pads it to 26; split by hand, 13 + 12 (uneven steps)


def data(dtype="float32"):
    """Fixed random images (SAMPLES, 8, 8, 1) and one-hot labels over 3 classes."""
    rng = np.random.default_rng(7)
    x = rng.standard_normal((SAMPLES, 8, 8, 1)).astype(dtype)
    y = np.eye(3, dtype=dtype)[rng.integers(0, 3, SAMPLES)]
    return x, y


def build_model(dtype="float32", seed=0, optimizer=None):
    """Conv -> pool -> dense softmax, no Dropout, compiled with plain SGD (stateless)."""
    utils.set_random_seed(seed)
    model = models.Sequential([
        layers.Conv2D(4, 3, activation="relu", input_shape=(8, 8, 1)),
        layers.MaxPooling2D(2),
        layers.Flatten(),
        layers.Dense(3, activation="softmax"),
    ], dtype=dtype)
    model.compile(optimizer=optimizer or optimizers.SGD(0.1),
                  loss="categorical_crossentropy", metrics=["accuracy"])
    return model


def dump(out_dir, rank_, weights, **info):
    """Write this rank's weights (npz) and facts (json) for the test to read."""
    np.savez(os.path.join(out_dir, f"rank{rank_}.npz"),
             **{f"w{i}": w for i, w in enumerate(weights)})
    with open(os.path.join(out_dir, f"rank{rank_}.json"), "w") as f:
        json.dump(info, f)
