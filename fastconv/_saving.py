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

import contextlib
import io
import json
import os
import tempfile
import warnings
import zipfile
import zlib
from typing import Any, Dict, List, Optional, Tuple

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
        # mkstemp makes the file private (0600); give it the mode an ordinary write
        # would have: the replaced file's, or 0666 less the umask.
        try:
            mode = os.stat(path).st_mode & 0o777
        except OSError:
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask
        os.chmod(tmp, mode)
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
    return [{"name": f"{layer.name}/{name}", "shape": list(arr.shape), "dtype": arr.dtype.name}
            for layer, name, arr in model._weight_items()]


# -- classes by name ---------------------------------------------------------------------
_REGISTRY: Dict[str, type] = {}


def register_keras_serializable(package: str = "Custom", name: Optional[str] = None):
    """Class decorator (Keras: ``keras.saving.register_keras_serializable``): saved models
    refer to the class as ``"package>name"`` and :func:`load_model` finds it again.

    The class must rebuild itself from ``cls.from_config(obj.get_config())``.
    """
    if not isinstance(package, str):
        raise TypeError(f"package must be a string. Received: package={package!r}")

    def decorate(cls):
        key = f"{package}>{name or cls.__name__}"
        _REGISTRY[key] = cls
        cls._registered_name = key
        return cls

    return decorate


def class_name_of(obj) -> str:
    """The name a saved config gives ``obj``'s class."""
    from .models import Model, Sequential

    registered = type(obj).__dict__.get("_registered_name")
    if registered:
        return registered
    if type(obj) is Sequential:
        return "Sequential"
    if type(obj) is Model:
        return "Functional"
    return type(obj).__name__


def _class_for(class_name: str, custom_objects: Optional[dict]) -> type:
    from . import layers
    from .models import Model, Sequential

    if custom_objects and class_name in custom_objects:
        return custom_objects[class_name]
    if class_name in _REGISTRY:
        return _REGISTRY[class_name]
    short = class_name.split(">")[-1]
    if custom_objects and short in custom_objects:
        return custom_objects[short]
    if class_name == "Sequential":
        return Sequential
    if class_name in ("Functional", "Model"):
        return Model
    try:
        return layers.get_layer_class(class_name)
    except ValueError:
        raise ValueError(
            f"Unknown class {class_name!r} in the saved model. A custom layer or model must "
            "be registered with @keras.saving.register_keras_serializable() (or passed in "
            "load_model(..., custom_objects={...})) before loading.") from None


def layer_from_config(item: dict, custom_objects: Optional[dict] = None):
    """A layer (or model) from ``{"class_name": ..., "config": ...}``."""
    from .models import Model

    if not isinstance(item, dict) or not isinstance(item.get("class_name"), str):
        raise ValueError(f"a layer entry must be a dict with a class_name; found {item!r}")
    cls = _class_for(item["class_name"], custom_objects)
    config = dict(item.get("config") or {})
    if isinstance(cls, type) and issubclass(cls, Model) and "layers" in config:
        return cls.from_config(config, custom_objects=custom_objects)
    return cls.from_config(config)


# -- functional graphs -------------------------------------------------------------------
def _op_config(op) -> dict:
    return {"op": type(op).__name__, "arity": list(op._arity), "config": op.get_config()}


def functional_config(model) -> dict:
    """A functional model's graph as JSON-able data: its layers with the nodes that call
    them (inputs named ``[layer, node, tensor]``), its input and output tensors."""
    graph = model._graph
    names: Dict[int, str] = {}
    for i, op in enumerate(graph.operations):
        names[id(op)] = op.name if not getattr(op, "_is_operation", False) \
            else f"__op_{i}_{op.name}"
    positions: Dict[int, Tuple[str, int]] = {}
    counts: Dict[int, int] = {}
    for node in graph.nodes:
        k = counts.get(id(node.layer), 0)
        counts[id(node.layer)] = k + 1
        positions[id(node)] = (names[id(node.layer)], k)

    def ref(t):
        layer, index, j = t._history
        node = layer._inbound_nodes[index]
        if node.is_input:
            return [layer.name, 0, j]
        name, k = positions[id(node)]
        return [name, k, j]

    entries: Dict[int, dict] = {}
    for op in graph.operations:
        if getattr(op, "_is_operation", False):
            entry = {"class_name": "Operation", "config": _op_config(op)}
        else:
            config = op.get_config()
            if not op._is_input_layer:
                config.pop("batch_input_shape", None)
            entry = {"class_name": class_name_of(op), "config": config}
        entry["name"] = names[id(op)]
        entry["inbound_nodes"] = []
        entries[id(op)] = entry
    order = []
    for node in graph.nodes:
        entries[id(node.layer)]["inbound_nodes"].append(
            {"args": [ref(t) for t in node.inputs], "list": node.structure is not None,
             "training": node.training})
        order.append(list(positions[id(node)]))
    return {"name": model.name, "trainable": model.trainable,
            "layers": [entries[id(op)] for op in graph.operations], "node_order": order,
            "input_layers": [ref(t) for t in graph.inputs],
            "output_layers": [ref(t) for t in graph.outputs],
            "outputs_structure": "list" if isinstance(model._outputs_struct, (list, tuple))
            else "single",
            "inputs_structure": "list" if isinstance(model._inputs_struct, (list, tuple))
            else "single"}


def functional_from_config(config: dict, custom_objects: Optional[dict] = None):
    """Rebuild a functional model from :func:`functional_config`'s data."""
    from . import operations
    from .layers import InputLayer
    from .models import Model

    layers: Dict[str, Any] = {}
    pending: Dict[str, list] = {}
    tensors: Dict[Tuple[str, int, int], Any] = {}
    for entry in config["layers"]:
        name = entry["name"]
        if entry["class_name"] == "Operation":
            layers[name] = ("op", entry["config"])
        else:
            layer = layer_from_config(entry, custom_objects)
            layers[name] = layer
            if isinstance(layer, InputLayer):
                tensors[(name, 0, 0)] = layer.output
        pending[name] = list(entry.get("inbound_nodes") or [])

    def get(r):
        key = (r[0], int(r[1]), int(r[2]))
        if key not in tensors:
            raise ValueError(f"the saved graph refers to a tensor {r} made nowhere before it")
        return tensors[key]

    for name, k in config["node_order"]:
        node = pending[name][k]
        args = [get(r) for r in node["args"]]
        target = layers[name]
        if isinstance(target, tuple):
            spec = target[1]
            op = getattr(operations, spec["op"])(**spec.get("config", {}))
            groups, i = [], 0
            for n in spec["arity"]:
                if n is None:
                    groups.append(args[i])
                    i += 1
                else:
                    groups.append(args[i:i + n])
                    i += n
            out = op(*groups)
        else:
            out = target(args if node["list"] else args[0], training=node.get("training"))
        outs = out if isinstance(out, list) else [out]
        for j, t in enumerate(outs):
            tensors[(name, int(k), j)] = t
    inputs = [get(r) for r in config["input_layers"]]
    outputs = [get(r) for r in config["output_layers"]]
    if config.get("inputs_structure") == "single" and len(inputs) == 1:
        inputs = inputs[0]
    if config.get("outputs_structure") == "single" and len(outputs) == 1:
        outputs = outputs[0]
    return Model(inputs, outputs, name=config.get("name"),
                 trainable=config.get("trainable", True))


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


def _model_info(model) -> dict:
    info = {"class_name": class_name_of(model), "config": model.get_config()}
    if not model._functional:
        info["build_input_shape"] = model._shape_built
    return info


def _keras_named(filepath, suffix: str) -> bool:
    return os.fspath(filepath).lower().endswith(suffix)


def _is_hdf5(filepath) -> bool:
    try:
        with open(os.fspath(filepath), "rb") as f:
            return f.read(8) == b"\x89HDF\r\n\x1a\n"
    except OSError:
        return False


def save_model(model, filepath, overwrite: bool = True) -> None:
    """Save ``model``: Keras 3's format when the name ends in ``.keras``, else fastconv's."""
    if _keras_named(filepath, ".keras"):
        from . import _keras_format

        return _keras_format.save_keras(model, filepath, overwrite=overwrite)
    model._require_built()
    header = {"format": "fastconv-model", "format_version": FORMAT_VERSION,
              "model": _model_info(model), "compile": _compile_config(model),
              "weights": _weight_entries(model)}
    _atomic_write(filepath, _pack(header, model.get_weights()), overwrite)


def save_weights(model, filepath, overwrite: bool = True) -> None:
    """Save the weights: Keras's HDF5 layout when the name ends in ``.h5``, else fastconv's."""
    if _keras_named(filepath, ".h5"):
        from . import _keras_format

        return _keras_format.save_weights_h5(model, filepath, overwrite=overwrite)
    model._require_built()
    header = {"format": "fastconv-weights", "format_version": FORMAT_VERSION,
              "weights": _weight_entries(model)}
    _atomic_write(filepath, _pack(header, model.get_weights()), overwrite)


# Limits of what a file may make this process allocate. DEFLATE cannot expand more
# than about 1032:1, so a member claiming more than that over its compressed size is a
# bomb, whatever its header says; the architecture JSON is small.
_MAX_RATIO = 1100
_MAX_JSON = 64 << 20


def _member(z: zipfile.ZipFile, name: str, what: str) -> bytes:
    """The bytes of member ``name``, read with a bound: the size its header declares,
    itself bounded by the compression ratio DEFLATE can reach."""
    info = z.getinfo(name)
    limit = info.file_size
    if limit > _MAX_RATIO * max(info.compress_size, 1) + 4096 or (
            name == _JSON and limit > _MAX_JSON):
        raise ValueError(f"{what}: member {name} declares {limit:,} bytes from "
                         f"{info.compress_size:,} compressed (a zip bomb, or a damaged file).")
    with z.open(info) as f:
        data = f.read(limit + 1)
    if len(data) != limit:
        raise ValueError(f"{what}: member {name} holds {len(data):,} bytes, its header says "
                         f"{limit:,}.")
    return data


def _safe_npz(npz_bytes: bytes, entries: list, what: str) -> List[np.ndarray]:
    """The arrays ``w0, w1, ...`` of an npz, each checked against its ``.npy`` header,
    its entry in the JSON and its member's declared size before anything is allocated."""
    weights = []
    with zipfile.ZipFile(io.BytesIO(npz_bytes)) as z:
        names = set(z.namelist())
        for i, entry in enumerate(entries):
            member = f"w{i}.npy"
            if member not in names:
                raise ValueError(f"{what}: its weights lack {member} ({entry['name']}).")
            raw = _member(z, member, what)
            f = io.BytesIO(raw)
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
            else:
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
            if dtype.hasobject or dtype.kind != "f":
                raise ValueError(f"{what}: weight {entry['name']} has dtype {dtype}; weights "
                                 "are float32 or float64.")
            if list(shape) != list(entry["shape"]) or dtype.name != entry.get("dtype",
                                                                             dtype.name):
                raise ValueError(f"{what}: weight {entry['name']} is {dtype} of shape "
                                 f"{tuple(shape)}, the header says {entry.get('dtype')} of "
                                 f"shape {tuple(entry['shape'])}.")
            count = int(np.prod(shape, dtype=np.int64))
            if count * dtype.itemsize != len(raw) - f.tell():
                raise ValueError(f"{what}: weight {entry['name']} should hold "
                                 f"{count * dtype.itemsize:,} bytes, its member holds "
                                 f"{len(raw) - f.tell():,}.")
            arr = np.frombuffer(raw, dtype=dtype, count=count, offset=f.tell())
            weights.append(arr.reshape(shape, order="F" if fortran else "C").copy())
    return weights


def _entries(header: Any, what: str) -> list:
    """The header's list of weights, checked for format and types."""
    if not isinstance(header, dict) or header.get("format") not in ("fastconv-model",
                                                                    "fastconv-weights"):
        raise ValueError(f"{what}: unknown format {header.get('format')!r}."
                         if isinstance(header, dict) else f"{what}: bad header.")
    if header.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{what}: format version {header.get('format_version')!r}, this "
                         f"fastconv reads version {FORMAT_VERSION}.")
    entries = header.get("weights")
    if not isinstance(entries, list) or not all(
            isinstance(e, dict) and isinstance(e.get("name"), str)
            and isinstance(e.get("shape"), list) and len(e["shape"]) <= 32
            and all(isinstance(d, int) and not isinstance(d, bool) and 0 <= d < 2**40
                    for d in e["shape"]) for e in entries):
        raise ValueError(f"{what}: its list of weights is damaged.")
    return entries


@contextlib.contextmanager
def zip_errors(what: str, json_member: str):
    """Turn what zipfile, zlib and json raise on a damaged archive into one ValueError
    that starts with ``what``."""
    try:
        yield
    except zipfile.BadZipFile as e:
        raise ValueError(f"{what} (not a zip archive, truncated or corrupt: {e}).") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{what}: its {json_member} is not valid JSON ({e}).") from None
    except (OSError, EOFError, zlib.error, NotImplementedError) as e:
        raise ValueError(f"{what} (truncated or corrupt: {e}).") from None


def _read(filepath):
    path = os.fspath(filepath)
    if not os.path.exists(path):
        raise FileNotFoundError(f"No such file: {path!r}")
    what = f"{path!r} is not a readable fastconv model file"
    with zip_errors(what, _JSON), zipfile.ZipFile(path) as z:
        names = set(z.namelist())
        if _JSON not in names or _NPZ not in names:
            raise ValueError(f"{what}: it is a zip archive without {_JSON} and {_NPZ}.")
        header = json.loads(_member(z, _JSON, what).decode("utf-8"))
        entries = _entries(header, what)
        # The weights may take what their entries declare, and the npz's own bytes.
        declared = sum(8 * int(np.prod(e["shape"], dtype=np.int64)) + 1024
                       for e in entries) + 1024
        if z.getinfo(_NPZ).file_size > declared:
            raise ValueError(f"{what}: {_NPZ} declares {z.getinfo(_NPZ).file_size:,} "
                             f"bytes for weights that take at most {declared:,}.")
        npz_bytes = _member(z, _NPZ, what)
    try:
        weights = _safe_npz(npz_bytes, entries, what)
    except ValueError:
        raise
    except Exception as e:  # a damaged npz inside: zipfile and numpy raise several types
        raise ValueError(f"{what}: its weights cannot be read ({type(e).__name__}: {e}).") \
            from None
    bad = [e["name"] for e, w in zip(entries, weights) if not np.isfinite(w).all()]
    if bad:
        warnings.warn(f"{path!r}: weights {', '.join(bad)} hold NaN or inf values; the model "
                      "loads, but its outputs will be NaN where they are used.",
                      RuntimeWarning, stacklevel=3)
    return header, weights


def load_model(filepath, compile: bool = True, custom_objects: Optional[dict] = None):
    from . import _keras_format, losses, optimizers
    from .models import Model

    # By content, not by name: fastconv 0.1 wrote its own zip under ".keras" names.
    if _keras_format.is_keras_archive(filepath):
        return _keras_format.load_keras(filepath, compile=compile)
    header, weights = _read(filepath)
    if header["format"] != "fastconv-model":
        raise ValueError(f"{os.fspath(filepath)!r} holds only weights (saved by save_weights); "
                         "build the model in code and call model.load_weights(path).")
    model_info = header.get("model", {})
    if not isinstance(model_info, dict) or not isinstance(model_info.get("class_name"), str):
        raise ValueError(f"{os.fspath(filepath)!r} has no model architecture.")
    try:
        model = layer_from_config(model_info, custom_objects)
    except (KeyError, TypeError, IndexError, AttributeError) as e:
        raise ValueError(f"{os.fspath(filepath)!r} has a damaged architecture ({e}).") from None
    if not isinstance(model, Model):
        raise ValueError(f"Unknown model class {model_info.get('class_name')!r}.")
    if not model.built and model_info.get("build_input_shape") is not None:
        shape = model_info["build_input_shape"]
        model.build([tuple(s) for s in shape] if shape and isinstance(shape[0], list)
                    else tuple(shape))
    if not model.built:
        raise ValueError(f"{os.fspath(filepath)!r}: the saved model has no input shape.")
    model.set_weights(weights)
    if compile and header.get("compile"):
        c = header["compile"]
        model.compile(optimizer=optimizers.get(c["optimizer"]), loss=losses.get(c["loss"]),
                      metrics=c.get("metrics") or None)
    return model


def load_weights(model, filepath) -> None:
    if _is_hdf5(filepath):
        from . import _keras_format

        return _keras_format.load_weights_h5(model, filepath)
    header, weights = _read(filepath)
    model._require_built()
    mine = model.weights
    if len(weights) != len(mine):
        raise ValueError(f"{os.fspath(filepath)!r} holds {len(weights)} weight arrays; model "
                         f"'{model.name}' has {len(mine)}.")
    model.set_weights(weights)
