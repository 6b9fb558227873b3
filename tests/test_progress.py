"""fit's progress lines, in Keras's formats."""

import io
import re

from fastconv._progress import Progbar


def test_verbose_1_off_a_terminal_prints_the_bar_once_at_the_end():
    out = io.StringIO()
    bar = Progbar(3, verbose=1, stream=out)
    for step in (1, 2):
        bar.update(step, {"loss": 0.5})
    assert out.getvalue() == ""
    bar.update(3, {"loss": 0.25, "accuracy": 0.75}, final=True)
    assert re.fullmatch(r"3/3 \[={20}\] - \d+s \d+(us|ms|s)/step - loss: 0\.2500 - "
                        r"accuracy: 0\.7500\n", out.getvalue()), out.getvalue()


def test_verbose_2_prints_one_line_without_a_bar():
    # Keras 3: "3/3 - 1s - 184ms/step - loss: 1.0952 - val_loss: 1.0866"
    out = io.StringIO()
    bar = Progbar(3, verbose=2, stream=out)
    bar.update(3, {"loss": 1.0952, "val_loss": 1.0866}, final=True)
    assert re.fullmatch(r"3/3 - \d+s - \d+(us|ms|s)/step - loss: 1\.0952 - val_loss: "
                        r"1\.0866\n", out.getvalue()), out.getvalue()


def test_verbose_0_prints_nothing():
    out = io.StringIO()
    Progbar(3, verbose=0, stream=out).update(3, {"loss": 1.0}, final=True)
    assert out.getvalue() == ""
