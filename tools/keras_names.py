"""Write the public names of Keras 3's user-facing modules to fastconv/data/keras3_names.txt.

Run with an interpreter that has Keras 3 (any backend), from the repository root:

    KERAS_BACKEND=jax python tools/keras_names.py

The list is what `python -m fastconv keras-coverage` and docs/keras-compatibility.md
compare fastconv.keras with. fastconv itself never imports Keras.
"""

import datetime
import os
import sys

import keras

MODULES = ["keras", "keras.layers", "keras.models", "keras.optimizers",
           "keras.optimizers.schedules", "keras.losses", "keras.metrics", "keras.callbacks",
           "keras.activations", "keras.initializers", "keras.regularizers",
           "keras.constraints", "keras.utils", "keras.datasets"]


def public_names(module_name):
    module = sys.modules.get(module_name) or __import__(module_name, fromlist=["_"])
    names = []
    for name in dir(module):
        if name.startswith("_"):
            continue
        value = getattr(module, name)
        if type(value).__name__ == "module":
            # submodules are listed as modules of their own, or not at all, except the
            # data sets, each a module with load_data
            if module_name == "keras.datasets" and hasattr(value, "load_data"):
                names.append(f"{name}.load_data")
            continue
        names.append(name)
    return sorted(names)


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = os.path.join(root, "fastconv", "data", "keras3_names.txt")
    lines = [f"# Public names of Keras {keras.__version__}'s modules (functions, classes,",
             "# constants; submodules left out, but for keras.datasets.*.load_data),",
             f"# from dir() of each module, by tools/keras_names.py on "
             f"{datetime.date.today().isoformat()}.",
             "# One module.name per line."]
    for module in MODULES:
        lines += [f"{module}.{name}" for name in public_names(module)]
    with open(out, "w") as f:
        f.write("\n".join(lines) + "\n")
    print(f"wrote {len(lines) - 4} names to {out}")


if __name__ == "__main__":
    main()
