"""The bench's --sweep: its shape generator and argument handling (no timing asserted)."""

import subprocess
import sys

import pytest

from fastconv import _sweep, bench


def test_sweep_shapes_are_reproducible_and_in_the_space():
    shapes = _sweep.sweep_shapes(200, seed=5)
    assert shapes == _sweep.sweep_shapes(200, seed=5)
    assert shapes != _sweep.sweep_shapes(200, seed=6)
    assert _sweep.sweep_shapes(20, seed=5) == shapes[:20]
    for s in shapes:
        assert s.K in (1, 3, 5, 7) and s.stride in (1, 2) and s.padding in ("same", "valid")
        assert 1 <= s.C <= 512 and 1 <= s.F <= 512 and 4 <= s.H <= 112 and 1 <= s.N <= 128
        assert s.H >= s.K and s.out_size >= 1 and s.gflop <= 2.0
    # the space is covered, not one corner of it
    assert {s.K for s in shapes} == {1, 3, 5, 7}
    assert {(s.stride, s.padding) for s in shapes} == {
        (1, "same"), (1, "valid"), (2, "same"), (2, "valid")}


def test_sweep_shape_output_size_and_flops_by_hand():
    s = _sweep.SweepShape(N=2, H=7, C=3, F=4, K=3, stride=2, padding="valid")
    assert s.out_size == 3  # (7 - 3) // 2 + 1
    assert s.gflop == pytest.approx(2e-9 * 2 * 9 * 4 * 9 * 3)
    assert _sweep.SweepShape(2, 7, 3, 4, 3, 2, "same").out_size == 4  # ceil(7 / 2)


def test_summary_geometric_mean_and_worst():
    a = _sweep.SweepShape(1, 8, 1, 8, 3, 1, "same")
    rows = [_sweep.SweepRow(a, 1.0, 2.0, "NCHW"), _sweep.SweepRow(a, 2.0, 1.0, "NHWC"),
            _sweep.SweepRow(a, 1.0, 4.0, "NCHW")]
    text = _sweep.summary(rows)
    assert "geometric mean 1.59x" in text  # (2 * 0.5 * 4) ** (1/3) = 4 ** (1/3)
    assert "worst 0.50x" in text and "1 below 1.0x" in text
    assert "no ratios" in _sweep.summary([_sweep.SweepRow(a, 1.0, None, None)])


@pytest.mark.parametrize("args, message", [
    (["--sweep", "0"], "--sweep must be >= 1"),
    (["--sweep", "2", "--seed", "-1"], "--seed must be >= 0"),
    (["--sweep", "x"], "invalid int value"),
])
def test_sweep_bad_arguments(args, message, capsys):
    with pytest.raises(SystemExit):
        bench.main(args)
    assert message in capsys.readouterr().err


def test_sweep_command_runs():
    res = subprocess.run([sys.executable, "-m", "fastconv.bench", "--sweep", "2", "--seed",
                          "3", "--reps", "1", "--no-torch", "--threads", "1"],
                         capture_output=True, text=True, check=True, timeout=300)
    lines = res.stdout.splitlines()
    labels = [s.label() for s in _sweep.sweep_shapes(2, 3)]
    assert [ln[:40].rstrip() for ln in lines[2:4]] == labels
    assert lines[-1].startswith("# PyTorch not importable")
