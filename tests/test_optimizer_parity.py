"""fastconv's optimizers against Keras 3's, step by step, on the committed fixture
tests/data/keras3_optimizers.npz (made by tools/keras_optimizers_fixture.py; Keras is
not needed here): every optimizer, the common arguments (weight decay, the three
clippings, EMA) and a schedule."""

import json
from pathlib import Path

import numpy as np
import pytest

from fastconv import optimizers, schedules

FIXTURE = Path(__file__).parent / "data" / "keras3_optimizers.npz"
with np.load(FIXTURE) as _npz:
    DATA = {k: _npz[k] for k in _npz.files}
CASES = json.loads(str(DATA["cases"]))
SCHEDULE = CASES.pop()

# float32 rounding: Keras (JAX, float32) and fastconv order some operations differently
# (fastconv works out Adam's step size in float64, Nadam's momentum products too), so
# steps may differ in the last places of the weights. Seen over the five steps, relative
# to the largest weight: Adam and its variants 5 eps, Nadam 1, the others 0-0.3.
BOUND = 8 * np.finfo(np.float32).eps


def _make(cls, config):
    cfg = dict(config)
    if cfg.get("learning_rate") == "SCHEDULE":
        cfg["learning_rate"] = schedules.deserialize(SCHEDULE)
    return getattr(optimizers, cls)(**cfg)


@pytest.mark.parametrize("name,cls,config", CASES, ids=[c[0] for c in CASES])
def test_steps_match_keras(name, cls, config):
    opt = _make(cls, config)
    params = [DATA["w0"].copy(), DATA["w1"].copy()]
    for k in range(5):
        assert opt.learning_rate == pytest.approx(float(DATA[f"{name}/lr"][k]), rel=1e-6)
        opt.apply(params, [DATA[f"g{k}_0"], DATA[f"g{k}_1"]])
        for i, p in enumerate(params):
            want = DATA[f"{name}/step{k}_{i}"]
            assert p.dtype == np.float32
            err = np.abs(p - want).max() / np.abs(want).max()
            assert err <= BOUND, (k, i, err)
    if config.get("use_ema"):
        opt.finalize_variable_values(params)
        for i, p in enumerate(params):
            want = DATA[f"{name}/final_{i}"]
            assert np.abs(p - want).max() / np.abs(want).max() <= BOUND


@pytest.mark.parametrize("name,cls,config", CASES, ids=[c[0] for c in CASES])
def test_config_round_trip_and_state_resume(name, cls, config):
    opt = _make(cls, config)
    again = optimizers.get(optimizers.serialize(opt))
    assert type(again) is type(opt) and again.get_config() == opt.get_config()
    # two steps, save the state, three more; a fresh optimizer resumed from the saved
    # state takes the same three steps to the same bits
    params = [DATA["w0"].copy(), DATA["w1"].copy()]
    steps = [[DATA[f"g{k}_0"], DATA[f"g{k}_1"]] for k in range(5)]
    for g in steps[:2]:
        opt.apply(params, g)
    state, snapshot = opt.get_state(), [p.copy() for p in params]
    for g in steps[2:]:
        opt.apply(params, g)
    resumed = _make(cls, config)
    resumed.set_state(state)
    for g in steps[2:]:
        resumed.apply(snapshot, g)
    for a, b in zip(params, snapshot):
        np.testing.assert_array_equal(a, b)


def test_schedules_by_hand():
    e = schedules.ExponentialDecay(0.1, decay_steps=10, decay_rate=0.5)
    assert e(0) == 0.1 and e(10) == pytest.approx(0.05) and e(5) == pytest.approx(0.1 * 0.5**0.5)
    assert schedules.ExponentialDecay(0.1, 10, 0.5, staircase=True)(19) == pytest.approx(0.05)
    pw = schedules.PiecewiseConstantDecay([10, 20], [1.0, 0.5, 0.1])
    assert [pw(s) for s in (0, 10, 11, 20, 21)] == [1.0, 1.0, 0.5, 0.5, 0.1]
    poly = schedules.PolynomialDecay(1.0, decay_steps=10, end_learning_rate=0.0, power=2)
    assert poly(5) == pytest.approx(0.25) and poly(30) == 0.0
    cyc = schedules.PolynomialDecay(1.0, 10, end_learning_rate=0.0, cycle=True)
    assert cyc(15) == pytest.approx(0.25)   # decay_steps grows to 20: 1 - 15/20
    inv = schedules.InverseTimeDecay(1.0, decay_steps=2, decay_rate=0.5)
    assert inv(4) == pytest.approx(0.5)
    cos = schedules.CosineDecay(1.0, decay_steps=10, alpha=0.1)
    assert cos(0) == 1.0 and cos(5) == pytest.approx(0.55) and cos(99) == pytest.approx(0.1)
    warm = schedules.CosineDecay(0.0, decay_steps=10, warmup_target=1.0, warmup_steps=4)
    assert warm(2) == pytest.approx(0.5) and warm(4) == 1.0 and warm(9) == pytest.approx(0.5)
    sgdr = schedules.CosineDecayRestarts(1.0, first_decay_steps=10, t_mul=2.0, m_mul=0.5)
    # the first period is 10 steps, the second 20 at half the height
    assert sgdr(5) == pytest.approx(0.5) and sgdr(10) == pytest.approx(0.5)
    assert sgdr(20) == pytest.approx(0.25)
    for s in (e, pw, poly, inv, cos, warm, sgdr):
        again = schedules.deserialize(schedules.serialize(s))
        assert again.get_config() == s.get_config() and again(7) == s(7)


def test_learning_rate_from_a_schedule_is_read_per_step_and_not_settable():
    opt = optimizers.SGD(schedules.PiecewiseConstantDecay([1], [0.5, 0.1]))
    p = [np.zeros(2)]
    seen = []
    for _ in range(3):
        seen.append(opt.learning_rate)
        opt.apply(p, [np.ones(2)])
    assert seen == [0.5, 0.5, 0.1] and p[0].tolist() == [-1.1, -1.1]
    with pytest.raises(TypeError, match="not settable"):
        opt.learning_rate = 0.3
    plain = optimizers.Adam()
    plain.learning_rate = 0.3
    assert plain.learning_rate == 0.3


def test_bad_optimizer_and_schedule_arguments():
    with pytest.raises(ValueError, match="Only one of `clipnorm`, `clipvalue`"):
        optimizers.SGD(clipnorm=1.0, clipvalue=1.0)
    with pytest.raises(ValueError, match="`beta_1` must be a number in \\[0, 1\\)"):
        optimizers.Nadam(beta_1=1.0)
    with pytest.raises(ValueError, match="weight_decay"):
        optimizers.AdamW(weight_decay=None)
    with pytest.raises(ValueError, match="ema_momentum"):
        optimizers.Adam(use_ema=True, ema_momentum=2.0)
    with pytest.raises(TypeError, match="unexpected keyword"):
        optimizers.Lion(momentum=0.9)
    with pytest.raises(NotImplementedError, match="gradient_accumulation_steps"):
        optimizers.Adam(gradient_accumulation_steps=2)
    with pytest.raises(ValueError, match="decay_steps"):
        schedules.ExponentialDecay(0.1, 0, 0.5)
    with pytest.raises(ValueError, match="1 less than the length of values"):
        schedules.PiecewiseConstantDecay([1, 2], [0.1])
    with pytest.raises(ValueError, match="step"):
        schedules.CosineDecay(0.1, 10)(-1)
