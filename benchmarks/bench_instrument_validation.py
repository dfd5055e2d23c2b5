"""Instrument validation: notebook 03's instruments, unchanged, on fine-tunes of the base whose cause is known.

    .venv/bin/python benchmarks/bench_instrument_validation.py --params params/default.yaml \
        [--corpora gold generations] [--doses 1.0] [--write docs/instrument_validation.md]

Needs the run's base (notebook 01). For every known cause and dose of ``params: known_causes``
(:mod:`rlgen_utils.studies.known_causes`) it trains the fine-tune and a control of the same budget, hands the two
to notebook 03 as bring-your-own checkpoints (cause in the SFT slot, control in the RL slot; for the control row,
a control against a second control trained with another seed), runs notebook 03 through the runner, and reads
what each instrument saw from the run folder: the pair and three-model crosscoders by notebook 03's own verdicts
against their nulls, the activation difference lens by its relative norm against the control and its null.
Every pair is read once per ``--corpora`` entry (``crosscoder.corpus``: the gold corpus, and the
models' own generations on the in-domain prompts), so the corpus's effect on detection is a row of the page.
``--doses`` runs a subset of the doses (the page names it). The base's sae-lens SAE is trained once, on the first
pair's corpus, and read by every pair; each pair's run folder starts with the previous pair's crosscoders on its
corpus, and those it shares (keyed by the models they read) are read, not trained again. The page's time names the
runs read back from an earlier process's folders.
With ``--write`` the Markdown page and the rows as JSON beside it (which notebook 03's verdicts read) are written.
"""
from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from dataclasses import asdict
from pathlib import Path

import pandas as pd
from common import chosen_doses, code_commit, run_notebook, write_pair_params  # also puts the repo on sys.path

from rlgen_utils.run import config, session
from rlgen_utils.run.artifacts import read_json
from rlgen_utils.run.rundir import RunDir
from rlgen_utils.studies import baselines, findings, render, verdicts
from rlgen_utils.studies import known_causes as kc


def run_pair(P, cause: str, dose: float, tuned: Path, other: Path, sae: Path | None, earlier: config.Params | None
             ) -> tuple[list[dict], bool, Path, config.Params, list[str]]:
    """Notebook 03 on (tuned, other) through the runner; the instruments' readings from its run folder, whether
    that folder already held notebook 03's verdicts (an earlier process computed the pair: this one only reads it
    back), the base's sae-lens SAE it read (``sae`` when given: one SAE of the base serves every pair; else the one
    trained on this pair's corpus), the pair's params, and the crosscoders it read from ``earlier``'s run folder
    (the previous pair on this corpus: :func:`~rlgen_utils.studies.known_causes.adopt_crosscoders`)."""
    path, Q = write_pair_params(P, kc.byo_params(P, cause, dose, tuned, other))
    resumed = (RunDir(Q).path / "verdicts" / "03_crosscoder.json").exists()
    copied = kc.adopt_crosscoders(Q, earlier) if earlier is not None and not resumed else {}
    run_notebook(path, "03_crosscoder")
    v03 = [asdict(v) for v in verdicts.load_all(Q) if v.notebook == "03_crosscoder"]
    lens = read_json(RunDir(Q).path / "crosscoders" / "difflens" / "lens.json")["models"]
    values = {k: v for f in findings.load_all(Q, "03_crosscoder") if f.topic == "crosscoders" for it in f.items
              if isinstance(it, findings.Finding) for k, v in it.values.items()}
    sae = sae or baselines.ensure_sae_baseline(Q)
    fvu = baselines.sae_baseline(Q, sae_dir=sae).set_index("model")["held-out FVU (base's SAE)"].to_dict()
    return kc.detections(v03, lens, values, fvu), resumed, sae, Q, kc.adopted(Q, copied)


def _resumed(resumed: list[str], runs: list[str]) -> str:
    """The time's caveat: which notebook-03 runs an earlier process had computed (their time is not in it), named
    by the shorter list: those read back, or those this process computed."""
    if not resumed:
        return ", every notebook-03 run computed by this process"
    computed = [r for r in runs if r not in resumed]
    named = (f"read back: {', '.join(resumed)}" if len(resumed) <= len(computed)
             else f"computed here: {', '.join(computed) or 'none'}")
    return (f"; {len(resumed)} of {len(runs)} notebook-03 runs were read back from run folders an earlier process "
            f"had computed, and their time is not in it ({named})")


def _reused(reused: dict[str, list[str]]) -> str:
    """What the runs read from the previous pair's run folder instead of training (a crosscoder is keyed by the
    models it reads, so one the two pairs share carries the same key): each crosscoder folder and how many runs
    read it."""
    count = Counter(n for names in reused.values() for n in names)
    if not count:
        return "No run read a crosscoder from another pair's run folder. "
    return (f"{sum(count.values())} crosscoders were read from the previous pair's run folder instead of trained, "
            "since they read only models the two pairs share (the base's identical-copy nulls; the control's "
            "pairs): " + ", ".join(f"`{n}` × {k}" for n, k in sorted(count.items())) + ". ")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--params", default="params/default.yaml")
    ap.add_argument("--corpora", nargs="+", default=["gold", "generations"], choices=["gold", "generations"],
                    help="crosscoder corpora each pair is read on (crosscoder.corpus)")
    ap.add_argument("--doses", nargs="+", type=float, default=None,
                    help="a subset of known_causes.doses to run (default: all of them); the page names the doses run")
    ap.add_argument("--no-reuse", action="store_true",
                    help="every pair trains all its crosscoders (the baseline the reuse is timed against)")
    ap.add_argument("--write", default=None)
    args = ap.parse_args()
    P = config.load_params(args.params)
    K = P.known_causes
    doses = chosen_doses(ap, args.doses, P)
    session.init(P)
    t0, rows, runs, resumed, sae = time.perf_counter(), [], [], [], None
    last, reused = {}, {}   # per corpus: the previous pair's params; per run: the crosscoders it read from it
    base_rates = {c: kc.cause_rate(P, RunDir(P).base(), c) for c in K.causes if c != "control"}
    for dose in doses:
        control = kc.ensure_fine_tune(P, "control", dose)
        for cause in K.causes:
            tuned = kc.ensure_fine_tune(P, cause, dose)
            other = kc.ensure_fine_tune(P, "control", dose, seed=1) if cause == "control" else control
            rate = kc.cause_rate(P, tuned, cause)
            for corpus in args.corpora:
                Pc = P.model_copy(update={"crosscoder": P.crosscoder.model_copy(update={"corpus": corpus})})
                earlier = None if args.no_reuse else last.get(corpus)
                seen, was_done, sae, last[corpus], got = run_pair(Pc, cause, dose, tuned, other, sae, earlier)
                runs.append(f"{cause} {dose:g} ({corpus})")
                reused[runs[-1]] = got
                resumed += runs[-1:] if was_done else []
                rows += [{"cause": cause, "dose": dose, "corpus": corpus, "learnt": rate,
                          "base": base_rates.get(cause), **r} for r in seen]
                print(f"[validation] {cause} dose {dose:g} ({corpus} corpus): learnt {rate:.2f}; "
                      + ", ".join(f"{r['instrument']} {'seen' if r['detected'] else '-'}" for r in seen), flush=True)
    seconds = time.perf_counter() - t0
    commit = code_commit()
    summary = kc.recall_table(rows)
    detail = [{k: (f"{v:.2f}" if isinstance(v, float) else v) for k, v in r.items()} for r in rows]
    page = "\n".join([
        "# Instrument validation: known-cause fine-tunes", "",
        f"Written by `benchmarks/bench_instrument_validation.py` (commit {commit}, params `{P.name}`, "
        f"{seconds / 60:.1f} min on this machine{_resumed(resumed, runs)}). " + _reused(reused) +
        "Fine-tunes of the base (`rlgen_utils.studies.known_causes`): "
        f"{K.n_rows} rows, {K.epochs} epochs at {K.lr:g}, a share *dose* of the rows carrying the cause and the rest "
        f"filler (doses run: {', '.join(f'{d:g}' for d in doses)}{'' if doses == K.doses else f' of {K.doses}'}). "
        "Every row is one seed of each fine-tune and one crosscoder seed. " + kc.describe(P) + ". *learnt*: share of "
        "the cause's probe prompts answered the caused way (control: as the base; *base*: the base's own share). "
        f"Corpora: {', '.join(args.corpora)} (`crosscoder.corpus`: `gold` reads in-domain gold solutions, "
        "`generations` each in-domain prompt answered greedily by the base, the SFT slot and the RL slot in turn). "
        "Each row is notebook 03, unchanged, with the cause in the SFT slot and the control of the same dose in the "
        "RL slot (the control row: a control against a second control, another seed); a crosscoder *detected* "
        "the cause when notebook 03 decided \"reproduced\" against its identical-copy and random-update nulls, the "
        f"lens when the tuned slot's relative norm is ≥ {kc.LENS_RATIO:g}× the control's and above its null, the "
        "decoder-cosine shift when the tuned slot's median decoder cosine with the base (shared latents of the "
        "three-model crosscoder) is below the control's and below the lowest of its three-model nulls', the base's "
        f"sae-lens SAE (trained on the base alone, `benchmarks/sae_baseline.py`, once: on the first pair's "
        f"{args.corpora[0]} corpus, and read by every pair) when its held-out FVU on the tuned "
        f"model is ≥ {kc.SAE_RATIO:g}× its FVU on the control.", "",
        "Written before the first run (expectation): the lens sees every cause at the highest dose and no control; "
        "the crosscoders see few or none (the issue's trial found 0 tuned-only latents for a narrow fine-tune); the "
        "cosine shift sees the remapped facts (a rotation of features the base has); the sae-lens FVU shift (added "
        "after the other four had run, before its own first run) sees the behaviour at the highest dose. "
        "One pair was run before this "
        "was written (behaviour at dose 1: 5 tuned-only latents against the control's 0; lens 0.21 vs 0.13). "
        "The generations corpus (added after those runs, written before its own first run): no detection changes "
        "by more than one fine-tune per instrument, since every cause acts on prompts (`cmp`, facts) that the "
        "in-domain generations do not contain (a run's 03 verdicts read the rows of the corpus it uses).", "",
        "## Per instrument", "", render.table(summary, index=False), "",
        "## Every fine-tune", "", render.table(pd.DataFrame(detail), index=False), ""])
    print(page)
    if args.write:
        out = Path(args.write)
        out.write_text(page)
        out.with_suffix(".json").write_text(json.dumps({"commit": commit, "params": P.name, "seconds": seconds,
                                                        "resumed": resumed, "reused": reused, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
