"""``keras.datasets``: ``mnist``, ``fashion_mnist``, ``cifar10`` with ``load_data()``."""

from ..datasets import cifar10, fashion_mnist, mnist  # noqa: F401
from ._namespace import missing

__all__ = ["cifar10", "fashion_mnist", "mnist"]


def __getattr__(name: str):
    if name.startswith("__"):
        raise AttributeError(name)
    raise missing(__name__, name)
