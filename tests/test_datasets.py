"""Data set loaders: IDX and CIFAR-10 files made here, the search order, downloads
through pooch from file:// URLs (no server), errors, the embedded sample, and the real
Fashion-MNIST files when Debian's package dataset-fashion-mnist is installed."""

import gzip
import hashlib
import io
import os
import pickle
import struct
import tarfile
from pathlib import Path

import numpy as np
import pytest

from fastconv.datasets import (
    DataNotFoundError,
    DatasetFileError,
    _fetch,
    cifar10,
    fashion_mnist,
    mnist,
)

COUNTS = {"train": 6, "test": 4}
NAMES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}


def idx_bytes(array, magic=None):
    """IDX encoding written out by hand: 0, 0, 0x08, ndim, big-endian sizes, values."""
    array = np.asarray(array, dtype=np.uint8)
    head = magic if magic is not None else bytes([0, 0, 8, array.ndim])
    return head + b"".join(struct.pack(">I", s) for s in array.shape) + array.tobytes()


def write(path, payload, gz):
    path = Path(str(path) + ".gz") if gz else Path(path)
    path.write_bytes(gzip.compress(payload) if gz else payload)
    return path


def make_idx_set(directory, seed, gz=True, counts=COUNTS):
    """Write the four files into ``directory``; return the arrays written."""
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for split in ("train", "test"):
        n = counts[split]
        arrays[f"x_{split}"] = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        arrays[f"y_{split}"] = rng.integers(0, 10, n, dtype=np.uint8)
    for key, array in arrays.items():
        write(directory / NAMES[key], idx_bytes(array), gz)
    return arrays


def sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@pytest.fixture
def env(monkeypatch, tmp_path):
    """No real data: a private cache, FASTCONV_DATA unset, a private Debian dir, and
    small expected counts so that the test files stay tiny."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("FASTCONV_CACHE", str(cache))
    monkeypatch.delenv("FASTCONV_DATA", raising=False)
    system = tmp_path / "usr-share-fashion"
    monkeypatch.setattr(fashion_mnist._SPEC, "system", (("Debian's package", str(system)),))
    for module in (mnist, fashion_mnist):
        monkeypatch.setattr(module._SPEC, "counts", dict(COUNTS))
    monkeypatch.setattr(cifar10, "_PER_BATCH", 3)
    return {"tmp": tmp_path, "cache": cache, "system": system}


def check_equal(loaded, arrays):
    (x_train, y_train), (x_test, y_test) = loaded
    for got, key in ((x_train, "x_train"), (y_train, "y_train"), (x_test, "x_test"),
                     (y_test, "y_test")):
        assert got.dtype == np.uint8
        np.testing.assert_array_equal(got, arrays[key])


# --- IDX: MNIST and Fashion-MNIST -------------------------------------------------------

@pytest.mark.parametrize("gz", [True, False], ids=["gzipped", "plain"])
@pytest.mark.parametrize("module", [mnist, fashion_mnist], ids=["mnist", "fashion"])
def test_idx_round_trip(env, module, gz):
    arrays = make_idx_set(env["tmp"] / "d", seed=1, gz=gz)
    loaded = module.load_data(env["tmp"] / "d")
    assert loaded[0][0].shape == (6, 28, 28) and loaded[0][1].shape == (6,)
    assert loaded[1][0].shape == (4, 28, 28) and loaded[1][1].shape == (4,)
    check_equal(loaded, arrays)


def test_idx_dotted_names_accepted(env):
    d = env["tmp"] / "d"
    arrays = make_idx_set(d, seed=2, gz=False)
    for stem in NAMES.values():
        (d / stem).rename(d / stem.replace("-idx", ".idx"))
    check_equal(mnist.load_data(d), arrays)


def corrupt(directory, key, how):
    path = directory / (NAMES[key] + ".gz")
    raw = gzip.decompress(path.read_bytes())
    if how == "magic":
        path.write_bytes(gzip.compress(b"\x00\x00\x09" + raw[3:]))
    elif how == "ndim":
        path.write_bytes(gzip.compress(b"\x00\x00\x08\x02" + raw[4:]))
    elif how == "truncated":
        path.write_bytes(gzip.compress(raw[:-5]))
    elif how == "too_long":
        path.write_bytes(gzip.compress(raw + b"\x00"))
    elif how == "cut_gzip":
        path.write_bytes(path.read_bytes()[:-20])
    elif how == "not_gzip":
        path.write_bytes(raw)
    elif how == "empty":
        path.write_bytes(gzip.compress(b""))
    return path


@pytest.mark.parametrize("how, words", [
    ("magic", "magic number"),
    ("ndim", "3-D"),
    ("truncated", "truncated"),
    ("too_long", "too long"),
    ("cut_gzip", "gzip"),
    ("not_gzip", "gzip"),
    ("empty", "magic number"),
])
def test_idx_corrupt_files_name_the_file(env, how, words):
    d = env["tmp"] / "d"
    make_idx_set(d, seed=3)
    bad = corrupt(d, "x_train", how)
    with pytest.raises(DatasetFileError) as info:
        mnist.load_data(d)
    assert str(bad) in str(info.value)
    assert words in str(info.value)


@pytest.mark.parametrize("counts, key", [
    ({"train": 7, "test": 4}, "x_train"),
    ({"train": 6, "test": 5}, "x_test"),
])
def test_idx_wrong_counts(env, counts, key):
    d = env["tmp"] / "d"
    make_idx_set(d, seed=4, counts=counts)
    with pytest.raises(DatasetFileError, match="must hold") as info:
        mnist.load_data(d)
    assert NAMES[key] in str(info.value)


def test_idx_images_and_labels_disagree(env):
    d = env["tmp"] / "d"
    make_idx_set(d, seed=5)
    write(d / NAMES["y_train"], idx_bytes(np.zeros(5, np.uint8)), gz=True)
    with pytest.raises(DatasetFileError, match="5 labels"):
        mnist.load_data(d)


def test_idx_wrong_image_size(env):
    d = env["tmp"] / "d"
    make_idx_set(d, seed=6)
    write(d / NAMES["x_test"], idx_bytes(np.zeros((4, 32, 32), np.uint8)), gz=True)
    with pytest.raises(DatasetFileError, match=r"\(4, 32, 32\)"):
        mnist.load_data(d)


def test_idx_label_out_of_range(env):
    d = env["tmp"] / "d"
    make_idx_set(d, seed=7)
    write(d / NAMES["y_test"], idx_bytes(np.array([0, 1, 10, 2], np.uint8)), gz=True)
    with pytest.raises(DatasetFileError, match="label 10"):
        mnist.load_data(d)


# --- search order ----------------------------------------------------------------------

def test_search_order(env, monkeypatch):
    t = env["tmp"]
    given = make_idx_set(t / "given", seed=10)
    from_env = make_idx_set(t / "envdir" / "fashion-mnist", seed=11)   # in the subdir
    cached = make_idx_set(env["cache"] / "fashion-mnist", seed=12)
    system = make_idx_set(env["system"], seed=13, gz=False)
    monkeypatch.setenv("FASTCONV_DATA", str(t / "envdir"))

    check_equal(fashion_mnist.load_data(t / "given", download=False), given)
    check_equal(fashion_mnist.load_data(download=False), from_env)
    # A `path` without the files does not stop the search.
    check_equal(fashion_mnist.load_data(t / "nothing-here", download=False), from_env)
    monkeypatch.delenv("FASTCONV_DATA")
    check_equal(fashion_mnist.load_data(download=False), cached)
    for f in (env["cache"] / "fashion-mnist").iterdir():
        f.unlink()
    check_equal(fashion_mnist.load_data(download=False), system)


def test_incomplete_set_is_skipped(env):
    make_idx_set(env["tmp"] / "partial", seed=14)
    (env["tmp"] / "partial" / (NAMES["y_test"] + ".gz")).unlink()
    cached = make_idx_set(env["cache"] / "mnist", seed=15)
    check_equal(mnist.load_data(env["tmp"] / "partial", download=False), cached)


def test_cache_dir_default_and_override(monkeypatch, tmp_path):
    monkeypatch.delenv("FASTCONV_CACHE", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert _fetch.cache_dir() == tmp_path / "home" / ".fastconv" / "datasets"
    monkeypatch.setenv("FASTCONV_CACHE", str(tmp_path / "c"))
    assert _fetch.cache_dir() == tmp_path / "c"


# --- downloading (pooch, file:// URLs, no server) ----------------------------------------

def file_remotes(source_dir, spec, sha=None):
    return tuple(
        _fetch.Remote(r.fname, (source_dir / r.fname).as_uri(),
                      sha if sha is not None else sha256(source_dir / r.fname))
        for r in spec.remotes
    )


def test_download_into_cache(env, monkeypatch):
    mirror = env["tmp"] / "mirror"
    arrays = make_idx_set(mirror, seed=20)
    monkeypatch.setattr(mnist._SPEC, "remotes", file_remotes(mirror, mnist._SPEC))
    check_equal(mnist.load_data(), arrays)
    landed = sorted(p.name for p in (env["cache"] / "mnist").iterdir())
    assert landed == sorted(n + ".gz" for n in NAMES.values())   # no temporary files left
    # Now found in the cache: the mirror is not needed any more.
    for f in mirror.iterdir():
        f.unlink()
    check_equal(mnist.load_data(), arrays)


def test_download_checksum_mismatch_keeps_nothing(env, monkeypatch):
    mirror = env["tmp"] / "mirror"
    make_idx_set(mirror, seed=21)
    monkeypatch.setattr(mnist._SPEC, "remotes", file_remotes(mirror, mnist._SPEC, "0" * 64))
    with pytest.raises(ValueError, match="SHA-256") as info:
        mnist.load_data()
    assert "train-images-idx3-ubyte.gz" in str(info.value)
    assert not isinstance(info.value, DataNotFoundError)
    assert list((env["cache"] / "mnist").iterdir()) == []


def test_offline_error_lists_every_place(env, monkeypatch):
    import pooch
    import requests

    def no_network(self, url, output_file, pooch_obj, check_only=False):
        raise requests.exceptions.ConnectionError(f"cannot reach {url}")

    monkeypatch.setattr(pooch.HTTPDownloader, "__call__", no_network)
    monkeypatch.setenv("FASTCONV_DATA", str(env["tmp"] / "envdir"))
    given = env["tmp"] / "given"
    with pytest.raises(DataNotFoundError) as info:
        fashion_mnist.load_data(given)
    msg = str(info.value)
    for place in (given, env["tmp"] / "envdir", env["cache"], env["system"]):
        assert str(place) in msg
    assert "FASTCONV_DATA" in msg and "cannot reach" in msg
    assert "apt-get install dataset-fashion-mnist" in msg
    assert "fashion-mnist.s3-website" in msg
    assert not list((env["cache"] / "fashion-mnist").glob("*.gz"))


def test_download_false_is_offline(env):
    with pytest.raises(DataNotFoundError, match="download=False") as info:
        mnist.load_data(download=False)
    assert "(not set)" in str(info.value)      # neither path nor FASTCONV_DATA given
    assert not (env["cache"] / "mnist").exists()


def test_official_checksums_are_well_formed():
    for module in (mnist, fashion_mnist):
        assert [r.fname for r in module._SPEC.remotes] == [n + ".gz" for n in NAMES.values()]
    for r in mnist._SPEC.remotes + fashion_mnist._SPEC.remotes + cifar10._REMOTES:
        assert len(r.sha256) == 64 and int(r.sha256, 16) >= 0
        assert r.url.endswith("/" + r.fname)


# --- CIFAR-10 ------------------------------------------------------------------------

def cifar_batch(rng, n, protocol=2):
    data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
    labels = [int(v) for v in rng.integers(0, 10, n)]
    batch = {b"batch_label": b"testing batch", b"labels": labels, b"data": data,
             b"filenames": [b"img_%d.png" % i for i in range(n)]}
    return data, labels, pickle.dumps(batch, protocol=protocol)


def make_cifar(root, seed, as_tar, n=3):
    """Write the six batches (as the directory or the .tar.gz); return what was written."""
    rng = np.random.default_rng(seed)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    written = {name: cifar_batch(rng, n) for name in names}
    root.mkdir(parents=True, exist_ok=True)
    if as_tar:
        archive = root / "cifar-10-python.tar.gz"
        with tarfile.open(archive, "w:gz") as tar:
            for name, (_, _, raw) in written.items():
                info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
                info.size = len(raw)
                tar.addfile(info, io.BytesIO(raw))
    else:
        folder = root / "cifar-10-batches-py"
        folder.mkdir()
        for name, (_, _, raw) in written.items():
            (folder / name).write_bytes(raw)
    return written


def check_cifar(loaded, written, n=3):
    (x_train, y_train), (x_test, y_test) = loaded
    assert x_train.shape == (5 * n, 32, 32, 3) and y_train.shape == (5 * n, 1)
    assert x_test.shape == (n, 32, 32, 3) and y_test.shape == (n, 1)
    assert {a.dtype for a in (x_train, y_train, x_test, y_test)} == {np.dtype(np.uint8)}
    data, labels, _ = written["data_batch_2"]
    # Row layout: 1024 red, then green, then blue values, each 32x32 row-major.
    for image, row, channel, col in [(0, 0, 0, 0), (1, 5, 2, 31), (2, 31, 1, 7)]:
        assert x_train[n + image, row, col, channel] == data[image, channel * 1024 + row * 32 + col]
    assert y_train[n:2 * n, 0].tolist() == labels
    assert y_test[:, 0].tolist() == written["test_batch"][1]


@pytest.mark.parametrize("as_tar", [True, False], ids=["tar.gz", "directory"])
def test_cifar_round_trip(env, as_tar):
    written = make_cifar(env["tmp"] / "c", seed=30, as_tar=as_tar)
    check_cifar(cifar10.load_data(env["tmp"] / "c"), written)
    inner = "cifar-10-python.tar.gz" if as_tar else "cifar-10-batches-py"
    check_cifar(cifar10.load_data(env["tmp"] / "c" / inner), written)


def test_cifar_search_order(env, monkeypatch):
    from_env = make_cifar(env["tmp"] / "envdir" / "cifar-10", seed=31, as_tar=False)
    cached = make_cifar(env["cache"] / "cifar-10", seed=32, as_tar=True)
    monkeypatch.setenv("FASTCONV_DATA", str(env["tmp"] / "envdir"))
    check_cifar(cifar10.load_data(download=False), from_env)
    monkeypatch.delenv("FASTCONV_DATA")
    check_cifar(cifar10.load_data(download=False), cached)


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_cifar_pickle_cannot_run_code(env):
    make_cifar(env["tmp"] / "c", seed=33, as_tar=False)
    marker = env["tmp"] / "pwned"
    bad = env["tmp"] / "c" / "cifar-10-batches-py" / "data_batch_3"
    bad.write_bytes(pickle.dumps({b"data": _Evil(marker), b"labels": []}, protocol=2))
    with pytest.raises(DatasetFileError, match="refers to") as info:
        cifar10.load_data(env["tmp"] / "c")
    assert str(bad) in str(info.value)
    assert not marker.exists()


@pytest.mark.parametrize("how, words", [
    ("truncated_pickle", "cannot be read"),
    ("not_a_dict", "must be a dict"),
    ("wrong_count", "(3, 3072)"),
    ("bad_label", "integers 0-9"),
])
def test_cifar_bad_batches(env, how, words):
    make_cifar(env["tmp"] / "c", seed=34, as_tar=False)
    bad = env["tmp"] / "c" / "cifar-10-batches-py" / "test_batch"
    raw = bad.read_bytes()
    rng = np.random.default_rng(0)
    if how == "truncated_pickle":
        bad.write_bytes(raw[: len(raw) // 2])
    elif how == "not_a_dict":
        bad.write_bytes(pickle.dumps([1, 2, 3], protocol=2))
    elif how == "wrong_count":
        bad.write_bytes(cifar_batch(rng, 4)[2])
    elif how == "bad_label":
        data, labels, _ = cifar_batch(rng, 3)
        bad.write_bytes(pickle.dumps({b"data": data, b"labels": [0, 11, 2]}, protocol=2))
    with pytest.raises(DatasetFileError) as info:
        cifar10.load_data(env["tmp"] / "c")
    assert str(bad) in str(info.value) and words in str(info.value)


def test_cifar_truncated_archive(env):
    make_cifar(env["tmp"] / "c", seed=35, as_tar=True)
    archive = env["tmp"] / "c" / "cifar-10-python.tar.gz"
    archive.write_bytes(archive.read_bytes()[:-200])
    with pytest.raises(DatasetFileError, match="tar.gz") as info:
        cifar10.load_data(archive)
    assert str(archive) in str(info.value)


def test_cifar_download_and_mismatch(env, monkeypatch):
    written = make_cifar(env["tmp"] / "mirror", seed=36, as_tar=True)
    archive = env["tmp"] / "mirror" / "cifar-10-python.tar.gz"
    remote = _fetch.Remote(archive.name, archive.as_uri(), "f" * 64)
    monkeypatch.setattr(cifar10, "_REMOTES", (remote,))
    with pytest.raises(ValueError, match="SHA-256"):
        cifar10.load_data()
    assert list((env["cache"] / "cifar-10").iterdir()) == []
    remote = _fetch.Remote(archive.name, archive.as_uri(), sha256(archive))
    monkeypatch.setattr(cifar10, "_REMOTES", (remote,))
    check_cifar(cifar10.load_data(), written)
    assert [p.name for p in (env["cache"] / "cifar-10").iterdir()] == [archive.name]


def test_cifar_offline_error(env, monkeypatch):
    missing = env["tmp"] / "nowhere" / "cifar-10-python.tar.gz"
    remote = _fetch.Remote(missing.name, missing.as_uri(), "0" * 64)
    monkeypatch.setattr(cifar10, "_REMOTES", (remote,))
    with pytest.raises(DataNotFoundError) as info:
        cifar10.load_data(env["tmp"] / "given")
    msg = str(info.value)
    assert str(env["tmp"] / "given") in msg and str(env["cache"]) in msg
    assert "FASTCONV_DATA" in msg and str(missing) in msg


# --- the embedded sample -----------------------------------------------------------------

def test_sample_shapes_dtypes_balance():
    (x_train, y_train), (x_test, y_test) = fashion_mnist.load_sample()
    assert x_train.shape == (2000, 28, 28) and y_train.shape == (2000,)
    assert x_test.shape == (500, 28, 28) and y_test.shape == (500,)
    assert {a.dtype for a in (x_train, y_train, x_test, y_test)} == {np.dtype(np.uint8)}
    assert np.bincount(y_train, minlength=10).tolist() == [200] * 10
    assert np.bincount(y_test, minlength=10).tolist() == [50] * 10
    # Real images, not blanks: Fashion-MNIST's mean pixel is about 73.
    assert 50 < x_train.mean() < 100 and x_train.max() == 255


def test_sample_is_small_and_licensed():
    files = list(fashion_mnist.SAMPLE_DIR.iterdir())
    assert sum(f.stat().st_size for f in files) < 1.15e6
    licence = (fashion_mnist.SAMPLE_DIR / "LICENSE").read_text(encoding="utf-8")
    assert "Zalando SE" in licence and "MIT" in licence


DEBIAN = Path(fashion_mnist.DEBIAN_DIR)
needs_debian = pytest.mark.skipif(
    not (DEBIAN / "train-labels-idx1-ubyte.gz").is_file(),
    reason="Debian's dataset-fashion-mnist is not installed (apt-get install "
           "dataset-fashion-mnist)",
)


@pytest.fixture(scope="module")
def real_fashion():
    saved = {k: os.environ.pop(k, None) for k in ("FASTCONV_DATA", "FASTCONV_CACHE")}
    os.environ["FASTCONV_CACHE"] = os.devnull + "-no-cache"   # never the real home
    try:
        return fashion_mnist.load_data(download=False)
    finally:
        for k, v in saved.items():
            os.environ.pop(k, None)
            if v is not None:
                os.environ[k] = v


@needs_debian
def test_real_fashion_mnist_from_debian(real_fashion):
    (x_train, y_train), (x_test, y_test) = real_fashion
    assert x_train.shape == (60000, 28, 28) and y_train.shape == (60000,)
    assert x_test.shape == (10000, 28, 28) and y_test.shape == (10000,)
    assert x_train.dtype == np.uint8 and y_test.dtype == np.uint8
    assert np.bincount(y_train, minlength=10).tolist() == [6000] * 10
    assert np.bincount(y_test, minlength=10).tolist() == [1000] * 10


@needs_debian
def test_sample_comes_from_the_real_files(real_fashion):
    (x_train, y_train), (x_test, y_test) = real_fashion
    (sx_train, sy_train), (sx_test, sy_test) = fashion_mnist.load_sample()
    for x, y, sx, sy, k in ((x_train, y_train, sx_train, sy_train, 200),
                            (x_test, y_test, sx_test, sy_test, 50)):
        keep = np.zeros(len(y), bool)
        for label in range(10):
            keep[np.flatnonzero(y == label)[:k]] = True
        np.testing.assert_array_equal(sx, x[keep])
        np.testing.assert_array_equal(sy, y[keep])


def test_cifar_numpy1_pickles_accepted(env):
    # The original batches name numpy.core.multiarray (NumPy 1.x), not numpy._core.
    written = make_cifar(env["tmp"] / "c", seed=37, as_tar=False)
    folder = env["tmp"] / "c" / "cifar-10-batches-py"
    for f in folder.iterdir():
        raw = f.read_bytes()
        legacy = raw.replace(b"numpy._core.multiarray\n", b"numpy.core.multiarray\n")
        assert b"numpy.core.multiarray\n_reconstruct" in legacy
        f.write_bytes(legacy)
    check_cifar(cifar10.load_data(env["tmp"] / "c"), written)
