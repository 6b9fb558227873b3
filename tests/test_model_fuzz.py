"""Whole models built at random (Sequential stacks and graphs): a configuration that
cannot work raises ValueError or TypeError naming the layer; one that can agrees
between the compiled and the NumPy backends on predictions and on one training step."""

import numpy as np
from hypothesis import event, given, settings
from hypothesis import strategies as st

import fastconv
from fastconv import layers
from fastconv.models import Sequential
from fastconv.utils import set_random_seed

LAYER_CHOICES = ["conv", "pool", "avgpool", "dense", "flatten", "dropout", "bn", "relu",
                 "softmax", "leaky"]


@st.composite
def stacks(draw):
    h = draw(st.integers(1, 9))
    w = draw(st.integers(1, 9))
    c = draw(st.integers(1, 3))
    kinds = draw(st.lists(st.sampled_from(LAYER_CHOICES), min_size=1, max_size=6))
    made = []
    for kind in kinds:
        if kind == "conv":
            made.append(layers.Conv2D(draw(st.integers(1, 4)), draw(st.integers(1, 5)),
                                      strides=draw(st.integers(1, 3)),
                                      padding=draw(st.sampled_from(["valid", "same"])),
                                      activation=draw(st.sampled_from([None, "relu", "tanh"]))))
        elif kind in ("pool", "avgpool"):
            cls = layers.MaxPooling2D if kind == "pool" else layers.AveragePooling2D
            made.append(cls(draw(st.integers(1, 4)),
                            padding=draw(st.sampled_from(["valid", "same"]))))
        elif kind == "dense":
            made.append(layers.Dense(draw(st.integers(1, 5)),
                                     activation=draw(st.sampled_from([None, "relu"]))))
        elif kind == "flatten":
            made.append(layers.Flatten())
        elif kind == "dropout":
            made.append(layers.Dropout(0.3, seed=1))
        elif kind == "bn":
            made.append(layers.BatchNormalization())
        elif kind == "relu":
            made.append(layers.ReLU())
        elif kind == "softmax":
            made.append(layers.Softmax())
        else:
            made.append(layers.LeakyReLU(0.2))
    return (h, w, c), made, draw(st.integers(1, 3)), draw(st.integers(0, 2**16))


@settings(max_examples=60, deadline=None)
@given(stacks())
def test_random_stacks_fail_clearly_or_agree_across_backends(case):
    shape, made, batch, seed = case
    set_random_seed(seed)
    try:
        model = Sequential([layers.Input(shape)] + made, dtype="float64")
    except (ValueError, TypeError) as e:
        named = [la.name for la in made if la.name in str(e)]
        assert named, f"the error names no layer: {e}"
        event("refused")
        return
    event("built")
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(batch,) + shape)
    out_shape = model.output_shape
    y = rng.normal(size=(batch,) + tuple(out_shape[1:]))
    runs = {}
    for backend in ("numpy", "cython"):
        with fastconv.use_backend(backend):
            clone = Sequential.from_config(model.get_config())
            clone.set_weights(model.get_weights())
            clone.compile(optimizer="sgd", loss="mse")
            pred = clone.predict(x)
            set_random_seed(seed)  # the same dropout masks in both runs
            clone._workspace = type(clone._workspace)()
            for la, orig in zip(clone.layers, model.layers):
                if isinstance(la, layers.Dropout):
                    la._key, la._step = orig._key, 0
            clone.train_on_batch(x, y)
            runs[backend] = pred, clone.get_weights()
    np.testing.assert_allclose(runs["cython"][0], runs["numpy"][0], rtol=1e-9, atol=1e-12)
    for a, b in zip(runs["cython"][1], runs["numpy"][1]):
        np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-11)
