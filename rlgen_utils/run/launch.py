"""Post-training on many processes through ``accelerate launch``: rlgen's whole distributed layer is a command line.

With ``compute.processes: N > 1`` notebook 01 trains each (method, training seed) by running, from the repository::

    python -m accelerate.commands.launch --multi_gpu --num_processes N --main_process_port P \\
        -m rlgen_utils.studies.train_method --params <run>/launch/params.yaml --method grpo --seed 0

(``--config_file params/accelerate/zero3.yaml`` instead of ``--multi_gpu`` for DeepSpeed ZeRO-3 or FSDP). torchrun
starts N ranks; trl's trainers see the distributed environment and run data-parallel: DDP over NCCL on GPUs, over
gloo on CPUs. Every rank runs the same segment loop (:func:`rlgen_utils.models.posttrain.train_method`) on the same
rows; trl's sampler hands each rank its slice of every global batch, so the batch sizes in params are global and a
launch on N ranks trains on the same samples per step as one process. Rank 0 alone writes checkpoints, curves and
completion markers; the other ranks wait for it at a barrier, so resume and the stage keys work unchanged. A rank
dies with its launcher (:func:`die_with_parent`), so a killed launch leaves nothing training behind.

**Sharded analysis.** The same launch runs an analysis stage on N ranks (``python -m
rlgen_utils.studies.shard_stage``): evaluation gives each rank whole models, activation collection whole shards of a
layout fixed by the texts alone, edge attribution whole question batches; every rank writes its part (safetensors) and rank 0
merges them, in order, into the stage's usual atomic folder and marker. Each part is computed exactly as one
process computes it, so N ranks write the same bytes as one.

The launched ranks read the params the notebook holds, written to ``<run>/launch/params.yaml``; their output is
passed through line by line (progress lines included), and a failed launch raises with its last lines.
"""
from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from .artifacts import atomic_file, atomic_write_text
from .config import Params, ParamsError, load_params
from .rundir import RunDir, repo_path
from .session import init

if TYPE_CHECKING:
    import torch

# imported inside functions, for their import cost (rlgen_utils.run.imports): safetensors, torch


def world() -> tuple[int, int]:
    """(rank, world size) of this process: (0, 1) outside a launch."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def is_main() -> bool:
    return world()[0] == 0


def mine(i: int) -> bool:
    """Whether work item ``i`` (a shard, a batch) is this rank's: items are dealt round-robin."""
    rank, n = world()
    return i % n == rank


def should_launch(P: Params) -> bool:
    """Whether a stage of ``P`` must be handed to ``accelerate launch`` (more processes asked, none running yet)."""
    return P.compute.processes > 1 and world()[1] == 1


def gather_parts(parts: dict[str, torch.Tensor], staging: Path) -> dict[str, torch.Tensor] | None:
    """Every rank's named tensors, merged on rank 0 (None on the others); in one process, ``parts`` itself. Each rank
    writes ``staging/rank-<r>.safetensors`` atomically; rank 0 reads them all after a barrier."""
    from safetensors.torch import load_file, save_file

    rank, n = world()
    if n == 1:
        return parts
    staging.mkdir(parents=True, exist_ok=True)
    with atomic_file(staging / f"rank-{rank}.safetensors") as tmp:
        save_file({k: v.contiguous() for k, v in parts.items()}, str(tmp))
    barrier()
    if rank:
        return None
    merged: dict[str, torch.Tensor] = {}
    for r in range(n):
        merged.update(load_file(str(staging / f"rank-{r}.safetensors")))
    return merged


def init_ranks() -> None:
    """Join this launch's process group (torchrun's environment; NCCL on GPUs, gloo on CPUs) — what trl's trainers
    do for themselves, done here for the analysis stages. Nothing outside a launch."""
    import torch
    import torch.distributed as dist
    if world()[1] == 1 or dist.is_initialized():
        return
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")


def barrier() -> None:
    """Wait for every rank of this launch (nothing outside one)."""
    import torch.distributed as dist
    if world()[1] > 1 and dist.is_available() and dist.is_initialized():
        dist.barrier()


def die_with_parent(always: bool = False) -> None:
    """Linux: have the kernel kill this rank when its parent (torchrun's agent) dies. torchrun starts each rank in
    a session of its own, so a ``kill -9`` of the launch would otherwise leave the ranks training on, writing
    checkpoints beside the next launch's. ``always``: outside a launch too (a worker of :mod:`rlgen_utils.run.jobs`)."""
    if not sys.platform.startswith("linux") or (world()[1] == 1 and not always):
        return
    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)
    if os.getppid() == 1:   # the parent died before the call
        os.kill(os.getpid(), signal.SIGKILL)


@contextmanager
def as_rank(params_path: str | Path, join: bool = True) -> Iterator[Params]:
    """A launched rank's life: die with the launcher, read the params (a bad file: one line), seed and thread as
    every process does, join the process group (``join``; trl's trainers join it themselves), leave it at the end."""
    die_with_parent()
    try:
        P = load_params(params_path)
    except ParamsError as e:
        raise SystemExit(str(e)) from None
    init(P)
    if join:
        init_ranks()
    try:
        yield P
    finally:
        import torch.distributed as dist
        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stage_command(P: Params, params: Path, stage: list[str]) -> list[str]:
    """The ``accelerate launch`` command line that runs one analysis stage (``shard_stage`` arguments) on N ranks."""
    return _launcher(P) + ["-m", "rlgen_utils.studies.shard_stage", "--params", str(params), *stage]


def run_stage(P: Params, stage: list[str]) -> None:
    """Run one analysis stage on ``compute.processes`` ranks and wait for it."""
    run(stage_command(P, params_file(P), stage))


def params_file(P: Params) -> Path:
    """``P`` as the launched ranks read it (validated again there)."""
    path = RunDir(P).path / "launch" / "params.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, yaml.safe_dump(P.model_dump(mode="json"), sort_keys=False))
    return path


def command(P: Params, params: Path, method: str, seed: int, sft_lr: float | None = None) -> list[str]:
    """The ``accelerate launch`` command line that trains ``method`` with training seed ``seed``."""
    cmd = _launcher(P) + ["-m", "rlgen_utils.studies.train_method", "--params", str(params), "--method", method,
                          "--seed", str(seed)]
    return cmd + (["--sft-lr", repr(sft_lr)] if sft_lr is not None else [])


def _launcher(P: Params) -> list[str]:
    c = P.compute
    # without a config file: plain DDP; the weights are already in the params' dtype, so no autocast on top
    engine = (["--config_file", str(repo_path(c.accelerate_config))] if c.accelerate_config else
              ["--multi_gpu", "--mixed_precision", "no", "--dynamo_backend", "no"])
    return [sys.executable, "-m", "accelerate.commands.launch", *engine, "--num_processes", str(c.processes),
            "--num_machines", "1", "--main_process_port", str(c.main_process_port or free_port())]


def run(cmd: list[str], keep: int = 40) -> None:
    """Run ``cmd`` from this process's folder, printing its output as it comes; raise with its last lines if it fails."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "RLGEN_PROGRESS": os.environ.get("RLGEN_PROGRESS", "lines")}
    tail: deque[str] = deque(maxlen=keep)
    with subprocess.Popen(cmd, cwd=os.getcwd(), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, bufsize=1) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            tail.append(line.rstrip("\n"))
            print(line, end="", file=sys.stderr, flush=True)
    if proc.returncode:
        raise RuntimeError(f"accelerate launch failed (exit {proc.returncode}): {' '.join(cmd[2:])}\n"
                           + "\n".join(tail))


