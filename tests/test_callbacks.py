"""ReduceLROnPlateau, LambdaCallback, ProgbarLogger, ModelCheckpoint's options, and
BackupAndRestore killed with SIGKILL and resumed."""

import json
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from fastconv import callbacks, keras
from fastconv.keras import layers
from fastconv.utils import set_random_seed


def _model(seed=0, optimizer="adam"):
    set_random_seed(seed)
    model = keras.Sequential([keras.Input((6, 6, 1)), layers.Conv2D(4, 3, activation="relu"),
                              layers.Flatten(), layers.Dense(3, activation="softmax")])
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


def _data(n=24):
    rng = np.random.default_rng(1)
    return rng.standard_normal((n, 6, 6, 1)).astype(np.float32), np.arange(n) % 3


class _Opt:
    learning_rate = 1.0


class _FakeModel:
    def __init__(self):
        self.optimizer = _Opt()


def test_reduce_lr_on_plateau_by_hand():
    cb = callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=2, cooldown=1,
                                     min_lr=0.2, min_delta=0.0)
    model = _FakeModel()
    cb.set_model(model)
    cb.on_train_begin()
    rates = []
    # improves twice, then flat: after 2 flat epochs halve; the next epoch is the
    # cooldown (wait reset, then counted again, as Keras does), so every 2nd epoch halves
    for epoch, loss in enumerate([1.0, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9]):
        logs = {"val_loss": loss}
        cb.on_epoch_end(epoch, logs)
        rates.append(model.optimizer.learning_rate)
        assert logs["learning_rate"] == (rates[-2] if epoch else 1.0)
    assert rates == [1.0, 1.0, 1.0, 0.5, 0.5, 0.25, 0.25, 0.2, 0.2]   # never below min_lr
    cb.on_epoch_end(9, {"val_loss": 0.9})
    cb.on_epoch_end(10, {"val_loss": 0.9})
    assert model.optimizer.learning_rate == 0.2
    with pytest.raises(ValueError, match="factor >= 1.0"):
        callbacks.ReduceLROnPlateau(factor=1.5)


def test_reduce_lr_on_plateau_in_fit():
    x, y = _data()
    m = _model(optimizer=keras.optimizers.SGD(0.1))
    # a monitor that never improves after its first epoch: from the second epoch on,
    # each epoch (patience 1) cuts the rate by 10; the logs hold the epoch's own rate
    h = m.fit(x, y, epochs=3, verbose=0, callbacks=[
        callbacks.ReduceLROnPlateau(monitor="loss", patience=1, factor=0.1, mode="max",
                                    min_delta=1e9)])
    assert h.history["learning_rate"] == pytest.approx([0.1, 0.1, 0.01])
    assert m.optimizer.learning_rate == pytest.approx(0.001)


def test_lambda_callback_and_progbar_logger():
    x, y = _data()
    seen = []
    cb = keras.callbacks.LambdaCallback(
        on_train_begin=lambda logs: seen.append("begin"),
        on_epoch_end=lambda epoch, logs: seen.append(("epoch", epoch, sorted(logs))),
        on_batch_end=lambda batch, logs: seen.append(("batch", batch)),
        on_train_end=lambda logs: seen.append("end"))
    _model().fit(x, y, batch_size=12, epochs=2, verbose=0,
                 callbacks=[cb, keras.callbacks.ProgbarLogger()])
    assert seen == ["begin", ("batch", 0), ("batch", 1), ("epoch", 0, ["accuracy", "loss"]),
                    ("batch", 0), ("batch", 1), ("epoch", 1, ["accuracy", "loss"]), "end"]
    with pytest.raises(TypeError, match="on_epoch_end"):
        keras.callbacks.LambdaCallback(on_epoch_end=3)
    with pytest.raises(TypeError, match="unexpected"):
        keras.callbacks.LambdaCallback(on_predict_end=print)


def test_model_checkpoint_save_freq_threshold_and_templates(tmp_path):
    x, y = _data()
    m = _model()
    every = callbacks.ModelCheckpoint(str(tmp_path / "b-{epoch:02d}-{loss:.2f}.fcw"),
                                      save_weights_only=True, save_freq=3)
    m.fit(x, y, batch_size=4, epochs=2, verbose=0, callbacks=[every])   # 6 batches an epoch
    names = sorted(p.name for p in tmp_path.iterdir())
    assert len(names) >= 2 and names[0].startswith("b-01-") and names[-1].startswith("b-02-")
    best = callbacks.ModelCheckpoint(str(tmp_path / "best.fcw"), monitor="loss",
                                     save_best_only=True, save_weights_only=True,
                                     initial_value_threshold=-1.0)   # loss never below -1
    m.fit(x, y, epochs=2, verbose=0, callbacks=[best])
    assert not (tmp_path / "best.fcw").exists()
    with pytest.raises(ValueError, match="save_freq"):
        callbacks.ModelCheckpoint("x.fcw", save_freq="batch")


SCRIPT = textwrap.dedent("""
    import json, os, signal, sys
    import numpy as np
    from fastconv import callbacks, keras
    from fastconv.keras import layers
    from fastconv.utils import set_random_seed

    backup, out, kill_at = sys.argv[1], sys.argv[2], int(sys.argv[3])
    set_random_seed(0)
    model = keras.Sequential([keras.Input((6, 6, 1)), layers.Conv2D(4, 3, activation="relu"),
                              layers.Flatten(), layers.Dense(3, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    rng = np.random.default_rng(1)
    x = rng.standard_normal((24, 6, 6, 1)).astype(np.float32)
    y = np.arange(24) % 3

    class Killer(callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch
        def on_train_batch_end(self, batch, logs=None):
            if self.epoch == kill_at and batch == 2:
                os.kill(os.getpid(), signal.SIGKILL)   # mid-epoch, no cleanup

    stop = callbacks.EarlyStopping(monitor="loss", patience=50, min_delta=1e9)
    h = model.fit(x, y, batch_size=4, epochs=5, shuffle=False, verbose=0,
                  callbacks=[callbacks.BackupAndRestore(backup), stop, Killer()])
    np.savez(out, *model.get_weights())
    with open(out + ".json", "w") as f:
        json.dump({"epochs": h.epoch, "wait": stop.wait, "best": stop.best}, f)
""")


def test_backup_and_restore_after_sigkill(tmp_path):
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    backup = tmp_path / "backup"

    def run(out, kill_at):
        return subprocess.run([sys.executable, str(script), str(backup), str(out),
                               str(kill_at)], capture_output=True, text=True, timeout=300)

    whole = run(tmp_path / "whole.npz", -1)
    assert whole.returncode == 0, whole.stderr
    assert not backup.exists()            # removed when training ended
    killed = run(tmp_path / "never.npz", 2)
    assert killed.returncode == -signal.SIGKILL
    assert (backup / "backup.fcb").exists() and not (tmp_path / "never.npz").exists()
    resumed = run(tmp_path / "resumed.npz", -1)
    assert resumed.returncode == 0, resumed.stderr
    assert not backup.exists()
    with np.load(tmp_path / "whole.npz") as a, np.load(tmp_path / "resumed.npz") as b:
        for k in a.files:
            np.testing.assert_array_equal(a[k], b[k])
    info_whole = json.loads((tmp_path / "whole.npz.json").read_text())
    info_resumed = json.loads((tmp_path / "resumed.npz.json").read_text())
    # the resumed run trained epochs 2, 3, 4 (after the last completed, 1), and its
    # EarlyStopping carried on counting from the backup
    assert info_resumed["epochs"] == [2, 3, 4]
    assert info_resumed["wait"] == info_whole["wait"] == 4
    assert info_resumed["best"] == info_whole["best"]


def test_backup_and_restore_bad_arguments_and_file(tmp_path):
    with pytest.raises(ValueError, match="backup_dir"):
        callbacks.BackupAndRestore("")
    with pytest.raises(ValueError, match="save_freq"):
        callbacks.BackupAndRestore(str(tmp_path), save_freq=0)
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "backup.fcb").write_bytes(b"not a backup")
    x, y = _data()
    with pytest.raises(ValueError, match="cannot be read"):
        _model().fit(x, y, epochs=1, verbose=0,
                     callbacks=[callbacks.BackupAndRestore(str(tmp_path / "b"))])
    assert os.path.exists(tmp_path / "b" / "backup.fcb")   # never deleted on failure
