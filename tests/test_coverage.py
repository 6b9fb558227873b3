"""The Keras coverage list, table and program scanner (fastconv._coverage)."""

import subprocess
import sys
from pathlib import Path

import pytest

from fastconv import _coverage

ROOT = Path(__file__).resolve().parents[1]

PROGRAM = '''
import numpy as np
import tensorflow as tf
from tensorflow import keras
from keras import layers as L
from keras.layers import Conv2D, LSTM
from keras.optimizers import Adam as A
import keras.callbacks

model = keras.Sequential([L.Dense(10), Conv2D(3, 3), LSTM(4)])
model.compile(optimizer=A(), loss=tf.keras.losses.Huber())
model.fit(np.zeros((1, 2)), callbacks=[keras.callbacks.EarlyStopping(),
                                       keras.callbacks.NoSuchCallback()])
keras.layers.Conv2D.from_config({})
'''


def test_names_list_and_has():
    names = _coverage.keras_names()
    assert len(names) > 400 and len(set(names)) == len(names)
    assert "keras.layers.Conv2D" in names and "keras.utils.to_categorical" in names
    assert _coverage.has("keras.layers.Conv2D")
    assert _coverage.has("keras.datasets.mnist.load_data")
    assert not _coverage.has("keras.layers.LSTM")
    assert not _coverage.has("keras.no_such_module.Thing")
    with pytest.raises(ValueError, match="name"):
        _coverage.has("layers.Conv2D")


def test_scan_finds_names_through_every_import_form():
    uses = {u.name: u for u in _coverage.scan(PROGRAM)}
    assert set(uses) == {
        "keras.layers.Conv2D", "keras.layers.LSTM", "keras.optimizers.Adam",
        "keras.Sequential", "keras.layers.Dense", "keras.losses.Huber",
        "keras.callbacks.EarlyStopping", "keras.callbacks.NoSuchCallback"}
    assert uses["keras.layers.Conv2D"].line == 6       # its first use: the import
    assert uses["keras.losses.Huber"].line == 11       # through tf.keras
    assert uses["keras.layers.Dense"].present and not uses["keras.layers.LSTM"].present
    assert not uses["keras.callbacks.NoSuchCallback"].listed
    assert uses["keras.Sequential"].listed


def test_the_committed_table_is_current():
    # docs/keras-compatibility.md must be the table's output: regenerate it with
    # python -m fastconv keras-coverage --table > docs/keras-compatibility.md
    committed = (ROOT / "docs" / "keras-compatibility.md").read_text()
    assert committed == _coverage.table()


def test_cli(tmp_path):
    program = tmp_path / "p.py"
    program.write_text(PROGRAM)
    ok = tmp_path / "ok.py"
    ok.write_text("import keras\nkeras.layers.Dense(3)\n")
    run = [sys.executable, "-m", "fastconv", "keras-coverage"]
    res = subprocess.run(run + [str(program)], capture_output=True, text=True, timeout=120)
    assert res.returncode == 1
    assert "line 6: keras.layers.LSTM" in res.stdout
    assert "keras.callbacks.NoSuchCallback (not a Keras 3 name)" in res.stdout
    res = subprocess.run(run + [str(ok)], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and "1 Keras names used, 1 in fastconv." in res.stdout
    bad = tmp_path / "bad.py"
    bad.write_text("def (:\n")
    res = subprocess.run(run + [str(bad)], capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and "bad.py" in res.stderr
