"""One runner at a time per run folder: an OS file lock that a killed process cannot leave behind.

Two ``python -m rlgen_utils.run`` on the same params would otherwise both compute every stage (each finds the
other's work unfinished) and, on 2 cores, take far longer than twice as long. The runner holds an exclusive
``flock`` on ``<run folder>/.lock`` while it runs; a second runner says once which process holds the folder and
waits for it (then finds the finished stages and skips them), or with ``--no-wait`` refuses in one line. The
operating system drops the lock when its holder exits in any way, ``kill -9`` included, so a stale lock never
blocks the next run; the file's text (pid, host, start time) is only what the message reports.
"""
from __future__ import annotations

import fcntl
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

LOCK_NAME = ".lock"


class RunLocked(RuntimeError):
    """Another live process holds the run folder (``str(err)`` is one line naming it)."""


def holder(folder: Path) -> str:
    """Who holds (or last held) the folder's lock, as its file says."""
    try:
        return (folder / LOCK_NAME).read_text().strip() or "unknown"
    except OSError:
        return "unknown"


@contextmanager
def run_lock(folder: Path, wait: bool = True, say=print) -> Iterator[None]:
    """Hold the run folder's lock for the duration; wait for another holder (``say`` tells once) or raise
    :class:`RunLocked` when ``wait`` is false."""
    folder.mkdir(parents=True, exist_ok=True)
    fh = open(folder / LOCK_NAME, "a+")   # not inherited by child processes (PEP 446)
    try:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            who = holder(folder)
            if not wait:
                raise RunLocked(f"{folder}: another run holds this run folder ({who}); wait for it or stop it "
                                f"(a killed run never leaves the lock behind)") from None
            say(f"[rlgen] {folder.name}: another run holds this run folder ({who}); waiting for it to finish")
            fcntl.flock(fh, fcntl.LOCK_EX)
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
        fh.flush()
        yield
    finally:
        fh.close()   # closing the file releases the lock
