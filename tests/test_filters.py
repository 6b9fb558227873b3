"""fastconv.filters and ``python -m fastconv filter``: numbers, not only files."""

import re
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image as PIL

import fastconv
from fastconv import filters, ops
from fastconv.__main__ import main


def correlate_loops(image, kernel, pads):
    """out[i, j] = sum_{a, b} padded[i + a, j + b] * kernel[a, b], zeros outside, unflipped."""
    (top, bottom), (left, right) = pads
    H, W = image.shape
    KH, KW = kernel.shape
    padded = np.zeros((H + top + bottom, W + left + right))
    padded[top:top + H, left:left + W] = image
    out = np.zeros((padded.shape[0] - KH + 1, padded.shape[1] - KW + 1))
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            for a in range(KH):
                for b in range(KW):
                    out[i, j] += padded[i + a, j + b] * kernel[a, b]
    return out


# ------------------------------------------------------------------------- kernels


def test_kernels_by_name():
    assert set(filters.NAMES) == {"sharpen", "blur", "gaussian", "edge", "emboss",
                                  "sobel_x", "sobel_y", "identity"}
    np.testing.assert_array_equal(filters.get("edge"), [[0, 1, 0], [1, -4, 1], [0, 1, 0]])
    np.testing.assert_array_equal(filters.get("emboss"), [[-2, -1, 0], [-1, 1, 1], [0, 1, 2]])
    np.testing.assert_allclose(filters.get("blur"), np.full((3, 3), 1 / 9))
    np.testing.assert_array_equal(filters.get("Sobel_X"), filters.get("sobel_y").T)
    for name in ("sharpen", "blur", "gaussian", "emboss", "identity"):
        assert filters.get(name).sum() == pytest.approx(1.0)
    for name in ("edge", "sobel_x", "sobel_y"):
        assert filters.get(name).sum() == 0


def test_get_returns_a_copy():
    filters.get("identity")[1, 1] = 7
    assert filters.get("identity")[1, 1] == 1


# -------------------------------------------------------------- constants and edges


@pytest.mark.parametrize("dtype", [np.uint8, np.float32, np.float64])
@pytest.mark.parametrize("name", ["blur", "gaussian", "sharpen", "identity", "emboss"])
def test_kernels_summing_to_one_keep_a_constant(name, dtype):
    image = np.full((6, 7), 120, dtype=dtype)
    same = filters.apply(image, name)
    assert same.dtype == dtype and same.shape == image.shape
    # Zero padding changes the border; inside, a constant stays that constant.
    np.testing.assert_allclose(same[1:-1, 1:-1], 120, rtol=1e-6)
    for padding in ("reflect", "edge"):
        np.testing.assert_allclose(filters.apply(image, name, padding), 120, rtol=1e-6)
    valid = filters.apply(image, name, "valid")
    assert valid.shape == (4, 5)
    np.testing.assert_allclose(valid, 120, rtol=1e-6)


def test_identity_is_exact_everywhere():
    image = np.random.default_rng(0).integers(0, 256, (5, 8, 3)).astype(np.uint8)
    np.testing.assert_array_equal(filters.apply(image, "identity"), image)


@pytest.mark.parametrize("name", ["edge", "sobel_x", "sobel_y"])
def test_derivative_kernels_give_zero_inside_a_constant(name):
    out = filters.apply(np.full((6, 6), 0.75), name)
    np.testing.assert_array_equal(out[1:-1, 1:-1], 0.0)
    # With zero padding the border sees a drop to 0, so it is not 0 there.
    assert np.any(out[0] != 0) or np.any(out[:, 0] != 0)


def step(rising: bool) -> np.ndarray:
    """8x8 float image: dark left half and bright right half (or the reverse)."""
    image = np.zeros((8, 8))
    image[:, 4:] = 1.0
    return image if rising else 1.0 - image


def test_sobel_signs_on_a_step_edge():
    gx = filters.apply(step(True), "sobel_x", "edge")
    gy = filters.apply(step(True), "sobel_y", "edge")
    # Brighter to the right: sobel_x is positive on the two columns beside the step.
    np.testing.assert_array_equal(gx[:, 3:5], 4.0)
    np.testing.assert_array_equal(np.delete(gx, [3, 4], axis=1), 0.0)
    np.testing.assert_array_equal(gy, 0.0)  # no change downwards
    np.testing.assert_array_equal(filters.apply(step(False), "sobel_x", "edge")[:, 3:5], -4.0)
    # Transposed: brighter downwards, so sobel_y is positive and sobel_x is 0.
    np.testing.assert_array_equal(filters.apply(step(True).T, "sobel_y", "edge")[3:5, :], 4.0)
    np.testing.assert_array_equal(filters.apply(step(True).T, "sobel_x", "edge"), 0.0)


def test_emboss_signs_on_a_step_edge():
    rising, falling = step(True), step(False)
    up = filters.apply(rising, "emboss", "edge") - rising
    down = filters.apply(falling, "emboss", "edge") - falling
    # Weights -2..2 grow towards the bottom right: an edge that gets brighter to the
    # right is raised, one that gets darker is lowered; flat parts are unchanged.
    np.testing.assert_array_equal(up[:, 3:5], 3.0)
    np.testing.assert_array_equal(down[:, 3:5], -3.0)
    np.testing.assert_array_equal(np.delete(up, [3, 4], axis=1), 0.0)
    np.testing.assert_array_equal(np.delete(down, [3, 4], axis=1), 0.0)


def test_laplacian_of_a_bright_dot():
    image = np.zeros((5, 5))
    image[2, 2] = 1.0
    out = filters.apply(image, "edge")
    assert out[2, 2] == -4.0
    assert out[1, 2] == out[3, 2] == out[2, 1] == out[2, 3] == 1.0
    assert out.sum() == 0.0


# ---------------------------------------------------------------- against loops


@pytest.mark.parametrize("shape", [(3, 3), (2, 3), (1, 4), (4, 2)])
@pytest.mark.parametrize("backend", ["cython", "numpy"])
def test_random_kernel_matches_loops(shape, backend):
    rng = np.random.default_rng(sum(shape))
    image, kernel = rng.standard_normal((7, 9)), rng.standard_normal(shape)
    # 'same': the odd pixel of padding at the bottom/right, as in Keras.
    pads = tuple(((k - 1) // 2, k - 1 - (k - 1) // 2) for k in shape)
    with fastconv.use_backend(backend):
        got = filters.apply(image, kernel)
        valid = filters.apply(image, kernel, "valid")
    np.testing.assert_allclose(got, correlate_loops(image, kernel, pads), atol=1e-12)
    np.testing.assert_allclose(valid, correlate_loops(image, kernel, ((0, 0), (0, 0))),
                               atol=1e-12)


def test_colour_channels_are_filtered_separately():
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (6, 7, 3)).astype(np.uint8)
    out = filters.apply(image, "sharpen")
    assert out.shape == image.shape and out.dtype == np.uint8
    for c in range(3):
        np.testing.assert_array_equal(out[:, :, c], filters.apply(image[:, :, c], "sharpen"))


def test_float32_stays_float32_and_is_not_clipped():
    image = np.zeros((3, 3), dtype=np.float32)
    image[1, 1] = 1.0
    out = filters.apply(image, "sharpen")
    assert out.dtype == np.float32
    assert out[1, 1] == 5.0 and out[0, 1] == -1.0


def test_uint8_is_rounded_and_clipped():
    image = np.zeros((3, 3), dtype=np.uint8)
    image[1, 1] = 255
    out = filters.apply(image, "sharpen")
    assert out.dtype == np.uint8
    assert out[1, 1] == 255  # 5 * 255 clipped
    assert out[0, 1] == 0    # -255 clipped
    # Rounded to nearest: 100 / 9 = 11.1 -> 11 and 50 / 9 = 5.6 -> 6.
    assert filters.apply(np.full((1, 1), 100, np.uint8), "blur")[0, 0] == 11
    assert filters.apply(np.full((1, 1), 50, np.uint8), "blur")[0, 0] == 6


# ------------------------------------------------------------------- initializer


def test_initializer_places_the_kernel():
    init = filters.initializer("edge")
    w = init((3, 3, 1, 4))
    assert w.shape == (3, 3, 1, 4) and w.dtype == np.float32
    for f in range(4):
        np.testing.assert_array_equal(w[:, :, 0, f], filters.get("edge"))
    assert init((3, 3, 2, 2), dtype="float64").dtype == np.float64


def test_initializer_conv_equals_apply():
    """A Conv2D started from the kernel computes what apply computes."""
    rng = np.random.default_rng(2)
    rgb = rng.random((6, 5, 3))
    w = filters.initializer("sobel_x")((3, 3, 3, 2), dtype=np.float64)
    out, _ = ops.conv2d_forward(rgb[None], w, None, 1, "same")
    want = filters.apply(rgb.mean(axis=2), "sobel_x")
    np.testing.assert_allclose(out[0, :, :, 0], want, atol=1e-12)
    np.testing.assert_allclose(out[0, :, :, 1], want, atol=1e-12)

    w = filters.initializer("emboss", channels="separate")((3, 3, 3, 3), dtype=np.float64)
    out, _ = ops.conv2d_forward(rgb[None], w, None, 1, "same")
    np.testing.assert_allclose(out[0], filters.apply(rgb, "emboss"), atol=1e-12)


def test_initializer_from_array_and_config():
    init = filters.initializer([[1, 2]])
    np.testing.assert_array_equal(init((1, 2, 1, 1))[:, :, 0, 0], [[1, 2]])
    config = filters.initializer("blur", "separate").get_config()
    assert config == {"kernel": "blur", "channels": "separate"}
    again = filters.ClassicKernel.from_config(config)
    np.testing.assert_array_equal(again((3, 3, 2, 2)), filters.ClassicKernel("blur",
                                  channels="separate")((3, 3, 2, 2)))


@pytest.mark.parametrize("args, exc, name", [
    (((5, 5, 1, 1),), ValueError, "shape"),
    (((3, 3, 1),), ValueError, "shape"),
    (((3, 3, 1, 1), "int32"), TypeError, "dtype"),
])
def test_initializer_bad_input(args, exc, name):
    with pytest.raises(exc, match=f"`{name}`"):
        filters.initializer("edge")(*args)


def test_initializer_separate_needs_equal_channels():
    with pytest.raises(ValueError, match="`shape`.*C_in == C_out"):
        filters.initializer("edge", "separate")((3, 3, 3, 4))
    with pytest.raises(ValueError, match="`channels`"):
        filters.initializer("edge", "rgb")
    with pytest.raises(ValueError, match="`kernel`"):
        filters.initializer("nope")


# --------------------------------------------------------------------- bad input


def test_unknown_name_lists_the_names():
    with pytest.raises(ValueError, match=r"`kernel`.*'sharpen'.*'sobel_y'.*Received: "
                                         r"kernel='sharp'"):
        filters.apply(np.zeros((4, 4)), "sharp")
    with pytest.raises(ValueError, match=r"`name`.*'identity'"):
        filters.get("sharp")
    with pytest.raises(TypeError, match="`name`"):
        filters.get(3)


@pytest.mark.parametrize("image, exc", [
    (np.zeros(5), ValueError),
    (np.zeros((1, 4, 4, 3)), ValueError),
    (np.zeros((4, 4), dtype=np.int64), TypeError),
    (np.zeros((4, 4), dtype=bool), TypeError),
    (np.zeros((4, 4), dtype=np.float16), TypeError),
    (np.zeros((4, 4, 0)), ValueError),
    ([["a"]], TypeError),
])
def test_bad_image(image, exc):
    with pytest.raises(exc, match="`image`"):
        filters.apply(image, "blur")


@pytest.mark.parametrize("kernel", [np.zeros((3, 3, 1)), np.zeros((0, 3)), np.zeros(3),
                                    np.zeros((3, 3), dtype=complex)])
def test_bad_kernel(kernel):
    with pytest.raises((ValueError, TypeError), match="`kernel`"):
        filters.apply(np.zeros((4, 4)), kernel)


def test_bad_padding_and_too_small_image():
    with pytest.raises(ValueError, match="`padding`"):
        filters.apply(np.zeros((4, 4)), "blur", padding="full")
    with pytest.raises(ValueError, match="`image`.*kernel"):
        filters.apply(np.zeros((2, 4)), "blur", padding="valid")


# ------------------------------------------------------------------------ the CLI


def write_png(path, array):
    PIL.fromarray(array).save(path)


def test_cli_round_trip(tmp_path):
    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, (9, 11, 3)).astype(np.uint8)
    src, dst = tmp_path / "in.png", tmp_path / "out.png"
    write_png(src, image)
    assert main(["filter", str(src), "--kernel", "sharpen", "-o", str(dst)]) == 0
    got = np.asarray(PIL.open(dst))
    np.testing.assert_array_equal(got, filters.apply(image, "sharpen"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.png", "out.png"]  # no temp left


def test_cli_grayscale_alpha_and_padding(tmp_path):
    rng = np.random.default_rng(4)
    gray = rng.integers(0, 256, (6, 7)).astype(np.uint8)
    write_png(tmp_path / "g.png", gray)
    assert main(["filter", str(tmp_path / "g.png"), "-k", "blur", "--padding", "edge",
                 "-o", str(tmp_path / "g_out.png")]) == 0
    np.testing.assert_array_equal(np.asarray(PIL.open(tmp_path / "g_out.png")),
                                  filters.apply(gray, "blur", "edge"))
    rgba = rng.integers(0, 256, (6, 7, 4)).astype(np.uint8)
    write_png(tmp_path / "a.png", rgba)
    assert main(["filter", str(tmp_path / "a.png"), "-k", "edge",
                 "-o", str(tmp_path / "a_out.png")]) == 0
    got = np.asarray(PIL.open(tmp_path / "a_out.png"))
    np.testing.assert_array_equal(got[..., 3], rgba[..., 3])  # alpha kept
    np.testing.assert_array_equal(got[..., :3], filters.apply(rgba[..., :3], "edge"))


def test_cli_jpeg_output(tmp_path):
    image = np.full((8, 8, 3), 90, dtype=np.uint8)
    write_png(tmp_path / "in.png", image)
    assert main(["filter", str(tmp_path / "in.png"), "-k", "blur", "--padding", "edge",
                 "-o", str(tmp_path / "out.jpg")]) == 0
    with PIL.open(tmp_path / "out.jpg") as im:
        assert im.format == "JPEG"
        # JPEG is lossy, but a constant survives a blur and the compression nearly.
        assert np.abs(np.asarray(im).astype(int) - 90).max() <= 2


def test_cli_errors_leave_files_alone(tmp_path, capsys):
    existing = tmp_path / "out.png"
    existing.write_bytes(b"keep me")
    assert main(["filter", str(tmp_path / "missing.png"), "-k", "blur",
                 "-o", str(existing)]) == 1
    assert "error" in capsys.readouterr().err
    assert existing.read_bytes() == b"keep me"
    (tmp_path / "bad.png").write_bytes(b"not an image")
    assert main(["filter", str(tmp_path / "bad.png"), "-k", "blur", "-o", str(existing)]) == 1
    write_png(tmp_path / "in.png", np.zeros((4, 4), np.uint8))
    assert main(["filter", str(tmp_path / "in.png"), "-k", "blur",
                 "-o", str(tmp_path / "out.nope")]) == 1
    assert "`path`" in capsys.readouterr().err
    assert existing.read_bytes() == b"keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.png", "in.png", "out.png"]
    with pytest.raises(SystemExit):
        main(["filter", str(tmp_path / "in.png"), "-k", "sharp", "-o", str(existing)])
    assert "sharpen" in capsys.readouterr().err


def test_missing_pillow_names_the_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "PIL", None)
    with pytest.raises(ImportError, match=re.escape("pip install 'fastconv[image]'")):
        filters.read_image(tmp_path / "x.png")
    with pytest.raises(ImportError, match=re.escape("pip install 'fastconv[image]'")):
        filters.write_image(tmp_path / "x.png", np.zeros((2, 2), np.uint8))


def test_write_image_bad_input(tmp_path):
    with pytest.raises(TypeError, match="`image`"):
        filters.write_image(tmp_path / "x.png", np.zeros((2, 2)))
    with pytest.raises(ValueError, match="`image`"):
        filters.write_image(tmp_path / "x.png", np.zeros((2, 2, 5), np.uint8))


def test_module_entry_point(tmp_path):
    """``python -m fastconv filter`` runs in a fresh interpreter; ``info`` still works."""
    write_png(tmp_path / "in.png", np.full((5, 5), 200, np.uint8))
    done = subprocess.run([sys.executable, "-m", "fastconv", "filter", str(tmp_path / "in.png"),
                           "--kernel", "identity", "-o", str(tmp_path / "out.png")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    np.testing.assert_array_equal(np.asarray(PIL.open(tmp_path / "out.png")), 200)
    assert main(["info"]) == 0
