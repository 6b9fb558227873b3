"""Write tests/data/keras_optimizers.json: Keras 3's optimizer steps and schedule values.

Run with Keras 3 (any backend), from the repository root:

    KERAS_BACKEND=jax python tools/keras_optimizers_json.py

For each case, fixed float32 weights (two arrays) take ``STEPS`` steps of fixed float32
gradients; the file keeps the inputs, the config and the weights after every step (and
after ``finalize_variable_values``). For each schedule, its values at steps 0..SPAN-1.
tests/test_optimizers_keras.py replays them in fastconv; Keras is not needed there.
"""

import json
import os

import keras
import numpy as np

STEPS = 5
SPAN = 40

OPTIMIZERS = [
    ("SGD", {"learning_rate": 0.1}),
    ("SGD", {"learning_rate": 0.1, "momentum": 0.9}),
    ("SGD", {"learning_rate": 0.1, "momentum": 0.9, "nesterov": True}),
    ("Adam", {"learning_rate": 0.01}),
    ("Adam", {"learning_rate": 0.01, "amsgrad": True}),
    ("AdamW", {"learning_rate": 0.01}),
    ("AdamW", {"learning_rate": 0.01, "weight_decay": 0.1, "amsgrad": True}),
    ("Nadam", {"learning_rate": 0.01}),
    ("Adamax", {"learning_rate": 0.01}),
    ("Adagrad", {"learning_rate": 0.1}),
    ("Adadelta", {"learning_rate": 1.0}),
    ("Lion", {"learning_rate": 0.01}),
    ("RMSprop", {"learning_rate": 0.01}),
    ("RMSprop", {"learning_rate": 0.01, "momentum": 0.5, "centered": True}),
    ("SGD", {"learning_rate": 0.1, "weight_decay": 0.05}),
    ("Nadam", {"learning_rate": 0.01, "weight_decay": 0.05}),
    ("SGD", {"learning_rate": 0.1, "clipnorm": 0.5}),
    ("Adam", {"learning_rate": 0.01, "global_clipnorm": 0.5}),
    ("SGD", {"learning_rate": 0.1, "clipvalue": 0.2}),
    ("Adam", {"learning_rate": 0.01, "use_ema": True, "ema_momentum": 0.9}),
    ("SGD", {"learning_rate": 0.1, "momentum": 0.5, "use_ema": True, "ema_momentum": 0.8,
             "ema_overwrite_frequency": 2}),
    ("Adam", {"learning_rate": {"class_name": "ExponentialDecay", "config": {
        "initial_learning_rate": 0.01, "decay_steps": 2, "decay_rate": 0.5}}}),
    ("SGD", {"learning_rate": {"class_name": "CosineDecay", "config": {
        "initial_learning_rate": 0.0, "decay_steps": 3, "warmup_target": 0.1,
        "warmup_steps": 2}}}),
]

SCHEDULES = [
    ("ExponentialDecay", {"initial_learning_rate": 0.1, "decay_steps": 7, "decay_rate": 0.5}),
    ("ExponentialDecay", {"initial_learning_rate": 0.1, "decay_steps": 7, "decay_rate": 0.5,
                          "staircase": True}),
    ("PiecewiseConstantDecay", {"boundaries": [3, 10], "values": [1.0, 0.5, 0.1]}),
    ("PolynomialDecay", {"initial_learning_rate": 0.1, "decay_steps": 10}),
    ("PolynomialDecay", {"initial_learning_rate": 0.1, "decay_steps": 10, "power": 2.0,
                         "end_learning_rate": 0.01, "cycle": True}),
    ("InverseTimeDecay", {"initial_learning_rate": 0.1, "decay_steps": 5, "decay_rate": 0.5}),
    ("InverseTimeDecay", {"initial_learning_rate": 0.1, "decay_steps": 5, "decay_rate": 0.5,
                          "staircase": True}),
    ("CosineDecay", {"initial_learning_rate": 0.1, "decay_steps": 20, "alpha": 0.1}),
    ("CosineDecay", {"initial_learning_rate": 0.01, "decay_steps": 20, "warmup_target": 0.1,
                     "warmup_steps": 8}),
    ("CosineDecayRestarts", {"initial_learning_rate": 0.1, "first_decay_steps": 5}),
    ("CosineDecayRestarts", {"initial_learning_rate": 0.1, "first_decay_steps": 4,
                             "t_mul": 1.0, "m_mul": 0.5, "alpha": 0.1}),
]


def _keras_lr(value):
    if isinstance(value, dict):
        return getattr(keras.optimizers.schedules, value["class_name"])(**value["config"])
    return value


def main():
    rng = np.random.default_rng(17)
    w0 = [rng.standard_normal((3, 4)).astype(np.float32),
          rng.standard_normal(5).astype(np.float32)]
    grads = [[rng.standard_normal(w.shape).astype(np.float32) for w in w0]
             for _ in range(STEPS)]
    cases = []
    for name, config in OPTIMIZERS:
        opt = getattr(keras.optimizers, name)(
            **{**config, "learning_rate": _keras_lr(config["learning_rate"])})
        variables = [keras.Variable(w) for w in w0]
        steps = []
        for g in grads:
            opt.apply([keras.ops.convert_to_tensor(a) for a in g], variables)
            steps.append([np.asarray(v.numpy()).tolist() for v in variables])
        opt.finalize_variable_values(variables)
        cases.append({"class_name": name, "config": config, "steps": steps,
                      "final": [np.asarray(v.numpy()).tolist() for v in variables]})
    schedules = []
    for name, config in SCHEDULES:
        sched = getattr(keras.optimizers.schedules, name)(**config)
        schedules.append({"class_name": name, "config": config,
                          "values": [float(sched(step)) for step in range(SPAN)]})
    out = {"keras_version": keras.__version__, "backend": keras.backend.backend(),
           "weights": [w.tolist() for w in w0],
           "grads": [[a.tolist() for a in g] for g in grads],
           "optimizers": cases, "schedules": schedules}
    path = os.path.join("tests", "data", "keras_optimizers.json")
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(out, f, indent=1)
    os.replace(tmp, path)
    print(f"wrote {path}: {len(cases)} optimizer cases, {len(schedules)} schedules")


if __name__ == "__main__":
    main()
