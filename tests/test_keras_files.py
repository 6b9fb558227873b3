"""Keras 3's native files: .keras archives and .weights.h5 weights.

The fixtures keras3_*.keras, keras3_sequential.weights.h5 and keras3_models_io.npz
(inputs and Keras's predictions on them) were written by Keras 3.15 with
tools/make_keras_fixtures.py; Keras is not needed here. That Keras loads what fastconv
writes is checked by tools/check_keras_loads.py (it needs Keras, so it is not a test).
"""

import io
import json
import os
import shutil
import zipfile

import numpy as np
import pytest

h5py = pytest.importorskip("h5py")

from fastconv import _keras_format  # noqa: E402
from fastconv.layers import (  # noqa: E402
    Activation,
    AveragePooling2D,
    BatchNormalization,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    Input,
    Maxout,
    MaxPooling2D,
)
from fastconv.losses import CategoricalCrossentropy, SparseCategoricalCrossentropy  # noqa: E402
from fastconv.models import Model, Sequential, load_model  # noqa: E402
from fastconv.optimizers import Adam  # noqa: E402

DATA = os.path.join(os.path.dirname(__file__), "data")
SEQ = os.path.join(DATA, "keras3_sequential.keras")
FUN = os.path.join(DATA, "keras3_functional.keras")
IO = np.load(os.path.join(DATA, "keras3_models_io.npz"))


def _close(got, want):
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def _h5_layout(data: bytes, skip=("optimizer",)):
    """{dataset path: shape} of an HDF5 file's bytes, optimizer state left out."""
    out = {}
    with h5py.File(io.BytesIO(data), "r") as h5:
        h5.visititems(lambda name, obj: out.__setitem__(name, obj.shape)
                      if isinstance(obj, h5py.Dataset) and name.split("/")[0] not in skip
                      else None)
    return out


def _members(path):
    with zipfile.ZipFile(path) as z:
        return {n: z.read(n) for n in z.namelist()}


def _write(path, members):
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            z.writestr(name, data)


def _edited(source, change, tmp_path):
    """A copy of the Keras file ``source`` whose config.json ``change`` has edited."""
    members = _members(source)
    config = json.loads(members["config.json"])
    change(config)
    members["config.json"] = json.dumps(config)
    bad = tmp_path / "edited.keras"
    _write(bad, members)
    return str(bad)


@pytest.mark.parametrize("path,key", [(SEQ, "seq"), (FUN, "fun")])
def test_a_keras_file_predicts_what_keras_predicted(path, key):
    model = load_model(path)
    _close(model.predict(IO[f"{key}_x"], verbose=0), IO[f"{key}_y"])


def test_the_keras_sequential_file_builds_keras_s_architecture_and_compiles():
    model = load_model(SEQ)
    assert isinstance(model, Sequential) and model.name == "seq_cnn"
    assert [type(layer).__name__ for layer in model.layers] == [
        "Conv2D", "BatchNormalization", "MaxPooling2D", "Conv2D", "Activation",
        "AveragePooling2D", "Flatten", "Dropout", "Dense"]
    assert model.layers[3].use_bias is False and model.layers[3].padding == "same"
    assert model.layers[7].rate == pytest.approx(0.3)
    assert isinstance(model.loss, CategoricalCrossentropy)
    assert isinstance(model.optimizer, Adam)
    assert model.optimizer.get_config()["learning_rate"] == pytest.approx(1e-3)
    assert load_model(SEQ, compile=False).loss is None


def test_the_keras_functional_file_keeps_names_and_the_loss_options():
    model = load_model(FUN)
    assert isinstance(model, Model) and model.name == "fun_cnn"
    names = [layer.name for layer in model.layers]
    assert {"image", "conv_a", "conv_b", "bn", "logits"} <= set(names)
    assert isinstance(model.loss, SparseCategoricalCrossentropy)
    assert model.loss.get_config()["from_logits"] is True


def _keras_like_sequential():
    return Sequential([
        Input((12, 12, 3)), Conv2D(4, 3, activation="relu"), BatchNormalization(),
        MaxPooling2D(2), Conv2D(6, 3, padding="same", use_bias=False), Activation("relu"),
        AveragePooling2D(2), Flatten(), Dropout(0.3), Dense(5, activation="softmax")])


def test_keras_weights_h5_load_into_a_model_built_in_code():
    model = _keras_like_sequential()
    model.load_weights(os.path.join(DATA, "keras3_sequential.weights.h5"))
    _close(model.predict(IO["seq_x"], verbose=0), IO["seq_y"])


@pytest.mark.parametrize("path,key", [(SEQ, "seq"), (FUN, "fun")])
def test_round_trip_through_a_keras_file(path, key, tmp_path):
    model = load_model(path)
    out = str(tmp_path / "again.keras")
    model.save(out)
    assert os.listdir(tmp_path) == ["again.keras"]  # no temporary left behind
    again = load_model(out)
    _close(again.predict(IO[f"{key}_x"], verbose=0), IO[f"{key}_y"])
    assert [type(a).__name__ for a in again.layers] == [type(b).__name__ for b in model.layers]
    assert type(again.loss) is type(model.loss)
    weights = str(tmp_path / "w.weights.h5")
    model.save_weights(weights)
    fresh = load_model(out)
    fresh.set_weights([np.zeros_like(w) for w in fresh.get_weights()])
    fresh.load_weights(weights)
    _close(fresh.predict(IO[f"{key}_x"], verbose=0), IO[f"{key}_y"])


@pytest.mark.parametrize("path", [SEQ, FUN])
def test_the_layout_written_is_keras_s(path, tmp_path):
    keras_members = _members(path)
    out = str(tmp_path / "mine.keras")
    load_model(path).save(out)
    mine = _members(out)
    assert set(mine) == {"config.json", "metadata.json", "model.weights.h5"}
    # The same datasets with the same shapes: layers/<class name>/vars/<i>.
    assert _h5_layout(mine["model.weights.h5"]) == _h5_layout(keras_members["model.weights.h5"])
    theirs, ours = (json.loads(m["config.json"]) for m in (keras_members, mine))
    assert ours["class_name"] == theirs["class_name"]
    assert set(ours) <= set(theirs)
    assert set(ours["config"]) <= set(theirs["config"])
    for a, b in zip(ours["config"]["layers"], theirs["config"]["layers"]):
        assert a["class_name"] == b["class_name"] and a["module"] == b["module"]
        assert a["config"]["name"] == b["config"]["name"]
        assert set(a["config"]) <= set(b["config"]), a["class_name"]
        assert set(a) - {"build_config"} <= set(b)
        for arg, value in a["config"].items():
            if not isinstance(value, dict) and arg != "dtype":
                assert value == b["config"][arg], (a["class_name"], arg)
    assert set(ours["compile_config"]) == set(theirs["compile_config"])
    assert json.loads(mine["metadata.json"])["keras_version"].startswith("3.")


def test_the_h5_names_count_classes_in_layer_order():
    inp = Input((6, 6, 1))
    a = Conv2D(2, 3, name="zeta")(inp)
    b = Conv2D(2, 3, name="alpha")(a)
    model = Model(inp, Dense(1)(Flatten()(b)))
    paths = [p for _, p in _keras_format._weight_paths(model)]
    assert paths == ["layers/input_layer", "layers/conv2d", "layers/conv2d_1",
                     "layers/flatten", "layers/dense"]
    assert _keras_format.snake_case("GlobalAveragePooling2D") == "global_average_pooling2d"
    assert _keras_format.snake_case("ReLU") == "re_lu"


def test_fastconv_zip_files_named_keras_still_load(tmp_path):
    old = tmp_path / "old_model.keras"
    shutil.copy(os.path.join(DATA, "fastconv_0.1_sequential.zip"), old)
    io_old = np.load(os.path.join(DATA, "fastconv_0.1_sequential_io.npz"))
    model = load_model(str(old))
    _close(model.predict(io_old["x"], verbose=0), io_old["pred"])


def test_a_layer_keras_has_and_fastconv_lacks_is_named(tmp_path):
    bad = _edited(SEQ, lambda c: c["config"]["layers"][2].update(
        class_name="SpectralNormalization"), tmp_path)
    with pytest.raises(ValueError, match="'SpectralNormalization' is not in fastconv"):
        load_model(bad)


def test_a_keras_option_fastconv_lacks_is_named_unless_it_is_inert(tmp_path):
    # groups=1 (the fixture's) loads; any other value is named.
    bad = _edited(SEQ, lambda c: c["config"]["layers"][1]["config"].update(groups=3), tmp_path)
    with pytest.raises(ValueError, match="no argument 'groups'.*groups=3"):
        load_model(bad)


def test_saving_a_layer_keras_lacks_in_keras_format_is_refused(tmp_path):
    model = Sequential([Input((4,)), Maxout(2, num_pieces=2)])
    with pytest.raises(ValueError, match="Maxout"):
        model.save(str(tmp_path / "m.keras"))
    assert os.listdir(tmp_path) == []
    model.save(str(tmp_path / "m.zip"))  # fastconv's own format takes it
    assert isinstance(load_model(str(tmp_path / "m.zip")), Sequential)


# -- damaged and hostile files -------------------------------------------------------------
def test_truncated_keras_files(tmp_path):
    data = open(SEQ, "rb").read()
    for n in (0, 10, len(data) // 3, len(data) - 30, len(data) - 1):
        bad = tmp_path / f"cut{n}.keras"
        bad.write_bytes(data[:n])
        with pytest.raises(ValueError, match="not a readable"):
            load_model(str(bad))


def test_bit_flips_raise_value_error_or_load_a_model(tmp_path):
    from .test_hostile_files import flip_bits

    assert "error" in flip_bits(SEQ, tmp_path, 120, ".keras")


def test_huge_declared_members_are_refused_before_they_are_inflated(tmp_path):
    members = _members(SEQ)
    bomb = tmp_path / "bomb.keras"
    _write(bomb, {"config.json": members["config.json"],
                  "model.weights.h5": b"\0" * (60 << 20)})
    with pytest.raises(ValueError, match="declares 62,914,560 bytes for weights that take"):
        load_model(str(bomb))
    json_bomb = tmp_path / "json_bomb.keras"
    _write(json_bomb, {"config.json": b" " * (80 << 20),
                       "model.weights.h5": members["model.weights.h5"]})
    with pytest.raises(ValueError, match="beyond|zip bomb"):
        load_model(str(json_bomb))


@pytest.mark.parametrize("change", [
    lambda c: c.update(config=[]),
    lambda c: c.update(class_name=7),
    lambda c: c["config"].update(layers="conv"),
    lambda c: c["config"]["layers"].__setitem__(1, "conv"),
    lambda c: c["config"]["layers"][1]["config"].update(filters="many"),
    lambda c: c["config"]["layers"][1]["config"].update(kernel_size=[3, 3, 3]),
    lambda c: c["config"]["layers"][1].update(class_name="os.system"),
    lambda c: c["config"]["layers"][0]["config"].update(batch_shape="big"),
    lambda c: c["config"]["layers"][1]["config"]["dtype"]["config"].update(name="int8"),
    lambda c: c["compile_config"].update(optimizer={"class_name": "Eval", "config": {}}),
    lambda c: c["compile_config"]["optimizer"]["config"].update(learning_rate="x"),
])
def test_config_json_of_the_wrong_types(tmp_path, change):
    with pytest.raises(ValueError):
        load_model(_edited(SEQ, change, tmp_path))


@pytest.mark.parametrize("graph_change", [
    lambda c: c["config"].update(output_layers=["nowhere", 0, 0]),
    lambda c: c["config"]["layers"][1]["inbound_nodes"][0]["args"][0]["config"].update(
        keras_history=["logits", 0, 0]),
    lambda c: c["config"]["layers"][1].update(inbound_nodes={"a": 1}),
    lambda c: c["config"]["layers"][1]["inbound_nodes"][0]["kwargs"].update(scale=2),
])
def test_functional_graphs_that_do_not_hold_together(tmp_path, graph_change):
    with pytest.raises(ValueError):
        load_model(_edited(FUN, graph_change, tmp_path))


def _with_h5(tmp_path, edit):
    members = _members(SEQ)
    buf = io.BytesIO(members["model.weights.h5"])
    with h5py.File(buf, "a") as h5:
        edit(h5)
    members["model.weights.h5"] = buf.getvalue()
    bad = tmp_path / "weights.keras"
    _write(bad, members)
    return str(bad)


@pytest.mark.parametrize("edit,message", [
    (lambda h5: (h5.__delitem__("layers/conv2d/vars/0"),
                 h5.create_dataset("layers/conv2d/vars/0", data=np.zeros((3, 3, 3, 5),
                                                                        np.float32))),
     "has shape \\(3, 3, 3, 5\\); layer 'conv2d' expects \\(3, 3, 3, 4\\)"),
    (lambda h5: (h5.__delitem__("layers/dense/vars/1"),
                 h5.create_dataset("layers/dense/vars/1", data=np.zeros(5, np.int64))),
     "not a float dataset"),
    (lambda h5: h5.__delitem__("layers/dense/vars/1"), "has 2 weights; the file holds 1"),
    (lambda h5: h5.__delitem__("layers/batch_normalization"), "has 4 weights; the file holds 0"),
    (lambda h5: h5.create_dataset("layers/conv2d/vars/2", data=np.zeros(4, np.float32)),
     "has 2 weights; the file holds 3"),
])
def test_weights_that_disagree_with_the_architecture(tmp_path, edit, message):
    with pytest.raises(ValueError, match=message):
        load_model(_with_h5(tmp_path, edit))


def test_a_dataset_declaring_a_huge_shape_is_refused_before_it_is_read(tmp_path):
    def edit(h5):
        del h5["layers/dense/vars/0"]
        h5.create_dataset("layers/dense/vars/0", shape=(1 << 20, 1 << 14), dtype="f4")
    with pytest.raises(ValueError, match="has shape \\(1048576, 16384\\)"):
        load_model(_with_h5(tmp_path, edit))


def test_damaged_weights_h5_given_to_load_weights(tmp_path):
    data = open(os.path.join(DATA, "keras3_sequential.weights.h5"), "rb").read()
    bad = tmp_path / "cut.weights.h5"
    bad.write_bytes(data[: len(data) // 2])
    model = _keras_like_sequential()
    before = model.get_weights()
    with pytest.raises(ValueError, match="not a readable Keras weights file"):
        model.load_weights(str(bad))
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)  # nothing changed


def test_every_layer_round_trips_through_a_keras_file(tmp_path):
    # Every layer class in KERAS_LAYERS (the ones added after the Keras fixtures), in
    # one model: saved as .keras and loaded back, it predicts the same bits.
    import fastconv.keras as keras
    from fastconv import models
    from fastconv._keras_format import KERAS_LAYERS
    from fastconv.keras import layers

    keras.utils.set_random_seed(0)
    inp = keras.Input((12, 12, 3))
    x = layers.ZeroPadding2D(1)(inp)
    x = layers.Cropping2D(1)(x)
    x = layers.UpSampling2D(2, interpolation="bilinear")(x)
    x = layers.Resizing(12, 12)(x)
    x = layers.CenterCrop(10, 10)(x)
    for aug in (layers.RandomCrop(8, 8), layers.RandomFlip(), layers.RandomZoom(0.1),
                layers.RandomContrast(0.1), layers.RandomBrightness(0.1),
                layers.RandomRotation(0.1), layers.RandomTranslation(0.1, 0.1)):
        x = aug(x)
    x = layers.DepthwiseConv2D(3, padding="same")(x)
    x = layers.SeparableConv2D(4, 3)(x)
    x = layers.Conv2DTranspose(3, 3, strides=2)(x)
    x = layers.LayerNormalization()(x)
    x = layers.GroupNormalization(groups=3)(x)
    for noise in (layers.SpatialDropout2D(0.1), layers.GaussianNoise(0.1),
                  layers.GaussianDropout(0.1), layers.ActivityRegularization(l1=0.01)):
        x = noise(x)
    x = layers.Reshape((-1, 3))(layers.Permute((2, 1, 3))(x))
    x = layers.AveragePooling1D()(layers.MaxPooling1D()(layers.Conv1D(4, 3)(x)))
    a, b = layers.GlobalAveragePooling1D()(x), layers.GlobalMaxPooling1D()(x)
    model = keras.Model(inp, layers.Dense(2, activation="softmax")(layers.concatenate([a, b])))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    assert {type(la).__name__ for la in model.layers} <= set(KERAS_LAYERS)
    x = np.random.default_rng(0).random((2, 12, 12, 3)).astype("float32")
    path = tmp_path / "all.keras"
    model.save(path)
    again = models.load_model(path)
    assert [type(la).__name__ for la in again.layers] == [type(la).__name__ for la in model.layers]
    np.testing.assert_array_equal(again.predict(x), model.predict(x))
