"""Check that Keras 3 loads fastconv's .keras files of the layers beyond the first
fixtures (reshaping, normalisation, noise, augmentation, depthwise/separable/transposed
and 1-D convolutions), and predicts what fastconv predicted.

    python tools/check_keras_loads_layers.py --write DIR                       # fastconv
    KERAS_BACKEND=jax anchor-venv/bin/python tools/check_keras_loads_layers.py --check DIR

Measured 2026-12-03 (Keras 3.15.1 on JAX): max |diff| 6e-8. RandomCrop is left out:
in inference fastconv crops the centre (its declared output shape), Keras 3.15 returns
its input unchanged.
"""

import os
import sys

import numpy as np


def write(d):
    import fastconv.keras as keras
    from fastconv.keras import layers

    keras.utils.set_random_seed(0)
    inp = keras.Input((12, 12, 3))
    x = layers.Cropping2D(1)(layers.ZeroPadding2D(1)(inp))
    x = layers.UpSampling2D(2, interpolation="bilinear")(x)
    x = layers.CenterCrop(10, 10)(layers.Resizing(12, 12)(x))
    x = layers.DepthwiseConv2D(3, padding="same")(x)
    x = layers.SeparableConv2D(4, 3)(x)
    x = layers.Conv2DTranspose(3, 3, strides=2)(x)
    x = layers.GroupNormalization(groups=3)(layers.LayerNormalization()(x))
    for layer in (layers.GaussianDropout(0.1), layers.ActivityRegularization(l1=0.01),
                  layers.RandomFlip(), layers.RandomZoom(0.1), layers.RandomContrast(0.1),
                  layers.RandomBrightness(0.1), layers.RandomRotation(0.1),
                  layers.RandomTranslation(0.1, 0.1), layers.SpatialDropout2D(0.1),
                  layers.GaussianNoise(0.1)):
        x = layer(x)
    x = layers.Reshape((-1, 3))(layers.Permute((2, 1, 3))(x))
    x = layers.AveragePooling1D()(layers.MaxPooling1D()(layers.Conv1D(4, 3)(x)))
    x = layers.concatenate([layers.GlobalAveragePooling1D()(x), layers.GlobalMaxPooling1D()(x)])
    model = keras.Model(inp, layers.Dense(2, activation="softmax")(x))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    x = np.random.default_rng(0).random((2, 12, 12, 3)).astype("float32")
    model.save(os.path.join(d, "layers.keras"))
    np.save(os.path.join(d, "x.npy"), x)
    np.save(os.path.join(d, "pred.npy"), model.predict(x))


def check(d):
    import keras

    model = keras.models.load_model(os.path.join(d, "layers.keras"))
    pred = model.predict(np.load(os.path.join(d, "x.npy")), verbose=0)
    print("max |diff|", float(np.abs(pred - np.load(os.path.join(d, "pred.npy"))).max()))


if __name__ == "__main__":
    mode, d = sys.argv[1], sys.argv[2]
    os.makedirs(d, exist_ok=True)
    (write if mode == "--write" else check)(d)
