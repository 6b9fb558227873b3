"""ReduceLROnPlateau and LambdaCallback, against Keras's rules worked by hand."""

import numpy as np
import pytest

from fastconv.callbacks import Callback, LambdaCallback, ReduceLROnPlateau
from fastconv.keras import callbacks as keras_callbacks
from fastconv.optimizers import SGD

from .test_training_data import data, dense_model


class Feed(Callback):
    """Puts a given value sequence into the logs as 'score', epoch by epoch."""

    def __init__(self, values):
        super().__init__()
        self.values = values

    def on_epoch_end(self, epoch, logs=None):
        logs["score"] = self.values[epoch]


def test_reduce_lr_on_plateau_follows_keras_rule():
    x, y = data()
    model = dense_model(optimizer=SGD(1.0))
    lrs = LambdaCallback(on_epoch_end=lambda e, logs: seen.append(model.optimizer.learning_rate))
    seen = []
    # min mode, patience 2, cooldown 1, scores 5 4 4 4 4 4 4 (0-based epochs): no
    # improvement from epoch 2 (wait 1); wait 2 at epoch 3: lr 1 -> 0.5, cooldown 1;
    # epoch 4 leaves the cooldown (counter 1 -> 0, wait 0) and counts wait 1; wait 2 at
    # epoch 5: lr 0.5 -> 0.25, floored at min_lr 0.3. `seen` is read before the reduction.
    cb = ReduceLROnPlateau(monitor="score", factor=0.5, patience=2, cooldown=1, min_lr=0.3)
    model.fit(x, y, epochs=7, verbose=0,
              callbacks=[Feed([5, 4, 4, 4, 4, 4, 4]), lrs, cb])
    assert seen == [1.0, 1.0, 1.0, 1.0, 0.5, 0.5, 0.3]
    assert model.optimizer.learning_rate == 0.3
    assert model.history.history["learning_rate"] == seen
    with pytest.raises(ValueError, match="factor >= 1.0"):
        ReduceLROnPlateau(factor=1.0)
    with pytest.raises(ValueError, match="mode"):
        ReduceLROnPlateau(mode="up")
    assert keras_callbacks.ReduceLROnPlateau is ReduceLROnPlateau


def test_lambda_callback_calls_the_given_hooks_only():
    x, y = data(16)
    model = dense_model()
    events = []
    cb = keras_callbacks.LambdaCallback(
        on_train_begin=lambda logs: events.append("begin"),
        on_epoch_end=lambda epoch, logs: events.append(("epoch", epoch, "loss" in logs)),
        on_train_batch_end=lambda batch, logs: events.append(batch),
        on_train_end=lambda logs: events.append("end"))
    model.fit(x, y, batch_size=8, epochs=2, verbose=0, callbacks=[cb])
    assert events == ["begin", 0, 1, ("epoch", 0, True), 0, 1, ("epoch", 1, True), "end"]
    with pytest.raises(TypeError, match="on_epoch_end"):
        LambdaCallback(on_epoch_end=3)
    assert np.isfinite(model.history.history["loss"]).all()


def test_model_checkpoint_save_freq_threshold_and_templates(tmp_path):
    from fastconv.callbacks import ModelCheckpoint
    x, y = data()
    model = dense_model()
    # 40 samples in batches of 8: 5 batches per epoch, 10 in 2 epochs; every 4 batches
    # saves after batches 4 and 8 of the fit (epoch 1 batch 4, epoch 2 batch 3).
    cb = ModelCheckpoint(str(tmp_path / "w-{epoch}-{batch}.fcw"), save_weights_only=True,
                         save_freq=4)
    model.fit(x, y, batch_size=8, epochs=2, verbose=0, callbacks=[cb])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w-1-4.fcw", "w-2-3.fcw"]
    # a threshold no epoch beats: nothing saved; a template with a log value
    cb = ModelCheckpoint(str(tmp_path / "m-{epoch:02d}-{loss:.2f}.fcm"), monitor="loss",
                         save_best_only=True, initial_value_threshold=0.0)
    model.fit(x, y, batch_size=8, epochs=2, verbose=0, callbacks=[cb])
    assert not list(tmp_path.glob("m-*"))
    cb = ModelCheckpoint(str(tmp_path / "m-{epoch:02d}-{loss:.2f}.fcm"), monitor="loss",
                         save_best_only=True, initial_value_threshold=100.0)
    model.fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=[cb])
    loss = model.history.history["loss"][0]
    assert [p.name for p in tmp_path.glob("m-*")] == [f"m-01-{loss:.2f}.fcm"]
    for bad in (0, "batch", True):
        with pytest.raises(ValueError, match="save_freq"):
            ModelCheckpoint(str(tmp_path / "x.fcm"), save_freq=bad)
