"""Check that Keras 3 loads the .keras files fastconv writes, and predicts what fastconv did.

    python tools/check_keras_loads.py --write DIR        # fastconv: models, inputs, outputs
    KERAS_BACKEND=jax /work/venv-keras/bin/python tools/check_keras_loads.py --check DIR

``--write`` (run with fastconv importable) saves a Sequential and a functional CNN with
``model.save("*.keras")`` and ``save_weights("*.weights.h5")``, and ``io.npz`` with an
input and fastconv's predictions. ``--check`` (run with Keras) loads each with
``keras.models.load_model`` and ``load_weights`` into a model Keras rebuilt from the same
file, and prints the largest difference from fastconv's predictions; it exits non-zero
when one exceeds 1e-5.

It also checks the optimizer's state: for each of several optimizers, fastconv trains
a small CNN two full-batch steps and saves it (``train_<optimizer>.keras``), then takes
a third step; Keras loads the file and takes the third step too, and the weights must
agree to 1e-5 (relative to the largest weight).
"""

TRAINED = {"adam": ("Adam", {"learning_rate": 0.01, "amsgrad": True}),
           "nadam": ("Nadam", {"learning_rate": 0.01}),
           "rmsprop": ("RMSprop", {"learning_rate": 0.01, "momentum": 0.5, "centered": True}),
           "sgd": ("SGD", {"learning_rate": 0.05, "momentum": 0.9, "nesterov": True}),
           "adamw_ema": ("AdamW", {"learning_rate": 0.01, "use_ema": True}),
           "adadelta": ("Adadelta", {"learning_rate": 1.0})}

import os
import sys

import numpy as np


def write(directory):
    # This checkout's fastconv, not one installed elsewhere.
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    import fastconv.keras as keras
    from fastconv.keras import layers

    keras.utils.set_random_seed(1)
    seq = keras.Sequential([
        keras.Input((9, 9, 2)),
        layers.Conv2D(3, 3, padding="same", activation="relu"),
        layers.BatchNormalization(),
        layers.MaxPooling2D(2),
        layers.Flatten(),
        layers.Dropout(0.5),
        layers.Dense(4, activation="softmax"),
    ])
    seq.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    inp = keras.Input((8, 8, 3))
    a = layers.Conv2D(4, 3, padding="same", name="left")(inp)
    a = layers.BatchNormalization()(a)
    a = layers.ReLU()(a)
    b = layers.Conv2D(4, 1, name="right")(inp)
    s = layers.Add()([a, b])
    s = layers.AveragePooling2D(2)(s)
    g = layers.GlobalMaxPooling2D()(s)
    f = layers.Flatten()(s)
    out = layers.Dense(2)(layers.Concatenate()([f, g]))
    fun = keras.Model(inp, out)
    fun.compile(optimizer="rmsprop",
                loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    rng = np.random.default_rng(5)
    arrays = {}
    for name, model, shape in (("sequential", seq, (3, 9, 9, 2)),
                               ("functional", fun, (3, 8, 8, 3))):
        # Make the batch-norm statistics and biases something other than their defaults.
        model.set_weights([w + rng.normal(scale=0.1, size=w.shape).astype(w.dtype) ** 2
                           for w in model.get_weights()])
        x = rng.normal(size=shape).astype("float32")
        arrays[f"{name}_x"] = x
        arrays[f"{name}_y"] = model.predict(x, verbose=0)
        model.save(os.path.join(directory, f"{name}.keras"))
        model.save_weights(os.path.join(directory, f"{name}.weights.h5"))
    x = rng.normal(size=(8, 6, 6, 2)).astype("float32")
    y = rng.normal(size=(8, 3)).astype("float32")
    arrays["train_x"], arrays["train_y"] = x, y
    for name, (cls, config) in TRAINED.items():
        model = keras.Sequential([keras.Input((6, 6, 2)),
                                  layers.Conv2D(4, 3, activation="relu"),
                                  layers.BatchNormalization(), layers.Flatten(),
                                  layers.Dense(3)])
        model.compile(optimizer=getattr(keras.optimizers, cls)(**config), loss="mse")
        model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
        model.save(os.path.join(directory, f"train_{name}.keras"))
        model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
        for i, w in enumerate(model.get_weights()):
            arrays[f"train_{name}_{i}"] = w
    np.savez(os.path.join(directory, "io.npz"), **arrays)


def check(directory):
    import keras

    arrays = np.load(os.path.join(directory, "io.npz"))
    worst = 0.0
    for name in ("sequential", "functional"):
        model = keras.models.load_model(os.path.join(directory, f"{name}.keras"))
        got = np.asarray(model.predict(arrays[f"{name}_x"], verbose=0))
        diff = float(np.abs(got - arrays[f"{name}_y"]).max())
        again = keras.models.clone_model(model)
        again.load_weights(os.path.join(directory, f"{name}.weights.h5"))
        diff_w = float(np.abs(np.asarray(again.predict(arrays[f"{name}_x"], verbose=0))
                              - arrays[f"{name}_y"]).max())
        print(f"{name}: load_model max |diff| {diff:.3g}, load_weights max |diff| "
              f"{diff_w:.3g}, compiled: {model.optimizer is not None} "
              f"({type(model.optimizer).__name__}, {type(model.loss).__name__})")
        worst = max(worst, diff, diff_w)
    for name in TRAINED:
        model = keras.models.load_model(os.path.join(directory, f"train_{name}.keras"))
        steps = int(model.optimizer.iterations.numpy())
        model.fit(arrays["train_x"], arrays["train_y"], batch_size=8, epochs=1,
                  shuffle=False, verbose=0)
        diff = max(float(np.abs(np.asarray(w) - arrays[f"train_{name}_{i}"]).max()
                         / max(1e-3, float(np.abs(arrays[f"train_{name}_{i}"]).max())))
                   for i, w in enumerate(model.get_weights()))
        print(f"train_{name}: Keras resumed at step {steps} ({type(model.optimizer).__name__});"
              f" third step's weights max relative diff {diff:.3g}")
        worst = max(worst, diff if steps == 2 else 1.0)
    return 0 if worst <= 1e-5 else 1


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("--write", "--check"):
        sys.exit(__doc__)
    sys.exit(write(sys.argv[2]) if sys.argv[1] == "--write" else check(sys.argv[2]))
