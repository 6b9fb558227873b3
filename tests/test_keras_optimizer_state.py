"""The optimizer's state in Keras 3's files: read from files Keras saved mid-training
(tests/data/keras3_optimizer_state, made by tools/keras_optimizer_state_fixture.py),
and written so that a saved and reloaded fastconv model trains on exactly."""

import json
import os
import warnings

import numpy as np
import pytest

pytest.importorskip("h5py")
import h5py  # noqa: E402

import fastconv  # noqa: E402
import fastconv.keras  # noqa: E402,F401
from fastconv import layers, optimizers  # noqa: E402

DATA = os.path.join(os.path.dirname(__file__), "data", "keras3_optimizer_state")
CASES = json.load(open(os.path.join(DATA, "cases.json")))["cases"]
EXPECTED = np.load(os.path.join(DATA, "expected.npz"))


@pytest.mark.parametrize("case", CASES)
def test_a_keras_file_resumes_training_with_kerass_optimizer_state(case):
    # Keras trained two full-batch steps, saved, loaded its own file and took a third
    # step. fastconv, loading the same file, must take the same third step: only
    # possible with every optimizer variable read into the right slot (moments,
    # accumulators, AMSGrad's maxima, EMA averages, Nadam's momentum product, the
    # iteration count that the bias corrections and schedules use).
    model = fastconv.keras.models.load_model(os.path.join(DATA, f"{case}.keras"))
    x, y = EXPECTED["x"], EXPECTED["y"]
    assert model.optimizer.iterations == 2
    model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    got = model.get_weights()
    want = [EXPECTED[f"{case}/{i}"] for i in range(len(got))]
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=2e-5, atol=2e-6)
    # Without the state (a fresh optimizer at step 0) the third step differs, so the
    # comparison can tell; except for Lion, whose step is a sign that the state did
    # not flip here: for it, the state read must at least not be the fresh zeros.
    fresh = fastconv.keras.models.load_model(os.path.join(DATA, f"{case}.keras"))
    slots = fresh.optimizer.keras_variables(
        [a for _, _, a in fresh._train_items()])[2:]
    assert all(np.any(s) for s in slots)
    fresh.compile(optimizer=optimizers.deserialize(optimizers.serialize(fresh.optimizer)),
                  loss="mse")
    assert fresh.optimizer.iterations == 0
    fresh.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    differs = any(not np.allclose(g, w, rtol=2e-5, atol=2e-6)
                  for g, w in zip(fresh.get_weights(), want))
    assert differs or case == "lion"


def _conv_model(optimizer):
    model = fastconv.models.Sequential([
        layers.Input((6, 6, 2)), layers.Conv2D(4, 3, activation="relu"),
        layers.BatchNormalization(), layers.Flatten(), layers.Dense(3)])
    model.compile(optimizer=optimizer, loss="mse")
    return model


def _data():
    rng = np.random.default_rng(5)
    return (rng.standard_normal((8, 6, 6, 2)).astype(np.float32),
            rng.standard_normal((8, 3)).astype(np.float32))


@pytest.mark.parametrize("make", [
    lambda: optimizers.Adam(0.01, amsgrad=True, use_ema=True),
    lambda: optimizers.Nadam(0.01),
    lambda: optimizers.RMSprop(0.01, momentum=0.5, centered=True),
    lambda: optimizers.SGD(0.05, momentum=0.9),
    lambda: optimizers.Adadelta(1.0),
])
@pytest.mark.parametrize("suffix", [".keras", ".weights.h5"])
def test_saved_and_reloaded_fastconv_model_trains_on_with_the_same_bits(make, suffix,
                                                                        tmp_path):
    x, y = _data()
    fastconv.utils.set_random_seed(3)
    model = _conv_model(make())
    model.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0)
    path = str(tmp_path / f"m{suffix}")
    if suffix == ".keras":
        model.save(path)
        again = fastconv.keras.models.load_model(path)
    else:
        model.save_weights(path)
        fastconv.utils.set_random_seed(4)
        again = _conv_model(make())
        again.load_weights(path)
    assert again.optimizer.iterations == model.optimizer.iterations == 4
    for m in (model, again):
        m.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0)
    for a, b in zip(model.get_weights(), again.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_the_optimizer_variables_are_written_in_kerass_order(tmp_path):
    # Keras 3's order, written out: iteration, learning_rate, then Adam's momentum
    # and velocity interleaved per trainable weight (Dense(4 -> 3): kernel, bias),
    # then AMSGrad's velocity_hat per weight. With use_ema the averages come right
    # after the learning rate.
    model = fastconv.models.Sequential([layers.Input((4,)), layers.Dense(3)])
    model.compile(optimizer=optimizers.Adam(0.01, amsgrad=True), loss="mse")
    x = np.ones((2, 4), np.float32)
    model.fit(x, np.ones((2, 3), np.float32), epochs=1, verbose=0)
    model.save_weights(str(tmp_path / "a.weights.h5"))
    with h5py.File(str(tmp_path / "a.weights.h5")) as h5:
        group = h5["optimizer/vars"]
        shapes = [group[str(i)].shape for i in range(len(group))]
        assert shapes == [(), (), (4, 3), (4, 3), (3,), (3,), (4, 3), (3,)]
        assert int(group["0"][()]) == 1 and group["1"][()] == np.float32(0.01)
        m, v, _, v_hat = model.optimizer._state[0]
        np.testing.assert_array_equal(group["2"][()], m)
        np.testing.assert_array_equal(group["3"][()], v)
        np.testing.assert_array_equal(group["6"][()], v_hat)
    model.compile(optimizer=optimizers.SGD(0.1, momentum=0.5, use_ema=True), loss="mse")
    model.save_weights(str(tmp_path / "s.weights.h5"))
    with h5py.File(str(tmp_path / "s.weights.h5")) as h5:
        group = h5["optimizer/vars"]
        assert [group[str(i)].shape for i in range(len(group))] == [
            (), (), (4, 3), (3,), (4, 3), (3,)]


def test_optimizer_variables_that_do_not_fit_leave_a_fresh_optimizer(tmp_path):
    # As Keras: a warning naming the counts, and the model loads with its optimizer
    # at step 0.
    model = fastconv.models.Sequential([layers.Input((4,)), layers.Dense(3)])
    model.compile(optimizer=optimizers.Adam(0.01), loss="mse")
    model.fit(np.ones((2, 4), np.float32), np.ones((2, 3), np.float32), epochs=1, verbose=0)
    path = str(tmp_path / "a.weights.h5")
    model.save_weights(path)
    model.compile(optimizer=optimizers.SGD(0.1, momentum=0.9), loss="mse")
    with pytest.warns(UserWarning, match="Skipping variable loading for optimizer 'sgd', "
                                         "because it has 4 variables whereas the saved "
                                         "optimizer has 6 variables"):
        model.load_weights(path)
    assert model.optimizer.iterations == 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.compile(optimizer=optimizers.Adam(0.5), loss="mse")
        model.load_weights(path)
    assert model.optimizer.iterations == 1 and model.optimizer.learning_rate == \
        pytest.approx(0.01)
