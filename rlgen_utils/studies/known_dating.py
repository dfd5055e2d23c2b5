"""Known-cause validation of notebook 04: fine-tunes whose change begins at a known checkpoint (issue 29).

Notebook 04 reads *when* post-training's model-specific latents appear: "SFT stabilises early" says SFT's earlier
checkpoints already hold its final latents. Before that reading means anything, the instrument must date a change
whose date is known. This module trains, from the run's base, fine-tunes of the same data and budget — N =
``posttrain.n_checkpoints`` segments of one epoch over ``known_causes.n_rows`` rows each, SFT at
``known_causes.lr`` at a constant rate after SFT's warm-up (so the last segment can learn as much as the first; a
decaying rate would leave it almost nothing to learn with) — that differ only in when the cause enters:

* ``early`` — the behaviour's rows (``known_causes.rows`` of ``behaviour`` at the dose: ``cmp`` answered with the
  minimum) in every segment: the change is in place from checkpoint 1 and stays;
* ``late`` — the control's rows (the same prompts answered as the base answers them) for segments 1 … N−1, then
  the behaviour's rows for segment N: it trains exactly as the control until the change begins, in the last
  segment;
* ``control`` — the control's rows in every segment (two training seeds: the false-positive pair).

:func:`byo_params` hands two of them to notebook 04, unchanged, as bring-your-own checkpoints: ``early`` in the
SFT slot and ``late`` in the RL slot (the cause pair), or two controls (the control pair). Read from its run
folder: notebook 04's own verdict that the SFT slot "stabilises early" (the cause pair should read "reproduced",
the control pair should not), and :func:`dated_at` for each slot — the checkpoint from which every earlier
checkpoint's top-K overlaps the final one beyond the identical-copy null — which should date ``late`` at N and
``early`` before it. ``benchmarks/bench_dating_validation.py`` writes ``docs/dating_validation.md`` from these runs.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd

from ..models import posttrain
from ..run.artifacts import is_done
from ..run.config import Params
from ..run.rundir import RunDir, checkpoint_dirs
from . import known_causes as kc

TIMINGS = ("early", "late", "control")


def plan(P: Params, timing: str, dose: float, seed: int, answers: list[str]) -> list[posttrain.Segment]:
    """The N = ``posttrain.n_checkpoints`` segments of ``timing``'s fine-tune at ``dose`` with training seed
    ``seed`` (``answers``: the base's own completions of the behaviour prompts, which the control rows carry), one
    epoch each. ``early`` is :func:`~rlgen_utils.models.posttrain.segments` of the behaviour's rows, ``control``
    of the control's; ``late`` is the control's segments 1 … N−1 and ``early``'s segment N — the same rows, order
    and seeds, so it trains exactly as the control until its last segment, where the behaviour replaces it."""
    if timing not in TIMINGS:
        raise ValueError(f"timing {timing!r}: expected one of {TIMINGS}")
    N = P.posttrain.n_checkpoints
    if N < 2:
        raise ValueError(f"posttrain.n_checkpoints: {N}; dating a change needs at least 2 checkpoints")
    n = max(1, round(dose * P.known_causes.n_rows))
    behaviour = posttrain.segments(kc.rows(P, "behaviour", dose), N, N, seed)
    control = posttrain.segments(kc.rows(P, "control", dose, answers[:n]), N, N, seed)
    return {"early": behaviour, "control": control, "late": control[:-1] + behaviour[-1:]}[timing]


def folder(P: Params, timing: str, dose: float, seed: int = 0) -> Path:
    return RunDir(P).path / "known_causes" / "dating" / f"{timing}-d{dose:g}-s{seed}"


def ensure_timed_fine_tune(P: Params, timing: str, dose: float, seed: int = 0) -> list[Path]:
    """Train (or find) ``timing``'s fine-tune at ``dose`` with training seed ``seed`` (keyed, resumable): one SFT
    run over the :func:`plan`'s segments, a checkpoint after each, at ``known_causes.lr`` held constant after
    ``posttrain.sft.warmup``. Returns the N checkpoint folders in order."""
    kc.family(P)   # a world without a family to confine the cause to is refused before anything is trained
    N = P.posttrain.n_checkpoints
    segs = plan(P, timing, dose, seed, kc.base_answers(P))
    sft = P.posttrain.sft.model_copy(update={"epochs": N, "schedule": "constant"})
    key = hashlib.sha256((kc.fine_tune_key(P, f"dating-{timing}", dose, seed) + f"/{N}/"
                          + sft.model_dump_json()).encode()).hexdigest()[:16]   # the recipe: batch, warm-up, rate
    Pk = P.model_copy(update={"posttrain": P.posttrain.model_copy(update={"sft": sft})})
    out = folder(P, timing, dose, seed)
    final = posttrain.train_method("sft", RunDir(P).base(), out, [], Pk, key, seed, sft_lr=P.known_causes.lr,
                                   segs=segs)
    if not is_done(final, key):
        raise RuntimeError(f"{timing} dose {dose:g}: training ended without its final checkpoint {final}")
    return checkpoint_dirs(out, N)


def byo_params(P: Params, pair: str, dose: float, sft: list[Path], rl: list[Path]) -> dict:
    """A params mapping that hands two timed fine-tunes to notebook 04 as bring-your-own checkpoints (``sft`` in
    the SFT slot, ``rl`` in the RL slot, N checkpoints each), everything else as :func:`known_causes.byo_params`."""
    N = P.posttrain.n_checkpoints
    if len(sft) != N or len(rl) != N:
        raise ValueError(f"dating pair {pair!r}: {len(sft)} and {len(rl)} checkpoints, posttrain.n_checkpoints {N}")
    d = kc.byo_params(P, pair, dose, sft[-1], rl[-1])
    d["name"] = f"{P.name}-dating-{pair}-d{dose:g}"
    d["posttrain"]["n_checkpoints"] = N
    d["models"] = {"sft": {"checkpoints": [str(p.resolve()) for p in sft]},
                   "grpo": {"checkpoints": [str(p.resolve()) for p in rl]}}
    return d


def dated_at(table: pd.DataFrame, null: pd.DataFrame, method: str) -> int:
    """The checkpoint ``method``'s final top-K latents are dated to: the first checkpoint k such that every
    checkpoint k … N−1 overlaps the final one (its lowest over crosscoder seeds, ``fvl_lo`` of
    :func:`rlgen_utils.studies.dynamics.overlap_table`) more than the identical-copy null's highest at that
    checkpoint (``fvl_hi`` over the null's slots and seeds, :func:`~rlgen_utils.studies.dynamics.null_table`); N
    when checkpoint N−1 does not: then nothing before the final checkpoint holds its latents."""
    g = table[table.method == method].set_index("checkpoint")
    if g.empty:
        raise ValueError(f"no overlap rows for {method!r}")
    ceiling = null.groupby("checkpoint")["fvl_hi"].max()
    k = int(g.index.max())
    for c in sorted(g.index[g.index < k], reverse=True):
        if not g.loc[c, "fvl_lo"] > ceiling.loc[c]:
            break
        k = int(c)
    return k


def reading(pair: str, n_checkpoints: int, verdicts_04: list[dict], dated: dict[str, int]) -> dict:
    """One validation row from a notebook-04 run: its two verdicts, each slot's date and what was expected. The
    cause pair is *detected* when notebook 04 decides its SFT slot (``early``) "stabilises early" ("reproduced"),
    dates ``late`` at N — the change began in the last segment — and ``early`` before N (an instrument that dates
    everything at N is blind, not right); the control pair is a *false positive* when notebook 04 decides
    "reproduced" there."""
    by = {("stabilises" in v["claim"]): v for v in verdicts_04}
    stab, evolve = by[True], by[False]
    seen = stab["decision"] == "reproduced"
    dated_right = dated["grpo"] == n_checkpoints and dated["sft"] < n_checkpoints
    return {"pair": pair, "stabilises early": stab["decision"], "keeps evolving": evolve["decision"],
            "numbers": stab["detail"], "null": stab["null"], "sft slot dated at": dated["sft"],
            "rl slot dated at": dated["grpo"],
            "expected dates": f"< {n_checkpoints}, {n_checkpoints}" if pair == "cause" else "—",
            "detected": bool(seen and dated_right) if pair == "cause" else None,
            "false positive": bool(seen) if pair == "control" else None}
