"""Memory: a training step or a prediction leaves no reference cycles behind.

NumPy arrays are not tracked by Python's cyclic garbage collector, so an array held
only by a reference cycle stays allocated until a collection happens to run, which a
loop of large-array steps (few Python objects) rarely triggers: memory then grows by
an activation per step. These tests count the objects a collection frees after each
step, with collection switched off meanwhile; none may be garbage.
"""

import gc

import numpy as np

import fastconv.keras as keras
from fastconv.keras import layers


def _residual_model():
    inputs = keras.Input((8, 8, 3))
    x = layers.Conv2D(4, 3, padding="same")(inputs)
    x = layers.BatchNormalization()(x)
    r = layers.ReLU()(x)
    x = layers.add([layers.Conv2D(4, 3, padding="same")(r), r])   # a merge: a packed call
    x = layers.Concatenate()([x, r])
    outputs = layers.Dense(3, activation="softmax")(layers.GlobalAveragePooling2D()(x))
    model = keras.Model(inputs, outputs)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return model


def test_steps_leave_no_reference_cycles(rng):
    model = _residual_model()
    x = rng.normal(size=(6, 8, 8, 3)).astype(np.float32)
    y = rng.integers(0, 3, size=6)
    model.train_on_batch(x, y)  # first calls build plans and caches
    model.predict(x, verbose=0)
    gc.collect()
    enabled = gc.isenabled()
    gc.disable()
    try:
        for step in (lambda: model.predict(x, verbose=0),
                     lambda: model.train_on_batch(x, y),
                     lambda: model.evaluate(x, y, verbose=0)):
            step()
            assert gc.collect() == 0
    finally:
        if enabled:
            gc.enable()
