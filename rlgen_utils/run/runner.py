"""Run the study's notebooks headless with papermill, in order, into one run folder per params file.

    python -m rlgen_utils.run --params params/default.yaml [--only 01_train 02_evaluate] [--no-png]

Params are validated before anything runs (one line naming the bad key, exit 2). Each notebook is executed with
``params_path`` injected and written, with its outputs, to ``runs/<name>/notebooks/``. The notebooks
themselves skip stages whose outputs exist for the same params, so a re-run of a finished study is quick.
At the end the run report is (re)built from every executed notebook (:mod:`rlgen_utils.run.report`).

**Progress on the command line.** The runner prints a line as each cell starts — ``[rlgen] 01_train · cell
7/24 · Post-training`` (the cell's section heading) — and the kernel runs with ``RLGEN_PROGRESS=lines``, so every
long loop prints ``[progress] …`` lines (:mod:`rlgen_utils.run.progress`) that the runner passes through.
The params file becomes the one notebooks opened later in JupyterLab show (:mod:`rlgen_utils.run.session`).

**One runner per run folder** (:mod:`rlgen_utils.run.lock`): a second runner on the same params waits for the
first (then skips what it finished) or, with ``--no-wait``, exits 3 with one line; a killed runner leaves no lock.
"""
from __future__ import annotations

import argparse
import logging
import os
import re
import sys
import time
from pathlib import Path

from .config import ParamsError, load_params
from .lock import RunLocked, run_lock
from .plan import render
from .report import build
from .rundir import REPO, RunDir
from .session import remember

# imported inside functions, for their import cost (rlgen_utils.run.imports): nbformat, papermill

KERNEL = "rlgen"


def notebooks(only: list[str] | None = None) -> list[Path]:
    found = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    if only:
        unknown = set(only) - {p.stem for p in found}
        if unknown:
            raise SystemExit(f"--only: no notebook named {', '.join(sorted(unknown))} "
                             f"(have: {', '.join(p.stem for p in found)})")
        found = [p for p in found if p.stem in only]
    return found


def cell_labels(nb_path: Path) -> list[str]:
    """For each cell papermill will execute (the injected parameters cell included), the heading of the
    section it belongs to: the last markdown heading at or before it."""
    import nbformat

    nb = nbformat.read(str(nb_path), as_version=4)
    labels, current = [], nb_path.stem
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            heads = re.findall(r"^#+\s*(.+)$", cell.source, flags=re.M)
            current = heads[0].strip() if heads else current
        labels.append(current)
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            labels.append(current)  # papermill's injected-parameters cell follows
    return labels


class CellLines(logging.Handler):
    """Turns papermill's log records into progress lines: one per cell start, and the kernel's own lines."""

    def __init__(self, name: str, labels: list[str]):
        super().__init__(logging.INFO)
        self.name_, self.labels = name, labels

    def emit(self, record: logging.LogRecord) -> None:
        msg = record.getMessage()
        m = re.match(r"Executing Cell (\d+)", msg)
        if m:
            i = int(m.group(1))
            label = self.labels[i - 1] if i - 1 < len(self.labels) else ""
            print(f"[rlgen] {self.name_} · cell {i}/{len(self.labels)} · {label}", flush=True)
            return
        for line in msg.replace("\r", "\n").splitlines():
            if line.startswith("[progress]") or line.startswith("params:"):
                print(f"[rlgen] {self.name_} {line}", flush=True)


def execute(nb: Path, params_path: Path, out_dir: Path) -> float:
    import papermill as pm

    out_dir.mkdir(parents=True, exist_ok=True)
    log = logging.getLogger("papermill")
    handler = CellLines(nb.stem, cell_labels(nb))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    os.environ["RLGEN_PROGRESS"] = "lines"  # the kernel inherits it: loops print plain progress lines
    t0 = time.perf_counter()
    try:
        pm.execute_notebook(str(nb), str(out_dir / nb.name), parameters={"params_path": str(params_path)},
                            kernel_name=KERNEL, cwd=str(REPO), progress_bar=False, log_output=True)
    finally:
        log.removeHandler(handler)
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--params", required=True, help="params YAML file")
    ap.add_argument("--only", nargs="*", help="notebook names to run (default: all, in order)")
    ap.add_argument("--no-report", action="store_true", help="do not build the run report at the end")
    ap.add_argument("--no-png", action="store_true", help="report without static PNG figures")
    ap.add_argument("--no-wait", action="store_true", help="refuse (exit 3) instead of waiting when another run "
                    "holds the run folder")
    ap.add_argument("--plan", action="store_true", help="print per stage the models held at once, memory per device "
                    "and token counts; run nothing (rlgen_utils/run/plan.py)")
    ap.add_argument("--devices", type=int, default=None, help="--plan: devices training is sharded over (default: "
                    "compute.processes)")
    ap.add_argument("--model-config", default=None, help="--plan: the model's config.json, if not yet copied in")
    args = ap.parse_args(argv)
    params_path = Path(args.params).resolve()
    os.chdir(REPO)  # relative paths inside params (data files) are relative to the repository
    try:
        P = load_params(params_path, check_files=not args.plan)
        if args.plan:
            print(render(P, args.devices or P.compute.processes, args.model_config))
            return 0
    except (ParamsError, ValueError) as e:
        print(e, file=sys.stderr)
        return 2
    remember(params_path)
    run = RunDir(P)
    try:
        with run_lock(run.path, wait=not args.no_wait, say=lambda m: print(m, flush=True)):
            return _run(args, params_path, run)
    except RunLocked as e:
        print(f"[rlgen] {e}", file=sys.stderr)
        return 3


def _run(args: argparse.Namespace, params_path: Path, run: RunDir) -> int:
    from papermill.exceptions import PapermillExecutionError

    for nb in notebooks(args.only):
        print(f"[rlgen] {nb.stem} ({params_path.name}) ...", flush=True)
        try:
            seconds = execute(nb, params_path, run.notebooks)
        except PapermillExecutionError as e:
            print(f"[rlgen] {nb.stem} failed in cell {e.exec_count}: {e.ename}: {e.evalue}\n"
                  f"[rlgen] the executed notebook, with the traceback, is {run.notebooks / nb.name}",
                  file=sys.stderr)
            return 1
        print(f"[rlgen] {nb.stem} done in {seconds:.1f} s", flush=True)
    if not args.no_report:
        out = build(params_path, REPO, pngs=not args.no_png)
        print(f"[rlgen] report: {out / 'report.html'} and {out / 'report.md'}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
