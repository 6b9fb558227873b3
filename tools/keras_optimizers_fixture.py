"""Make tests/data/keras3_optimizers.npz: Keras 3's optimizers on fixed weights and
gradients, for tests/test_optimizer_parity.py.

Run with an interpreter that has Keras 3, from the repository root:

    KERAS_BACKEND=jax python tools/keras_optimizers_fixture.py

Every case starts from the same two float32 weight arrays and applies the same five
gradient steps; the file keeps the weights after each step (and, with use_ema, after
finalize_variable_values), the learning rate before each step, and the cases' configs.
"""

import json
import os

import keras
import numpy as np

SCHEDULE = {"class_name": "ExponentialDecay",
            "config": {"initial_learning_rate": 0.05, "decay_steps": 2, "decay_rate": 0.5}}

CASES = [
    ("sgd", "SGD", {"learning_rate": 0.1}),
    ("sgd_momentum", "SGD", {"learning_rate": 0.1, "momentum": 0.9}),
    ("sgd_nesterov", "SGD", {"learning_rate": 0.1, "momentum": 0.9, "nesterov": True}),
    ("adam", "Adam", {"learning_rate": 0.01}),
    ("adam_amsgrad", "Adam", {"learning_rate": 0.01, "amsgrad": True}),
    ("adamw", "AdamW", {"learning_rate": 0.01}),
    ("nadam", "Nadam", {"learning_rate": 0.01}),
    ("adamax", "Adamax", {"learning_rate": 0.01}),
    ("adagrad", "Adagrad", {"learning_rate": 0.1}),
    ("adadelta", "Adadelta", {"learning_rate": 1.0}),
    ("lion", "Lion", {"learning_rate": 0.01}),
    ("rmsprop", "RMSprop", {"learning_rate": 0.01}),
    ("rmsprop_centered_momentum", "RMSprop",
     {"learning_rate": 0.01, "centered": True, "momentum": 0.5}),
    ("adam_weight_decay", "Adam", {"learning_rate": 0.01, "weight_decay": 0.1}),
    ("sgd_clipnorm", "SGD", {"learning_rate": 0.1, "clipnorm": 0.5}),
    ("sgd_global_clipnorm", "SGD", {"learning_rate": 0.1, "global_clipnorm": 0.5}),
    ("sgd_clipvalue", "SGD", {"learning_rate": 0.1, "clipvalue": 0.3}),
    ("adam_ema", "Adam", {"learning_rate": 0.01, "use_ema": True, "ema_momentum": 0.9}),
    ("sgd_ema_overwrite", "SGD", {"learning_rate": 0.1, "use_ema": True, "ema_momentum": 0.5,
                                  "ema_overwrite_frequency": 2}),
    ("sgd_schedule", "SGD", {"learning_rate": "SCHEDULE"}),
]


def main():
    rng = np.random.default_rng(2026)
    weights = [rng.standard_normal((3, 4)).astype(np.float32),
               rng.standard_normal(5).astype(np.float32)]
    grads = [[rng.standard_normal(w.shape).astype(np.float32) for w in weights]
             for _ in range(5)]
    out = {"w0": weights[0], "w1": weights[1]}
    for k, step in enumerate(grads):
        out[f"g{k}_0"], out[f"g{k}_1"] = step
    for name, cls, config in CASES:
        cfg = dict(config)
        if cfg.get("learning_rate") == "SCHEDULE":
            cfg["learning_rate"] = keras.optimizers.schedules.ExponentialDecay(
                **SCHEDULE["config"])
        opt = getattr(keras.optimizers, cls)(**cfg)
        variables = [keras.Variable(w.copy()) for w in weights]
        lrs = []
        for k, step in enumerate(grads):
            lrs.append(float(np.asarray(opt.learning_rate)))
            opt.apply_gradients(zip([keras.ops.convert_to_tensor(g) for g in step], variables))
            for i, v in enumerate(variables):
                out[f"{name}/step{k}_{i}"] = np.asarray(v.value)
        if cfg.get("use_ema"):
            opt.finalize_variable_values(variables)
            for i, v in enumerate(variables):
                out[f"{name}/final_{i}"] = np.asarray(v.value)
        out[f"{name}/lr"] = np.array(lrs)
    out["cases"] = np.array(json.dumps([[n, c, cfg] for n, c, cfg in CASES] + [SCHEDULE]))
    out["keras_version"] = np.array(keras.__version__)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    path = os.path.join(root, "tests", "data", "keras3_optimizers.npz")
    np.savez_compressed(path, **out)
    print(f"wrote {len(CASES)} cases to {path}")


if __name__ == "__main__":
    main()
