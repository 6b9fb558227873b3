"""image_dataset_from_directory and the image helpers, on folders of PNG and JPEG files
written here."""

import numpy as np
import pytest

from fastconv import keras
from fastconv.keras import layers

PIL = pytest.importorskip("PIL.Image")


def _folder(tmp_path, counts=(("cats", 3), ("dogs", 2)), size=(12, 10), ext=".png"):
    rng = np.random.default_rng(0)
    for name, n in counts:
        d = tmp_path / name
        d.mkdir()
        for i in range(n):
            # the first pixel's red value tells which class and file it came from
            arr = rng.integers(0, 256, size + (3,), dtype=np.uint8)
            arr[0, 0, 0] = 10 * (ord(name[0]) - ord("a")) + i
            PIL.fromarray(arr).save(d / f"{i:02d}{ext}")
    (tmp_path / counts[0][0] / "notes.txt").write_text("not an image")
    return tmp_path


def test_classes_labels_and_order(tmp_path):
    root = _folder(tmp_path)
    ds = keras.utils.image_dataset_from_directory(root, image_size=(12, 10), batch_size=2,
                                                  shuffle=False, verbose=False)
    assert ds.class_names == ["cats", "dogs"]
    assert len(ds) == 3 and len(ds.file_paths) == 5      # notes.txt skipped
    batches = list(ds)
    x = np.concatenate([b[0] for b in batches])
    y = np.concatenate([b[1] for b in batches])
    assert x.shape == (5, 12, 10, 3) and x.dtype == np.float32
    assert y.tolist() == [0, 0, 0, 1, 1] and y.dtype == np.int32
    # sorted files, class by class: cats 0-2 then dogs 0-1 (red of the first pixel)
    assert x[:, 0, 0, 0].tolist() == [20, 21, 22, 30, 31]
    assert list(ds) and len(list(ds)) == 3                # iterable again


def test_label_modes_color_modes_and_resizing(tmp_path):
    root = _folder(tmp_path, size=(8, 8))
    cat = keras.utils.image_dataset_from_directory(root, label_mode="categorical",
                                                   image_size=(4, 6), shuffle=False,
                                                   color_mode="grayscale", verbose=False)
    x, y = next(iter(cat))
    assert x.shape == (5, 4, 6, 1) and y.tolist()[0] == [1.0, 0.0]
    binary = keras.utils.image_dataset_from_directory(root, label_mode="binary",
                                                      color_mode="rgba", shuffle=False,
                                                      image_size=(8, 8), verbose=False)
    x, y = next(iter(binary))
    assert x.shape == (5, 8, 8, 4) and y.shape == (5, 1) and np.all(x[..., 3] == 255)
    alone = keras.utils.image_dataset_from_directory(root, label_mode=None, shuffle=False,
                                                     image_size=(8, 8), verbose=False)
    assert next(iter(alone)).shape == (5, 8, 8, 3)
    # a 2x upscale of a constant image stays constant; crop_to_aspect_ratio keeps the centre
    cropped = keras.utils.image_dataset_from_directory(root, image_size=(8, 4), shuffle=False,
                                                       crop_to_aspect_ratio=True, verbose=False)
    assert next(iter(cropped))[0].shape == (5, 8, 4, 3)


def test_shuffle_split_and_seed(tmp_path):
    root = _folder(tmp_path, counts=(("a", 6), ("b", 4)))
    kw = dict(image_size=(12, 10), batch_size=4, seed=7, validation_split=0.3, verbose=False)
    train, val = keras.utils.image_dataset_from_directory(root, subset="both", **kw)
    assert len(train.file_paths) == 7 and len(val.file_paths) == 3
    assert not set(train.file_paths) & set(val.file_paths)
    again = keras.utils.image_dataset_from_directory(root, subset="training", **kw)
    assert again.file_paths == train.file_paths          # same seed, same split
    first = np.concatenate([b[1] for b in train])
    second = np.concatenate([b[1] for b in train])       # a new epoch: reshuffled
    assert sorted(first.tolist()) == sorted(second.tolist())
    with pytest.raises(ValueError, match="must provide a `seed`"):
        keras.utils.image_dataset_from_directory(root, validation_split=0.2,
                                                 subset="training", verbose=False)


def test_fit_on_an_image_folder(tmp_path):
    root = _folder(tmp_path, counts=(("a", 6), ("b", 6)), size=(16, 16))
    ds = keras.utils.image_dataset_from_directory(root, image_size=(16, 16), batch_size=4,
                                                  seed=1, verbose=False)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((16, 16, 3)), layers.Rescaling(1 / 255),
                              layers.Conv2D(4, 3, activation="relu"),
                              layers.GlobalAveragePooling2D(),
                              layers.Dense(2, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    history = model.fit(ds, epochs=2, validation_data=ds, verbose=0)
    assert len(history.history["loss"]) == 2 and "val_accuracy" in history.history
    assert model.predict(ds).shape == (12, 2)


def test_a_corrupt_file_is_named_and_bad_arguments(tmp_path):
    root = _folder(tmp_path)
    (root / "dogs" / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    ds = keras.utils.image_dataset_from_directory(root, image_size=(12, 10), shuffle=False,
                                                  verbose=False)
    with pytest.raises(ValueError, match="broken.jpg.*cannot be decoded"):
        list(ds)
    with pytest.raises(ValueError, match="directory"):
        keras.utils.image_dataset_from_directory(root / "missing")
    with pytest.raises(ValueError, match="label_mode"):
        keras.utils.image_dataset_from_directory(root, label_mode="sparse")
    with pytest.raises(ValueError, match="exactly 2"):
        (root / "birds").mkdir()
        PIL.fromarray(np.zeros((4, 4, 3), np.uint8)).save(root / "birds" / "x.png")
        keras.utils.image_dataset_from_directory(root, label_mode="binary", verbose=False)


def test_image_helpers_round_trip(tmp_path):
    arr = np.arange(4 * 5 * 3, dtype=np.float32).reshape(4, 5, 3)
    path = tmp_path / "x.png"
    keras.utils.save_img(path, arr, scale=False)
    img = keras.utils.load_img(path)
    np.testing.assert_array_equal(keras.utils.img_to_array(img), arr)
    assert keras.utils.img_to_array(img, data_format="channels_first").shape == (3, 4, 5)
    small = keras.utils.load_img(path, color_mode="grayscale", target_size=(2, 3))
    assert keras.utils.img_to_array(small).shape == (2, 3, 1)
    stretched = keras.utils.img_to_array(keras.utils.array_to_img(arr))   # scaled to 0-255
    assert stretched.min() == 0 and stretched.max() == 255
    assert [p.name for p in tmp_path.iterdir()] == ["x.png"]   # no temporary file left
