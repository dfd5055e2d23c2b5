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
from ..run.modelid import BASE, ModelId, checkpoint_ids
from . import crosscoder, nulls

if TYPE_CHECKING:
    from ..method.crosscoder import Crosscoder


def checkpoint_names(P: Params, method: str) -> list[ModelId]:
    return checkpoint_ids(method, P.posttrain.n_checkpoints)


def trajectory_names(P: Params) -> tuple[ModelId, ...]:
    C = P.crosscoder
    return (BASE, *checkpoint_names(P, C.sft_method), *checkpoint_names(P, C.rl_method))


def ensure_trajectory(P: Params, seed: int, train_seed: int | None = None):
    """The trajectory crosscoder with crosscoder seed ``seed`` over the checkpoints of training seed
    ``train_seed`` (default the first)."""
    ts = P.train_seeds[0] if train_seed is None else train_seed
    return _ensure(P, trajectory_names(P), seed=seed, tag=trajectory_tag(seed, ts), train_seed=ts)


def _ensure(P: Params, names: tuple[ModelId, ...], steps: int | None = None, **kw) -> Crosscoder:
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
    return _ensure(P, (BASE,) * len(names), seed=seed, source=names, tag=f"null-copy-seed{seed}")


def null_table(P: Params) -> pd.DataFrame:
    """:func:`overlap_table` of the identical-copy null over every crosscoder seed (its "sft" and "rl" slots are
    base copies, labelled ``null (… slots)``)."""
    table = overlap_table(P, {("null", s): ensure_null(P, s) for s in P.dynamics.crosscoder_seeds})
    return table.assign(method=[f"null ({m} slots)" for m in table.method])


def walk_names(P: Params) -> tuple[ModelId, ...]:
    """The random-walk null's slots: the base, then every checkpoint's place on its method's random walk."""
    return (BASE, *(n.noise for n in trajectory_names(P)[1:]))


def ensure_walk_null(P: Params, seed: int) -> Crosscoder:
    """The random-update null of the trajectory: the same crosscoder over the base and, in every checkpoint's
    slot, the base moved along a random walk with that method's geometry — per tensor as far from the base as the
    checkpoint and as far from the previous checkpoint (:func:`rlgen_utils.method.perturb.norm_matched_walk`).
    Overlaps it shows follow from how far and how steadily the weights moved, not from what was learnt."""
    for m in paradigms(P):
        nulls.ensure_noise_walk(P, m)
    return _ensure(P, walk_names(P), seed=seed, tag=f"null-walk-seed{seed}")


def walk_table(P: Params) -> pd.DataFrame:
    """:func:`overlap_table` of the random-walk null over ``dynamics.walk_seeds`` (its slots labelled
    ``random walk like <method>``; empty when the seeds are ``[]``)."""
    if not P.dynamics.walk_seeds:
        return pd.DataFrame()
    table = overlap_table(P, {("walk", s): ensure_walk_null(P, s) for s in P.dynamics.walk_seeds})
    return table.assign(method=[f"random walk like {m}" for m in table.method])


def line_names(P: Params) -> tuple[ModelId, ...]:
    """The fixed-direction null's slots: the base, then every checkpoint's place on the line to its final model."""
    return (BASE, *(n.line for n in trajectory_names(P)[1:]))


def ensure_line_null(P: Params, seed: int) -> Crosscoder:
    """The fixed-direction null of the trajectory: the same crosscoder over the base and, in every checkpoint's
    slot, the base moved straight towards that method's final checkpoint, as far as the checkpoint is from the
    base (:func:`rlgen_utils.method.perturb.fixed_direction_path`). Nothing turns on the way, so an overlap it
    shows follows from how fast the distance grew, not from features that appeared early and stayed."""
    for m in paradigms(P):
        nulls.ensure_line_path(P, m)
    return _ensure(P, line_names(P), seed=seed, tag=f"null-line-seed{seed}")


def line_table(P: Params) -> pd.DataFrame:
    """:func:`overlap_table` of the fixed-direction null over ``dynamics.line_seeds`` (slots labelled ``fixed
    direction like <method>``; empty when the seeds are ``[]``)."""
    if not P.dynamics.line_seeds:
        return pd.DataFrame()
    table = overlap_table(P, {("line", s): ensure_line_null(P, s) for s in P.dynamics.line_seeds})
    return table.assign(method=[f"fixed direction like {m}" for m in table.method])


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
    return overlap.top_k_sets(spec, P.dynamics.top_k, cc.alive_L())


def method_nrn_CL(P: Params, cc: Crosscoder, method: str):
    names = trajectory_names(P)
    cols = [names.index(n) for n in checkpoint_names(P, method)]
    return overlap.specificity_CL(cc.dec_norms_LM().detach(), 0, cols, "nrn")[:, cc.alive_L()]


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
    early" when high) and mean neighbour overlap ("keeps evolving" when low), with [min, max] over seeds. Columns:
    ``overlap_with_final`` (checkpoints 1..N−1 against N), ``neighbour_overlap``, each with its ``*_range``, and
    ``tuned_only_final`` (tuned-only latents at the last checkpoint)."""
    rows = []
    for method, g in table.groupby("method", sort=False):
        early = g[g.checkpoint < g.checkpoint.max()]
        rows.append({"method": method, "overlap_with_final": early.first_vs_last.mean(),
                     "overlap_with_final_range": f"[{early.fvl_lo.mean():.2f}, {early.fvl_hi.mean():.2f}]",
                     "neighbour_overlap": g.neighbour.mean(),
                     "neighbour_overlap_range": f"[{g.nb_lo.mean():.2f}, {g.nb_hi.mean():.2f}]",
                     "tuned_only_final": g.tuned_only.iloc[-1]})
    return pd.DataFrame(rows)


def pairwise_sets(P: Params, method: str) -> list[set]:
    """Paper-faithful: base-vs-checkpoint crosscoders (activations read from the trajectory collection), each
    checkpoint's top-K by NRN mapped into the final checkpoint's crosscoder by decoder cosine."""
    D = P.dynamics
    names = trajectory_names(P)
    ccs = [_ensure(P, (BASE, n), steps=D.pair_steps, source=names, tag="pair") for n in checkpoint_names(P, method)]
    final = ccs[-1]
    out = []
    for c, cc in enumerate(ccs):
        spec = overlap.specificity_CL(cc.dec_norms_LM().detach(), 0, [1], "nrn")
        top = overlap.top_k_sets(spec, D.top_k, cc.alive_L())[0]
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
            rows.append({"method": method, "checkpoint": k, "first_vs_last_matched": f, "neighbour_matched": n})
    return pd.DataFrame(rows)
