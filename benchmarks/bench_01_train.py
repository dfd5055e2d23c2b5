"""Wall time and peak memory of notebook 01_train on a params file, in a fresh run folder.

    .venv/bin/python benchmarks/bench_01_train.py --params params/default.yaml

The notebook runs through the same runner as ``make reproduce`` (papermill, a fresh kernel), into a temporary
run root so nothing is skipped. Because this machine is noisy, the time is also given as a ratio to a
calibration workload measured in this process just before (a fixed fp32 matmul loop): compare ratios, not
seconds, across machines or days. Results go to ``benchmarks/results/01_train-<name>.json``.
"""
from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from common import ROOT, write_result

from rlgen_utils.run.config import read_params_yaml


def calibration_seconds() -> float:
    """Seconds for 20 fp32 1024x1024 matmuls on this machine's torch threads (≈43 GFLOP)."""
    import torch
    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    a @ b
    t0 = time.perf_counter()
    for _ in range(20):
        a @ b
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--params", default="params/default.yaml")
    ap.add_argument("--notebook", default="01_train")
    args = ap.parse_args()
    raw = read_params_yaml(args.params)  # `extends:` resolved: the copy stands alone
    calib = calibration_seconds()
    with tempfile.TemporaryDirectory() as tmp:
        raw["run_root"] = tmp
        params = Path(tmp) / Path(args.params).name
        params.write_text(yaml.safe_dump(raw))
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "rlgen_utils.run", "--params", str(params), "--only", args.notebook],
                       cwd=ROOT, check=True)
        wall = time.perf_counter() - t0
    peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    result = {"notebook": args.notebook, "params": args.params, "wall_s": round(wall, 1),
              "peak_rss_mib": round(peak_mib, 1), "calibration_s": round(calib, 3),
              "wall_over_calibration": round(wall / calib, 1)}
    write_result(args.notebook, Path(args.params).stem, result)


if __name__ == "__main__":
    main()
