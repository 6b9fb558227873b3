"""Sequential: training, summary, bad input, callbacks, saving, reproducibility."""

import os

import numpy as np
import pytest

import fastconv
from fastconv import layers, models
from fastconv.callbacks import CSVLogger, EarlyStopping, LearningRateScheduler, TerminateOnNaN
from fastconv.layers import Conv2D, Dense, Dropout, Flatten, MaxPooling2D
from fastconv.models import Sequential
from fastconv.utils import check_gradients, set_random_seed, to_categorical


def quadrants(n, seed, size=12):
    """Noisy images, one bright quadrant; the label is which quadrant (4 classes)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 0.3, (n, size, size, 1)).astype(np.float32)
    y = rng.integers(0, 4, n)
    h = size // 2
    for i, q in enumerate(y):
        r, c = divmod(int(q), 2)
        x[i, r * h:(r + 1) * h, c * h:(c + 1) * h, 0] += 1
    return x, y


def lecture_model(size=12, classes=4):
    # The lecture's MNIST program, imports changed, sizes shrunk.
    model = Sequential()
    model.add(Conv2D(8, kernel_size=3, activation='relu', input_shape=(size, size, 1)))
    model.add(MaxPooling2D(pool_size=(2, 2)))
    model.add(Dropout(0.25))
    model.add(Flatten())
    model.add(Dense(32, activation='relu'))
    model.add(Dropout(0.5))
    model.add(Dense(classes, activation='softmax'))
    model.compile(loss='categorical_crossentropy', optimizer='adam', metrics=['accuracy'])
    return model


def test_lecture_program_learns(capsys):
    set_random_seed(0)
    x, y = quadrants(480, 1)
    xt, yt = quadrants(160, 2)
    model = lecture_model()
    history = model.fit(x, to_categorical(y, 4), batch_size=32, epochs=3, verbose=1,
                        validation_data=(xt, to_categorical(yt, 4)))
    loss, acc = model.evaluate(xt, to_categorical(yt, 4), verbose=0)
    assert acc > 0.8  # chance is 0.25
    assert set(history.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert len(history.history["loss"]) == 3
    assert history.history["loss"][-1] < history.history["loss"][0]
    out = capsys.readouterr().out
    # stdout is captured (not a terminal): one line per epoch, not one per step.
    assert out.count("Epoch ") == 3 and out.count("15/15") == 3
    assert "val_accuracy" in out


def test_sparse_from_logits_cifar_style():
    set_random_seed(1)
    x, y = quadrants(512, 3)
    model = models.Sequential([
        layers.Conv2D(8, (3, 3), activation='relu', input_shape=(12, 12, 1)),
        layers.MaxPooling2D((2, 2)),
        layers.Conv2D(8, (3, 3), activation='relu'),
        layers.Flatten(),
        layers.Dense(16, activation='relu'),
        layers.Dense(4),
    ])
    from fastconv.losses import SparseCategoricalCrossentropy
    model.compile(optimizer='adam', loss=SparseCategoricalCrossentropy(from_logits=True),
                  metrics=['accuracy'])
    history = model.fit(x, y, epochs=4, verbose=0, validation_split=0.25)
    assert history.history['val_accuracy'][-1] > 0.6
    result = model.evaluate(x, y, verbose=0, return_dict=True)
    assert set(result) == {"loss", "accuracy"}


def test_summary():
    model = lecture_model(28, 10)
    lines = []
    model.summary(print_fn=lines.append)
    text = "\n".join(lines)
    assert "conv2d" in text and "(Conv2D)" in text
    assert "(None, 26, 26, 8)" in text and "(None, 13, 13, 8)" in text
    assert "(None, 1352)" in text
    # 3*3*1*8+8 = 80; 1352*32+32 = 43296; 32*10+10 = 330
    assert "Total params: 43,706" in text and "Non-trainable params: 0" in text
    assert model.count_params() == 80 + 43296 + 330


def test_dense_on_4d_output_shows_shape():
    model = Sequential([Conv2D(4, 3, input_shape=(8, 8, 1)), Dense(5)])
    assert model.output_shape == (None, 6, 6, 5)
    lines = []
    model.summary(print_fn=lines.append)
    assert any("(None, 6, 6, 5)" in line for line in lines)


def test_channels_first_hint():
    model = Sequential()
    with pytest.raises(ValueError, match=r"Layer 'c' \(Conv2D\).*\(None, 1, 28, 28\).*1 pixel "
                       r"tall.*did you mean data_format='channels_first'.*\(28, 28, 1\)"):
        model.add(Conv2D(32, 3, input_shape=(1, 28, 28), name="c"))


def test_bad_inputs_before_training():
    model = lecture_model()
    x, y = quadrants(8, 0)
    with pytest.raises(ValueError, match="have 3 classes.*outputs 4"):
        model.fit(x, to_categorical(y % 3, 3), verbose=0)
    with pytest.raises(ValueError, match=r"must have shape \(None, 12, 12, 1\).*\(8, 12, 12\)"
                       r".*channel axis"):
        model.fit(x[..., 0], to_categorical(y, 4), verbose=0)
    bad = x.copy()
    bad[5, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN or inf in 1 sample.*index 5"):
        model.fit(bad, to_categorical(y, 4), verbose=0)
    with pytest.raises(ValueError, match="`batch_size` must be an int >= 1"):
        model.fit(x, to_categorical(y, 4), batch_size=0)
    with pytest.raises(RuntimeError, match="compile"):
        Sequential([Dense(2, input_shape=(3,))]).fit(np.zeros((2, 3)), np.zeros((2, 2)))


def test_nan_loss_terminates_with_epoch_and_batch(capsys):
    model = Sequential([Dense(1, input_shape=(2,))])
    model.compile(optimizer=__import__("fastconv").optimizers.SGD(1e30), loss="mse")
    x = np.ones((64, 2), np.float32) * 1e10
    with pytest.warns(RuntimeWarning, match="loss became .* at epoch 1, batch"):
        history = model.fit(x, np.ones((64, 1)), batch_size=8, epochs=5, verbose=0,
                            callbacks=[TerminateOnNaN()], shuffle=False)
    assert "terminating training" in capsys.readouterr().out
    assert len(history.history["loss"]) == 1


def test_whole_model_gradients_and_input_gradient(rng):
    set_random_seed(2)
    model = Sequential([Conv2D(3, 3, activation="relu", input_shape=(6, 6, 2),
                               kernel_regularizer="l2"),
                        MaxPooling2D(), Flatten(), Dense(3, activation="softmax")])
    model.compile(loss="sparse_categorical_crossentropy", optimizer="sgd")
    x = rng.normal(size=(3, 6, 6, 2))
    errors = check_gradients(model, x, [0, 2, 1])
    assert set(errors) == {model.layers[0].name, model.layers[3].name}
    assert max(errors.values()) < 1e-6
    # d(sum of class-1 probabilities) / d input, against central differences.
    m64 = Sequential.from_config({**model.get_config(), "dtype": "float64"})
    for layer in m64.layers:
        layer.dtype = np.dtype(np.float64)
    m64.set_weights(model.get_weights())
    x64 = x.copy()
    out, ctx = m64.forward(x64)
    g = np.zeros_like(out)
    g[:, 1] = 1
    dx, _ = m64.backward(g, ctx)
    from fastconv.testing import assert_close, numerical_gradient
    assert_close(dx, numerical_gradient(lambda: m64.forward(x64)[0], x64, g), rtol=1e-6)
    a, c = m64.intermediate_outputs(x64, [0, m64.layers[2].name])
    assert a.shape == (3, 4, 4, 3) and c.shape == (3, 12)


@pytest.mark.parametrize("threads", [1, 2], indirect=True)
def test_seeded_fit_is_bit_identical(threads):
    x, y = quadrants(96, 5)
    weights = []
    for _ in range(2):
        set_random_seed(123)
        model = lecture_model()
        model.fit(x, to_categorical(y, 4), batch_size=16, epochs=2, verbose=0)
        weights.append(model.get_weights())
    for a, b in zip(*weights):
        np.testing.assert_array_equal(a, b)


def test_save_load_round_trip(tmp_path):
    set_random_seed(4)
    x, y = quadrants(64, 6)
    model = lecture_model()
    model.fit(x, to_categorical(y, 4), epochs=1, verbose=0)
    path = tmp_path / "model.fcm"
    model.save(path)
    loaded = models.load_model(path)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    assert loaded.get_config() == model.get_config()
    assert loaded.evaluate(x, to_categorical(y, 4), verbose=0) == model.evaluate(
        x, to_categorical(y, 4), verbose=0)
    loaded.fit(x, to_categorical(y, 4), epochs=1, verbose=0)  # compiled on load
    wpath = tmp_path / "w.fcw"
    model.save_weights(wpath)
    fresh = lecture_model()
    fresh.load_weights(wpath)
    np.testing.assert_array_equal(fresh.predict(x), model.predict(x))
    with pytest.raises(ValueError, match="holds only weights"):
        models.load_model(wpath)
    with pytest.raises(ValueError, match="holds 6 weight arrays.*has 2"):
        Sequential([Dense(2, input_shape=(3,))]).load_weights(wpath)


def test_corrupt_and_truncated_files(tmp_path):
    model = Sequential([Dense(2, input_shape=(3,))])
    path = tmp_path / "m.fcm"
    model.save(path)
    good = path.read_bytes()
    (tmp_path / "t.fcm").write_bytes(good[: len(good) // 2])
    with pytest.raises(ValueError, match="not a readable fastconv model file"):
        models.load_model(tmp_path / "t.fcm")
    (tmp_path / "txt.fcm").write_text("hello")
    with pytest.raises(ValueError, match="not a zip archive"):
        models.load_model(tmp_path / "txt.fcm")
    flipped = bytearray(good)
    flipped[len(good) // 3] ^= 0xFF
    (tmp_path / "f.fcm").write_bytes(bytes(flipped))
    with pytest.raises(ValueError, match="not a readable fastconv model file"):
        models.load_model(tmp_path / "f.fcm")
    with pytest.raises(FileNotFoundError):
        models.load_model(tmp_path / "missing.fcm")


def test_failed_save_keeps_old_file(tmp_path):
    path = tmp_path / "m.fcm"
    Sequential([Dense(2, input_shape=(3,))]).save(path)
    before = path.read_bytes()
    custom = Sequential([Dense(2, input_shape=(3,), activation=lambda x: x)])
    with pytest.raises(ValueError, match="Only built-in activations"):
        custom.save(path)
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["m.fcm"]


def test_callbacks(tmp_path):
    set_random_seed(7)
    x, y = quadrants(64, 8)
    model = lecture_model()
    seen = []
    stopper = EarlyStopping(monitor="loss", patience=0, min_delta=10.0,
                            restore_best_weights=True)
    history = model.fit(x, to_categorical(y, 4), epochs=5, verbose=0, callbacks=[
        stopper, CSVLogger(str(tmp_path / "log.csv")),
        LearningRateScheduler(lambda epoch, lr: seen.append(lr) or 0.5 ** epoch * 1e-3)])
    # min_delta=10 is never met: stop after the second epoch (patience 0, first epoch sets best).
    assert len(history.history["loss"]) == 2
    assert model.optimizer.learning_rate == 0.5e-3
    rows = (tmp_path / "log.csv").read_text().splitlines()
    assert rows[0] == "epoch,accuracy,loss" and len(rows) == 3


def test_train_on_batch_and_predict_shapes():
    set_random_seed(9)
    model = lecture_model()
    x, y = quadrants(10, 9)
    loss, acc = model.train_on_batch(x, to_categorical(y, 4))
    assert np.isfinite(loss) and 0 <= acc <= 1
    p = model.predict(x, batch_size=3)
    assert p.shape == (10, 4) and p.dtype == np.float32
    np.testing.assert_allclose(p.sum(axis=1), 1, rtol=1e-5)
    assert model.input_shape == (None, 12, 12, 1) and len(model.layers) == 7


def test_training_skips_only_the_first_layers_input_gradient():
    from fastconv import layers as L
    from fastconv.models import Sequential

    rng = np.random.default_rng(3)
    x = rng.standard_normal((6, 8, 8, 1)).astype(np.float32)
    y = rng.integers(0, 3, 6)
    model = Sequential([L.Conv2D(4, 3, activation="relu", input_shape=(8, 8, 1)),
                        L.Flatten(), L.Dense(5, activation="relu"), L.Dense(3)])
    model.compile(loss="sparse_categorical_crossentropy", optimizer="sgd")
    calls = []
    conv = model.layers[0]
    original = conv.backward

    def spy(d, ctx, need_dx=True):
        calls.append(need_dx)
        return original(d, ctx, need_dx)

    conv.backward = spy
    targets = model.loss.prepare_targets(y, model.output_shape)
    _, _, params, grads = model._loss_and_grads([x], targets)
    grads = [g.copy() for g in grads]
    assert calls == [False]
    # The skipped input gradient changes no parameter gradient: compare with a full
    # backward pass through the public API (the model as a layer).
    out, ctx = model.forward(x, training=True)
    dx, full = model.backward(model.loss.value_and_grad(targets, out)[1], ctx)
    assert calls == [False, True] and dx.shape == x.shape
    assert len(full) == len(grads)
    found = {id(w): g for w, g in full}
    for (_, _, arr), g in zip(model._train_items(), grads):
        np.testing.assert_allclose(found[id(arr)], g, rtol=1e-6)


def test_augmentation_layers_come_from_fastconv_layers_and_load(tmp_path):
    from fastconv import layers as L
    from fastconv.layers import preprocessing

    assert L.RandomFlip is preprocessing.RandomFlip  # Keras 3: keras.layers.RandomFlip
    model = Sequential([L.Input(shape=(6, 6, 1)), L.Rescaling(0.5), L.RandomFlip(seed=1),
                        L.RandomTranslation(0.1, 0.1, seed=2), L.RandomRotation(0.05, seed=3),
                        L.Conv2D(2, 3), L.Flatten(), L.Dense(2, activation="softmax")])
    model.compile(loss="sparse_categorical_crossentropy", optimizer="sgd")
    x = np.random.default_rng(0).random((4, 6, 6, 1)).astype(np.float32)
    path = str(tmp_path / "aug.zip")
    model.save(path)
    loaded = models.load_model(path)
    assert [type(la).__name__ for la in loaded.layers][:4] == [
        "Rescaling", "RandomFlip", "RandomTranslation", "RandomRotation"]
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


@pytest.fixture
def fuse_layers():
    saved = models.FUSE_LAYERS
    yield
    models.FUSE_LAYERS = saved


def test_fused_conv_pool_steps_match_layer_by_layer(fuse_layers, threads):
    from fastconv.backends import cython as fast

    x, y = quadrants(64, 7, size=13)  # odd size: a row and column no window covers
    runs = {}
    for fuse in (True, False):
        models.FUSE_LAYERS = fuse
        set_random_seed(5)
        model = Sequential([Conv2D(16, 3, activation="relu", input_shape=(13, 13, 1)),
                            MaxPooling2D(), Conv2D(8, 2, activation="relu"), MaxPooling2D(),
                            Flatten(), Dense(4, activation="softmax")])
        model.compile(loss="sparse_categorical_crossentropy", optimizer="adam")
        kinds = [type(s).__name__ for s in model._steps()]
        before = model.predict(x)
        history = model.fit(x, y, batch_size=16, epochs=2, verbose=0)
        runs[fuse] = kinds, before, history.history["loss"], model.get_weights()
    assert runs[True][0] == ["_ConvReLUMaxPool", "_ConvReLUMaxPool", "Flatten", "Dense"]
    assert runs[False][0] == ["Conv2D", "MaxPooling2D", "Conv2D", "MaxPooling2D",
                              "Flatten", "Dense"]
    # The forward pass runs the same convolution kernel: the same bits.
    np.testing.assert_array_equal(runs[True][1], runs[False][1])
    # The weight gradient sums in another order: equal to rounding.
    np.testing.assert_allclose(runs[True][2], runs[False][2], rtol=1e-5)
    for a, b in zip(runs[True][3], runs[False][3]):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    if fast._HAVE_AVX2:  # the first block ran on the fused kernels
        models.FUSE_LAYERS = True
        _, cache = model._steps()[0].forward(x[:2])
        assert "win" in cache.arrays


def test_fusion_only_where_it_is_the_same_computation(fuse_layers):
    def steps(*layer_list):
        model = Sequential(list(layer_list))
        return [type(s).__name__ for s in model._steps()]

    fused = ["_ConvReLUMaxPool"]
    assert steps(Conv2D(8, 3, activation="relu", input_shape=(9, 9, 1)),
                 MaxPooling2D(3)) == fused
    assert steps(Conv2D(8, 3, input_shape=(9, 9, 1)), MaxPooling2D()) == \
        ["Conv2D", "MaxPooling2D"]  # no ReLU
    assert steps(Conv2D(8, 3, activation="relu", input_shape=(9, 9, 1)),
                 MaxPooling2D(2, strides=1))[0] == "Conv2D"  # overlapping windows
    assert steps(Conv2D(8, 3, activation="relu", input_shape=(9, 9, 1)),
                 MaxPooling2D(padding="same"))[0] == "Conv2D"
    assert steps(Conv2D(8, 3, activation="relu", input_shape=(1, 9, 9),
                        data_format="channels_first"),
                 MaxPooling2D(data_format="channels_first"))[0] == "Conv2D"
    models.FUSE_LAYERS = False
    assert steps(Conv2D(8, 3, activation="relu", input_shape=(9, 9, 1)),
                 MaxPooling2D())[0] == "Conv2D"


def test_fused_plan_follows_changed_layers(fuse_layers, rng):
    model = Sequential([Conv2D(8, 3, activation="relu", input_shape=(9, 9, 1)),
                        MaxPooling2D(), Flatten(), Dense(2)])
    x = rng.standard_normal((2, 9, 9, 1)).astype(np.float32)
    model.predict(x)
    assert type(model._steps()[0]).__name__ == "_ConvReLUMaxPool"
    model.layers[0].activation = fastconv.activations.get("tanh")
    assert type(model._steps()[0]).__name__ == "Conv2D"
    want = model.layers[1].forward(model.layers[0].forward(x)[0])[0]
    np.testing.assert_array_equal(model.intermediate_outputs(x, [1])[0], want)


def test_freezing_a_layer_between_steps_takes_effect(rng):
    # The model keeps its list of trainable weights between steps; changing a layer's
    # `trainable` flag, or replacing a weight array, must still be seen at once.
    set_random_seed(3)
    x, y = quadrants(32, seed=4)
    model = lecture_model()
    y1 = to_categorical(y, 4)
    model.train_on_batch(x, y1)
    conv, dense = model.layers[0], model.layers[4]
    conv.trainable = False
    frozen, moving = conv.kernel.copy(), dense.kernel.copy()
    model.train_on_batch(x, y1)
    assert np.array_equal(conv.kernel, frozen)
    assert not np.array_equal(dense.kernel, moving)
    conv.trainable = True
    model.train_on_batch(x, y1)
    assert not np.array_equal(conv.kernel, frozen)
    # A replaced array (same shape) is the one that gets trained from then on.
    replacement = dense.kernel.copy()
    before = replacement.copy()
    dense.kernel = replacement
    model.train_on_batch(x, y1)
    assert dense.kernel is replacement
    assert not np.array_equal(replacement, before)


def _have_direct_kernels():
    try:
        from fastconv.backends import cython as fast
    except ImportError:  # (the compiled modules missing: the reference runs)
        return False
    return fast._HAVE_AVX2


@pytest.mark.skipif(not _have_direct_kernels(),
                    reason="the fused block skips its checks on the direct (AVX2) kernels "
                           "only; elsewhere it is conv then pooling, checked every call")
def test_fused_step_checks_its_arguments_again_when_anything_changes(fuse_layers, rng,
                                                                     monkeypatch):
    # After one checked call, the fused conv block skips the argument checks while
    # shapes, arrays, settings and backend stay the same, and checks again otherwise;
    # the output is the checked call's, bit for bit, every time.
    from fastconv import backends, ops
    from fastconv.backends import _args

    calls = []
    real = _args.conv_args
    monkeypatch.setattr(_args, "conv_args", lambda *a: calls.append(1) or real(*a))
    model = Sequential([Conv2D(8, 3, activation="relu", input_shape=(9, 9, 2)),
                        MaxPooling2D(), Flatten(), Dense(2)])
    step = model._steps()[0]
    conv = model.layers[0]
    x = rng.standard_normal((4, 9, 9, 2)).astype(np.float32)

    def run(x, expect_checked):
        calls.clear()
        out, _ = step.forward(x)
        assert bool(calls) == expect_checked
        ref, _ = ops.conv2d_relu_maxpool_forward(
            x, conv.kernel, conv.bias, conv.strides, conv.padding, conv.dilation_rate,
            model.layers[1].pool_size)
        np.testing.assert_array_equal(out, ref)

    run(x, True)
    run(x, False)
    conv.kernel[...] = rng.standard_normal(conv.kernel.shape)  # in place: still prepared
    run(x, False)
    run(x[:3].copy(), True)                                     # another batch size
    run(x[:3].copy(), False)
    run(np.asfortranarray(x[:3]), True)                         # not C-contiguous
    run(x[:3].astype(np.float64), True)                         # another dtype
    run(x[:3].copy(), True)
    conv.strides = (2, 2)                                       # another setting
    run(x[:3].copy(), True)
    conv.kernel = conv.kernel.copy()                            # another array
    run(x[:3].copy(), True)
    with backends.use_backend("numpy"):                         # another backend
        run(x[:3].copy(), True)
    run(x[:3].copy(), True)


@pytest.mark.skipif(not _have_direct_kernels(),
                    reason="the fused block keeps its arrays on the direct (AVX2) kernels "
                           "only; unfused, the convolution's output is new every step")
def test_training_steps_reuse_their_large_arrays_and_nothing_else_sees_them(rng):
    import tracemalloc

    set_random_seed(11)
    x, y = quadrants(256, seed=12)
    y1 = to_categorical(y, 4)
    model = lecture_model()  # conv block -> (256, 5, 5, 8): 200 floats a sample
    for _ in range(3):
        model.train_on_batch(x, y1)
    activation_bytes = 256 * 5 * 5 * 8 * 4  # 205 kB, four such arrays a step before
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        model.train_on_batch(x, y1)
        peak = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
    assert peak < activation_bytes, peak
    # Outside a training step every result is a new array: a second call never
    # overwrites the first one's results.
    first = model.intermediate_outputs(x[:8], [0, 1, 2, 4])
    kept = [a.copy() for a in first]
    model.intermediate_outputs(x[8:16], [0, 1, 2, 4])
    model.train_on_batch(x, y1)
    for a, b in zip(first, kept):
        np.testing.assert_array_equal(a, b)
    dropout = model.layers[2]
    a = dropout.forward(x[:4, :5, :5, :1].repeat(8, axis=3).copy(), training=True)[0]
    b = dropout.forward(x[:4, :5, :5, :1].repeat(8, axis=3).copy(), training=True)[0]
    assert a is not b and not np.shares_memory(a, b)


def test_files_written_before_the_functional_api_still_load():
    # Written by fastconv at commit 2dde712 (before models became graphs): a trained
    # Sequential model with Rescaling, BatchNormalization, Dropout and an l2 penalty,
    # with that version's predictions for the stored input.
    here = os.path.join(os.path.dirname(__file__), "data")
    model = models.load_model(os.path.join(here, "fastconv_0.1_sequential.zip"))
    io = np.load(os.path.join(here, "fastconv_0.1_sequential_io.npz"))
    np.testing.assert_allclose(model.predict(io["x"]), io["pred"], rtol=1e-6, atol=1e-7)
    assert model.optimizer is not None and [type(la).__name__ for la in model.layers][:3] == [
        "Rescaling", "Conv2D", "BatchNormalization"]


def test_saved_files_get_the_mode_of_an_ordinary_write(tmp_path):
    model = Sequential([Dense(2, input_shape=(3,))])
    path = str(tmp_path / "m.zip")
    umask = os.umask(0o022)
    try:
        model.save(path)
        assert os.stat(path).st_mode & 0o777 == 0o644
        os.chmod(path, 0o640)
        model.save(path)  # overwriting keeps the file's mode
        assert os.stat(path).st_mode & 0o777 == 0o640
    finally:
        os.umask(umask)


def test_ctrl_c_in_fit_stops_after_the_batch_and_leaves_a_usable_model(tmp_path):
    # A subprocess trains; the parent sends SIGINT once the first epoch has ended. fit
    # must finish the batch in progress, call on_train_end, keep the History so far and
    # re-raise KeyboardInterrupt; the model must then predict and train again.
    import signal
    import subprocess
    import sys
    import textwrap
    import time

    flag = tmp_path / "epoch_done"
    script = textwrap.dedent(f"""
        import numpy as np
        from fastconv.callbacks import Callback
        from fastconv.layers import Conv2D, Dense, Flatten
        from fastconv.models import Sequential

        class Watch(Callback):
            def on_epoch_end(self, epoch, logs=None):
                open({str(flag)!r}, "w").close()
            def on_train_batch_end(self, batch, logs=None):
                self.batches = getattr(self, "batches", 0) + 1
            def on_train_end(self, logs=None):
                print("on_train_end", flush=True)

        model = Sequential([Conv2D(4, 3, activation="relu", input_shape=(12, 12, 1)),
                            Flatten(), Dense(2, activation="softmax")])
        model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
        x = np.random.default_rng(0).random((64, 12, 12, 1)).astype("float32")
        y = np.arange(64) % 2
        watch = Watch()
        try:
            model.fit(x, y, batch_size=1, epochs=100000, verbose=0, callbacks=[watch])
        except KeyboardInterrupt:
            epochs = len(model.history.history["loss"])
            print("interrupted", epochs, watch.batches % 64 != 0 or epochs > 0, flush=True)
        assert np.isfinite(model.predict(x[:2])).all()
        model.fit(x, y, epochs=1, verbose=0)
        print("usable", flush=True)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not flag.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert flag.exists(), proc.communicate()[1]
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    lines = out.split()
    assert "on_train_end" in lines and "usable" in lines
    assert out.index("on_train_end") < out.index("interrupted")
    epochs = int(lines[lines.index("interrupted") + 1])
    assert epochs >= 1


def test_an_interrupted_checkpoint_write_leaves_the_previous_file(tmp_path, monkeypatch):
    from fastconv import _saving

    model = Sequential([Dense(2, input_shape=(3,))])
    path = str(tmp_path / "best.keras")
    model.save(path)
    before = open(path, "rb").read()
    model.set_weights([w + 1 for w in model.get_weights()])

    def interrupted(src, dst):
        raise KeyboardInterrupt

    monkeypatch.setattr(_saving.os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        model.save(path)
    monkeypatch.undo()
    assert open(path, "rb").read() == before
    assert [p.name for p in tmp_path.iterdir()] == ["best.keras"]  # no temporary left


def _conv_bn_model(use_bias, scale=True, center=True):
    from fastconv.layers import BatchNormalization, ReLU

    return Sequential([Conv2D(8, 3, padding="same", use_bias=use_bias, input_shape=(9, 9, 3)),
                       BatchNormalization(scale=scale, center=center), ReLU(),
                       Conv2D(4, 3), BatchNormalization(), Flatten(),
                       Dense(3, activation="softmax")])


@pytest.mark.parametrize("use_bias, scale, center", [(False, True, True), (True, True, True),
                                                     (True, False, False)])
def test_conv_batchnorm_folds_outside_training(fuse_layers, rng, use_bias, scale, center):
    # Conv2D -> BatchNormalization (-> ReLU) runs as one op: in training the layers one
    # after the other, the normalisation and the ReLU in shared passes (the same bits
    # as unfused); in inference the normalisation folded into the convolution (equal
    # to rounding), the ReLU in its output pass; an inference-mode backward (input and
    # weight gradients, as a saliency map asks) equal to the unfused one.
    x = rng.normal(size=(16, 9, 9, 3)).astype(np.float32)
    y = rng.integers(0, 3, size=16)
    runs = {}
    for fuse in (True, False):
        models.FUSE_LAYERS = fuse
        set_random_seed(2)
        model = _conv_bn_model(use_bias, scale, center)
        model.compile(loss="sparse_categorical_crossentropy", optimizer="adam")
        history = model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
        graph = model._graph
        (out,), tape = graph.forward([x], training=False)
        dx, wg = graph.backward(tape, [np.ones_like(out)])
        runs[fuse] = ([type(s).__name__ for s in model._steps()], history.history["loss"],
                      model.get_weights(), model.predict(x, verbose=0), dx[0],
                      {id(w): g for w, g in wg}, [id(w) for w in model.trainable_weights])
    assert runs[True][0][:2] == ["_ConvBatchNormReLU", "_ConvBatchNorm"]
    assert runs[False][0][:3] == ["Conv2D", "BatchNormalization", "ReLU"]
    assert runs[True][1] == runs[False][1]  # training: the unfused computation
    for a, b in zip(runs[True][2], runs[False][2]):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(runs[True][3], runs[False][3], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(runs[True][4], runs[False][4], rtol=1e-4, atol=1e-6)
    for wid_t, wid_f in zip(runs[True][6], runs[False][6]):
        np.testing.assert_allclose(runs[True][5][wid_t], runs[False][5][wid_f], rtol=1e-4,
                                   atol=1e-5)
    assert len(runs[True][5]) == len(runs[False][5])


def _freeze_batchnorms(model, mean=0.0, variance=2.0):
    """Set every BatchNormalization's moving statistics and freeze it."""
    for layer in model.layers:
        if type(layer).__name__ == "BatchNormalization":
            layer.moving_mean[...] = mean
            layer.moving_variance[...] = variance
            layer.trainable = False


def _residual_model(bn_axis=-1):
    from fastconv import keras

    L = keras.layers
    inputs = keras.Input((8, 8, 3))
    t = L.Conv2D(6, 3, padding="same")(inputs)
    t = L.ReLU()(L.BatchNormalization(axis=bn_axis)(t))           # Conv -> BN -> ReLU
    r = L.Conv2D(6, 3, padding="same", use_bias=False)(t)
    r = L.BatchNormalization()(r)                                   # Conv -> BN
    t = L.Activation("relu")(L.Add()([t, r]))                       # Add -> ReLU
    t = L.Flatten()(t)
    t = L.Activation("relu")(L.BatchNormalization(center=False)(L.Dense(5)(t)))  # BN -> ReLU
    return keras.Model(inputs, L.Dense(3, activation="softmax")(t))


@pytest.mark.parametrize("bn_axis, frozen", [(-1, False), (3, False), (-1, True)])
def test_batchnorm_relu_and_add_relu_chains_train_with_the_unfused_bits(fuse_layers, threads,
                                                                         rng, bn_axis, frozen):
    # The normalisation's map and the ReLU share a pass each way, as do an Add and the
    # ReLU after it: training gives the unfused losses and weights bit for bit, and
    # prediction the same outputs (to rounding: there the normalisation folds). With
    # frozen normalisations (inference mode in fit), the convolution-normalisation
    # pairs fold in training too, so there the runs agree to rounding.
    x = rng.normal(size=(24, 8, 8, 3)).astype(np.float32)
    y = rng.integers(0, 3, size=24)
    runs = {}
    for fuse in (True, False):
        models.FUSE_LAYERS = fuse
        set_random_seed(5)
        model = _residual_model(bn_axis)
        if frozen:
            _freeze_batchnorms(model, mean=0.1)
        model.compile(loss="sparse_categorical_crossentropy", optimizer="adam")
        history = model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
        runs[fuse] = ([type(s).__name__ for s in model._steps()], history.history["loss"],
                      model.get_weights(), model.predict(x, verbose=0))
    assert runs[True][0] == ["_ConvBatchNormReLU", "_ConvBatchNorm", "_AddReLU", "Flatten",
                             "Dense", "_BatchNormReLU", "Dense"]
    if frozen:
        np.testing.assert_allclose(runs[True][1], runs[False][1], rtol=1e-5)
        for a, b in zip(runs[True][2], runs[False][2]):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    else:
        assert runs[True][1] == runs[False][1]
        for a, b in zip(runs[True][2], runs[False][2]):
            np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(runs[True][3], runs[False][3], rtol=1e-5, atol=1e-6)


def test_fused_chains_gradients_match_numerical(fuse_layers):
    # float64, training-mode batch statistics: the fused chains' input gradient against
    # central differences of the fused forward pass.
    from fastconv import config
    from fastconv.testing import assert_close, numerical_gradient

    models.FUSE_LAYERS = True
    saved = config.floatx()
    config.set_floatx("float64")
    try:
        set_random_seed(3)
        model = _residual_model()
    finally:
        config.set_floatx(saved)
    assert model.get_weights()[0].dtype == np.float64
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 8, 8, 3))
    g = rng.normal(size=(4, 3))
    graph = model._graph
    (out,), tape = graph.forward([x], training=True)
    dx, _ = graph.backward(tape, [g])
    assert "_BatchNormReLU" in [type(s).__name__ for s in model._steps()]
    num = numerical_gradient(lambda: graph.forward([x], training=True)[0][0], x, g)
    assert_close(dx[0], num, rtol=1e-6)


def test_conv_batchnorm_fusion_only_where_it_folds(fuse_layers):
    from fastconv.layers import BatchNormalization

    def steps(*layer_list):
        return [type(s).__name__ for s in Sequential(list(layer_list))._steps()]

    assert steps(Conv2D(8, 3, input_shape=(9, 9, 1)), BatchNormalization())[0] == \
        "_ConvBatchNorm"
    assert steps(Conv2D(8, 3, activation="relu", input_shape=(9, 9, 1)),
                 BatchNormalization())[0] == "Conv2D"  # a ReLU between them
    assert steps(Conv2D(8, 3, input_shape=(1, 9, 9), data_format="channels_first"),
                 BatchNormalization(axis=1))[0] == "Conv2D"
    models.FUSE_LAYERS = False
    assert steps(Conv2D(8, 3, input_shape=(9, 9, 1)), BatchNormalization())[0] == "Conv2D"


def test_frozen_batchnorm_folds_in_fine_tuning(fuse_layers, rng):
    # A frozen normalisation (trainable=False) runs in inference mode during fit, as
    # in Keras: folded, and the convolution before it trains the same as unfused.
    x = rng.normal(size=(16, 9, 9, 3)).astype(np.float32)
    y = rng.integers(0, 3, size=16)
    weights = {}
    for fuse in (True, False):
        models.FUSE_LAYERS = fuse
        set_random_seed(4)
        model = _conv_bn_model(True)
        _freeze_batchnorms(model)
        model.compile(loss="sparse_categorical_crossentropy", optimizer="sgd")
        model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
        weights[fuse] = model.get_weights()
    for a, b in zip(weights[True], weights[False]):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
