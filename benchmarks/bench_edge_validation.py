"""Edge-metric validation: notebook 05, unchanged, on edits of the base whose change to its graph is known.

    .venv/bin/python benchmarks/bench_edge_validation.py --params params/default.yaml \
        [--doses 0.1] [--write docs/edge_validation.md]

Needs the run's base (notebook 01). For every dose of ``params: known_causes`` (or ``--doses``) it writes the three
edits of :mod:`rlgen_utils.studies.known_edges` (``widen``: the base's weakest blocks write 1 + dose times their
output; ``sharpen``: its strongest blocks do; ``reparam``: every block's weights moved, the function unchanged),
hands them to notebook 05 as bring-your-own models (widen as online RL, sharpen as DPO, reparam in the SFT slot,
each paired with the base), runs notebook 05 through the runner and reads every pair's reading of every claim
from its run folder (:func:`rlgen_utils.studies.circuit_claims.pair_readings`). With ``--write`` the Markdown page
and the rows as JSON beside it are written; notebook 05's verdicts read their power from the JSON
(:func:`rlgen_utils.studies.verdicts.edges_demonstrated`).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import pandas as pd
from common import chosen_doses, code_commit, run_notebook, write_pair_params  # also puts the repo on sys.path

from rlgen_utils.run import config, session
from rlgen_utils.studies import circuit_claims, circuits, evaluate, render
from rlgen_utils.studies import known_edges as ke
from rlgen_utils.world import suite

EXPECTATION = (
    "Written before the first run of this design (expectation), after one prototype in a scratch script (the "
    "three edits scored on the base's own answers rather than each model's, without exact ablation or notebook "
    "05's selection): the paper's reading (intensity and entropy) reads `widen` as a rise at every dose; it reads "
    "`sharpen` as no rise at dose 0.1 (prototype: intensity −7 %, entropy −3 %) but is fooled at dose 1 "
    "(prototype: intensity +350 %, entropy +130 %, with 40 % of the answers changed: an edit that damages the "
    "model makes it less sure of its answers, and the scores are gradients of that loss); the scale-free entropy "
    "moved by at most 1.3 % under every edit in the prototype, so it is expected to read no widening as a rise "
    "(no power); `reparam` changes no score beyond float error (no rise at every dose). Exact-ablation scores "
    "(not in the prototype): as the paper's reading.")

METRICS = ("intensity", "entropy", "entropy (scale-free)")


def expected(cid: str, edit: str, dose: float) -> str:
    """The reading :data:`EXPECTATION` states for one (reading, edit, dose), "—" where it states none: `reparam`
    no rise everywhere; the scale-free entropy no widening read as a rise; the paper's and the exact reading
    widen a rise at every dose, sharpen no rise at dose 0.1 and a rise at dose 1."""
    if edit == "reparam":
        return "no rise"
    if cid == "scale_free":
        return "not a rise" if edit == "widen" else "—"
    if edit == "widen":
        return "rise"
    return {0.1: "no rise", 1.0: "rise"}.get(dose, "—")


def outcome(rows: list[dict]) -> pd.DataFrame:
    """The expectation, row by row: what each (reading, edit, dose) was expected to read and what it read."""
    out = []
    for r in rows:
        want = expected(r["claim_id"], r["edit"], r["dose"])
        held = None if want == "—" else (r["reading"] != "rise" if want == "not a rise" else r["reading"] == want)
        out.append({"reading": r["claim_id"], "edit": r["edit"], "dose": r["dose"], "expected": want,
                    "read": r["reading"], "as expected": held})
    return pd.DataFrame(out).sort_values(["reading", "edit", "dose"], kind="stable")


def changes(table: pd.DataFrame, P: config.Params, after: str) -> dict[str, str]:
    """Per score kind at the headline α, the relative change of each of :data:`METRICS` for the pair ending in
    ``after`` (``↑`` / ``↓``: its interval excludes 0)."""
    out = {}
    for kind in ("zero", "exact"):
        t = table[(table.model_after == after) & (table.score == kind) & (table.alpha == P.circuits.main_alpha)]
        t = t.set_index("metric")
        cells = [f"{m.replace(' (scale-free)', ' s-f')} {t.loc[m, 'relative']:+.1%}"
                 + ("↑" if t.loc[m, "delta_lo"] > 0 else "↓" if t.loc[m, "delta_hi"] < 0 else "")
                 for m in METRICS if m in t.index]
        out[f"{kind} scores"] = ", ".join(cells) or "—"
    return out


def run_dose(P: config.Params, dose: float) -> tuple[list[dict], list[dict], dict]:
    """Notebook 05 on the three edits of one dose; the validation rows, one display row per edit, and notebook
    05's own (ungated) verdicts of the widen-vs-sharpen contrast."""
    edited = {e: ke.ensure_edit(P, e, dose) for e in ke.EDITS}
    factors = {e: ke.plan(ke.sender_strength(P), e, dose) for e in ke.EDITS}
    path, Q = write_pair_params(P, ke.byo_params(P, dose, edited))
    run_notebook(path, "05_circuits")
    table = circuits.metric_table(Q, circuits.ensure_all(Q))      # read back under its key: nothing recomputed
    scores = evaluate.ensure_scores(Q, all_checkpoints=False)
    fam = suite.world(Q).in_domain_family
    same = {e: ke.unchanged_share(scores, fam, ke.SLOTS[e]) for e in ke.EDITS}
    rows = ke.rows(dose, circuit_claims.pair_readings(Q, table), factors, same)
    shown = [{"edit": e, "dose": dose, "slot": ke.SLOTS[e],
              "blocks scaled": ", ".join(sorted(factors[e])) or "none (reparametrised)",
              "answers unchanged": same[e],
              **changes(table, Q, ke.SLOTS[e]),
              **{f"reads ({cid})": next((r["reading"] for r in rows if r["edit"] == e and r["claim_id"] == cid), "—")
                 for cid in ("paper", "scale_free", "exact")}} for e in ke.EDITS]
    ungated = {cid: (True, True, "ungated") for cid in ("paper", "scale_free", "exact")}
    contrast = {v.claim: v.decision for v in circuit_claims.verdicts(Q, table, ungated)}
    return rows, shown, contrast


def summary(rows: list[dict]) -> pd.DataFrame:
    """Per reading: the doses at which widen was read as a rise, and the non-widening edits read as one."""
    out = []
    for cid in dict.fromkeys(r["claim_id"] for r in rows):
        rs = [r for r in rows if r["claim_id"] == cid]
        seen = [f"{r['dose']:g}" for r in rs if r["edit"] == "widen" and r["detected"]]
        widen = [r for r in rs if r["edit"] == "widen"]
        others = [r for r in rs if r["edit"] != "widen"]
        false = [f"{r['edit']} {r['dose']:g}" for r in others if r["false positive"]]
        out.append({"reading": cid, "claim": rs[0]["claim"], "widenings read as a rise": f"{len(seen)}/{len(widen)}",
                    "at doses": ", ".join(seen) or "none", "false rises": f"{len(false)}/{len(others)}",
                    "which": ", ".join(false) or "none",
                    "power (a 'not reproduced' can be decided)": bool(seen),
                    "clean (a 'reproduced' can be decided)": bool(others) and not false})
    return pd.DataFrame(out)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--params", default="params/default.yaml")
    ap.add_argument("--doses", nargs="+", type=float, default=None,
                    help="a subset of known_causes.doses to run (default: all of them); the page names the doses run")
    ap.add_argument("--write", default=None)
    args = ap.parse_args()
    P = config.load_params(args.params)
    doses = chosen_doses(ap, args.doses, P)
    session.init(P)
    t0, rows, shown, contrasts = time.perf_counter(), [], [], []
    for dose in doses:
        r, s, c = run_dose(P, dose)
        rows += r
        shown += s
        contrasts.append((dose, c))
        print(f"[edges] dose {dose:g}: " + "; ".join(f"{x['edit']} reads {x['reads (paper)']}" for x in s), flush=True)
    seconds = time.perf_counter() - t0
    commit, C = code_commit(), P.circuits
    strength = ke.sender_strength(P)
    page = "\n".join([
        "# Edge-metric validation: notebook 05 on edits whose change to the graph is known", "",
        f"Written by `benchmarks/bench_edge_validation.py` (commit {commit}, params `{P.name}`, {seconds / 60:.1f} min "
        "on this machine). No fine-tune is known to spread a model's dependence over more of its graph, so the known "
        "causes are edits of the base's weights (`rlgen_utils.studies.known_edges`, `rlgen_utils.method.weight_edits`), "
        "each at factor 1 + *dose*: `widen` — the weakest half of the blocks (by the base's mean outgoing "
        f"|zero-ablation score| on {C.n_samples} in-domain test questions: "
        + ", ".join(f"{s} {v:.3g}" for s, v in sorted(strength.items(), key=lambda kv: kv[1]))
        + ") write that factor times their output, so edges that carried little carry more; `sharpen` — the "
        "strongest half do, a narrowing; `reparam` — attention value × factor and output ÷ factor, MLP up × factor "
        "and down ÷ factor in every block: the weights move, the function does not. Notebook 05 runs unchanged on "
        "the three as bring-your-own models (widen in the online-RL slot, sharpen in the DPO slot, reparam in the "
        "SFT slot, each paired with the base), with its own question selection, each model's own answers, "
        f"α = {C.main_alpha} and its {C.min_effect:.0%} minimum effect. A reading *detects* the widening when it "
        "reads `widen` as a rise; it reads a *false rise* when it reads `sharpen` or `reparam` as one. Notebook "
        "05 decides \"not reproduced\" only with a reading that detected a widening, and \"reproduced\" only with "
        "one that read no false rise (`verdicts.edges_demonstrated`). "
        f"Doses run: {', '.join(f'{d:g}' for d in doses)}.", "",
        EXPECTATION, "",
        "## Per reading", "",
        render.table(summary(rows), index=False), "",
        "## The expectation, row by row", "",
        render.table(outcome(rows), index=False), "",
        "## Every edit", "",
        "*answers unchanged*: share of the in-domain test questions the edited model answers exactly as the base "
        "does; changes are relative to the base, ↑ / ↓ where the paired bootstrap interval excludes 0.", "",
        render.table(pd.DataFrame(shown), index=False), "",
        "Notebook 05's own verdict of each claim on these runs (widen as online RL against sharpen as DPO; "
        "\"reproduced\" is the right answer), decided without the gate:", "",
        *[f"- dose {d:g}: " + "; ".join(f"{k}: **{v}**" for k, v in c.items()) for d, c in contrasts], ""])
    print(page)
    if args.write:
        out = Path(args.write)
        out.write_text(page)
        out.with_suffix(".json").write_text(json.dumps({"commit": commit, "params": P.name, "seconds": seconds,
                                                        "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
