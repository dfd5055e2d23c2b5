"""What notebook 04's trajectories say about the paper's dynamics claims — SFT stabilises early, RL keeps
evolving — read against the identical-copy, random-walk and fixed-direction nulls, as typed findings and
verdicts computed from :func:`rlgen_utils.studies.dynamics.overlap_table` (never written by hand)."""
from __future__ import annotations

import pandas as pd

from ..run.config import Params
from .dynamics import paradigms, summary
from .findings import Finding, Findings
from .verdicts import Verdict, dating_demonstrated, dating_file, decide

GEOMETRY_NULLS = {"walk": "random walk like", "line": "fixed direction like"}
"""The trajectory nulls that keep the weights' geometry, and the label prefix of their slots in an overlap table."""


def null_findings(P: Params, table: pd.DataFrame, null: pd.DataFrame, walk: pd.DataFrame | None = None,
                  line: pd.DataFrame | None = None) -> Findings:
    """Each paradigm's mean overlaps next to the identical-copy null's [min, max] over its slots and seeds, next
    to its own random walk's (same distances and steps, random directions) and its fixed direction's (same
    distances, straight towards the final model)."""
    s = summary(table).set_index("method").to_dict("index")
    (f_lo, f_hi), (b_lo, b_hi) = null_range(null, "first"), null_range(null, "neighbour")
    items = [Finding(f"Identical-copy null (every checkpoint slot holds the base): overlap with final "
                     f"{f_lo:.2f}–{f_hi:.2f}, neighbour overlap {b_lo:.2f}–{b_hi:.2f}.",
                     {"null_first_lo": f_lo, "null_first_hi": f_hi, "null_neighbour_lo": b_lo,
                      "null_neighbour_hi": b_hi})]
    for m in (P.crosscoder.sft_method, P.crosscoder.rl_method):
        fvl, nb = float(s[m]["overlap_with_final"]), float(s[m]["neighbour_overlap"])
        side = lambda v, lo, hi: "inside" if lo <= v <= hi else ("above" if v > hi else "below")
        items.append(Finding(f"{m}: overlap with final {fvl:.2f} ({side(fvl, f_lo, f_hi)} the null's range), "
                             f"neighbour {nb:.2f} ({side(nb, b_lo, b_hi)}); a value inside the null's range is not "
                             f"evidence of dynamics.",
                             {"model": m, "overlap_with_final": fvl, "neighbour_overlap": nb}))
        for kind, t, what in (("walk", walk, "its random walk (as far and as steady, random directions)"),
                              ("line", line, "its fixed direction (as far, straight towards the final model)")):
            if t is not None and not t.empty:
                g_f, g_n = (seed_range(t, f"{GEOMETRY_NULLS[kind]} {m}", c)[0] for c in ("first", "neighbour"))
                items.append(Finding(f"{what}: overlap with final {g_f:.2f}, neighbour {g_n:.2f}.",
                                     {"model": m, f"{kind}_overlap_with_final": g_f,
                                      f"{kind}_neighbour_overlap": g_n}, style="sub"))
    return Findings("04_feature_dynamics", "nulls", tuple(items))


def findings(P: Params, table: pd.DataFrame, pair_table: pd.DataFrame | None = None,
             null: pd.DataFrame | None = None, walk: pd.DataFrame | None = None,
             line: pd.DataFrame | None = None) -> Findings:
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
        resolved = ("resolved (the seed ranges do not overlap)" if separated else
                    "not resolved (the seed ranges overlap)")
        return Finding(f"{text} (ordering only): {'holds' if holds else 'does not hold'}, {resolved}.",
                       {f"{col}_holds": bool(holds), f"{col}_resolved": separated})
    fvl, nb = "overlap_with_final", "neighbour_overlap"
    return Findings("04_feature_dynamics", "trajectories", (
        Finding(f"Overlap of earlier checkpoints' top-{P.dynamics.top_k} with the final one: {sft} {s[sft][fvl]:.2f} "
                f"{s[sft][fvl + '_range']}, {rl} {s[rl][fvl]:.2f} {s[rl][fvl + '_range']}; neighbour overlap: {sft} "
                f"{s[sft][nb]:.2f} {s[sft][nb + '_range']}, {rl} {s[rl][nb]:.2f} {s[rl][nb + '_range']}.",
                {"sft_overlap_with_final": float(s[sft][fvl]), "rl_overlap_with_final": float(s[rl][fvl]),
                 "sft_neighbour_overlap": float(s[sft][nb]), "rl_neighbour_overlap": float(s[rl][nb])}),
        claim("first", f"{sft} stabilises earlier than {rl}", s[sft][fvl] > s[rl][fvl]),
        claim("neighbour", f"{rl} keeps evolving more than {sft}", s[rl][nb] < s[sft][nb]),
        Finding(f"Tuned-only latents (NRN > {P.dynamics.tuned_threshold}) at the final checkpoint: {sft} "
                f"{s[sft]['tuned_only_final']:.0f}, {rl} {s[rl]['tuned_only_final']:.0f}.",
                {"sft_tuned_only_final": float(s[sft]["tuned_only_final"]),
                 "rl_tuned_only_final": float(s[rl]["tuned_only_final"])}),
        *([] if pair_table is None else [_agreement(P, s, pair_table)]),
        *([] if null is None else verdicts(P, table, null, walk, pair_table, line))))


def _agreement(P: Params, s, pair_table: pd.DataFrame) -> Finding:
    """Whether the pairwise (matched) cross-check points the same way as the trajectory crosscoder."""
    sft, rl = P.crosscoder.sft_method, P.crosscoder.rl_method
    fvl_col, nb_col = "overlap_with_final", "neighbour_overlap"
    g = {m: pair_table[pair_table.method == m] for m in (sft, rl)}
    fvl = {m: g[m][g[m].checkpoint < g[m].checkpoint.max()]["first_vs_last_matched"].mean() for m in g}
    nb = {m: g[m]["neighbour_matched"].mean() for m in g}
    same_fvl = (fvl[sft] > fvl[rl]) == (s[sft][fvl_col] > s[rl][fvl_col])
    same_nb = (nb[rl] < nb[sft]) == (s[rl][nb_col] < s[sft][nb_col])
    return Finding(f"Pairwise cross-check (matched latents): overlap with final {sft} {fvl[sft]:.2f} vs {rl} "
                   f"{fvl[rl]:.2f} ({'agrees' if same_fvl else 'disagrees'} with the trajectory crosscoder); "
                   f"neighbour {sft} {nb[sft]:.2f} vs {rl} {nb[rl]:.2f} ({'agrees' if same_nb else 'disagrees'}).",
                   {"pairwise_first_agrees": bool(same_fvl), "pairwise_neighbour_agrees": bool(same_nb)})


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


def walk_gap(walk: pd.DataFrame | None, P: Params, claim: str, kind: str = "walk") -> float | None:
    """A geometry null's SFT − RL difference of one claim's overlap (``kind`` "walk": the random walk, "line":
    the fixed direction; None without the null)."""
    if walk is None or walk.empty:
        return None
    sft, rl = paradigms(P)
    label = GEOMETRY_NULLS[kind]
    return seed_range(walk, f"{label} {sft}", claim)[0] - seed_range(walk, f"{label} {rl}", claim)[0]


PAIRWISE_COLUMNS = {"first": "first_vs_last_matched", "neighbour": "neighbour_matched"}


def pairwise_gap(pairs: pd.DataFrame | None, P: Params, claim: str) -> float | None:
    """SFT − RL of one claim's overlap read by the paper-faithful pairwise cross-check (:func:`dynamics.pairwise_table`;
    the checkpoints the claim reads), or None without it."""
    if pairs is None or pairs.empty:
        return None
    sft, rl = paradigms(P)
    col = PAIRWISE_COLUMNS[claim]

    def mean(method: str) -> float:
        g = pairs[(pairs.method == method) & pairs[col].notna()]
        g = g[g.checkpoint < g.checkpoint.max()] if claim == "first" else g
        return float(g[col].mean())
    return mean(sft) - mean(rl)


def verdicts(P: Params, table: pd.DataFrame, null: pd.DataFrame, walk: pd.DataFrame | None = None,
             pairs: pd.DataFrame | None = None, line: pd.DataFrame | None = None,
             dating: tuple[bool, bool, str] | None = None) -> list[Verdict]:
    """The paper's dynamics claims, each decided only where the crosscoder seeds' [min, max] ranges of the two
    paradigms do not overlap and, given the pairwise cross-check (``pairs``), where it orders the two paradigms
    as the trajectory crosscoders do (two instruments that disagree decide nothing: not testable at this power);
    the paradigm's value must lie beyond the identical-copy null's range in the claimed direction and, with the
    random-walk null (:func:`walk_table`) and the fixed-direction null (:func:`line_table`), the SFT − RL
    difference must exceed the one that each of them shows (same distances and steps in random directions; same
    distances straight to the final model): an ordering the geometry alone gives is not evidence of dynamics.
    Power comes from the known-cause dating validation (:func:`~rlgen_utils.studies.verdicts.dating_demonstrated`):
    a claim is "not reproduced" only where notebook 04 has dated a change whose date is known, and "reproduced"
    only where it decided no control pair "reproduced"; else it is not testable at this power. ``dating`` gives
    that (power, clean, sentence) instead of the validation file: the validation's own runs, which cannot read
    their power from their own outcome, pass ``(True, True, …)``."""
    sft, rl = paradigms(P)
    seeds = P.dynamics.crosscoder_seeds
    power, clean, power_text = dating or dating_demonstrated(dating_file(P))
    out = []
    for claim, col, better in (
            (f"{sft} stabilises early (its earlier checkpoints overlap its final one more than {rl}'s)", "first",
             "higher"),
            (f"{rl} keeps evolving (its neighbouring checkpoints overlap less than {sft}'s)", "neighbour", "lower")):
        (a, a_lo, a_hi), (b, b_lo, b_hi) = seed_range(table, sft, col), seed_range(table, rl, col)
        n_lo, n_hi = null_range(null, col)
        gap, pw, lgap = walk_gap(walk, P, col), pairwise_gap(pairs, P, col), walk_gap(line, P, col, "line")
        separated = a_hi < b_lo or b_hi < a_lo
        agree = pw is None or (pw > 0) == (a > b)
        # sft above rl and above what identical checkpoints give / rl below sft and below the null; and the
        # difference beyond what the weights' geometry alone gives
        seen = a > b and a > n_hi if better == "higher" else b < a and b < n_lo
        seen = seen and (gap is None or a - b > gap) and (lgap is None or a - b > lgap)
        out.append(Verdict(
            claim=claim, notebook="04_feature_dynamics", estimate=a - b, interval=None,
            null=f"identical-copy trajectory {n_lo:.2f}–{n_hi:.2f}" +
                 ("" if gap is None else f"; random walks of the same geometry: {sft} − {rl} {gap:+.2f}") +
                 ("" if lgap is None else f"; fixed directions to the final models: {sft} − {rl} {lgap:+.2f}"),
            decision=decide(seen, b > a, separated and agree and (clean if seen else power)),
            limit=f"[min, max] over crosscoder seeds {seeds}: {sft} [{a_lo:.2f}, {a_hi:.2f}], {rl} [{b_lo:.2f}, "
                  f"{b_hi:.2f}] ({'separated' if separated else 'overlapping'})"
                  + ("" if pw is None else f"; pairwise cross-check {sft} − {rl} {pw:+.2f} "
                                           f"({'agrees' if agree else 'disagrees: the instruments contradict'})")
                  + f"; {power_text}",
            detail=f"{sft} {a:.2f}, {rl} {b:.2f}"))
    return out
