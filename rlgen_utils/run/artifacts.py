"""The run folder: atomic writes, completion markers and config keys.

Every stage writes into a temporary sibling and renames it into place, then writes ``<dir>/DONE.json`` holding
the key (hash of the params sections that made it) and its provenance (hash of the whole params file and the git
commit of the code, :func:`provenance`). A stage is *finished* when its marker exists with the expected key;
anything without a marker is unfinished work and is recomputed or resumed, never read as complete.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.parquet as pq

if TYPE_CHECKING:
    import pandas as pd



MARKER = "DONE.json"
_PROVENANCE: dict = {}


def git_commit(root: str | Path | None = None) -> str:
    """HEAD's commit, with ``+dirty`` when tracked files differ from it (``unknown`` outside git)."""
    root = root or Path(__file__).resolve().parent.parent
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                             check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True).stdout.strip()
        return sha + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def set_provenance(params_hash: str, commit: str | None = None) -> None:
    """What every artifact written from now on records: the full params' hash and the code's commit."""
    _PROVENANCE.clear()
    _PROVENANCE.update(params_hash=params_hash, commit=commit or git_commit())


def provenance() -> dict:
    """The params hash and commit set by :func:`set_provenance` (``pipeline.init``), and the time of writing."""
    return {**_PROVENANCE, "written": datetime.now(UTC).isoformat(timespec="seconds")}


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


@contextmanager
def atomic_file(path: str | Path):
    """Yield a temp file path beside ``path`` for a writer to fill; on success rename it onto ``path`` (the one
    atomic writer of files: text, JSON, Parquet and safetensors all go through it)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    os.replace(tmp, path)


def atomic_write_text(path: str | Path, text: str) -> None:
    with atomic_file(path) as tmp:
        with open(tmp, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())


def write_json(path: str | Path, obj: object) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True))


def read_json(path: str | Path):
    return json.loads(Path(path).read_text())


def is_done(path: str | Path, key: str) -> bool:
    marker = Path(path) / MARKER
    return marker.is_file() and read_json(marker).get("key") == key


def mark_done(path: str | Path, key: str, **info) -> None:
    write_json(Path(path) / MARKER, {"key": key, **info, "provenance": provenance()})


# ------------------------------------------------------------------------------------------------ tables
def write_parquet(df: pd.DataFrame, path: str | Path, key: str) -> None:
    """Write a table atomically with its key and provenance in the Parquet schema metadata."""

    table = pa.Table.from_pandas(df, preserve_index=False)
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), b"rlgen_key": key.encode(),
                                           b"rlgen_provenance": json.dumps(provenance()).encode()})
    with atomic_file(path) as tmp:
        pq.write_table(table, tmp)


def read_parquet(path: str | Path, key: str) -> pd.DataFrame | None:
    """The table at ``path`` if it was written with ``key``; None when missing or stale. A truncated or foreign
    file is a ValueError naming it (never read as a result)."""

    path = Path(path)
    if not path.is_file():
        return None
    try:
        meta = pq.read_schema(path).metadata or {}
    except Exception as e:
        raise ValueError(f"{path}: unreadable score file ({e.__class__.__name__}); delete it to recompute") from None
    return pq.read_table(path).to_pandas() if meta.get(b"rlgen_key") == key.encode() else None


def write_between_markers(path: str | Path, text: str, tag: str = "results") -> None:
    """Replace what lies between ``<!-- tag:begin -->`` and ``<!-- tag:end -->`` in ``path`` (a generated block of
    the README or a page under docs/) with ``text``; everything else stays."""
    path = Path(path)
    begin, end = f"<!-- {tag}:begin -->", f"<!-- {tag}:end -->"
    doc = path.read_text()
    if begin not in doc or end not in doc:
        raise SystemExit(f"{path}: no {begin} … {end} markers")
    head, rest = doc.split(begin, 1)
    path.write_text(head + begin + "\n" + text + "\n" + end + rest.split(end, 1)[1])
