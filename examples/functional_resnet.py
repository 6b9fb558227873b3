"""A small residual CNN in the functional API, with a subclassed residual unit and an
augmentation Sequential inside, written as Keras code: only the import differs
(``import fastconv.keras as keras`` for ``import keras``).

    python examples/functional_resnet.py                  # 8 epochs on Fashion-MNIST
    python examples/functional_resnet.py --sample --epochs 1   # seconds, offline
"""

from _common import load_mnist_or_fashion, parse_args, save_plot

import fastconv.keras as keras
from fastconv.keras import layers

args = parse_args("A residual CNN in Keras's functional API on fastconv.", epochs=8,
                  batch_size=64, output="functional_resnet_history.png")


# ---- the Keras program ----------------------------------------------------------------
class ResidualUnit(keras.layers.Layer):
    """Two 3x3 convolutions with batch normalization, plus the input (or its 1x1
    projection when the unit downsamples), then ReLU."""

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


(x_train, y_train), (x_test, y_test) = load_mnist_or_fashion(args.sample)
if args.limit:
    x_train, y_train = x_train[:args.limit], y_train[:args.limit]
x_train = x_train.reshape(-1, 28, 28, 1).astype("float32")
x_test = x_test.reshape(-1, 28, 28, 1).astype("float32")

data_augmentation = keras.Sequential([layers.RandomFlip("horizontal"),
                                      layers.RandomTranslation(0.1, 0.1)])

inputs = keras.Input(shape=(28, 28, 1))
x = data_augmentation(inputs)
x = layers.Rescaling(1.0 / 255)(x)
x = layers.Conv2D(32, 3, padding="same", activation="relu")(x)
x = layers.MaxPooling2D()(x)                       # 14 x 14
x = ResidualUnit(32)(x)
x = ResidualUnit(64, strides=2)(x)                 # 7 x 7
branch_a = layers.Conv2D(32, 1, activation="relu")(x)
branch_b = layers.Conv2D(32, 3, padding="same", activation="relu")(x)
x = layers.concatenate([branch_a, branch_b])       # an inception-style merge
x = layers.MaxPooling2D()(x)
x = layers.Flatten()(x)
x = layers.Dropout(0.3)(x)
outputs = layers.Dense(10, activation="softmax")(x)
model = keras.Model(inputs=inputs, outputs=outputs, name="mini_resnet")
model.summary()

model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
history = model.fit(x_train, y_train, batch_size=args.batch_size, epochs=args.epochs,
                    verbose=2, validation_data=(x_test, y_test))
score = model.evaluate(x_test, y_test, verbose=0)
print("Test loss:", round(float(score[0]), 4))
print("Test accuracy:", round(float(score[1]), 4))

if args.output:
    save_plot(history, args.output)
