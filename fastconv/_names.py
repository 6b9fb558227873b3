"""Keras's default names for objects: the snake case of their class names."""

import re


def snake_case(class_name: str) -> str:
    """Keras's snake case of a class name, as its default layer and optimizer names
    and its weight-file paths use: ``MaxPooling2D`` -> ``max_pooling2d``, ``SGD`` ->
    ``sgd``, ``RMSprop`` -> ``rm_sprop``, ``AdamW`` -> ``adam_w``."""
    s = re.sub(r"\W+", "", class_name)
    s = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", s)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", s).lower()
