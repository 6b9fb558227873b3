"""Train the lecture's MNIST model on Fashion-MNIST with fastconv, PyTorch and Keras.

Conv2D(32, 3, relu) -> MaxPooling2D(2) -> Dropout(0.25) -> Flatten -> Dense(128, relu)
-> Dropout(0.5) -> Dense(10, softmax); Adam(1e-3); cross-entropy; the 60,000 training
images; the same batch size and thread count for every framework. Each framework runs
in a subprocess of its own, so each peak resident memory (``ru_maxrss``) is its own and
neither's threads or allocations disturb the other's.

Prints, per framework: seconds per epoch (median over epochs, and the first), images
per second, test accuracy after each epoch, the time to predict the 10,000 test images
(median of 3, in chunks of 1,000 for every framework) and peak RSS; then the ratios to
fastconv. PyTorch and Keras 3 (on the backend ``KERAS_BACKEND`` names, TensorFlow when
unset) run when they are importable by this interpreter, so run::

    /tmp/anchor-venv/bin/python benchmarks/train_compare.py --epochs 2 --batch-size 128

``--augmentation`` instead times epochs of fastconv with and without augmentation
layers in front of the model (alternated in one run), and the layers alone.
``--overhead`` instead times training steps of fastconv alone and splits each into
the time inside kernels (fastconv's compiled kernels and the Dense layers' BLAS
products) and the rest (Python and NumPy glue).
The machine may be shared: compare the ratios of one run, not absolute times.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np

FRAMEWORKS = ("fastconv", "torch", "keras")


def load_data():
    from fastconv.datasets import fashion_mnist

    (x_train, y_train), (x_test, y_test) = fashion_mnist.load_data()
    x_train = (x_train.astype(np.float32) / 255).reshape(-1, 28, 28, 1)
    x_test = (x_test.astype(np.float32) / 255).reshape(-1, 28, 28, 1)
    return x_train, y_train.astype(np.int64), x_test, y_test.astype(np.int64)


def peak_rss_mb() -> float:
    # Linux reports ru_maxrss in KiB.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def lecture_model_fastconv(front=()):
    """The lecture's model, with the layers ``front`` (augmentation) before it."""
    from fastconv.layers import Conv2D, Dense, Dropout, Flatten, Input, MaxPooling2D
    from fastconv.models import Sequential
    from fastconv.optimizers import Adam

    model = Sequential([Input(shape=(28, 28, 1))] + list(front) + [
        Conv2D(32, kernel_size=3, activation="relu"),
        MaxPooling2D((2, 2)), Dropout(0.25), Flatten(), Dense(128, activation="relu"),
        Dropout(0.5), Dense(10, activation="softmax")])
    model.compile(optimizer=Adam(1e-3), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


def run_fastconv(args) -> dict:
    import fastconv
    from fastconv.utils import set_random_seed

    fastconv.set_num_threads(args.threads)
    x, y, xt, yt = load_data()
    set_random_seed(0)
    return _keras_style_run(lecture_model_fastconv(), args, x, y, xt, yt)


def _keras_style_run(model, args, x, y, xt, yt) -> dict:
    """Epochs of ``model.fit`` (Keras's API: fastconv's or Keras's own), each timed and
    followed by the test accuracy, then the median of three timed predictions."""
    epochs, accs, predict_s = [], [], []
    for _ in range(args.epochs):
        start = time.perf_counter()
        model.fit(x, y, batch_size=args.batch_size, epochs=1, verbose=0)
        epochs.append(time.perf_counter() - start)
        pred = model.predict(xt, batch_size=1000, verbose=0)
        accs.append(float(np.mean(pred.argmax(1) == yt)))
    for _ in range(3):
        start = time.perf_counter()
        model.predict(xt, batch_size=1000, verbose=0)
        predict_s.append(time.perf_counter() - start)
    return {"epoch_s": epochs, "acc": accs, "predict_s": float(np.median(predict_s)),
            "n": len(x)}


def run_torch(args) -> dict:
    import torch
    from torch import nn

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    x, y, xt, yt = load_data()
    # PyTorch's default layout is NCHW.
    X = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
    Y = torch.from_numpy(y)
    XT = torch.from_numpy(np.ascontiguousarray(xt.transpose(0, 3, 1, 2)))
    model = nn.Sequential(
        nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Dropout(0.25), nn.Flatten(),
        nn.Linear(32 * 13 * 13, 128), nn.ReLU(), nn.Dropout(0.5), nn.Linear(128, 10))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    # Cross-entropy on logits: the same objective as softmax + categorical cross-entropy.
    loss_fn = nn.CrossEntropyLoss()

    def predict():
        model.eval()
        with torch.no_grad():
            return torch.cat([model(XT[i:i + 1000]) for i in range(0, len(XT), 1000)])

    epochs, accs, predict_s = [], [], []
    for _ in range(args.epochs):
        model.train()
        start = time.perf_counter()
        order = torch.randperm(len(X))
        for i in range(0, len(X), args.batch_size):
            idx = order[i:i + args.batch_size]
            optimizer.zero_grad()
            loss_fn(model(X[idx]), Y[idx]).backward()
            optimizer.step()
        epochs.append(time.perf_counter() - start)
        accs.append(float(np.mean(predict().argmax(1).numpy() == yt)))
    for _ in range(3):
        start = time.perf_counter()
        predict()
        predict_s.append(time.perf_counter() - start)
    return {"epoch_s": epochs, "acc": accs, "predict_s": float(np.median(predict_s)),
            "n": len(X)}


def run_keras(args) -> dict:
    """Keras 3 on the backend KERAS_BACKEND names (TensorFlow when unset)."""
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import keras
    from keras import layers

    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    keras.utils.set_random_seed(0)
    x, y, xt, yt = load_data()
    model = keras.Sequential([
        layers.Input((28, 28, 1)), layers.Conv2D(32, 3, activation="relu"),
        layers.MaxPooling2D(2), layers.Dropout(0.25), layers.Flatten(),
        layers.Dense(128, activation="relu"), layers.Dropout(0.5),
        layers.Dense(10, activation="softmax")])
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return {**_keras_style_run(model, args, x, y, xt, yt), "backend": keras.backend.backend()}


def worker(args) -> None:
    result = {"fastconv": run_fastconv, "torch": run_torch,
              "keras": run_keras}[args.worker](args)
    result["peak_rss_mb"] = peak_rss_mb()
    print("RESULT " + json.dumps(result), flush=True)


def overhead(args) -> None:
    """Split fastconv training steps into kernel time and everything else.

    Kernel time is the time inside fastconv's compiled kernels (every function of its
    extension modules ``_conv``, ``_pool`` and ``_elementwise``, called from the
    backends, the Dropout layer and the optimizers; the Dense layers' products run on
    ``_conv.matmul_blocks``). The rest (Python,
    NumPy glue such as reshapes, the bias add and the loss, argument checks,
    allocation) is the overhead that issue 4 bounds.
    """
    import fastconv
    from fastconv import _conv, _elementwise, _pool
    from fastconv.utils import set_random_seed

    fastconv.set_num_threads(args.threads)
    set_random_seed(0)
    rng = np.random.default_rng(0)
    model = lecture_model_fastconv()
    x = rng.random((args.batch_size, 28, 28, 1), dtype=np.float32)
    y = rng.integers(0, 10, args.batch_size)
    spent = {}

    def timed(name, fn):
        def wrapper(*a, **k):
            start = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                spent[name] = spent.get(name, 0.0) + time.perf_counter() - start
        return wrapper

    # Modules and the names of the functions in them that count as kernels; the
    # callers look these up on the module at every call, so wrapping them there works.
    targets = []
    for module in (_conv, _pool, _elementwise):
        for name in dir(module):
            fn = getattr(module, name)
            if callable(fn) and not name.startswith("_") and not isinstance(fn, type) \
                    and name not in ("have_avx2",):
                targets.append((module, name, f"{module.__name__.split('.')[-1]}.{name}"))
    originals = [getattr(module, name) for module, name, _ in targets]

    @contextlib.contextmanager
    def replaced(make):
        """Every kernel replaced by ``make(label, original)`` inside the block."""
        try:
            for (module, name, label), fn in zip(targets, originals):
                setattr(module, name, make(label, fn))
            yield
        finally:
            for (module, name, _), fn in zip(targets, originals):
                setattr(module, name, fn)

    # The glue alone: every kernel a no-op (the numbers go wrong, the Python and NumPy
    # work per step stays the same).
    def no_op(*a, **k):
        return None

    def fake_matmul(a, b, out=None):
        return out if out is not None else np.zeros((a.shape[0], b.shape[1]), a.dtype)

    def zero_loss(*a, **k):
        return 0

    def glue_only(label, fn):
        if label.startswith("BLAS"):
            return fake_matmul
        # The kernels whose callers use a returned number get a zero.
        returns_number = label.endswith(("softmax_xent", "argmax_hits"))
        return zero_loss if returns_number else no_op

    for _ in range(20):  # warm-up
        model.train_on_batch(x, y)
    steps = args.steps
    plain = []
    for _ in range(steps):
        start = time.perf_counter()
        model.train_on_batch(x, y)
        plain.append(time.perf_counter() - start)
    total = []
    inside = []
    with replaced(timed):
        for _ in range(steps):
            before = sum(spent.values())
            start = time.perf_counter()
            model.train_on_batch(x, y)
            total.append(time.perf_counter() - start)
            inside.append(sum(spent.values()) - before)
    glue = []
    with replaced(glue_only), np.errstate(all="ignore"):
        for _ in range(20):
            model.train_on_batch(x, y)
        for _ in range(steps):
            start = time.perf_counter()
            model.train_on_batch(x, y)
            glue.append(time.perf_counter() - start)
    by_kernel = dict(spent)
    # The same split for steps as fit runs them: batches gathered from arrays, no
    # per-call argument checks, metrics and callbacks as in training. One epoch of
    # `steps` batches each time, medians of three.
    xs = rng.random((steps * args.batch_size, 28, 28, 1), dtype=np.float32)
    ys = rng.integers(0, 10, len(xs))
    fit_plain, fit_share, fit_glue = [], [], []
    for _ in range(3):
        start = time.perf_counter()
        model.fit(xs, ys, batch_size=args.batch_size, epochs=1, verbose=0)
        fit_plain.append(time.perf_counter() - start)
        spent.clear()
        with replaced(timed):
            start = time.perf_counter()
            model.fit(xs, ys, batch_size=args.batch_size, epochs=1, verbose=0)
            elapsed = time.perf_counter() - start
        fit_share.append(1 - sum(spent.values()) / elapsed)
        with replaced(glue_only), np.errstate(all="ignore"):
            start = time.perf_counter()
            model.fit(xs, ys, batch_size=args.batch_size, epochs=1, verbose=0)
            fit_glue.append(time.perf_counter() - start)
    total, inside = np.array(total), np.array(inside)
    share = np.median((total - inside) / total)
    print(f"fastconv training step, batch {args.batch_size}, {args.threads} threads, "
          f"{steps} steps after 20 warm-up")
    print("train_on_batch (checks its arguments on every call):")
    print(f"  step (no timers)      median {np.median(plain) * 1e3:7.2f} ms")
    print(f"  step (timed)          median {np.median(total) * 1e3:7.2f} ms")
    print(f"  inside kernels        median {np.median(inside) * 1e3:7.2f} ms "
          "(compiled fastconv kernels + Dense's BLAS products)")
    print(f"  outside kernels (Python, NumPy glue, loss)  median share {share:.1%}, "
          f"share of the totals {1 - inside.sum() / total.sum():.1%}, "
          f"median {np.median(total - inside) * 1e3:.2f} ms")
    for n, s in sorted(by_kernel.items(), key=lambda kv: -kv[1]):
        print(f"    {n:40s} {s / steps * 1e3:7.3f} ms/step")
    print(f"  glue alone (every kernel a no-op)  median {np.median(glue) * 1e3:.2f} ms, "
          f"{np.median(glue) / np.median(plain):.1%} of a step without timers")
    step_ms = np.median(fit_plain) / steps * 1e3
    print("fit (one epoch of the same number of batches, three times):")
    print(f"  step (no timers)      {step_ms:7.2f} ms")
    print(f"  outside kernels       share {np.median(fit_share):.1%} "
          f"(runs: {', '.join(f'{v:.1%}' for v in fit_share)})")
    print(f"  glue alone            {np.median(fit_glue) / steps * 1e3:.2f} ms per step, "
          f"{np.median(fit_glue) / np.median(fit_plain):.1%} of a step without timers")
    import cProfile
    import pstats

    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(steps):
        model.train_on_batch(x, y)
    profiler.disable()
    stats = pstats.Stats(profiler)
    calls = sum(v[1] for k, v in stats.stats.items())
    print(f"  cProfile: {calls / steps:.0f} function calls per step; top own-time entries "
          "(ms/step, profiler overhead included; compiled kernels appear under their callers):")
    rows = sorted(stats.stats.items(), key=lambda kv: -kv[1][2])[:12]
    for (path, line, fn), v in rows:
        print(f"    {v[2] / steps * 1e3:7.3f}  {os.path.basename(path)}:{line} {fn}")


def augmentation_cost(args) -> None:
    """An epoch of the lecture model with and without augmentation, alternated, one run."""
    import fastconv
    from fastconv.preprocessing import RandomFlip, RandomRotation, RandomTranslation
    from fastconv.utils import set_random_seed

    fastconv.set_num_threads(args.threads)
    x, y, _, _ = load_data()
    if args.limit:
        x, y = x[:args.limit], y[:args.limit]
    set_random_seed(0)
    augment = [RandomFlip("horizontal"), RandomTranslation(0.1, 0.1),
               RandomRotation(0.05)]
    plain = lecture_model_fastconv()
    augmented = lecture_model_fastconv(augment)
    times = {"plain": [], "augmented": []}
    for _ in range(args.epochs):
        for name, model in (("plain", plain), ("augmented", augmented)):
            start = time.perf_counter()
            model.fit(x, y, batch_size=args.batch_size, epochs=1, verbose=0)
            times[name].append(time.perf_counter() - start)
    # The layers alone over one epoch's batches: the direct cost, less exposed to noise.
    alone = []
    for _ in range(args.epochs):
        start = time.perf_counter()
        for lo in range(0, len(x), args.batch_size):
            out = x[lo:lo + args.batch_size]
            for layer in augment:
                out = layer.forward(out, training=True)
        alone.append(time.perf_counter() - start)
    p, a, t = (float(np.median(times["plain"])), float(np.median(times["augmented"])),
               float(np.median(alone)))
    print(f"lecture MNIST model, {len(x)} images, batch {args.batch_size}, {args.threads} "
          f"threads, medians of {args.epochs} alternated epochs")
    print("augmentation: RandomFlip('horizontal'), RandomTranslation(0.1, 0.1), "
          "RandomRotation(0.05) (bilinear, reflect)")
    print(f"  epoch without augmentation  {p:7.2f} s   {times['plain']}")
    print(f"  epoch with augmentation     {a:7.2f} s   {times['augmented']}")
    print(f"  augmentation layers alone   {t:7.2f} s per epoch of batches")
    print(f"  ratio (with - without) / without: {(a - p) / p:+.1%};  "
          f"layers alone / epoch without: {t / p:.1%}")


def table(results: dict, args) -> None:
    print(f"\nLecture MNIST model on Fashion-MNIST, {args.epochs} epoch(s), batch "
          f"{args.batch_size}, {args.threads} thread(s)")
    head = (f"{'framework':16s} {'s/epoch':>8s} {'1st ep':>7s} {'img/s':>7s} "
            f"{'predict 10k s':>13s} {'peak RSS MB':>11s}  test acc per epoch")
    print(head)
    print("-" * len(head))
    for name, r in results.items():
        med = float(np.median(r["epoch_s"]))
        print(f"{name:16s} {med:8.2f} {r['epoch_s'][0]:7.2f} {r['n'] / med:7.0f} "
              f"{r['predict_s']:13.3f} {r['peak_rss_mb']:11.0f}  "
              + " ".join(f"{a:.4f}" for a in r["acc"]))
    if "fastconv" in results and len(results) > 1:
        f = results["fastconv"]
        print("\nratios fastconv / other (below 1: fastconv is faster or smaller)")
        for name, r in results.items():
            if name == "fastconv":
                continue
            print(f"  vs {name}: epoch time {np.median(f['epoch_s']) / np.median(r['epoch_s']):.2f}"
                  f", predict {f['predict_s'] / r['predict_s']:.2f}"
                  f", peak RSS {f['peak_rss_mb'] / r['peak_rss_mb']:.2f}"
                  f", final accuracy difference {f['acc'][-1] - r['acc'][-1]:+.4f}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--frameworks", default="fastconv,torch,keras",
                        help="comma-separated, from: " + ", ".join(FRAMEWORKS))
    parser.add_argument("--overhead", action="store_true",
                        help="split fastconv's training step into kernel time and the rest")
    parser.add_argument("--steps", type=int, default=200,
                        help="with --overhead: timed steps per measurement")
    parser.add_argument("--augmentation", action="store_true",
                        help="time fastconv epochs with and without augmentation layers")
    parser.add_argument("--limit", type=int, default=None,
                        help="with --augmentation: the first N training images only")
    parser.add_argument("--worker", choices=FRAMEWORKS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if min(args.epochs, args.batch_size, args.threads, args.steps) < 1:
        parser.error("--epochs, --batch-size, --threads and --steps must be positive")
    if args.worker:
        worker(args)
        return 0
    if args.overhead:
        overhead(args)
        return 0
    if args.augmentation:
        augmentation_cost(args)
        return 0
    wanted = [f.strip() for f in args.frameworks.split(",") if f.strip()]
    unknown = [f for f in wanted if f not in FRAMEWORKS]
    if unknown:
        parser.error(f"--frameworks: unknown {unknown}; choose from {list(FRAMEWORKS)}")
    results = {}
    for name in wanted:
        if name != "fastconv" and importlib.util.find_spec(name) is None:
            print(f"{name} is not importable by {sys.executable}: skipped (for PyTorch and "
                  "Keras run this script with /tmp/anchor-venv/bin/python)")
            continue
        cmd = [sys.executable, os.path.abspath(__file__), "--worker", name,
               "--epochs", str(args.epochs), "--batch-size", str(args.batch_size),
               "--threads", str(args.threads)]
        env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
        runtime = sys.modules.get("fastconv._runtime")
        if name != "fastconv" and runtime is not None \
                and "OMP_WAIT_POLICY=PASSIVE" in runtime.APPLIED:
            # Set by fastconv for its own OpenMP runtime; other frameworks get their
            # own defaults.
            for var in runtime.OMP_VARIABLES:
                if any(a.startswith(var + "=") for a in runtime.APPLIED):
                    env.pop(var, None)
        print(f"running {name} ...", flush=True)
        done = subprocess.run(cmd, capture_output=True, text=True, env=env)
        lines = [ln for ln in done.stdout.splitlines() if ln.startswith("RESULT ")]
        if done.returncode != 0 or not lines:
            print(f"{name} failed (exit {done.returncode}):\n{done.stderr[-2000:]}")
            continue
        result = json.loads(lines[-1][len("RESULT "):])
        results[f"keras-{result['backend']}" if name == "keras" else name] = result
    if results:
        table(results, args)
    return 0 if results else 1


if __name__ == "__main__":
    sys.exit(main())
