"""One progress display for the long jobs (training, the explain job, the grid, the study): count, rate and ETA.

On a terminal the line is redrawn in place a few times a second; elsewhere (a log file, a pipe, CI) it is
quiet: no carriage returns, one line every ``every`` seconds and one at the end. A job that reports through a
``log(line)`` function shows it through :func:`stream_for`: stderr (redrawn on a terminal) for
:func:`to_stderr`, the default log of every job, else the log itself, one line at a time.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TextIO, TypeVar

import numpy as np


class Progress:
    """``label done/total unit, rate, ETA[, note]`` on ``stream``: redrawn in place on a TTY, otherwise one line
    every ``every`` seconds (and at the end). ``done`` counts work finished before this run (a resumed job): it
    is shown but not counted in the rate."""

    def __init__(self, total: int, *, stream: TextIO, every: float = 30.0, label: str = "explain",
                 unit: str = "images", done: int = 0):
        self.total, self.count, self.done, self.stream, self.label, self.unit = total, 0, done, stream, label, unit
        self.tty = bool(getattr(stream, "isatty", lambda: False)())
        self.every = 0.2 if self.tty else every
        self.start = self._last = time.monotonic()
        self.note = ""

    def update(self, count: int, note: str | None = None, *, skipped: bool = False) -> None:
        """Add ``count`` finished units (and replace the note shown after the ETA, e.g. the loss); ``skipped``:
        units found already done (a resumed grid's finished models), shown like ``done``, not in the rate."""
        if skipped:
            self.done += count
        else:
            self.count += count
        self.note = self.note if note is None else note
        now = time.monotonic()
        if now - self._last >= self.every or self.done + self.count >= self.total:
            self._last = now
            self.stream.write(("\r" if self.tty else "") + self.line(now) + ("" if self.tty else "\n"))
            self.stream.flush()

    def line(self, now: float | None = None) -> str:
        elapsed = max((time.monotonic() if now is None else now) - self.start, 1e-9)
        rate, left = self.count / elapsed, self.total - self.done - self.count
        eta = 0.0 if left <= 0 else left / rate if rate > 0 else float("nan")
        eta_text = time.strftime("%H:%M:%S", time.gmtime(eta)) if np.isfinite(eta) else "--:--:--"
        note = f"  {self.note}" if self.note else ""
        return (f"{self.label} {self.done + self.count}/{self.total} {self.unit}  {rate:.1f} {self.unit}/s  "
                f"ETA {eta_text}{note}")

    def close(self) -> None:
        if self.tty and self.count:
            self.stream.write("\n")


Item = TypeVar("Item")


def to_stderr(line: str) -> None:
    """The jobs' default log: one line on stderr."""
    print(line, file=sys.stderr, flush=True)


def stream_for(log: Callable[[str], None]) -> TextIO | LogStream:
    """Where a job whose log is ``log`` shows its progress: stderr for :func:`to_stderr`, else ``log``."""
    return sys.stderr if log is to_stderr else LogStream(log)


def track(items: Iterable[Item], total: int, *, log: Callable[[str], None], label: str, unit: str,
          note: Callable[[Item], str] = str, every: float = 30.0,
          finished: Callable[[Item], bool] | None = None) -> Iterator[Item]:
    """``items`` one by one, with a :class:`Progress` line after each (its note names the item just done).
    ``finished(item)``, asked before the item is handed out: true for an item already done (a resumed job
    skips it), which is counted but kept out of the rate and the ETA."""
    progress = Progress(total, stream=stream_for(log), label=label, unit=unit, every=every)
    for item in items:
        skipped = finished is not None and finished(item)
        yield item
        progress.update(1, note(item), skipped=skipped)
    progress.close()


class LogStream:
    """A ``log(line)`` function as a stream (never a TTY): the progress of a job whose caller collects lines."""

    def __init__(self, log: Callable[[str], None]):
        self.log = log

    def write(self, text: str) -> None:
        if text.strip():
            self.log(text.strip())

    def flush(self) -> None:
        pass
