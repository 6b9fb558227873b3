"""``keras.datasets``: ``mnist``, ``fashion_mnist``, ``cifar10`` with ``load_data()``."""

from ..datasets import cifar10, fashion_mnist, mnist  # noqa: F401
from ._namespace import module_getattr

__all__ = ["cifar10", "fashion_mnist", "mnist"]


__getattr__ = module_getattr(__name__)
