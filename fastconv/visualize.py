"""See what a CNN does: training curves, learned filters, feature maps, maximised inputs.

The pictures a CNN lecture draws, from a fastconv model:

- :func:`plot_classic_filters`: sharpen, blur, edge and emboss kernels applied to an image;
- :func:`plot_history`: loss and each metric per epoch, with its ``val_`` curve;
- :func:`plot_filters`: a Conv2D layer's kernels, one panel per filter;
- :func:`feature_extractor` and :func:`plot_feature_maps`: the activations of chosen
  layers for one image, from a single forward pass;
- :func:`activation_maximization` and :func:`plot_activation_maximization`: inputs
  optimised by gradient ascent, through the model's own backward pass, so that one
  filter (or one Dense unit) fires as strongly as possible;
- :func:`confusion_matrix` and :func:`plot_confusion_matrix`.

Plotting needs matplotlib, an optional dependency: ``pip install 'fastconv[plot]'``. It
is imported only when a plot function is called; without a display (no ``DISPLAY`` on
Linux, and no ``MPLBACKEND`` chosen) the non-interactive Agg backend is selected, so the
functions work on servers and in CI. Each plot function returns the matplotlib
``Figure`` (made through ``pyplot``, so ``plt.show()`` shows it; ``plt.close(fig)``
frees it) and, given ``filename``, saves it there: to a temporary file in the same
directory first, then moved over the destination, so an existing file is never left
half written.
"""

from __future__ import annotations

import math
import os
import sys
import tempfile
from typing import Any, Callable, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from . import filters as _filters
from .backends._args import fail
from .layers import Layer

__all__ = [
    "feature_extractor", "activation_maximization", "confusion_matrix",
    "plot_classic_filters", "plot_history", "plot_filters", "plot_feature_maps",
    "plot_activation_maximization", "plot_confusion_matrix",
]

LayerRef = Union[int, str, Layer]
PathLike = Union[str, "os.PathLike[str]"]


# ------------------------------------------------------------------------ matplotlib


def _pyplot():
    """Import ``matplotlib.pyplot`` on first use, choosing Agg when there is no display."""
    try:
        import matplotlib
    except ImportError as err:
        raise ImportError(
            "Plotting needs matplotlib, an optional dependency of fastconv: "
            "pip install 'fastconv[plot]'"
        ) from err
    headless = sys.platform.startswith("linux") and not (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    # Only before pyplot is first imported: later, the user (or IPython) has chosen.
    if headless and "matplotlib.pyplot" not in sys.modules and not os.environ.get("MPLBACKEND"):
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, filename: Optional[PathLike], dpi: int = 100) -> None:
    """Save ``fig`` to ``filename`` atomically (temporary file beside it, then replace)."""
    if filename is None:
        return
    if not isinstance(filename, (str, os.PathLike)):
        raise fail("filename", "a path (str or os.PathLike) or None", filename, TypeError)
    path = os.fspath(filename)
    ext = os.path.splitext(path)[1].lower().lstrip(".")
    supported = fig.canvas.get_supported_filetypes()
    if ext not in supported:
        raise fail("filename", "a file name ending in one of " +
                   ", ".join("." + e for e in sorted(supported)), path)
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise fail("filename", "a path in an existing directory", path)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".fastconv-", suffix="." + ext)
    try:
        with os.fdopen(fd, "wb") as f:
            fig.savefig(f, format=ext, dpi=dpi)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _grid(n: int, ncols: Optional[int] = None) -> Tuple[int, int]:
    """Rows and columns of a near-square grid holding ``n`` panels."""
    cols = ncols if ncols is not None else max(1, math.ceil(math.sqrt(n)))
    cols = min(cols, n)
    return math.ceil(n / cols), cols


def _panels(plt, n: int, ncols: Optional[int] = None, size: float = 1.3, title_space=0.0):
    """A figure with exactly ``n`` axes, ticks off, in a grid (spare slots removed)."""
    rows, cols = _grid(n, ncols)
    fig, axes = plt.subplots(rows, cols, figsize=(size * cols + 0.4,
                                                  size * rows + 0.4 + title_space),
                             squeeze=False)
    flat = list(axes.ravel())
    for ax in flat[n:]:
        fig.delaxes(ax)
    for ax in flat[:n]:
        ax.set_xticks([])
        ax.set_yticks([])
    return fig, flat[:n]


# ------------------------------------------------------------------------ arguments


def _check_model(model: Any) -> None:
    if not (hasattr(model, "layers") and hasattr(model, "intermediate_outputs")
            and hasattr(model, "forward")):
        raise fail("model", "a fastconv model (Sequential or functional)", type(model).__name__,
                   TypeError)
    if not model.built:
        raise ValueError(f"`model` must be built (its input shape known) before it can be "
                         f"inspected. Received: model={model!r}, not built; give "
                         "`input_shape` to its first layer or call model.build(...).")


def _layer_index(model: Any, ref: Any, name: str) -> int:
    """The position in ``model.layers`` of a layer given by index, name or object."""
    layers = model.layers
    names = [la.name for la in layers]
    if isinstance(ref, Layer):
        for i, la in enumerate(layers):
            if la is ref:
                return i
        raise fail(name, f"a layer of this model ({names})", ref.name)
    if isinstance(ref, str):
        if ref in names:
            return names.index(ref)
        raise fail(name, f"the name of a layer of this model ({names})", ref)
    if isinstance(ref, (int, np.integer)) and not isinstance(ref, (bool, np.bool_)):
        if -len(layers) <= ref < len(layers):
            return int(ref) % len(layers)
        raise fail(name, f"a layer index in [{-len(layers)}, {len(layers) - 1}] "
                   f"(the model has {len(layers)} layers)", ref)
    raise fail(name, "a layer index (int), name (str) or Layer", ref, TypeError)


def _layer_refs(model: Any, layers: Any, name: str = "layers") -> List[int]:
    if isinstance(layers, (str, int, np.integer, Layer)):
        layers = [layers]
    try:
        refs = list(layers)
    except TypeError:
        raise fail(name, "a layer index, name or Layer, or a list of them", layers,
                   TypeError) from None
    if not refs:
        raise fail(name, "at least one layer", layers)
    return [_layer_index(model, ref, name) for ref in refs]


def _prepare_image(model: Any, image: Any, name: str = "image") -> np.ndarray:
    """One sample as a batch of one of the model's input shape and dtype."""
    arr = np.asarray(image)
    if arr.dtype.kind not in "fiu":
        raise fail(name, "an array of real numbers (float or integer dtype)", arr, TypeError)
    sample = tuple(model.input_shape[1:])

    def fits(shape):
        return len(shape) == len(sample) and all(e is None or e == a
                                                 for e, a in zip(sample, shape))

    if fits(arr.shape):
        batch = arr[None]
    elif arr.ndim == len(sample) + 1 and arr.shape[0] == 1 and fits(arr.shape[1:]):
        batch = arr
    elif len(sample) >= 2 and sample[-1] == 1 and fits(arr.shape + (1,)):
        batch = arr[None, ..., None]  # grayscale (H, W) for a one-channel model
    else:
        shown = "(" + ", ".join("H" if s is None else str(s) for s in sample) + ")"
        raise fail(name, f"one sample of shape {shown} (a leading batch axis of 1 is "
                   "allowed" + (", and so is (H, W) for one channel" if sample[-1] == 1
                                else "") + ")", arr)
    batch = np.ascontiguousarray(batch, dtype=model.dtype)
    if not np.isfinite(batch).all():
        raise fail(name, "an array of finite numbers (no NaN or inf)", arr)
    return batch


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise fail(name, "a positive int", value, TypeError)
    if value < 1:
        raise fail(name, "a positive int", value)
    return int(value)


def _channel_axis(layer: Layer, ndim: int) -> int:
    if ndim == 4 and getattr(layer, "data_format", "channels_last") == "channels_first":
        return 1
    return ndim - 1


# ------------------------------------------------------------------------ computation


def feature_extractor(model: Any, layers: Any) -> Callable[[Any], List[np.ndarray]]:
    """A function returning the outputs of chosen layers, from one forward pass.

    Parameters
    ----------
    model : fastconv.models.Sequential
        Built. The extractor uses the model itself, not a copy, so it sees later
        weight changes.
    layers : int, str, Layer, or a sequence of them
        Layer indices (negative counts from the end), names or the layer objects.

    Returns
    -------
    extract : callable
        ``extract(x)`` with ``x`` of shape (N,) + ``model.input_shape[1:]`` returns a
        list with one array per requested layer, in the order asked: that layer's
        output (N, ...) in inference mode (Dropout off), a copy the caller may keep.

    Examples
    --------
    >>> extract = feature_extractor(model, ["conv2d", "max_pooling2d"])  # doctest: +SKIP
    >>> conv_maps, pooled = extract(x_test[:1])                          # doctest: +SKIP
    """
    _check_model(model)
    index = _layer_refs(model, layers)

    def extract(x: Any) -> List[np.ndarray]:
        outs = model.intermediate_outputs(x, index, training=False)
        return [np.array(o, copy=True) for o in outs]

    return extract


def _maximize(model, index, filter_indices, steps, learning_rate, seed, value_range,
              input_shape, initial=None):
    """Gradient ascent for several filters of layer ``index`` at once, one image each.

    Samples of a batch never interact in inference mode, so the batch holds one input
    per filter; all start from the same image (``initial``, or seeded noise).
    """
    layer = model.layers[index]
    if initial is not None:
        start = _prepare_image(model, initial, "initial")[0].astype(np.float64)
        sample = start.shape
    else:
        if input_shape is None:
            sample = tuple(model.input_shape[1:])
            if any(s is None for s in sample):
                raise fail("input_shape", "the shape of one input sample, as the model's "
                           "input shape has unknown sizes", input_shape, TypeError)
        else:
            try:
                sample = tuple(_positive_int("input_shape", s) for s in input_shape)
            except TypeError:
                raise fail("input_shape", "a tuple of positive ints", input_shape,
                           TypeError) from None
        start = 0.5 + 0.05 * np.random.default_rng(seed).standard_normal(sample)
    if value_range is not None:
        start = np.clip(start, *value_range)
    k = len(filter_indices)
    x = np.ascontiguousarray(np.broadcast_to(start, (k,) + sample), dtype=model.dtype)
    targets = np.asarray(filter_indices)
    # The feature-map model up to the layer, run forwards and backwards to its input.
    from .models import Model

    graph = Model(model.inputs, model._output_of(layer))._graph
    return _ascend(graph, layer, x, targets, steps, learning_rate, value_range, model.dtype)


def _ascend(graph, layer, x, targets, steps, learning_rate, value_range, dtype):
    k = len(targets)
    rows = np.arange(k)
    history = np.empty((steps + 1, k))
    for step in range(steps + 1):
        (out,), tape = graph.forward([x], False)
        axis = _channel_axis(layer, out.ndim)
        per_unit = np.moveaxis(out, axis, 1).reshape(k, out.shape[axis], -1)
        history[step] = per_unit[rows, targets].mean(axis=1)
        if step == steps:
            break
        # d(mean activation of filter f of sample i) / d(output): 1/count on that slice.
        grad = np.zeros((k, out.shape[axis], per_unit.shape[2]), dtype=out.dtype)
        grad[rows, targets] = 1.0 / per_unit.shape[2]
        d = np.moveaxis(grad.reshape((k, out.shape[axis]) + tuple(
            np.delete(out.shape, [0, axis]))), 1, axis)
        d = np.ascontiguousarray(d)
        (d,), _ = graph.backward(tape, [d], input_grads=True)
        if d is None:
            raise RuntimeError(f"no input gradient reached the input from layer '{layer.name}'")
        # Steps of a fixed size whatever the gradient's scale: the gradient divided by
        # its root mean square, per sample.
        rms = np.sqrt(np.mean(np.square(d.reshape(k, -1), dtype=np.float64), axis=1))
        scale = learning_rate / np.maximum(rms, 1e-12)
        x = x + (d * scale.reshape((k,) + (1,) * (x.ndim - 1))).astype(dtype)
        if value_range is not None:
            np.clip(x, value_range[0], value_range[1], out=x)
    return x, history


def _check_am_args(model, layer, filter_index, steps, learning_rate, seed, value_range):
    _check_model(model)
    index = _layer_index(model, layer, "layer")
    shape = model.layers[index].output_shape
    la = model.layers[index]
    units = shape[_channel_axis(la, len(shape))]
    steps = _positive_int("steps", steps)
    if isinstance(learning_rate, (bool, np.bool_)) or not isinstance(
            learning_rate, (int, float, np.integer, np.floating)) or not (
            math.isfinite(learning_rate) and learning_rate > 0):
        raise fail("learning_rate", "a positive finite number", learning_rate,
                   TypeError if not isinstance(learning_rate, (int, float, np.integer,
                                                               np.floating)) else ValueError)
    if seed is not None and (isinstance(seed, (bool, np.bool_)) or
                             not isinstance(seed, (int, np.integer)) or seed < 0):
        raise fail("seed", "a non-negative int or None", seed, TypeError)
    if value_range is not None:
        try:
            lo, hi = (float(v) for v in value_range)
        except (TypeError, ValueError):
            raise fail("value_range", "None or a pair (low, high)", value_range,
                       TypeError) from None
        if not lo < hi:
            raise fail("value_range", "a pair (low, high) with low < high", value_range)
        value_range = (lo, hi)
    return index, units, steps, float(learning_rate), value_range


def _check_filter(name, value, units, layer_name):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise fail(name, f"an int in [0, {units - 1}]", value, TypeError)
    if not 0 <= value < units:
        raise fail(name, f"an int in [0, {units - 1}] (layer '{layer_name}' has {units} "
                   "filters/units)", value)
    return int(value)


def activation_maximization(model: Any, layer: LayerRef, filter_index: int, steps: int = 50,
                            learning_rate: float = 0.05, seed: Optional[int] = 0,
                            value_range: Optional[Tuple[float, float]] = None,
                            input_shape: Optional[Sequence[int]] = None,
                            initial: Any = None, return_history: bool = False):
    """An input that makes one filter (or Dense unit) fire strongly, by gradient ascent.

    Starting from seeded noise around 0.5 (or from ``initial``), each step runs the
    model up to ``layer`` (inference mode), takes the gradient of the mean activation of
    the chosen filter with respect to the input through the layers' own backward
    passes, and moves the input along that gradient divided by its root mean square
    (so every step changes the input by ``learning_rate`` in RMS, whatever the
    gradient's scale).

    Parameters
    ----------
    model : fastconv.models.Sequential
        Built.
    layer : int, str or Layer
        The layer whose unit is maximised: index, name or object. Its output is
        (N, H, W, C) (a Conv2D, pooling, ... layer: the unit is channel ``filter_index``,
        averaged over positions) or (N, units) (Dense: the unit is ``filter_index``).
    filter_index : int
        In ``[0, C)``.
    steps : int, default 50
        Gradient-ascent steps.
    learning_rate : float, default 0.05
        The RMS size of each step, in input units (0.05 suits inputs scaled to [0, 1]).
    seed : int or None, default 0
        Seeds the starting noise; the same seed gives the same result.
    value_range : (float, float), optional
        If given, the input is clipped to this range after each step (e.g. (0, 1) for
        images the model saw divided by 255).
    input_shape : tuple of int, optional
        The shape of one input sample; needed only when the model's input shape has
        unknown (None) sizes.
    initial : array_like, optional
        The starting input, one sample as :func:`plot_feature_maps` takes it (e.g. a
        real image, to see what the filter would change in it); ``seed`` and
        ``input_shape`` are then unused.
    return_history : bool, default False
        Also return the target's mean activation before each step and after the last.

    Returns
    -------
    x : ndarray, shape ``model.input_shape[1:]``, the model's dtype
        The optimised input (no batch axis).
    history : ndarray, shape (steps + 1,), float64
        Only with ``return_history=True``: ``history[t]`` is the mean activation after
        ``t`` steps. With a ReLU network and a small ``learning_rate`` it rises
        (almost) monotonically; a filter that is zero everywhere on the start image has
        a zero gradient and stays where it is.

    Notes
    -----
    Costs ``steps + 1`` forward passes up to ``layer`` and ``steps`` backward passes, on
    a batch of one. Layer parameter gradients (``layer.grads``) are overwritten; weights
    are not changed.
    """
    index, units, steps, lr, value_range = _check_am_args(
        model, layer, filter_index, steps, learning_rate, seed, value_range)
    f = _check_filter("filter_index", filter_index, units, model.layers[index].name)
    x, history = _maximize(model, index, [f], steps, lr, seed, value_range, input_shape,
                           initial)
    if return_history:
        return x[0], history[:, 0]
    return x[0]


def confusion_matrix(y_true: Any, y_pred: Any, num_classes: Optional[int] = None) -> np.ndarray:
    """Counts of (true class, predicted class) pairs.

    Parameters
    ----------
    y_true, y_pred : array_like, shape (N,) of int labels, or (N, K) one-hot / scores
        A 2-D array stands for its argmax along axis 1 (so ``model.predict(x)`` can be
        passed as it is).
    num_classes : int, optional
        Default: the largest label seen + 1 (or K for 2-D input).

    Returns
    -------
    counts : ndarray, shape (num_classes, num_classes), int64
        ``counts[i, j]`` is the number of samples of true class i predicted as j.
    """
    t = _labels(y_true, "y_true")
    p = _labels(y_pred, "y_pred")
    if len(t) != len(p):
        raise ValueError(f"`y_true` and `y_pred` must have the same number of samples. "
                         f"Received: {len(t)} and {len(p)}")
    widths = [np.asarray(y).shape[1] for y in (y_true, y_pred) if np.ndim(y) == 2]
    seen = int(max(t.max(initial=-1), p.max(initial=-1))) + 1
    if num_classes is None:
        num_classes = max([seen] + widths)
    else:
        num_classes = _positive_int("num_classes", num_classes)
        if seen > num_classes:
            raise fail("num_classes", f"larger than every label (the largest is {seen - 1})",
                       num_classes)
    return np.bincount(t * num_classes + p, minlength=num_classes * num_classes).reshape(
        num_classes, num_classes).astype(np.int64)


def _labels(y: Any, name: str) -> np.ndarray:
    arr = np.asarray(y)
    if arr.ndim == 2:
        if arr.dtype.kind not in "fiub" or arr.shape[1] < 1:
            raise fail(name, "labels (N,) or scores (N, K) of numbers", arr, TypeError)
        return np.argmax(arr, axis=1).astype(np.int64)
    if arr.ndim != 1:
        raise fail(name, "integer labels of shape (N,) or scores of shape (N, K)", arr)
    if arr.dtype.kind == "f":
        if not (np.isfinite(arr).all() and np.all(arr == np.round(arr))):
            raise fail(name, "whole-number labels", arr, ValueError)
    elif arr.dtype.kind not in "iu":
        raise fail(name, "integer labels", arr, TypeError)
    if arr.size and arr.min() < 0:
        raise fail(name, "labels >= 0", arr)
    return arr.astype(np.int64)


# ------------------------------------------------------------------------ plots


def plot_classic_filters(image: Any, kernels: Sequence[Union[str, np.ndarray]] = (
        "sharpen", "blur", "edge", "emboss"), padding: str = "edge",
        filename: Optional[PathLike] = None):
    """An image and what classic kernels make of it, side by side.

    Parameters
    ----------
    image : array_like, shape (H, W) or (H, W, 3)
        uint8 (0..255) or float (any range); see :func:`fastconv.filters.apply`.
    kernels : sequence of str or (KH, KW) arrays
        Names from :data:`fastconv.filters.NAMES` or kernels.
    padding : str, default 'edge'
        As in :func:`fastconv.filters.apply`; 'edge' avoids dark borders.
    filename : path, optional
        Save the figure there (the extension picks the format).

    Returns
    -------
    fig : matplotlib.figure.Figure
        ``1 + len(kernels)`` panels. Each filtered image is shown with its own value
        range (gray, darkest to brightest), so zero-sum kernels such as 'edge' stay
        visible.
    """
    img = np.asarray(image)
    if isinstance(kernels, (str, np.ndarray)):
        kernels = [kernels]
    outs = [_filters.apply(img, k, padding=padding) for k in kernels]
    plt = _pyplot()
    fig, axes = _panels(plt, 1 + len(outs), ncols=1 + len(outs), size=2.2, title_space=0.3)
    titles = ["original"] + [k if isinstance(k, str) else "kernel" for k in kernels]
    for ax, pic, title in zip(axes, [img] + outs, titles):
        pic = pic.astype(np.float64)
        if pic.ndim == 3:
            span = np.ptp(pic)
            ax.imshow((pic - pic.min()) / (span if span > 0 else 1.0), interpolation="nearest")
        else:
            ax.imshow(pic, cmap="gray", interpolation="nearest")
        ax.set_title(title)
    fig.tight_layout()
    _save(fig, filename)
    return fig


def plot_history(history: Any, filename: Optional[PathLike] = None):
    """Loss and each metric per epoch, with its validation (``val_``) curve.

    Parameters
    ----------
    history : fastconv.callbacks.History or dict of str -> list of float
        What ``model.fit`` returns, or its ``.history`` dict (also Keras's).
    filename : path, optional

    Returns
    -------
    fig : matplotlib.figure.Figure
        One panel per series not starting with ``val_`` ('loss', 'accuracy', ...), in
        the history's order, holding that series (label 'training') and its ``val_``
        twin (label 'validation') if present; a ``val_`` series without a twin gets a
        panel of its own. x is the epoch, from 1.
    """
    logs = getattr(history, "history", history)
    if not isinstance(logs, Mapping):
        raise fail("history", "a History (what fit returns) or a dict of lists",
                   type(history).__name__, TypeError)
    series = {}
    for key, values in logs.items():
        try:
            arr = np.asarray(values)
        except (TypeError, ValueError):
            arr = np.asarray(None)
        if not isinstance(key, str) or arr.ndim != 1 or arr.dtype.kind not in "fiu" \
                or arr.size == 0:
            raise fail("history", "a dict of str -> non-empty lists of numbers",
                       f"{{{key!r}: {values!r}}}", TypeError)
        series[key] = arr.astype(np.float64)
    if not series:
        raise fail("history", "a history with at least one series (train first)", logs)
    bases = []
    for key in series:
        base = key[4:] if key.startswith("val_") else key
        if base not in bases:
            bases.append(base)
    epochs = getattr(history, "epoch", None)
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator
    fig, axes = plt.subplots(1, len(bases), figsize=(4.2 * len(bases), 3.4), squeeze=False)
    for ax, base in zip(axes[0], bases):
        for key, label, style in ((base, "training", "o-"), ("val_" + base, "validation",
                                                             "s--")):
            if key not in series:
                continue
            y = series[key]
            if epochs is not None and len(epochs) == len(y):
                x = np.asarray(epochs, dtype=np.float64) + 1
            else:
                x = np.arange(1, len(y) + 1, dtype=np.float64)
            ax.plot(x, y, style, label=label, markersize=4)
        ax.set_title(base)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(True, alpha=0.3)
        ax.legend()
    fig.tight_layout()
    _save(fig, filename)
    return fig


def plot_filters(layer: Any, channel: Optional[Union[int, str]] = None,
                 max_filters: Optional[int] = None, filename: Optional[PathLike] = None):
    """A grid of a Conv2D layer's kernels, one panel per filter (and input channel).

    Parameters
    ----------
    layer : Conv2D layer or array_like of shape (KH, KW, C_in, C_out)
        A built layer with a 4-D ``kernel`` (``model.layers[0]``), or the kernel.
    channel : None, int or 'rgb'
        None: as RGB when C_in == 3, else every input channel (C_in == 1: one panel per
        filter; more: one row per input channel, one column per filter). An int: only
        that input channel. 'rgb': the three input channels as one colour image
        (needs C_in == 3).
    max_filters : int, optional
        Show only the first ``max_filters`` filters.
    filename : path, optional

    Returns
    -------
    fig : matplotlib.figure.Figure
        One panel (axes) per shown kernel, titled with the filter index (and input
        channel). Gray panels share one colour scale centred at zero (red positive,
        blue negative, 'RdBu_r') so weights compare across filters; RGB panels map the
        layer's smallest weight to black and largest to white.
    """
    kernel = getattr(layer, "kernel", layer) if not isinstance(layer, np.ndarray) else layer
    if kernel is None or (isinstance(layer, Layer) and not hasattr(layer, "kernel")):
        raise fail("layer", "a built Conv2D layer or a kernel array (KH, KW, C_in, C_out)",
                   layer, TypeError)
    w = np.asarray(kernel)
    if w.dtype.kind not in "fiu" or w.ndim != 4 or 0 in w.shape:
        raise fail("layer", "a built Conv2D layer or a kernel array (KH, KW, C_in, C_out)",
                   getattr(layer, "name", w), TypeError if w.dtype.kind not in "fiu"
                   else ValueError)
    w = w.astype(np.float64)
    c_in, c_out = w.shape[2], w.shape[3]
    n = c_out if max_filters is None else min(c_out, _positive_int("max_filters",
                                                                   max_filters))
    if channel is None:
        mode = "rgb" if c_in == 3 else "all"
    elif isinstance(channel, str) and channel == "rgb":
        if c_in != 3:
            raise fail("channel", "None or an input channel index ('rgb' needs 3 input "
                       f"channels; this layer has {c_in})", channel)
        mode = "rgb"
    elif isinstance(channel, (int, np.integer)) and not isinstance(channel, bool):
        if not 0 <= channel < c_in:
            raise fail("channel", f"None, 'rgb' or an input channel in [0, {c_in - 1}]",
                       channel)
        mode = "one"
    else:
        raise fail("channel", "None, 'rgb' or an int", channel, TypeError)
    plt = _pyplot()
    if mode == "rgb":
        lo, hi = w.min(), w.max()
        fig, axes = _panels(plt, n)
        for f, ax in enumerate(axes):
            ax.imshow((w[:, :, :, f] - lo) / (hi - lo if hi > lo else 1.0),
                      interpolation="nearest")
            ax.set_title(str(f), fontsize=8)
    else:
        chans = list(range(c_in)) if mode == "all" else [int(channel)]
        vmax = float(np.abs(w[:, :, chans, :n]).max()) or 1.0
        if len(chans) == 1:
            fig, axes = _panels(plt, n)
            pairs = [(chans[0], f) for f in range(n)]
        else:
            fig, axes = _panels(plt, n * len(chans), ncols=n)
            pairs = [(c, f) for c in chans for f in range(n)]
        for ax, (c, f) in zip(axes, pairs):
            ax.imshow(w[:, :, c, f], cmap="RdBu_r", vmin=-vmax, vmax=vmax,
                      interpolation="nearest")
            ax.set_title(str(f) if len(chans) == 1 else f"{f}/ch{c}", fontsize=8)
    name = getattr(layer, "name", None)
    fig.suptitle(f"filters of '{name}'" if name else "filters")
    fig.tight_layout()
    _save(fig, filename)
    return fig


def plot_feature_maps(model: Any, image: Any, layers: Any = None, max_maps: int = 16,
                      ncols: int = 8, filename: Optional[PathLike] = None):
    """The feature maps one image produces in chosen layers.

    Parameters
    ----------
    model : fastconv.models.Sequential
        Built.
    image : array_like
        One sample of shape ``model.input_shape[1:]`` (e.g. (28, 28, 1)), with or
        without a leading batch axis of 1; (H, W) for a one-channel model. Scaled as the
        model saw it in training (e.g. divided by 255). Float or integer dtype.
    layers : int, str, Layer or a sequence of them, optional
        Default: every layer with an image-shaped (4-D) output.
    max_maps : int, default 16
        At most this many channels per layer (the first ones).
    ncols : int, default 8
        Panels per row.
    filename : path, optional

    Returns
    -------
    fig : matplotlib.figure.Figure
        For each layer a block of panels, one per channel, titled '<layer> [c]'; each
        panel shows that channel's map (``fig.axes[k].images[0].get_array()`` is the
        layer output), with its own gray scale. A non-image output (N, units) is drawn
        as a single strip.
    """
    _check_model(model)
    batch = _prepare_image(model, image)
    max_maps = _positive_int("max_maps", max_maps)
    ncols = _positive_int("ncols", ncols)
    if layers is None:
        index = [i for i, la in enumerate(model.layers) if len(la.output_shape) == 4]
        if not index:
            raise fail("layers", "given: this model has no layer with (N, H, W, C) output",
                       None)
    else:
        index = _layer_refs(model, layers)
    outs = model.intermediate_outputs(batch, index, training=False)
    plt = _pyplot()
    blocks = []
    for i, out in zip(index, outs):
        la = model.layers[i]
        a = out[0]
        if a.ndim == 3:
            a = np.moveaxis(a, _channel_axis(la, 4) - 1, -1)
            maps = [a[:, :, c] for c in range(min(a.shape[-1], max_maps))]
        else:
            maps = [a.reshape(1, -1)]
        blocks.append((la.name, maps))
    rows = sum(math.ceil(len(m) / ncols) for _, m in blocks)
    width = min(ncols, max(len(m) for _, m in blocks))
    fig, grid = plt.subplots(rows, width, figsize=(1.4 * width + 0.4, 1.5 * rows + 0.3),
                             squeeze=False)
    row = 0
    for name, maps in blocks:
        used = math.ceil(len(maps) / ncols)
        cells = list(grid[row:row + used].ravel())
        for k, ax in enumerate(cells):
            if k >= len(maps):
                fig.delaxes(ax)
                continue
            ax.imshow(maps[k], cmap="viridis", interpolation="nearest",
                      aspect="auto" if maps[k].shape[0] == 1 else "equal")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"{name} [{k}]" if len(maps) > 1 else name, fontsize=7)
        row += used
    fig.tight_layout()
    _save(fig, filename)
    return fig


def plot_activation_maximization(model: Any, layer: LayerRef,
                                 filter_indices: Optional[Sequence[int]] = None,
                                 steps: int = 50, learning_rate: float = 0.05,
                                 seed: Optional[int] = 0,
                                 value_range: Optional[Tuple[float, float]] = None,
                                 input_shape: Optional[Sequence[int]] = None,
                                 filename: Optional[PathLike] = None):
    """Inputs maximising several filters of one layer, one panel each.

    Parameters
    ----------
    model, layer, steps, learning_rate, seed, value_range, input_shape
        As in :func:`activation_maximization`; every filter starts from the same
        seeded noise image, and all are optimised together as one batch.
    filter_indices : sequence of int, optional
        Default: the first 16 filters (or all, if fewer).
    filename : path, optional

    Returns
    -------
    fig : matplotlib.figure.Figure
        One panel per filter, titled with the index and the final mean activation;
        one-channel inputs in gray, three-channel ones as RGB (each panel stretched to
        its own range), others as the channel mean.
    """
    index, units, steps, lr, value_range = _check_am_args(
        model, layer, 0, steps, learning_rate, seed, value_range)
    name = model.layers[index].name
    if filter_indices is None:
        chosen = list(range(min(units, 16)))
    else:
        if isinstance(filter_indices, (int, np.integer)):
            filter_indices = [filter_indices]
        chosen = [_check_filter("filter_indices", f, units, name) for f in filter_indices]
        if not chosen:
            raise fail("filter_indices", "at least one filter index", filter_indices)
    x, history = _maximize(model, index, chosen, steps, lr, seed, value_range, input_shape)
    plt = _pyplot()
    fig, axes = _panels(plt, len(chosen), size=1.6, title_space=0.3)
    for k, (ax, f) in enumerate(zip(axes, chosen)):
        img = x[k].astype(np.float64)
        if img.ndim == 3 and img.shape[-1] == 3:
            span = np.ptp(img)
            ax.imshow((img - img.min()) / (span if span > 0 else 1.0), interpolation="nearest")
        else:
            if img.ndim == 3:
                img = img.mean(axis=-1)
            ax.imshow(img, cmap="gray", interpolation="nearest")
        ax.set_title(f"{f}: {history[-1, k]:.3g}", fontsize=8)
    fig.suptitle(f"inputs maximising filters of '{name}'")
    fig.tight_layout()
    _save(fig, filename)
    return fig


def plot_confusion_matrix(y_true: Any, y_pred: Any, class_names: Optional[Sequence[str]] = None,
                          normalize: bool = False, filename: Optional[PathLike] = None):
    """The confusion matrix as a heat map with the count in each cell.

    Parameters
    ----------
    y_true, y_pred : array_like
        Labels (N,) or one-hot / scores (N, K), as in :func:`confusion_matrix`.
    class_names : sequence of str, optional
        One name per class (e.g. ``fashion_mnist.CLASS_NAMES``); sets the class count.
    normalize : bool, default False
        Colour and annotate each row as fractions of that true class.
    filename : path, optional

    Returns
    -------
    fig : matplotlib.figure.Figure
        One axes; ``fig.axes[0].images[0].get_array()`` is the counts (rows: true class,
        columns: predicted class), or the row fractions with ``normalize=True``.
    """
    num_classes = None
    if class_names is not None:
        if isinstance(class_names, str) or not all(isinstance(c, str) for c in class_names):
            raise fail("class_names", "a sequence of str, one per class", class_names,
                       TypeError)
        class_names = list(class_names)
        if not class_names:
            raise fail("class_names", "at least one name", class_names)
        num_classes = len(class_names)
        try:
            counts = confusion_matrix(y_true, y_pred, num_classes)
        except ValueError as err:
            if "num_classes" not in str(err):
                raise
            raise fail("class_names", "one name per class, as many as the labels need "
                       f"({err})", class_names) from None
    else:
        counts = confusion_matrix(y_true, y_pred)
        num_classes = len(counts)
        class_names = [str(i) for i in range(num_classes)]
    if normalize:
        totals = counts.sum(axis=1, keepdims=True)
        shown = counts / np.maximum(totals, 1)
    else:
        shown = counts
    plt = _pyplot()
    size = max(4.0, 0.55 * num_classes + 2.0)
    fig, ax = plt.subplots(figsize=(size + 1.0, size))
    im = ax.imshow(shown, cmap="Blues", interpolation="nearest")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    ax.set_xticks(range(num_classes))
    ax.set_yticks(range(num_classes))
    ax.set_xticklabels(class_names, rotation=45, ha="right")
    ax.set_yticklabels(class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    top = shown.max() if shown.size else 0
    for i in range(num_classes):
        for j in range(num_classes):
            value = shown[i, j]
            text = f"{value:.2f}" if normalize else str(int(value))
            ax.text(j, i, text, ha="center", va="center", fontsize=8,
                    color="white" if top and value > 0.5 * top else "black")
    accuracy = np.trace(counts) / max(counts.sum(), 1)
    ax.set_title(f"confusion matrix (accuracy {accuracy:.3f})")
    fig.tight_layout()
    _save(fig, filename)
    return fig
