"""Real data sets as Keras's ``keras.datasets`` loads them.

``mnist``, ``fashion_mnist`` and ``cifar10`` each have ``load_data(path=None)``,
returning ``(x_train, y_train), (x_test, y_test)`` as uint8 arrays in Keras's shapes.
They read the original files from, in order: ``path``, the directory in
``$FASTCONV_DATA``, the cache ``~/.fastconv/datasets`` (``$FASTCONV_CACHE`` overrides
it), and for Fashion-MNIST ``/usr/share/datasets/fashion-mnist`` (Debian's package
``dataset-fashion-mnist``); otherwise they download them with pooch (``fastconv[data]``).
``fashion_mnist.load_sample()`` returns a small real sample shipped with fastconv.
"""

from . import cifar10, fashion_mnist, mnist
from ._fetch import DataNotFoundError
from ._idx import DatasetFileError

__all__ = ["mnist", "fashion_mnist", "cifar10", "DataNotFoundError", "DatasetFileError"]
