"""Dating validation: notebook 04, unchanged, on fine-tunes whose change begins at a known checkpoint.

    .venv/bin/python benchmarks/bench_dating_validation.py --params params/default.yaml \
        [--doses 1.0] [--write docs/dating_validation.md]

Needs the run's base (notebook 01). For every dose of ``params: known_causes`` (or ``--doses``) it trains the
timed fine-tunes of :mod:`rlgen_utils.studies.known_dating` — ``early`` (the behaviour in every segment), ``late``
(the control's rows, then the behaviour in the last segment) and two controls — and runs notebook 04 through the
runner twice: the cause pair (``early`` in the SFT slot, ``late`` in the RL slot) and the control pair (a control
in each slot, two training seeds). From each run folder it reads notebook 04's tables, decides its two claims as
notebook 04 does but without the power that notebook 04 reads from this page (``dynamics_claims.verdicts`` with
``dating``), and dates each slot's final latents (:func:`~rlgen_utils.studies.known_dating.dated_at`). With
``--write`` the Markdown page and its rows as JSON beside it are written.
"""
from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict
from pathlib import Path

import pandas as pd
from common import chosen_doses, code_commit, run_notebook, write_pair_params  # also puts the repo on sys.path

from rlgen_utils.run import config, session
from rlgen_utils.run.rundir import RunDir
from rlgen_utils.studies import dynamics, dynamics_claims, render
from rlgen_utils.studies import known_causes as kc
from rlgen_utils.studies import known_dating as kd

EXPECTATION = (
    "Written before the first run of this design (expectation): at dose 1 notebook 04 decides that the SFT slot "
    "(`early`) \"stabilises early\" against `late`, dates `late` at the last checkpoint and `early` before it; "
    "the control pair is not decided \"reproduced\". At doses 0.1 and 0.3 the behaviour is learnt on fewer prompts "
    "and notebook 03's pair crosscoder did not see it at either dose (docs/instrument_validation.md), so the "
    "trajectory crosscoder — narrower, fewer steps, half the texts — is expected to miss it there: `early` dated "
    "late or the verdict not testable. Two earlier designs ran at dose 1 before this was written. (1) `late`'s "
    "control segments on their own cosine schedule and its last segment on a fresh one: \"stabilises early\" "
    "reproduced, `early` dated at 2, `late` at 5; the criterion first written (`early` at 1) was relaxed to "
    "`early` before the last checkpoint, since a behaviour is learnt over more than one epoch. (2) One cosine "
    "schedule over all five segments: `late` learnt the behaviour on only 0.17 of the probes (its last segment "
    "trained at the schedule's tail), both slots were dated at 2 and nothing was decided \"reproduced\"; hence "
    "the constant rate.")


def run_pair(P: config.Params, pair: str, dose: float, sft: list[Path], rl: list[Path]) -> tuple[dict, bool]:
    """Notebook 04 on one pair through the runner; its validation row and whether its run folder already held
    notebook 04's verdicts (an earlier process computed it: this one only reads it back)."""
    path, Q = write_pair_params(P, kd.byo_params(P, pair, dose, sft, rl))
    resumed = (RunDir(Q).path / "verdicts" / "04_feature_dynamics.json").exists()
    run_notebook(path, "04_feature_dynamics")
    # notebook 04's tables, from the crosscoders it trained (read back under their keys: nothing is trained here),
    # and its verdicts decided as it decides them, except that their power is not read from this validation's own
    # outcome (notebook 04 gates them on docs/dating_validation.json: the validation cannot)
    table, null = dynamics.overlap_table(Q, dynamics.ensure_all(Q)), dynamics.null_table(Q)
    v04 = [asdict(v) for v in dynamics_claims.verdicts(Q, table, null, dynamics.walk_table(Q), dynamics.pairwise_table(Q),
                                                        dynamics.line_table(Q), dating=(True, True, "ungated"))]
    dated = {m: kd.dated_at(table, null, m) for m in ("sft", "grpo")}
    learnt = {f"{slot} learnt by checkpoint": " / ".join(f"{kc.cause_rate(P, c, 'behaviour'):.2f}" for c in ckpts)
              for slot, ckpts in (("sft slot", sft), ("rl slot", rl))}
    return {**kd.reading(pair, Q.posttrain.n_checkpoints, v04, dated), **learnt}, resumed


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
    t0, rows, resumed = time.perf_counter(), [], []
    for dose in doses:
        models = {"early": kd.ensure_timed_fine_tune(P, "early", dose), "late": kd.ensure_timed_fine_tune(P, "late", dose),
                  "control": kd.ensure_timed_fine_tune(P, "control", dose),
                  "control 2": kd.ensure_timed_fine_tune(P, "control", dose, seed=1)}
        for pair, (a, b) in (("cause", ("early", "late")), ("control", ("control", "control 2"))):
            row, was_done = run_pair(P, pair, dose, models[a], models[b])
            rows.append({"dose": dose, **row})
            resumed += [f"{pair} {dose:g}"] if was_done else []
            print(f"[dating] {pair} pair, dose {dose:g}: stabilises early {row['stabilises early']}; dated "
                  f"{row['sft slot dated at']} / {row['rl slot dated at']}", flush=True)
    seconds = time.perf_counter() - t0
    commit = code_commit()
    K, N = P.known_causes, P.posttrain.n_checkpoints
    cause = [r for r in rows if r["pair"] == "cause"]
    control = [r for r in rows if r["pair"] == "control"]
    page = "\n".join([
        "# Dating validation: fine-tunes whose change begins at a known checkpoint", "",
        f"Written by `benchmarks/bench_dating_validation.py` (commit {commit}, params `{P.name}`, {seconds / 60:.1f} "
        "min on this machine" + (f"; read back from earlier run folders, their time not in it: {', '.join(resumed)}"
                                 if resumed else "") + "). "
        f"Fine-tunes of the base (`rlgen_utils.studies.known_dating`): {N} segments of one epoch over "
        f"{K.n_rows} rows, SFT at {K.lr:g} held constant after the warm-up; `early` carries the behaviour (`cmp` "
        "answered with the minimum, a share "
        f"*dose* of the rows) in every segment, `late` the control's rows (the same prompts answered as the base "
        f"answers them) in segments 1–{N - 1} and the behaviour's in segment {N}, `control` the control's rows "
        "throughout (training seeds 0 and 1). Notebook 04 runs unchanged on each pair as bring-your-own "
        "checkpoints: the cause pair has `early` in the SFT slot and `late` in the RL slot, the control pair a "
        "control in each. *Dated at*: the first checkpoint from which every earlier checkpoint's top-K overlaps "
        "the final one (lowest over crosscoder seeds) above the identical-copy null's highest "
        f"(`known_dating.dated_at`; {N} = only the final holds its latents). *Learnt by checkpoint*: the share of "
        "held-out `cmp` probes each checkpoint answers with the minimum (the behaviour's own date). The cause pair "
        f"is *detected* when notebook 04 decides \"stabilises early\" reproduced, dates `late` at {N} and `early` "
        f"before it; the control pair is a false positive when it decides \"reproduced\". Doses run: "
        f"{', '.join(f'{d:g}' for d in doses)}.", "",
        EXPECTATION, "",
        f"Detected: {sum(bool(r['detected']) for r in cause)} of {len(cause)} cause pairs; false positives: "
        f"{sum(bool(r['false positive']) for r in control)} of {len(control)} control pairs.", "",
        render.table(pd.DataFrame(rows), index=False), ""])
    print(page)
    if args.write:
        out = Path(args.write)
        out.write_text(page)
        out.with_suffix(".json").write_text(json.dumps({"commit": commit, "params": P.name, "seconds": seconds,
                                                        "resumed": resumed, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
