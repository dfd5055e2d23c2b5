"""Run the study's notebooks headless with papermill, in order, into one run folder per params file.

    python -m rlgen_utils.run --params params/default.yaml [--only 01_train 02_evaluate] [--no-png]

Params are validated before anything runs (one line naming the bad key, exit 2). Each notebook is executed with
``params_path`` injected and written, with its outputs, to ``runs/<name>/notebooks/``. The notebooks
themselves skip stages whose outputs exist for the same params, so a re-run of a finished study is quick.
At the end the run report is (re)built from every executed notebook (:mod:`rlgen_utils.report`).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from .config import ParamsError, load_params

ROOT = Path(__file__).resolve().parent.parent
KERNEL = "rlgen"


def notebooks(only: list[str] | None = None) -> list[Path]:
    found = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    if only:
        unknown = set(only) - {p.stem for p in found}
        if unknown:
            raise SystemExit(f"--only: no notebook named {', '.join(sorted(unknown))} "
                             f"(have: {', '.join(p.stem for p in found)})")
        found = [p for p in found if p.stem in only]
    return found


def execute(nb: Path, params_path: Path, out_dir: Path) -> float:
    import papermill as pm

    out_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    pm.execute_notebook(str(nb), str(out_dir / nb.name), parameters={"params_path": str(params_path)},
                        kernel_name=KERNEL, cwd=str(ROOT), progress_bar=False, log_output=True)
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--params", required=True, help="params YAML file")
    ap.add_argument("--only", nargs="*", help="notebook names to run (default: all, in order)")
    ap.add_argument("--no-report", action="store_true", help="do not build the run report at the end")
    ap.add_argument("--no-png", action="store_true", help="report without static PNG figures")
    args = ap.parse_args(argv)
    params_path = Path(args.params).resolve()
    os.chdir(ROOT)  # relative paths inside params (run_root, data files) are relative to the repository
    try:
        P = load_params(params_path)
    except ParamsError as e:
        print(e, file=sys.stderr)
        return 2
    from papermill.exceptions import PapermillExecutionError

    run_dir = P.run_dir if P.run_dir.is_absolute() else ROOT / P.run_dir
    for nb in notebooks(args.only):
        print(f"[rlgen] {nb.stem} ({params_path.name}) ...", flush=True)
        try:
            seconds = execute(nb, params_path, run_dir / "notebooks")
        except PapermillExecutionError as e:
            print(f"[rlgen] {nb.stem} failed in cell {e.exec_count}: {e.ename}: {e.evalue}\n"
                  f"[rlgen] the executed notebook, with the traceback, is {run_dir / 'notebooks' / nb.name}",
                  file=sys.stderr)
            return 1
        print(f"[rlgen] {nb.stem} done in {seconds:.1f} s", flush=True)
    if not args.no_report:
        from .report import build
        out = build(params_path, ROOT, pngs=not args.no_png)
        print(f"[rlgen] report: {out / 'report.html'} and {out / 'report.md'}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
