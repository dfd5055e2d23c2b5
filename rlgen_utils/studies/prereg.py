"""Notebook 02: the pre-registration (``eval.preregistration``) against what the run measured.

Every expectation is checked on each family it names (a family, or every family of a transfer class) and, for
a class, on its families pooled (every sample of every family once). A row *matches* when the 95 % interval of
the contrast — hierarchical over training seeds and paired samples (:func:`evaluate.delta_long`) — has the
expected outcome (:func:`rlgen_utils.run.preregistration.matches`). Nothing here is tuned after the fact: the file
is read as committed, and a mismatch is reported as one.
"""
from __future__ import annotations

import pandas as pd

from ..run.config import Params
from ..run.preregistration import Preregistration, load_preregistration, matches
from ..run.rundir import REPO
from ..world import suite
from . import evaluate
from .findings import Finding, Findings


def load(P: Params) -> Preregistration | None:
    """The run's pre-registration, or None when ``eval.preregistration`` names none."""
    if not P.eval.preregistration:
        return None
    return load_preregistration(REPO / P.eval.preregistration)  # an absolute path stays as it is


def class_table(P: Params, prereg: Preregistration) -> pd.DataFrame:
    """Per evaluation family: the class the world declares and the class the pre-registration expected."""
    fams = suite.world(P).eval_families()
    rows = [{"family": n, "role": f.role, "declared class": f.transfer or "unclassified",
             "pre-registered class": prereg.families.get(n, "(missing)")} for n, f in fams.items()]
    df = pd.DataFrame(rows)
    return df.assign(agree=df["declared class"] == df["pre-registered class"])


def _pooled(df: pd.DataFrame, families: list[str], label: str) -> pd.DataFrame:
    sel = df[df.family.isin(families)]
    return sel.assign(sample=sel.family + "/" + sel["sample"].astype(str), family=label)


def outcome_table(P: Params, prereg: Preregistration, scores: pd.DataFrame) -> pd.DataFrame:
    """One row per (expectation, family or pooled class): expected outcome, measured Δ [lo, hi], matched."""
    known = set(suite.world(P).eval_families())
    rows = []
    for i, e in enumerate(prereg.expectations):
        a, b = e.contrast
        if not {a, b} <= set(scores.method):
            rows.append({"#": i + 1, "contrast": f"{a} − {b}", "applies_to": e.applies_to, "scope": "—", "expected": e.expect,
                         "measured": "model not trained", "matched": None, "why": e.why})
            continue
        fams = [f for f, c in prereg.families.items() if c == e.applies_to and f in known]
        fams = fams or ([e.applies_to] if e.applies_to in known else [])
        scopes = [(f, scores[scores.family == f]) for f in fams]
        if len(fams) > 1:
            scopes.append((f"{e.applies_to} (pooled)", _pooled(scores, fams, f"{e.applies_to} (pooled)")))
        for scope, df in scopes:
            d = evaluate.delta_long(df, a, b)
            if d.empty:
                continue
            r = d.iloc[0]
            rows.append({"#": i + 1, "contrast": f"{a} − {b}", "applies_to": e.applies_to, "scope": scope, "expected": e.expect,
                         "measured": f"{r.delta:+.3f} [{r.lo:+.3f}, {r.hi:+.3f}]", "delta": r.delta, "lo": r.lo,
                         "hi": r.hi, "matched": matches(e.expect, r.lo, r.hi), "why": e.why})
        if not fams:
            rows.append({"#": i + 1, "contrast": f"{a} − {b}", "applies_to": e.applies_to, "scope": "—", "expected": e.expect,
                         "measured": "no such family or class in this run", "matched": None, "why": e.why})
    return pd.DataFrame(rows)


def summary(table: pd.DataFrame) -> Findings:
    """How many rows matched, and which did not (pooled rows named first)."""
    checked = table[table.matched.notna()]
    if checked.empty:
        return Findings("02_evaluate", "preregistration",
                        (Finding("No pre-registered expectation could be checked on this run.", style="line"),))
    ok = checked.matched.astype(bool)
    items = [Finding(f"{int(ok.sum())} of {len(checked)} pre-registered outcomes matched.",
                     {"matched": int(ok.sum()), "checked": len(checked)}, style="line")]
    for r in checked[~ok].itertuples():
        items.append(Finding(f"did **not** match: {r.contrast} on {r.scope}: expected {r.expected}, measured "
                             f"{r.measured}", {"row": int(r[1]), "scope": str(r.scope)}))
    return Findings("02_evaluate", "preregistration", tuple(items))
