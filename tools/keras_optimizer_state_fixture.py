"""Make tests/data/keras3_optimizer_state/: Keras 3 models saved mid-training, with
their optimizers' state, for tests/test_keras_optimizer_state.py.

Run with an interpreter that has Keras 3 and h5py, from the repository root:

    KERAS_BACKEND=jax python tools/keras_optimizer_state_fixture.py

For each optimizer, one small conv net (Conv2D with ReLU -> BatchNormalization ->
Flatten -> Dense; the ReLU before the normalisation gives the conv bias a gradient
that is not rounding noise) trains two full-batch steps on fixed data and is saved as
``<case>.keras`` (weights and optimizer variables); Keras loads that file and trains
one more step, and ``expected.npz`` keeps the weights after it (``<case>/<i>``), with the data (``x``,
``y``). A reader that restores the optimizer's state exactly takes the same third step.
"""

import json
import os

import keras
import numpy as np

OUT = os.path.join("tests", "data", "keras3_optimizer_state")

CASES = {
    "sgd_nesterov": ("SGD", {"learning_rate": 0.05, "momentum": 0.9, "nesterov": True}),
    "adam": ("Adam", {"learning_rate": 0.01}),
    "adam_amsgrad_ema": ("Adam", {"learning_rate": 0.01, "amsgrad": True, "use_ema": True}),
    "adamw": ("AdamW", {"learning_rate": 0.01}),
    "nadam": ("Nadam", {"learning_rate": 0.01}),
    "adamax": ("Adamax", {"learning_rate": 0.01}),
    "adagrad": ("Adagrad", {"learning_rate": 0.05}),
    "adadelta": ("Adadelta", {"learning_rate": 1.0}),
    "lion": ("Lion", {"learning_rate": 0.001}),
    "rmsprop_centered_momentum": ("RMSprop", {"learning_rate": 0.01, "centered": True,
                                              "momentum": 0.5}),
    "adam_schedule": ("Adam", {"learning_rate": {
        "class_name": "ExponentialDecay",
        "config": {"initial_learning_rate": 0.02, "decay_steps": 1, "decay_rate": 0.5}}}),
}


def model(seed):
    keras.utils.set_random_seed(seed)
    m = keras.Sequential([
        keras.Input((6, 6, 2)),
        keras.layers.Conv2D(4, 3, activation="relu"),
        keras.layers.BatchNormalization(),
        keras.layers.Flatten(),
        keras.layers.Dense(3),
    ])
    return m


def main():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, 6, 6, 2)).astype(np.float32)
    y = rng.standard_normal((8, 3)).astype(np.float32)
    expected = {"x": x, "y": y}
    for case, (cls, config) in CASES.items():
        config = dict(config)
        if isinstance(config["learning_rate"], dict):
            config["learning_rate"] = keras.optimizers.schedules.deserialize(
                config["learning_rate"])
        m = model(1)
        m.compile(optimizer=getattr(keras.optimizers, cls)(**config), loss="mse")
        m.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
        path = os.path.join(OUT, f"{case}.keras")
        m.save(path)
        m = keras.models.load_model(path)  # Keras's own restore, then the third step
        m.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
        for i, w in enumerate(m.get_weights()):
            expected[f"{case}/{i}"] = w
    np.savez_compressed(os.path.join(OUT, "expected.npz"), **expected)
    with open(os.path.join(OUT, "cases.json"), "w") as f:
        json.dump({"keras_version": keras.__version__, "backend": keras.backend.backend(),
                   "cases": sorted(CASES)}, f, indent=1)


if __name__ == "__main__":
    main()
