"""The example scripts and ``python -m fastconv demo``, run end to end as a user would.

Each runs in a subprocess on a small real slice (the embedded Fashion-MNIST sample) for
one epoch. One OpenMP thread: these check behaviour, not speed, and a single thread
keeps them quick when the machine is busy.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
PNG = b"\x89PNG\r\n\x1a\n"


def run(args, cwd):
    env = dict(os.environ, OMP_NUM_THREADS="1", MPLBACKEND="Agg")
    return subprocess.run([sys.executable] + args, cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


def accuracy(stdout):
    found = re.findall(r"Test accuracy:\s*([0-9.]+)", stdout)
    assert found, stdout
    return float(found[-1])


def assert_png(path):
    assert path.exists(), f"{path} was not written"
    assert path.read_bytes()[:8] == PNG


@pytest.mark.parametrize("script, minimum", [
    ("lecture_mnist.py", 0.3), ("lecture_two_conv.py", 0.2), ("fashion_mnist_best.py", 0.2)])
def test_mnist_examples_train_on_the_sample(script, minimum, tmp_path):
    pytest.importorskip("matplotlib")
    plot = tmp_path / "history.png"
    done = run([str(EXAMPLES / script), "--sample", "--limit", "256", "--epochs", "1",
                "--batch-size", "32", "-o", str(plot)], tmp_path)
    assert done.returncode == 0, done.stderr
    # 256 images and one epoch: far from trained, but clearly above chance (0.1).
    assert accuracy(done.stdout) >= minimum
    assert "val_accuracy" in done.stdout
    assert_png(plot)
    assert list(tmp_path.iterdir()) == [plot]  # no temporary file left behind


def test_functional_resnet_example_trains(tmp_path):
    # Batch normalization's moving statistics lag behind after a few steps (momentum
    # 0.99, as in Keras), so the training accuracy is the one that shows learning here.
    done = run([str(EXAMPLES / "functional_resnet.py"), "--sample", "--limit", "512",
                "--epochs", "2", "--batch-size", "32", "-o", ""], tmp_path)
    assert done.returncode == 0, done.stderr
    assert "residual_unit" in done.stdout and "Connected to" in done.stdout
    train_acc = [float(a) for a in re.findall(r"- accuracy: ([0-9.]+)", done.stdout)]
    assert train_acc and train_acc[-1] >= 0.3, done.stdout
    accuracy(done.stdout)  # the test accuracy is printed


def test_cifar10_example(tmp_path):
    from fastconv.datasets import DataNotFoundError, cifar10

    args = [str(EXAMPLES / "lecture_cifar10.py"), "--sample", "--limit", "200",
            "--epochs", "1", "-o", ""]
    try:
        cifar10.load_data(download=False)
    except DataNotFoundError:
        done = run(args, tmp_path)
        assert done.returncode == 2
        assert "CIFAR-10 is not available" in done.stderr
        assert "cifar-10-python.tar.gz" in done.stderr  # says how to get the files
        return
    done = run(args, tmp_path)
    assert done.returncode == 0, done.stderr
    assert 0 <= accuracy(done.stdout) <= 1


def test_examples_reject_bad_options(tmp_path):
    done = run([str(EXAMPLES / "lecture_mnist.py"), "--epochs", "0"], tmp_path)
    assert done.returncode == 2 and "--epochs" in done.stderr


def test_demo_command(tmp_path):
    pytest.importorskip("matplotlib")
    plot = tmp_path / "demo.png"
    done = run(["-m", "fastconv", "demo", "--epochs", "1", "-o", str(plot)], tmp_path)
    assert done.returncode == 0, done.stderr
    assert "Epoch 1/1" in done.stdout
    assert "2000 training and 500 test images" in done.stdout
    # One epoch on 2,000 real images: measured 0.78 here; chance is 0.1.
    assert accuracy(done.stdout) >= 0.6
    assert_png(plot)


def test_demo_bad_option(tmp_path):
    done = run(["-m", "fastconv", "demo", "--epochs", "0"], tmp_path)
    assert done.returncode == 2 and "positive" in done.stderr


def test_cs231n_convnet_example_trains(tmp_path):
    # The course's ThreeLayerConvNet and FullyConnectedNet on fastconv.compat.cs231n,
    # trained by plain SGD on the sample (3 epochs each): well above chance (0.1).
    res = run([str(EXAMPLES / "cs231n_convnet.py")], tmp_path)
    assert res.returncode == 0, res.stderr
    sections = res.stdout.split("FullyConnectedNet")
    assert len(sections) == 2 and "ThreeLayerConvNet" in sections[0]
    for section in sections:
        found = re.findall(r"test accuracy ([0-9.]+)", section)
        assert len(found) == 3, res.stdout
        assert float(found[-1]) > 0.5, res.stdout
