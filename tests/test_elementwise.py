"""Compiled element-wise kernels used by the model layer: the optimizers, dropout, bias
(+ReLU)."""

import numpy as np
import pytest

import fastconv
import fastconv.layers.core  # noqa: F401  (patched below)
from fastconv import _elementwise, layers, losses, optimizers
from fastconv.layers import Dense, Dropout


# Every rule of the compiled optimizer kernel, with the options that change its loop.
OPTIMIZER_CASES = {
    "sgd": lambda: optimizers.SGD(0.1),
    "sgd-momentum": lambda: optimizers.SGD(0.1, momentum=0.9),
    "sgd-nesterov": lambda: optimizers.SGD(0.1, momentum=0.9, nesterov=True),
    "adam": lambda: optimizers.Adam(0.01),
    "adam-amsgrad": lambda: optimizers.Adam(0.01, amsgrad=True),
    "adamw": lambda: optimizers.AdamW(0.01, weight_decay=0.05),
    "nadam": lambda: optimizers.Nadam(0.01),
    "adamax": lambda: optimizers.Adamax(0.01),
    "adagrad": lambda: optimizers.Adagrad(0.05),
    "adadelta": lambda: optimizers.Adadelta(1.0),
    "lion": lambda: optimizers.Lion(0.01, weight_decay=0.1),
    "rmsprop": lambda: optimizers.RMSprop(0.01),
    "rmsprop-centered": lambda: optimizers.RMSprop(0.01, centered=True),
    "rmsprop-momentum": lambda: optimizers.RMSprop(0.01, momentum=0.5),
    "rmsprop-centered-momentum": lambda: optimizers.RMSprop(0.01, momentum=0.5,
                                                            centered=True),
}


def _run_optimizer(make, params0, grads, compiled, monkeypatch):
    monkeypatch.setattr(optimizers, "_compiled", compiled)
    params = [p.copy() for p in params0]
    opt = make()
    with np.errstate(all="ignore"):  # the NaN gradient
        for step in grads:
            opt.apply(params, step)
    return params


@pytest.mark.parametrize("case", sorted(OPTIMIZER_CASES))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_compiled_optimizer_is_bit_identical_to_its_numpy_rule(case, dtype, rng,
                                                               monkeypatch):
    # The NumPy rules in fastconv.optimizers are the specification (checked against
    # Keras in test_optimizer_parity); the compiled kernel must give their bits, on 1
    # and 2 threads, for arrays above the parallel threshold (several chunks), tiny
    # ones, empty ones, and gradients with zeros, Inf and NaN.
    make = OPTIMIZER_CASES[case]
    shapes = [(70001,), (3, 5), (1,), (0,), (40, 40)]
    params0 = [rng.standard_normal(s).astype(dtype) for s in shapes]
    grads = [[rng.standard_normal(s).astype(dtype) for s in shapes] for _ in range(4)]
    grads[1][1][0, :3] = [0.0, np.inf, np.nan]
    grads[2][4][:] = 0.0
    calls = []
    real = _elementwise.optimizer_update_many

    def spy(*args):
        calls.append(args[0])
        return real(*args)

    monkeypatch.setattr(_elementwise, "optimizer_update_many", spy)
    reference = _run_optimizer(make, params0, grads, None, monkeypatch)
    assert not calls
    for n in (1, 2):
        fastconv.set_num_threads(n)
        try:
            got = _run_optimizer(make, params0, grads, _elementwise, monkeypatch)
        finally:
            fastconv.set_num_threads(None)
        assert len(calls) == 4 * n  # one compiled call per step: the kernel ran
        for a, b in zip(got, reference):
            np.testing.assert_array_equal(a, b, strict=True)
    assert all(not np.array_equal(a, b) for a, b in zip(reference[:3], params0[:3]))


def test_compiled_optimizer_by_hand():
    # SGD with Nesterov momentum 0.5, lr 0.1, g = 2 for two steps, by hand:
    # v1 = -0.2, p1 = 1 + (0.5 * -0.2 - 0.2) = 0.7; v2 = -0.1 - 0.2 = -0.3,
    # p2 = 0.7 + (0.5 * -0.3 - 0.2) = 0.35.
    p = np.array([1.0])
    v = np.zeros(1)
    for _ in range(2):
        _elementwise.optimizer_update_many("nesterov", [p], [np.array([2.0])], [[v]],
                                           (0.1, 0.5), False, 1)
    np.testing.assert_allclose(p, [0.35], rtol=1e-15)
    np.testing.assert_allclose(v, [-0.3], rtol=1e-15)
    # Adagrad from an accumulator of 0.1 with g = 3, lr 1, eps 0: acc = 9.1,
    # p = 0 - 3 / sqrt(9.1); weight decay 0.5 first (lr 1) halves p = 4 to 2.
    p = np.array([0.0, 4.0])
    acc = np.full(2, 0.1)
    _elementwise.optimizer_update_many("adagrad", [p], [np.array([3.0, 0.0])], [[acc]],
                                       (1.0, 0.0, 0, 0, 0, 0, 0.5, 1.0), True, 1)
    np.testing.assert_allclose(p, [-3 / np.sqrt(9.1), 2.0], rtol=1e-15)
    # Lion: p -= lr * sign(b1 m + (1 - b1) g): a NaN gradient gives NaN, 0 gives no step.
    p = np.ones(3)
    m = np.zeros(3)
    _elementwise.optimizer_update_many("lion", [p], [np.array([-5.0, 0.0, np.nan])], [[m]],
                                       (0.25, 0.9, 0.1, 0.99, 0.01), False, 1)
    np.testing.assert_array_equal(p, [1.25, 1.0, np.nan])


def test_compiled_optimizer_refuses_bad_arguments():
    p, g = [np.ones(4)], [np.ones(4)]
    with pytest.raises(ValueError, match="`rule` must be one of"):
        _elementwise.optimizer_update_many("sgdd", p, g, [], (0.1,), False, 1)
    with pytest.raises(ValueError, match=r"`slots\[0\]` must be a list of arrays"):
        _elementwise.optimizer_update_many("adagrad", p, g, [None], (0.1,), False, 1)
    with pytest.raises(ValueError, match="same length"):
        _elementwise.optimizer_update_many("adagrad", p, g, [[]], (0.1,), False, 1)
    with pytest.raises(ValueError, match="at most 11 numbers"):
        _elementwise.optimizer_update_many("sgd", p, g, [], (0.0,) * 12, False, 1)
    with pytest.raises(ValueError, match=r"`slots\[0\]\[0\]` and `params\[0\]` share"):
        _elementwise.optimizer_update_many("adagrad", p, g, [p], (0.1,), False, 1)
    with pytest.raises(TypeError, match=r"`slots\[1\]\[0\]` must have the dtype"):
        _elementwise.optimizer_update_many("adadelta", p, g, [[np.ones(4)],
                                           [np.ones(4, np.float32)]], (0.1,), False, 1)
    np.testing.assert_array_equal(p[0], np.ones(4))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_adam_on_many_arrays_in_one_call_matches_numpy_adam(dtype, threads, rng,
                                                            monkeypatch):
    # Several weight arrays (one empty, one spanning several chunks) updated by one
    # compiled call per step after the first: the NumPy optimizer's bits, every step.
    shapes = [(3, 3, 1, 32), (32,), (0,), (5408, 13), (70001,), (10,)]
    p0 = [rng.standard_normal(s).astype(dtype) for s in shapes]
    steps = [[rng.standard_normal(s).astype(dtype) for s in shapes] for _ in range(3)]
    results = []
    for compiled in (_elementwise, None):
        monkeypatch.setattr(optimizers, "_compiled", compiled)
        params = [p.copy() for p in p0]
        opt = optimizers.Adam(learning_rate=0.01)
        for grads in steps:
            opt.apply(params, grads)
        results.append(params)
    for a, b, p in zip(*results, p0):
        assert np.array_equal(a, b)
        assert p.size == 0 or not np.array_equal(a, p)


def test_adam_on_many_arrays_checks_every_array_before_changing_any(rng):
    p = [rng.standard_normal(40).astype(np.float32) for _ in range(2)]
    g = [np.ones(40, np.float32) for _ in range(2)]
    m = [np.zeros(40, np.float32) for _ in range(2)]
    v = [np.zeros(40, np.float32) for _ in range(2)]
    before = [a.copy() for a in p]
    bad_cases = [
        (TypeError, "grads\\[1\\]", lambda: (p, [g[0], g[1].astype(np.float64)], m, v)),
        (ValueError, "grads\\[1\\]", lambda: (p, [g[0], np.ones(41, np.float32)], m, v)),
        (ValueError, "ms\\[1\\]", lambda: (p, g, [m[0], np.zeros((40, 2), np.float32)[:, 0]], v)),
        (TypeError, "vs\\[0\\]", lambda: (p, g, m, [[0.0] * 40, v[1]])),
        (TypeError, "params\\[0\\]", lambda: ([p[0].astype(np.int64), p[1]], g, m, v)),
        (ValueError, "same length", lambda: (p, g[:1], m, v)),
    ]
    readonly = p[1].copy()
    readonly.flags.writeable = False
    bad_cases.append((ValueError, "params\\[1\\].*writable", lambda: ([p[0], readonly], g, m, v)))
    for exc, match, make in bad_cases:
        with pytest.raises(exc, match=match):
            _elementwise.adam_update_many(*make(), 0.1, 0.001, 1e-7, 0.01, 2)
        for a, b in zip(p, before):
            assert np.array_equal(a, b)
        assert not any(a.any() for a in m + v)


def test_adam_on_many_arrays_refuses_overlapping_arrays(rng):
    # The arrays are updated in parallel tasks: an array written twice, or written
    # while read as another's gradient, would race, so it is refused before any write.
    p = [rng.standard_normal(40).astype(np.float32) for _ in range(3)]
    g = [np.ones(40, np.float32) for _ in range(3)]
    m = [np.zeros(40, np.float32) for _ in range(3)]
    v = [np.zeros(40, np.float32) for _ in range(3)]
    big = np.zeros(100, np.float32)
    before = [a.copy() for a in p]
    bad_cases = [
        (r"params\[.\]` and `params\[.\]", ([p[0], p[1], p[0]], g, m, v)),
        ("share memory", (p, [g[0], p[2], g[2]], m, v)),          # grad is a param
        ("share memory", (p, g, [m[0], m[1], v[2]], v)),          # m is another's v
        ("share memory", (p, g, [big[:40], big[30:70], m[2]], v)),  # partial overlap
    ]
    for match, args in bad_cases:
        with pytest.raises(ValueError, match=match):
            _elementwise.adam_update_many(*args, 0.1, 0.001, 1e-7, 0.01, 2)
        for a, b in zip(p, before):
            assert np.array_equal(a, b)
        assert not any(a.any() for a in m + v) and not big.any()
    # Gradients are only read: one gradient for every array is fine, and so are
    # neighbouring slices of one buffer.
    _elementwise.adam_update_many(p, [g[0]] * 3, [big[:40], big[40:80], m[2]], v,
                                  0.1, 0.001, 1e-7, 0.01, 2)
    assert all(not np.array_equal(a, b) for a, b in zip(p, before))


def test_adam_with_an_array_given_twice_updates_it_twice_in_order(rng, monkeypatch):
    # A weight listed twice (a shared layer, say) gets two sequential updates, exactly
    # as the NumPy optimizer does them.
    w0 = rng.standard_normal(50).astype(np.float32)
    grads = [rng.standard_normal(50).astype(np.float32) for _ in range(2)]
    results = []
    for compiled in (_elementwise, None):
        monkeypatch.setattr(optimizers, "_compiled", compiled)
        w = w0.copy()
        opt = optimizers.Adam(learning_rate=0.01)
        for _ in range(3):
            opt.apply([w, w], grads)
        results.append(w)
    assert np.array_equal(results[0], results[1]) and not np.array_equal(results[0], w0)


def test_adam_by_hand_through_the_kernel():
    # One step from m = v = 0: m = 0.1 g, v = 0.001 g^2, alpha = lr sqrt(0.001) / 0.1,
    # so the step is lr * g / (|g| + eps / sqrt(0.001)) ~= lr * sign(g).
    p = np.array([1.0, -2.0], dtype=np.float64)
    g = np.array([0.5, -4.0])
    optimizers.Adam(learning_rate=0.1, epsilon=0.0).apply([p], [g])
    np.testing.assert_allclose(p, [0.9, -1.9], rtol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dropout_kernel(dtype, threads):
    x = np.full(200_000, 2.0, dtype=dtype)
    x[:2] = [np.inf, np.nan]
    out = np.empty_like(x)
    keep = np.empty_like(x)
    _elementwise.dropout_forward(x, out, keep, 0.25, 1234, 0, threads)
    scale = dtype(1 / 0.75)
    assert set(np.unique(keep)) <= {dtype(0), scale}
    kept = keep != 0
    assert abs(kept.mean() - 0.75) < 0.01  # 200k draws: std of the mean ~ 0.001
    # As NumPy's x * mask: a dropped inf or NaN gives NaN.
    np.testing.assert_array_equal(out, x * keep)
    np.testing.assert_array_equal(out[2:], np.where(kept[2:], dtype(2) * scale, 0))
    dx = np.empty_like(x)
    dout = np.arange(x.size, dtype=dtype)
    _elementwise.dropout_backward(dout, keep, dx, threads)
    np.testing.assert_array_equal(dx, dout * keep)
    # A pure function of (key, step, index): the same mask again, another for step 1.
    keep2 = np.empty_like(keep)
    _elementwise.dropout_forward(x, out, keep2, 0.25, 1234, 0, 1)
    np.testing.assert_array_equal(keep, keep2)
    _elementwise.dropout_forward(x, out, keep2, 0.25, 1234, 1, 1)
    assert 0.5 < (keep == keep2).mean() < 0.75  # independent masks agree ~62.5%


def test_dropout_layer_masks_do_not_depend_on_threads(rng):
    x = rng.standard_normal((64, 13, 13, 32)).astype(np.float32)
    outs = []
    for n in (1, 2):
        fastconv.set_num_threads(n)
        layer = Dropout(0.5, seed=7)
        outs.append([layer.forward(x, training=True)[0].copy() for _ in range(2)])
    fastconv.set_num_threads(None)
    for a, b in zip(*outs):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(outs[0][0], outs[0][1])  # a new mask every step
    np.testing.assert_array_equal(Dropout(0.5, seed=7).forward(x, training=False)[0], x)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(1, 1), (3, 7), (300, 129), (2000, 40)])
def test_bias_act_kernel_is_numpy_bit_for_bit(dtype, shape, threads, rng):
    z0 = rng.standard_normal(shape).astype(dtype)
    z0[0, 0] = np.nan
    b = rng.standard_normal(shape[1]).astype(dtype)
    for bias, relu in ((b, False), (b, True), (None, True)):
        z = z0.copy()
        _elementwise.bias_act(z, bias, relu, threads)
        want = z0 + bias if bias is not None else z0.copy()
        if relu:
            want = np.where(want <= 0, dtype(0), want)  # NaN stays NaN
        np.testing.assert_array_equal(z, want)


@pytest.mark.parametrize("activation", ["relu", "linear", "softmax"])
def test_dense_compiled_epilogue_matches_numpy(activation, rng, monkeypatch):
    x = rng.standard_normal((5, 6)).astype(np.float32)
    dout = rng.standard_normal((5, 4)).astype(np.float32)
    results = []
    for compiled in (_elementwise, None):
        monkeypatch.setattr(layers.core, "_elementwise", compiled)
        layer = Dense(4, activation=activation, bias_initializer="glorot_uniform")
        layer.build_for((None, 6))
        layer.set_weights([np.linspace(-1, 1, 24).reshape(6, 4),
                           np.array([0.5, -0.5, 0.1, 0.0])])
        out, ctx = layer.forward(x, training=True)
        dx, grads = layer.backward(dout, ctx)
        results.append((out, dx, grads[0][1].copy(), grads[1][1].copy()))
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)


def test_dense_fused_relu_backward_checks_dout(rng):
    layer = Dense(4, activation="relu")
    layer.build_for((None, 6))
    out, ctx = layer.forward(rng.standard_normal((5, 6)).astype(np.float32), training=True)
    # Another float dtype is cast, as on the unfused path.
    dx, _ = layer.backward(np.ones(out.shape, dtype=np.float64), ctx)
    assert dx.dtype == np.float32 and dx.shape == (5, 6)
    with pytest.raises(ValueError, match="`dout`"):
        layer.backward(np.ones((4, 5), dtype=np.float32), ctx)  # same size, wrong shape


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(32, 128), (0, 5), (1, 1), (700, 130)])
def test_column_sum_has_numpys_bits(dtype, shape, threads, rng):
    # (700, 130) is above the parallel threshold: columns are split between threads,
    # each column still summed row after row, as np.add.reduce(axis=0) does.
    d = rng.standard_normal(shape).astype(dtype)
    y = rng.standard_normal(shape).astype(dtype)
    if d.size:
        d.flat[0], y.flat[-1] = np.nan, np.nan  # NaN in d passes; NaN in y masks
    db = np.full(shape[1], 7, dtype)
    _elementwise.column_sum(d, None, None, db, threads)
    assert np.array_equal(db, np.add.reduce(d, axis=0), equal_nan=True)
    dz = np.empty_like(d)
    _elementwise.column_sum(d, y, dz, db, threads)
    expected = np.where(y > 0, d, dtype(0))
    assert np.array_equal(dz, expected, equal_nan=True)
    assert np.array_equal(db, np.add.reduce(expected, axis=0), equal_nan=True)


def test_column_sum_refuses_mismatched_arrays():
    d = np.ones((4, 3), np.float32)
    with pytest.raises(ValueError, match="column_sum"):
        _elementwise.column_sum(d, None, None, np.empty(4, np.float32), 1)
    with pytest.raises(ValueError, match="column_sum"):
        _elementwise.column_sum(d, d, None, np.empty(3, np.float32), 1)
    with pytest.raises(ValueError, match="column_sum"):
        _elementwise.column_sum(d, d, np.empty((3, 3), np.float32), np.empty(3, np.float32), 1)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("sparse", [True, False])
@pytest.mark.parametrize("shape", [(32, 10), (5, 1), (3, 4, 7), (2, 1000)])
def test_softmax_xent_matches_the_numpy_loss(dtype, sparse, shape, rng, monkeypatch):
    z = (rng.standard_normal(shape) * 8).astype(dtype)
    if z.size:
        z.flat[0] = 80  # exp(80) overflows float32: only the max-shifted form survives
    labels = rng.integers(0, shape[-1], shape[:-1])
    if sparse:
        loss, y = losses.SparseCategoricalCrossentropy(from_logits=True), labels
    else:
        loss = losses.CategoricalCrossentropy(from_logits=True)
        y = rng.random(shape).astype(dtype)  # soft targets, rows not summing to one
    y = loss.prepare_targets(y, shape)
    fast = loss.value_and_grad(y, z)
    monkeypatch.setattr(losses, "_compiled", None)
    ref = loss.value_and_grad(y, z)
    assert fast[1].dtype == ref[1].dtype == dtype and fast[1].shape == shape
    tol = 1e-5 if dtype == np.float32 else 1e-12
    assert fast[0] == pytest.approx(ref[0], rel=tol)
    np.testing.assert_allclose(fast[1], ref[1], rtol=tol, atol=tol * 1e-2)


def test_softmax_xent_nan_and_bad_labels():
    z = np.zeros((3, 4), np.float32)
    z[1, 2] = np.nan
    g = np.empty_like(z)
    total = _elementwise.softmax_xent(z, np.array([0, 1, 3], np.intp), None, g, 3)
    assert np.isnan(total) and np.isnan(g[1]).all() and np.isfinite(g[[0, 2]]).all()
    for bad in (-1, 4):
        with pytest.raises(ValueError, match="labels"):
            _elementwise.softmax_xent(z, np.array([0, bad, 1], np.intp), None, g, 3)
    with pytest.raises(ValueError, match="exactly one"):
        _elementwise.softmax_xent(z, None, None, g, 3)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(32, 10), (1, 1), (3, 4, 7), (5000, 10)])
def test_compiled_softmax_matches_the_numpy_softmax(dtype, shape, threads, rng, monkeypatch):
    from fastconv import activations
    x = (rng.standard_normal(shape) * 10).astype(dtype)
    x.flat[0] = 200  # exp would overflow without the max subtracted
    if x.shape[0] > 2:
        x[1] = np.nan  # a NaN row stays NaN
    fast, _ = activations.softmax.forward(x)
    monkeypatch.setattr(activations, "_compiled", None)
    with np.errstate(invalid="ignore"):
        ref, _ = activations.softmax.forward(x)
    tol = 1e-6 if dtype == np.float32 else 1e-14
    np.testing.assert_allclose(fast, ref, rtol=tol, atol=tol * 1e-3)
    assert fast.dtype == dtype and np.array_equal(np.isnan(fast), np.isnan(ref))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_argmax_hits_follows_np_argmax(dtype, rng):
    z = rng.integers(0, 3, (400, 5)).astype(dtype)  # many ties: the first one counts
    z[::7, 2] = np.nan  # a NaN is the largest (the first NaN)
    z[::11, 4] = np.nan
    z[::13] = -np.inf
    labels = rng.integers(0, 5, 400).astype(np.intp)
    labels[::17] = np.argmax(z[::17], axis=1)
    expected = np.count_nonzero(np.argmax(z, axis=1) == labels)
    assert _elementwise.argmax_hits(z, labels) == expected
    labels[:3] = [-1, 5, 99]  # never a hit, never read out of bounds
    assert _elementwise.argmax_hits(z, labels) == np.count_nonzero(
        np.argmax(z, axis=1) == labels)
    with pytest.raises(ValueError, match="one label per row"):
        _elementwise.argmax_hits(z, labels[:-1])
