"""Stages of notebook 04: crosscoders over the whole training trajectory, and the overlap summaries.

* :func:`ensure_trajectory` — one crosscoder over base + every SFT checkpoint + every RL checkpoint, on the same
  tokens, so latent indices are shared by all checkpoints and both paradigms (one per crosscoder seed).
* :func:`pairwise_sets` — the paper-faithful cross-check: a base-vs-checkpoint crosscoder per checkpoint, whose
  top-K sets are compared after matching latents to the final checkpoint's crosscoder by decoder cosine.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ..method import overlap
from ..run.config import Params
from . import crosscoder
from .verdicts import Verdict, decide

if TYPE_CHECKING:
    from ..method.crosscoder import Crosscoder


def checkpoint_names(P: Params, method: str) -> list[str]:
    return [f"{method}@{k}" for k in range(1, P.posttrain.n_checkpoints + 1)]


def trajectory_names(P: Params) -> tuple[str, ...]:
    C = P.crosscoder
    return ("base", *checkpoint_names(P, C.sft_method), *checkpoint_names(P, C.rl_method))


def ensure_trajectory(P: Params, seed: int, train_seed: int | None = None):
    """The trajectory crosscoder with crosscoder seed ``seed`` over the checkpoints of training seed
    ``train_seed`` (default the first)."""
    ts = P.train_seeds[0] if train_seed is None else train_seed
    return _ensure(P, trajectory_names(P), seed=seed, tag=trajectory_tag(seed, ts), train_seed=ts)


def _ensure(P: Params, names: tuple[str, ...], steps: int | None = None, **kw) -> Crosscoder:
    """:func:`crosscoder.ensure_crosscoder` with the dynamics section's width, steps (``steps`` for the pairwise
    ones) and texts: every crosscoder of notebook 04 reads the corpus's first ``dynamics.n_texts`` texts."""
    D = P.dynamics
    return crosscoder.ensure_crosscoder(P, names, steps=steps or D.steps, n_latents=D.n_latents, n_texts=D.n_texts,
                                        **kw)


def trajectory_tag(seed: int, train_seed: int) -> str:
    return f"trajectory-seed{seed}-train{train_seed}"


def ensure_null(P: Params, seed: int) -> Crosscoder:
    """The identical-model null of the trajectory: the same crosscoder (steps, width, seed) with the base's
    activations in every checkpoint's slot, read from the trajectory collection. Its checkpoints differ in nothing,
    so whatever overlap their top-K sets show is the level a real paradigm must beat."""
    names = trajectory_names(P)
    return _ensure(P, ("base",) * len(names), seed=seed, source=names, tag=f"null-copy-seed{seed}")


def null_table(P: Params) -> pd.DataFrame:
    """:func:`overlap_table` of the identical-copy null over every crosscoder seed (its "sft" and "rl" slots are
    base copies, labelled ``null (… slots)``)."""
    table = overlap_table(P, {("null", s): ensure_null(P, s) for s in P.dynamics.crosscoder_seeds})
    return table.assign(method=[f"null ({m} slots)" for m in table.method])


def walk_names(P: Params) -> tuple[str, ...]:
    """The random-walk null's slots: the base, then every checkpoint's place on its method's random walk."""
    from ..run.rundir import NOISE_PREFIX
    return ("base", *(NOISE_PREFIX + n for n in trajectory_names(P)[1:]))


def ensure_walk_null(P: Params, seed: int) -> Crosscoder:
    """The random-update null of the trajectory: the same crosscoder over the base and, in every checkpoint's
    slot, the base moved along a random walk with that method's geometry — per tensor as far from the base as the
    checkpoint and as far from the previous checkpoint (:func:`rlgen_utils.method.perturb.norm_matched_walk`).
    Overlaps it shows follow from how far and how steadily the weights moved, not from what was learnt."""
    for m in paradigms(P):
        crosscoder.ensure_noise_walk(P, m)
    return _ensure(P, walk_names(P), seed=seed, tag=f"null-walk-seed{seed}")


def walk_table(P: Params) -> pd.DataFrame:
    """:func:`overlap_table` of the random-walk null over ``dynamics.walk_seeds`` (its slots labelled
    ``random walk like <method>``; empty when the seeds are ``[]``)."""
    if not P.dynamics.walk_seeds:
        return pd.DataFrame()
    table = overlap_table(P, {("walk", s): ensure_walk_null(P, s) for s in P.dynamics.walk_seeds})
    return table.assign(method=[f"random walk like {m}" for m in table.method])


def training_log(P: Params, train_seed: int, seed: int) -> list[dict]:
    """The training log of the trajectory crosscoder (training seed, crosscoder seed)."""
    return crosscoder.training_log(P, trajectory_names(P), trajectory_tag(seed, train_seed))


def ensure_all(P: Params) -> dict[tuple[int, int], object]:
    """Trajectory crosscoders for every (training seed, crosscoder seed)."""
    return {(ts, s): ensure_trajectory(P, s, ts) for ts in P.train_seeds for s in P.dynamics.crosscoder_seeds}


def method_sets(P: Params, cc: Crosscoder, method: str) -> list[set[int]]:
    """Top-K model-specific latents of each checkpoint of ``method`` in a trajectory crosscoder."""
    names = trajectory_names(P)
    cols = [names.index(n) for n in checkpoint_names(P, method)]
    spec = overlap.specificity_CL(cc.dec_norms_LM().detach(), 0, cols, P.dynamics.ranking)
    return overlap.top_k_sets(spec, P.dynamics.top_k, crosscoder.alive(cc))


def method_nrn_CL(P: Params, cc: Crosscoder, method: str):
    names = trajectory_names(P)
    cols = [names.index(n) for n in checkpoint_names(P, method)]
    return overlap.specificity_CL(cc.dec_norms_LM().detach(), 0, cols, "nrn")[:, crosscoder.alive(cc)]


def paradigms(P: Params) -> tuple[str, str]:
    return P.crosscoder.sft_method, P.crosscoder.rl_method


def overlap_matrices(P: Params, cc: Crosscoder) -> dict:
    """Per paradigm, the Jaccard overlap matrix of its checkpoints' top-K sets in one trajectory crosscoder."""
    return {m: overlap.overlap_matrix(method_sets(P, cc, m)) for m in paradigms(P)}


def nrn_by_method(P: Params, cc: Crosscoder) -> dict:
    return {m: method_nrn_CL(P, cc, m) for m in paradigms(P)}


def overlap_table(P: Params, ccs: dict) -> pd.DataFrame:
    """Per paradigm and checkpoint: first-vs-last and neighbour overlap, and tuned-only count, as mean and
    [min, max] over the crosscoders given (crosscoder seeds × training seeds)."""
    rows = []
    for method in paradigms(P):
        per_seed = {s: method_sets(P, cc, method) for s, cc in ccs.items()}
        fvl = np.array([overlap.first_vs_last(v) for v in per_seed.values()])
        nb = np.array([[np.nan] + overlap.neighbour_overlap(v) for v in per_seed.values()])
        tuned = np.array([overlap.tuned_only_counts(method_nrn_CL(P, cc, method), P.dynamics.tuned_threshold)
                          for cc in ccs.values()])
        for k in range(fvl.shape[1]):
            rows.append({"method": method, "checkpoint": k + 1,
                         "first_vs_last": fvl[:, k].mean(), "fvl_lo": fvl[:, k].min(), "fvl_hi": fvl[:, k].max(),
                         "neighbour": nb[:, k].mean(), "nb_lo": nb[:, k].min(), "nb_hi": nb[:, k].max(),
                         "tuned_only": tuned[:, k].mean()})
    return pd.DataFrame(rows)


def summary(table: pd.DataFrame) -> pd.DataFrame:
    """One number per paradigm for each claim: mean overlap of checkpoints 1..N−1 with the last ("stabilises
    early" when high) and mean neighbour overlap ("keeps evolving" when low), with [min, max] over seeds."""
    rows = []
    for method, g in table.groupby("method", sort=False):
        early = g[g.checkpoint < g.checkpoint.max()]
        rows.append({"method": method, "overlap with final (ckpts 1..N-1)": early.first_vs_last.mean(),
                     "range": f"[{early.fvl_lo.mean():.2f}, {early.fvl_hi.mean():.2f}]",
                     "neighbour overlap": g.neighbour.mean(),
                     "range ": f"[{g.nb_lo.mean():.2f}, {g.nb_hi.mean():.2f}]",
                     "tuned-only latents (final)": g.tuned_only.iloc[-1]})
    return pd.DataFrame(rows)


def pairwise_sets(P: Params, method: str) -> list[set]:
    """Paper-faithful: base-vs-checkpoint crosscoders (activations read from the trajectory collection), each
    checkpoint's top-K by NRN mapped into the final checkpoint's crosscoder by decoder cosine."""
    D = P.dynamics
    names = trajectory_names(P)
    ccs = [_ensure(P, ("base", n), steps=D.pair_steps, source=names, tag="pair") for n in checkpoint_names(P, method)]
    final = ccs[-1]
    out = []
    for c, cc in enumerate(ccs):
        spec = overlap.specificity_CL(cc.dec_norms_LM().detach(), 0, [1], "nrn")
        top = overlap.top_k_sets(spec, D.top_k, crosscoder.alive(cc))[0]
        mapping = overlap.match_latents(cc.W_dec_LMD.detach()[:, 1], final.W_dec_LMD.detach()[:, 1],
                                         D.match_threshold)
        out.append(overlap.map_into(top, mapping, f"checkpoint-{c + 1}"))
    return out


def pairwise_table(P: Params) -> pd.DataFrame:
    rows = []
    for method in paradigms(P):
        sets = pairwise_sets(P, method)
        nb = [np.nan] + overlap.neighbour_overlap(sets)
        for k, (f, n) in enumerate(zip(overlap.first_vs_last(sets), nb), start=1):
            rows.append({"method": method, "checkpoint": k, "first_vs_last (matched)": f, "neighbour (matched)": n})
    return pd.DataFrame(rows)


def null_findings(P: Params, table: pd.DataFrame, null: pd.DataFrame, walk: pd.DataFrame | None = None) -> str:
    """Each paradigm's mean overlaps next to the identical-copy null's [min, max] over its slots and seeds, and
    next to its own random walk's (same distances and steps, random directions)."""
    s = summary(table).set_index("method").to_dict("index")
    (f_lo, f_hi), (b_lo, b_hi) = null_range(null, "first"), null_range(null, "neighbour")
    lines = [f"- Identical-copy null (every checkpoint slot holds the base): overlap with final {f_lo:.2f}–{f_hi:.2f}, "
             f"neighbour overlap {b_lo:.2f}–{b_hi:.2f}."]
    for m in (P.crosscoder.sft_method, P.crosscoder.rl_method):
        fvl, nb = float(s[m]["overlap with final (ckpts 1..N-1)"]), float(s[m]["neighbour overlap"])
        side = lambda v, lo, hi: "inside" if lo <= v <= hi else ("above" if v > hi else "below")
        lines.append(f"- {m}: overlap with final {fvl:.2f} ({side(fvl, f_lo, f_hi)} the null's range), neighbour "
                     f"{nb:.2f} ({side(nb, b_lo, b_hi)}); a value inside the null's range is not evidence of dynamics.")
        if walk is not None and not walk.empty:
            w_f, w_n = (seed_range(walk, f"random walk like {m}", c)[0] for c in ("first", "neighbour"))
            lines.append(f"  - its random walk (as far and as steady, random directions): overlap with final "
                         f"{w_f:.2f}, neighbour {w_n:.2f}.")
    return "\n".join(lines)


def findings(P: Params, table: pd.DataFrame, pair_table: pd.DataFrame | None = None,
             null: pd.DataFrame | None = None, walk: pd.DataFrame | None = None) -> str:
    """Whether the organism reproduces the paper's dynamics claim, from the overlap table (not written by hand).
    An ordering between the paradigms counts as resolved when the [min, max] ranges over crosscoder seeds do not
    overlap; with the identical-copy ``null`` the typed verdicts (:func:`verdicts`) follow, which also ask that the
    paradigm's value lie beyond the null's range."""
    s = summary(table).set_index("method").to_dict("index")
    sft, rl = P.crosscoder.sft_method, P.crosscoder.rl_method
    ranges = {(col, m): seed_range(table, m, col)[1:] for col in CLAIM_COLUMNS for m in (sft, rl)}

    def claim(col, text, holds):
        (a_lo, a_hi), (b_lo, b_hi) = ranges[col, sft], ranges[col, rl]
        separated = a_hi < b_lo or b_hi < a_lo
        return (f"- {text} (ordering only): {'holds' if holds else 'does not hold'}, "
                f"{'resolved (the seed ranges do not overlap)' if separated else 'not resolved (the seed ranges overlap)'}.")
    fvl, nb = "overlap with final (ckpts 1..N-1)", "neighbour overlap"
    return "\n".join([
        f"- Overlap of earlier checkpoints' top-{P.dynamics.top_k} with the final one: {sft} {s[sft][fvl]:.2f} "
        f"{s[sft]['range']}, {rl} {s[rl][fvl]:.2f} {s[rl]['range']}; neighbour overlap: {sft} "
        f"{s[sft][nb]:.2f} {s[sft]['range ']}, {rl} {s[rl][nb]:.2f} {s[rl]['range ']}.",
        claim("first", f"{sft} stabilises earlier than {rl}", s[sft][fvl] > s[rl][fvl]),
        claim("neighbour", f"{rl} keeps evolving more than {sft}", s[rl][nb] < s[sft][nb]),
        f"- Tuned-only latents (NRN > {P.dynamics.tuned_threshold}) at the final checkpoint: {sft} "
        f"{s[sft]['tuned-only latents (final)']:.0f}, {rl} {s[rl]['tuned-only latents (final)']:.0f}.",
        *([] if pair_table is None else [_agreement(P, s, pair_table)]),
        *([] if null is None else [v.line() for v in verdicts(P, table, null, walk)])])


def _agreement(P: Params, s, pair_table: pd.DataFrame) -> str:
    """Whether the pairwise (matched) cross-check points the same way as the trajectory crosscoder."""
    sft, rl = P.crosscoder.sft_method, P.crosscoder.rl_method
    fvl_col, nb_col = "overlap with final (ckpts 1..N-1)", "neighbour overlap"
    g = {m: pair_table[pair_table.method == m] for m in (sft, rl)}
    fvl = {m: g[m][g[m].checkpoint < g[m].checkpoint.max()]["first_vs_last (matched)"].mean() for m in g}
    nb = {m: g[m]["neighbour (matched)"].mean() for m in g}
    same_fvl = (fvl[sft] > fvl[rl]) == (s[sft][fvl_col] > s[rl][fvl_col])
    same_nb = (nb[rl] < nb[sft]) == (s[rl][nb_col] < s[sft][nb_col])
    return (f"- Pairwise cross-check (matched latents): overlap with final {sft} {fvl[sft]:.2f} vs {rl} {fvl[rl]:.2f} "
            f"({'agrees' if same_fvl else 'disagrees'} with the trajectory crosscoder); neighbour {sft} {nb[sft]:.2f} "
            f"vs {rl} {nb[rl]:.2f} ({'agrees' if same_nb else 'disagrees'}).")


CLAIM_COLUMNS = {"first": ("first_vs_last", "fvl_lo", "fvl_hi"), "neighbour": ("neighbour", "nb_lo", "nb_hi")}
"""Per dynamics claim, the overlap table's (mean, seed-min, seed-max) columns."""


def seed_range(table: pd.DataFrame, method: str, claim: str) -> tuple[float, float, float]:
    """Mean, and mean [min, max] over crosscoder seeds, of one claim's overlap for ``method``, over the
    checkpoints the claim reads (overlap with the final one: checkpoints 1..N−1)."""
    mean, lo, hi = CLAIM_COLUMNS[claim]
    g = table[(table.method == method) & table[lo].notna()]
    g = g[g.checkpoint < g.checkpoint.max()] if claim == "first" else g
    return float(g[mean].mean()), float(g[lo].mean()), float(g[hi].mean())


def null_range(null: pd.DataFrame, claim: str) -> tuple[float, float]:
    """The identical-copy null's range of one claim's overlap: per checkpoint the min / max over its slots and
    seeds, averaged over the checkpoints the claim reads."""
    _, lo, hi = CLAIM_COLUMNS[claim]
    n = null.groupby("checkpoint").agg(lo=(lo, "min"), hi=(hi, "max"))
    n = n[n.index < n.index.max()] if claim == "first" else n
    return float(n.lo.mean()), float(n.hi.mean())


def walk_gap(walk: pd.DataFrame | None, P: Params, claim: str) -> float | None:
    """The random-walk null's SFT − RL difference of one claim's overlap (None without the null)."""
    if walk is None or walk.empty:
        return None
    sft, rl = paradigms(P)
    return seed_range(walk, f"random walk like {sft}", claim)[0] - seed_range(walk, f"random walk like {rl}", claim)[0]


def verdicts(P: Params, table: pd.DataFrame, null: pd.DataFrame, walk: pd.DataFrame | None = None
             ) -> list[Verdict]:
    """The paper's dynamics claims, each decided only where the crosscoder seeds' [min, max] ranges of the two
    paradigms do not overlap (else: not testable at this power); the paradigm's value must lie beyond the
    identical-copy null's range in the claimed direction and, with the random-walk null (:func:`walk_table`), the
    SFT − RL difference must exceed the one that two random walks of the same geometry show."""
    sft, rl = paradigms(P)
    seeds = P.dynamics.crosscoder_seeds
    out = []
    for claim, col, better in (
            (f"{sft} stabilises early (its earlier checkpoints overlap its final one more than {rl}'s)", "first",
             "higher"),
            (f"{rl} keeps evolving (its neighbouring checkpoints overlap less than {sft}'s)", "neighbour", "lower")):
        (a, a_lo, a_hi), (b, b_lo, b_hi) = seed_range(table, sft, col), seed_range(table, rl, col)
        n_lo, n_hi = null_range(null, col)
        gap = walk_gap(walk, P, col)
        separated = a_hi < b_lo or b_hi < a_lo
        # sft above rl and above what identical checkpoints give / rl below sft and below the null; and the
        # difference beyond what the weights' geometry alone gives
        seen = a > b and a > n_hi if better == "higher" else b < a and b < n_lo
        seen = seen and (gap is None or a - b > gap)
        out.append(Verdict(
            claim=claim, notebook="04_feature_dynamics", estimate=a - b, interval=None,
            null=f"identical-copy trajectory {n_lo:.2f}–{n_hi:.2f}" +
                 ("" if gap is None else f"; random walks of the same geometry: {sft} − {rl} {gap:+.2f}"),
            decision=decide(seen, b > a, separated),
            limit=f"[min, max] over crosscoder seeds {seeds}: {sft} [{a_lo:.2f}, {a_hi:.2f}], {rl} [{b_lo:.2f}, "
                  f"{b_hi:.2f}] ({'separated' if separated else 'overlapping'})",
            detail=f"{sft} {a:.2f}, {rl} {b:.2f}"))
    return out
