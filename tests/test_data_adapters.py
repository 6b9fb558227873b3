"""fit, evaluate and predict on data sources: PyDataset, generators, iterables
(fastconv.data_adapters), and Keras 1's nb_epoch."""

import warnings

import numpy as np
import pytest

from fastconv import distributed as dist
from fastconv import keras
from fastconv.keras import layers
from fastconv.utils import set_random_seed


def _model(seed=0):
    set_random_seed(seed)
    model = keras.Sequential([keras.Input((6, 6, 1)), layers.Conv2D(4, 3, activation="relu"),
                              layers.Flatten(), layers.Dense(3, activation="softmax")])
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


def _data(n=20):
    rng = np.random.default_rng(1)
    return rng.standard_normal((n, 6, 6, 1)).astype(np.float32), np.arange(n) % 3


class Batches(keras.utils.PyDataset):
    def __init__(self, x, y, batch_size, **kwargs):
        super().__init__(**kwargs)
        self.x, self.y, self.batch_size = x, y, batch_size
        self.epochs_ended = 0

    def __len__(self):
        return -(-len(self.x) // self.batch_size)

    def __getitem__(self, i):
        s = slice(i * self.batch_size, (i + 1) * self.batch_size)
        return self.x[s], self.y[s]

    def on_epoch_end(self):
        self.epochs_ended += 1


def _same_weights(a, b):
    for u, v in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(u, v)


def test_pydataset_generator_and_list_train_as_the_arrays_do():
    # The same batches in the same order give the bits of fit on the arrays.
    x, y = _data()
    ref = _model()
    h_ref = ref.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    ds = Batches(x, y, 8, workers=2, use_multiprocessing=False)
    m1 = _model()
    h1 = m1.fit(ds, epochs=2, shuffle=False, verbose=0)
    _same_weights(m1, ref)
    assert ds.epochs_ended == 2
    assert h1.history["loss"] == h_ref.history["loss"]

    def forever():
        while True:
            for i in range(3):
                yield x[i * 8:(i + 1) * 8], y[i * 8:(i + 1) * 8]

    m2 = _model()
    m2.fit(forever(), steps_per_epoch=3, epochs=2, verbose=0)
    _same_weights(m2, ref)
    m3 = _model()
    m3.fit([(x[i * 8:(i + 1) * 8], y[i * 8:(i + 1) * 8]) for i in range(3)], epochs=2,
           verbose=0)
    _same_weights(m3, ref)


def test_pydataset_batch_order_is_shuffled_with_the_global_seed():
    x, y = _data()
    runs = []
    for _ in range(2):
        m = _model()
        set_random_seed(5)
        m.fit(Batches(x, y, 4), epochs=2, verbose=0)  # shuffle=True by default
        runs.append(m)
    _same_weights(*runs)
    ordered = _model()
    ordered.fit(Batches(x, y, 4), epochs=2, shuffle=False, verbose=0)
    assert not np.array_equal(ordered.get_weights()[0], runs[0].get_weights()[0])


def test_a_generator_that_runs_dry_warns_and_stops():
    x, y = _data(16)
    gen = ((x[i:i + 4], y[i:i + 4]) for i in range(0, 16, 4))   # 4 batches in all
    m = _model()
    with pytest.warns(UserWarning, match="ran out of data"):
        h = m.fit(gen, steps_per_epoch=3, epochs=5, verbose=0)
    # epoch 1 takes 3 batches, epoch 2 gets one and the warning; training stops there
    assert h.epoch == [0, 1]
    # a generator without steps_per_epoch is one pass, and then dry
    gen = ((x[i:i + 4], y[i:i + 4]) for i in range(0, 16, 4))
    with pytest.warns(UserWarning, match="ran out of data"):
        h = _model().fit(gen, epochs=3, verbose=0)
    assert h.epoch == [0]


def test_validation_sources_steps_and_freq():
    x, y = _data()
    val = Batches(x[:12], y[:12], 4)
    m = _model()
    h = m.fit(Batches(x, y, 5), validation_data=val, validation_freq=2, epochs=4, verbose=0)
    assert "val_loss" in h.history
    assert len(h.history["val_loss"]) == 2          # epochs 2 and 4
    want = m.evaluate(x[:12], y[:12], verbose=0, return_dict=True)
    assert h.history["val_loss"][-1] == pytest.approx(want["loss"], rel=1e-6)

    def val_gen():
        while True:
            yield x[:4], y[:4]

    m2 = _model()
    h2 = m2.fit(x, y, validation_data=val_gen(), validation_steps=2, epochs=1, verbose=0)
    want = m2.evaluate(x[:4], y[:4], verbose=0, return_dict=True)
    assert h2.history["val_loss"][0] == pytest.approx(want["loss"], rel=1e-6)
    h3 = _model().fit(x, y, validation_data=(x[:4], y[:4]), validation_freq=[1, 3], epochs=3,
                      verbose=0)
    assert len(h3.history["val_loss"]) == 2


def test_evaluate_and_predict_on_sources():
    x, y = _data()
    m = _model()
    got = m.evaluate(Batches(x, y, 6), verbose=0, return_dict=True)
    want = m.evaluate(x, y, batch_size=6, verbose=0, return_dict=True)
    assert got["loss"] == pytest.approx(want["loss"], rel=1e-6)
    assert got["accuracy"] == want["accuracy"]
    np.testing.assert_array_equal(m.predict(Batches(x, y, 6)), m.predict(x, batch_size=6))
    # (the same batches: the same bits; outputs may differ in the last bit between
    # batchings, as a kernel's edge blocks sum in another order)
    np.testing.assert_array_equal(m.predict(iter([x[:5], x[5:]])),
                                  np.concatenate([m.predict(x[:5]), m.predict(x[5:])]))
    np.testing.assert_array_equal(m.predict(iter([x[:5], x[5:]]), steps=1), m.predict(x[:5]))


def test_bad_batches_name_the_batch():
    x, y = _data()
    m = _model()
    bad = [(x[:4], y[:4]), (x[:4, :5], y[:4])]
    with pytest.raises(ValueError, match="Batch 1 of `x`"):
        m.fit(bad, epochs=1, verbose=0)
    with pytest.raises(ValueError, match="Batch 0 of the data has no targets"):
        m.fit(iter([x[:4]]), epochs=1, verbose=0)
    with pytest.raises(ValueError, match="a tuple of 4 items"):
        m.fit([(x, y, None, None)], epochs=1, verbose=0)
    with pytest.raises(ValueError, match="`y` must be None"):
        m.fit(Batches(x, y, 4), y, verbose=0)
    with pytest.raises(ValueError, match="validation_split"):
        m.fit(Batches(x, y, 4), validation_split=0.2, verbose=0)
    with pytest.raises(ValueError, match="steps_per_epoch"):
        m.fit(Batches(x, y, 4), steps_per_epoch=0, verbose=0)
    with pytest.raises(TypeError, match="`x` must be arrays, a PyDataset"):
        m.fit(object(), verbose=0)
    with pytest.raises(ValueError, match="validation_freq"):
        m.fit(x, y, validation_freq=0, verbose=0)
    with pytest.raises(ValueError, match="workers"):
        Batches(x, y, 4, workers=0)


def test_nb_epoch_is_epochs_with_a_deprecation_warning():
    x, y = _data()
    with pytest.warns(DeprecationWarning, match="`nb_epoch`.*use `epochs`"):
        h = _model().fit(x, y, batch_size=32, nb_epoch=3, verbose=0)
    assert h.epoch == [0, 1, 2]
    with pytest.raises(TypeError, match="both"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            _model().fit(x, y, epochs=2, nb_epoch=3, verbose=0)


def test_sharded_dataset_trains_on_its_epoch_permutations():
    # One process (P = 1): a ShardedDataset with shuffle draws the permutation of each
    # epoch from its seed (fit calls set_epoch), and equals fit on the arrays in that
    # order, epoch by epoch.
    x, y = _data()
    ds = dist.shard_dataset(x, y, batch_size=8, shuffle=True, seed=3)
    m = _model()
    m.fit(ds, epochs=2, shuffle=False, verbose=0)
    ref = _model()
    for epoch in range(2):
        order = dist.DistributedSampler(len(x), 1, 0, shuffle=True, seed=3)
        order.set_epoch(epoch)
        idx = order.indices()
        ref.fit(x[idx], y[idx], batch_size=8, epochs=1, shuffle=False, verbose=0)
    _same_weights(m, ref)
