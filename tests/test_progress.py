"""The one progress display of training, the explain job, the grid and the study, off a terminal and on one."""

import io
import re
import sys

from lrpjax.jobs.progress import LogStream, Progress, stream_for, to_stderr, track

LINE = re.compile(r"^grid (\d)/3 models  \d+\.\d models/s  ETA (\d\d:\d\d:\d\d|--:--:--)  (\w)$")


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_off_a_terminal_each_line_is_whole_with_count_rate_eta_and_note():
    lines = []
    assert list(track("abc", 3, log=lines.append, label="grid", unit="models", every=0)) == ["a", "b", "c"]
    assert [LINE.match(line).group(1, 3) for line in lines] == [("1", "a"), ("2", "b"), ("3", "c")]
    assert LINE.match(lines[-1]).group(2) == "00:00:00" and not any("\r" in line for line in lines)
    quiet = []
    list(track(range(5), 5, log=quiet.append, label="study", unit="models"))
    assert len(quiet) == 1 and quiet[0].startswith("study 5/5 models")  # every 30 s and at the end only


def test_a_resumed_job_shows_earlier_work_and_a_terminal_is_redrawn_in_place():
    stream = io.StringIO()
    progress = Progress(10, stream=stream, every=0, label="train", unit="steps", done=6)
    progress.update(1, "loss 0.5")
    assert stream.getvalue().startswith("train 7/10 steps") and stream.getvalue().endswith("loss 0.5\n")
    terminal = Terminal()
    progress = Progress(2, stream=terminal, label="explain")
    progress.update(2)
    progress.close()
    assert terminal.getvalue().startswith("\rexplain 2/2 images") and terminal.getvalue().endswith("\n")
    assert stream_for(to_stderr) is sys.stderr and isinstance(stream_for(print), LogStream)


def test_items_found_finished_are_counted_but_kept_out_of_the_rate_and_eta(monkeypatch):
    clock = iter([0.0, 0.0, 10.0, 10.0, 30.0, 30.0])  # start; after a, c, e (skipped), b (10 s) and d (20 s)
    monkeypatch.setattr("lrpjax.jobs.progress.time.monotonic", lambda: next(clock))
    lines = []
    items = track("abcde", 5, log=lines.append, label="grid", unit="models", every=0,
                  finished=lambda item: item in "ace")
    assert list(items) == list("abcde")
    assert lines == ["grid 1/5 models  0.0 models/s  ETA --:--:--  a",
                     "grid 2/5 models  0.1 models/s  ETA 00:00:30  b",  # 3 left at b's 10 s each
                     "grid 3/5 models  0.1 models/s  ETA 00:00:20  c",
                     "grid 4/5 models  0.1 models/s  ETA 00:00:15  d",  # 2 models in 30 s, 1 left
                     "grid 5/5 models  0.1 models/s  ETA 00:00:00  e"]
