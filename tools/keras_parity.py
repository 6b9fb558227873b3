"""Check fastconv against Keras 3 on the same architectures, weights and data.

The models are written once, against a ``keras`` module passed in, so the same code
builds the Keras model and the fastconv one (``import fastconv.keras as keras``).
Run in two steps, Keras in a virtual environment of its own (never a dependency):

    anchor-venv/bin/python tools/keras_parity.py keras parity.npz      # Keras 3 side
    python tools/keras_parity.py fastconv parity.npz                   # compares

The test suite runs the comparison on ``tests/data/keras3_parity.npz``, written by the
first step (Keras 3.15.1 on JAX) for the smaller models:

    anchor-venv/bin/python tools/keras_parity.py keras tests/data/keras3_parity.npz \
        residual_inception two_inputs subclassed_resnet global_pooling decoder separable \
        sequence

and, for issue 16's layers, on ``tests/data/keras3_layers.npz``:

    anchor-venv/bin/python tools/keras_parity.py keras tests/data/keras3_layers.npz \
        upsampling_normalization activity_regularization resizing_crops

and on ``tests/data/keras3_parity_conv.npz`` for the convolution family and the 1-D
layers (issue 16):

    anchor-venv/bin/python tools/keras_parity.py keras tests/data/keras3_parity_conv.npz \
        mobilenet_blocks xception_blocks unet_up sequence_cnn

The first writes, per model, the initial weights (Keras's ``get_weights()`` order),
the input batch, Keras's predictions, and the weights after one SGD step on a batch
(``train_on_batch``). The second loads the same weights into fastconv's model with
``set_weights``, and compares its predictions and its weights after the same step.
"""

from __future__ import annotations

import os
import sys

import numpy as np


def residual_inception(keras):
    layers = keras.layers
    inputs = keras.Input(shape=(12, 12, 3))
    x = layers.Conv2D(8, 3, padding="same", activation="relu")(inputs)
    residual = x
    x = layers.Conv2D(8, 3, padding="same")(x)
    x = layers.BatchNormalization()(x)
    x = layers.Activation("relu")(x)
    x = layers.add([x, residual])
    a = layers.Conv2D(4, 1, activation="relu")(x)
    b = layers.Conv2D(4, 3, padding="same", activation="relu")(x)
    c = layers.MaxPooling2D(3, strides=1, padding="same")(x)
    x = layers.concatenate([a, b, c])
    x = layers.MaxPooling2D()(x)
    x = layers.Flatten()(x)
    x = layers.Dense(16, activation="relu")(x)
    outputs = layers.Dense(5, activation="softmax")(x)
    return keras.Model(inputs, outputs)


def two_inputs(keras):
    layers = keras.layers
    image = keras.Input(shape=(10, 10, 1))
    extra = keras.Input(shape=(4,))
    x = layers.Conv2D(6, 3, activation="relu")(image)
    x = layers.AveragePooling2D(2)(x)
    x = layers.Flatten()(x)
    y = layers.Dense(6, activation="tanh")(extra)
    shared = layers.Dense(6, activation="relu")
    z = layers.concatenate([shared(layers.Dense(6)(x)), shared(y)])
    z = layers.subtract([layers.Dense(3)(z), layers.Dense(3)(z)])
    outputs = layers.Activation("softmax")(z)
    return keras.Model([image, extra], outputs)


def sequential_lecture(keras):
    layers = keras.layers
    return keras.Sequential([
        keras.Input(shape=(28, 28, 1)),
        layers.Conv2D(32, kernel_size=3, activation="relu"),
        layers.MaxPooling2D(pool_size=(2, 2)),
        layers.Flatten(),
        layers.Dense(128, activation="relu"),
        layers.Dense(10, activation="softmax")])


def make_subclassed(keras):
    layers = keras.layers

    class ResidualUnit(keras.layers.Layer):
        def __init__(self, filters, strides=1, **kwargs):
            super().__init__(**kwargs)
            self.activation = keras.activations.get("relu")
            self.main_layers = [
                layers.Conv2D(filters, 3, strides=strides, padding="same", use_bias=False),
                layers.BatchNormalization(), self.activation,
                layers.Conv2D(filters, 3, padding="same", use_bias=False),
                layers.BatchNormalization()]
            self.skip_layers = []
            if strides > 1:
                self.skip_layers = [
                    layers.Conv2D(filters, 1, strides=strides, padding="same", use_bias=False),
                    layers.BatchNormalization()]

        def call(self, inputs):
            z = inputs
            for layer in self.main_layers:
                z = layer(z)
            skip = inputs
            for layer in self.skip_layers:
                skip = layer(skip)
            return self.activation(z + skip)

    def build(keras_):
        return keras_.Sequential([
            keras_.Input(shape=(8, 8, 3)),
            layers.Conv2D(8, 3, padding="same", use_bias=False),
            ResidualUnit(8), ResidualUnit(16, strides=2),
            layers.Flatten(), layers.Dense(4, activation="softmax")])

    return build(keras)


def global_pooling(keras):
    layers = keras.layers
    inputs = keras.Input(shape=(9, 9, 2))
    x = layers.Conv2D(6, 3, padding="same", activation="relu")(inputs)
    a = layers.GlobalAveragePooling2D()(x)
    b = layers.GlobalMaxPooling2D()(layers.Conv2D(6, 3, activation="relu")(x))
    outputs = layers.Dense(3, activation="softmax")(layers.concatenate([a, b]))
    return keras.Model(inputs, outputs)


def decoder(keras):
    """A U-Net-like decoder: transposed convolutions (both paddings, output_padding,
    stride 1 and 2, dilation), upsampling (nearest, bilinear), padding and cropping."""
    layers = keras.layers
    inputs = keras.Input(shape=(5, 6, 3))
    x = layers.Conv2DTranspose(4, 3, strides=2, padding="same", activation="relu")(inputs)
    y = layers.Conv2DTranspose(4, 3, strides=2, padding="valid", output_padding=1)(inputs)
    y = layers.Cropping2D(((1, 1), (1, 1)))(y)
    x = layers.concatenate([x, y])
    x = layers.Conv2DTranspose(3, (2, 3), strides=1, padding="same", dilation_rate=1)(x)
    x = layers.UpSampling2D((2, 1))(x)
    z = layers.UpSampling2D((4, 2), interpolation="bilinear")(inputs)
    z = layers.ZeroPadding2D(((0, 0), (1, 1)))(z)
    x = layers.Conv2D(4, 3, padding="same")(x)
    z = layers.Conv2D(4, 3, padding="same")(layers.Cropping2D(((0, 0), (1, 1)))(z))
    x = layers.add([x, z])
    x = layers.Conv2DTranspose(2, 3, strides=(1, 2), padding="valid", use_bias=False)(x)
    x = layers.GlobalAveragePooling2D()(x)
    outputs = layers.Dense(3, activation="softmax")(x)
    return keras.Model(inputs, outputs)


def upsampling_normalization(keras):
    """Issue 16's layers with numbers of their own: bilinear and nearest UpSampling2D,
    the normalizations with their options, pooling 'same' with pools of 3 at stride 2."""
    layers = keras.layers
    inputs = keras.Input(shape=(5, 6, 4))
    x = layers.Conv2D(8, 3, padding="same", use_bias=False)(inputs)
    x = layers.UpSampling2D(2, interpolation="bilinear")(x)
    x = layers.LayerNormalization()(x)
    x = layers.GroupNormalization(groups=4, gamma_initializer="random_normal",
                                  beta_initializer="random_normal")(x)
    x = layers.BatchNormalization(center=False, momentum=0.9)(x)
    x = layers.MaxPooling2D(3, strides=2, padding="same")(x)
    x = layers.AveragePooling2D(3, strides=2, padding="same")(x)
    x = layers.UpSampling2D((1, 2))(x)
    x = layers.ZeroPadding2D(((1, 0), (2, 1)))(x)
    x = layers.Cropping2D((0, 1))(x)
    x = layers.BatchNormalization(axis=1, scale=False, epsilon=1e-2)(x)
    x = layers.LayerNormalization(axis=(2, 3), epsilon=1e-2)(x)
    x = layers.Permute((2, 1, 3))(x)
    x = layers.Reshape((-1, 8))(x)
    x = layers.GroupNormalization(groups=-1, axis=1)(x)
    x = layers.Flatten()(x)
    outputs = layers.Dense(3, activation="softmax")(x)
    return keras.Model(inputs, outputs)


def separable(keras):
    """Xception/MobileNet blocks: depthwise (multiplier 2, strides, dilation) and
    separable convolutions, LayerNormalization, reshaping."""
    layers = keras.layers
    inputs = keras.Input(shape=(11, 10, 3))
    x = layers.DepthwiseConv2D(3, depth_multiplier=2, padding="same", activation="relu")(inputs)
    x = layers.SeparableConv2D(8, 3, strides=2, padding="same", activation="relu")(x)
    x = layers.DepthwiseConv2D((3, 2), strides=(1, 2), dilation_rate=1, use_bias=False)(x)
    x = layers.SeparableConv2D(6, 3, dilation_rate=2, padding="same", depth_multiplier=2)(x)
    x = layers.LayerNormalization()(x)
    x = layers.Permute((2, 1, 3))(x)
    x = layers.Reshape((-1, 6))(x)
    x = layers.GlobalMaxPooling1D()(x)
    outputs = layers.Dense(4, activation="softmax")(x)
    return keras.Model(inputs, outputs)


def sequence(keras):
    """An audio/text CNN: Conv1D (valid, same, causal with dilation, strides) and 1-D
    pooling."""
    layers = keras.layers
    return keras.Sequential([
        keras.Input(shape=(20, 3)),
        layers.Conv1D(6, 3, activation="relu"),
        layers.MaxPooling1D(2),
        layers.Conv1D(6, 3, padding="causal", dilation_rate=2, activation="relu"),
        layers.Conv1D(5, 2, strides=2, padding="same"),
        layers.AveragePooling1D(2, strides=1, padding="same"),
        layers.LayerNormalization(),
        layers.GlobalAveragePooling1D(),
        layers.Dense(3, activation="softmax"),
    ])


def activity_regularization(keras):
    """Activity penalties (divided by the batch size in Keras 3) in the loss and the step."""
    layers = keras.layers
    inputs = keras.Input(shape=(6, 6, 2))
    x = layers.Conv2D(4, 3, activation="relu", activity_regularizer="l2")(inputs)
    x = layers.Flatten()(x)
    x = layers.Dense(8, activation="tanh", activity_regularizer=keras.regularizers.l1(0.05))(x)
    x = layers.ActivityRegularization(l1=0.02, l2=0.1)(x)
    outputs = layers.Dense(3, activation="softmax")(x)
    return keras.Model(inputs, outputs)


def mobilenet_blocks(keras):
    layers = keras.layers
    inputs = keras.Input(shape=(12, 12, 3))
    x = layers.Conv2D(8, 3, strides=2, padding="same", activation="relu")(inputs)
    x = layers.DepthwiseConv2D(3, padding="same", depth_multiplier=2, activation="relu")(x)
    x = layers.Conv2D(8, 1)(x)
    x = layers.DepthwiseConv2D((3, 2), strides=2, activation="tanh")(x)
    x = layers.DepthwiseConv2D(2, dilation_rate=(1, 2), use_bias=False, padding="same",
                               depth_multiplier=3)(x)
    x = layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, layers.Dense(4, activation="softmax")(x))


def xception_blocks(keras):
    layers = keras.layers
    inputs = keras.Input(shape=(11, 11, 3))
    x = layers.SeparableConv2D(8, 3, padding="same", activation="relu",
                               depth_multiplier=2)(inputs)
    x = layers.SeparableConv2D(6, 3, strides=2, padding="same")(x)
    skip = layers.Conv2D(6, 1, strides=2, padding="same")(inputs)
    x = layers.Add(name="shortcut")([x, skip])
    x = layers.SeparableConv2D(5, (3, 2), dilation_rate=2, use_bias=False,
                               activation="tanh")(x)
    x = layers.Flatten()(x)
    return keras.Model(inputs, layers.Dense(3, activation="softmax")(x))


def unet_up(keras):
    layers = keras.layers
    inputs = keras.Input(shape=(8, 8, 2))
    c1 = layers.Conv2D(4, 3, padding="same", activation="relu")(inputs)
    c2 = layers.Conv2D(8, 3, padding="same", activation="relu")(layers.MaxPooling2D()(c1))
    x = layers.Conv2DTranspose(4, 2, strides=2)(c2)
    x = layers.concatenate([x, c1])
    x = layers.Conv2DTranspose(4, 3, strides=2, padding="same", output_padding=1,
                               activation="relu")(x)
    x = layers.Conv2DTranspose(3, 3, strides=(2, 1), output_padding=(1, 0))(x)
    x = layers.Conv2DTranspose(2, 3, dilation_rate=2, padding="same", activation="tanh")(x)
    x = layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, layers.Dense(3, activation="softmax")(x))


def sequence_cnn(keras):
    layers = keras.layers
    inputs = keras.Input(shape=(20, 3))
    x = layers.Conv1D(6, 3, padding="causal", dilation_rate=2, activation="relu")(inputs)
    x = layers.MaxPooling1D(2)(x)
    x = layers.Conv1D(6, 3, strides=2, padding="same")(x)
    x = layers.AveragePooling1D(2, padding="same")(x)
    x = layers.Conv1D(4, 2, activation="tanh")(x)
    y = layers.MaxPooling1D(3, strides=2, padding="same")(inputs)
    y = layers.Conv1D(4, 2, strides=3, padding="causal")(y)
    x = layers.concatenate([layers.GlobalMaxPooling1D()(x), layers.GlobalAveragePooling1D()(x),
                            layers.GlobalAveragePooling1D()(y)])
    return keras.Model(inputs, layers.Dense(3, activation="softmax")(x))


def resizing_crops(keras):
    """Resizing (bilinear, nearest, crop_to_aspect_ratio) and CenterCrop (crop, and the
    resize of an image smaller than the box); no randomness, so values compare."""
    layers = keras.layers
    inputs = keras.Input(shape=(9, 11, 2))
    x = layers.Resizing(6, 8)(inputs)
    x = layers.CenterCrop(4, 6)(x)
    x = layers.Resizing(7, 5, interpolation="nearest")(x)
    x = layers.Resizing(4, 4, crop_to_aspect_ratio=True)(x)
    x = layers.CenterCrop(6, 5)(x)
    x = layers.Conv2D(3, 2, activation="relu")(x)
    outputs = layers.Dense(3, activation="softmax")(layers.Flatten()(x))
    return keras.Model(inputs, outputs)


MODELS = {"residual_inception": residual_inception, "two_inputs": two_inputs,
          "global_pooling": global_pooling, "upsampling_normalization": upsampling_normalization,
          "activity_regularization": activity_regularization, "resizing_crops": resizing_crops,
          "sequential_lecture": sequential_lecture, "subclassed_resnet": make_subclassed,
          "decoder": decoder, "separable": separable, "sequence": sequence,
          "mobilenet_blocks": mobilenet_blocks, "xception_blocks": xception_blocks,
          "unet_up": unet_up, "sequence_cnn": sequence_cnn}


def data_for(name, model, rng):
    shapes = [tuple(t.shape[1:]) for t in model.inputs]
    xs = [rng.random((8,) + s).astype("float32") for s in shapes]
    n_out = model.outputs[0].shape[-1]
    y = rng.integers(0, n_out, 8)
    return xs, y


def run_keras(path, names=None):
    os.environ.setdefault("KERAS_BACKEND", "jax")
    import keras

    out = {"keras_version": np.array(keras.__version__)}
    for name, build in MODELS.items():
        if names and name not in names:
            continue
        keras.utils.set_random_seed(0)
        model = build(keras)
        rng = np.random.default_rng(1)
        xs, y = data_for(name, model, rng)
        arg = xs if len(xs) > 1 else xs[0]
        weights = model.get_weights()
        out[f"{name}/n_weights"] = np.array(len(weights))
        for i, w in enumerate(weights):
            out[f"{name}/w{i}"] = w
        for i, x in enumerate(xs):
            out[f"{name}/x{i}"] = x
        out[f"{name}/y"] = y
        out[f"{name}/pred"] = np.asarray(model.predict(arg, verbose=0))
        model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.1),
                      loss="sparse_categorical_crossentropy")
        out[f"{name}/loss"] = np.array(float(model.train_on_batch(arg, y)))
        for i, w in enumerate(model.get_weights()):
            out[f"{name}/after{i}"] = w
    np.savez_compressed(path, **out)
    print(f"wrote {path} (Keras {keras.__version__}, backend {keras.backend.backend()})")


def compare(path):
    """``{model name: (prediction error, loss, Keras's loss, step error)}`` for the models
    in the file written by ``run_keras``."""
    import fastconv.keras as keras

    ref = np.load(path)
    results = {}
    for name, build in MODELS.items():
        if f"{name}/n_weights" not in ref:
            continue
        model = build(keras)
        n = int(ref[f"{name}/n_weights"])
        weights = [ref[f"{name}/w{i}"] for i in range(n)]
        mine = model.get_weights()
        if [a.shape for a in mine] != [w.shape for w in weights]:
            raise AssertionError(f"{name}: weight shapes differ: fastconv "
                                 f"{[a.shape for a in mine]}, Keras {[w.shape for w in weights]}")
        model.set_weights(weights)
        xs = [ref[f"{name}/x{i}"] for i in range(len(model.inputs))]
        arg = xs if len(xs) > 1 else xs[0]
        err_pred = float(np.max(np.abs(model.predict(arg) - ref[f"{name}/pred"])))
        model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.1),
                      loss="sparse_categorical_crossentropy")
        loss = float(model.train_on_batch(arg, ref[f"{name}/y"]))
        # Relative to the model's largest weight: a bias that a BatchNormalization
        # after it makes all but stationary has no meaningful relative error of its own.
        scale = max(float(np.max(np.abs(ref[f"{name}/after{i}"]))) for i in range(n))
        err_step = max(float(np.max(np.abs(a - ref[f"{name}/after{i}"]))) / scale
                       for i, a in enumerate(model.get_weights()))
        results[name] = (err_pred, loss, float(ref[f"{name}/loss"]), err_step, n)
    return results


def run_fastconv(path):
    worst = 0.0
    for name, (err_pred, loss, keras_loss, err_step, n) in compare(path).items():
        print(f"{name}: {n} weight arrays; predictions max |diff| {err_pred:.2e}; loss "
              f"{loss:.6f} vs Keras {keras_loss:.6f}; weights after one SGD step: max diff / "
              f"largest weight {err_step:.2e}")
        worst = max(worst, err_pred, err_step, abs(loss - keras_loss))
    print(f"worst: {worst:.2e}")
    return 0 if worst < 1e-4 else 1


if __name__ == "__main__":
    if len(sys.argv) < 3 or sys.argv[1] not in ("keras", "fastconv"):
        sys.exit("usage: keras_parity.py keras|fastconv FILE.npz [model names]")
    if sys.argv[1] == "keras":
        run_keras(sys.argv[2], sys.argv[3:])
    else:
        sys.exit(run_fastconv(sys.argv[2]))
