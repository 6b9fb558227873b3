"""fastconv's model file format: safe, documented, and written atomically.

A file is a zip archive with two members:

``fastconv.json``
    UTF-8 JSON: ``{"format": "fastconv-model" | "fastconv-weights", "format_version": 1,
    "model": {"class_name": "Sequential", "config": ...} (models only),
    "compile": {"optimizer": ..., "loss": ..., "metrics": [...]} or null,
    "weights": [{"name": "layer/weight", "shape": [...], "dtype": "float32"}, ...]}``.
``weights.npz``
    NumPy ``.npz`` with arrays ``w0, w1, ...`` in the order of ``"weights"``, which is
    ``model.get_weights()`` order.

Loading reads JSON and ``np.load(..., allow_pickle=False)`` only, and builds layers
from a fixed list of fastconv classes: no pickle, no code from the file is run.
Optimizer state is not saved; a loaded model starts its optimizer afresh.
Writing goes to a temporary file in the target's directory, which then replaces the
target with ``os.replace``, so a crash never leaves a half-written file in its place.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
import zipfile
from typing import Any, Dict, List

import numpy as np

FORMAT_VERSION = 1
_JSON, _NPZ = "fastconv.json", "weights.npz"


def _atomic_write(filepath, data: bytes, overwrite: bool) -> None:
    path = os.fspath(filepath)
    if not overwrite and os.path.exists(path):
        raise FileExistsError(f"{path!r} exists and overwrite=False")
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".fastconv-", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _weight_entries(model) -> List[Dict[str, Any]]:
    return [{"name": f"{layer.name}/{name}", "shape": list(getattr(layer, name).shape),
             "dtype": getattr(layer, name).dtype.name}
            for layer in model.layers for name in layer._weight_names]


def _pack(header: dict, weights: List[np.ndarray]) -> bytes:
    npz = io.BytesIO()
    np.savez(npz, **{f"w{i}": w for i, w in enumerate(weights)})
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr(_JSON, json.dumps(header, indent=1))
        z.writestr(_NPZ, npz.getvalue())
    return out.getvalue()


def _compile_config(model):
    from . import losses, optimizers

    if model.loss is None:
        return None
    try:
        return {"optimizer": optimizers.serialize(model.optimizer),
                "loss": losses.serialize(model.loss),
                "metrics": [m for m in model._metric_ids if isinstance(m, str)]}
    except ValueError:
        return None  # a custom loss or optimizer: the model loads uncompiled


def save_model(model, filepath, overwrite: bool = True) -> None:
    model._require_built()
    header = {"format": "fastconv-model", "format_version": FORMAT_VERSION,
              "model": {"class_name": "Sequential", "config": model.get_config()},
              "compile": _compile_config(model), "weights": _weight_entries(model)}
    _atomic_write(filepath, _pack(header, model.get_weights()), overwrite)


def save_weights(model, filepath, overwrite: bool = True) -> None:
    model._require_built()
    header = {"format": "fastconv-weights", "format_version": FORMAT_VERSION,
              "weights": _weight_entries(model)}
    _atomic_write(filepath, _pack(header, model.get_weights()), overwrite)


def _read(filepath):
    path = os.fspath(filepath)
    if not os.path.exists(path):
        raise FileNotFoundError(f"No such file: {path!r}")
    what = f"{path!r} is not a readable fastconv model file"
    try:
        with zipfile.ZipFile(path) as z:
            names = set(z.namelist())
            if _JSON not in names or _NPZ not in names:
                raise ValueError(f"{what}: it is a zip archive without {_JSON} and {_NPZ}.")
            header = json.loads(z.read(_JSON).decode("utf-8"))
            npz_bytes = z.read(_NPZ)
    except zipfile.BadZipFile as e:
        raise ValueError(f"{what} (not a zip archive, truncated or corrupt: {e}).") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{what}: its {_JSON} is not valid JSON ({e}).") from None
    except (OSError, EOFError) as e:
        raise ValueError(f"{what} (truncated or corrupt: {e}).") from None
    if not isinstance(header, dict) or header.get("format") not in ("fastconv-model",
                                                                    "fastconv-weights"):
        raise ValueError(f"{what}: unknown format {header.get('format')!r}."
                         if isinstance(header, dict) else f"{what}: bad header.")
    if header.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{what}: format version {header.get('format_version')!r}, this "
                         f"fastconv reads version {FORMAT_VERSION}.")
    entries = header.get("weights")
    try:
        with np.load(io.BytesIO(npz_bytes), allow_pickle=False) as npz:
            weights = [npz[f"w{i}"] for i in range(len(entries))]
    except Exception as e:  # numpy raises several types for a damaged npz
        raise ValueError(f"{what}: its weights cannot be read ({type(e).__name__}: {e}).") \
            from None
    for entry, w in zip(entries, weights):
        if list(w.shape) != list(entry["shape"]):
            raise ValueError(f"{what}: weight {entry['name']} has shape {w.shape}, the header "
                             f"says {tuple(entry['shape'])}.")
    return header, weights


def load_model(filepath, compile: bool = True):
    from . import losses, optimizers
    from .models import Sequential

    header, weights = _read(filepath)
    if header["format"] != "fastconv-model":
        raise ValueError(f"{os.fspath(filepath)!r} holds only weights (saved by save_weights); "
                         "build the model in code and call model.load_weights(path).")
    model_info = header.get("model", {})
    if model_info.get("class_name") != "Sequential":
        raise ValueError(f"Unknown model class {model_info.get('class_name')!r}.")
    try:
        model = Sequential.from_config(model_info["config"])
    except (KeyError, TypeError) as e:
        raise ValueError(f"{os.fspath(filepath)!r} has a damaged architecture ({e}).") from None
    if not model.built:
        raise ValueError(f"{os.fspath(filepath)!r}: the saved model has no input shape.")
    model.set_weights(weights)
    if compile and header.get("compile"):
        c = header["compile"]
        model.compile(optimizer=optimizers.get(c["optimizer"]), loss=losses.get(c["loss"]),
                      metrics=c.get("metrics") or None)
    return model


def load_weights(model, filepath) -> None:
    header, weights = _read(filepath)
    model._require_built()
    mine = model.weights
    if len(weights) != len(mine):
        raise ValueError(f"{os.fspath(filepath)!r} holds {len(weights)} weight arrays; model "
                         f"'{model.name}' has {len(mine)}.")
    model.set_weights(weights)
