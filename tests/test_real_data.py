"""A short real training run on the full Fashion-MNIST, when it is installed.

CI installs Debian's package ``dataset-fashion-mnist``, which puts the files in
``/usr/share/datasets/fashion-mnist``; elsewhere the test is skipped and says why.
"""

import os

import numpy as np
import pytest

from fastconv.datasets import fashion_mnist

pytestmark = pytest.mark.skipif(
    not os.path.isdir(fashion_mnist.DEBIAN_DIR),
    reason=f"full Fashion-MNIST is not installed in {fashion_mnist.DEBIAN_DIR} "
           "(apt-get install dataset-fashion-mnist)")


@pytest.fixture
def one_thread():
    """One kernel thread: this checks learning, not speed, and stays quick on a busy machine."""
    import fastconv

    before = fastconv._threads._num_threads
    fastconv.set_num_threads(1)
    yield
    fastconv.set_num_threads(before)


def test_lecture_model_learns_fashion_mnist_in_one_short_epoch(one_thread):
    from fastconv._demo import lecture_mnist_model
    from fastconv.utils import set_random_seed, to_categorical

    (x_train, y_train), (x_test, y_test) = fashion_mnist.load_data(fashion_mnist.DEBIAN_DIR)
    assert x_train.shape == (60000, 28, 28) and x_test.shape == (10000, 28, 28)
    x = x_train[:10000].reshape(-1, 28, 28, 1).astype(np.float32) / 255
    xt = x_test.reshape(-1, 28, 28, 1).astype(np.float32) / 255
    set_random_seed(0)
    model = lecture_mnist_model()
    history = model.fit(x, to_categorical(y_train[:10000], 10), batch_size=32, epochs=1,
                        verbose=0)
    assert np.isfinite(history.history["loss"][0])
    pred = model.predict(xt, batch_size=1000, verbose=0).argmax(axis=1)
    accuracy = float(np.mean(pred == y_test))
    # Chance is 0.1; one epoch on 10,000 images gives about 0.8 here.
    assert accuracy >= 0.7, accuracy
