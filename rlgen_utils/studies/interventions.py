"""Stages of notebook 06: generalization features (§A4) and interventions with controls (§A5).

Run-folder layout::

    interventions/<key>/pool/<model>.parquet        base and RL greedy answers on the selection pool
    interventions/<key>/selection.json               scores, per-family sets, the task-agnostic set
    interventions/<key>/conditions/<name>.parquet    per-sample correctness of one (model, edit) condition

Each file is written atomically with the key in its metadata, so a re-run loads what is finished and computes only
what is missing (a killed run resumes at the next condition).

**Samples.** For each selection family, base and RL answer ``pool_per_family`` test prompts (the evaluation's
greedy decoding); the RL-right/base-wrong samples are where Score_k is measured and where the interventions are
first evaluated. Whole-family, held-out and in-domain evaluation use the first ``n_eval`` prompts of each family.

**Conditions.** ``plain`` (no edit), ``identity`` (routed through the crosscoder, nothing changed), ``disable``
(selected latents × 0 in RL), ``amplify`` (× ``amplify`` in the base), the same two with ``n_random`` random sets
of the same size drawn from alive latents outside the selected set, and the dose-response over ``dose`` factors.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch

from ..method import activations, latent_edits, stats
from ..method.activations import ActivationStore
from ..models import loading
from ..run.artifacts import provenance, read_json, read_parquet, write_json, write_parquet
from ..run.config import Params
from ..run.keys import stage_key
from ..run.progress import progress
from ..run.rundir import RunDir
from ..world import suite
from . import crosscoder, evaluate

if TYPE_CHECKING:
    from ..run.types import Tokenizer


def key(P: Params) -> str:
    return stage_key(P, "interventions")


def study_dir(P: Params) -> Path:
    """``interventions/<key>/`` of this run."""
    return RunDir(P).interventions(key(P))


def trio(P: Params) -> tuple[str, str, str]:
    return ("base", P.crosscoder.sft_method, P.crosscoder.rl_method)


# ------------------------------------------------------------------------------------------------ families
# The selection pools are notebook 02's (base and RL on ``interventions.pool_per_family`` test prompts per family).
selection_families, pool_families, ensure_pool = (evaluate.selection_families, evaluate.pool_families,
                                                  evaluate.ensure_pool)


def right_wrong(P: Params, pool: pd.DataFrame) -> dict[str, list[int]]:
    """Per selection family, the pool samples RL answers correctly and the base does not."""
    return {fam: sets["rl_right_base_wrong"] for fam, sets in evaluate.pool_contrasts(P, pool).items()}


# ------------------------------------------------------------------------------------------------ models
@dataclass
class Bundle:
    """One model with its nnsight wrapper, crosscoder slot and activation scale."""
    name: str
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
        return self._bundle("base")

    @cached_property
    def rl(self) -> Bundle:
        return self._bundle(self.P.crosscoder.rl_method)

    def _bundle(self, name: str) -> Bundle:
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
        return torch.nonzero(crosscoder.alive(self.cc)).flatten().tolist()


# ------------------------------------------------------------------------------------------------ scores
def mean_latents(setup: Setup, b: Bundle, texts: list[str]) -> torch.Tensor:
    """``[N, L]``: each text's latents (model ``b``) averaged over its real tokens."""
    rows = []
    for t in texts:
        enc = b.tok(t, return_tensors="pt")
        keep = activations.keep_mask_BT(enc["input_ids"], enc["attention_mask"], b.tok)[0]
        h = activations.resid_nnsight(b.lm, b.layers_path, b.layer, enc["input_ids"], enc["attention_mask"])[0]
        with torch.no_grad():
            f = latent_edits.latents_of(setup.cc, h[keep].float() * b.scale, b.slot, setup.P.interventions.encode)
        rows.append(f.mean(0))
    return torch.stack(rows) if rows else torch.zeros(0, setup.cc.cfg.n_latents)


def score_texts(P: Params, pool: pd.DataFrame, fam: str, ids: list[int]) -> list[str]:
    g = pool[(pool.family == fam) & (pool.method == P.crosscoder.rl_method)].set_index("sample")
    if P.interventions.score_positions == "prompt":
        return g.loc[ids, "prompt"].tolist()
    return (g.loc[ids, "prompt"] + g.loc[ids, "completion"]).tolist()


@dataclass(frozen=True)
class FeatureSelection:
    """Study A §A4's result: per selection family its RL-right/base-wrong samples, Score_k of every latent (families
    with enough samples) and the latents kept; the task-agnostic set; how many latents were alive."""
    right_wrong: dict[str, list[int]]
    scores: dict[str, list[float]]
    sets: dict[str, list[int]]
    selected: list[int]
    n_alive: int

    @classmethod
    def from_json(cls, d: dict) -> FeatureSelection:
        return cls(right_wrong=d["right_wrong"], scores=d["scores"], sets=d["sets"], selected=d["selected"],
                   n_alive=d["n_alive"])


def ensure_selection(P: Params, setup: Setup, pool: pd.DataFrame) -> FeatureSelection:
    """Score_k per family, the per-family sets and the task-agnostic set (cached JSON; a fresh result is read back
    from its file, so a first run and a re-run see the families in the same order)."""
    path = study_dir(P) / "selection.json"
    if path.is_file():
        return FeatureSelection.from_json(read_json(path))
    I, rw = P.interventions, right_wrong(P, pool)
    scores = {}
    for fam, ids in progress(rw.items(), desc="scores"):
        if len(ids) >= I.min_samples:
            texts = score_texts(P, pool, fam, ids)
            scores[fam] = latent_edits.score_L(mean_latents(setup, setup.rl, texts),
                                                mean_latents(setup, setup.base, texts))
    sets, common = latent_edits.select_sets(scores, I.fraction)
    chosen = common if I.combine == "intersection" else set().union(*sets.values())
    sel = {"right_wrong": rw, "scores": {f: s.tolist() for f, s in scores.items()},
           "sets": {f: sorted(s) for f, s in sets.items()}, "selected": sorted(chosen),
           "n_alive": len(setup.alive)}
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
    """RL-right/base-wrong subsets (``rw:``), and with ``which="all"`` the first ``n_eval`` prompts of every
    selection, held-out and in-domain family (``all:``)."""
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
                ex = f.examples[:n]
                out.append(EvalSet(f"all:{fam}", fam, f.role, tuple(e.prompt for e in ex),
                                   tuple(e.answer for e in ex), tuple(range(len(ex)))))
    return out


def run_condition(P: Params, setup: Setup, b: Bundle, edit, sets: list[EvalSet], name: str) -> pd.DataFrame:
    """Per-sample correctness of model ``b`` under ``edit`` on every set (cached Parquet, keyed)."""

    path, k = study_dir(P) / "conditions" / f"{name}.parquet", key(P)
    df = read_parquet(path, k)
    if df is not None:
        return df
    fams, rows = pool_families(P), []
    for s in sets:
        fam = fams[s.family]
        comps = latent_edits.generate(b.lm, b.tok, list(s.prompts), _budget(P, fam, b.tok), edit, b.layers_path,
                                       b.layer, P.eval.batch_size)
        rows += [{"condition": name, "model": b.name, "set": s.name, "family": s.family, "role": s.role,
                  "sample": i, "completion": c, "correct": fam.verify(c, a)}
                 for i, c, a in zip(s.samples, comps, s.answers)]
    df = pd.DataFrame(rows)
    write_parquet(df, path, k)
    return df


_BUDGETS: dict[tuple[str, int], int] = {}


def _budget(P: Params, fam, tok: Tokenizer) -> int:
    """Generation budget of a family (longest gold answer + margin), computed once per family."""
    k = (fam.name, len(fam.examples))
    if k not in _BUDGETS:
        _BUDGETS[k] = fam.max_new_tokens(tok, P.eval.max_new_tokens)
    return _BUDGETS[k]


def ensure_conditions(P: Params, setup: Setup, pool: pd.DataFrame, sel: FeatureSelection) -> pd.DataFrame:
    """Every condition's per-sample results, one long table."""

    I, chosen = P.interventions, sel.selected
    full, control = eval_sets(P, pool, sel, "all"), _control_sets(P, pool, sel)
    jobs = [("plain-base", setup.base, None, full), ("plain-rl", setup.rl, None, full),
            ("identity-base", setup.base, setup.edit(setup.base, chosen, 1.0), full),
            ("identity-rl", setup.rl, setup.edit(setup.rl, chosen, 1.0), full),
            ("disable", setup.rl, setup.edit(setup.rl, chosen, 0.0), full),
            ("amplify", setup.base, setup.edit(setup.base, chosen, I.amplify), full)]
    for i, latents in enumerate(latent_edits.random_sets(setup.alive, len(chosen), I.n_random, P.seed, set(chosen))):
        jobs += [(f"random{i}-disable", setup.rl, setup.edit(setup.rl, latents, 0.0), control),
                 (f"random{i}-amplify", setup.base, setup.edit(setup.base, latents, I.amplify), control)]
    for d in I.dose:
        jobs += [(f"dose{d:g}-base", setup.base, setup.edit(setup.base, chosen, d), control),
                 (f"dose{d:g}-rl", setup.rl, setup.edit(setup.rl, chosen, d), control)]
    parts = [run_condition(P, setup, b, e, sets, name) for name, b, e, sets in progress(jobs, desc="conditions")]
    return pd.concat(parts, ignore_index=True)


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
    """Selected set vs the random sets: pooled effects on RL-right/base-wrong samples and whole selection
    families, with the selected set's empirical p-value (one-sided, in the expected direction)."""

    wide, fams = correct_wide(results), selection_families(P)
    all_sets = wide.index.get_level_values("set").unique()
    scopes = (("RL-right/base-wrong", [s for s in all_sets if s.startswith("rw:")]),
              ("selection families", [f"all:{f}" for f in fams]))
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

    indom = f"all:{suite.in_domain_family(P)}"
    sel_sets = [f"all:{f}" for f in selection_families(P)]
    rows = []
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


def set_table(sel: FeatureSelection) -> pd.DataFrame:

    rows = [{"family": f, "RL-right/base-wrong": len(sel.right_wrong[f]),
             "set size": len(sel.sets.get(f, [])) if f in sel.sets else None,
             "max Score": max(sel.scores[f]) if f in sel.scores else None}
            for f in sel.right_wrong]
    return pd.DataFrame(rows).set_index("family")


def family_overlap(sel: FeatureSelection) -> tuple[np.ndarray, list[str]]:
    """``[F, F]`` overlap of the families' latent sets, and the family names."""
    return latent_edits.overlap_matrix({f: set(v) for f, v in sel.sets.items()}), list(sel.sets)


def mean_overlap(sel: FeatureSelection) -> float:
    """Mean off-diagonal overlap of the per-family sets (NaN with fewer than two non-empty sets)."""
    m, _ = family_overlap(sel)
    off = m[~np.eye(len(m), dtype=bool)] if len(m) > 1 else np.array([])
    off = off[np.isfinite(off)]
    return float(off.mean()) if off.size else float("nan")


def findings(P: Params, sel: FeatureSelection, control: pd.DataFrame, identity: pd.DataFrame) -> str:
    """Whether the organism shows a compact, task-agnostic, causal latent set, with the controls."""
    n, fams, alive = len(sel.selected), list(sel.sets), sel.n_alive
    ok = all(identity.identical == identity.generations)
    lines = ["- Identity check (routed through the crosscoder, nothing changed): "
             + ", ".join(f"{r.model} {r.identical}/{r.generations}" for r in identity.itertuples())
             + (" generations identical." if ok else " — **not exact**: the edit path changes generations."),
             f"- Families with ≥ {P.interventions.min_samples} RL-right/base-wrong samples: {len(fams)} "
             f"({', '.join(fams) or 'none'}); {P.interventions.combine} of their sets: **{n} latents** of {alive} "
             f"alive; mean pairwise overlap of the families' sets {mean_overlap(sel):.0%} (the paper: > 80 %)."]
    if n == 0:
        lines.append("\n**Verdict:** no task-agnostic latent set under these parameters — nothing to intervene on.")
        return "\n".join(lines)
    causal = []
    for r in control.to_dict("records"):
        best = r["p (one-sided)"] <= 1 / (P.interventions.n_random + 1) + 1e-12
        right_way = r["selected set"] < 0 if r["intervention"] == "disable" else r["selected set"] > 0
        if r["scope"] == "RL-right/base-wrong":
            causal.append(best and right_way)
        lines.append(f"- {r['intervention']} on {r['scope']}: selected set {100 * r['selected set']:+.1f} points; "
                     f"{P.interventions.n_random} random sets {100 * r['random min']:+.1f} to "
                     f"{100 * r['random max']:+.1f} (mean {100 * r['random mean']:+.1f}); p = {r['p (one-sided)']:.2f}.")
    compact = n <= 0.1 * alive
    shared = mean_overlap(sel) > 0.8
    lines.append(f"\n**Verdict ({P.name}):** compact {'yes' if compact else 'no'} ({n}/{alive} alive latents); "
                 f"task-agnostic {'yes' if shared else 'no'} (family sets overlap {mean_overlap(sel):.0%}); "
                 f"causal beyond random sets of the same size {'yes' if causal and all(causal) else 'no'} "
                 f"(disabling must lower and amplifying raise RL-right/base-wrong accuracy more than every random set).")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------ explorer
def explorer_sets(P: Params, setup: Setup, sel: FeatureSelection) -> dict[str, list[int]]:
    """Latent sets offered by the explorer: the selected set, each family's, and the first random control."""
    chosen = sel.selected
    out = {f"selected ({len(chosen)})": chosen}
    out.update({f"{f} ({len(s)})": s for f, s in sel.sets.items()})
    rand = latent_edits.random_sets(setup.alive, max(1, len(chosen)), 1, P.seed, set(chosen))[0]
    out[f"random ({len(rand)})"] = rand
    return out


def explorer_prompts(P: Params, pool: pd.DataFrame, sel: FeatureSelection, per_family: int = 5) -> dict[str, str]:
    """RL-right/base-wrong prompts first, then a few in-domain ones, labelled by family and sample."""
    rl = pool[pool.method == P.crosscoder.rl_method].set_index(["family", "sample"]).prompt
    out = {}
    for fam, ids in sel.right_wrong.items():
        for i in ids[:per_family]:
            out[f"{fam} #{i} (RL right, base wrong)"] = rl.loc[(fam, i)]
    indom = pool_families(P)[suite.in_domain_family(P)].examples[:per_family]
    out.update({f"{suite.in_domain_family(P)} #{i}": e.prompt for i, e in enumerate(indom)})
    return out
