"""Notebook 02: SFT against RL at matched KL and at matched in-domain gain, only where both methods have models.

Every checkpoint of a method (and, for SFT, every rate of its grid) is a point: x its KL from the base or its
in-domain gain, y its out-of-domain change. Per method, a monotone curve through the origin
(:func:`rlgen_utils.method.curves.monotone_through_origin`) is read at ``n_points`` x values spread over the range
that **both** methods' models cover (:func:`rlgen_utils.method.curves.covered`) — never beyond it. The
difference RL − SFT at each point carries a bootstrap interval over training seeds (each method's seeds drawn
with replacement, its curve refitted); with one training seed there is no such interval and the table says so.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..method import curves
from .findings import Finding, Findings
from .forgetting import group_of

AXES = {"kl": "KL from the base (nats/token)", "Δ in-domain": "in-domain gain"}


def _points(table: pd.DataFrame, group: str, x: str) -> pd.DataFrame:
    g = table[table.method.map(group_of) == group]
    return g[["seed", x, "Δ OOD"]].rename(columns={x: "x", "Δ OOD": "y"})


def _curve_at(points: pd.DataFrame, at: np.ndarray) -> np.ndarray:
    return curves.evaluate(curves.monotone_through_origin(points.x, points.y), at)


def _seed_draw(points: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    seeds = points.seed.unique()
    drawn = rng.choice(seeds, size=len(seeds), replace=True)
    return pd.concat([points[points.seed == s] for s in drawn], ignore_index=True)


def matched_table(table: pd.DataFrame, x: str = "kl", sft: str = "sft", rl: str = "grpo", n_points: int = 5,
                  n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Per x in the covered range: SFT's and RL's curve (ΔOOD), RL − SFT with its seed-level interval, and the
    number of training seeds behind each; empty when the methods' models share no range of ``x``."""
    a, b = _points(table, sft, x), _points(table, rl, x)
    rng = covered_range(table, x, sft, rl)
    if rng is None:
        return pd.DataFrame()
    at = np.linspace(rng[0], rng[1], n_points) if rng[1] > rng[0] else np.array([rng[0]])
    ya, yb = _curve_at(a, at), _curve_at(b, at)
    n_seeds = min(a.seed.nunique(), b.seed.nunique())
    lo = hi = np.full(len(at), np.nan)
    if n_seeds > 1:
        g = np.random.default_rng(seed)
        draws = np.stack([_curve_at(_seed_draw(b, g), at) - _curve_at(_seed_draw(a, g), at) for _ in range(n_boot)])
        lo, hi = np.quantile(draws, 0.025, axis=0), np.quantile(draws, 0.975, axis=0)
    return pd.DataFrame({"axis": x, "x": at, f"{sft} ΔOOD": ya, f"{rl} ΔOOD": yb, "difference": yb - ya,
                         "lo": lo, "hi": hi, "seeds": n_seeds})


def covered_range(table: pd.DataFrame, x: str = "kl", sft: str = "sft", rl: str = "grpo") -> tuple[float, float] | None:
    """The range of ``x`` both methods' models span (None: they do not overlap)."""
    return curves.covered(_points(table, sft, x).x, _points(table, rl, x).x)


def findings(table: pd.DataFrame, sft: str = "sft", rl: str = "grpo") -> Findings:
    """What the matched comparisons say, only inside the covered ranges."""
    items = []
    for x, label in AXES.items():
        a, b = _points(table, sft, x).x, _points(table, rl, x).x
        rng = covered_range(table, x, sft, rl)
        key = "kl" if x == "kl" else "gain"
        if rng is None:
            items.append(Finding(
                f"At matched {label}: not comparable — {sft}'s models span [{a.min():.4f}, {a.max():.4f}] and "
                f"{rl}'s [{b.min():.4f}, {b.max():.4f}], which do not overlap; no statement is made outside them.",
                {f"{key}_comparable": False}))
            continue
        t = matched_table(table, x, sft, rl)
        mid = t.iloc[len(t) // 2]
        at = float(mid["x"])
        interval = (f" [{mid.lo:+.3f}, {mid.hi:+.3f}] over {int(mid.seeds)} training seeds" if np.isfinite(mid.lo)
                    else " (one training seed: no interval)")
        items.append(Finding(
            f"At matched {label}, over [{rng[0]:.4f}, {rng[1]:.4f}] (the range both methods' models cover): at "
            f"{at:.4f}, {rl} − {sft} ΔOOD = {mid.difference:+.3f}{interval}.",
            {f"{key}_comparable": True, f"{key}_lo": rng[0], f"{key}_hi": rng[1], f"{key}_at": at,
             f"{key}_difference": float(mid.difference),
             f"{key}_difference_lo": float(mid.lo) if np.isfinite(mid.lo) else None,
             f"{key}_difference_hi": float(mid.hi) if np.isfinite(mid.hi) else None}))
    return Findings("02_evaluate", "matched", tuple(items))
