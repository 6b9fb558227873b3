"""Keras-style progress output for ``fit`` and ``evaluate``.

On a terminal, ``verbose=1`` redraws one bar per epoch in place (at most about 20
times a second, so printing never costs the training loop much). When stdout is not
a terminal (a log file, CI, a captured notebook cell) a bar would print one line per
redraw, so the epoch's summary line is printed once, at its end, instead.
``verbose=2`` prints that line without the bar, as Keras does:
``3/3 - 1s - 184ms/step - loss: 1.0952``.
"""

from __future__ import annotations

import sys
import time
from typing import Dict, Optional


def _fmt_time(seconds: float) -> str:
    if seconds >= 3600:
        return f"{int(seconds // 3600)}h{int(seconds % 3600 // 60):02d}m"
    if seconds >= 60:
        return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"
    return f"{seconds:.0f}s"


def _fmt_step(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:.0f}s/step"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.0f}ms/step"
    return f"{seconds * 1e6:.0f}us/step"


def _fmt_logs(logs: Dict[str, float]) -> str:
    return "".join(f" - {k}: {v:.4f}" for k, v in logs.items())


class Progbar:
    """Progress of ``target`` steps (None: not known, as for a generator's first epoch);
    ``verbose`` as in ``fit`` (1 bar, 2 line, 0 none)."""

    def __init__(self, target: Optional[int], verbose: int = 1, stream=None, width: int = 20,
                 interval: float = 0.05):
        self.target, self.verbose, self.width, self.interval = target, verbose, width, interval
        self.stream = stream if stream is not None else sys.stdout
        isatty = getattr(self.stream, "isatty", None)
        self.dynamic = verbose == 1 and bool(isatty and isatty())
        self.start = time.perf_counter()
        self._last_draw = 0.0
        self._drawn = False

    def _line(self, step: int, logs: Dict[str, float], final: bool) -> str:
        elapsed = time.perf_counter() - self.start
        if self.target is None:  # a generator's epoch: its length is not known yet
            per = elapsed / max(step, 1)
            timing = f"{_fmt_time(elapsed)} {_fmt_step(per)}"
            return f"{step}/Unknown - {timing}{_fmt_logs(logs)}"
        n = len(str(self.target))
        if self.verbose == 2:  # Keras's one line per epoch, without a bar
            per = elapsed / max(step, 1)
            return (f"{step:{n}d}/{self.target} - {_fmt_time(elapsed)} - {_fmt_step(per)}"
                    f"{_fmt_logs(logs)}")
        done = int(self.width * step / max(self.target, 1))
        bar = "=" * max(done - 1, 0) + (">" if step < self.target else "=") * (done > 0)
        bar = bar + "." * (self.width - len(bar))
        per = elapsed / max(step, 1)
        if final:
            timing = f"{_fmt_time(elapsed)} {_fmt_step(per)}"
        else:
            timing = f"ETA: {_fmt_time(per * (self.target - step))}"
        return f"{step:{n}d}/{self.target} [{bar}] - {timing}{_fmt_logs(logs)}"

    def update(self, step: int, logs: Optional[Dict[str, float]] = None,
               final: bool = False) -> None:
        """Report that ``step`` of ``target`` steps are done, with running ``logs``."""
        logs = logs or {}
        if self.verbose == 0:
            return
        if self.dynamic:
            now = time.perf_counter()
            if final or now - self._last_draw >= self.interval:
                self._last_draw = now
                self.stream.write("\r" + self._line(step, logs, final) + "\x1b[K")
                if final:
                    self.stream.write("\n")
                self.stream.flush()
        elif final:
            self.stream.write(self._line(step, logs, True) + "\n")
            self.stream.flush()
