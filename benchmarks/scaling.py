"""The measurements behind docs/scaling.md: 2 MPI ranks x 1 thread vs 1 rank x 2 threads.

Run from the repository root (needs the ``mpi`` extra and the Fashion-MNIST files)::

    python benchmarks/scaling.py --repeats 5 --samples 12000 --epochs 3

The driver alternates the two configurations ``--repeats`` times (the machine is shared
and noisy, so neither gets all the quiet or all the busy moments) and prints medians:

- ``2x1``: ``mpiexec -n 2`` ranks of one thread each, per-rank batch 64, each on its
  half of the slice, gradients averaged by fastconv.distributed (global batch 128);
- ``1x2``: one process, two threads, batch 128 on the whole slice.

Both train the lecture's MNIST model (Conv2D(32, 3, relu) -> MaxPooling2D(2) ->
Dropout(0.25) -> Flatten -> Dense(128, relu) -> Dropout(0.5) -> Dense(10, softmax),
Adam) on the first ``--samples`` Fashion-MNIST training images. An epoch's time is the
root's wall time from epoch begin to epoch end; the first epoch (warm-up) is dropped.

It also measures the inputs of the cost model in docs/scaling.md: the compute time
per step of one rank with 2 threads at several batch sizes (``--batches``), and the
time of one allreduce of the model's gradient (2 ranks, in-machine shared memory).
Results are printed and, with ``--json FILE``, written as JSON.

``python benchmarks/scaling.py --project FILE.json`` then prints the cost model's
projection for P = 2..128 machines from those measurements (see docs/scaling.md for
the model and its assumptions; ``--latency-us`` and ``--samples-per-epoch`` change
them).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def lecture_model(optimizer):
    from fastconv import layers, models

    model = models.Sequential([
        layers.Conv2D(32, 3, activation="relu", input_shape=(28, 28, 1)),
        layers.MaxPooling2D(2),
        layers.Dropout(0.25),
        layers.Flatten(),
        layers.Dense(128, activation="relu"),
        layers.Dropout(0.5),
        layers.Dense(10, activation="softmax"),
    ])
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


def load_slice(samples):
    from fastconv.datasets import fashion_mnist

    (x, y), _ = fashion_mnist.load_data()
    x = (x[:samples, ..., None] / np.float32(255)).astype(np.float32)
    return x, y[:samples]


class EpochTimer:
    """Wall time of each epoch (a fastconv callback, built lazily to import late)."""

    def __new__(cls):
        from fastconv import callbacks

        class _Timer(callbacks.Callback):
            def on_train_begin(self, logs=None):
                self.times = []

            def on_epoch_begin(self, epoch, logs=None):
                self._t = time.perf_counter()

            def on_epoch_end(self, epoch, logs=None):
                self.times.append(time.perf_counter() - self._t)

        return _Timer()


def worker(args):
    """One training run: under mpiexec (``--mpi``) or as a single process."""
    import fastconv
    from fastconv import distributed as dist
    from fastconv import optimizers, utils

    utils.set_random_seed(0)
    x, y = load_slice(args.samples)
    if args.mpi:
        dist.init(num_threads=args.threads)
        x, y = dist.shard(x, y)
        opt = dist.DistributedOptimizer(optimizers.Adam(1e-3))
    else:
        from threadpoolctl import threadpool_limits

        fastconv.set_num_threads(args.threads)
        threadpool_limits(limits=args.threads, user_api="blas")
        opt = optimizers.Adam(1e-3)
    model = lecture_model(opt)
    if args.mpi:
        dist.broadcast_weights(model)
    timer = EpochTimer()
    result = {"ranks": dist.size(), "threads": fastconv.get_num_threads(),
              "batch_per_rank": args.batch}
    if args.step_batches:
        # Compute time per step for the cost model: one epoch per batch size, after a
        # warm-up epoch, steps = ceil(samples / batch).
        model.fit(x, y, batch_size=args.step_batches[0], epochs=1, verbose=0)
        result["step_seconds"] = {}
        for b in args.step_batches:
            model.fit(x, y, batch_size=b, epochs=1, verbose=0, callbacks=[timer])
            result["step_seconds"][b] = timer.times[0] / -(-len(x) // b)
    else:
        model.fit(x, y, batch_size=args.batch, epochs=args.epochs, verbose=0,
                  callbacks=[timer])
        result["epoch_seconds"] = timer.times[1:]
        result["accuracy"] = model.history.history["accuracy"][-1]
    if args.mpi and dist.size() > 1:
        result["allreduce_seconds"] = time_allreduce(model)
    if dist.is_root():
        print("RESULT " + json.dumps(result), flush=True)


def time_allreduce(model):
    """Median time of one in-place Allreduce of a buffer the size of all gradients."""
    from mpi4py import MPI

    n = sum(w.size for w in model.trainable_weights) + 2
    buf = np.ones(n, np.float32)
    comm, times = MPI.COMM_WORLD, []
    for _ in range(60):
        comm.Barrier()
        t = time.perf_counter()
        comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
        times.append(time.perf_counter() - t)
    return statistics.median(times[10:])


def launch(cmd, timeout):
    env = dict(os.environ)
    env.pop("OMP_NUM_THREADS", None)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}")
    line = [s for s in proc.stdout.splitlines() if s.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT "):])


def driver(args):
    me = [sys.executable, os.path.abspath(__file__), "--worker",
          "--samples", str(args.samples), "--epochs", str(args.epochs)]
    beside = Path(sys.executable).with_name("mpiexec")
    mpiexec = str(beside) if beside.exists() else shutil.which("mpiexec")
    two_by_one = [mpiexec, "-n", "2"] + me + ["--mpi", "--threads", "1", "--batch", "64"]
    one_by_two = me + ["--threads", "2", "--batch", "128"]
    runs = {"2x1": [], "1x2": []}
    for i in range(args.repeats):
        # Alternate, and swap which goes first each round.
        order = [("2x1", two_by_one), ("1x2", one_by_two)]
        for name, cmd in (order if i % 2 == 0 else order[::-1]):
            r = launch(cmd, args.timeout)
            runs[name].append(r)
            print(f"round {i + 1} {name}: epochs {[round(t, 2) for t in r['epoch_seconds']]} s"
                  + (f", allreduce {r['allreduce_seconds'] * 1e3:.2f} ms"
                     if "allreduce_seconds" in r else ""), flush=True)
    summary = {name: {"epoch_seconds_median": statistics.median(
        t for r in rs for t in r["epoch_seconds"]),
        "all_epoch_seconds": [r["epoch_seconds"] for r in rs]} for name, rs in runs.items()}
    summary["2x1"]["allreduce_seconds_median"] = statistics.median(
        r["allreduce_seconds"] for r in runs["2x1"])
    ratio = summary["2x1"]["epoch_seconds_median"] / summary["1x2"]["epoch_seconds_median"]
    print(f"median epoch: 2 ranks x 1 thread {summary['2x1']['epoch_seconds_median']:.2f} s, "
          f"1 rank x 2 threads {summary['1x2']['epoch_seconds_median']:.2f} s, "
          f"ratio {ratio:.3f}")
    print(f"median allreduce of the gradient (2 ranks, shared memory): "
          f"{summary['2x1']['allreduce_seconds_median'] * 1e3:.2f} ms")
    steps = []
    for i in range(args.repeats):
        steps.append(launch(me + ["--threads", "2", "--step-batches"]
                            + [str(b) for b in args.batches], args.timeout)["step_seconds"])
        print(f"round {i + 1} step seconds (1 rank x 2 threads): "
              + ", ".join(f"B={b}: {s * 1e3:.1f} ms" for b, s in steps[-1].items()), flush=True)
    summary["step_seconds_median"] = {b: statistics.median(s[str(b)] for s in steps)
                                      for b in args.batches}
    print("median compute per step: " + ", ".join(
        f"B={b}: {s * 1e3:.1f} ms" for b, s in summary["step_seconds_median"].items()))
    summary["setup"] = {"samples": args.samples, "epochs": args.epochs,
                        "repeats": args.repeats}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(summary, f, indent=1)


GRADIENT_FLOATS = 693_962 + 2   # the lecture model's parameters + count and loss slots


def allreduce_seconds(p, gbit, latency):
    """Ring allreduce: 2 (P-1)/P of the buffer through each link, 2 (P-1) messages."""
    gbytes = 4 * GRADIENT_FLOATS
    return 2 * (p - 1) / p * gbytes / (gbit * 1e9 / 8) + 2 * (p - 1) * latency


def project(args):
    with open(args.project) as f:
        measured = json.load(f)
    steps = {int(b): t for b, t in measured["step_seconds_median"].items()}
    batches = np.array(sorted(steps), float)
    times = np.array([steps[b] for b in sorted(steps)])
    if len(batches) > 1:
        slope, intercept = np.polyfit(batches, times, 1)
    else:  # one measured batch size: assume time proportional to the batch
        slope, intercept = times[0] / batches[0], 0.0
    print("compute per step (1 machine = 1 rank x 2 threads), medians: "
          + ", ".join(f"B={b}: {steps[b] * 1e3:.1f} ms" for b in sorted(steps)))
    print(f"least-squares line: t_c(B) = {intercept * 1e3:.2f} ms + B x {slope * 1e3:.3f} ms")
    n, lat = args.samples_per_epoch, args.latency_us * 1e-6
    print(f"gradient {4 * GRADIENT_FLOATS / 1e6:.2f} MB, {n} samples per epoch, "
          f"latency {args.latency_us:g} us per message")
    for b in args.project_batches:
        t_c = steps.get(b, intercept + slope * b)
        one = -(-n // b) * t_c
        print(f"\nper-rank batch {b}: compute {t_c * 1e3:.1f} ms/step, 1 machine "
              f"{one:.1f} s/epoch")
        print("| P | allreduce 10G ms | epoch 10G s | eff. 10G | allreduce 100G ms "
              "| epoch 100G s | eff. 100G |")
        print("|---|---|---|---|---|---|---|")
        for p in (2, 4, 8, 16, 32, 64, 128):
            row = [str(p)]
            for gbit in (10, 100):
                t_ar = allreduce_seconds(p, gbit, lat)
                epoch = -(-n // (p * b)) * (t_c + t_ar)
                row += [f"{t_ar * 1e3:.2f}", f"{epoch:.2f}", f"{one / (p * epoch):.0%}"]
            print("| " + " | ".join(row) + " |")
    print("\nper-rank batch where communication equals compute (efficiency 50%):")
    for gbit in (10, 100):
        for p in (2, 128):
            t_ar = allreduce_seconds(p, gbit, lat)
            b_half = (t_ar - intercept) / slope
            print(f"  {gbit} Gbit/s, P={p}: allreduce {t_ar * 1e3:.2f} ms -> B = "
                  f"{max(b_half, 1):.0f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--samples", type=int, default=12000,
                        help="first N Fashion-MNIST training images (default 12000)")
    parser.add_argument("--epochs", type=int, default=3, help="per run; the first is dropped")
    parser.add_argument("--batches", type=int, nargs="+", default=[16, 32, 64, 128, 256])
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--json")
    parser.add_argument("--project", metavar="JSON", help="print the cost model from a run")
    parser.add_argument("--latency-us", type=float, default=20.0)
    parser.add_argument("--samples-per-epoch", type=int, default=60000)
    parser.add_argument("--project-batches", type=int, nargs="+", default=[32, 128])
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--mpi", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=2, help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, default=128, help=argparse.SUPPRESS)
    parser.add_argument("--step-batches", type=int, nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.project:
        project(args)
    elif args.worker:
        worker(args)
    else:
        driver(args)


if __name__ == "__main__":
    main()
