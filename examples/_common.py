"""What the example scripts share besides the lecture's program itself: options, data
and the accuracy plot. (Kept out of the scripts so each of them shows only the
lecture's Keras code.)"""

import argparse
import os
import tempfile

from fastconv.datasets import DataNotFoundError, fashion_mnist, mnist


def parse_args(description, epochs, batch_size, output, add_options=None):
    """The scripts' shared options: --epochs, --batch-size, --sample, --limit, -o."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--epochs", type=int, default=epochs)
    parser.add_argument("--batch-size", type=int, default=batch_size)
    parser.add_argument("--sample", action="store_true",
                        help="use the 2,000-image Fashion-MNIST sample shipped with fastconv")
    parser.add_argument("--limit", type=int, default=None, metavar="N",
                        help="train on the first N training images only")
    parser.add_argument("--output", "-o", default=output,
                        help="where to save the accuracy plot ('' for none)")
    if add_options is not None:
        add_options(parser)
    args = parser.parse_args()
    if args.epochs < 1 or args.batch_size < 1 or (args.limit is not None and args.limit < 1):
        parser.error("--epochs, --batch-size and --limit must be positive")
    return args


def load_mnist_or_fashion(sample):
    """MNIST if its files are here, else Fashion-MNIST (full, then the embedded sample)."""
    if sample:
        print("Data: the Fashion-MNIST sample shipped with fastconv")
        return fashion_mnist.load_sample()
    try:
        data = mnist.load_data(download=False)
        print("Data: MNIST")
        return data
    except DataNotFoundError:
        pass
    try:
        data = fashion_mnist.load_data(download=False)
        print("Data: Fashion-MNIST (MNIST's files are not on this machine)")
        return data
    except DataNotFoundError:
        print("Data: the Fashion-MNIST sample shipped with fastconv (neither MNIST nor "
              "Fashion-MNIST is on this machine; see fastconv.datasets)")
        return fashion_mnist.load_sample()


def save_plot(history, path):
    """The lecture's accuracy plot, written to ``path`` (atomically) if matplotlib is here."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plot (pip install 'fastconv[plot]')")
        return
    plt.plot(history.history["accuracy"])
    plt.plot(history.history["val_accuracy"])
    plt.title("model accuracy")
    plt.ylabel("accuracy")
    plt.xlabel("epoch")
    plt.legend(["train", "test"], loc="upper left")
    fd, tmp = tempfile.mkstemp(suffix=".png", dir=os.path.dirname(os.path.abspath(path)))
    with os.fdopen(fd, "wb") as f:
        plt.savefig(f, format="png")
    os.replace(tmp, path)
    plt.close()
    print(f"Saved the accuracy plot to {path}")
