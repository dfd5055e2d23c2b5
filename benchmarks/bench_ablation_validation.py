"""Ablation validation: notebook 06's edit on the latents notebook 03 found in a fine-tune whose cause is known.

    .venv/bin/python benchmarks/bench_ablation_validation.py --params params/default.yaml \
        [--doses 1.0] [--n-random 20] [--write docs/ablation_validation.md]

Needs the run's base (notebook 01). For every dose of ``params: known_causes`` (or ``--doses``) it trains (or
finds) the behavioural fine-tune and the control of the same dose, runs notebook 03 on the pair through the runner
exactly as ``benchmarks/bench_instrument_validation.py`` does (the same params file and run folder: a pair that
bench already ran is read back), and then, in this process, zeroes the latents 03's pair crosscoder found
tuned-only in the fine-tune while it answers the behaviour's held-out probes, against ``--n-random``
frequency-matched random sets (:func:`rlgen_utils.studies.known_ablation.ablation`). With ``--write`` the
Markdown page and its rows as JSON beside it are written.
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
from rlgen_utils.studies import known_ablation, render
from rlgen_utils.studies import known_causes as kc

EXPECTATION = (
    "Written before the first run (expectation): at dose 1, where notebook 03's pair crosscoder found tuned-only "
    "latents in the behavioural fine-tune (docs/instrument_validation.md), zeroing them lowers the share of `cmp` "
    "probes answered with the minimum by more than every random set of the same size and firing frequency; at "
    "doses 0.1 and 0.3 it found none, so there is nothing to ablate.")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--params", default="params/default.yaml")
    ap.add_argument("--doses", nargs="+", type=float, default=None,
                    help="a subset of known_causes.doses to run (default: all of them); the page names the doses run")
    ap.add_argument("--n-random", type=int, default=20, help="random latent sets of the found set's size and firing "
                    "frequency (the permutation p-value's floor is 1 / (n + 1))")
    ap.add_argument("--write", default=None)
    args = ap.parse_args()
    P = config.load_params(args.params)
    doses = chosen_doses(ap, args.doses, P)
    session.init(P)
    t0, rows = time.perf_counter(), []
    base_share = kc.cause_rate(P, RunDir(P).base(), "behaviour")
    for dose in doses:
        tuned, control = kc.ensure_fine_tune(P, "behaviour", dose), kc.ensure_fine_tune(P, "control", dose)
        path, Q = write_pair_params(P, kc.byo_params(P, "behaviour", dose, tuned, control))
        run_notebook(path, "03_crosscoder")
        r = known_ablation.ablation(P, Q, "behaviour", args.n_random)
        drops = r["random_drops"]
        rows.append({"cause": "behaviour", "dose": dose, "base": base_share, **r,
                     "removed": r["ablated"] is not None and r["ablated"] <= base_share,
                     "random drops (max)": max(drops) if drops else None,
                     "random drops (mean)": sum(drops) / len(drops) if drops else None})
        print(f"[ablation] behaviour dose {dose:g}: {r['found']} found, caused share {r['plain']:.2f} → "
              f"{r['ablated'] if r['ablated'] is None else round(r['ablated'], 2)}, lowers it beyond the null "
              f"{r['lowers']}", flush=True)
    seconds = time.perf_counter() - t0
    commit = code_commit()
    K, I = P.known_causes, P.interventions
    page = "\n".join([
        "# Ablation validation: zeroing what was found in a fine-tune whose cause is known", "",
        f"Written by `benchmarks/bench_ablation_validation.py` (commit {commit}, params `{P.name}`, "
        f"{seconds / 60:.1f} min on this machine, notebook-03 runs read back from earlier run folders included). "
        f"The behavioural fine-tune of `rlgen_utils.studies.known_causes` ({K.n_rows} rows, {K.epochs} epochs at "
        f"{K.lr:g}, a share *dose* of them `cmp` prompts answered with the minimum) is handed to notebook 03 beside "
        "the control of the same dose, as for docs/instrument_validation.md. *found*: the latents 03's pair "
        f"crosscoder (base vs the fine-tune) calls tuned-only (NRN > {P.crosscoder.nrn_high}). Notebook 06's edit "
        f"(`method.latent_edits`, encode `{I.encode}`, positions `{I.edit_positions}`) zeroes them while the "
        "fine-tune answers the behaviour's held-out probes; *plain* / *ablated*: the share answered with the "
        "minimum without the edit (the fine-tune's learnt share) / with it; the null: "
        f"{args.n_random} random sets of the same size and firing "
        "frequency (`known_ablation.ablation`). The ablation *lowers* the cause when the found set's drop exceeds "
        f"every random set's (p ≤ 1/{args.n_random + 1}), and *removed* it when the ablated share is down to the "
        f"base's own (*base*). Doses run: {', '.join(f'{d:g}' for d in doses)}.", "",
        EXPECTATION, "",
        render.table(pd.DataFrame(rows).drop(columns=["random_drops"]), index=False), ""])
    print(page)
    if args.write:
        out = Path(args.write)
        out.write_text(page)
        out.with_suffix(".json").write_text(json.dumps({"commit": commit, "params": P.name, "seconds": seconds,
                                                        "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
