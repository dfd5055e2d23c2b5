"""Ablation validation: notebook 06's edit on what notebook 03 found, and on what 06's own selection picks, in a
fine-tune whose cause is known.

    .venv/bin/python benchmarks/bench_ablation_validation.py --params params/default.yaml \
        [--doses 1.0] [--n-random 20] [--write docs/ablation_validation.md]

Needs the run's base (notebook 01). For every dose of ``params: known_causes`` (or ``--doses``) it trains (or
finds) the behavioural fine-tune and the control of the same dose, runs notebook 03 on the pair through the runner
exactly as ``benchmarks/bench_instrument_validation.py`` does (the same params file and run folder: a pair that
bench already ran is read back), and then, in this process, zeroes the latents 03's pair crosscoder found
tuned-only in the fine-tune while it answers the behaviour's held-out probes, against ``--n-random``
frequency-matched random sets (:func:`rlgen_utils.studies.known_ablation.ablation`). Then 06's selection rule runs
on the same pair's three-model crosscoder, the caused answer standing for "right", once on the fine-tune and once on
the control, and its picks are zeroed the same way (:func:`rlgen_utils.studies.known_selection.selection`). With
``--write`` the Markdown page and its rows as JSON beside it are written.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import pandas as pd
from common import chosen_doses, code_commit, run_notebook, write_pair_params  # also puts the repo on sys.path

from rlgen_utils.run import config, session
from rlgen_utils.run.rundir import RunDir
from rlgen_utils.studies import known_ablation, known_selection, render
from rlgen_utils.studies import known_causes as kc

EXPECTATION = (
    "Written before the first run (expectation): at dose 1, where notebook 03's pair crosscoder found tuned-only "
    "latents in the behavioural fine-tune (docs/instrument_validation.md), zeroing them lowers the share of `cmp` "
    "probes answered with the minimum by more than every random set of the same size and firing frequency; at "
    "doses 0.1 and 0.3 it found none, so there is nothing to ablate.")

SELECTION_EXPECTATION = (
    "Written before the first run of 06's selection (expectation): on the fine-tune, at every dose (it answers "
    "0.43–0.88 of the probes with the minimum), 06's contrast rule keeps latents, and zeroing them lowers the "
    "caused share of the test half by more than every random set of the same size and firing frequency; on the "
    "control, whose answers are the base's, there are fewer than `interventions.min_samples` target samples or "
    "no latent passes, so nothing is ablated and no row \"lowers\" the cause. A first run (commit 77930c6) took as "
    "controls the probes the fine-tune did not answer the caused way, which are not 06's controls, and its contrast "
    "rule kept no latent at any dose (48/46, 66/28 and 80/16 target/control samples at doses 0.1, 0.3, 1); the "
    "controls are now 06's own, the probes the base answers the caused way (06: base right). Written before the "
    "paper rule's first run (expectation): Score_k keeps latents at every dose of the fine-tune (its threshold always "
    "keeps some), and zeroing them lowers the caused share beyond every random set at dose 1.")


def expected(table: str, rule: str, model: str, dose: float) -> str:
    """What the expectations above said each row would show (``table``: ``03`` for the found-latents rows,
    ``06`` for the selection rows)."""
    if table == "03":
        return "found, lowers" if dose == 1.0 else "nothing found"
    if model == "control":
        return "does not lower"
    if rule == "contrast":
        return "kept, lowers"
    return "kept, lowers" if dose == 1.0 else "kept"


def seen(r: dict, found: str) -> str:
    """What a row showed, in the words of :func:`expected`."""
    if not r[found]:
        return "nothing found" if found == "found" else "nothing kept"
    return ("found" if found == "found" else "kept") + (", lowers" if r["lowers"] else ", does not lower")


def held(want: str, got: str) -> bool:
    if want == "does not lower":
        return "lowers" not in got.replace("does not lower", "")
    return got == want or (want == "kept" and got.startswith("kept"))


def outcome(rows: list[dict], picks: list[dict]) -> pd.DataFrame:
    """The expectations, row by row: what each (table, rule, model, dose) was expected to show and what it showed."""
    out = [{"table": "03's tuned-only latents", "rule": "", "model": "fine-tune", "dose": r["dose"],
            "expected": (w := expected("03", "", "fine-tune", r["dose"])), "seen": (g := seen(r, "found")),
            "as expected": held(w, g)} for r in rows]
    out += [{"table": "06's selection", "rule": r["rule"], "model": r["model"], "dose": r["dose"],
             "expected": (w := expected("06", r["rule"], r["model"], r["dose"])), "seen": (g := seen(r, "selected")),
             "as expected": held(w, g)} for r in picks]
    return pd.DataFrame(out)


def compute(P, doses: list[float], n_random: int) -> dict:
    """Every row of the page, computed (fine-tunes and notebook-03 runs read back where an earlier process made them)."""
    t0, rows, picks = time.perf_counter(), [], []
    base_share = kc.cause_rate(P, RunDir(P).base(), "behaviour")
    for dose in doses:
        tuned, control = kc.ensure_fine_tune(P, "behaviour", dose), kc.ensure_fine_tune(P, "control", dose)
        path, Q = write_pair_params(P, kc.byo_params(P, "behaviour", dose, tuned, control))
        run_notebook(path, "03_crosscoder")
        r = known_ablation.ablation(P, Q, "behaviour", n_random)
        drops = r["random_drops"]
        rows.append({"cause": "behaviour", "dose": dose, "base": base_share, **r,
                     "removed": r["ablated"] is not None and r["ablated"] <= base_share,
                     "random drops (max)": max(drops) if drops else None,
                     "random drops (mean)": sum(drops) / len(drops) if drops else None})
        print(f"[ablation] behaviour dose {dose:g}: {r['found']} found, caused share {r['plain']:.2f} → "
              f"{r['ablated'] if r['ablated'] is None else round(r['ablated'], 2)}, lowers it beyond the null "
              f"{r['lowers']}", flush=True)
        for model, which in (("fine-tune", 1), ("control", 2)):   # 06's selection on the same pair run
            for r in known_selection.selections(P, Q, "behaviour", which, n_random, rules=("contrast", "paper")):
                drops = r.pop("random_drops")
                picks.append({"model": model, "dose": dose, **r, "removed": r["ablated"] is not None
                              and r["ablated"] <= r["base"], "random drops (max)": max(drops) if drops else None})
                print(f"[selection] {r['rule']} rule, {model} dose {dose:g}: {r['target']} target / {r['control']} "
                      f"control samples, {r['selected']} selected, lowers the cause {r['lowers']}", flush=True)
    return {"commit": code_commit(), "params": P.name, "seconds": time.perf_counter() - t0, "n_random": n_random,
            "doses": doses, "rows": rows, "selection": picks}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--params", default="params/default.yaml")
    ap.add_argument("--doses", nargs="+", type=float, default=None,
                    help="a subset of known_causes.doses to run (default: all of them); the page names the doses run")
    ap.add_argument("--n-random", type=int, default=20, help="random latent sets of the found set's size and firing "
                    "frequency (the permutation p-value's floor is 1 / (n + 1))")
    ap.add_argument("--write", default=None)
    ap.add_argument("--from-json", action="store_true", help="render the page again from the rows beside --write "
                    "(no compute; the page names the commit that computed them)")
    args = ap.parse_args()
    P = config.load_params(args.params)
    if args.from_json:
        if not args.write:
            ap.error("--from-json needs --write (the page whose JSON holds the rows)")
        data = json.loads(Path(args.write).with_suffix(".json").read_text())
        data["rendered"] = code_commit()
    else:
        session.init(P)
        data = compute(P, chosen_doses(ap, args.doses, P), args.n_random)
    text = page(P, data)
    print(text)
    if args.write:
        out = Path(args.write)
        out.write_text(text)
        if not args.from_json:
            out.with_suffix(".json").write_text(json.dumps(data, indent=1))


def page(P, data: dict) -> str:
    """The Markdown page from the computed rows (``data``, as the JSON beside the page holds them)."""
    K, I, rows, picks = P.known_causes, P.interventions, data["rows"], data["selection"]
    commit, seconds, n_random = data["commit"], data["seconds"], data.get("n_random", 20)
    doses = data.get("doses") or sorted({r["dose"] for r in rows})
    again = f"; page rendered again from those rows at commit {data['rendered']}" if data.get("rendered") else ""
    return "\n".join([
        "# Ablation validation: zeroing what was found in a fine-tune whose cause is known", "",
        f"Written by `benchmarks/bench_ablation_validation.py` (commit {commit}, params `{P.name}`, "
        f"{seconds / 60:.1f} min on this machine, notebook-03 runs read back from earlier run folders included{again}). "
        f"The behavioural fine-tune of `rlgen_utils.studies.known_causes` ({K.n_rows} rows, {K.epochs} epochs at "
        f"{K.lr:g}, a share *dose* of them `cmp` prompts answered with the minimum) is handed to notebook 03 beside "
        "the control of the same dose, as for docs/instrument_validation.md. *found*: the latents 03's pair "
        f"crosscoder (base vs the fine-tune) calls tuned-only (NRN > {P.crosscoder.nrn_high}). Notebook 06's edit "
        f"(`method.latent_edits`, encode `{I.encode}`, positions `{I.edit_positions}`) zeroes them while the "
        "fine-tune answers the behaviour's held-out probes; *plain* / *ablated*: the share answered with the "
        "minimum without the edit (the fine-tune's learnt share) / with it; the null: "
        f"{n_random} random sets of the same size and firing "
        "frequency (`known_ablation.ablation`). The ablation *lowers* the cause when the found set's drop exceeds "
        f"every random set's (p ≤ 1/{n_random + 1}), and *removed* it when the ablated share is down to the "
        f"base's own (*base*). Doses run: {', '.join(f'{d:g}' for d in doses)}.", "",
        EXPECTATION, "",
        render.table(pd.DataFrame(rows).drop(columns=["random_drops"]), index=False), "",
        "## Notebook 06's selection on the same pair", "",
        "06's selection (`interventions.family_selection`) on the pair's three-model crosscoder, with the caused "
        "answer as \"right\": *target* the selection half's probes the model answers with the minimum and the base "
        "does not, *control* those the base answers so (06's base-right controls; at most `interventions.n_control`); "
        f"*selected* the latents kept — `contrast` (06's default): the contrast's permutation test at false-discovery "
        f"rate {I.fdr}; `paper`: Score_k above {I.fraction:g} of its maximum; *base* / *plain* / *ablated* "
        "the test half's caused share for the base, "
        "the model, and the model with the selection zeroed, against the same random-set null. Fewer than "
        f"{I.min_samples} target samples (or, for `contrast`, control samples): no selection, as 06 gives such a "
        "family no set.", "",
        SELECTION_EXPECTATION, "",
        render.table(pd.DataFrame(picks), index=False), "",
        "## The expectations, row by row", "",
        render.table(outcome(rows, picks), index=False), ""])


if __name__ == "__main__":
    main()
