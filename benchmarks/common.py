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
