"""fit, evaluate and predict on data given as batches (generators, iterables, PyDataset),
their Keras arguments (steps_per_epoch, validation_freq, sample_weight, class_weight,
nb_epoch), and set_random_seed over a whole fit."""

import warnings

import numpy as np
import pytest

from fastconv import layers
from fastconv.datasets import fashion_mnist
from fastconv.keras.utils import PyDataset, Sequence, set_random_seed
from fastconv.layers import Conv2D, Dense, Dropout, Flatten, MaxPooling2D
from fastconv.models import Sequential
from fastconv.optimizers import SGD
from fastconv.utils import to_categorical

from .test_models import lecture_model, quadrants


def dense_model(seed=0, optimizer="sgd"):
    set_random_seed(seed)
    model = Sequential([layers.Input((6,)), Dense(5, activation="relu"),
                        Dense(3, activation="softmax")])
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


def data(n=40, seed=1):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 6)).astype(np.float32), rng.integers(0, 3, n)


class Batches(PyDataset):
    """Batches of 8 of (x, y), recording the epoch hooks."""

    def __init__(self, x, y, **kwargs):
        super().__init__(**kwargs)
        self.x, self.y, self.events = x, y, []

    def __len__(self):
        return -(-len(self.x) // 8)

    def __getitem__(self, i):
        self.events.append(i)
        return self.x[8 * i:8 * i + 8], self.y[8 * i:8 * i + 8]

    def on_epoch_end(self):
        self.events.append("end")


class Reiterable:
    """Like the dataset of image_dataset_from_directory: iterable again each epoch, with
    a length."""

    def __init__(self, batches):
        self.batches = batches

    def __iter__(self):
        return iter(self.batches)

    def __len__(self):
        return len(self.batches)


def test_generator_pydataset_and_iterable_train_as_the_same_arrays():
    x, y = data()
    ref = dense_model()
    ref.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    batches = [(x[i:i + 8], y[i:i + 8]) for i in range(0, 40, 8)]
    for source in (lambda: Batches(x, y, workers=2, use_multiprocessing=False,
                                   max_queue_size=4),
                   lambda: Reiterable(batches)):
        model = dense_model()
        model.fit(source(), epochs=2, shuffle=False, verbose=0)
        for a, b in zip(ref.get_weights(), model.get_weights()):
            np.testing.assert_array_equal(a, b)
    model = dense_model()

    def gen():
        while True:
            yield from batches
    model.fit(gen(), steps_per_epoch=5, epochs=2, verbose=0)
    for a, b in zip(ref.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)
    # evaluate and predict agree with the arrays' answers
    np.testing.assert_allclose(model.evaluate(iter(batches), verbose=0),
                               ref.evaluate(x, y, verbose=0), rtol=1e-6)
    np.testing.assert_array_equal(model.predict((b[0] for b in batches)), ref.predict(x))
    np.testing.assert_array_equal(model.predict(Batches(x, y)), ref.predict(x))
    assert model.predict(Batches(x, y), steps=2).shape == (16, 3)


def test_pydataset_hooks_and_shuffled_batch_order():
    x, y = data()
    ds = Batches(x, y)
    model = dense_model()
    model.fit(ds, epochs=2, shuffle=False, verbose=0)
    assert ds.events == [0, 1, 2, 3, 4, "end"] * 2
    ds.events = []
    set_random_seed(3)
    model.fit(ds, epochs=1, shuffle=True, verbose=0)
    order = ds.events[:-1]
    assert sorted(order) == [0, 1, 2, 3, 4] and order != [0, 1, 2, 3, 4]
    ds.events = []
    set_random_seed(3)
    model.fit(ds, epochs=1, shuffle=True, verbose=0)
    assert ds.events[:-1] == order


def test_steps_per_epoch_continues_the_generator_and_warns_when_it_runs_dry():
    x, y = data()
    seen = []

    def gen():
        for i in range(5):
            seen.append(i)
            yield x[8 * i:8 * i + 8], y[8 * i:8 * i + 8]
    model = dense_model()
    with pytest.warns(UserWarning, match="ran out of data"):
        history = model.fit(gen(), steps_per_epoch=2, epochs=4, verbose=0)
    # epochs 1-2 take batches 0-3, epoch 3 gets batch 4 then runs dry, epoch 4 gets none
    assert seen == [0, 1, 2, 3, 4]
    assert history.epoch == [0, 1, 2]
    # a plain generator with no steps_per_epoch: one pass, then Keras's warning
    with pytest.warns(UserWarning, match="ran out of data"):
        history = model.fit(gen(), epochs=2, verbose=0)
    assert history.epoch == [0]


def test_validation_data_as_batches_and_validation_freq():
    x, y = data()
    model = dense_model()
    val = Batches(x[:16], y[:16])
    history = model.fit(x, y, epochs=4, validation_data=val, validation_freq=2, verbose=0)
    assert len(history.history["loss"]) == 4
    assert len(history.history["val_loss"]) == 2  # after epochs 2 and 4
    history = model.fit(x, y, epochs=3, validation_data=(x[:8], y[:8]),
                        validation_freq=[1, 3], verbose=0)
    assert len(history.history["val_accuracy"]) == 2
    history = model.fit(x, y, epochs=1, validation_data=val, validation_steps=1, verbose=0)
    assert np.isclose(history.history["val_loss"][0],
                      model.evaluate(x[:8], y[:8], verbose=0)[0], rtol=1e-6)


def test_sample_weight_is_the_weighted_mean_of_the_sample_losses():
    # One SGD step on a batch of 4 with weights (2, 0, 1, 1) is the unweighted step on
    # the batch (x0, x0, x2, x3): both minimise (2 l0 + l2 + l3) / 4.
    x, y = data(4)
    weighted = dense_model(optimizer=SGD(0.5))
    weighted.fit(x, y, batch_size=4, sample_weight=np.array([2, 0, 1, 1]), verbose=0)
    dup = dense_model(optimizer=SGD(0.5))
    dup.fit(x[[0, 0, 2, 3]], y[[0, 0, 2, 3]], batch_size=4, shuffle=False, verbose=0)
    for a, b in zip(weighted.get_weights(), dup.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    # class_weight is sample_weight by class
    by_class = dense_model(optimizer=SGD(0.5))
    by_class.fit(x, y, batch_size=4, class_weight={0: 3.0, 1: 0.5, 2: 2.0}, verbose=0)
    by_sample = dense_model(optimizer=SGD(0.5))
    by_sample.fit(x, y, batch_size=4, sample_weight=np.array([3.0, 0.5, 2.0])[y], verbose=0)
    for a, b in zip(by_class.get_weights(), by_sample.get_weights()):
        np.testing.assert_array_equal(a, b)
    # evaluate's weighted loss: hand-computed from the per-sample losses
    probs = dup.predict(x)
    per = -np.log(probs[np.arange(4), y])
    w = np.array([1.0, 2.0, 0.0, 1.0])
    assert np.isclose(dup.evaluate(x, y, sample_weight=w, verbose=0)[0], (per * w).sum() / 4,
                      rtol=1e-5)


def test_bad_batches_name_their_index():
    x, y = data()
    model = dense_model()
    bad = Reiterable([(x[:8], y[:8]), (x[:8, :5], y[:8])])
    with pytest.raises(ValueError, match=r"Batch 1 of `x`: `x` must have shape"):
        model.fit(bad, verbose=0)
    with pytest.raises(TypeError, match=r"Batch 2 of `x`: `x` must be an array of numb"):
        model.fit(Reiterable([(x[:8], y[:8])] * 2 + [(np.array([["a"] * 6]), y[:1])]),
                  verbose=0)
    with pytest.raises(ValueError, match=r"Batch 0 of the data has no targets"):
        model.fit(iter([x[:8]]), verbose=0)
    with pytest.raises(ValueError, match="`y` should not be passed"):
        model.fit(Batches(x, y), y, verbose=0)
    with pytest.raises(ValueError, match="class_weight` is not supported for Python gen"):
        model.fit((b for b in [(x, y)]), class_weight={0: 1.0}, verbose=0)
    with pytest.raises(ValueError, match="validation_split"):
        model.fit(Batches(x, y), validation_split=0.5, verbose=0)
    for kwargs, err in (({"steps_per_epoch": 0}, ValueError),
                        ({"validation_freq": 0}, ValueError),
                        ({"class_weight": [1, 2]}, TypeError),
                        ({"sample_weight": np.ones(3)}, ValueError),
                        ({"sample_weight": np.ones(40), "class_weight": {0: 1.0}},
                         ValueError)):
        with pytest.raises(err):
            model.fit(x, y, verbose=0, **kwargs)
    with pytest.raises(TypeError, match="workers"):
        Batches(x, y, workers="2")
    assert Sequence is PyDataset


def test_nb_epoch_is_epochs_with_a_deprecation_warning():
    x, y = data()
    model = dense_model()
    with pytest.warns(DeprecationWarning, match="`epochs`"):
        history = model.fit(x, y, nb_epoch=3, verbose=0)
    assert history.epoch == [0, 1, 2]
    with pytest.raises(TypeError, match="nb_epoch"):
        model.fit(x, y, epochs=2, nb_epoch=3, verbose=0)


def test_the_lecture_mnist_fit_call_runs_as_printed():
    # The lecture's program on the embedded sample, its fit call verbatim (Keras 1's
    # nb_epoch), only the data shrunk to keep the test short.
    (X_train, Y_train), (X_test, Y_test) = fashion_mnist.load_sample()
    X_train = X_train[:256].reshape(-1, 28, 28, 1).astype("float32") / 255
    Y_train = to_categorical(Y_train[:256], 10)
    model = Sequential()
    model.add(Conv2D(32, kernel_size=3, activation='relu', input_shape=(28, 28, 1)))
    model.add(MaxPooling2D(pool_size=(2, 2)))
    model.add(Dropout(0.25))
    model.add(Flatten())
    model.add(Dense(128, activation='relu'))
    model.add(Dropout(0.5))
    model.add(Dense(10, activation='softmax'))
    model.compile(loss='categorical_crossentropy',
                  optimizer='adam',
                  metrics=['accuracy'])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(X_train, Y_train,
                  batch_size=32, nb_epoch=2, verbose=1)
    assert [w.category for w in caught] == [DeprecationWarning]
    assert len(model.history.history["loss"]) == 2
    score = model.evaluate(X_train, Y_train, verbose=0)
    assert score[1] > 0.3  # far above chance (0.1) after two epochs


def augmented_model():
    model = Sequential([layers.Input((12, 12, 1)), layers.RandomFlip("horizontal"),
                        layers.RandomTranslation(0.1, 0.1)] + lecture_model().layers)
    model.compile(loss='categorical_crossentropy', optimizer='adam', metrics=['accuracy'])
    return model


def test_set_random_seed_makes_a_whole_fit_reproducible():
    # Weights, shuffling, Dropout and augmentation all draw from the seeded generator:
    # the same seed gives the same weights, another seed other weights.
    x, y = quadrants(64, 5)
    y = to_categorical(y, 4)
    results = []
    for seed in (7, 7, 8):
        set_random_seed(seed)
        model = augmented_model()
        model.fit(x, y, batch_size=16, epochs=2, verbose=0)
        results.append(model.get_weights())
    for a, b in zip(results[0], results[1]):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, c) for a, c in zip(results[0], results[2]))
