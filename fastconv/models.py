"""Keras's models on fastconv's layers (Keras: ``keras.Model``, ``keras.Sequential``).

- **Functional**: ``Model(inputs, outputs)`` on symbolic tensors (``Input(...)`` and the
  results of calling layers on them): any graph of layers, with merges, shared layers
  and several inputs or outputs.
- **Sequential**: ``Sequential([...])`` or ``.add(layer)``, the linear case of the same
  graph.
- **Subclassed**: a subclass of :class:`Model` that creates layers in ``__init__`` and
  composes them in ``call(inputs, training=None)``; its call is traced into a graph the
  first time it sees an input shape, and trains with no backward written by hand.

A model is a layer: it can be called on symbolic tensors inside another model (an
augmentation ``Sequential`` inside a functional model, say). Training lives in
:class:`fastconv.trainer.Trainer`; the graph and its execution in
:mod:`fastconv.graph`.
"""

from __future__ import annotations

import os
import sys
import threading
import types
import warnings
from typing import Any, List, Optional, Sequence, Tuple, Union

import numpy as np

from . import graph as _graph
from .backends._args import fail
from .graph import Graph, KerasTensor, flatten, pack
from .layers import InputLayer, Layer, _fmt, _snake, _unique_name
from .trainer import Trainer

__all__ = ["Model", "Sequential", "save_model", "load_model", "clone_model"]


class Model(Trainer, Layer):
    """A model: a graph of layers that can be trained, evaluated, saved and called.

    ``Model(inputs, outputs, name=None)`` builds a functional model; ``inputs`` and
    ``outputs`` are a symbolic tensor, a list or a dict of them. Called with no inputs
    (``super().__init__()`` in a subclass) it is a subclassed model whose ``call``
    defines the computation.

    Examples
    --------
    >>> from fastconv import keras
    >>> inputs = keras.Input(shape=(28, 28, 1))
    >>> x = keras.layers.Conv2D(8, 3, activation="relu")(inputs)
    >>> x = keras.layers.Flatten()(keras.layers.MaxPooling2D()(x))
    >>> outputs = keras.layers.Dense(10, activation="softmax")(x)
    >>> model = keras.Model(inputs=inputs, outputs=outputs)
    >>> model.output_shape
    (None, 10)
    """

    def __init__(self, *args: Any, **kwargs: Any):
        inputs = kwargs.pop("inputs", None)
        outputs = kwargs.pop("outputs", None)
        if len(args) > 2:
            raise TypeError(f"Model takes (inputs, outputs); received {len(args)} positional "
                            "arguments")
        if args:
            inputs = args[0]
        if len(args) > 1:
            outputs = args[1]
        name = kwargs.pop("name", None)
        Layer.__init__(self, name=name or _unique_name(
            "functional" if inputs is not None else _snake(type(self).__name__)), **kwargs)
        self._init_training()
        self._functional = False
        self._graph: Optional[Graph] = None
        self._shape_built: Any = None
        self._all_layers: Optional[tuple] = None
        if inputs is not None or outputs is not None:
            if inputs is None or outputs is None:
                raise TypeError("A functional Model needs both `inputs` and `outputs`.")
            self._init_functional(inputs, outputs)

    def _init_functional(self, inputs, outputs):
        for role, value in (("inputs", inputs), ("outputs", outputs)):
            for t in flatten(value):
                if not isinstance(t, KerasTensor):
                    raise TypeError(
                        f"`{role}` must be symbolic tensors (keras.Input(...) and the outputs "
                        f"of layers called on them), or lists or dicts of them. Received: "
                        f"{type(t).__name__}")
        self._inputs_struct = inputs
        self._outputs_struct = outputs
        self._graph = Graph(flatten(inputs), flatten(outputs))
        self._functional = True
        self.built = True
        # Data given as a dict is matched by key (a dict of inputs, flattened in key
        # order) or else by the inputs' names.
        self._input_names = (list(sorted(inputs)) if isinstance(inputs, dict)
                             else [t.name for t in self._graph.inputs])
        if self.dtype is None:
            self.dtype = np.dtype(self._graph.inputs[0].dtype)

    # -- structure ----------------------------------------------------------------------
    def _composite(self) -> bool:
        return True

    def _trace(self, training: bool, input_shape: Any) -> tuple:
        if self._functional:
            out = self._outputs_struct
            return self._graph, (out if isinstance(out, (list, tuple, dict)) else None)
        return Layer._trace(self, training, input_shape)

    def _build_weights(self, input_shape):
        if type(self).build is not Model.build:
            self.build(input_shape)

    def build(self, input_shape: Any = None) -> None:
        """Build a subclassed model for ``input_shape`` (batch axis included): its
        ``call`` is traced and every sublayer creates its weights."""
        if self._functional:
            return
        if input_shape is None:
            raise fail("input_shape", "the input shape, batch axis included", None, TypeError)
        shape = [tuple(s) for s in input_shape] if isinstance(input_shape, list) \
            else tuple(input_shape)
        self._shape_built = shape
        try:
            self.build_for(shape, self.dtype or np.float32)
        except BaseException:
            self._shape_built = None
            raise

    @property
    def layers(self) -> List[Layer]:
        """The model's layers: a functional model's in Keras's order (inputs first, then
        by depth), a subclassed model's sublayers in the order they were set."""
        if self._functional:
            return [op for op in self._graph.operations if isinstance(op, Layer)]
        return list(dict.fromkeys(self._direct_sublayers()))

    def _sublayers_for_weights(self) -> List[Layer]:
        return self.layers

    def _direct_sublayers(self) -> List[Layer]:
        if self._functional:
            return [la for la in self.layers if not la._is_input_layer]
        return Layer._direct_sublayers(self)

    def _layers_flat(self) -> tuple:
        """Every layer inside the model, nested ones included (cached per graph)."""
        graph = self._graph if self._functional else None
        cached = self._all_layers
        if cached is not None and cached[0] is graph and graph is not None:
            return cached[1]
        layers = tuple(self.layers) + tuple(
            la for top in self.layers for la in top._flat_sublayers()
            if not isinstance(la, InputLayer))
        self._all_layers = (graph, layers)
        return layers

    @property
    def inputs(self) -> List[KerasTensor]:
        if not self._functional:
            raise AttributeError(f"Model '{self.name}' is subclassed: it has no symbolic "
                                 "inputs (build it by calling it or fitting it on data).")
        return list(self._graph.inputs)

    @property
    def outputs(self) -> List[KerasTensor]:
        if not self._functional:
            raise AttributeError(f"Model '{self.name}' is subclassed: it has no symbolic "
                                 "outputs.")
        return list(self._graph.outputs)

    @property
    def input(self) -> Any:
        """The model's symbolic input (a list for several), as ``keras.Model.input``."""
        if not self._functional:
            return Layer.input.fget(self)
        ins = self._graph.inputs
        return ins[0] if len(ins) == 1 else list(ins)

    @property
    def output(self) -> Any:
        """The model's symbolic output (a list for several), as ``keras.Model.output``."""
        if not self._functional:
            return Layer.output.fget(self)
        outs = self._graph.outputs
        return outs[0] if len(outs) == 1 else list(outs)

    def _shapes(self, tensors):
        shapes = [t.shape for t in tensors]
        return shapes[0] if len(shapes) == 1 else shapes

    @property
    def input_shape(self) -> Any:
        if self._functional:
            return self._shapes(self._graph.inputs)
        self._require_built()
        return self._shape_built

    @input_shape.setter
    def input_shape(self, value):
        self.__dict__["_input_shape_set"] = value

    @property
    def output_shape(self) -> Any:
        if self._functional:
            return self._shapes(self._graph.outputs)
        self._require_built()
        graph = self._run_graph(None)
        return self._shapes(graph.outputs)

    @output_shape.setter
    def output_shape(self, value):
        self.__dict__["_output_shape_set"] = value

    def _require_built(self):
        if not self.built:
            raise ValueError(
                f"Model '{self.name}' has not been built yet, so its shapes are unknown. Give "
                "`input_shape` to the first layer, start with Input(shape=...), call "
                "build(input_shape), or fit/predict on data first."
            )

    def get_layer(self, name: Optional[str] = None, index: Optional[int] = None) -> Layer:
        """The layer called ``name``, or at position ``index`` of :attr:`layers`."""
        layers = self.layers
        if index is not None:
            if isinstance(index, bool) or not isinstance(index, (int, np.integer)) \
                    or not -len(layers) <= index < len(layers):
                raise fail("index", f"an int in [-{len(layers)}, {len(layers)})", index)
            return layers[index]
        for layer in layers:
            if layer.name == name:
                return layer
        raise ValueError(f"No such layer: {name!r}. Existing layers are: "
                         f"{[la.name for la in layers]}.")

    # -- running --------------------------------------------------------------------------
    def _run_graph(self, xs, training: bool = False) -> Graph:
        """The graph that runs on inputs like ``xs`` (for a subclassed model, the trace of
        its call for their shapes and ``training``)."""
        if self._functional:
            return self._graph
        if xs is None:
            shape = self._shape_built
        else:
            shape = [(None,) + a.shape[1:] for a in xs]
            shape = shape[0] if len(shape) == 1 else shape
        if not self.built:
            self.build(shape)
        return self._trace(training, shape)[0]

    def _prepare_inputs(self, x: Any, name: str = "x") -> List[np.ndarray]:
        """``x`` as a list of C-contiguous arrays, one per model input, of the inputs'
        dtypes; builds a model whose input shape is still unknown. Shape errors name the
        argument and both shapes."""
        if isinstance(x, dict):
            names = self._input_names_list()
            missing = [k for k in names if k not in x]
            if missing:
                raise fail(name, f"a dict with the model's input names {names}",
                           f"keys {sorted(x)}")
            parts = [x[k] for k in names]
        elif isinstance(x, (list, tuple)) and not isinstance(x, np.ndarray) and \
                self._n_inputs() != 1 and len(x) and not np.isscalar(x[0]):
            parts = list(x)
        else:
            parts = [x]
        arrays = []
        for k, part in enumerate(parts):
            arr = np.asarray(part)
            which = name if len(parts) == 1 else f"{name}[{k}]"
            if arr.dtype.kind not in "fiub":
                raise fail(which, "an array of numbers", arr, TypeError)
            if arr.ndim == 0:
                raise fail(which, "an array with a batch axis", arr)
            arrays.append(arr)
        self._ensure_built(arrays)
        expected = self._expected_inputs()
        if len(arrays) != len(expected):
            raise ValueError(f"Model '{self.name}' has {len(expected)} inputs. Received: "
                             f"{len(arrays)} arrays in `{name}`.")
        out = []
        for k, (arr, (shape, dtype)) in enumerate(zip(arrays, expected)):
            which = name if len(arrays) == 1 else f"{name}[{k}]"
            arr = np.ascontiguousarray(arr, dtype=dtype)
            ok = len(arr.shape) == len(shape) and all(
                e is None or e == a for e, a in zip(shape[1:], arr.shape[1:]))
            if not ok:
                hint = ""
                if len(arr.shape) == len(shape) - 1 and shape[-1] == 1:
                    hint = (" Add the channel axis: x = x[..., None] (or "
                            "x.reshape(-1, ..., 1)).")
                raise ValueError(
                    f"`{which}` must have shape {_fmt(shape)} to fit model '{self.name}'. "
                    f"Received: {which} with shape {arr.shape}.{hint}")
            out.append(arr)
        if len({len(a) for a in out}) > 1:
            raise ValueError(f"The arrays of `{name}` must have the same number of samples. "
                             f"Received: {[len(a) for a in out]}")
        return out

    def _n_inputs(self) -> int:
        if self._functional:
            return len(self._graph.inputs)
        if self._shape_built is not None:
            return len(self._shape_built) if isinstance(self._shape_built, list) else 1
        return 1

    def _input_names_list(self) -> List[str]:
        if self._functional:
            return self._input_names
        return []

    def _expected_inputs(self) -> List[Tuple[tuple, np.dtype]]:
        if self._functional:
            return [(t.shape, np.dtype(t.dtype)) for t in self._graph.inputs]
        shapes = self._shape_built if isinstance(self._shape_built, list) \
            else [self._shape_built]
        dtype = self.dtype or np.dtype(np.float32)
        return [(tuple(s), dtype) for s in shapes]

    def _ensure_built(self, arrays: List[np.ndarray]) -> None:
        if self.built:
            return
        with self._build_lock:
            if not self.built:
                shapes = [(None,) + a.shape[1:] for a in arrays]
                self.build(shapes[0] if len(shapes) == 1 else shapes)
                self._resolve_metrics()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        inputs = args[0] if args else kwargs.get("inputs")
        if inputs is not None and not _graph.is_symbolic(inputs):
            training = kwargs.get("training", None)
            xs = self._prepare_inputs(inputs)
            graph = self._run_graph(xs, bool(training))
            outs, _ = graph.forward(xs, bool(training), None, tape=False)
            return self._pack_outputs(outs)
        return Layer.__call__(self, *args, **kwargs)

    def _pack_outputs(self, outs):
        if self._functional:
            return pack(self._outputs_struct, outs) if isinstance(
                self._outputs_struct, (list, tuple, dict)) else outs[0]
        return outs[0] if len(outs) == 1 else outs

    def intermediate_outputs(self, x: Any, layers: Sequence[Union[str, int, Layer]],
                             training: bool = False) -> List[np.ndarray]:
        """The outputs of chosen ``layers`` (names, indices into :attr:`layers`, or layer
        objects) for input ``x``, in the order asked: one forward pass of the
        feature-map model ``Model(model.inputs, [layer.output, ...])``."""
        if isinstance(layers, (str, int, Layer)):
            layers = [layers]
        own = self.layers
        chosen = []
        for ref in layers:
            if isinstance(ref, Layer):
                hit = [la for la in own if la is ref]
            elif isinstance(ref, str):
                hit = [la for la in own if la.name == ref]
            elif isinstance(ref, (int, np.integer)) and not isinstance(ref, bool) and \
                    -len(own) <= ref < len(own):
                hit = [own[int(ref)]]
            else:
                hit = []
            if not hit:
                raise fail("layers", f"names, indices or layers of this model "
                           f"({[la.name for la in own]})", ref)
            chosen.append(hit[0])
        self._prepare_inputs(x)  # builds the model if needed and checks x
        sub = Model(self.inputs, [self._output_of(la) for la in chosen])
        xs = sub._prepare_inputs(x)
        outs, _ = sub._graph.forward(xs, training, None, tape=False)
        return outs

    def _output_of(self, layer: Layer) -> KerasTensor:
        ids = {id(n) for n in self._graph.nodes}
        for node in layer._inbound_nodes:
            if id(node) in ids or (layer._is_input_layer and node.is_input):
                return node.outputs[0]
        return layer.output

    def _steps(self) -> list:
        """The ops the model's plan runs, in order: layers, and fused pairs
        (:class:`fastconv.layers._ConvReLUMaxPool`) where the plan fuses two layers."""
        return [s.op for s in self._run_graph(None).plan().steps]

    # -- summary ----------------------------------------------------------------------
    def summary(self, line_length: Optional[int] = None, positions: Any = None,
                print_fn: Any = None, expand_nested: bool = False,
                show_trainable: bool = False, layer_range: Any = None) -> None:
        """Print Keras's table: layer (type), output shape, parameter count (and, for a
        functional model, what each layer is connected to), then the totals."""
        self._require_built()
        print_fn = print_fn or print
        connected = self._functional and not isinstance(self, Sequential)
        line_length = line_length or (110 if connected else 80)
        fractions = [0.33, 0.55, 0.67, 1.0] if connected else [0.45, 0.80, 1.0]
        cols = [int(line_length * f) for f in fractions]
        lines = [f'Model: "{self.name}"', "_" * line_length]

        def row(*cells):
            s, start = "", 0
            for cell, end in zip(cells, cols):
                s += (" " + cell)[:end - start - 1].ljust(end - start)
                start = end
            return s.rstrip()

        head = ["Layer (type)", "Output Shape", "Param #"] + (["Connected to"]
                                                            if connected else [])
        lines += [row(*head), "=" * line_length]
        entries = self._summary_rows(connected)
        for i, cells in enumerate(entries):
            lines.append(row(*cells[0]))
            for extra in cells[1:]:
                lines.append(row(*extra))
            if i < len(entries) - 1:
                lines.append("")
        trainable = sum(w.size for w in self.trainable_weights)
        total = self.count_params()
        lines += ["=" * line_length, f"Total params: {total:,}",
                  f"Trainable params: {trainable:,}",
                  f"Non-trainable params: {total - trainable:,}", "_" * line_length]
        for line in lines:
            print_fn(line)

    def _summary_rows(self, connected: bool) -> List[List[List[str]]]:
        graph = self._run_graph(None)
        ids = {id(n) for n in graph.nodes}
        rows = []
        for layer in self.layers:
            nodes = [n for n in layer._inbound_nodes if id(n) in ids or
                     (layer._is_input_layer and n.is_input)]
            shapes = [o.shape for n in nodes[:1] for o in n.outputs]
            shape = _fmt(shapes[0]) if len(shapes) == 1 else (
                ", ".join(_fmt(s) for s in shapes) if shapes else "?")
            first = [f"{layer.name} ({type(layer).__name__})", shape,
                     f"{layer.count_params():,}"]
            if not connected:
                rows.append([first])
                continue
            links = []
            for n in nodes:
                for t in n.inputs:
                    if t._history is not None:
                        src, k, j = t._history
                        links.append(f"{src.name}[{self._node_pos(src, k, ids)}][{j}]")
            first.append(links[0] if links else "-")
            rows.append([first] + [["", "", "", link] for link in links[1:]])
        return rows

    @staticmethod
    def _node_pos(layer, k, ids) -> int:
        mine = [i for i, n in enumerate(layer._inbound_nodes) if id(n) in ids or n.is_input]
        return mine.index(k) if k in mine else k

    # -- config and saving ------------------------------------------------------------
    def get_config(self) -> dict:
        if not self._functional:
            # A subclassed model: its own get_config (if written) says how to remake it.
            return {"name": self.name, "trainable": self.trainable}
        from . import _saving

        return _saving.functional_config(self)

    @classmethod
    def from_config(cls, config: dict, custom_objects: Optional[dict] = None) -> "Model":
        if "layers" in config and ("input_layers" in config or cls is Model):
            from . import _saving

            return _saving.functional_from_config(config, custom_objects)
        return cls(**config)

    def save(self, filepath: Union[str, os.PathLike], overwrite: bool = True,
             **kwargs: Any) -> None:
        """Save architecture, weights and compile settings: Keras 3's format when the name
        ends in ``.keras`` (:mod:`fastconv._keras_format`), else fastconv's
        (:mod:`fastconv._saving`)."""
        save_model(self, filepath, overwrite=overwrite)

    def save_weights(self, filepath: Union[str, os.PathLike], overwrite: bool = True) -> None:
        """Save only the weights: Keras's HDF5 layout when the name ends in ``.h5``, else
        fastconv's zip format."""
        from . import _saving

        _saving.save_weights(self, filepath, overwrite=overwrite)

    def load_weights(self, filepath: Union[str, os.PathLike], **kwargs: Any) -> None:
        """Load weights saved by ``save_weights`` or ``save`` (fastconv's or Keras's
        ``.weights.h5``, told apart by content) into this built model."""
        from . import _saving

        _saving.load_weights(self, filepath)

    def count_params(self) -> int:
        self._require_built()
        return Layer.count_params(self)

    def set_weights(self, weights: Sequence[Any]) -> None:
        """Load ``weights`` (as from ``get_weights``, or from a Keras model of the same
        architecture) into the model; counts and shapes are checked before any change."""
        self._require_built()
        Layer.set_weights(self, weights)

    def __repr__(self) -> str:
        kind = "Functional" if self._functional else type(self).__name__
        return f"<{kind} name={self.name!r}>"


class Sequential(Model):
    """A linear stack of layers: the single-input, single-output case of a graph.

    Parameters
    ----------
    layers : list of Layer, optional
        Added in order, as by :meth:`add`; may start with ``Input(shape=...)``.
    name : str, optional
    dtype : 'float32' (default) or 'float64'
        The dtype of every weight and activation; float64 is for gradient checks.

    Examples
    --------
    >>> from fastconv.models import Sequential
    >>> from fastconv.layers import Conv2D, MaxPooling2D, Flatten, Dense
    >>> model = Sequential([Conv2D(8, 3, activation='relu', input_shape=(28, 28, 1)),
    ...                     MaxPooling2D(), Flatten(), Dense(10, activation='softmax')])
    >>> model.output_shape
    (None, 10)
    """

    def __init__(self, layers: Optional[Sequence[Layer]] = None, name: Optional[str] = None,
                 dtype: Any = None, trainable: bool = True):
        Model.__init__(self, name=name or _unique_name("sequential"), trainable=trainable)
        if dtype is None:
            from .config import floatx

            dtype = floatx()
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.float32, np.float64):
            raise fail("dtype", "'float32' or 'float64'", dtype, TypeError)
        self._layers: List[Layer] = []
        self._input_tensor: Optional[KerasTensor] = None
        self._output_tensor: Optional[KerasTensor] = None
        self._seq_lock = threading.RLock()
        if layers is not None:
            if isinstance(layers, (Layer, KerasTensor)):
                layers = [layers]
            for layer in layers:
                self.add(layer)

    # -- construction -----------------------------------------------------------------
    def add(self, layer: Any) -> None:
        """Append ``layer``; if the input shape is known, build it now (shape errors here)."""
        if isinstance(layer, KerasTensor):
            node = layer.node
            if node is None or not node.is_input:
                raise fail("layer", "a Layer or the tensor of keras.Input(...)", layer,
                           TypeError)
            layer = node.layer
        if not isinstance(layer, Layer):
            raise fail("layer", "a fastconv.layers.Layer instance", layer, TypeError)
        if any(existing is layer for existing in self._layers):
            raise ValueError(f"Layer '{layer.name}' is already in the model.")
        if any(existing.name == layer.name for existing in self._layers):
            raise ValueError(f"The model already has a layer named '{layer.name}'; layer "
                             "names must be unique.")
        with self._seq_lock:
            if isinstance(layer, InputLayer):
                if self._layers or self._input_tensor is not None:
                    raise ValueError("An Input layer can only come first in a Sequential "
                                     "model.")
                if layer._dtype_given:
                    self.dtype = layer.dtype
                elif layer.dtype != self.dtype:
                    # Input(shape) without a dtype takes the model's (Sequential(dtype=...)).
                    layer = InputLayer(batch_shape=layer._batch_input_shape, dtype=self.dtype,
                                       name=layer.name + "_" + self.dtype.name)
                self._start(layer)
                return
            if not self._layers and self._input_tensor is None and \
                    layer._batch_input_shape is not None:
                self._start(InputLayer(batch_shape=layer._batch_input_shape, dtype=self.dtype))
            elif self._layers and layer._batch_input_shape is not None:
                warnings.warn(f"input_shape given to layer '{layer.name}', which is not the "
                              "first layer, is ignored.", UserWarning, stacklevel=2)
            if self._output_tensor is not None:
                self._output_tensor = layer(self._output_tensor)
                self._graph = None
            self._layers.append(layer)

    def _start(self, input_layer: InputLayer) -> None:
        self._input_tensor = self._output_tensor = input_layer.output
        self._graph = None

    def pop(self) -> Layer:
        """Remove and return the last layer."""
        if not self._layers:
            raise TypeError("There are no layers in the model.")
        with self._seq_lock:
            layer = self._layers.pop()
            if self._input_tensor is not None:
                t = self._input_tensor
                for la in self._layers:
                    t = la(t)
                self._output_tensor = t
            self._graph = None
        return layer

    def build(self, input_shape: Optional[Sequence[Optional[int]]] = None) -> None:
        """Build every layer for ``input_shape`` (batch axis included)."""
        with self._seq_lock:
            if self._input_tensor is not None:
                if input_shape is not None and tuple(input_shape)[1:] != \
                        self._input_tensor.shape[1:]:
                    raise ValueError(f"Model '{self.name}' was built for input shape "
                                     f"{_fmt(self._input_tensor.shape)}; cannot build it for "
                                     f"{_fmt(tuple(input_shape))}.")
                return
            if input_shape is None:
                raise ValueError("The model's input shape is unknown: give `input_shape` to "
                                 "the first layer, start with Input(shape=...), or call "
                                 "build().")
            if isinstance(input_shape, list) and input_shape and isinstance(
                    input_shape[0], (list, tuple)):
                raise ValueError("A Sequential model has one input.")
            self._start(InputLayer(batch_shape=tuple(input_shape), dtype=self.dtype))
            t = self._input_tensor
            for layer in self._layers:
                t = layer(t)
            self._output_tensor = t
            self._graph = None

    @property
    def built(self) -> bool:
        return self._input_tensor is not None

    @built.setter
    def built(self, value) -> None:
        pass

    @property
    def _functional(self) -> bool:
        return self._input_tensor is not None

    @_functional.setter
    def _functional(self, value) -> None:
        pass

    @property
    def _graph(self) -> Optional[Graph]:
        g = self.__dict__.get("_seq_graph")
        if g is None and self._input_tensor is not None:
            with self._seq_lock:
                g = self.__dict__.get("_seq_graph")
                if g is None:
                    g = Graph([self._input_tensor], [self._output_tensor])
                    self.__dict__["_seq_graph"] = g
        return g

    @_graph.setter
    def _graph(self, value) -> None:
        self.__dict__["_seq_graph"] = value

    @property
    def _outputs_struct(self):
        return self._output_tensor

    @_outputs_struct.setter
    def _outputs_struct(self, value):
        pass

    @property
    def _input_names(self):
        return [self._input_tensor.name] if self._input_tensor is not None else []

    @_input_names.setter
    def _input_names(self, value):
        pass

    @property
    def layers(self) -> List[Layer]:
        return list(self._layers)

    def _run_graph(self, xs, training: bool = False) -> Graph:
        if self._input_tensor is None:
            if xs is None:
                self._require_built()
            self.build((None,) + xs[0].shape[1:])
        return self._graph

    def _trace(self, training, input_shape):
        if self._input_tensor is None:
            self.build(input_shape)
        return self._graph, None

    def _ensure_built(self, arrays):
        if self._input_tensor is None:
            if len(arrays) != 1:
                raise ValueError(f"A Sequential model has one input. Received: {len(arrays)} "
                                 "arrays.")
            self.build((None,) + arrays[0].shape[1:])
            self._resolve_metrics()

    def _expected_inputs(self):
        t = self._input_tensor
        return [(t.shape, np.dtype(t.dtype))]

    def _n_inputs(self) -> int:
        return 1

    def _sublayers_for_weights(self) -> List[Layer]:
        return self.layers

    def _output_of(self, layer: Layer) -> KerasTensor:
        return Model._output_of(self, layer) if self._input_tensor is not None else layer.output

    @property
    def input_shape(self) -> Tuple:
        self._require_built()
        return self._input_tensor.shape

    @input_shape.setter
    def input_shape(self, value):
        pass

    @property
    def output_shape(self) -> Tuple:
        self._require_built()
        return self._output_tensor.shape

    @output_shape.setter
    def output_shape(self, value):
        pass

    def compute_output_shape(self, input_shape):
        if self._input_tensor is None:
            self.build(input_shape)
        return (input_shape[0],) + tuple(self._output_tensor.shape[1:])

    # -- config ---------------------------------------------------------------------------
    def get_config(self) -> dict:
        from . import _saving

        layers = []
        if self._input_tensor is not None:
            layers.append({"class_name": "InputLayer",
                           "config": {"batch_shape": list(self._input_tensor.shape),
                                      "name": "input_layer"}})
        for layer in self._layers:
            config = layer.get_config()
            config.pop("batch_input_shape", None)
            layers.append({"class_name": _saving.class_name_of(layer), "config": config})
        return {"name": self.name, "dtype": self.dtype.name, "layers": layers}

    @classmethod
    def from_config(cls, config: dict, custom_objects: Optional[dict] = None) -> "Sequential":
        from . import _saving

        model = cls(name=config.get("name"), dtype=config.get("dtype"))
        for item in config["layers"]:
            layer = _saving.layer_from_config(item, custom_objects)
            if isinstance(layer, InputLayer):
                layer = InputLayer(batch_shape=layer._batch_input_shape, dtype=model.dtype)
            model.add(layer)
        return model

    def __repr__(self) -> str:
        return f"<Sequential name={self.name!r}, {len(self._layers)} layers>"


def save_model(model: Model, filepath: Union[str, os.PathLike], overwrite: bool = True,
               **kwargs: Any) -> None:
    """Save ``model`` to ``filepath`` (JSON architecture + npz weights in one zip)."""
    from . import _saving

    _saving.save_model(model, filepath, overwrite=overwrite)


def load_model(filepath: Union[str, os.PathLike], custom_objects: Optional[dict] = None,
               compile: bool = True, safe_mode: bool = True) -> Model:
    """Load a model saved by ``save_model``/``model.save``; nothing is executed."""
    from . import _saving

    return _saving.load_model(filepath, compile=compile, custom_objects=custom_objects)


def clone_model(model: Model) -> Model:
    """A new model of the same architecture, with freshly initialised weights."""
    from . import _saving

    config = {"class_name": _saving.class_name_of(model), "config": model.get_config()}
    return _saving.layer_from_config(config, None)


class _ModelsModule(types.ModuleType):
    """``fastconv.models.FUSE_LAYERS`` is :data:`fastconv.graph.FUSE_LAYERS` (read and set)."""

    @property
    def FUSE_LAYERS(self) -> bool:  # noqa: N802 - the switch's public name
        return _graph.FUSE_LAYERS

    @FUSE_LAYERS.setter
    def FUSE_LAYERS(self, value: bool) -> None:  # noqa: N802
        _graph.FUSE_LAYERS = bool(value)


sys.modules[__name__].__class__ = _ModelsModule
