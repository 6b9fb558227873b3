"""The lecture's CIFAR-10 CNN (TensorFlow's CNN tutorial), as written in Keras, on fastconv.

Three Conv2D layers, a logits output trained with
``SparseCategoricalCrossentropy(from_logits=True)``, ``validation_data`` in ``fit``,
and the accuracy/val_accuracy plot. Only the imports differ from the Keras program:
``from tensorflow.keras import datasets, layers, models`` became
``from fastconv import datasets, layers, losses, models``.

CIFAR-10 is read by ``fastconv.datasets.cifar10.load_data()`` (the python batches,
``cifar-10-python.tar.gz`` or its folder, from ``FASTCONV_DATA``, the cache
``~/.fastconv/datasets`` or a download). Without the files, and with ``--no-download``,
it says where to put them and stops.

    python examples/lecture_cifar10.py                      # 10 epochs
    python examples/lecture_cifar10.py --limit 5000 --epochs 1
"""

import argparse
import os
import sys
import tempfile

from fastconv import datasets, layers, losses, models

parser = argparse.ArgumentParser(description="The lecture's CIFAR-10 CNN on fastconv.")
parser.add_argument("--epochs", type=int, default=10)
parser.add_argument("--batch-size", type=int, default=32)
parser.add_argument("--sample", action="store_true",
                    help="fastconv ships no CIFAR-10 sample: with --sample the script only "
                         "uses CIFAR-10 files already on this machine (no download) and "
                         "trains on the first 2,000 images")
parser.add_argument("--limit", type=int, default=None, metavar="N",
                    help="train on the first N training images only")
parser.add_argument("--no-download", action="store_true",
                    help="never download; stop with a message if the files are absent")
parser.add_argument("--output", "-o", default="lecture_cifar10_history.png",
                    help="where to save the accuracy plot ('' for none)")
args = parser.parse_args()
if args.epochs < 1 or args.batch_size < 1 or (args.limit is not None and args.limit < 1):
    parser.error("--epochs, --batch-size and --limit must be positive")
if args.sample and args.limit is None:
    args.limit = 2000


def save_plot(history, path):
    """The tutorial's accuracy plot, written to ``path`` (atomically) if matplotlib is here."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plot (pip install 'fastconv[plot]')")
        return
    plt.plot(history.history["accuracy"], label="accuracy")
    plt.plot(history.history["val_accuracy"], label="val_accuracy")
    plt.xlabel("Epoch")
    plt.ylabel("Accuracy")
    plt.ylim([0.0, 1])
    plt.legend(loc="lower right")
    fd, tmp = tempfile.mkstemp(suffix=".png", dir=os.path.dirname(os.path.abspath(path)))
    with os.fdopen(fd, "wb") as f:
        plt.savefig(f, format="png")
    os.replace(tmp, path)
    plt.close()
    print(f"Saved the accuracy plot to {path}")


try:
    (train_images, train_labels), (test_images, test_labels) = datasets.cifar10.load_data(
        download=not (args.no_download or args.sample))
except (datasets.DataNotFoundError, datasets.DatasetFileError, ImportError, OSError) as err:
    print("CIFAR-10 is not available, so this example cannot run.\n", err, sep="",
          file=sys.stderr)
    sys.exit(2)
if args.limit:
    train_images, train_labels = train_images[:args.limit], train_labels[:args.limit]

# ---- the tutorial's program -----------------------------------------------------------
# Normalize pixel values to be between 0 and 1
train_images, test_images = train_images / 255.0, test_images / 255.0

model = models.Sequential()
model.add(layers.Conv2D(32, (3, 3), activation="relu", input_shape=(32, 32, 3)))
model.add(layers.MaxPooling2D((2, 2)))
model.add(layers.Conv2D(64, (3, 3), activation="relu"))
model.add(layers.MaxPooling2D((2, 2)))
model.add(layers.Conv2D(64, (3, 3), activation="relu"))
model.add(layers.Flatten())
model.add(layers.Dense(64, activation="relu"))
model.add(layers.Dense(10))
model.summary()

model.compile(optimizer="adam",
              loss=losses.SparseCategoricalCrossentropy(from_logits=True),
              metrics=["accuracy"])

history = model.fit(train_images, train_labels, epochs=args.epochs,
                    batch_size=args.batch_size, verbose=2,
                    validation_data=(test_images, test_labels))

test_loss, test_acc = model.evaluate(test_images, test_labels, verbose=2)
print("Test accuracy:", round(float(test_acc), 4))

if args.output:
    save_plot(history, args.output)
