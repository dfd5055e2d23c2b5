"""Can two model folders be compared token by token? Same tokenizer, same residual-stream shape.

A crosscoder reads several models' residual streams at one layer on the same tokens, and a circuit pair compares
edge matrices over one graph: both need the same tokenizer (vocabulary and special tokens) and the same number of
layers and width. Models trained elsewhere (``models:`` in params) are checked against the base before any
compute; :func:`compare` returns what differs in a few words, or ``""``. :func:`folder_digest` hashes a folder's
files (weights, config, tokenizer) so stage keys follow what a folder holds, not only its path.
"""
from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from pathlib import Path

# imported inside functions, for their import cost (rlgen_utils.run.imports): transformers

SHAPE_KEYS = ("num_hidden_layers", "hidden_size", "n_layer", "n_embd")


def shape(folder: Path) -> dict:
    """The config's depth and width (Llama/Qwen or GPT-2 names), and its vocabulary size."""
    cfg = json.loads((folder / "config.json").read_text())
    cfg = cfg.get("text_config", cfg)
    return {k: cfg[k] for k in (*SHAPE_KEYS, "vocab_size") if k in cfg}


@lru_cache(maxsize=64)
def tokenizer_digest(folder: str) -> str:
    """Hash of the tokenizer's vocabulary and special tokens."""
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    blob = json.dumps({"vocab": sorted(tok.get_vocab().items()), "special": tok.special_tokens_map},
                      sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def compare(base: Path, other: Path) -> str:
    """``""`` when ``other`` fits ``base``; else what differs, e.g. ``"has a different tokenizer"``."""
    a, b = shape(base), shape(other)
    if a != b:
        diff = ", ".join(f"{k} {b.get(k)} vs {a.get(k)}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k))
        return f"has another shape ({diff})"
    if tokenizer_digest(str(base)) != tokenizer_digest(str(other)):
        return "has a different tokenizer (vocabulary or special tokens)"
    return ""


_DIGESTS: dict[tuple, str] = {}


def folder_digest(folder: str | Path) -> str:
    """sha256 over every file of a model folder (names and bytes), cached per process by (name, size, mtime)."""
    folder = Path(folder)
    files = sorted(f for f in folder.rglob("*") if f.is_file() and f.name != "DONE.json")
    stamp = tuple((str(f.relative_to(folder)), f.stat().st_size, f.stat().st_mtime_ns) for f in files)
    key = (str(folder.resolve()), stamp)
    if key not in _DIGESTS:
        h = hashlib.sha256()
        for f in files:
            h.update(str(f.relative_to(folder)).encode())
            with open(f, "rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 24), b""):
                    h.update(chunk)
        _DIGESTS[key] = h.hexdigest()[:16]
    return _DIGESTS[key]
