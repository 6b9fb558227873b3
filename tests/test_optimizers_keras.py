"""fastconv's optimizers and schedules against Keras 3's, from a committed fixture.

tests/data/keras_optimizers.json was written by tools/keras_optimizers_json.py under
Keras 3: several steps of each optimizer (and of the base options: weight decay, the
three clippings, EMA, a schedule) on fixed float32 weights and gradients, and each
schedule's values over 40 steps. Keras is not needed here.
"""

import json
import os

import numpy as np
import pytest

from fastconv import _elementwise, optimizers, schedules

with open(os.path.join(os.path.dirname(__file__), "data", "keras_optimizers.json")) as f:
    FIXTURE = json.load(f)

# float32 rounding: a few ulps of values of order 1 after five steps
F32 = {"rtol": 2e-6, "atol": 2e-6}


def _case_id(case):
    options = ",".join(k for k in case["config"] if k != "learning_rate")
    lr = case["config"]["learning_rate"]
    return case["class_name"] + (f"[{options}]" if options else "") + (
        f"[{lr['class_name']}]" if isinstance(lr, dict) else "")


@pytest.mark.parametrize("compiled", [_elementwise, None], ids=["compiled", "numpy"])
@pytest.mark.parametrize("case", FIXTURE["optimizers"], ids=_case_id)
def test_optimizer_steps_match_keras(case, compiled, monkeypatch):
    monkeypatch.setattr(optimizers, "_compiled", compiled)
    opt = optimizers.deserialize({"class_name": case["class_name"],
                                  "config": case["config"]})
    params = [np.array(w, np.float32) for w in FIXTURE["weights"]]
    for step, (g, expected) in enumerate(zip(FIXTURE["grads"], case["steps"])):
        opt.apply(params, [np.array(a, np.float32) for a in g])
        for p, e in zip(params, expected):
            assert p.dtype == np.float32
            np.testing.assert_allclose(p, np.array(e, np.float32), **F32,
                                       err_msg=f"step {step + 1}")
    opt.finalize_variable_values(params)
    for p, e in zip(params, case["final"]):
        np.testing.assert_allclose(p, np.array(e, np.float32), **F32)


@pytest.mark.parametrize("case", FIXTURE["schedules"], ids=lambda c: c["class_name"])
def test_schedule_values_match_keras(case):
    sched = schedules.deserialize({"class_name": case["class_name"], "config": case["config"]})
    got = [sched(step) for step in range(len(case["values"]))]
    np.testing.assert_allclose(got, case["values"], rtol=2e-6, atol=1e-9)
