"""What a process does before any compute: find the params, validate them, set threads, seeds and provenance.

:func:`start` is every notebook's first call. Which params it opens, in order: the path given (papermill injects
one), else ``$RLGEN_PARAMS``, else the params of the run last made with ``make reproduce`` / the runner (recorded
in ``.rlgen/last_params``), else ``params/smoke.yaml`` — and it says which, so a notebook opened in JupyterLab
shows the run the user made rather than silently another one.
"""
from __future__ import annotations

import os
import random
import warnings
from pathlib import Path

import numpy as np

from .artifacts import set_provenance
from .config import Params, load_params
from .keys import params_hash
from .rundir import REPO

# imported inside functions, for their import cost (rlgen_utils.run.imports): datasets, torch, transformers

FALLBACK = "params/smoke.yaml"


def last_params_file() -> Path:
    """Where the runner records the params of the run last made (``$RLGEN_STATE`` overrides the folder; the
    tests point it elsewhere so that they never change what a person's JupyterLab opens)."""
    return Path(os.environ.get("RLGEN_STATE", REPO / ".rlgen")) / "last_params"


def seed_everything(seed: int) -> None:
    import torch
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


THREADS_ENV = "RLGEN_THREADS"
"""Overrides the params' ``threads`` for this process and its children: for running several runs side by side (the
test suite's parallel workers set 1 each, so two workers do not oversubscribe two cores; OpenMP threads that
outnumber the cores spin-wait, and a smoke notebook then took minutes instead of seconds). Numbers depend on the
thread count only through float reduction order; the same setting gives the same numbers."""


def set_threads(n: int) -> None:
    """Torch threads for this process: ``$RLGEN_THREADS`` if set, else ``n`` (0 = the library's default)."""
    import torch
    n = int(os.environ.get(THREADS_ENV) or n)
    if n > 0:
        torch.set_num_threads(n)


def quiet_libraries() -> None:
    """Silence per-call progress bars and warnings of datasets/transformers (trl builds a dataset every
    segment); rlgen's own loops keep their progress lines."""
    import datasets
    import transformers
    warnings.filterwarnings("ignore", message=".*(gradient_checkpointing|activation_checkpointing).*")
    datasets.disable_progress_bars()
    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()


def remember(params_path: str | Path) -> None:
    """Record ``params_path`` as the run last made (what notebooks opened later in JupyterLab show)."""
    path = last_params_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(str(Path(params_path).resolve()))


def resolve_params_path(params_path: str | Path | None) -> tuple[Path, str]:
    """The params file to open and why it was chosen (see the module docstring)."""
    if params_path:
        return Path(params_path), "given"
    if os.environ.get("RLGEN_PARAMS"):
        return Path(os.environ["RLGEN_PARAMS"]), "$RLGEN_PARAMS"
    last = last_params_file()
    if last.is_file() and Path(last.read_text().strip()).is_file():
        return Path(last.read_text().strip()), f"the run last made ({last})"
    return Path(FALLBACK), "no run made yet: the smoke params"


def start(params_path: str | Path | None = None, announce: bool = True) -> Params:
    """Work from the repository root, load and validate the params (see :func:`resolve_params_path`), set
    threads, seeds and provenance. Returns the params."""
    os.chdir(REPO)
    path, why = resolve_params_path(params_path)
    P = load_params(path)
    if announce and why != "given":
        print(f"params: {path} ({why}); run folder {P.run_dir}")
    init(P)
    return P


def init(P: Params) -> None:
    """Per-process set-up: torch threads and seeds from params, quiet libraries, provenance of what is written."""
    set_threads(P.threads)
    seed_everything(P.seed)
    quiet_libraries()
    set_provenance(params_hash(P))
