"""Independent jobs at once on one machine: ``compute.jobs`` worker processes, each computing what one process does.

Notebook 01's trainings are mostly independent of each other — every rate of SFT's grid, and GRPO, RLOO and DPO of
every training seed, start from the base — and notebook 02 scores each model on its own. On a small CPU one such
job does not keep the cores busy (a 4-layer organism's matmuls are small; the timing table of ``docs/BASES.md``,
written from ``benchmarks/bench_study.py`` runs, shows what two workers give). With ``compute.jobs: N`` those
stages hand their jobs to ``N`` worker processes::

    jobs.run(P, [Job("sft lr=1e-05 seed 0", train.train_one, (P, "sft", 0, 1e-5)),
                 Job("validation checkpoint-1", train.validation_correct, (P, ckpt_1),
                     after=("sft lr=1e-05 seed 0",)), ...], desc="SFT grid")

A job is a module-level function and its arguments; it starts once every job named in ``after`` has finished, in
list order among those ready. Workers are fresh interpreters (``spawn``) that set threads, seeds and provenance from
the params as every rlgen process does, then run job after job. Each keeps the params' ``threads`` — the thread
count decides the order of float reductions, so a job at another count could give other bits (measured: DPO and
GRPO weights do) — while OpenMP's idle threads sleep instead of spinning (``OMP_WAIT_POLICY=PASSIVE``), so N
workers do not steal each other's cores. A job therefore writes the same bytes as ``jobs: 1``
(``tests/test_jobs.py`` checks GRPO, DPO, SFT, SFT→DPO and the evaluation). Each job writes its own atomic outputs, so a run
killed mid-way resumes job by job; workers die with the notebook's process.

This is not a distributed layer: no job talks to another. Data-parallel training of one model is
``compute.processes`` (:mod:`rlgen_utils.run.launch`); the two are not combined.
"""
from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .launch import die_with_parent
from .progress import progress
from .session import init

if TYPE_CHECKING:
    from .config import Params


@dataclass(frozen=True)
class Job:
    """One unit of work: ``fn(*args)`` in a worker, once every job named in ``after`` has finished."""
    name: str
    fn: Callable[..., Any]
    args: tuple = ()
    after: tuple[str, ...] = field(default=())


def check(jobs: list[Job]) -> None:
    """Names are unique and every ``after`` names an earlier job (list order is then an order that runs)."""
    seen: set[str] = set()
    for j in jobs:
        if j.name in seen:
            raise ValueError(f"job {j.name!r} is listed twice")
        missing = [a for a in j.after if a not in seen]
        if missing:
            raise ValueError(f"job {j.name!r} waits for {missing}, which no earlier job is")
        seen.add(j.name)


def run(P: Params, jobs: list[Job], desc: str) -> dict[str, Any]:
    """Run ``jobs`` on ``compute.jobs`` workers (in this process, in list order, when it is 1) with progress;
    returns each job's result by name. A failed job stops the rest and raises with its name."""
    check(jobs)
    if P.compute.jobs == 1 or len(jobs) <= 1:
        return {j.name: j.fn(*j.args) for j in progress(jobs, desc=desc)}
    return dict(progress(_pooled(P, jobs), desc=desc, total=len(jobs)))


def _pooled(P: Params, jobs: list[Job]) -> Iterator[tuple[str, Any]]:
    """Yield (name, result) as jobs finish, keeping at most ``compute.jobs`` running (:func:`check`'s order means
    some job is always ready while any is pending)."""
    pending, running, done = list(jobs), {}, set()
    with _worker_env(), ProcessPoolExecutor(max_workers=min(P.compute.jobs, len(jobs)), initializer=_init_worker,
                                            initargs=(P,), mp_context=multiprocessing.get_context("spawn")) as pool:
        try:
            while pending or running:
                for j in [j for j in pending if set(j.after) <= done][:P.compute.jobs - len(running)]:
                    pending.remove(j)
                    running[pool.submit(j.fn, *j.args)] = j
                finished, _ = wait(list(running), return_when=FIRST_COMPLETED)
                for f in finished:
                    j = running.pop(f)
                    yield j.name, _result(j, f)
                    done.add(j.name)
        except BaseException:
            for f in running:
                f.cancel()
            for proc in list(getattr(pool, "_processes", {}).values()):   # a training job does not stop by itself
                proc.kill()
            raise


def _result(job: Job, f: Future) -> Any:
    try:
        return f.result()
    except Exception as e:
        raise RuntimeError(f"job {job.name!r} failed in its worker: {type(e).__name__}: {e}") from e


@contextmanager
def _worker_env() -> Iterator[None]:
    """The environment spawned workers start with: idle OpenMP threads sleep (see the module docstring)."""
    old = os.environ.get("OMP_WAIT_POLICY")
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("OMP_WAIT_POLICY", None)
        else:
            os.environ["OMP_WAIT_POLICY"] = old


def _init_worker(P: Params) -> None:
    """A worker's set-up: die with the notebook's process, then threads, seeds, quiet libraries, provenance."""
    die_with_parent(always=True)
    init(P)
