"""Wall time and peak memory of every notebook, and of the whole study, on a params file in a fresh run folder.

    .venv/bin/python benchmarks/bench_study.py --params params/default.yaml [--keep DIR] [--notebooks 01_train 02_evaluate]
    .venv/bin/python benchmarks/bench_study.py --params params/smollm2.yaml --keep DIR --resume bench.log

``--resume LOG`` continues an interrupted benchmark: the notebooks whose ``[bench]`` line is in its printed log keep
those measurements and are not run again (their outputs must still be in ``--keep``; delete the outputs of the
notebook that was interrupted, or its time will be short). The result records which notebooks came from the log.

Each notebook runs through the same runner as ``make reproduce`` (papermill, a fresh kernel) in its own wrapper
process, so its peak resident memory (kernel included) is its own; then the run report is built. The calibration
ratio (see ``bench_01_train.py``) makes times comparable across noisy days. Results:
``benchmarks/results/study-<name>.json``. With ``--notebooks`` only those run (no report, no re-run).
"""
from __future__ import annotations

import argparse
import ast
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from bench_01_train import calibration_seconds
from common import ROOT, write_result

from rlgen_utils.run.config import read_params_yaml

WRAPPER = ("import json, resource, subprocess, sys, time; t = time.perf_counter(); "
           "r = subprocess.run(sys.argv[1:]); "
           "print(json.dumps({'rc': r.returncode, 'wall_s': time.perf_counter() - t, "
           "'peak_rss_mib': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))")


def measured(cmd: list[str]) -> dict:
    out = subprocess.run([sys.executable, "-c", WRAPPER, *cmd], cwd=ROOT, capture_output=True, text=True)
    res = json.loads(out.stdout.strip().splitlines()[-1])
    if res["rc"] != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{out.stderr[-3000:]}")
    return {"wall_s": round(res["wall_s"], 1), "peak_rss_mib": round(res["peak_rss_mib"], 1)}


def measured_in_log(log: Path) -> dict[str, dict]:
    """The ``[bench] NOTEBOOK: {...}`` lines an earlier, interrupted run of this script printed."""
    found = re.findall(r"^\[bench\] (\w+): (\{.*\})$", log.read_text(), flags=re.M)
    return {nb: ast.literal_eval(d) for nb, d in found}


def cpu_model() -> str:
    """The processor's name (times move several-fold between 2-core machines of this kind)."""
    try:
        return next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                    if line.startswith("model name"))
    except (OSError, StopIteration):
        import platform
        return platform.processor() or "unknown"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--params", default="params/default.yaml")
    ap.add_argument("--keep", default=None, help="run root to use and keep (default: a temporary folder)")
    ap.add_argument("--notebooks", nargs="*", default=None, help="only these notebooks (e.g. 01_train 02_evaluate)")
    ap.add_argument("--resume", type=Path, default=None, help="log of an interrupted run of this script (needs --keep)")
    args = ap.parse_args()
    if args.resume and not args.keep:
        raise SystemExit("--resume needs --keep: the resumed notebooks' outputs live in that run root")
    earlier = measured_in_log(args.resume) if args.resume else {}
    raw = read_params_yaml(args.params)  # `extends:` resolved: the copy stands alone
    calib = calibration_seconds()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.keep or tmp)
        root.mkdir(parents=True, exist_ok=True)
        raw["run_root"] = str(root)
        params = root / Path(args.params).name
        params.write_text(yaml.safe_dump(raw))
        run = [sys.executable, "-m", "rlgen_utils.run", "--params", str(params), "--no-report", "--only"]
        per = {}
        for nb in args.notebooks or sorted(p.stem for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
            per[nb] = earlier.get(nb) or measured(run + [nb])
            print(f"[bench] {nb}: {per[nb]}", flush=True)
        rerun = {"wall_s": None}
        if not args.notebooks:
            per["report"] = measured([sys.executable, "-m", "rlgen_utils.run.report", "--params", str(params)])
            t0 = time.perf_counter()
            rerun = measured([sys.executable, "-m", "rlgen_utils.run", "--params", str(params), "--no-png"])
            rerun["wall_s"] = round(time.perf_counter() - t0, 1)
    total = sum(v["wall_s"] for v in per.values())
    result = {"params": args.params, "cpu": cpu_model(), "per_notebook": per, "total_wall_s": round(total, 1),
              "total_wall_min": round(total / 60, 1), "peak_rss_mib": max(v["peak_rss_mib"] for v in per.values()),
              "rerun_of_finished_study_s": rerun["wall_s"], "calibration_s": round(calib, 3),
              "total_over_calibration": round(total / calib, 1),
              "from_earlier_log": sorted(nb for nb in per if nb in earlier)}
    suffix = "" if not args.notebooks else "-" + "+".join(n.split("_")[0] for n in args.notebooks)
    write_result("study", Path(args.params).stem + suffix, result)


if __name__ == "__main__":
    main()
