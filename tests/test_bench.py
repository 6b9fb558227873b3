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
                 "_conv.matmul_blocks"):
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


# A stand-in for a checkout of the course's assignment, written here (the course's own
# code never enters this repository): fast_layers with the course's function names,
# running on fastconv's reference backend.
_FAKE_FAST_LAYERS = '''
import fastconv
from fastconv.compat import cs231n as _c


def _ref(f):
    def run(*args):
        with fastconv.use_backend("numpy"):
            return f(*args)
    return run


conv_forward_strides = _ref(_c.conv_forward_fast)
conv_backward_strides = _ref(_c.conv_backward_fast)
conv_forward_im2col = _ref(_c.conv_forward_fast)
conv_backward_im2col = _ref(_c.conv_backward_fast)
max_pool_forward_fast = _ref(_c.max_pool_forward_fast)
max_pool_backward_fast = _ref(_c.max_pool_backward_fast)
'''


def _fake_course(root, body, compiled=False):
    pkg = root / "cs231n"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "fast_layers.py").write_text(body + ("\nim2col_cython = object\n" if compiled
                                                else ""))
    return root


def _bench_cs231n(path, *extra):
    return subprocess.run(
        [sys.executable, "-m", "fastconv.bench", "--cs231n", str(path), "--reps", "1",
         "--rounds", "1", "--rest", "0", "--threads", "1", *extra],
        capture_output=True, text=True, timeout=300)


def test_bench_cs231n_rows_against_a_course_checkout(tmp_path):
    root = _fake_course(tmp_path / "a2", _FAKE_FAST_LAYERS, compiled=True)
    out_json = tmp_path / "c.json"
    res = _bench_cs231n(root / "cs231n", "--json", str(out_json))  # the package folder
    assert res.returncode == 0, res.stderr
    rows = json.loads(out_json.read_text())["rows"]
    assert [(r["layer"], r["dtype"]) for r in rows] == [
        (layer, dtype) for dtype in ("float64", "float32")
        for layer in ("conv", "maxpool", "sbn")]
    assert set(rows[0]["ms"]) == {"fastconv", "strides", "im2col_cython"}
    assert set(rows[1]["ms"]) == {"fastconv", "course fast"}
    assert set(rows[2]["ms"]) == {"fastconv", "numpy"}
    for row in rows:
        assert all(v > 0 for v in row["ms"].values()) and row["speedup_best"] > 0
    assert res.stdout.count("cs231n conv") == 2


def test_bench_cs231n_without_compiled_im2col_leaves_that_version_out(tmp_path):
    root = _fake_course(tmp_path, _FAKE_FAST_LAYERS)
    res = _bench_cs231n(root)
    assert res.returncode == 0, res.stderr
    assert "im2col_cython is not built" in res.stdout
    conv_rows = [line for line in res.stdout.splitlines() if line.startswith("cs231n conv")]
    assert len(conv_rows) == 2
    assert all("strides" in line and "im2col_cython" not in line for line in conv_rows)


def test_bench_cs231n_refuses_a_path_without_the_course(tmp_path):
    res = _bench_cs231n(tmp_path)
    assert res.returncode == 2
    assert "cs231n/fast_layers.py" in res.stderr and str(tmp_path) in res.stderr


def test_bench_cs231n_refuses_a_course_that_lacks_a_function(tmp_path):
    body = _FAKE_FAST_LAYERS.replace("conv_backward_strides = ", "_unused = ")
    res = _bench_cs231n(_fake_course(tmp_path, body))
    assert res.returncode == 2 and "lacks conv_backward_strides" in res.stderr


def test_bench_cs231n_reports_an_import_failure(tmp_path):
    res = _bench_cs231n(_fake_course(tmp_path, "raise ImportError('no numpy here')\n"))
    assert res.returncode == 2
    assert "importing cs231n.fast_layers" in res.stderr and "no numpy here" in res.stderr
