"""Keras 3's native files: ``.keras`` archives and ``.weights.h5`` weights.

A ``.keras`` file is a zip archive with three members:

``config.json``
    ``{"module": "keras", "class_name": "Sequential" | "Functional", "config": {...},
    "registered_name": null, "build_config": {...}, "compile_config": {...}}``: each layer
    as ``{"module", "class_name", "config", "registered_name"}``, and in a functional
    model its ``inbound_nodes``, whose arguments name tensors by
    ``keras_history = [layer, node, tensor]``.
``metadata.json``
    ``{"keras_version": ..., "date_saved": ...}``.
``model.weights.h5``
    HDF5. The weights of a layer are the datasets ``<path>/vars/0, 1, ...`` in the
    layer's weight order, where ``<path>`` is ``layers/<name>`` and ``<name>`` is the
    snake-case *class* name of the layer made unique in the order of ``model.layers``
    (``conv2d``, ``conv2d_1``, ...), not the layer's own name. A nested model's layers sit
    under ``<path>/layers/``. ``optimizer/vars/0, 1, ...`` hold the optimizer's state
    in Keras's order (:meth:`fastconv.optimizers.Optimizer.keras_variables`): written
    for a compiled model, and read into the loaded model's optimizer, so that
    training goes on where it stopped; a file whose optimizer variables do not fit
    the optimizer is loaded with a fresh optimizer and a warning, as Keras does.

Keras's configs map to fastconv's through :data:`KERAS_LAYERS`: one entry per layer
class, a function from Keras's config to fastconv's, by default the identity when the
keys already are fastconv's. Keras keys fastconv lacks are dropped only when they hold
the value that changes nothing (:data:`_NEUTRAL`); any other value is an error naming
the layer and the key, never a silently different model.

Reading parses JSON and HDF5 datasets of floats only (h5py, the ``keras`` extra): no
pickle, no code from the file. Each member's declared size is checked before it is
read, and each dataset's shape and dtype before its data is.
"""

from __future__ import annotations

import datetime
import inspect
import io
import json
import os
import re
import warnings
import zipfile
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np

from ._names import snake_case

_CONFIG, _METADATA, _WEIGHTS = "config.json", "metadata.json", "model.weights.h5"
KERAS_VERSION = "3.15.1"  # the version written in metadata.json; the format is Keras 3's

# Keras config keys fastconv has no argument for, with the value that makes them
# inert. ``any`` marks a key that means nothing while its switch is off (renorm_momentum
# without renorm) or that fastconv does not need (a name of an optimizer).
_ANY = object()
_NEUTRAL: Dict[str, Any] = {
    "activity_regularizer": None, "kernel_constraint": None, "bias_constraint": None,
    "beta_constraint": None, "gamma_constraint": None, "groups": 1, "synchronized": False,
    "renorm": False, "renorm_clipping": None, "renorm_momentum": _ANY,
    "quantization_config": None, "lora_rank": None, "lora_alpha": _ANY, "ragged": False,
    "optional": False, "sparse": False, "registered_name": _ANY, "module": _ANY,
    "name": _ANY,
    # optimizers
    "weight_decay": None, "clipnorm": None, "global_clipnorm": None, "clipvalue": None,
    "use_ema": False, "ema_momentum": _ANY, "ema_overwrite_frequency": None,
    "loss_scale_factor": None, "gradient_accumulation_steps": None, "amsgrad": False,
    # losses
    "reduction": "sum_over_batch_size", "ignore_class": None, "axis": -1,
    # initializers
    "input_axes": None, "output_axes": None,
}


def _identity(config: dict) -> dict:
    return config


# One entry per Keras layer class fastconv builds: Keras's config -> fastconv's. Extend
# it when a layer's keys differ from Keras's; a class fastconv has whose keys are Keras's
# needs no entry (it is found by name).
KERAS_LAYERS: Dict[str, Callable[[dict], dict]] = {
    "InputLayer": _identity,
    "Conv2D": _identity,
    "Dense": _identity,
    "BatchNormalization": _identity,
    "MaxPooling2D": _identity,
    "AveragePooling2D": _identity,
    "GlobalAveragePooling2D": _identity,
    "GlobalMaxPooling2D": _identity,
    "Flatten": _identity,
    "Dropout": _identity,
    "Activation": _identity,
    "ReLU": _identity,
    "LeakyReLU": _identity,
    "ELU": _identity,
    "Softmax": _identity,
    "Add": _identity,
    "Subtract": _identity,
    "Multiply": _identity,
    "Average": _identity,
    "Maximum": _identity,
    "Minimum": _identity,
    "Concatenate": _identity,
    "Rescaling": _identity,
    # The layers added since: their configs use Keras's keys. Round trips through a
    # .keras file are tested (tests/test_keras_files.py); Keras 3.15 loads fastconv's
    # files of them and predicts the same to 6e-8 (tools/check_keras_loads_layers.py),
    # except RandomCrop in inference (fastconv crops the centre, Keras does not).
    "Conv1D": _identity,
    "Conv2DTranspose": _identity,
    "DepthwiseConv2D": _identity,
    "SeparableConv2D": _identity,
    "MaxPooling1D": _identity,
    "AveragePooling1D": _identity,
    "GlobalAveragePooling1D": _identity,
    "GlobalMaxPooling1D": _identity,
    "ZeroPadding2D": _identity,
    "Cropping2D": _identity,
    "UpSampling2D": _identity,
    "Reshape": _identity,
    "Permute": _identity,
    "LayerNormalization": _identity,
    "GroupNormalization": _identity,
    "SpatialDropout2D": _identity,
    "GaussianNoise": _identity,
    "GaussianDropout": _identity,
    "ActivityRegularization": _identity,
    "Resizing": _identity,
    "CenterCrop": _identity,
    "RandomCrop": _identity,
    "RandomFlip": _identity,
    "RandomRotation": _identity,
    "RandomTranslation": _identity,
    "RandomZoom": _identity,
    "RandomContrast": _identity,
    "RandomBrightness": _identity,
}


def _need_h5py():
    try:
        import h5py
    except ImportError:  # pragma: no cover - the keras extra is installed in CI
        raise ImportError("Keras's .keras and .weights.h5 files need h5py: "
                          "pip install 'fastconv[keras]' (or pip install h5py).") from None
    return h5py


def _weight_paths(model, prefix: str = "layers") -> List[Tuple[Any, str]]:
    """``(layer, h5 path)`` of every layer of ``model`` (nested models' layers too), as
    Keras names them: snake-case class names, numbered in ``model.layers`` order."""
    from .models import Model

    used: Dict[str, int] = {}
    out = []
    for layer in model.layers:
        base = snake_case(type(layer).__name__ if not isinstance(layer, Model) or
                          type(layer).__name__ != "Model" else "Functional")
        k = used.get(base)
        used[base] = 0 if k is None else k + 1
        name = base if k is None else f"{base}_{k + 1}"
        path = f"{prefix}/{name}"
        out.append((layer, path))
        if isinstance(layer, Model):
            out.extend(_weight_paths(layer, f"{path}/layers"))
    return out


# -- Keras config -> fastconv objects ----------------------------------------------------
def _accepted(cls) -> Optional[set]:
    """The keyword arguments ``cls`` takes (with Layer's when it passes ``**kwargs`` on)."""
    from .layers import Layer

    names, open_kwargs = set(), False
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        params = inspect.signature(init).parameters
        names.update(n for n, p in params.items()
                     if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL) and n != "self")
        open_kwargs = any(p.kind == p.VAR_KEYWORD for p in params.values())
        if not open_kwargs or klass is Layer:
            break
    return names


def _adapt(config: dict, cls, what: str) -> dict:
    """``config`` with the keys ``cls`` takes; Keras keys fastconv lacks are dropped when
    they hold their inert value, any other is a ValueError naming it."""
    accepted = _accepted(cls)
    out = {}
    for key, value in config.items():
        if key in accepted:
            out[key] = value
            continue
        neutral = _NEUTRAL.get(key, KeyError)
        if neutral is _ANY or (neutral is not KeyError and value == neutral):
            continue
        raise ValueError(f"{what}: fastconv's {cls.__name__} has no argument {key!r} "
                         f"(the file sets {key}={value!r}); it cannot be loaded as saved.")
    return out


def _plain(obj: dict, what: str) -> dict:
    """A Keras serialised object (initializer, regularizer, schedule) as fastconv's
    ``{"class_name", "config"}``, checked against fastconv's class when there is one."""
    from . import initializers, regularizers

    if not isinstance(obj.get("class_name"), str) or not isinstance(obj.get("config", {}),
                                                                     dict):
        raise ValueError(f"{what}: a serialised object must have a class_name and a config "
                         f"dict; found {obj!r}")
    config = dict(obj.get("config") or {})
    for module in (initializers, regularizers):
        cls = getattr(module, obj["class_name"], None)
        if isinstance(cls, type):
            config = _adapt(config, cls, f"{what} ({obj['class_name']})")
            break
    return {"class_name": obj["class_name"], "config": config}


def _layer_config(class_name: str, config: dict, what: str):
    from .layers import get_layer_class

    try:
        cls = get_layer_class(class_name)
    except ValueError:
        raise ValueError(f"{what}: the Keras layer class {class_name!r} is not in fastconv, "
                         "so this model cannot be loaded.") from None
    config = dict(KERAS_LAYERS.get(class_name, _identity)(dict(config)))
    dtype = config.get("dtype")
    if isinstance(dtype, dict):  # a DTypePolicy: fastconv keeps only its variable dtype
        name = (dtype.get("config") or {}).get("name")
        if name not in ("float32", "float64"):
            raise ValueError(f"{what}: dtype policy {name!r}; fastconv computes in float32 "
                             "or float64.")
        config["dtype"] = name
    for key, value in list(config.items()):
        if isinstance(value, dict) and "class_name" in value:
            config[key] = _plain(value, f"{what}, {key}")
    return cls, _adapt(config, cls, f"{what} ({class_name})")


def _checked(entry: Any, what: str) -> dict:
    if not isinstance(entry, dict) or not isinstance(entry.get("class_name"), str) \
            or not isinstance(entry.get("config"), dict):
        raise ValueError(f"{what}: a layer entry must be a dict with a class_name and a "
                         f"config dict; found {str(entry)[:200]}")
    return entry


def model_from_keras(entry: dict, what: str):
    """A fastconv model (or layer) from one entry of Keras's config.json."""
    entry = _checked(entry, what)
    name = entry["class_name"]
    if name == "Sequential":
        return _sequential_from_keras(entry, what)
    if name in ("Functional", "Model"):
        return _functional_from_keras(entry["config"], what)
    cls, config = _layer_config(name, entry["config"], f"{what}, layer "
                                f"{entry['config'].get('name')!r}")
    return cls(**config)


def _shape(value: Any, what: str) -> Optional[tuple]:
    if value is None:
        return None
    if not isinstance(value, list) or not all(
            d is None or (isinstance(d, int) and not isinstance(d, bool) and 0 < d < 2**31)
            for d in value):
        raise ValueError(f"{what}: a shape must be a list of positive ints or nulls; "
                         f"found {value!r}")
    return tuple(value)


def _sequential_from_keras(entry: dict, what: str):
    from .models import Sequential

    config = entry["config"]
    layers = config.get("layers")
    if not isinstance(layers, list):
        raise ValueError(f"{what}: a Sequential config needs a list of layers.")
    model = Sequential(name=config.get("name"))
    for item in layers:
        model.add(model_from_keras(item, what))
    if not model.built:
        shape = config.get("build_input_shape") or (entry.get("build_config") or {}).get(
            "input_shape")
        if shape is not None:
            model.build(_shape(shape, f"{what}, build_input_shape"))
    return model


def _history(ref: Any, what: str) -> Tuple[str, int, int]:
    if isinstance(ref, dict) and ref.get("class_name") == "__keras_tensor__":
        ref = (ref.get("config") or {}).get("keras_history")
    if not (isinstance(ref, list) and len(ref) == 3 and isinstance(ref[0], str)
            and all(isinstance(i, int) and not isinstance(i, bool) for i in ref[1:])):
        raise ValueError(f"{what}: a tensor must be named [layer, node, index]; "
                         f"found {str(ref)[:200]}")
    return ref[0], ref[1], ref[2]


def _refs(value: Any) -> bool:
    """Whether ``value`` is a list of tensor names rather than one."""
    return isinstance(value, list) and bool(value) and isinstance(value[0], (list, dict)) and \
        not (isinstance(value[0], dict) and value[0].get("class_name") != "__keras_tensor__")


def _functional_from_keras(config: dict, what: str):
    from .layers import InputLayer
    from .models import Model

    entries = config.get("layers")
    if not isinstance(entries, list):
        raise ValueError(f"{what}: a functional config needs a list of layers.")
    layers: Dict[str, Any] = {}
    tensors: Dict[Tuple[str, int, int], Any] = {}
    pending: List[Tuple[str, int, dict]] = []
    for entry in entries:
        entry = _checked(entry, what)
        name = entry.get("name", entry["config"].get("name"))
        layer = model_from_keras(entry, what)
        layers[name] = layer
        if isinstance(layer, InputLayer):
            tensors[(name, 0, 0)] = layer.output
        nodes = entry.get("inbound_nodes") or []
        if not isinstance(nodes, list):
            raise ValueError(f"{what}: layer {name!r} has inbound_nodes that are not a list.")
        pending.extend((name, k, node) for k, node in enumerate(nodes))

    def resolve(ref):
        return tensors.get(_history(ref, what))

    # Nodes run once all their inputs exist (Keras's order of layers need not be the
    # order of calls when a layer is shared).
    while pending:
        progressed, rest = False, []
        for name, k, node in pending:
            if not isinstance(node, dict) or not isinstance(node.get("args", []), list):
                raise ValueError(f"{what}: layer {name!r} has a damaged node {str(node)[:200]}")
            args = node.get("args") or []
            if len(args) != 1:
                raise ValueError(f"{what}: layer {name!r} is called with {len(args)} "
                                 "positional arguments; fastconv's layers take one.")
            kwargs = {k2: v for k2, v in (node.get("kwargs") or {}).items()
                      if not (k2 in ("mask", "training") and v in (None, False))}
            if kwargs:
                raise ValueError(f"{what}: layer {name!r} is called with arguments "
                                 f"{sorted(kwargs)} fastconv does not take.")
            many = _refs(args[0])
            inputs = [resolve(r) for r in args[0]] if many else [resolve(args[0])]
            if any(t is None for t in inputs):
                rest.append((name, k, node))
                continue
            out = layers[name](inputs if many else inputs[0])
            for j, t in enumerate(out if isinstance(out, list) else [out]):
                tensors[(name, k, j)] = t
            progressed = True
        if not progressed:
            raise ValueError(f"{what}: the graph refers to tensors no layer makes "
                             f"(layers {sorted({p[0] for p in rest})}).")
        pending = rest

    def ends(value, key):
        if value is None:
            raise ValueError(f"{what}: a functional config needs {key}.")
        many = isinstance(value, list) and value and isinstance(value[0], list)
        found = [tensors.get(_history(r, what)) for r in (value if many else [value])]
        if any(t is None for t in found):
            raise ValueError(f"{what}: {key} names a tensor no layer makes: {value!r}")
        return found if many else found[0]

    return Model(ends(config.get("input_layers"), "input_layers"),
                 ends(config.get("output_layers"), "output_layers"), name=config.get("name"),
                 trainable=config.get("trainable", True))


def _object_from_keras(module, item: dict, kind: str, what: str):
    """A fastconv optimizer or loss from Keras's serialised one."""
    cls = getattr(module, str(item.get("class_name")), None)
    if not isinstance(cls, type) or not isinstance(item.get("config", {}), dict):
        raise ValueError(f"{what}: the Keras {kind} {item.get('class_name')!r} is not in "
                         "fastconv; load with compile=False and compile again.")
    return cls(**_adapt(dict(item.get("config") or {}), cls, f"{what}, {kind}"))


def _compile_from_keras(model, compile_config: Any, what: str) -> None:
    from . import losses, optimizers

    if not isinstance(compile_config, dict):
        return
    opt, loss = compile_config.get("optimizer"), compile_config.get("loss")
    if isinstance(opt, dict):
        opt = _object_from_keras(optimizers, opt, "optimizer", what)
    if isinstance(loss, dict):
        loss = _object_from_keras(losses, loss, "loss", what)
    if opt is None or loss is None:
        return
    metrics = compile_config.get("metrics")
    metrics = [m for m in metrics if isinstance(m, str)] if isinstance(metrics, list) else None
    model.compile(optimizer=opt, loss=loss, metrics=metrics or None)


# -- HDF5 weights ------------------------------------------------------------------------
def _read_h5_weights(model, h5, what: str) -> None:
    """Copy the datasets ``<path>/vars/i`` of the open h5 file into ``model``'s layers;
    every count, shape and dtype is checked before any weight changes."""
    h5py = _need_h5py()
    new = []
    for layer, path in _weight_paths(model):
        from .models import Model

        if isinstance(layer, Model):
            continue
        mine = layer.weights
        group = h5.get(f"{path}/vars") if path in h5 else None
        if group is not None and not isinstance(group, h5py.Group):
            raise ValueError(f"{what}: {path}/vars is not a group.")
        names = sorted(group.keys(), key=lambda s: (len(s), s)) if group is not None else []
        if names != [str(i) for i in range(len(mine))]:
            raise ValueError(f"{what}: layer {layer.name!r} ({type(layer).__name__}) has "
                             f"{len(mine)} weights; the file holds {len(names)} under "
                             f"{path}/vars.")
        for i, w in enumerate(mine):
            ds = group[str(i)]
            if not isinstance(ds, h5py.Dataset) or ds.dtype.kind != "f":
                raise ValueError(f"{what}: {path}/vars/{i} is not a float dataset.")
            if tuple(ds.shape) != tuple(w.shape):
                raise ValueError(f"{what}: {path}/vars/{i} has shape {tuple(ds.shape)}; layer "
                                 f"{layer.name!r} expects {tuple(w.shape)}.")
            new.append((w, np.asarray(ds[()], dtype=w.dtype)))
    for w, value in new:
        w[...] = value


def _optimizer_params(model) -> List[np.ndarray]:
    return [arr for _, _, arr in model._train_items()]


def _write_h5_optimizer(model, h5) -> None:
    """``optimizer/vars/i``: the compiled model's optimizer state in Keras's order."""
    vars_ = h5.create_group("optimizer").create_group("vars")
    opt = getattr(model, "optimizer", None)
    if opt is None or not hasattr(opt, "keras_variables"):
        return
    vars_.attrs["name"] = opt.name
    for i, v in enumerate(opt.keras_variables(_optimizer_params(model))):
        vars_.create_dataset(str(i), data=np.asarray(v))


def _read_h5_optimizer(model, h5, what: str) -> None:
    """Restore the model's optimizer from ``optimizer/vars``; a set that does not fit
    it leaves the optimizer fresh, with Keras's warning."""
    h5py = _need_h5py()
    opt = getattr(model, "optimizer", None)
    group = h5.get("optimizer/vars") if "optimizer" in h5 else None
    if opt is None or not hasattr(opt, "set_keras_variables") or not isinstance(
            group, h5py.Group) or not len(group):
        return
    names = sorted(group.keys(), key=lambda s: (len(s), s))
    params = _optimizer_params(model)
    expected = opt.keras_variables(params)
    problem = None
    if names != [str(i) for i in range(len(names))]:
        problem = f"its datasets are named {names[:4]}..., not 0, 1, ..."
    elif len(names) != len(expected):
        problem = (f"it has {len(expected)} variables whereas the saved optimizer has "
                   f"{len(names)} variables")
    else:
        for i, t in enumerate(expected):
            ds = group[str(i)]
            if not isinstance(ds, h5py.Dataset) or ds.dtype.kind not in "fiu":
                raise ValueError(f"{what}: optimizer/vars/{i} is not a numeric dataset.")
            if tuple(ds.shape) != t.shape:
                problem = (f"its variable {i} has shape {t.shape} whereas the saved one "
                           f"has {tuple(ds.shape)}")
                break
    if problem is not None:
        warnings.warn(f"Skipping variable loading for optimizer '{opt.name}', because "
                      f"{problem}.", stacklevel=3)
        return
    opt.set_keras_variables([np.asarray(group[str(i)][()]) for i in range(len(names))],
                            params)


def _write_h5_weights(model, h5) -> None:
    from .models import Model

    _write_h5_optimizer(model, h5)
    h5.create_group("vars")
    for layer, path in _weight_paths(model):
        group = h5.create_group(path)
        if isinstance(layer, Model):
            continue
        vars_ = group.create_group("vars")
        for i, w in enumerate(layer.weights):
            vars_.create_dataset(str(i), data=np.asarray(w))


def load_weights_h5(model, filepath) -> None:
    """``model.load_weights("x.weights.h5")``: Keras's HDF5 layout."""
    h5py = _need_h5py()
    model._require_built()
    what = f"{os.fspath(filepath)!r} is not a readable Keras weights file"
    try:
        with h5py.File(os.fspath(filepath), "r") as h5:
            _read_h5_weights(model, h5, what)
            _read_h5_optimizer(model, h5, what)
    except FileNotFoundError:
        raise
    except (OSError, RuntimeError, KeyError, TypeError) as e:  # h5py on damaged HDF5
        raise ValueError(f"{what} ({e}).") from None


def save_weights_h5(model, filepath, overwrite: bool = True) -> None:
    """``model.save_weights("x.weights.h5")`` in Keras's layout, written atomically."""
    from ._saving import _atomic_write

    model._require_built()
    _atomic_write(filepath, _h5_bytes(model), overwrite)


def _h5_bytes(model) -> bytes:
    h5py = _need_h5py()
    buf = io.BytesIO()
    with h5py.File(buf, "w") as h5:
        _write_h5_weights(model, h5)
    return buf.getvalue()


# -- .keras archives ---------------------------------------------------------------------
_MAX_CONFIG = 64 << 20


def is_keras_archive(filepath) -> bool:
    """Whether ``filepath`` is a zip archive holding Keras's ``config.json`` (rather than
    fastconv's own format, which older fastconv versions also saved as ``.keras``)."""
    try:
        with zipfile.ZipFile(os.fspath(filepath)) as z:
            return _CONFIG in z.namelist()
    except (zipfile.BadZipFile, OSError):
        return False


def _model_of(config: Any, what: str):
    """The built fastconv model of a parsed config.json."""
    from .models import Model

    if not isinstance(config, dict):
        raise ValueError(f"{what}: its {_CONFIG} is not a JSON object.")
    try:
        model = model_from_keras(config, what)
    except (KeyError, TypeError, IndexError, AttributeError) as e:
        raise ValueError(f"{what}: its architecture is damaged ({type(e).__name__}: {e}).") \
            from None
    if not isinstance(model, Model):
        raise ValueError(f"{what}: it holds a {config.get('class_name')!r}, not a model.")
    if not model.built:
        raise ValueError(f"{what}: the saved model has no input shape.")
    return model


def load_keras(filepath, compile: bool = True):
    """A fastconv model from Keras 3's ``.keras`` file ``filepath``."""
    from ._saving import _member, zip_errors

    h5py = _need_h5py()
    path = os.fspath(filepath)
    if not os.path.exists(path):
        raise FileNotFoundError(f"No such file: {path!r}")
    what = f"{path!r} is not a readable Keras model file"
    with zip_errors(what, _CONFIG), zipfile.ZipFile(path) as z:
        names = set(z.namelist())
        for member in (_CONFIG, _WEIGHTS):
            if member not in names:
                raise ValueError(f"{what}: it is a zip archive without {member}.")
        if z.getinfo(_CONFIG).file_size > _MAX_CONFIG:
            raise ValueError(f"{what}: its {_CONFIG} declares "
                             f"{z.getinfo(_CONFIG).file_size:,} bytes (a zip bomb?).")
        config = json.loads(_member(z, _CONFIG, what).decode("utf-8"))
        model = _model_of(config, what)
        # The weights, the optimizer's state (at most four arrays per weight: AMSGrad
        # with EMA) and HDF5's bookkeeping; a member declaring more is refused before
        # it is inflated.
        arrays = [w for _, _, w in model._weight_items()]
        limit = 6 * sum(w.nbytes for w in arrays) + 16384 * (len(arrays) + len(
            model.layers)) + (1 << 20)
        declared = z.getinfo(_WEIGHTS).file_size
        if declared > limit:
            raise ValueError(f"{what}: its {_WEIGHTS} declares {declared:,} bytes for "
                             f"weights that take at most {limit:,} (a zip bomb?).")
        weights = _member(z, _WEIGHTS, what)
    try:
        with h5py.File(io.BytesIO(weights), "r") as h5:
            _read_h5_weights(model, h5, what)
    except (OSError, RuntimeError, KeyError, TypeError) as e:  # h5py on damaged HDF5
        raise ValueError(f"{what}: its {_WEIGHTS} cannot be read ({e}).") from None
    if compile:
        try:
            _compile_from_keras(model, config.get("compile_config"), what)
        except (KeyError, TypeError) as e:
            raise ValueError(f"{what}: its compile_config is damaged ({e}).") from None
        try:
            with h5py.File(io.BytesIO(weights), "r") as h5:
                _read_h5_optimizer(model, h5, what)
        except (OSError, RuntimeError, KeyError, TypeError) as e:
            raise ValueError(f"{what}: its {_WEIGHTS} cannot be read ({e}).") from None
    return model


# -- fastconv objects -> Keras config ----------------------------------------------------
def _policy(dtype: Optional[str]) -> dict:
    return {"module": "keras", "class_name": "DTypePolicy",
            "config": {"name": dtype or "float32"}, "registered_name": None}


# Keras layers whose constructor takes no ``trainable`` (nor **kwargs): their configs
# leave it out, or Keras cannot rebuild them.
_NO_TRAINABLE_ARG = {"SpatialDropout2D"}


def _keras_object(module: str, item: dict) -> dict:
    return {"module": module, "class_name": item["class_name"],
            "config": item.get("config", {}), "registered_name": None}


def _layer_entry(layer) -> dict:
    from .layers import InputLayer

    class_name = type(layer).__name__
    if class_name not in KERAS_LAYERS or type(layer).__dict__.get("_registered_name"):
        raise ValueError(f"layer {layer.name!r} is a {class_name}, which fastconv cannot write "
                         "in Keras's format; save under another extension to use fastconv's.")
    config = layer.get_config()
    config.pop("batch_input_shape", None)
    if class_name in _NO_TRAINABLE_ARG:
        config.pop("trainable", None)
    if isinstance(layer, InputLayer):
        config["dtype"] = config.get("dtype") or "float32"
    else:
        config["dtype"] = _policy(config.get("dtype"))
    for key, value in list(config.items()):
        if isinstance(value, dict) and "class_name" in value:
            module = ("keras.regularizers" if key.endswith("regularizer") else
                      "keras.constraints" if key.endswith("constraint") else
                      "keras.initializers")
            config[key] = _keras_object(module, value)
    return {"module": "keras.layers", "class_name": class_name, "config": config,
            "registered_name": None}


def _tensor_ref(t, history) -> dict:
    return {"class_name": "__keras_tensor__",
            "config": {"shape": list(t.shape), "dtype": "float32", "keras_history": history}}


def _functional_to_keras(model) -> dict:
    graph = model._graph
    positions: Dict[int, int] = {}
    counts: Dict[int, int] = {}
    for node in graph.nodes:
        positions[id(node)] = counts.get(id(node.layer), 0)
        counts[id(node.layer)] = positions[id(node)] + 1

    def history(t):
        layer, index, j = t._history
        node = layer._inbound_nodes[index]
        return [layer.name, 0 if node.is_input else positions[id(node)], j]

    entries: Dict[int, dict] = {}
    for op in graph.operations:
        if getattr(op, "_is_operation", False):
            raise ValueError(f"the model applies the operation {op.name!r} to tensors, which "
                             "fastconv cannot write in Keras's format.")
        entry = model_to_keras(op)
        entry["name"] = op.name
        entry["inbound_nodes"] = []
        entries[id(op)] = entry
    for node in graph.nodes:
        refs = [_tensor_ref(t, history(t)) for t in node.inputs]
        entries[id(node.layer)]["inbound_nodes"].append(
            {"args": [refs if node.structure is not None else refs[0]], "kwargs": {}})

    def ends(tensors, struct):
        refs = [history(t) for t in tensors]
        return refs if isinstance(struct, (list, tuple)) else refs[0]

    return {"name": model.name, "trainable": model.trainable,
            "layers": [entries[id(op)] for op in graph.operations],
            "input_layers": ends(graph.inputs, model._inputs_struct),
            "output_layers": ends(graph.outputs, model._outputs_struct)}


def model_to_keras(model) -> dict:
    """One entry of Keras's config.json for a fastconv model or layer."""
    from .models import Model, Sequential

    if type(model) is Sequential:
        layers = []
        shape = list(model._input_tensor.shape) if model._input_tensor is not None else None
        if shape is not None:
            layers.append({"module": "keras.layers", "class_name": "InputLayer",
                           "config": {"batch_shape": shape, "dtype": "float32",
                                      "name": "input_layer"}, "registered_name": None})
        layers += [model_to_keras(layer) for layer in model.layers]
        config = {"name": model.name, "trainable": model.trainable,
                  "dtype": _policy(model.dtype.name), "layers": layers}
        if shape is not None:
            config["build_input_shape"] = shape
        entry = {"module": "keras", "class_name": "Sequential", "config": config,
                 "registered_name": None}
        if shape is not None:
            entry["build_config"] = {"input_shape": shape}
        return entry
    if type(model) is Model and model._functional:
        return {"module": "keras.src.models.functional", "class_name": "Functional",
                "config": _functional_to_keras(model), "registered_name": "Functional"}
    if isinstance(model, Model):
        raise ValueError(f"model {model.name!r} is a {type(model).__name__}; fastconv writes "
                         "Sequential and functional models in Keras's format.")
    return _layer_entry(model)


def _compile_to_keras(model) -> Optional[dict]:
    from . import losses, optimizers

    if model.loss is None or model.optimizer is None:
        return None
    try:
        opt, loss = optimizers.serialize(model.optimizer), losses.serialize(model.loss)
    except ValueError:
        return None  # a custom loss or optimizer: the file loads uncompiled
    return {"optimizer": _keras_object("keras.optimizers", opt),
            "loss": _keras_object("keras.losses", loss), "loss_weights": None,
            "metrics": [m for m in model._metric_ids if isinstance(m, str)] or None,
            "weighted_metrics": None, "run_eagerly": False, "steps_per_execution": 1,
            "jit_compile": False}


def save_keras(model, filepath, overwrite: bool = True) -> None:
    """``model.save("x.keras")``: a Keras 3 native file, written atomically."""
    from ._saving import _atomic_write

    model._require_built()
    config = model_to_keras(model)
    compile_config = _compile_to_keras(model)
    if compile_config is not None:
        config["compile_config"] = compile_config
    metadata = {"keras_version": KERAS_VERSION,
                "date_saved": datetime.datetime.now().strftime("%Y-%m-%d@%H:%M:%S")}
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr(_METADATA, json.dumps(metadata))
        z.writestr(_CONFIG, json.dumps(config))
        z.writestr(_WEIGHTS, _h5_bytes(model))
    _atomic_write(filepath, out.getvalue(), overwrite)
