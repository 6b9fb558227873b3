"""ReduceLROnPlateau and LambdaCallback, against Keras's rules worked by hand."""

import numpy as np
import pytest

from fastconv import callbacks
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


class _ScriptedModel:
    """What EarlyStopping touches of a model: weights (here the epoch number) and
    stop_training."""

    def __init__(self):
        self.stop_training = False
        self.weights = [np.array(-1.0)]

    def get_weights(self):
        return [w.copy() for w in self.weights]

    def set_weights(self, weights):
        self.weights = [np.array(w) for w in weights]


def _early_stopping_run(losses, **kwargs):
    """Drive EarlyStopping by hand on these val_loss values; return (epochs run,
    callback, model)."""
    stop = callbacks.EarlyStopping(**kwargs)
    model = _ScriptedModel()
    stop.set_model(model)
    stop.on_train_begin()
    ran = 0
    for epoch, loss in enumerate(losses):
        model.weights = [np.array(float(epoch))]
        stop.on_epoch_end(epoch, {"val_loss": loss})
        ran += 1
        if model.stop_training:
            break
    stop.on_train_end()
    return ran, stop, model


def test_early_stopping_follows_keras_3_with_a_baseline():
    # Keras 3's rules, worked by hand. Losses 0.9, 0.8, 0.7, 0.6 with baseline 0.5 and
    # patience 1: each epoch improves on the best so far, so none reaches the
    # patience check, though none beats the baseline (the wait is never reset and
    # counts 1, 2, 3, 4); all four run, and epoch 3 is the best.
    ran, stop, model = _early_stopping_run([0.9, 0.8, 0.7, 0.6], patience=1, baseline=0.5,
                                           restore_best_weights=True)
    assert ran == 4 and stop.wait == 4 and stop.best == 0.6 and stop.best_epoch == 3
    assert stop.stopped_epoch == 0 and float(model.weights[0]) == 3.0
    # 0.9, 0.95, 0.97 with the same baseline: epoch 0 is the best (the first always
    # is); epoch 1 does not improve and the wait (2) reaches the patience: stop there,
    # restore epoch 0.
    ran, stop, model = _early_stopping_run([0.9, 0.95, 0.97], patience=2, baseline=0.5,
                                           restore_best_weights=True)
    assert ran == 2 and stop.stopped_epoch == 1 and float(model.weights[0]) == 0.0
    # Beating the baseline resets the wait: 0.4, 0.45, 0.46 (baseline 0.5, patience
    # 2): wait 0 after epoch 0, then 1, 2: stop at epoch 2.
    ran, stop, _ = _early_stopping_run([0.4, 0.45, 0.46, 0.3], patience=2, baseline=0.5)
    assert ran == 3 and stop.stopped_epoch == 2 and stop.best == 0.4


def test_early_stopping_restores_the_best_weights_without_stopping_early():
    # Keras 3 restores at the end of training whether it stopped early or not.
    ran, stop, model = _early_stopping_run([0.5, 0.3, 0.4], patience=5,
                                           restore_best_weights=True)
    assert ran == 3 and stop.stopped_epoch == 0 and float(model.weights[0]) == 1.0
    # start_from_epoch: epochs before it are not monitored (epoch 0's 0.1 is ignored).
    ran, stop, model = _early_stopping_run([0.1, 0.5, 0.6, 0.7], patience=1,
                                           start_from_epoch=1, restore_best_weights=True)
    assert ran == 3 and stop.best == 0.5 and stop.best_epoch == 1
    assert float(model.weights[0]) == 1.0
