"""Losses, optimizers, regularizers, activations and initializers against hand-worked numbers."""

import math

import numpy as np
import pytest

from fastconv import activations, initializers, losses, optimizers, regularizers
from fastconv.utils import to_categorical


@pytest.fixture(params=["compiled", "numpy"], autouse=True)
def loss_kernels(request, monkeypatch):
    """Every loss test on the compiled softmax cross-entropy and on the NumPy code."""
    if request.param == "numpy":
        monkeypatch.setattr(losses, "_compiled", None)
    return request.param


def test_categorical_crossentropy_by_hand():
    # softmax([0, ln 3]) = [1/4, 3/4]; target class 1 -> loss ln(4/3), dlogits [1/4, -1/4].
    z = np.array([[0.0, math.log(3.0)]])
    y = np.array([[0.0, 1.0]])
    value, grad = losses.CategoricalCrossentropy(from_logits=True).value_and_grad(y, z)
    assert value == pytest.approx(math.log(4 / 3), rel=1e-12)
    np.testing.assert_allclose(grad, [[0.25, -0.25]], rtol=1e-12)
    p = np.array([[0.25, 0.75]])
    assert losses.CategoricalCrossentropy()(y, p) == pytest.approx(math.log(4 / 3), rel=1e-9)
    assert losses.get("categorical_crossentropy")(y, p) == pytest.approx(math.log(4 / 3))


def test_sparse_categorical_crossentropy_by_hand():
    # Two samples: ln(4/3) and ln 4 (p = 1/4 for class 0) -> mean (ln(4/3) + ln 4) / 2.
    z = np.array([[0.0, math.log(3.0)], [0.0, math.log(3.0)]])
    value, grad = losses.SparseCategoricalCrossentropy(from_logits=True).value_and_grad(
        np.array([1, 0]), z)
    assert value == pytest.approx((math.log(4 / 3) + math.log(4)) / 2, rel=1e-12)
    np.testing.assert_allclose(grad, [[0.125, -0.125], [-0.375, 0.375]], rtol=1e-12)


def test_crossentropy_from_logits_takes_lists_like_arrays():
    z = np.array([[0.0, math.log(3.0)], [1.0, -1.0]])
    sparse = losses.SparseCategoricalCrossentropy(from_logits=True)
    dense = losses.CategoricalCrossentropy(from_logits=True)
    for loss, y in ((sparse, [1, 0]), (dense, [[0.0, 1.0], [1.0, 0.0]])):
        # (a list takes the NumPy path, so the last bits may differ from the kernel's)
        want = loss.value_and_grad(np.array(y), z)
        got = loss.value_and_grad(y, z)
        assert got[0] == pytest.approx(want[0], rel=1e-14)
        np.testing.assert_allclose(got[1], want[1], rtol=1e-14, atol=1e-16)


def test_log_softmax_is_stable():
    z = np.array([[1000.0, 0.0]])
    value, grad = losses.CategoricalCrossentropy(from_logits=True).value_and_grad(
        np.array([[0.0, 1.0]]), z)
    assert value == pytest.approx(1000.0)
    np.testing.assert_allclose(grad, [[1.0, -1.0]])


def test_binary_crossentropy_and_mse_by_hand():
    value, grad = losses.BinaryCrossentropy(from_logits=True).value_and_grad(
        np.array([[1.0], [0.0]]), np.array([[0.0], [800.0]]))
    # sample 1: ln 2, gradient (1/2 - 1) / 2; sample 2: 800 (no overflow), (1 - 0) / 2.
    assert value == pytest.approx((math.log(2) + 800) / 2)
    np.testing.assert_allclose(grad, [[-0.25], [0.5]])
    assert losses.BinaryCrossentropy()([[1.0]], [[0.5]]) == pytest.approx(math.log(2), rel=1e-6)
    value, grad = losses.MeanSquaredError().value_and_grad(np.zeros((1, 2)),
                                                           np.array([[1.0, 3.0]]))
    assert value == 5.0
    np.testing.assert_array_equal(grad, [[1.0, 3.0]])


def test_sparse_loss_refuses_one_hot_and_counts_classes():
    loss = losses.SparseCategoricalCrossentropy()
    with pytest.raises(ValueError, match="looks one-hot.*categorical_crossentropy"):
        loss.prepare_targets(to_categorical([0, 2, 1], 3), (None, 3))
    with pytest.raises(ValueError, match=r"must lie in \[0, 3\).*from 0 to 5"):
        loss.prepare_targets([0, 5], (None, 3))
    with pytest.raises(ValueError, match="have 4 classes.*outputs 3"):
        losses.CategoricalCrossentropy().prepare_targets(np.eye(4), (None, 3))
    with pytest.raises(ValueError, match="looks like integer class labels"):
        losses.CategoricalCrossentropy().prepare_targets([0, 1, 2], (None, 3))


def test_sgd_is_exactly_w_minus_lr_grad():
    w = np.array([1.0, -2.0], np.float32)
    g = np.array([0.5, 0.25], np.float32)
    optimizers.SGD(learning_rate=0.1).apply([w], [g])
    np.testing.assert_array_equal(w, np.array([1.0, -2.0], np.float32)
                                  - np.float32(0.1) * np.array([0.5, 0.25], np.float32))


def test_sgd_momentum_and_nesterov_by_hand():
    w, g = np.array([1.0]), np.array([0.5])
    opt = optimizers.SGD(0.1, momentum=0.9)
    opt.apply([w], [g])  # v = -0.05
    opt.apply([w], [g])  # v = 0.9 * -0.05 - 0.05 = -0.095
    np.testing.assert_allclose(w, [1 - 0.05 - 0.095], rtol=1e-14)
    w = np.array([1.0])
    optimizers.SGD(0.1, momentum=0.9, nesterov=True).apply([w], [g])
    np.testing.assert_allclose(w, [1 + 0.9 * -0.05 - 0.05], rtol=1e-14)


def test_adam_first_steps_by_hand():
    w, g = np.array([1.0]), np.array([0.5])
    opt = optimizers.Adam()
    opt.apply([w], [g])
    # m = 0.05, v = 0.00025, step = 1e-3 * sqrt(0.001) / 0.1 * m / (sqrt(v) + 1e-7)
    step1 = 1e-3 * math.sqrt(0.001) / 0.1 * 0.05 / (math.sqrt(0.00025) + 1e-7)
    np.testing.assert_allclose(w, [1 - step1], rtol=1e-14)
    opt.apply([w], [np.array([-1.0])])
    m = 0.9 * 0.05 + 0.1 * -1.0
    v = 0.999 * 0.00025 + 0.001 * 1.0
    step2 = 1e-3 * math.sqrt(1 - 0.999**2) / (1 - 0.9**2) * m / (math.sqrt(v) + 1e-7)
    np.testing.assert_allclose(w, [1 - step1 - step2], rtol=1e-13)


def test_rmsprop_by_hand():
    w, g = np.array([1.0]), np.array([0.5])
    opt = optimizers.RMSprop()
    opt.apply([w], [g])
    np.testing.assert_allclose(w, [1 - 1e-3 * 0.5 / math.sqrt(0.1 * 0.25 + 1e-7)], rtol=1e-14)
    opt.apply([w], [g])
    v = 0.9 * 0.025 + 0.1 * 0.25
    np.testing.assert_allclose(
        w, [1 - 1e-3 * 0.5 / math.sqrt(0.025 + 1e-7) - 1e-3 * 0.5 / math.sqrt(v + 1e-7)],
        rtol=1e-14)


def test_optimizer_strings_and_errors():
    assert isinstance(optimizers.get("adam"), optimizers.Adam)
    assert optimizers.get("sgd").learning_rate == 0.01
    assert isinstance(optimizers.get("adamw"), optimizers.AdamW)
    assert isinstance(optimizers.get("Nadam"), optimizers.Nadam)
    with pytest.raises(ValueError, match="`optimizer` must be one of \\['adadelta'"):
        optimizers.get("adamx")
    with pytest.raises(ValueError, match="`learning_rate` must be a finite number > 0"):
        optimizers.SGD(learning_rate=-1)


def test_regularizers_by_hand():
    w = np.array([1.0, -2.0])
    assert regularizers.L2(0.01)(w) == pytest.approx(0.05)
    np.testing.assert_allclose(regularizers.L2(0.01).gradient(w), [0.02, -0.04])
    assert regularizers.l1(0.1)(w) == pytest.approx(0.3)
    np.testing.assert_allclose(regularizers.L1(0.1).gradient(w), [0.1, -0.1])
    both = regularizers.L1L2(l1=0.1, l2=0.01)
    assert both(w) == pytest.approx(0.35)


def test_activations_by_hand():
    x = np.array([-1.0, 0.0, 2.0])
    np.testing.assert_array_equal(activations.step(x), [0, 0, 1])
    np.testing.assert_array_equal(activations.step.backward(np.ones(3), None), 0)
    np.testing.assert_allclose(activations.sigmoid(np.array([0.0, -800.0])), [0.5, 0.0])
    np.testing.assert_allclose(activations.relu(x), [0, 0, 2])
    np.testing.assert_allclose(activations.get("elu")(x), [math.exp(-1) - 1, 0, 2])
    np.testing.assert_allclose(activations.leaky_relu(x), [-0.2, 0, 2])
    np.testing.assert_allclose(activations.softmax(np.array([[0.0, math.log(3)]])),
                               [[0.25, 0.75]])
    np.testing.assert_allclose(activations.get(None)(x), x)


def test_initializers():
    from fastconv.utils import set_random_seed

    set_random_seed(1)
    w = initializers.get("he_normal")((3, 3, 8, 16))
    assert w.dtype == np.float32 and w.shape == (3, 3, 8, 16)
    std = math.sqrt(2 / 72)
    assert np.abs(w).max() <= 2 * std / 0.8796256610342398 + 1e-6
    assert 0.8 * std < w.std() < 1.2 * std
    assert np.all(initializers.get("zeros")((2,)) == 0)
    custom = initializers.get(lambda shape, dtype=None: np.ones(shape))
    assert custom((2,)).sum() == 2
    with pytest.raises(ValueError, match="`initializer` must be one of"):
        initializers.get("he")


@pytest.mark.parametrize("make", [
    lambda: optimizers.SGD(0.1),
    lambda: optimizers.SGD(0.1, momentum=0.9, nesterov=True),
    lambda: optimizers.Adam(0.01),
    lambda: optimizers.RMSprop(0.01),
    lambda: optimizers.RMSprop(0.01, momentum=0.5, centered=True),
])
def test_optimizer_state_round_trip_resumes_bit_exactly(make):
    # get_state after step 1, then set_state on a fresh optimizer and two more steps
    # must give the bits of three uninterrupted steps (what BackupAndRestore relies on).
    rng = np.random.default_rng(0)
    params = [rng.standard_normal((3, 4)).astype(np.float32),
              rng.standard_normal(5).astype(np.float32)]
    steps = [[rng.standard_normal(p.shape).astype(np.float32) for p in params]
             for _ in range(3)]
    opt = make()
    opt.apply(params, steps[0])
    state, snapshot = opt.get_state(), [p.copy() for p in params]
    for g in steps[1:]:
        opt.apply(params, g)
    resumed = make()
    resumed.set_state(state)
    assert resumed.iterations == 1
    again = [p.copy() for p in snapshot]
    for g in steps[1:]:
        resumed.apply(again, g)
    for a, b in zip(params, again):
        np.testing.assert_array_equal(a, b)
    # the saved state is a copy: later steps did not change it
    opt.apply(params, steps[0])
    assert state["iterations"] == 1


def test_optimizer_set_state_rejects_bad_state():
    opt = optimizers.Adam()
    with pytest.raises(ValueError, match="state"):
        opt.set_state({"iterations": 1})
    with pytest.raises(ValueError, match="iterations"):
        opt.set_state({"iterations": -1, "slots": []})
