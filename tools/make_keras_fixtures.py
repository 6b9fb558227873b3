"""Make the Keras 3 fixture files of tests/test_keras_files.py (run with Keras, not at test time).

    KERAS_BACKEND=jax /work/venv-keras/bin/python tools/make_keras_fixtures.py

Writes into tests/data/:

- ``keras3_sequential.keras`` and ``keras3_functional.keras``: small CNNs saved by
  ``model.save`` after one epoch of ``fit`` (so the Adam state and the
  BatchNormalization statistics are not their initial values);
- ``keras3_sequential.weights.h5``: the first model's ``save_weights``;
- ``keras3_models_io.npz``: a fixed input per model and what Keras predicted on it
  (``seq_x``, ``seq_y``, ``fun_x``, ``fun_y``).
"""

import os

import numpy as np

os.environ.setdefault("KERAS_BACKEND", "jax")
import keras  # noqa: E402
from keras import layers  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data")


def sequential():
    model = keras.Sequential([
        keras.Input((12, 12, 3)),
        layers.Conv2D(4, 3, activation="relu"),
        layers.BatchNormalization(),
        layers.MaxPooling2D(2),
        layers.Conv2D(6, 3, padding="same", strides=1, use_bias=False),
        layers.Activation("relu"),
        layers.AveragePooling2D(2),
        layers.Flatten(),
        layers.Dropout(0.3),
        layers.Dense(5, activation="softmax"),
    ], name="seq_cnn")
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    return model


def functional():
    inp = keras.Input((10, 10, 2), name="image")
    x = layers.Conv2D(4, 3, padding="same", name="conv_a")(inp)
    x = layers.BatchNormalization(name="bn")(x)
    x = layers.ReLU()(x)
    y = layers.Conv2D(4, 1, name="conv_b")(inp)
    s = layers.Add()([x, y])
    s = layers.MaxPooling2D(2)(s)
    g = layers.GlobalAveragePooling2D()(s)
    f = layers.Flatten()(s)
    f = layers.Dropout(0.2)(f)
    c = layers.Concatenate()([f, g])
    out = layers.Dense(3, name="logits")(c)
    model = keras.Model(inp, out, name="fun_cnn")
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def main():
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    seq = sequential()
    x = rng.normal(size=(16, 12, 12, 3)).astype("float32")
    y = keras.utils.to_categorical(rng.integers(0, 5, size=16), 5)
    seq.fit(x, y, batch_size=8, epochs=1, verbose=0)
    seq.save(os.path.join(OUT, "keras3_sequential.keras"))
    seq.save_weights(os.path.join(OUT, "keras3_sequential.weights.h5"))
    seq_x = rng.normal(size=(4, 12, 12, 3)).astype("float32")

    fun = functional()
    xf = rng.normal(size=(16, 10, 10, 2)).astype("float32")
    yf = rng.integers(0, 3, size=16)
    fun.fit(xf, yf, batch_size=8, epochs=1, verbose=0)
    fun.save(os.path.join(OUT, "keras3_functional.keras"))
    fun_x = rng.normal(size=(4, 10, 10, 2)).astype("float32")
    np.savez_compressed(os.path.join(OUT, "keras3_models_io.npz"),
                        seq_x=seq_x, seq_y=np.asarray(seq.predict(seq_x, verbose=0)),
                        fun_x=fun_x, fun_y=np.asarray(fun.predict(fun_x, verbose=0)))


if __name__ == "__main__":
    main()
