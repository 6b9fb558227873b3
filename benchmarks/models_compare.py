"""Training and inference throughput and peak memory of published CNNs: fastconv
against PyTorch, and Keras on TensorFlow when importable.

Architectures (issue 18), each written once below as a list of layer specs and built
from it for every framework:

- ``lecture``: the lecture's MNIST model, Conv2D(32, 3) -> MaxPooling2D -> Dropout ->
  Flatten -> Dense(128) -> Dropout -> Dense(10);
- ``lab``: the lecture workshop's two-conv model, Conv2D(64, 3) -> Conv2D(32, 3) ->
  Flatten -> Dense(10) (``shared/lecture/004_*.txt``);
- ``mnist3``: a three-conv MNIST convnet, Conv2D(32) -> pool -> Conv2D(64) -> pool ->
  Conv2D(128) -> Flatten -> Dense(10);
- ``cifar_tf``: TensorFlow's CIFAR-10 tutorial CNN, Conv2D(32) -> pool -> Conv2D(64)
  -> pool -> Conv2D(64) -> Flatten -> Dense(64) -> Dense(10) on 32x32x3;
- ``fashion_deep``: the deeper Fashion-MNIST CNN, Conv2D(64, 7, 'same') -> pool ->
  2 x Conv2D(128, 3, 'same') -> pool -> 2 x Conv2D(256, 3, 'same') -> pool -> Flatten
  -> Dense(128) -> Dropout -> Dense(64) -> Dropout -> Dense(10);
- ``resnet_bn``: a small ResNet with BatchNormalization (functional API): a
  Conv2D(32, 3, 'same') + BN + ReLU stem, then three residual blocks (two 3x3 'same'
  convolutions with BN, the input added back, ReLU) with max pooling between the
  second and third, global average pooling, Dense(10).

Each framework runs in a subprocess of its own (``--worker``), so that its threads,
allocations and peak resident memory (``ru_maxrss``, which includes the interpreter,
the framework and the random data) are its own. Training: Adam(1e-3), sparse
categorical cross-entropy, random images and labels, ``--steps`` timed steps of
``--batch-size`` after ``--warmup`` steps; inference: predicting ``--steps``
batches. PyTorch runs NCHW (its default) with Lazy layers, the same layer sizes.
PyTorch and Keras run when the interpreter that runs this script can import them, so
on a machine where torch lives in another environment run it there, e.g.::

    PYTHONPATH=. /work/venv-anchor/bin/python benchmarks/models_compare.py --threads 2

The machine may be shared: compare the ratios of one run, not absolute times.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np

FRAMEWORKS = ("fastconv", "torch", "keras")

# (op, *arguments): conv (filters, kernel, padding), pool, dropout (rate), flatten,
# dense (units, activation), bn, relu, gap, res (a list of specs added back to its input).
_BLOCK = [("conv", 32, 3, "same", None), ("bn",), ("relu",), ("conv", 32, 3, "same", None),
          ("bn",)]
MODELS = {
    "lecture": ((28, 28, 1), [("conv", 32, 3, "valid", "relu"), ("pool",), ("dropout", 0.25),
                              ("flatten",), ("dense", 128, "relu"), ("dropout", 0.5),
                              ("dense", 10, None)]),
    "lab": ((28, 28, 1), [("conv", 64, 3, "valid", "relu"), ("conv", 32, 3, "valid", "relu"),
                          ("flatten",), ("dense", 10, None)]),
    "mnist3": ((28, 28, 1), [("conv", 32, 3, "valid", "relu"), ("pool",),
                             ("conv", 64, 3, "valid", "relu"), ("pool",),
                             ("conv", 128, 3, "valid", "relu"), ("flatten",),
                             ("dense", 10, None)]),
    "cifar_tf": ((32, 32, 3), [("conv", 32, 3, "valid", "relu"), ("pool",),
                               ("conv", 64, 3, "valid", "relu"), ("pool",),
                               ("conv", 64, 3, "valid", "relu"), ("flatten",),
                               ("dense", 64, "relu"), ("dense", 10, None)]),
    "fashion_deep": ((28, 28, 1), [
        ("conv", 64, 7, "same", "relu"), ("pool",),
        ("conv", 128, 3, "same", "relu"), ("conv", 128, 3, "same", "relu"), ("pool",),
        ("conv", 256, 3, "same", "relu"), ("conv", 256, 3, "same", "relu"), ("pool",),
        ("flatten",), ("dense", 128, "relu"), ("dropout", 0.5), ("dense", 64, "relu"),
        ("dropout", 0.5), ("dense", 10, None)]),
    "resnet_bn": ((32, 32, 3), [("conv", 32, 3, "same", None), ("bn",), ("relu",),
                                ("res", _BLOCK), ("relu",), ("res", _BLOCK), ("relu",),
                                ("pool",), ("res", _BLOCK), ("relu",), ("gap",),
                                ("dense", 10, None)]),
}


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def keras_model(keras, name: str):
    """The architecture on a Keras-3 namespace (fastconv.keras or keras), functional
    API, logits out; compiled with Adam and sparse cross-entropy from logits."""
    shape, spec = MODELS[name]
    L = keras.layers

    def apply(spec, t):
        for op, *a in spec:
            if op == "conv":
                t = L.Conv2D(a[0], a[1], padding=a[2], activation=a[3])(t)
            elif op == "pool":
                t = L.MaxPooling2D(2)(t)
            elif op == "dropout":
                t = L.Dropout(a[0])(t)
            elif op == "flatten":
                t = L.Flatten()(t)
            elif op == "dense":
                t = L.Dense(a[0], activation=a[1])(t)
            elif op == "bn":
                t = L.BatchNormalization()(t)
            elif op == "relu":
                t = L.ReLU()(t)
            elif op == "gap":
                t = L.GlobalAveragePooling2D()(t)
            elif op == "res":
                t = L.Add()([t, apply(a[0], t)])
        return t

    inputs = keras.Input(shape=shape)
    model = keras.Model(inputs, apply(spec, inputs))
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def torch_model(name: str):
    """The architecture in PyTorch (NCHW), the same layer sizes (Lazy layers)."""
    from torch import nn

    class Residual(nn.Module):
        def __init__(self, body):
            super().__init__()
            self.body = body

        def forward(self, t):
            return t + self.body(t)

    acts = {"relu": nn.ReLU, None: None}

    def build(spec):
        mods = []
        for op, *a in spec:
            if op == "conv":
                mods.append(nn.LazyConv2d(a[0], a[1], padding=a[2]))
                if acts[a[3]]:
                    mods.append(acts[a[3]]())
            elif op == "pool":
                mods.append(nn.MaxPool2d(2))
            elif op == "dropout":
                mods.append(nn.Dropout(a[0]))
            elif op == "flatten":
                mods.append(nn.Flatten())
            elif op == "dense":
                mods.append(nn.LazyLinear(a[0]))
                if acts[a[1]]:
                    mods.append(acts[a[1]]())
            elif op == "bn":
                mods.append(nn.LazyBatchNorm2d())
            elif op == "relu":
                mods.append(nn.ReLU())
            elif op == "gap":
                mods.extend([nn.AdaptiveAvgPool2d(1), nn.Flatten()])
            elif op == "res":
                mods.append(Residual(build(a[0])))
        return nn.Sequential(*mods)

    return build(MODELS[name][1])


def _data(name: str, n: int):
    rng = np.random.default_rng(0)
    x = rng.random((n, *MODELS[name][0]), dtype=np.float32)
    return x, rng.integers(0, 10, n).astype(np.int64)


def run_keras_style(keras, args) -> dict:
    model = keras_model(keras, args.model)
    b = args.batch_size
    x, y = _data(args.model, b * max(args.steps, args.warmup))
    for i in range(args.warmup):
        model.train_on_batch(x[i * b:(i + 1) * b], y[i * b:(i + 1) * b])
    start = time.perf_counter()
    for i in range(args.steps):
        model.train_on_batch(x[i * b:(i + 1) * b], y[i * b:(i + 1) * b])
    train_s = time.perf_counter() - start
    model.predict(x[:b], batch_size=b, verbose=0)
    start = time.perf_counter()
    model.predict(x[:b * args.steps], batch_size=b, verbose=0)
    return {"train_ips": b * args.steps / train_s,
            "predict_ips": b * args.steps / (time.perf_counter() - start)}


def run_torch(args) -> dict:
    import torch

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = torch_model(args.model)
    b = args.batch_size
    x, y = _data(args.model, b * max(args.steps, args.warmup))
    X = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
    Y = torch.from_numpy(y)
    model(X[:b])  # materialise the Lazy layers before the optimizer sees them
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()

    def step(i):
        opt.zero_grad()
        loss_fn(model(X[i * b:(i + 1) * b]), Y[i * b:(i + 1) * b]).backward()
        opt.step()

    model.train()
    for i in range(args.warmup):
        step(i)
    start = time.perf_counter()
    for i in range(args.steps):
        step(i)
    train_s = time.perf_counter() - start
    model.eval()
    with torch.no_grad():
        model(X[:b])
        start = time.perf_counter()
        for i in range(args.steps):
            model(X[i * b:(i + 1) * b])
        predict_s = time.perf_counter() - start
    return {"train_ips": b * args.steps / train_s, "predict_ips": b * args.steps / predict_s}


def worker(args) -> None:
    if args.worker == "fastconv":
        import fastconv
        import fastconv.keras as keras

        fastconv.set_num_threads(args.threads)
        with fastconv.conv_algorithm(args.conv_algorithm):
            result = run_keras_style(keras, args)
    elif args.worker == "torch":
        result = run_torch(args)
    else:
        import keras

        result = run_keras_style(keras, args)
    result["peak_rss_mb"] = peak_rss_mb()
    print(json.dumps(result))


def available(framework: str) -> bool:
    """Whether this interpreter can run ``framework`` (Keras only on TensorFlow)."""
    if framework == "fastconv":
        return True
    if framework == "torch":
        return importlib.util.find_spec("torch") is not None
    return (importlib.util.find_spec("keras") is not None
            and importlib.util.find_spec("tensorflow") is not None)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default=",".join(MODELS),
                   help=f"comma-separated, of {', '.join(MODELS)}")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--steps", type=int, default=20, help="timed steps (and predict batches)")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--conv-algorithm", default="auto", choices=["auto", "direct", "winograd"],
                   help="fastconv.set_conv_algorithm in fastconv's worker (default: auto)")
    p.add_argument("--worker", choices=FRAMEWORKS, help=argparse.SUPPRESS)
    p.add_argument("--model", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    for flag in ("threads", "batch_size", "steps"):
        if getattr(a, flag) < 1:
            p.error(f"--{flag.replace('_', '-')} must be >= 1. Received: {getattr(a, flag)}")
    if a.worker:
        worker(a)
        return 0
    models = a.models.split(",")
    unknown = [m for m in models if m not in MODELS]
    if unknown:
        p.error(f"--models must name models of {', '.join(MODELS)}. Received: {unknown}")
    frameworks = [f for f in FRAMEWORKS if available(f)]
    for f in FRAMEWORKS:
        if f not in frameworks:
            print(f"# {f}: not importable here (Keras needs TensorFlow), skipped")
    env = dict(os.environ, KERAS_BACKEND=os.environ.get("KERAS_BACKEND", "tensorflow"))
    print(f"# batch {a.batch_size}, {a.steps} timed steps after {a.warmup}, "
          f"{a.threads} threads, fastconv conv algorithm {a.conv_algorithm}; images/s; "
          f"ratio = fastconv / other")
    print(f"{'model':13s} {'framework':9s} {'train img/s':>12s} {'predict img/s':>14s} "
          f"{'peak RSS MB':>12s} {'x train':>8s} {'x predict':>9s}")
    for m in models:
        res = {}
        for f in frameworks:
            cmd = [sys.executable, __file__, "--worker", f, "--model", m, "--threads",
                   str(a.threads), "--batch-size", str(a.batch_size), "--steps",
                   str(a.steps), "--warmup", str(a.warmup), "--conv-algorithm",
                   a.conv_algorithm]
            out = subprocess.run(cmd, capture_output=True, text=True, env=env)
            if out.returncode:
                print(f"{m:13s} {f:9s} failed: {out.stderr.strip().splitlines()[-1:]}")
                continue
            res[f] = json.loads(out.stdout.strip().splitlines()[-1])
        base = res.get("fastconv")
        for f, r in res.items():
            ratio_t = ratio_p = "-"
            if base and f != "fastconv":
                ratio_t = f"{base['train_ips'] / r['train_ips']:.2f}"
                ratio_p = f"{base['predict_ips'] / r['predict_ips']:.2f}"
            print(f"{m:13s} {f:9s} {r['train_ips']:12.0f} {r['predict_ips']:14.0f} "
                  f"{r['peak_rss_mb']:12.0f} {ratio_t:>8s} {ratio_p:>9s}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
