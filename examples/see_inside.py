"""See inside the lecture's MNIST CNN, trained on Fashion-MNIST, as PNG pictures.

Trains (or loads a saved) Conv2D(32, 3, relu) -> MaxPooling2D(2) -> Dropout(0.25) ->
Flatten -> Dense(128, relu) -> Dropout(0.5) -> Dense(10, softmax) on Fashion-MNIST, then
writes into the output directory:

- 1_classic_filters.png: sharpen, blur, edge and emboss applied to a test image;
- 2_history.png: loss and accuracy per epoch, training and validation;
- 3_first_layer_filters.png: the 32 learned 3x3 kernels of the first layer;
- 4_feature_maps.png: what the convolution and pooling layers make of one test image;
- 5_activation_maximization.png: inputs that make first-layer filters fire;
- 6_activation_maximization_classes.png: inputs that make each output class likely;
- 7_confusion_matrix.png: true against predicted class on the test set.

Run ``python examples/see_inside.py --sample --epochs 1 --out /tmp/see`` for a quick
look (the 2,000-image sample shipped with fastconv), or without ``--sample`` for the full
data set (read from ``/usr/share/datasets/fashion-mnist`` or fastconv's other places;
falls back to the sample when it is not there). ``--model FILE`` loads the model from
FILE when it exists, and otherwise saves the trained model there. Needs matplotlib
(``pip install 'fastconv[plot]'``).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

from fastconv import visualize
from fastconv.datasets import DataNotFoundError, fashion_mnist
from fastconv.layers import Conv2D, Dense, Dropout, Flatten, MaxPooling2D
from fastconv.models import Sequential, load_model
from fastconv.utils import set_random_seed, to_categorical


def lecture_model() -> Sequential:
    """The lecture's MNIST CNN, compiled as the lecture compiles it."""
    model = Sequential([
        Conv2D(32, (3, 3), activation="relu", input_shape=(28, 28, 1)),
        MaxPooling2D(pool_size=(2, 2)),
        Dropout(0.25),
        Flatten(),
        Dense(128, activation="relu"),
        Dropout(0.5),
        Dense(10, activation="softmax"),
    ])
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    return model


def load(sample: bool):
    """Fashion-MNIST (or its embedded sample), scaled to [0, 1] with a channel axis."""
    source = "embedded sample"
    if sample:
        data = fashion_mnist.load_sample()
    else:
        try:
            data = fashion_mnist.load_data(download=False)
            source = "full Fashion-MNIST"
        except DataNotFoundError as err:
            print(f"Full Fashion-MNIST not found ({str(err).splitlines()[0]}); using the "
                  "embedded sample.", file=sys.stderr)
            data = fashion_mnist.load_sample()
    (x_train, y_train), (x_test, y_test) = data
    print(f"Data: {source}, {len(x_train)} training and {len(x_test)} test images.")
    return (x_train, y_train), (x_test, y_test)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3, help="training epochs (default 3)")
    parser.add_argument("--out", default="see_inside", help="output directory for the PNGs")
    parser.add_argument("--sample", action="store_true",
                        help="use the 2,000-image sample shipped with fastconv (fast)")
    parser.add_argument("--model", default=None,
                        help="load the model from this file if it exists, else save it there")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=40,
                        help="gradient-ascent steps of activation maximisation (default 40)")
    args = parser.parse_args(argv)
    if args.epochs < 1:
        parser.error(f"--epochs must be >= 1. Received: {args.epochs}")
    if args.steps < 1:
        parser.error(f"--steps must be >= 1. Received: {args.steps}")

    set_random_seed(args.seed)
    (x_train_u8, y_train), (x_test_u8, y_test) = load(args.sample)
    x_train = x_train_u8[..., None].astype(np.float32) / 255
    x_test = x_test_u8[..., None].astype(np.float32) / 255
    os.makedirs(args.out, exist_ok=True)

    def out(name):
        return os.path.join(args.out, name)

    history = None
    if args.model and os.path.exists(args.model):
        model = load_model(args.model)
        print(f"Loaded the model from {args.model}; no training history to plot.")
    else:
        model = lecture_model()
        start = time.perf_counter()
        history = model.fit(x_train, to_categorical(y_train, 10), batch_size=args.batch_size,
                            epochs=args.epochs, validation_data=(x_test, to_categorical(
                                y_test, 10)), verbose=2)
        print(f"Trained {args.epochs} epoch(s) in {time.perf_counter() - start:.1f} s.")
        if args.model:
            model.save(args.model)
            print(f"Saved the model to {args.model}.")

    written = []

    def keep(fig, name):
        written.append(out(name))
        visualize._pyplot().close(fig)

    # A sneaker-or-boot image shows edges best; any test image would do.
    pick = int(np.flatnonzero(y_test == 9)[0]) if (y_test == 9).any() else 0
    keep(visualize.plot_classic_filters(x_test_u8[pick],
                                        filename=out("1_classic_filters.png")),
         "1_classic_filters.png")
    if history is not None:
        keep(visualize.plot_history(history, filename=out("2_history.png")), "2_history.png")
    keep(visualize.plot_filters(model.layers[0], filename=out("3_first_layer_filters.png")),
         "3_first_layer_filters.png")
    keep(visualize.plot_feature_maps(model, x_test[pick], layers=[0, 1], max_maps=16,
                                     filename=out("4_feature_maps.png")),
         "4_feature_maps.png")
    keep(visualize.plot_activation_maximization(
        model, 0, filter_indices=range(16), steps=args.steps, learning_rate=0.05,
        value_range=(0.0, 1.0), seed=args.seed,
        filename=out("5_activation_maximization.png")), "5_activation_maximization.png")
    keep(visualize.plot_activation_maximization(
        model, -1, filter_indices=range(10), steps=args.steps + args.steps // 2,
        learning_rate=0.05,
        value_range=(0.0, 1.0), seed=args.seed,
        filename=out("6_activation_maximization_classes.png")),
        "6_activation_maximization_classes.png")
    predicted = model.predict(x_test, batch_size=500).argmax(axis=1)
    print(f"Test accuracy: {np.mean(predicted == y_test):.4f}")
    keep(visualize.plot_confusion_matrix(y_test, predicted, fashion_mnist.CLASS_NAMES,
                                         filename=out("7_confusion_matrix.png")),
         "7_confusion_matrix.png")
    for path in written:
        print("wrote", path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
