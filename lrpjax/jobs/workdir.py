"""Work directories of the long jobs (``lrpjax explain``, ``lrpjax train``): checked up front, held alone.

- :func:`check_writable` makes the folder (and the subfolders a run will write) and writes a probe file in
  each before any work is done, so an unwritable destination fails at once with one line naming the path
  instead of a traceback after the work.
- :func:`exclusive` takes an exclusive lock (``fcntl.flock`` on ``DIR/.lock<suffix>``) before any other file
  in the folder is touched: a second run on the same folder stops with :class:`WorkdirBusy` naming it, instead
  of truncating the first run's files. The lock goes with the process (a killed run leaves no stale lock).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import uuid
from collections.abc import Iterator, Sequence


class WorkdirBusy(RuntimeError):
    """Another process holds the work directory's lock."""


_HELD: set[str] = set()
"""Lock files this process holds: a lock belongs to the process, so taking it again (the command line, then
the library function it calls) is a no-op rather than a conflict with itself."""


def check_writable(path: str | os.PathLike[str], *, what: str, subfolders: Sequence[str] = ()) -> str:
    """Create ``path`` (and ``path/<sub>`` for each of ``subfolders``) and prove each writable; the absolute path.

    Raises:
      ValueError: one line naming ``what``, the path and why it cannot be written (a file in the way, no
        permission, a read-only file system).
    """
    root = os.path.abspath(os.fspath(path))
    for folder in (root, *(os.path.join(root, sub) for sub in subfolders)):
        probe = os.path.join(folder, f".lrpjax-probe-{uuid.uuid4().hex}")
        try:
            os.makedirs(folder, exist_ok=True)
            with open(probe, "wb"):
                pass
            os.remove(probe)
        except OSError as error:
            reason = error.strerror or type(error).__name__
            raise ValueError(f"{what} {folder!r} is not a writable folder ({reason})") from None
    return root


@contextlib.contextmanager
def exclusive(path: str | os.PathLike[str], *, command: str, suffix: str = "") -> Iterator[str]:
    """Hold ``path``'s exclusive lock for the ``with`` block (``path`` is created if needed).

    Raises:
      WorkdirBusy: another process holds it; the message names the folder and that process.
    """
    root = os.path.abspath(os.fspath(path))
    os.makedirs(root, exist_ok=True)
    lock = os.path.join(root, f".lock{suffix}")
    if lock in _HELD:
        yield root
        return
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "?"
        os.close(fd)
        raise WorkdirBusy(f"{root!r} is in use by another lrpjax {command} (pid {holder}); wait for it to "
                          "finish or choose another folder") from None
    _HELD.add(lock)
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield root
    finally:
        _HELD.discard(lock)
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
