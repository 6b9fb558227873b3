"""benchmarks/models_compare.py: its architectures and its command (no timing asserted)."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

import fastconv.keras as keras

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "models_compare.py"
_spec = importlib.util.spec_from_file_location("models_compare", SCRIPT)
mc = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(mc)


@pytest.mark.parametrize("name, params", [
    # by hand: conv 32*(9+1); dense 13*13*32*128 + 128; dense 128*10 + 10
    ("lecture", 320 + 692_352 + 1_290),
    # by hand: conv 64*(9+1); conv 32*(9*64+1); dense 24*24*32*10 + 10
    ("lab", 640 + 18_464 + 184_330),
    ("mnist3", 104_202),        # Deep Learning with Python's summary
    ("cifar_tf", 122_570),      # TensorFlow's CIFAR-10 tutorial's summary
    ("fashion_deep", 1_413_834),  # Hands-On Machine Learning's summary
])
def test_architectures_have_the_published_sizes(name, params):
    assert mc.keras_model(keras, name).count_params() == params


def test_resnet_has_batch_norm_and_residual_adds():
    model = mc.keras_model(keras, "resnet_bn")
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds.count("BatchNormalization") == 7 and kinds.count("Add") == 3


def test_command_runs_fastconv_and_skips_what_is_missing():
    res = subprocess.run([sys.executable, str(SCRIPT), "--models", "lecture", "--steps", "1",
                          "--warmup", "1", "--batch-size", "4", "--threads", "1"],
                         capture_output=True, text=True, check=True, timeout=300)
    rows = [ln.split() for ln in res.stdout.splitlines() if ln.startswith("lecture")]
    assert rows[0][:2] == ["lecture", "fastconv"] and float(rows[0][2]) > 0
    for framework in ("torch", "keras"):
        if not mc.available(framework):
            assert f"# {framework}: not importable here" in res.stdout


@pytest.mark.parametrize("args, message", [
    (["--models", "vgg"], "--models must name models of"),
    (["--steps", "0"], "--steps must be >= 1"),
])
def test_bad_arguments(args, message):
    res = subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 2 and message in res.stderr
