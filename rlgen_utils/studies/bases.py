"""Several base models: every pre-registered behavioural contrast over bases × training seeds × samples.

One organism base is one draw of pretraining; a claim that holds over the training seeds of one base may not
hold on the next (the same commit and params give base accuracies 0.80 and 0.49 on two CPUs). Here each base is
its own run — a params file that differs from the others only in ``pretrain.seed`` (``extends:``, see
``params/default-base1.yaml``) — finished through notebooks 01 and 02. Because the evaluation prompts depend on
the top-level seed only, every base answers the same questions, and a contrast is read with a three-level
interval: bases, then training seeds within a base, then paired samples (:func:`stats.multilevel_diff_ci`).
Each base also gets its own interval (seeds × samples), so the page can say which conclusions hold on every
base and which on some.

    runs = [load_params(p) for p in ("params/default-3seeds.yaml", "params/default-base1.yaml", ...)]
    table = bases.outcome_table(runs)       # one row per expectation × family (or pooled class)
    render.markdown(bases.summary(table))

Arrays: ``values_GZN`` is ``[bases, training seeds, samples]`` of 0/1 correctness of one method's final models.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..method import stats
from ..run.artifacts import read_parquet
from ..run.config import Params
from ..run.preregistration import Expectation, Preregistration, matches
from ..run.rundir import RunDir
from . import evaluate, prereg
from .findings import Finding, Findings


@dataclass(frozen=True)
class BaseRun:
    """One base's finished run: its params and the per-sample scores of its final models."""
    params: Params
    scores: pd.DataFrame

    @property
    def label(self) -> str:
        return f"base_{self.params.base_seed}"


def finished(P: Params) -> BaseRun:
    """The run's final-model scores as notebook 02 saved them; a run without them is refused (nothing large is
    computed here)."""
    scores = read_parquet(RunDir(P).eval / "per_sample.parquet", evaluate.eval_key(P))
    if scores is None:
        raise SystemExit(f"{P.name}: no current eval/per_sample.parquet: run notebooks 01 and 02 on it first")
    return BaseRun(P, scores[scores.final].reset_index(drop=True))


def check_paired(runs: list[BaseRun]) -> None:
    """Bases are compared sample by sample: the same families and prompts, the same training seeds, the same
    pre-registration, and distinct bases."""
    if len(runs) < 2:
        raise ValueError("several bases need at least two finished runs")
    first = runs[0]
    seeds = [r.params.base_seed for r in runs]
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"two runs share a base (pretrain seeds {seeds}): give each base once")
    ref = _prompts(first.scores)
    for r in runs[1:]:
        if _prompts(r.scores) != ref:
            raise ValueError(f"{r.params.name} asks other questions than {first.params.name}: bases must differ in "
                             f"pretrain.seed only (the top-level seed sets the evaluation prompts)")
        if r.params.train_seeds != first.params.train_seeds:
            raise ValueError(f"{r.params.name}: training seeds {r.params.train_seeds} differ from "
                             f"{first.params.name}'s {first.params.train_seeds}")
        if r.params.eval.preregistration != first.params.eval.preregistration:
            raise ValueError(f"{r.params.name}: another pre-registration than {first.params.name}'s")


def _prompts(scores: pd.DataFrame) -> dict[str, list[str]]:
    base = scores[scores.method == "base"].sort_values(["family", "sample"])
    return {str(f): g.prompt.tolist() for f, g in base.groupby("family")}


def values(runs: list[BaseRun], method: str, families: list[str]) -> np.ndarray:
    """``values_GZN``: correctness of ``method``'s final models on ``families`` (pooled: each sample of each
    family once), per base and training seed; the base model has one row per base."""
    per_base = []
    for r in runs:
        sel = r.scores[(r.scores.method == method) & r.scores.family.isin(families)]
        piv = sel.pivot_table(index="seed", columns=["family", "sample"], values="correct", aggfunc="first")
        per_base.append(piv.sort_index(axis=1).to_numpy(dtype=float))
    shapes = {v.shape for v in per_base}
    if len(shapes) != 1 or 0 in next(iter(shapes)):
        raise ValueError(f"{method} on {families}: the bases' score tables do not line up ({sorted(shapes)})")
    return np.stack(per_base)


def _scopes(runs: list[BaseRun], pre: Preregistration, e: Expectation) -> list[tuple[str, list[str]]]:
    known = set(runs[0].scores.family)
    fams = [f for f, c in pre.families.items() if c == e.applies_to and f in known]
    fams = fams or ([e.applies_to] if e.applies_to in known else [])
    scopes = [(f, [f]) for f in fams]
    return scopes + ([(f"{e.applies_to} (pooled)", fams)] if len(fams) > 1 else [])


def outcome_table(runs: list[BaseRun], n_boot: int = 2000) -> pd.DataFrame:
    """One row per (expectation, family or pooled class): the contrast over every base (three-level interval),
    whether that matches the pre-registered outcome, each base's own interval, and on how many bases it
    matched."""
    check_paired(runs)
    pre = prereg.load(runs[0].params)
    if pre is None:
        raise ValueError(f"{runs[0].params.name}: eval.preregistration names no file: nothing to check over bases")
    methods = set.intersection(*(set(r.scores.method) for r in runs))
    rows = []
    for i, e in enumerate(pre.expectations, start=1):
        a, b = e.contrast
        if not {a, b} <= methods:
            continue
        for scope, fams in _scopes(runs, pre, e):
            va, vb = values(runs, a, fams), values(runs, b, fams)
            if vb.shape[1] > 1 and va.shape[1] == 1:
                va = va.repeat(vb.shape[1], axis=1)
            ci = stats.multilevel_diff_ci(va, vb, n_boot)
            per = [stats.hierarchical_diff_ci(va[g], vb[g], n_boot) for g in range(len(runs))]
            ok = [matches(e.expect, c.lo, c.hi) for c in per]
            rows.append({"row": i, "contrast": f"{a} − {b}", "applies_to": e.applies_to, "scope": scope,
                         "expected": e.expect, "delta": ci.mean, "lo": ci.lo, "hi": ci.hi,
                         "matched": matches(e.expect, ci.lo, ci.hi), "bases_matched": sum(ok), "n_bases": len(runs),
                         **{f"{r.label}": f"{c.mean:+.3f} [{c.lo:+.3f}, {c.hi:+.3f}]" for r, c in zip(runs, per)}})
    return pd.DataFrame(rows)


def display(table: pd.DataFrame) -> pd.DataFrame:
    """The outcome table as the page shows it: intervals as ``Δ [lo, hi]`` strings."""
    shown = table.assign(all_bases=[f"{r.delta:+.3f} [{r.lo:+.3f}, {r.hi:+.3f}]" for r in table.itertuples()],
                         on_every_base=table.bases_matched == table.n_bases)
    cols = ["row", "contrast", "scope", "expected", "all_bases", "matched", "bases_matched", "on_every_base"]
    return shown[cols + [c for c in table.columns if c.startswith("base_")]]


def summary(table: pd.DataFrame) -> Findings:
    """How many pooled-over-bases outcomes matched; which held on every base, and which did not."""
    n, n_ok = len(table), int(table.matched.sum())
    g = int(table.n_bases.iloc[0]) if n else 0
    items = [Finding(f"Over {g} bases: {n_ok} of {n} pre-registered outcomes matched (three-level intervals: "
                     f"bases, training seeds, samples).", {"matched": n_ok, "checked": n, "bases": g}, style="line")]
    every = table[table.bases_matched == table.n_bases]
    items.append(Finding(f"held on every base ({len(every)}): " + (", ".join(
        f"{r.contrast} on {r.scope} ({r.expected})" for r in every.itertuples()) or "none"), {"held_on_every_base": len(every)}))
    some = table[(table.bases_matched < table.n_bases) & table.matched]
    items.append(Finding(f"matched over bases but not on every base ({len(some)}): " + (", ".join(
        f"{c} on {sc} ({k} of {g})" for c, sc, k in zip(some.contrast, some.scope, some.bases_matched))
        or "none"), {"matched_not_on_every_base": len(some)}))
    miss = table[~table.matched.astype(bool)]
    items.append(Finding(f"did not match over bases ({len(miss)}): " + (", ".join(
        f"{r.contrast} on {r.scope}: expected {r.expected}, measured {r.delta:+.3f} [{r.lo:+.3f}, {r.hi:+.3f}]"
        for r in miss.itertuples()) or "none"), {"not_matched": len(miss)}))
    return Findings("bases", "preregistration_over_bases", tuple(items))
