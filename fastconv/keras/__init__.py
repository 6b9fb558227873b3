"""The Keras API on fastconv: change ``import keras`` to ``import fastconv.keras as keras``.

Mirrors the ``keras`` namespace for everything fastconv has: ``keras.Input``,
``keras.Model``, ``keras.Sequential`` and the modules ``layers``, ``models``,
``optimizers``, ``losses``, ``metrics``, ``callbacks``, ``activations``,
``initializers``, ``regularizers``, ``constraints``, ``utils``, ``datasets``, ``ops``,
``saving`` and ``backend``. A Keras name fastconv lacks raises AttributeError (ImportError in a
``from ... import``) that says so.
"""

from __future__ import annotations

from ..layers import Input, Layer
from ..models import Model, Sequential
from . import (
    activations,
    backend,
    callbacks,
    constraints,
    datasets,
    initializers,
    layers,
    losses,
    metrics,
    models,
    ops,
    optimizers,
    regularizers,
    saving,
    utils,
)
from ._namespace import module_getattr

__version__ = "3.0.0-fastconv"

__all__ = ["Input", "Layer", "Model", "Sequential", "activations", "backend", "callbacks",
           "constraints", "datasets", "initializers", "layers", "losses", "metrics", "models",
           "ops", "optimizers", "regularizers", "saving", "utils"]


__getattr__ = module_getattr(__name__)
