"""load_img, img_to_array, array_to_img, save_img (Keras's keras.utils functions)."""

import os

import numpy as np
import pytest

Image = pytest.importorskip("PIL.Image")

from fastconv.image_dataset import array_to_img, img_to_array, load_img, save_img  # noqa: E402


def _png(tmp_path, pixels, mode):
    path = str(tmp_path / f"img_{mode}.png")
    Image.fromarray(pixels, mode).save(path)
    return path


def test_colour_modes_and_channels(tmp_path):
    rgba = np.zeros((2, 3, 4), np.uint8)
    rgba[0, 0] = (255, 0, 0, 128)
    rgba[1, 2] = (0, 0, 255, 255)
    path = _png(tmp_path, rgba, "RGBA")
    assert img_to_array(load_img(path, color_mode="rgba")).shape == (2, 3, 4)
    rgb = img_to_array(load_img(path))
    assert rgb.dtype == np.float32 and rgb.shape == (2, 3, 3)
    np.testing.assert_array_equal(rgb[0, 0], [255, 0, 0])
    grey = img_to_array(load_img(path, color_mode="grayscale"))
    assert grey.shape == (2, 3, 1)
    # ITU-R 601-2 luma, Pillow's: L = R * 299/1000 + G * 587/1000 + B * 114/1000
    assert grey[0, 0, 0] == 76 and grey[1, 2, 0] == 29
    assert img_to_array(load_img(path), data_format="channels_first").shape == (3, 2, 3)


def test_target_size_and_keep_aspect_ratio(tmp_path):
    pixels = np.arange(4 * 8, dtype=np.uint8).reshape(4, 8) * 7
    path = _png(tmp_path, pixels, "L")
    small = img_to_array(load_img(path, color_mode="grayscale", target_size=(2, 4)))
    assert small.shape == (2, 4, 1)
    # nearest from 4x8 to 2x4 takes the centre-sampled pixels rows 1, 3 / cols 1, 3, 5, 7
    np.testing.assert_array_equal(small[:, :, 0], pixels[1::2, 1::2])
    square = img_to_array(load_img(path, color_mode="grayscale", target_size=(4, 4),
                                   keep_aspect_ratio=True))
    np.testing.assert_array_equal(square[:, :, 0], pixels[:, 2:6])  # the centred crop


def test_array_to_img_scales_and_save_img_round_trips(tmp_path):
    x = np.array([[[0.0], [0.5]], [[1.0], [0.25]]])
    img = array_to_img(x)
    assert img.mode == "L"
    np.testing.assert_array_equal(np.asarray(img), [[0, 127], [255, 63]])
    path = str(tmp_path / "out.png")
    save_img(path, np.full((3, 2, 3), 200.0), scale=False)
    assert os.listdir(tmp_path) == ["out.png"]
    np.testing.assert_array_equal(img_to_array(load_img(path)), np.full((3, 2, 3), 200.0))


def test_bad_arguments_and_a_corrupt_file(tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    with pytest.raises(ValueError, match="broken.png"):
        load_img(str(bad))
    path = _png(tmp_path, np.zeros((2, 2), np.uint8), "L")
    with pytest.raises(ValueError, match="color_mode"):
        load_img(path, color_mode="cmyk")
    with pytest.raises(ValueError, match="interpolation"):
        load_img(path, interpolation="cubic")
    with pytest.raises(ValueError, match="target_size"):
        load_img(path, target_size=(0, 2))
    with pytest.raises(ValueError, match="x"):
        array_to_img(np.zeros((2, 2, 2)))
    with pytest.raises(ValueError, match="path"):
        save_img(str(tmp_path / "noext"), np.zeros((2, 2, 3)))
