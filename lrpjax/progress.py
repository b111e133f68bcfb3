"""One progress display for the long jobs (training, the explain job): count, rate and ETA.

On a terminal the line is redrawn in place a few times a second; elsewhere (a log file, a pipe, CI) it is
quiet: one line every ``every`` seconds and one at the end.
"""

from __future__ import annotations

import time
from typing import TextIO

import numpy as np


class Progress:
    """``done/total images, images/s, ETA`` on ``stream``: redrawn in place on a TTY, otherwise one line
    every ``every`` seconds (and at the end)."""

    def __init__(self, total: int, *, stream: TextIO, every: float = 30.0, label: str = "explain",
                 unit: str = "images"):
        self.total, self.count, self.stream, self.label, self.unit = total, 0, stream, label, unit
        self.tty = bool(getattr(stream, "isatty", lambda: False)())
        self.every = 0.2 if self.tty else every
        self.start = self._last = time.monotonic()

    def update(self, count: int) -> None:
        self.count += count
        now = time.monotonic()
        if now - self._last >= self.every or self.count >= self.total:
            self._last = now
            self.stream.write(("\r" if self.tty else "") + self.line(now) + ("" if self.tty else "\n"))
            self.stream.flush()

    def line(self, now: float | None = None) -> str:
        elapsed = max((now or time.monotonic()) - self.start, 1e-9)
        rate = self.count / elapsed
        eta = (self.total - self.count) / rate if rate > 0 else float("nan")
        eta_text = time.strftime("%H:%M:%S", time.gmtime(eta)) if np.isfinite(eta) else "--:--:--"
        return f"{self.label} {self.count}/{self.total} {self.unit}  {rate:.1f} {self.unit}/s  ETA {eta_text}"

    def close(self) -> None:
        if self.tty and self.count:
            self.stream.write("\n")
