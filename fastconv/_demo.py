"""``python -m fastconv demo``: the lecture's MNIST model on the embedded real sample.

Offline and quick: 2,000 Fashion-MNIST training images and 500 test images shipped
inside the package (see ``fastconv.datasets.fashion_mnist.load_sample``). Prints each
epoch's progress and the test accuracy and, with matplotlib installed, saves the
accuracy/val_accuracy plot.
"""

from __future__ import annotations

import os
import tempfile
import time
from typing import Dict, List, Optional

__all__ = ["run", "save_history_plot"]


def save_history_plot(history: Dict[str, List[float]], path: str,
                      title: str = "accuracy") -> Optional[str]:
    """Plot ``accuracy`` and ``val_accuracy`` per epoch into the image file ``path``.

    Parameters
    ----------
    history : dict
        ``History.history`` from ``fit``: lists of per-epoch values by name.
    path : str
        The image file; its extension picks the format. Written to a temporary file in
        the same directory first and then renamed, so an existing file is either kept
        or wholly replaced.
    title : str

    Returns
    -------
    str or None
        ``path``, or None when matplotlib is not installed (nothing is written).
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, ax = plt.subplots(figsize=(6, 4))
    for key in ("accuracy", "val_accuracy"):
        if key in history:
            epochs = range(1, len(history[key]) + 1)
            ax.plot(epochs, history[key], marker="o", label=key)
    ax.set_xlabel("epoch")
    ax.set_ylabel("accuracy")
    ax.set_title(title)
    ax.legend()
    ax.grid(True, alpha=0.3)
    directory = os.path.dirname(os.path.abspath(path))
    suffix = os.path.splitext(path)[1] or ".png"
    fd, tmp = tempfile.mkstemp(prefix=".fastconv-plot-", suffix=suffix, dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            fig.savefig(f, format=suffix[1:], dpi=100)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    finally:
        plt.close(fig)
    return path


def lecture_mnist_model():
    """The lecture's MNIST CNN, compiled as in the lecture (Adam, categorical cross-entropy).

    Conv2D(32, 3, relu) on (28, 28, 1) -> MaxPooling2D(2) -> Dropout(0.25) -> Flatten ->
    Dense(128, relu) -> Dropout(0.5) -> Dense(10, softmax).
    """
    from .layers import Conv2D, Dense, Dropout, Flatten, MaxPooling2D
    from .models import Sequential

    model = Sequential()
    model.add(Conv2D(32, kernel_size=3, activation="relu", input_shape=(28, 28, 1)))
    model.add(MaxPooling2D(pool_size=(2, 2)))
    model.add(Dropout(0.25))
    model.add(Flatten())
    model.add(Dense(128, activation="relu"))
    model.add(Dropout(0.5))
    model.add(Dense(10, activation="softmax"))
    model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    return model


def run(epochs: int = 10, batch_size: int = 32, output: Optional[str] = "fastconv-demo.png",
        seed: int = 0, verbose: int = 2) -> float:
    """Train the lecture's MNIST model on the embedded sample; return the test accuracy."""
    from .datasets import fashion_mnist
    from .utils import set_random_seed, to_categorical

    (x_train, y_train), (x_test, y_test) = fashion_mnist.load_sample()
    x_train = x_train.reshape(-1, 28, 28, 1).astype("float32") / 255
    x_test = x_test.reshape(-1, 28, 28, 1).astype("float32") / 255
    y_train, y_test = to_categorical(y_train, 10), to_categorical(y_test, 10)
    print(f"Fashion-MNIST sample shipped with fastconv: {len(x_train)} training and "
          f"{len(x_test)} test images (28x28 grey, 10 classes)")

    set_random_seed(seed)
    model = lecture_mnist_model()
    start = time.perf_counter()
    history = model.fit(x_train, y_train, batch_size=batch_size, epochs=epochs,
                        verbose=verbose, validation_data=(x_test, y_test))
    seconds = time.perf_counter() - start
    loss, accuracy = model.evaluate(x_test, y_test, verbose=0)
    print(f"Trained {epochs} epoch(s) in {seconds:.1f} s")
    print(f"Test loss: {loss:.4f}")
    print(f"Test accuracy: {accuracy:.4f}")
    if output:
        saved = save_history_plot(history.history, output,
                                  title="lecture MNIST model, Fashion-MNIST sample")
        if saved is None:
            print("matplotlib is not installed, so no plot was saved "
                  "(pip install 'fastconv[plot]')")
        else:
            print(f"Saved the accuracy/val_accuracy plot to {saved}")
    return accuracy
