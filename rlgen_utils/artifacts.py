"""The run folder: atomic writes, completion markers and config keys.

Every stage writes into a temporary sibling and renames it into place, then writes ``<dir>/DONE.json`` holding
the key (hash of the params that made it). A stage is *finished* when its marker exists with the expected key;
anything without a marker is unfinished work and is recomputed or resumed, never read as complete.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

MARKER = "DONE.json"


@contextmanager
def atomic_dir(path: str | Path):
    """Yield a temp folder beside ``path``; on success replace ``path`` with it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if path.exists():
        shutil.rmtree(path)
    os.replace(tmp, path)


def atomic_write_text(path: str | Path, text: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_json(path: str | Path, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True))


def read_json(path: str | Path):
    return json.loads(Path(path).read_text())


def is_done(path: str | Path, key: str) -> bool:
    marker = Path(path) / MARKER
    return marker.is_file() and read_json(marker).get("key") == key


def mark_done(path: str | Path, key: str, **info) -> None:
    write_json(Path(path) / MARKER, {"key": key, **info})
