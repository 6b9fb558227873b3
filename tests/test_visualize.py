"""fastconv.visualize: the numbers behind the pictures, bad input, saving, the example.

Plot tests look inside the returned Figure (axes, images, lines, texts) and compare with
values computed here independently; they run on the Agg backend and are skipped only
when matplotlib is not installed.
"""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fastconv import visualize
from fastconv.callbacks import History
from fastconv.layers import Conv2D, Dense, Dropout, Flatten, MaxPooling2D
from fastconv.models import Sequential
from fastconv.utils import set_random_seed

from . import naive

os.environ.setdefault("MPLBACKEND", "Agg")

try:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
except ImportError:  # pragma: no cover - matplotlib is in the dev extra
    plt = None

needs_mpl = pytest.mark.skipif(plt is None, reason="matplotlib is not installed")

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    if plt is not None:
        plt.close("all")


def small_cnn(dtype="float32", seed=3):
    """Conv(relu) -> pool -> conv -> flatten -> dropout -> dense(relu) -> dense(softmax)."""
    set_random_seed(seed)
    return Sequential([
        Conv2D(4, 3, activation="relu", input_shape=(10, 10, 1), name="c1"),
        MaxPooling2D(2, name="p1"),
        Conv2D(3, 2, name="c2"),
        Flatten(name="flat"),
        Dropout(0.5, name="drop"),
        Dense(6, activation="relu", name="d1"),
        Dense(3, activation="softmax", name="out"),
    ], dtype=dtype)


def image(seed=0, shape=(10, 10)):
    return np.random.default_rng(seed).random(shape).astype(np.float32)


# ------------------------------------------------------------------ matplotlib missing


def test_missing_matplotlib_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    with pytest.raises(ImportError, match=r"pip install 'fastconv\[plot\]'"):
        visualize.plot_history({"loss": [1.0, 0.5]})


# ------------------------------------------------------------------ feature extraction


def test_feature_extractor_equals_layer_by_layer_forward():
    model = small_cnn()
    x = np.random.default_rng(1).random((2, 10, 10, 1)).astype(np.float32)
    c1, p1, d1 = visualize.feature_extractor(model, ["c1", 1, model.get_layer("d1")])(x)
    # The first layer against the loop oracle, independent of fastconv's kernels.
    layer = model.layers[0]
    expected = np.maximum(naive.conv2d(x.astype(np.float64), layer.kernel, layer.bias,
                                       (1, 1), (0, 0, 0, 0), (1, 1)), 0)
    np.testing.assert_allclose(c1, expected, rtol=1e-5, atol=1e-6)
    # Every requested layer against running the layers one at a time (Dropout off).
    acts, h = [], x
    for la in model.layers:
        h = la.forward(h, False)[0]
        acts.append(h.copy())
    np.testing.assert_array_equal(p1, acts[1])
    np.testing.assert_array_equal(d1, acts[5])
    np.testing.assert_array_equal(p1, c1.reshape(2, 4, 2, 4, 2, 4).max(axis=(2, 4)))


def test_feature_extractor_returns_copies():
    model = small_cnn()
    x = image()[None, ..., None]
    extract = visualize.feature_extractor(model, 0)
    first = extract(x)[0]
    kept = first.copy()
    extract(np.zeros_like(x))
    np.testing.assert_array_equal(first, kept)


@pytest.mark.parametrize("layers, match", [
    ("nope", "`layers` must be the name of a layer"),
    (7, r"`layers` must be a layer index in \[-7, 6\]"),
    (-8, "`layers` must be a layer index"),
    ([], "`layers` must be at least one layer"),
])
def test_feature_extractor_bad_layers(layers, match):
    with pytest.raises(ValueError, match=match):
        visualize.feature_extractor(small_cnn(), layers)


def test_feature_extractor_bad_model():
    with pytest.raises(TypeError, match="`model` must be a fastconv model"):
        visualize.feature_extractor(object(), 0)
    unbuilt = Sequential([Conv2D(2, 3)])
    with pytest.raises(ValueError, match="`model` must be built"):
        visualize.feature_extractor(unbuilt, 0)


# ------------------------------------------------------------------ activation maximisation


def assert_rises(history, rel_tol=1e-3):
    """Non-decreasing within ``rel_tol`` of the range, and a clear overall rise."""
    span = history.max() - history.min()
    assert np.diff(history).min() >= -rel_tol * span, np.diff(history).min()
    assert history[-1] > history[0] + 0.5 * span


# Units alive on the start image of this seeded model (c1 2 and 3, d1 1, 3, 4 and 5 are
# zero there, so their gradient is zero too: see test_dead_unit_stays).
@pytest.mark.parametrize("layer, unit", [("c1", 1), (0, 0), ("c2", 2), ("d1", 2),
                                         (-1, 2)])
def test_activation_maximization_rises_and_is_reproducible(layer, unit):
    model = small_cnn()
    before = [w.copy() for w in model.weights]
    x, hist = visualize.activation_maximization(model, layer, unit, steps=25,
                                                learning_rate=0.02, seed=5,
                                                return_history=True)
    assert x.shape == (10, 10, 1) and x.dtype == np.float32
    assert hist.shape == (26,)
    assert_rises(hist)
    # The history measures the target: recompute the final value with a forward pass.
    out = visualize.feature_extractor(model, layer)(x[None])[0]
    value = out[..., unit].mean()
    np.testing.assert_allclose(hist[-1], value, rtol=1e-5, atol=1e-7)
    # Same seed, same image; another seed, another start.
    again = visualize.activation_maximization(model, layer, unit, steps=25,
                                              learning_rate=0.02, seed=5)
    np.testing.assert_array_equal(x, again)
    other = visualize.activation_maximization(model, layer, unit, steps=25,
                                              learning_rate=0.02, seed=6)
    assert not np.array_equal(x, other)
    for w, b in zip(model.weights, before):
        np.testing.assert_array_equal(w, b)


def test_dead_unit_stays():
    model = small_cnn()
    x, hist = visualize.activation_maximization(model, "d1", 1, steps=3, seed=5,
                                                return_history=True)
    np.testing.assert_array_equal(hist, 0.0)
    start = visualize.activation_maximization(model, "d1", 1, steps=1, seed=5,
                                              learning_rate=1e-30)
    np.testing.assert_array_equal(x, start)


@pytest.mark.parametrize("layer, unit", [("c1", 1), ("d1", 2)])
def test_activation_maximization_step_follows_numerical_gradient(layer, unit):
    """One step moves along d(mean activation)/d(input) / RMS, checked by differences."""
    model = small_cnn(dtype="float64")
    x0 = 0.5 + 0.1 * np.random.default_rng(2).standard_normal((10, 10, 1))
    lr = 1e-3
    x1 = visualize.activation_maximization(model, layer, unit, steps=1, learning_rate=lr,
                                           initial=x0)
    extract = visualize.feature_extractor(model, layer)

    def objective(z):
        return extract(z[None])[0][..., unit].mean()

    g = np.zeros_like(x0)
    eps = 1e-6
    for idx in np.ndindex(x0.shape):
        plus, minus = x0.copy(), x0.copy()
        plus[idx] += eps
        minus[idx] -= eps
        g[idx] = (objective(plus) - objective(minus)) / (2 * eps)
    assert np.abs(g).max() > 0
    expected = lr * g / np.sqrt(np.mean(g * g))
    np.testing.assert_allclose(x1 - x0, expected, rtol=1e-4, atol=1e-9)


def test_activation_maximization_value_range_and_channels_first_shape():
    model = small_cnn()
    x = visualize.activation_maximization(model, "c1", 0, steps=10, learning_rate=0.5,
                                          value_range=(0.0, 1.0))
    assert x.min() >= 0.0 and x.max() <= 1.0


def test_activation_maximization_after_training_reaches_the_input():
    # Training skips the first layer's input gradient (nothing needs it there); the
    # input gradient of activation maximization must still reach the input.
    model = small_cnn()
    model.compile(optimizer="sgd", loss="categorical_crossentropy")
    x = np.random.default_rng(0).random((4,) + model.input_shape[1:]).astype(np.float32)
    y = np.eye(model.output_shape[-1])[[0, 1, 0, 1]].astype(np.float32)
    model.train_on_batch(x, y)
    start = np.full(model.input_shape[1:], 0.5, np.float32)
    out = visualize.activation_maximization(model, "c1", 0, steps=2, initial=start)
    assert not np.array_equal(out, start)


@pytest.mark.parametrize("kwargs, exc, match", [
    ({"layer": "missing"}, ValueError, "`layer` must be the name of a layer"),
    ({"layer": 9}, ValueError, r"`layer` must be a layer index in \[-7, 6\]"),
    ({"layer": 1.5}, TypeError, "`layer` must be a layer index"),
    ({"filter_index": 4}, ValueError, r"`filter_index` must be an int in \[0, 3\]"),
    ({"filter_index": -1}, ValueError, "`filter_index` must be an int in"),
    ({"filter_index": "0"}, TypeError, "`filter_index` must be an int"),
    ({"steps": 0}, ValueError, "`steps` must be a positive int"),
    ({"learning_rate": -1.0}, ValueError, "`learning_rate` must be a positive finite"),
    ({"learning_rate": float("nan")}, ValueError, "`learning_rate` must be"),
    ({"seed": "x"}, TypeError, "`seed` must be"),
    ({"value_range": (1, 0)}, ValueError, "`value_range` must be a pair"),
    ({"initial": np.zeros((3, 3))}, ValueError, "`initial` must be one sample of shape"),
])
def test_activation_maximization_bad_input(kwargs, exc, match):
    args = {"layer": "c1", "filter_index": 0, "steps": 2}
    args.update(kwargs)
    with pytest.raises(exc, match=match):
        visualize.activation_maximization(small_cnn(), **args)


# ------------------------------------------------------------------ confusion matrix


def test_confusion_matrix_hand_made():
    y_true = [0, 0, 1, 2, 2, 2, 1]
    y_pred = [0, 1, 1, 2, 0, 2, 1]
    expected = np.array([[1, 1, 0],
                         [0, 2, 0],
                         [1, 0, 2]])
    np.testing.assert_array_equal(visualize.confusion_matrix(y_true, y_pred), expected)
    # Scores (as model.predict returns) stand for their argmax; num_classes pads.
    scores = np.eye(4)[y_pred] * 0.7 + 0.1
    np.testing.assert_array_equal(visualize.confusion_matrix(y_true, scores)[:3, :3], expected)
    padded = visualize.confusion_matrix(y_true, y_pred, num_classes=5)
    assert padded.shape == (5, 5) and padded.sum() == 7


@pytest.mark.parametrize("y_true, y_pred, exc, match", [
    ([0, 1], [0], ValueError, "same number of samples"),
    ([0, -1], [0, 1], ValueError, "`y_true` must be labels >= 0"),
    ([0, 1.5], [0, 1], ValueError, "`y_true` must be whole-number labels"),
    ([0, 1], ["a", "b"], TypeError, "`y_pred` must be integer labels"),
    ([[[0]]], [0], ValueError, "`y_true` must be integer labels of shape"),
])
def test_confusion_matrix_bad_input(y_true, y_pred, exc, match):
    with pytest.raises(exc, match=match):
        visualize.confusion_matrix(y_true, y_pred)


@needs_mpl
def test_plot_confusion_matrix_counts_and_text():
    y_true = [0, 0, 1, 2, 2, 2, 1]
    y_pred = [0, 1, 1, 2, 0, 2, 1]
    fig = visualize.plot_confusion_matrix(y_true, y_pred, ["a", "b", "c"])
    ax = fig.axes[0]
    shown = np.asarray(ax.images[0].get_array())
    np.testing.assert_array_equal(shown, [[1, 1, 0], [0, 2, 0], [1, 0, 2]])
    texts = [t.get_text() for t in ax.texts]
    assert texts == ["1", "1", "0", "0", "2", "0", "1", "0", "2"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "b", "c"]
    norm = visualize.plot_confusion_matrix(y_true, y_pred, ["a", "b", "c"], normalize=True)
    rows = np.asarray(norm.axes[0].images[0].get_array())
    np.testing.assert_allclose(rows, [[0.5, 0.5, 0], [0, 1, 0], [1 / 3, 0, 2 / 3]])
    with pytest.raises(ValueError, match="`class_names` must be one name per class"):
        visualize.plot_confusion_matrix(y_true, y_pred, ["a", "b"])
    with pytest.raises(TypeError, match="`class_names` must be a sequence of str"):
        visualize.plot_confusion_matrix(y_true, y_pred, "abc")


# ------------------------------------------------------------------ history


@needs_mpl
def test_plot_history_one_line_per_series():
    logs = {"loss": [1.0, 0.6, 0.4], "accuracy": [0.5, 0.7, 0.8],
            "val_loss": [1.1, 0.8, 0.7], "val_accuracy": [0.45, 0.6, 0.65]}
    fig = visualize.plot_history(logs)
    assert [ax.get_title() for ax in fig.axes] == ["loss", "accuracy"]
    found = {}
    for ax in fig.axes:
        for line in ax.get_lines():
            key = ("val_" if line.get_label() == "validation" else "") + ax.get_title()
            found[key] = (line.get_xdata(), line.get_ydata())
    assert sorted(found) == sorted(logs)
    for key, values in logs.items():
        np.testing.assert_array_equal(found[key][0], [1, 2, 3])
        np.testing.assert_array_equal(found[key][1], values)


@needs_mpl
def test_plot_history_from_history_object_and_orphan_val():
    h = History()
    h.epoch = [2, 3]  # resumed with initial_epoch=2
    h.history = {"loss": [0.5, 0.4], "val_mae": [0.3, 0.2]}
    fig = visualize.plot_history(h)
    assert [ax.get_title() for ax in fig.axes] == ["loss", "mae"]
    (loss_line,) = fig.axes[0].get_lines()
    np.testing.assert_array_equal(loss_line.get_xdata(), [3, 4])
    (mae_line,) = fig.axes[1].get_lines()
    assert mae_line.get_label() == "validation"
    np.testing.assert_array_equal(mae_line.get_ydata(), [0.3, 0.2])


@pytest.mark.parametrize("history, exc", [
    ({}, ValueError), ([1, 2], TypeError), ({"loss": ["a"]}, TypeError),
    ({"loss": []}, TypeError), ({"loss": 1.0}, TypeError),
])
@needs_mpl
def test_plot_history_bad_input(history, exc):
    with pytest.raises(exc, match="`history` must be"):
        visualize.plot_history(history)


# ------------------------------------------------------------------ filters


@needs_mpl
def test_plot_filters_one_panel_per_filter():
    model = small_cnn()
    layer = model.layers[0]
    fig = visualize.plot_filters(layer)
    assert len(fig.axes) == 4
    for f, ax in enumerate(fig.axes):
        np.testing.assert_array_equal(ax.images[0].get_array(), layer.kernel[:, :, 0, f])
        assert ax.get_title() == str(f)
    # Several input channels: one panel per (channel, filter); one channel on request.
    second = model.layers[2]  # kernel (2, 2, 4, 3)
    assert len(visualize.plot_filters(second).axes) == 12
    one = visualize.plot_filters(second, channel=3)
    assert len(one.axes) == 3
    np.testing.assert_array_equal(one.axes[2].images[0].get_array(), second.kernel[:, :, 3, 2])
    assert len(visualize.plot_filters(layer, max_filters=2).axes) == 2


@needs_mpl
def test_plot_filters_rgb():
    w = np.random.default_rng(0).standard_normal((3, 3, 3, 5))
    fig = visualize.plot_filters(w)
    assert len(fig.axes) == 5
    shown = np.asarray(fig.axes[4].images[0].get_array())
    np.testing.assert_allclose(shown, (w[..., 4] - w.min()) / (w.max() - w.min()))


@needs_mpl
def test_plot_filters_bad_input():
    model = small_cnn()
    with pytest.raises(TypeError, match="`layer` must be a built Conv2D layer"):
        visualize.plot_filters(model.layers[1])  # pooling has no kernel
    with pytest.raises(ValueError, match="`layer` must be a built Conv2D layer"):
        visualize.plot_filters(model.layers[5])  # Dense: 2-D kernel
    with pytest.raises(ValueError, match=r"`channel` must be None, 'rgb' or an input channel"):
        visualize.plot_filters(model.layers[0], channel=1)
    with pytest.raises(ValueError, match="`channel` must be None or an input channel"):
        visualize.plot_filters(model.layers[0], channel="rgb")


# ------------------------------------------------------------------ feature maps


@needs_mpl
def test_plot_feature_maps_show_the_layer_outputs():
    model = small_cnn()
    img = image(4)
    fig = visualize.plot_feature_maps(model, img)
    # Default: the layers with image-shaped output, c1 (4 maps), p1 (4), c2 (3).
    assert len(fig.axes) == 11
    h = img[None, ..., None]
    expected = []
    for la in model.layers[:3]:
        h = la.forward(h, False)[0]
        expected += [h[0, :, :, c].copy() for c in range(h.shape[-1])]
    for ax, want in zip(fig.axes, expected):
        np.testing.assert_array_equal(ax.images[0].get_array(), want)
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[0] == "c1 [0]" and titles[-1] == "c2 [2]"
    # Chosen layers, a batch axis of 1, a Dense output as one strip, max_maps.
    fig = visualize.plot_feature_maps(model, img[None, ..., None], layers=["c1", "d1"],
                                      max_maps=2)
    assert len(fig.axes) == 3
    assert np.asarray(fig.axes[2].images[0].get_array()).shape == (1, 6)


@pytest.mark.parametrize("img, exc, match", [
    (np.zeros((10,), np.float32), ValueError, r"`image` must be one sample of shape \(10, 10, 1\)"),
    (np.zeros((2, 10, 10, 1), np.float32), ValueError, "`image` must be one sample"),
    (np.zeros((10, 10, 3), np.float32), ValueError, "`image` must be one sample"),
    (np.zeros((10, 10), complex), TypeError, "`image` must be an array of real numbers"),
    (np.zeros((10, 10), bool), TypeError, "`image` must be an array of real numbers"),
    (np.full((10, 10), np.nan), ValueError, "`image` must be an array of finite numbers"),
])
@needs_mpl
def test_plot_feature_maps_bad_image(img, exc, match):
    with pytest.raises(exc, match=match):
        visualize.plot_feature_maps(small_cnn(), img)


@needs_mpl
def test_plot_feature_maps_bad_layers():
    with pytest.raises(ValueError, match="`layers` must be the name of a layer of this model"):
        visualize.plot_feature_maps(small_cnn(), image(), layers=["c1", "conv9"])
    with pytest.raises(ValueError, match="`layers` must be a layer index"):
        visualize.plot_feature_maps(small_cnn(), image(), layers=12)


# ------------------------------------------------------------------ AM plot, classic filters


@needs_mpl
def test_plot_activation_maximization_panels_match_single_runs():
    model = small_cnn()
    fig = visualize.plot_activation_maximization(model, "c1", [0, 3], steps=8, seed=1,
                                                 learning_rate=0.02)
    assert len(fig.axes) == 2
    for ax, f in zip(fig.axes, [0, 3]):
        single = visualize.activation_maximization(model, "c1", f, steps=8, seed=1,
                                                   learning_rate=0.02)
        np.testing.assert_allclose(ax.images[0].get_array(), single[..., 0], rtol=1e-4,
                                   atol=1e-5)
    assert len(visualize.plot_activation_maximization(model, "out", steps=2).axes) == 3
    with pytest.raises(ValueError, match=r"`filter_indices` must be an int in \[0, 3\]"):
        visualize.plot_activation_maximization(model, "c1", [0, 4], steps=2)


@needs_mpl
def test_plot_classic_filters_panels():
    img = np.zeros((8, 8), np.uint8)
    img[:, 4:] = 200
    fig = visualize.plot_classic_filters(img)
    assert [ax.get_title() for ax in fig.axes] == ["original", "sharpen", "blur", "edge",
                                                   "emboss"]
    edge = np.asarray(fig.axes[3].images[0].get_array())
    # The Laplacian of a vertical step, clipped to uint8: +200 on the dark side of the
    # step, -200 (clipped to 0) on the bright side, 0 elsewhere.
    np.testing.assert_array_equal(edge[:, 3], 200)
    assert edge[:, :3].max() == 0 and edge[:, 4:].max() == 0


# ------------------------------------------------------------------ saving


@needs_mpl
def test_save_writes_png_atomically(tmp_path):
    target = tmp_path / "history.png"
    target.write_bytes(b"old")
    visualize.plot_history({"loss": [1.0, 0.5]}, filename=target)
    data = target.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 1000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["history.png"]
    keep = tmp_path / "keep.txt"
    keep.write_text("precious")
    with pytest.raises(ValueError, match="`filename` must be a file name ending in one of"):
        visualize.plot_history({"loss": [1.0]}, filename=tmp_path / "keep.nope")
    with pytest.raises(ValueError, match="`filename` must be a path in an existing directory"):
        visualize.plot_history({"loss": [1.0]}, filename=tmp_path / "no" / "x.png")
    with pytest.raises(TypeError, match="`filename` must be a path"):
        visualize.plot_history({"loss": [1.0]}, filename=3)
    assert keep.read_text() == "precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["history.png", "keep.txt"]


# ------------------------------------------------------------------ the example


@needs_mpl
def test_see_inside_example_runs(tmp_path):
    pytest.importorskip("PIL")
    from PIL import Image

    script = ROOT / "examples" / "see_inside.py"
    env = dict(os.environ, MPLBACKEND="Agg")
    run = subprocess.run([sys.executable, str(script), "--sample", "--epochs", "1",
                          "--steps", "3", "--out", str(tmp_path)],
                         capture_output=True, text=True, timeout=120, env=env, cwd=ROOT)
    assert run.returncode == 0, run.stderr
    names = ["1_classic_filters.png", "2_history.png", "3_first_layer_filters.png",
             "4_feature_maps.png", "5_activation_maximization.png",
             "6_activation_maximization_classes.png", "7_confusion_matrix.png"]
    assert sorted(p.name for p in tmp_path.iterdir()) == names
    for name in names:
        with Image.open(tmp_path / name) as im:
            assert im.format == "PNG" and min(im.size) > 100
    accuracy = float(run.stdout.split("Test accuracy: ")[1].split()[0])
    assert 0.3 < accuracy <= 1.0  # one epoch on 2,000 images: well above chance (0.1)
