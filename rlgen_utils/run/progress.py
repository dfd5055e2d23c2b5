"""Progress a person can see, in JupyterLab and on the command line.

Every long loop in rlgen goes through :func:`progress`. In a notebook opened by a person it is ``tqdm.auto`` (a
widget). When the runner executes the notebooks headless it sets ``RLGEN_PROGRESS=lines``: each loop then prints
plain lines — ``[progress] evaluate: 12/31 (39%) 0:41 elapsed, ~1:04 left`` — at most every
``RLGEN_PROGRESS_EVERY`` seconds (default 10) and when it ends. The kernel's output reaches the runner's
terminal, so ``make reproduce`` shows how far each stage is.
"""
from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")


def _clock(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def line(desc: str, done: int, total: int | None, elapsed: float) -> str:
    """One progress line (the format the runner prints)."""
    if not total:
        return f"[progress] {desc}: {done} done, {_clock(elapsed)} elapsed"
    left = elapsed / done * (total - done) if done else float("nan")
    eta = f", ~{_clock(left)} left" if done and done < total else ""
    return f"[progress] {desc}: {done}/{total} ({100 * done / total:.0f}%) {_clock(elapsed)} elapsed{eta}"


def _lines(iterable: Iterable[T], desc: str, total: int | None, every: float, initial: int) -> Iterator[T]:
    t0 = last = time.monotonic()
    done = shown = initial
    print(line(desc, done, total, 0.0), file=sys.stderr, flush=True)
    for item in iterable:
        yield item
        done += 1
        now = time.monotonic()
        if now - last >= every or done == total:
            print(line(desc, done, total, now - t0), file=sys.stderr, flush=True)
            last, shown = now, done
    if shown != done:  # a loop of unknown length, or one that stopped early, still says where it ended
        print(line(desc, done, total, time.monotonic() - t0), file=sys.stderr, flush=True)


def progress(iterable: Iterable[T], desc: str, total: int | None = None, initial: int = 0,
             disable: bool = False) -> Iterable[T]:
    """``iterable`` with progress shown: tqdm.auto interactively, plain lines under the runner, nothing when
    ``disable``. ``initial`` counts work already done (a resumed loop)."""
    if total is None:
        try:
            total = len(iterable)  # type: ignore[arg-type]
        except TypeError:
            total = None
    if disable:
        return iterable
    if os.environ.get("RLGEN_PROGRESS") == "lines":
        return _lines(iterable, desc, total, float(os.environ.get("RLGEN_PROGRESS_EVERY", "10")), initial)
    return tqdm(iterable, desc=desc, total=total, initial=initial)
