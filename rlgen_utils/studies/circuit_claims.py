"""What notebook 05's edge metrics say about the paper's circuit claim — online RL raises edge intensity and
entropy, DPO does not — as typed findings, robustness and agreement tables, and typed verdicts, all computed from
:func:`rlgen_utils.studies.circuits.metric_table` (never written by hand)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..run.config import Params
from .findings import Finding, Findings, ident
from .verdicts import Verdict, decide, edges_demonstrated, edges_file

ONLINE_RL = ("grpo", "rloo", "sft_grpo")


SCALE_FREE = ("entropy (scale-free)", "kurtosis of |W| (scale-free)")
"""Metrics invariant to rescaling a model's scores (:mod:`rlgen_utils.method.circuit_metrics`): an entropy change
that vanishes here was a change of scale, not of shape."""


READINGS = (*SCALE_FREE, "intensity / loss")
"""The scale-free metrics and intensity per unit of self-entropy loss (a confidence-free reading of intensity)."""


OFFLINE = ("dpo", "sft_dpo")


def rises(p: pd.DataFrame, *metrics: str) -> bool:
    """Whether every one of ``metrics`` rose in one pair's rows (indexed by metric): interval above 0."""
    return all(m in p.index and bool(p.loc[m].delta_lo > 0) for m in metrics)


def findings(P: Params, table: pd.DataFrame, power: dict[str, tuple[bool, bool, str]] | None = None) -> Findings:
    """Does online RL raise intensity and entropy and lower kurtosis, and DPO not (the paper's claim)? The verdict
    sentence is :func:`verdicts`'s (``power`` as there)."""
    t = table[(table.alpha == P.circuits.main_alpha) & (table.score == P.circuits.scores[0])]
    if t.empty:
        return Findings("05_circuits", "edge_metrics",
                        (Finding("No pair had enough questions to compare (see the selection table).", style="line"),))
    items, pattern, shape, per_loss = [], {}, {}, {}
    for group, methods in (("online RL", ONLINE_RL), ("DPO", OFFLINE)):
        sub = t[t["model_after"].isin(methods)]
        for pair in sub.pair.unique():
            p = sub[sub.pair == pair].set_index("metric")
            shown = [m for m in ("intensity", "entropy", "kurtosis", *READINGS) if m in p.index]
            items.append(Finding(f"**{pair}** ({group}): " + ", ".join(f"{m} {_direction(p.loc[m])}" for m in shown) + ".",
                                 {"pair": str(pair), "group": group,
                                  **{f"delta_{ident(m)}": float(p.loc[m].delta) for m in shown}}))
            pattern[pair] = (group, rises(p, "intensity", "entropy"))
            shape[pair] = (group, rises(p, SCALE_FREE[0]))
            per_loss[pair] = (group, rises(p, "intensity / loss"))
    rl = [ok for g, ok in pattern.values() if g == "online RL"]
    dpo = [ok for g, ok in pattern.values() if g == "DPO"]
    if rl and dpo:
        v = verdicts(P, table, power)[0]
        items.append(Finding(
            f"**Verdict ({P.name}, α = {P.circuits.main_alpha}):** the paper's contrast — online RL raises intensity "
            f"and entropy, DPO does not — is **{v.decision}**: {sum(rl)}/{len(rl)} online-RL pairs and "
            f"{sum(dpo)}/{len(dpo)} DPO pairs raise both ({v.detail}; \"no rise\" needs an interval that excludes "
            f"a {P.circuits.min_effect:.0%} rise).",
            {"reproduced": v.decision == "reproduced", "decision": v.decision, "rl_pairs_rising": sum(rl),
             "rl_pairs": len(rl), "dpo_pairs_rising": sum(dpo), "dpo_pairs": len(dpo)}, style="paragraph"))
        rl_s = [ok for g, ok in shape.values() if g == "online RL"]
        dpo_s = [ok for g, ok in shape.values() if g == "DPO"]
        items.append(Finding(
            f"Read without the scale (per-sample |W| / mean |W|, shared bins): the entropy rises for "
            f"{sum(rl_s)}/{len(rl_s)} online-RL pairs and {sum(dpo_s)}/{len(dpo_s)} DPO pairs, so an entropy rise "
            f"that vanishes here was a change of scale, not of the distribution's shape.",
            {"rl_pairs_scale_free_rising": sum(rl_s), "dpo_pairs_scale_free_rising": sum(dpo_s)}, style="line"))
        rl_l = [ok for g, ok in per_loss.values() if g == "online RL"]
        dpo_l = [ok for g, ok in per_loss.values() if g == "DPO"]
        items.append(Finding(
            f"Per unit of self-entropy loss (the scores are its gradients, which shrink as a model grows "
            f"confident), intensity rises for {sum(rl_l)}/{len(rl_l)} online-RL pairs and "
            f"{sum(dpo_l)}/{len(dpo_l)} DPO pairs.",
            {"rl_pairs_per_loss_rising": sum(rl_l), "dpo_pairs_per_loss_rising": sum(dpo_l)}, style="line"))
    return Findings("05_circuits", "edge_metrics", tuple(items))


def robustness(P: Params, table: pd.DataFrame) -> pd.DataFrame:
    """Per pair and metric, over every (score kind, α): how many 95 % intervals say up (↑), down (↓) or
    include zero (·)."""
    t = table[table.metric.isin(["intensity", "entropy", "kurtosis", *READINGS])]
    t = t.assign(up=t.delta_lo > 0, down=t.delta_hi < 0)
    agg = t.groupby(["pair", "metric"], sort=False).agg(up=("up", "sum"), down=("down", "sum"), n=("up", "size"))
    cell = [f"↑{up} ↓{down} ·{n - up - down}" for up, down, n in zip(agg["up"], agg["down"], agg["n"], strict=True)]
    return agg.assign(cell=cell)["cell"].unstack("metric")


def _direction(row: pd.Series) -> str:
    if row.delta_lo > 0:
        return f"up ({row.delta:+.2g}, CI excludes 0)"
    if row.delta_hi < 0:
        return f"down ({row.delta:+.2g}, CI excludes 0)"
    return f"no clear change ({row.delta:+.2g})"


def exact_findings(agree: dict) -> Findings:
    """What the ablation check says, in words, with its numbers."""
    if not agree.get("n_samples", 1):
        return Findings("05_circuits", "exact_ablation", (Finding(
            "Exact ablation was not run on any question (`circuits.exact_n_samples: 0`): how well the first-order "
            "scores track what removing an edge does is unmeasured for this model.", style="line"),))
    per = agree["per_receiver"]
    first = per.iloc[0]
    fo, ex = float(first["first-order mean |score|"]), float(first["exact mean |score|"])
    return Findings("05_circuits", "exact_ablation", (
        Finding(f"Rank agreement of first-order and exact scores: Spearman **{agree['overall_mean_scores']:.2f}** "
                f"over edges (mean over questions), {agree['overall_per_sample']:.2f} per question, "
                f"**{agree['overall_abs']:.2f}** for |score| (importance regardless of sign); per receiver "
                f"{per.spearman.min():.2f}–{per.spearman.max():.2f}.",
                {"spearman": float(agree["overall_mean_scores"]), "spearman_per_question":
                 float(agree["overall_per_sample"]), "spearman_abs": float(agree["overall_abs"])}),
        Finding(f"First-order scores into a receiver sum to at most {per['first-order sum'].abs().max():.1e} "
                f"(scale invariance of the norm), while the exact effects of removing those edges sum to "
                f"{per['exact sum'].abs().min():.2g}–{per['exact sum'].abs().max():.2g}.",
                {"first_order_sum_max": float(per["first-order sum"].abs().max())}),
        Finding(f"The embedding's edge into the first block: first order {fo:.2g} vs exact {ex:.2g}"
                + (": first order misses most of what removing the whole input of a normalised block does. Read the "
                   "intensity/entropy/kurtosis changes above as changes in local sensitivities, not as exact edge "
                   "importances." if fo < 0.1 * ex else ": the same order of magnitude."),
                {"embedding_first_order": fo, "embedding_exact": ex})))


RISE, NO_RISE, UNDECIDED = "rise", "no rise", "undecided"


def reading(p: pd.DataFrame, metrics: tuple[str, ...], min_effect: float) -> str:
    """One pair's reading of "raises every one of ``metrics``" (rows indexed by metric): ``no rise`` when some
    metric's interval excludes a rise of ``min_effect`` × |before| (a significant rise smaller than that counts
    as none), ``rise`` when every metric's interval lies above 0, else ``undecided`` — the interval contains 0
    and a rise of the stated size alike, so this pair cannot tell them apart."""
    if any(m not in p.index for m in metrics):
        return UNDECIDED
    rows: dict = p.loc[list(metrics), ["delta_lo", "delta_hi", "before"]].astype(float).to_dict("index")
    if any(r["delta_hi"] < min_effect * abs(r["before"]) for r in rows.values()):
        return NO_RISE
    return RISE if all(r["delta_lo"] > 0 for r in rows.values()) else UNDECIDED


def _group_readings(P: Params, t: pd.DataFrame, metrics: tuple[str, ...]):
    """Per group (online RL, DPO), each pair's :func:`reading` where it has enough questions; and the question
    counts used and the pairs left out."""
    got: dict[str, list[str]] = {"online RL": [], "DPO": []}
    used, left_out = [], []
    for group, methods in (("online RL", ONLINE_RL), ("DPO", OFFLINE)):
        sub = t[t["model_after"].isin(methods)]
        for pair in sub.pair.unique():
            p = sub[sub.pair == pair].set_index("metric")
            n = int(p.n.iloc[0])
            if n < P.circuits.min_questions:
                left_out.append(f"{pair} ({n})")
                continue
            used.append(n)
            got[group].append(reading(p, metrics, P.circuits.min_effect))
    return got, used, left_out


def claim_decision(rl: list[str], dpo: list[str], power: bool = True, clean: bool = True):
    """The decision on "online RL raises, DPO does not" from the pairs' readings: reproduced when every RL pair
    rises and every DPO pair shows no rise, and the instrument is ``clean`` (it never read a known non-widening
    as a rise); not reproduced when some RL pair shows no rise or some DPO pair rises, and the instrument has
    ``power`` (it read a known widening as a rise); otherwise — no pair of a group, an undecided pair and nothing
    contradicting, or an instrument without the power or cleanliness the decision needs — not testable."""
    seen = bool(rl) and bool(dpo) and all(r == RISE for r in rl) and all(d == NO_RISE for d in dpo)
    against = any(r == NO_RISE for r in rl) or any(d == RISE for d in dpo)
    return decide(seen, against, (seen and clean) or (against and not seen and power))


def claim_tables(P: Params, table: pd.DataFrame) -> list[tuple[str, str, pd.DataFrame, tuple[str, ...]]]:
    """The paper's circuit claim read three ways, as (id, claim, rows, metrics that must rise): the paper's
    metrics of the first score kind (``paper``), the scale-free entropy (``scale_free``), and, where computed,
    the paper's metrics of exact-ablation scores (``exact``); rows at the headline α."""
    main = table[table.alpha == P.circuits.main_alpha]
    first = main[main.score == P.circuits.scores[0]]
    out = [("paper", "online RL raises edge intensity and entropy, DPO does not", first, ("intensity", "entropy")),
           ("scale_free", "online RL raises the scale-free edge entropy, DPO does not", first, (SCALE_FREE[0],))]
    if (main.score == "exact").any():
        out.append(("exact", "online RL raises edge intensity and entropy, DPO does not — exact-ablation scores",
                    main[main.score == "exact"], ("intensity", "entropy")))
    return out


def pair_readings(P: Params, table: pd.DataFrame) -> list[dict]:
    """Every pair's :func:`reading` of every claim of :func:`claim_tables`, whichever group its after-model is
    in: claim id, claim, pair, after-model, question count, reading (the known-cause validation reads these)."""
    out = []
    for cid, claim, t, metrics in claim_tables(P, table):
        for pair in t.pair.unique():
            p = t[t.pair == pair].set_index("metric")
            out.append({"claim_id": cid, "claim": claim, "pair": str(pair), "model_after": str(p.model_after.iloc[0]),
                        "n": int(p.n.iloc[0]), "reading": reading(p, metrics, P.circuits.min_effect)})
    return out


def verdicts(P: Params, table: pd.DataFrame, power: dict[str, tuple[bool, bool, str]] | None = None) -> list[Verdict]:
    """The paper's circuit claim — online RL raises intensity and entropy, DPO does not — read the three ways of
    :func:`claim_tables`, each decided from the paired bootstrap intervals of every pair by :func:`reading` ("no
    rise" needs an interval that excludes ``circuits.min_effect``; an interval containing 0 alone decides
    nothing) and :func:`claim_decision`. A pair with fewer than ``circuits.min_questions`` questions is left out.
    Power comes from the known-cause validation of the edge metrics
    (:func:`~rlgen_utils.studies.verdicts.edges_demonstrated`, per reading): "not reproduced" only where that
    reading saw a known widening of the graph as a rise, "reproduced" only where it never read a known narrowing
    or a function-preserving edit as one; else not testable at this power. ``power`` gives each reading's
    (power, clean, sentence) instead of the validation file: the validation's own runs pass it."""
    out = []
    for cid, claim, t, metrics in claim_tables(P, table):
        got, used, left_out = _group_readings(P, t, metrics)
        ok, clean, power_text = (power or {}).get(cid) or edges_demonstrated(edges_file(P), cid)
        limit = (f"pairs with ≥ {P.circuits.min_questions} questions ({min(used, default=0)}–{max(used, default=0)} "
                 f"used), α = {P.circuits.main_alpha}; minimum effect a {P.circuits.min_effect:.0%} rise"
                 + (f"; left out: {', '.join(left_out)}" if left_out else "") + f"; {power_text}")
        rl, dpo = got["online RL"], got["DPO"]
        count = lambda xs: ", ".join(f"{xs.count(k)} {k}" for k in (RISE, NO_RISE, UNDECIDED))
        out.append(Verdict(
            claim=claim, notebook="05_circuits",
            estimate=rl.count(RISE) / len(rl) if rl else float("nan"), interval=None,
            null=f"paired bootstrap interval of each pair's change against 0 and against a {P.circuits.min_effect:.0%} rise",
            decision=claim_decision(rl, dpo, ok, clean), limit=limit,
            detail=f"online-RL pairs: {count(rl) if rl else 'none'}; DPO pairs: {count(dpo) if dpo else 'none'}"))
    return out


def first_order_vs_exact(P: Params, table: pd.DataFrame) -> pd.DataFrame:
    """Per pair and metric at the headline α: the change read from the first score kind and from exact ablation,
    each with its bootstrap interval and direction (↑ / ↓ / · for an interval containing 0), and whether the
    directions agree. Empty when exact scores were not computed."""
    t = table[(table.alpha == P.circuits.main_alpha) & table.metric.isin(["intensity", "entropy", "kurtosis",
                                                                           "diversity", *READINGS])]
    kind = P.circuits.scores[0]
    a, b = (t[t.score == k].set_index(["pair", "metric"]) for k in (kind, "exact"))
    if b.empty:
        return pd.DataFrame()
    index = a.index.intersection(b.index)
    a, b = a.loc[index], b.loc[index]
    arrow = lambda d: np.where(d.delta_lo > 0, "↑", np.where(d.delta_hi < 0, "↓", "·"))
    cells = lambda d: [f"{r.delta:+.2g} [{r.delta_lo:+.2g}, {r.delta_hi:+.2g}]" for r in d.itertuples()]
    out = pd.DataFrame({f"Δ {kind}": cells(a), kind: arrow(a), "Δ exact": cells(b), "exact": arrow(b)}, index=index)
    return out.assign(agree=out[kind] == out["exact"])


def exact_agreement_findings(P: Params, table: pd.DataFrame) -> Findings:
    """How often first-order and exact-ablation scores give the same direction of change, in words."""
    cmp = first_order_vs_exact(P, table)
    if cmp.empty:
        return Findings("05_circuits", "exact_agreement", (Finding(
            "Exact-ablation scores were not computed for the pairs (`circuits.exact_scores: none`).", style="line"),))
    paper = cmp[cmp.index.get_level_values("metric").isin(["intensity", "entropy", "kurtosis"])]
    return Findings("05_circuits", "exact_agreement", (Finding(
        f"First-order ({P.circuits.scores[0]}) and exact-ablation scores give the same direction of change "
        f"(up / down / interval containing 0) in **{int(cmp.agree.sum())} of {len(cmp)}** (pair, metric) cells, "
        f"{int(paper.agree.sum())} of {len(paper)} for the paper's intensity, entropy and kurtosis.",
        {"cells_agreeing": int(cmp.agree.sum()), "cells": len(cmp), "paper_cells_agreeing": int(paper.agree.sum()),
         "paper_cells": len(paper)}),))
