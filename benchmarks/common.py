"""Shared by the benchmark scripts: where results go and how they are written."""
from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def write_result(kind: str, name: str, result: dict) -> Path:
    """Print ``result`` and save it as ``benchmarks/results/<kind>-<name>.json``."""
    out = ROOT / "benchmarks" / "results" / f"{kind}-{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return out


def code_commit() -> str:
    """The short HEAD commit, with a caveat when the code (package, benchmarks, notebooks) has uncommitted changes."""
    import subprocess
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "rlgen_utils", "benchmarks",
                            "notebooks"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    return commit + (" with uncommitted changes to the code" if dirty else "")


def chosen_doses(ap, doses: list[float] | None, P) -> list[float]:
    """``--doses`` (default every dose of ``known_causes.doses``); a dose outside them is a usage error."""
    doses = doses or P.known_causes.doses
    if not set(doses) <= set(P.known_causes.doses):
        ap.error(f"--doses: {doses} are not all in known_causes.doses {P.known_causes.doses}")
    return doses


def write_pair_params(P, d: dict):
    """Write a validation pair's params mapping ``d`` beside the known-cause fine-tunes of run ``P``; returns the
    file and its loaded params (the same file, hence the same run folder, for every benchmark reading the pair)."""
    import yaml

    from rlgen_utils.run import config
    from rlgen_utils.run.rundir import RunDir
    path = RunDir(P).path / "known_causes" / "params" / f"{d['name']}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(d, sort_keys=False))
    return path, config.load_params(path)


def run_notebook(path: Path, notebook: str) -> None:
    """One notebook on a params file through the runner (no report), in a process of its own."""
    import subprocess
    subprocess.run([sys.executable, "-m", "rlgen_utils.run", "--params", str(path), "--only", notebook, "--no-report"],
                   cwd=ROOT, check=True)
