"""What notebook 06's selection and edits say about the paper's generalization latents — compact, task-agnostic,
causal — as tables, typed findings and verdicts, computed from the selection and the random-set control of
:mod:`rlgen_utils.studies.interventions` (never written by hand)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..method import latent_edits
from ..run.config import Params
from .findings import Finding, Findings
from .interventions import FeatureSelection
from .verdicts import Verdict, ablation_file, decide, selection_demonstrated


def set_table(sel: FeatureSelection) -> pd.DataFrame:
    """Per family: the selection half's target and control counts, the test half's RL-right/base-wrong count,
    the set size and the best score and p-value."""
    rows = [{"family": f, "select: RL-right/base-wrong": len(g["target"]), "select: control": len(g["control"]),
             "test: RL-right/base-wrong": len(g["test"]),
             "set size": len(sel.sets[f]) if f in sel.sets else None,
             "max score": max(sel.scores[f]) if f in sel.scores else None,
             "min p": min(sel.pvalues[f]) if f in sel.pvalues else None}
            for f, g in sel.groups.items()]
    columns = ["family", "select: RL-right/base-wrong", "select: control", "test: RL-right/base-wrong", "set size",
               "max score", "min p"]
    return pd.DataFrame(rows, columns=columns).set_index("family")


def family_overlap(sel: FeatureSelection) -> tuple[np.ndarray, list[str]]:
    """``[F, F]`` overlap of the families' latent sets, and the family names."""
    return latent_edits.overlap_matrix({f: set(v) for f, v in sel.sets.items()}), list(sel.sets)


def mean_overlap(sel: FeatureSelection) -> float:
    """Mean off-diagonal overlap of the per-family sets (NaN with fewer than two non-empty sets)."""
    m, _ = family_overlap(sel)
    off = m[~np.eye(len(m), dtype=bool)] if len(m) > 1 else np.array([])
    off = off[np.isfinite(off)]
    return float(off.mean()) if off.size else float("nan")


def power(P: Params, sel: FeatureSelection) -> float:
    """Simulated probability that this selection (its rule, combination and the selection half's counts per
    family) keeps one latent of standardized effect ``interventions.power_effect`` among the alive latents
    (:func:`rlgen_utils.method.latent_edits.selection_power`); NaN for the paper's rule, which has no test."""
    I = P.interventions
    if sel.rule == "paper":
        return float("nan")
    counts = [(len(sel.groups[f]["target"]), len(sel.groups[f]["control"])) for f in sel.sets]   # scored families
    return latent_edits.selection_power(counts, I.power_effect, sel.n_alive, I.fdr, I.n_perm, sel.combine,
                                        seed=P.seed)


def testable(P: Params, sel: FeatureSelection) -> bool:
    """Whether "no set found" would be evidence: some family was scored and, for a tested rule, the simulated
    power reaches ``interventions.min_power``."""
    return bool(sel.sets) and (sel.rule == "paper" or power(P, sel) >= P.interventions.min_power)


def selection_power(P: Params, sel: FeatureSelection) -> str:
    """What the selection could detect: the test, whether one latent can pass the BH cut, and the simulated power
    for the stated effect from the selection half's counts."""
    I, m = P.interventions, sel.n_alive
    if sel.rule == "paper":
        return (f"paper rule (Score_k > {I.fraction:g} × the family's maximum on the selection half; no null: every "
                f"family with a positive maximum keeps latents)")
    reach = latent_edits.bh_reachable(I.n_perm, I.fdr, m)
    test = ("stratified permutation test pooled over the families (labels permuted within each), positive "
            "contrast in every family" if sel.combine == "pooled" else f"permutation test per family, {sel.combine} "
            "of the families' sets")
    pw = power(P, sel)
    return (f"contrast rule: {test} ({I.n_perm} label permutations, smallest p {1 / (I.n_perm + 1):.1g}) "
            f"with Benjamini–Hochberg at FDR {I.fdr:g} over {m} alive latents (one latent alone needs p ≤ "
            f"{I.fdr / max(m, 1):.1g}: {'reachable' if reach else '**not reachable**: raise interventions.n_perm'}); "
            f"simulated power for one latent of effect {I.power_effect:g} SD: {pw:.2f} (needs ≥ {I.min_power:g})")


def _share(x: float) -> str:
    return f"{x:.0%}" if np.isfinite(x) else "n/a (fewer than two non-empty sets)"


def causal_rows(P: Params, control: pd.DataFrame) -> list[bool]:
    """Per row of the random-set control: did the edit move accuracy the claimed way (disable lowers, amplify
    raises) at p ≤ ``interventions.alpha`` against the random sets?"""
    return [bool(r["p (one-sided)"] <= P.interventions.alpha
                 and (r["selected set"] < 0 if r["intervention"] == "disable" else r["selected set"] > 0))
            for r in control.to_dict("records")]


def findings(P: Params, sel: FeatureSelection, control: pd.DataFrame, identity: pd.DataFrame) -> Findings:
    """Whether the organism shows a compact, task-agnostic, causal latent set, with the controls."""
    I, n, fams, alive = P.interventions, len(sel.selected), list(sel.sets), sel.n_alive
    ok = all(identity.identical == identity.generations)
    sizes = ", ".join(f"{f} {len(g['target'])}/{len(g['control'])}" for f, g in sel.groups.items())
    items = [Finding("Identity check (routed through the crosscoder, nothing changed): "
                     + ", ".join(f"{r.model} {r.identical}/{r.generations}" for r in identity.itertuples())
                     + (" generations identical." if ok else " — **not exact**: the edit path changes generations."),
                     {"identity_exact": bool(ok)}),
             Finding(f"Selection ({selection_power(P, sel)}) on the selection half; RL-right/base-wrong / control "
                     f"samples per family: {sizes or 'none'}.",
                     {f"targets_{f}": len(g["target"]) for f, g in sel.groups.items() if f.isidentifier()}),
             Finding(f"Families with ≥ {I.min_samples} samples in each group: {len(fams)} ({', '.join(fams) or 'none'}); "
                     f"kept per family: {', '.join(f'{f} {len(v)}' for f, v in sel.sets.items()) or 'none'}; "
                     f"{I.combine} of their sets: **{n} latents** of {alive} alive; mean pairwise overlap of the "
                     f"families' sets {_share(mean_overlap(sel))} (the paper: > 80 %).",
                     {"families": len(fams), "selected": n, "alive": alive, "mean_overlap": mean_overlap(sel)})]
    if n == 0:
        why = ("no family had enough samples in both groups: not testable at this pool size" if not fams else
               ("none passed" + (" the pooled test with a positive contrast in every family" if
                                 sel.combine == "pooled" else f" the {sel.combine} of the families' tests"))
               + (f" — and with power {power(P, sel):.2f} < {I.min_power:g} that is not evidence of absence"
                  if not testable(P, sel) else f" at power {power(P, sel):.2f}"))
        items.append(Finding(f"**Verdict ({P.name}):** no task-agnostic latent set — {why}; nothing to intervene on.",
                             {"compact": False, "task_agnostic": False, "causal": False}, style="paragraph"))
        return Findings("06_interventions", "latent_set", tuple(items))
    causal = causal_rows(P, control)
    for r in control.to_dict("records"):
        items.append(Finding(f"{r['intervention']} on the test half's {r['scope']} samples: selected set "
                             f"{100 * r['selected set']:+.1f} points; {I.n_random} frequency-matched random sets "
                             f"{100 * r['random min']:+.1f} to {100 * r['random max']:+.1f} (mean "
                             f"{100 * r['random mean']:+.1f}); p = {r['p (one-sided)']:.3f}.",
                             {"intervention": r["intervention"], "scope": r["scope"],
                              "selected_set": float(r["selected set"]), "p": float(r["p (one-sided)"])}))
    compact = n <= 0.1 * alive
    shared = task_agnostic(sel)
    is_causal = bool(causal) and all(causal)
    items.append(Finding(
        f"**Verdict ({P.name}):** compact {'yes' if compact else 'no'} ({n}/{alive} alive latents); task-agnostic "
        f"{'yes' if shared else 'no'} ({_agnostic_reason(sel)}); causal beyond random sets "
        f"{'yes' if is_causal else 'no'} (disabling must lower and amplifying raise the test half's "
        f"RL-right/base-wrong accuracy, each at p ≤ {I.alpha:g} against {I.n_random} random sets of the same size "
        f"and firing frequency).",
        {"compact": bool(compact), "task_agnostic": bool(shared), "causal": is_causal}, style="paragraph"))
    return Findings("06_interventions", "latent_set", tuple(items))


def task_agnostic(sel: FeatureSelection) -> bool:
    """Whether the selected set is task-agnostic: by construction under the pooled rule (every family's contrast
    positive for every kept latent), else the families' sets overlap > 80 % (the paper's reading)."""
    if sel.combine == "pooled":
        return bool(sel.selected)
    o = mean_overlap(sel)
    return bool(np.isfinite(o) and o > 0.8)


def _agnostic_reason(sel: FeatureSelection) -> str:
    if sel.combine == "pooled":
        return (f"pooled test, each kept latent's contrast positive in all {len(sel.sets)} families; their own "
                f"sets overlap {_share(mean_overlap(sel))}")
    return f"family sets overlap {_share(mean_overlap(sel))}"


def verdicts(P: Params, sel: FeatureSelection, control: pd.DataFrame,
             known: tuple[bool, bool, bool, str] | None = None) -> list[Verdict]:
    """The paper's generalization-latent claims: a compact, task-agnostic set is selected (against the contrast's
    permutation null with BH), and editing it moves the test half's RL-right/base-wrong accuracy beyond
    frequency-matched random sets. Absence needs demonstrated power: "no set" is "not reproduced" only where the
    selection's simulated power for a latent of ``interventions.power_effect`` reaches ``interventions.min_power``
    (:func:`testable`) *and* the same rule found the carrier of a fine-tune whose cause is known — it kept latents
    whose zeroing lowered that behaviour beyond random sets (keeping some that do nothing is not finding it); "the
    edit moves nothing" likewise only where that ablation worked. A causal find needs a
    clean instrument: no control fine-tune had its caused share lowered. ``known`` is
    :func:`rlgen_utils.studies.verdicts.selection_demonstrated` (default: of this model's validation file)."""
    _, lowered, clean, known_text = known or selection_demonstrated(ablation_file(P), sel.rule)
    I, n, fams, alive = P.interventions, len(sel.selected), list(sel.sets), sel.n_alive
    power_text = selection_power(P, sel)
    overlap_ = mean_overlap(sel)
    sizes = ", ".join(f"{f} {len(g['target'])}/{len(g['control'])}" for f, g in sel.groups.items()) or "none"
    found = n > 0 and n <= 0.1 * alive and task_agnostic(sel)
    test_name = ("stratified label-permutation test of the contrast pooled over families (RL-right/base-wrong vs "
                 "controls), positive in every family" if sel.combine == "pooled" else
                 "label-permutation test of the contrast (RL-right/base-wrong vs controls)")
    out = [Verdict(
        claim="a compact (≤ 10 % of alive latents), task-agnostic ("
              + ("its contrast positive in every family, tested pooled" if sel.combine == "pooled" else
                 "family sets overlap > 80 %") + ") latent set carries RL's out-of-domain gains",
        notebook="06_interventions", estimate=float(n), interval=None,
        null=(f"{test_name}, BH-FDR {I.fdr:g}" if sel.rule != "paper" else "none (paper rule)"),
        decision=decide(found, False, found or (testable(P, sel) and lowered)),   # power matters for absence only
        limit=f"{power_text}; selection-half RL-right/base-wrong / control samples per family: {sizes}; {known_text}",
        detail=f"{n} latents of {alive} alive from {len(fams)} families; family-set overlap {_share(overlap_)}")]
    causal = causal_rows(P, control) if n else []
    effect = bool(causal) and all(causal)
    rand_p = [f"{r['intervention']} {100 * r['selected set']:+.1f} points, p = {r['p (one-sided)']:.3f}"
              for r in (control.to_dict("records") if n else [])]
    out.append(Verdict(
        claim="disabling the set in RL lowers, amplifying it in the base raises, RL-right/base-wrong accuracy",
        notebook="06_interventions", estimate=float(sum(causal)), interval=None,
        null=f"{I.n_random} random latent sets of the same size and firing frequency (smallest p {1 / (I.n_random + 1):.2g})",
        decision=decide(effect, False, bool(causal) and (clean if effect else lowered)),
        limit=("no set was selected, so nothing was edited" if not n else f"test-half samples, α = {I.alpha:g}")
        + f"; {known_text}",
        detail="; ".join(rand_p) or "no edit ran"))
    return out
