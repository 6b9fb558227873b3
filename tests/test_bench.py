"""The benchmark command runs and writes its table, JSON and CSV (no timing asserted)."""

import csv
import json
import subprocess
import sys


def test_bench_command_writes_json_and_csv(tmp_path):
    out_json, out_csv = tmp_path / "b.json", tmp_path / "b.csv"
    res = subprocess.run(
        [sys.executable, "-m", "fastconv.bench", "--only", "a1,g1avg", "--reps", "1",
         "--numpy-reps", "1", "--no-torch", "--threads", "1", "--json", str(out_json),
         "--csv", str(out_csv)],
        capture_output=True, text=True, check=True, timeout=300)
    lines = res.stdout.splitlines()
    assert lines[0].split()[:3] == ["layer", "shape", "fwd"] and "x torch" not in lines[0]
    data = json.loads(out_json.read_text())
    assert [r["layer"] for r in data["rows"]] == ["a1", "g1avg"]
    assert data["info"]["sgemm_gflops"] > 0
    for row in data["rows"]:
        assert row["fwd_ms"] > 0 and row["speedup_numpy"] > 0
    with open(out_csv) as f:
        assert [r["layer"] for r in csv.DictReader(f)] == ["a1", "g1avg"]


def test_train_compare_overhead_runs():
    # The step split of issue 4 (kernels, glue in situ, glue alone), on a few steps.
    from pathlib import Path

    from fastconv.backends import cython as fast

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "train_compare.py"
    res = subprocess.run(
        [sys.executable, str(script), "--overhead", "--batch-size", "8", "--threads", "1",
         "--steps", "5"],
        capture_output=True, text=True, check=True, timeout=300)
    out = res.stdout
    for text in ("inside kernels", "outside kernels", "glue alone",
                 "BLAS matmul (Dense backward)"):
        assert text in out, text
    # The lecture model's first block runs fused (on the direct kernels where AVX2 is).
    kernel = ("_conv.conv2d_relu_maxpool_forward_direct" if fast._HAVE_AVX2
              else "_pool.maxpool_forward")
    assert kernel in out


def test_bench_has_the_convolution_family_rows(tmp_path):
    out_json = tmp_path / "f.json"
    names = "dw2,sep2,up1,up2"
    subprocess.run(
        [sys.executable, "-m", "fastconv.bench", "--only", names, "--batch", "1", "--reps",
         "1", "--numpy-reps", "1", "--no-torch", "--threads", "1", "--json", str(out_json)],
        capture_output=True, text=True, check=True, timeout=300)
    rows = json.loads(out_json.read_text())["rows"]
    assert [r["layer"] for r in rows] == names.split(",")
    for row in rows:
        assert row["fwd_bwd_ms"] > 0 and row["gflops"] > 0 and row["speedup_numpy"] > 0


def test_bench_conv_algorithm_option():
    res = subprocess.run(
        [sys.executable, "-m", "fastconv.bench", "--only", "f1", "--batch", "1", "--reps",
         "1", "--no-numpy", "--no-torch", "--threads", "1", "--conv-algorithm", "direct"],
        capture_output=True, text=True, check=True, timeout=300)
    assert "conv algorithm: direct" in res.stdout.splitlines()[-1]
    bad = subprocess.run([sys.executable, "-m", "fastconv.bench", "--conv-algorithm", "fft"],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "--conv-algorithm" in bad.stderr


def test_winograd_compare_runs():
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "winograd_compare.py"
    res = subprocess.run([sys.executable, str(script), "--rounds", "1", "--reps", "1",
                          "--only", "s4-64-64", "--threads", "1"],
                         capture_output=True, text=True, check=True, timeout=300)
    lines = res.stdout.splitlines()
    assert lines[0].split()[:2] == ["layer", "pass"]
    assert [ln.split()[:2] for ln in lines[1:]] == [
        ["s4-64-64", p] for p in ("forward", "backward", "dw")]
