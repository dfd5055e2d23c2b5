"""Stages of notebook 06: generalization features (§A4) and interventions with controls (§A5).

Run-folder layout::

    interventions/<key>/pool/<model>.parquet        base and RL greedy answers on the selection pool
    interventions/<key>/selection.json               scores, per-family sets, the task-agnostic set
    interventions/<key>/conditions/<name>.parquet    per-sample correctness of one (model, edit) condition

Each file is written atomically with the key in its metadata, so a re-run loads what is finished and computes only
what is missing (a killed run resumes at the next condition).

**Samples.** For each selection family, base and RL answer ``pool_per_family`` test prompts (the evaluation's
greedy decoding). The pool is split in two halves by a seeded shuffle (:func:`halves`): latents are **selected on
the first half** (RL-right/base-wrong samples against the control samples, base-right/RL-wrong and both-right) and
every edit is **evaluated on the second**: its RL-right/base-wrong samples (``rw:``) and, for the selection
families, its first ``n_eval`` prompts (``all:``); held-out and in-domain families use their first ``n_eval``.

**Conditions.** ``plain`` (no edit), ``identity`` (routed through the crosscoder, nothing changed), ``disable``
(selected latents × 0 in RL), ``amplify`` (× ``amplify`` in the base), the same two with ``n_random`` random sets
of the same size and firing frequency drawn from alive latents outside the selected set (on the ``rw:`` sets, where
the causal claim is tested), and the dose-response over ``dose`` factors.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch

from ..method import activations, latent_edits, stats
from ..method.activations import ActivationStore
from ..models import loading, scoring
from ..run.artifacts import provenance, read_json, read_parquet, write_json, write_parquet
from ..run.config import Params
from ..run.keys import stage_key
from ..run.modelid import ModelId
from ..run.progress import progress
from ..run.rundir import RunDir
from ..world import suite
from . import crosscoder, evaluate

if TYPE_CHECKING:
    pass


def key(P: Params) -> str:
    return stage_key(P, "interventions")


def study_dir(P: Params) -> Path:
    """``interventions/<key>/`` of this run."""
    return RunDir(P).interventions(key(P))


trio = crosscoder.trio


# ------------------------------------------------------------------------------------------------ families
# The selection pools are notebook 02's (base and RL on ``interventions.pool_per_family`` test prompts per family).
selection_families, pool_families, ensure_pool = (evaluate.selection_families, evaluate.pool_families,
                                                  evaluate.ensure_pool)


halves = evaluate.halves   # 06 splits 02's pools: 02 counts what the selection half holds


CONTROL = ("base_right_rl_wrong", "both_right")


def sample_groups(P: Params, pool: pd.DataFrame) -> dict[str, dict[str, list[int]]]:
    """Per selection family: RL-right/base-wrong samples of the selection half (``target``), control samples of
    the selection half (``control``: base-right/RL-wrong and both-right, at most ``interventions.n_control`` of
    them), RL-right/base-wrong samples of the test half (``test``) and the whole test half (``test_all``)."""
    out = {}
    for fam, sets in evaluate.pool_contrasts(P, pool).items():
        select, test = halves(P, fam, pool[pool.family == fam]["sample"].unique())
        rw, ctrl = set(sets["rl_right_base_wrong"]), set().union(*(sets[c] for c in CONTROL))
        control = sorted(ctrl & select)
        if len(control) > P.interventions.n_control:      # a seeded subset bounds the encoding cost
            rng = np.random.default_rng([P.seed, 1, *fam.encode()])
            control = sorted(rng.choice(control, P.interventions.n_control, replace=False).tolist())
        out[fam] = {"target": sorted(rw & select), "control": control, "test": sorted(rw & test),
                    "test_all": sorted(test)}
    return out


# ------------------------------------------------------------------------------------------------ models
@dataclass
class Bundle:
    """One model with its nnsight wrapper, crosscoder slot and activation scale."""
    name: ModelId
    model: Any
    tok: Any
    lm: Any
    slot: int
    scale: float
    layers_path: str
    layer: int


class Setup:
    """The three-model crosscoder, its activation scales, and the base and RL models ready to edit."""

    def __init__(self, P: Params):
        self.P = P
        names = trio(P)
        self.cc = crosscoder.ensure_crosscoder(P, names)
        self.cc.eval()
        store = ActivationStore(crosscoder.ensure_activations(P, names))
        self.scales = store.scale_M.tolist()
        self.layer = store.layer
        self.names = names

    @cached_property
    def base(self) -> Bundle:
        return self.bundle(self.names[0])

    @cached_property
    def rl(self) -> Bundle:
        return self.bundle(self.names[2])

    def bundle(self, name: ModelId) -> Bundle:
        """Any of the crosscoder's models (by name), loaded and wrapped for editing at its slot."""
        path = RunDir(self.P).model(name)
        model, tok = loading.load_model(path, self.P.model.dtype), loading.load_tokenizer(path)
        slot = self.names.index(name)
        return Bundle(name, model, tok, activations.wrap(model, tok), slot, self.scales[slot],
                      activations.decoder_layers_path(model), self.layer)

    def edit(self, b: Bundle, latents, factor: float) -> latent_edits.Edit:
        I = self.P.interventions
        return latent_edits.Edit(self.cc, b.slot, b.scale, tuple(sorted(latents)), factor, I.encode,
                                  I.edit_positions)

    @cached_property
    def alive(self) -> list[int]:
        return torch.nonzero(self.cc.alive_L()).flatten().tolist()


# ------------------------------------------------------------------------------------------------ scores
def mean_latents(setup: Setup, b: Bundle, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """``([N, L], [N, L])``: each text's latents (model ``b``) averaged over its real tokens, and the share of
    those tokens on which each latent fires."""
    rows, fires = [], []
    for t in texts:
        enc = b.tok(t, return_tensors="pt")
        keep = activations.keep_mask_BT(enc["input_ids"], enc["attention_mask"], b.tok)[0]
        dev = b.model.device
        h = activations.resid_nnsight(b.lm, b.layers_path, b.layer, enc["input_ids"].to(dev),
                                      enc["attention_mask"].to(dev))[0].float().cpu()
        with torch.no_grad():
            f = latent_edits.latents_of(setup.cc, h[keep] * b.scale, b.slot, setup.P.interventions.encode)
        rows.append(f.mean(0))
        fires.append((f > 0).float().mean(0))
    if not rows:
        empty = torch.zeros(0, setup.cc.cfg.n_latents)
        return empty, empty
    return torch.stack(rows), torch.stack(fires)


def differences(P: Params, setup: Setup, pool: pd.DataFrame, fam: str, ids: list[int]):
    """``(d_NL, firing_NL)``: per sample f^RL − f^base (position-averaged) and both models' firing shares."""
    texts = score_texts(P, pool, fam, ids)
    (rl, fire_rl), (base, fire_base) = mean_latents(setup, setup.rl, texts), mean_latents(setup, setup.base, texts)
    return rl - base, (fire_rl + fire_base) / 2


def score_texts(P: Params, pool: pd.DataFrame, fam: str, ids: list[int]) -> list[str]:
    g = pool[(pool.family == fam) & (pool.method == P.crosscoder.rl_method)].set_index("sample")
    if P.interventions.score_positions == "prompt":
        return g.loc[ids, "prompt"].tolist()
    return (g.loc[ids, "prompt"] + g.loc[ids, "completion"]).tolist()


@dataclass(frozen=True)
class FeatureSelection:
    """Study A §A4's result. Per selection family: its sample groups (:func:`sample_groups`; selection on
    ``target`` vs ``control``, edits tested on ``test``), the score of every latent (the contrast, or the paper's
    Score_k), its permutation p-value (contrast selection) and the latents kept; the task-agnostic set (with
    ``combine: pooled``, the latents the stratified test over all families keeps, and those p-values in
    ``pooled_pvalues``); each latent's firing share on the scored samples; how many latents were alive; the
    selection rule and the combination used."""
    groups: dict[str, dict[str, list[int]]]
    scores: dict[str, list[float]]
    pvalues: dict[str, list[float]]
    sets: dict[str, list[int]]
    selected: list[int]
    firing: list[float]
    n_alive: int
    rule: str
    combine: str = "intersection"
    pooled_pvalues: list[float] = field(default_factory=list)

    @property
    def right_wrong(self) -> dict[str, list[int]]:
        """Per family, the RL-right/base-wrong samples of the test half (where edits are evaluated)."""
        return {f: g["test"] for f, g in self.groups.items()}

    @classmethod
    def from_json(cls, d: dict) -> FeatureSelection:
        """Read back a saved selection (files written before ``combine`` was recorded hold an intersection)."""
        return cls(**{k: d[k] for k in ("groups", "scores", "pvalues", "sets", "selected", "firing", "n_alive",
                                        "rule")}, combine=d.get("combine", "intersection"),
                   pooled_pvalues=d.get("pooled_pvalues", []))


def family_selection(P: Params, d_target_NL: torch.Tensor, d_control_KL: torch.Tensor, alive_L: torch.Tensor,
                     seed: int) -> tuple[torch.Tensor, torch.Tensor | None, set[int]]:
    """One family's (scores, p-values or None, kept latents) under ``interventions.selection``."""
    I = P.interventions
    if I.selection == "paper":
        score = d_target_NL.mean(0)                                  # Score_k: the mean of f^RL − f^base
        return score, None, latent_edits.family_set(torch.where(alive_L, score, 0.0), I.fraction)
    score = latent_edits.contrast_L(d_target_NL, d_control_KL)
    p = latent_edits.permutation_pvalues_L(d_target_NL, d_control_KL, I.n_perm, seed)
    keep = latent_edits.bh_mask(p, I.fdr, alive_L) & (score > 0)
    return score, p, set(torch.nonzero(keep).flatten().tolist())


def ensure_selection(P: Params, setup: Setup, pool: pd.DataFrame) -> FeatureSelection:
    """Scores, per-family sets and the task-agnostic set, on the selection half (cached JSON; a fresh result is
    read back from its file, so a first run and a re-run see the families in the same order)."""
    path = study_dir(P) / "selection.json"
    if path.is_file():
        return FeatureSelection.from_json(read_json(path))
    I, groups = P.interventions, sample_groups(P, pool)
    alive_L = setup.cc.alive_L()
    scores, pvalues, sets, fire_sum, n_fire = {}, {}, {}, torch.zeros(setup.cc.cfg.n_latents), 0
    strata: list[latent_edits.Group] = []
    need_control = I.selection == "contrast"
    for i, (fam, g) in enumerate(progress(groups.items(), desc="scores")):
        if len(g["target"]) < I.min_samples or (need_control and len(g["control"]) < I.min_samples):
            continue
        d_t, fire_t = differences(P, setup, pool, fam, g["target"])
        d_c, fire_c = differences(P, setup, pool, fam, g["control"]) if need_control else (d_t[:0], fire_t[:0])
        score, p, kept = family_selection(P, d_t, d_c, alive_L, P.seed + i)
        scores[fam], sets[fam] = score.tolist(), sorted(kept)
        if p is not None:
            pvalues[fam] = p.tolist()
        fire_sum += torch.cat([fire_t, fire_c]).sum(0)
        n_fire += len(fire_t) + len(fire_c)
        strata.append((d_t, d_c))
    pooled_p: list[float] = []
    if I.combine == "pooled":
        p_L, chosen = latent_edits.pooled_selection(strata, I.n_perm, I.fdr, alive_L, P.seed)
        pooled_p = p_L.tolist() if strata else []
    else:
        chosen = latent_edits.task_agnostic({f: set(v) for f, v in sets.items()}, I.combine)
    sel = {"groups": groups, "scores": scores, "pvalues": pvalues, "sets": sets, "selected": sorted(chosen),
           "firing": (fire_sum / max(n_fire, 1)).tolist(), "n_alive": len(setup.alive), "rule": I.selection,
           "combine": I.combine, "pooled_pvalues": pooled_p}
    write_json(path, {**sel, "provenance": provenance()})
    return FeatureSelection.from_json(read_json(path))


# ------------------------------------------------------------------------------------------------ conditions
@dataclass(frozen=True)
class EvalSet:
    name: str          # e.g. "rw:cmp", "all:cmp"
    family: str
    role: str
    prompts: tuple[str, ...]
    answers: tuple[str, ...]
    samples: tuple[int, ...]


def eval_sets(P: Params, pool: pd.DataFrame, sel: FeatureSelection, which: str = "all") -> list[EvalSet]:
    """RL-right/base-wrong samples of the test half (``rw:``), and with ``which="all"`` the first ``n_eval``
    prompts of every family (``all:``): of the test half for selection families, of the family otherwise."""
    fams, n = pool_families(P), P.interventions.n_eval
    rl = pool[pool.method == P.crosscoder.rl_method].set_index(["family", "sample"])
    out = []
    for fam, ids in sel.right_wrong.items():
        if ids:
            ex = fams[fam].examples
            out.append(EvalSet(f"rw:{fam}", fam, "rw", tuple(str(rl.loc[(fam, i), "prompt"]) for i in ids),
                               tuple(ex[i].answer for i in ids), tuple(ids)))
    if which == "all":
        keep = set(selection_families(P))
        for fam, f in fams.items():
            if fam in keep or f.role != "ood_select":
                ids = sel.groups[fam]["test_all"][:n] if fam in sel.groups else list(range(min(n, len(f.examples))))
                ex = [f.examples[i] for i in ids]
                out.append(EvalSet(f"all:{fam}", fam, f.role, tuple(e.prompt for e in ex),
                                   tuple(e.answer for e in ex), tuple(ids)))
    return out


def run_condition(P: Params, setup: Setup, b: Bundle, edit, sets: list[EvalSet], name: str) -> pd.DataFrame:
    """Per-sample correctness of model ``b`` under ``edit`` on every set (cached Parquet, keyed)."""

    path, k = study_dir(P) / "conditions" / f"{name}.parquet", key(P)
    df = read_parquet(path, k)
    if df is not None:
        return df
    fams, rows = pool_families(P), []
    gen = lambda prompts, n: latent_edits.generate(b.lm, b.tok, prompts, n, edit, b.layers_path, b.layer,
                                                   P.eval.batch_size)
    forward = latent_edits.edited_forward(b.lm, edit, b.layers_path, b.layer)
    for s in sets:
        got = scoring.answers(fams[s.family], list(s.samples), gen, forward, b.tok, P.eval.max_new_tokens,
                              P.eval.batch_size, b.model.device)
        rows += [{"condition": name, "model": b.name, "set": s.name, "family": s.family, "role": s.role,
                  "sample": i, "completion": a.completion, "correct": a.correct, "scoring": a.scoring}
                 for i, a in zip(s.samples, got)]
    df = pd.DataFrame(rows, columns=["condition", "model", "set", "family", "role", "sample", "completion",
                                     "correct", "scoring"])
    write_parquet(df, path, k)
    return df


def ensure_conditions(P: Params, setup: Setup, pool: pd.DataFrame, sel: FeatureSelection) -> pd.DataFrame:
    """Every condition's per-sample results, one long table."""

    I, chosen = P.interventions, sel.selected
    full, control = eval_sets(P, pool, sel, "all"), _control_sets(P, pool, sel)
    jobs = [("plain-base", setup.base, None, full), ("plain-rl", setup.rl, None, full),
            ("identity-base", setup.base, setup.edit(setup.base, chosen, 1.0), full),
            ("identity-rl", setup.rl, setup.edit(setup.rl, chosen, 1.0), full)]
    if not chosen:      # every edit of an empty set is the identity: nothing more to run
        return pd.concat([run_condition(P, setup, b, e, sets, name) for name, b, e, sets in
                          progress(jobs, desc="conditions")], ignore_index=True)
    jobs += [("disable", setup.rl, setup.edit(setup.rl, chosen, 0.0), full),
             ("amplify", setup.base, setup.edit(setup.base, chosen, I.amplify), full)]
    rw = [s for s in full if s.role == "rw"]
    for i, latents in enumerate(random_sets(P, setup, sel)):
        jobs += [(f"random{i}-disable", setup.rl, setup.edit(setup.rl, latents, 0.0), rw),
                 (f"random{i}-amplify", setup.base, setup.edit(setup.base, latents, I.amplify), rw)]
    for d in I.dose:
        jobs += [(f"dose{d:g}-base", setup.base, setup.edit(setup.base, chosen, d), control),
                 (f"dose{d:g}-rl", setup.rl, setup.edit(setup.rl, chosen, d), control)]
    parts = [run_condition(P, setup, b, e, sets, name) for name, b, e, sets in progress(jobs, desc="conditions")]
    return pd.concat(parts, ignore_index=True)


def random_sets(P: Params, setup: Setup, sel: FeatureSelection) -> list[list[int]]:
    """The ``n_random`` control sets: alive latents outside the selected set, matched to it in firing frequency."""
    return latent_edits.frequency_matched_sets(torch.tensor(sel.firing), sel.selected, setup.alive,
                                               P.interventions.n_random, P.seed)


def _control_sets(P: Params, pool: pd.DataFrame, sel) -> list[EvalSet]:
    """Controls and dose-response: RL-right/base-wrong subsets, whole selection families and in-domain."""
    keep = {"rw", "ood_select", "in_domain"}
    return [s for s in eval_sets(P, pool, sel, "all") if s.role in keep]


# ------------------------------------------------------------------------------------------------ tables
def identity_check(results: pd.DataFrame) -> pd.DataFrame:
    """Per model: how many identity-routed generations equal the plain ones, token for token."""

    rows = []
    for model_key in ("base", "rl"):
        a = results[results.condition == f"plain-{model_key}"].set_index(["set", "sample"]).completion
        b = results[results.condition == f"identity-{model_key}"].set_index(["set", "sample"]).completion
        rows.append({"model": model_key, "generations": len(a), "identical": int((a == b.loc[a.index]).sum())})
    return pd.DataFrame(rows)


def _delta(results: pd.DataFrame, cond: str, ref: str, set_name: str, n_boot: int, seed: int):
    e = results[(results.condition == cond) & (results.set == set_name)].set_index("sample").correct
    r = results[(results.condition == ref) & (results.set == set_name)].set_index("sample").correct
    if e.empty:
        return None
    return stats.paired_diff_ci(e.astype(float).to_numpy(), r.loc[e.index].astype(float).to_numpy(), n_boot,
                                seed=seed), float(r.mean()), len(e)


def effect_table(P: Params, results: pd.DataFrame) -> pd.DataFrame:
    """The paper's intervention table: accuracy change (points, 95 % paired bootstrap) per evaluation set."""

    rows = []
    if "disable" not in set(results.condition):          # nothing selected: no edit was run
        return pd.DataFrame(columns=["set", "n"]).set_index("set")
    for set_name in results[results.condition == "disable"].set.unique():
        row = {"set": set_name}
        for cond, ref, label in (("disable", "plain-rl", "disable in RL"), ("amplify", "plain-base", "amplify in base")):
            d = _delta(results, cond, ref, set_name, P.interventions.n_boot, P.seed)
            if d:
                ci, before, n = d
                row.update({"n": n, f"{label}: before": round(100 * before, 1),
                            f"{label}: Δ points": f"{100 * ci.mean:+.1f} [{100 * ci.lo:+.1f}, {100 * ci.hi:+.1f}]"})
        rows.append(row)
    return pd.DataFrame(rows).set_index("set")


def correct_wide(results: pd.DataFrame):
    """``[(set, sample), condition]`` 0/1 correctness: every condition side by side on the same samples."""
    return results.pivot_table(index=["set", "sample"], columns="condition", values="correct", aggfunc="first")


def pooled_effect(wide: pd.DataFrame, cond: str, ref: str, sets: list[str]) -> float:
    """Mean accuracy change of ``cond`` against ``ref`` over the samples of ``sets`` (pooled)."""
    rows = wide[wide.index.get_level_values("set").isin(sets)]
    if cond not in rows or rows.empty:
        return float("nan")
    both = rows[[cond, ref]].dropna().astype(float)
    return float((both[cond] - both[ref]).mean()) if len(both) else float("nan")


def random_control(P: Params, results: pd.DataFrame) -> pd.DataFrame:
    """Selected set vs the random sets: pooled effects on the test half's RL-right/base-wrong samples, with the
    selected set's empirical p-value (one-sided, in the expected direction; smallest 1/(n_random+1))."""

    columns = ["intervention", "scope", "selected set", "random mean", "random min", "random max", "p (one-sided)",
               "random"]
    if "disable" not in set(results.condition):          # nothing selected: no edit was run
        return pd.DataFrame(columns=columns)
    wide = correct_wide(results)
    all_sets = wide.index.get_level_values("set").unique()
    scopes = (("RL-right/base-wrong", [s for s in all_sets if s.startswith("rw:")]),)
    rows = []
    for kind, ref, sign in (("disable", "plain-rl", -1), ("amplify", "plain-base", 1)):
        for scope, sets in scopes:
            chosen = pooled_effect(wide, kind, ref, sets)
            rand = np.array([pooled_effect(wide, f"random{i}-{kind}", ref, sets)
                             for i in range(P.interventions.n_random)])
            p = (1 + int((sign * rand >= sign * chosen).sum())) / (len(rand) + 1)
            ok = rand[np.isfinite(rand)]
            stat = (lambda f, ok=ok: float(f(ok)) if ok.size else float("nan"))
            rows.append({"intervention": kind, "scope": scope, "selected set": chosen,
                         "random mean": stat(np.mean), "random min": stat(np.min), "random max": stat(np.max),
                         "p (one-sided)": p if np.isfinite(chosen) and ok.size else float("nan"),
                         "random": rand.tolist()})
    return pd.DataFrame(rows)


def dose_response(P: Params, results: pd.DataFrame) -> pd.DataFrame:
    """Pooled accuracy per dose factor and model, on RL-right/base-wrong samples, selection families, in-domain."""

    indom = f"all:{suite.world(P).in_domain_family}"
    sel_sets = [f"all:{f}" for f in selection_families(P)]
    rows = []
    if not results.condition.str.startswith("dose").any():   # nothing selected: no edit was run
        return pd.DataFrame(columns=["factor", "model", "scope", "accuracy", "lo", "hi", "n"])
    for d in P.interventions.dose:
        for model_key in ("base", "rl"):
            r = results[results.condition == f"dose{d:g}-{model_key}"]
            for scope, mask in (("RL-right/base-wrong", r.set.str.startswith("rw:")), ("selection families",
                                r.set.isin(sel_sets)), ("in-domain", r.set == indom)):
                v = r[mask].correct.astype(float)
                ci = stats.bootstrap_ci(v.to_numpy(), P.interventions.n_boot, seed=P.seed)
                rows.append({"factor": d, "model": model_key, "scope": scope, "accuracy": ci.mean, "lo": ci.lo,
                             "hi": ci.hi, "n": len(v)})
    return pd.DataFrame(rows)
