"""What each late-imported library costs, and what keeping it late saves the light entry points.

    .venv/bin/python benchmarks/import_cost.py [--repeats 5] [--write docs/import_cost.md]

For every library of :data:`rlgen_utils.run.imports.LAZY`, the wall time of importing it alone in a fresh
interpreter (median of ``--repeats``), and for each light entry point (params validation and the planner, the world,
the model loaders, the runner) its own import time beside the same import followed by ``torch`` — the ratio is what
an entry point would pay if ``torch`` were imported at the top of the modules it reads. Fresh processes each time,
so nothing is cached in ``sys.modules``; the file system cache is warm (one untimed import first).
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

from common import ROOT, write_result  # also puts the repo on sys.path

from rlgen_utils.run.imports import LAZY

ENTRY_POINTS = {
    "rlgen_utils.run.config": "params validation",
    "rlgen_utils.run.plan": "the planner (`--plan`)",
    "rlgen_utils.world.suite": "the world: task families and prompts",
    "rlgen_utils.models.loading": "the model loaders, before a model is loaded",
    "rlgen_utils.run.runner": "the runner, before it executes a notebook",
}
# what importing a library by its top-level name leaves undone (a lazy package); import what rlgen uses
WHAT_RLGEN_IMPORTS = {"plotly": "plotly.graph_objects", "safetensors": "safetensors.torch", "tqdm": "tqdm.auto",
                      "transformers": "transformers.AutoModelForCausalLM", "trl": "trl.GRPOTrainer"}


def once(code: str) -> float:
    """Seconds of ``python -c code`` in a fresh interpreter."""
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, capture_output=True)
    return time.perf_counter() - t


def timed(code: str, repeats: int, empty: float) -> float:
    """Median seconds of ``python -c code`` over ``repeats`` fresh interpreters, less ``empty`` (an empty one's)."""
    once(code)   # warm the file-system cache
    return max(statistics.median(once(code) for _ in range(repeats)) - empty, 0.0)


def statement(lib: str) -> str:
    full = WHAT_RLGEN_IMPORTS.get(lib, lib)
    if "." in full and full.split(".")[-1][:1].isupper():   # a class: from module import Name
        mod, name = full.rsplit(".", 1)
        return f"from {mod} import {name}"
    return f"import {full}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--write", default=None)
    a = ap.parse_args()
    empty = statistics.median(once("pass") for _ in range(a.repeats))
    libs = {lib: round(timed(statement(lib), a.repeats, empty), 3) for lib in LAZY}
    entries = {m: {"alone": round(timed(f"import {m}", a.repeats, empty), 3),
                   "with torch": round(timed(f"import {m}; import torch", a.repeats, empty), 3)} for m in ENTRY_POINTS}
    result = {"repeats": a.repeats, "python": sys.version.split()[0], "libraries_s": libs, "entry_points_s": entries}
    write_result("imports", "cost", result)
    if a.write:
        lines = ["# Import costs", "",
                 "Written by `benchmarks/import_cost.py` (fresh interpreter per import, median of "
                 f"{a.repeats}, an empty interpreter's start subtracted; this machine). `rlgen_utils/run/imports.py` "
                 "names the libraries rlgen imports inside functions and why; everything else is imported at the top.",
                 "", "| library (as rlgen imports it) | seconds | why late |", "|---|---|---|"]
        lines += [f"| `{lib}` (`{statement(lib)}`) | {s:.2f} | {LAZY[lib]} |" for lib, s in libs.items()]
        lines += ["", "Light entry points, as imported now and if `torch` came with them:", "",
                  "| entry point | what it serves | seconds | with torch | ratio |", "|---|---|---|---|---|"]
        lines += [f"| `{m}` | {ENTRY_POINTS[m]} | {e['alone']:.2f} | {e['with torch']:.2f} | "
                  f"{e['with torch'] / max(e['alone'], 1e-3):.1f}× |" for m, e in entries.items()]
        Path(a.write).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
