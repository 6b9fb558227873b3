"""load_model and load_weights on damaged and hostile files: a clear ValueError, no
pickle, nothing read or written outside the archive, bounded memory."""

import io
import json
import os
import zipfile

import numpy as np
import pytest

from fastconv.layers import Conv2D, Dense, Flatten
from fastconv.models import Sequential, load_model


def _model():
    model = Sequential([Conv2D(2, 3, input_shape=(5, 5, 1)), Flatten(), Dense(3)])
    model.compile(optimizer="sgd", loss="mse")
    return model


def _archive(path, members):
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            z.writestr(name, data)


def _parts(path):
    with zipfile.ZipFile(path) as z:
        return json.loads(z.read("fastconv.json")), z.read("weights.npz")


@pytest.fixture
def saved(tmp_path):
    path = str(tmp_path / "good.zip")
    _model().save(path)
    return path


def test_truncated_files(saved, tmp_path):
    data = open(saved, "rb").read()
    for n in (0, 10, len(data) // 3, len(data) - 30, len(data) - 1):
        bad = tmp_path / f"cut{n}.zip"
        bad.write_bytes(data[:n])
        with pytest.raises(ValueError, match="not a readable fastconv model file"):
            load_model(str(bad))


def flip_bits(path, tmp_path, count, suffix):
    """Load ``count`` copies of ``path``, each with one random bit flipped: every load must
    raise ValueError or give a Sequential (a flip in bytes nothing reads, zip padding say).
    Returns the outcomes seen, {"error", "loaded"}."""
    data = bytearray(open(path, "rb").read())
    rng = np.random.default_rng(0)
    outcomes = set()
    for _ in range(count):
        flipped = bytearray(data)
        i = int(rng.integers(len(flipped)))
        flipped[i] ^= 1 << int(rng.integers(8))
        bad = tmp_path / f"flip{suffix}"
        bad.write_bytes(bytes(flipped))
        try:
            model = load_model(str(bad))
        except ValueError:
            outcomes.add("error")
            continue
        assert isinstance(model, Sequential)
        outcomes.add("loaded")
    return outcomes


def test_bit_flips_raise_value_error_or_load_a_valid_model(saved, tmp_path):
    assert "error" in flip_bits(saved, tmp_path, 150, ".zip")


def test_zip_bombs_are_refused_before_they_are_inflated(saved, tmp_path):
    header, npz = _parts(saved)
    bomb = tmp_path / "bomb.zip"
    # The weights member inflates to 50 MB of zeros for weights declared to take 300 B.
    _archive(bomb, {"fastconv.json": json.dumps(header), "weights.npz": b"\0" * (50 << 20)})
    assert os.path.getsize(bomb) < 200_000
    with pytest.raises(ValueError, match="declares .* bytes for weights that take at most"):
        load_model(str(bomb))
    big_json = tmp_path / "json_bomb.zip"
    _archive(big_json, {"fastconv.json": b" " * (80 << 20), "weights.npz": npz})
    with pytest.raises(ValueError, match="zip bomb"):
        load_model(str(big_json))


def test_a_weight_whose_npy_header_claims_more_than_its_bytes(saved, tmp_path):
    header, _ = _parts(saved)
    header["weights"][0]["shape"] = [1 << 20, 1 << 10]  # 4 GB claimed
    npz = io.BytesIO()
    np.savez(npz, w0=np.zeros((3, 3, 1, 2), np.float32))
    bad = tmp_path / "claims.zip"
    _archive(bad, {"fastconv.json": json.dumps(header), "weights.npz": npz.getvalue()})
    with pytest.raises(ValueError, match="the header says|declares"):
        load_model(str(bad))


def test_member_names_outside_the_archive_are_never_used(saved, tmp_path):
    header, npz = _parts(saved)
    inner = tmp_path / "inner"
    inner.mkdir()
    bad = inner / "dots.zip"
    _archive(bad, {"fastconv.json": json.dumps(header), "weights.npz": npz,
                   "../escaped.txt": b"x", "/tmp/absolute_fastconv_test.txt": b"x"})
    before = set(os.listdir(tmp_path))
    model = load_model(str(bad))
    assert isinstance(model, Sequential)
    assert set(os.listdir(tmp_path)) == before
    assert not os.path.exists("/tmp/absolute_fastconv_test.txt")


@pytest.mark.parametrize("change", [
    lambda h: h.update(weights=5),
    lambda h: h.update(weights=[{"name": 3, "shape": [2]}]),
    lambda h: h["weights"][0].update(shape=["a"]),
    lambda h: h.update(model=[]),
    lambda h: h["model"].update(class_name=7),
    lambda h: h["model"]["config"].update(layers="conv"),
    lambda h: h["model"]["config"]["layers"][1]["config"].update(filters="many"),
    lambda h: h["model"]["config"]["layers"][1]["config"].update(kernel_size=[3, 3, 3]),
    lambda h: h["model"]["config"]["layers"][1].update(class_name="os.system"),
    lambda h: h.update(format_version=99),
    lambda h: h.update(format="pickle"),
])
def test_json_of_the_wrong_types(saved, tmp_path, change):
    header, npz = _parts(saved)
    change(header)
    bad = tmp_path / "types.zip"
    _archive(bad, {"fastconv.json": json.dumps(header), "weights.npz": npz})
    with pytest.raises(ValueError):
        load_model(str(bad))


def test_weights_that_disagree_with_the_config(saved, tmp_path):
    header, _ = _parts(saved)
    model = _model()
    for wrong in (
        [np.zeros((3, 3, 1, 3), np.float32)] + model.get_weights()[1:],  # shape
        [w.astype(np.int32) for w in model.get_weights()],                # dtype
    ):
        npz = io.BytesIO()
        np.savez(npz, **{f"w{i}": w for i, w in enumerate(wrong)})
        h = json.loads(json.dumps(header))
        for e, w in zip(h["weights"], wrong):
            e["shape"], e["dtype"] = list(w.shape), w.dtype.name
        bad = tmp_path / "disagree.zip"
        _archive(bad, {"fastconv.json": json.dumps(h), "weights.npz": npz.getvalue()})
        with pytest.raises(ValueError, match="must have shape|weights are float32"):
            load_model(str(bad))
    # Pickled (object) arrays are never loaded.
    npz = io.BytesIO()
    np.savez(npz, w0=np.array([{"a": 1}], dtype=object))
    bad = tmp_path / "pickle.zip"
    _archive(bad, {"fastconv.json": json.dumps(header), "weights.npz": npz.getvalue()})
    with pytest.raises(ValueError):
        load_model(str(bad))


def test_nan_weights_load_with_a_warning(tmp_path):
    model = _model()
    weights = model.get_weights()
    weights[2][0, 0] = np.nan
    model.set_weights(weights)
    path = str(tmp_path / "nan.zip")
    model.save(path)
    with pytest.warns(RuntimeWarning, match="NaN or inf"):
        loaded = load_model(path)
    assert np.isnan(loaded.get_weights()[2][0, 0])
    with pytest.warns(RuntimeWarning, match="NaN or inf"):
        _model().load_weights(path)


def test_an_idx_gzip_bomb_is_read_no_further_than_its_header_declares(tmp_path):
    import gzip
    import struct
    import tracemalloc

    from fastconv.datasets._idx import DatasetFileError, read_idx

    path = tmp_path / "train-images-idx3-ubyte.gz"
    with gzip.open(path, "wb") as f:
        f.write(bytes([0, 0, 8, 3]) + struct.pack(">3I", 2, 28, 28))
        f.write(b"\0" * (200 << 20))  # 200 MB where 1,568 bytes are declared
    tracemalloc.start()
    try:
        with pytest.raises(DatasetFileError, match="too long"):
            read_idx(path, 3)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20, peak
