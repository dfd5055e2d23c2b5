"""The generated results pages, computed from finished run folders — never typed by hand.

    .venv/bin/python -m rlgen_utils.studies.results --params RUN/default.yaml --seeds RUN3/default-3seeds.yaml \
        [--timing benchmarks/results/study-default.json ...] [--write docs/RESULTS.md] [--claims README.md]

``--params`` is a one-seed run (base accuracy, the SFT sweep, pools, changed parameters); ``--seeds`` a run with
several training seeds (the class-level contrasts with hierarchical intervals, the KL fits, the
pre-registration). Both must be finished (notebooks 01 and 02 at least): the script reads what they wrote and
refuses an unfinished run rather than computing anything large. With ``--write`` the Markdown replaces the part
of the file between ``<!-- results:begin -->`` and ``<!-- results:end -->`` (``docs/RESULTS.md``); ``--claims``
writes the claims table alone between ``<!-- claims:begin -->`` and ``<!-- claims:end -->`` (the README's front
page; with ``--seeds`` also the matched comparisons between ``<!-- matched:begin -->`` and ``<!-- matched:end -->``
where the page has those markers). ``--real RUN/smollm2.yaml`` writes a real pretrained LM's section instead (per
family and per class changes and what their intervals resolve, SFT grid and KL fits, claims table, pools,
timing) between ``<!-- real:begin -->`` and ``<!-- real:end -->`` (``docs/REAL_LM.md``).
``--bases A.yaml B.yaml C.yaml`` (runs that differ in ``pretrain.seed`` only) writes the pre-registration over
several bases between ``<!-- bases:begin -->`` and ``<!-- bases:end -->`` (``docs/BASES.md``); with ``--claims``
its summary (which conclusions hold on every base) goes to that page's ``bases`` block too (the README); with
``--timing`` (one ``bench_study`` result per base) the page ends with their timing and its sum.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd

from ..run.artifacts import write_between_markers
from ..run.config import Params, load_params
from ..run.rundir import RunDir
from . import bases, evaluate, findings, forgetting, matched, offpolicy, prereg, render, train, verdicts

BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"


def _finished(P: Params) -> pd.DataFrame:
    path = RunDir(P).eval / "per_sample.parquet"
    if not path.is_file():
        raise SystemExit(f"{P.name}: no {path}: run notebooks 01 and 02 first")
    return evaluate.ensure_scores(P)  # reads the cached per-model scores


def _cell(r) -> str:
    return f"{r.delta:+.3f} [{r.lo:+.3f}, {r.hi:+.3f}]"


def base_section(P: Params) -> str:
    t = train.base_table(P, train.ensure_base_eval(P)).set_index("family")
    return "**Base model, greedy accuracy per family** (one run):\n\n" + render.table(t)


def class_section(P: Params, scores: pd.DataFrame) -> str:
    d = evaluate.contrasts_by_class(P, scores, methods=("sft", "grpo"))
    n = len(P.train_seeds)
    reading = render.markdown(evaluate.class_findings(d))
    d = d.assign(cell=[_cell(r) for r in d.itertuples()]).pivot(index="family", columns="contrast", values="cell")
    return (f"**Change over the base per transfer class** ({n} training seed{'s' * (n > 1)}, 95 % intervals "
            f"hierarchical over seeds and samples):\n\n" + render.table(d) + "\n\nWhat the intervals resolve:\n\n"
            + reading)


def fit_section(P: Params, scores: pd.DataFrame) -> str:
    moved = forgetting.movement_table(P, scores, forgetting.ensure_sweep_scores(P))
    fits = forgetting.kl_fits(moved)[["models", "slope", "intercept", "r2", "n", "slope through origin"]]
    return ("**Forgetting against KL(π_base ‖ π)** (every checkpoint and seed; ΔOOD = intercept + slope · KL, and "
            "the line through the origin):\n\n" + render.table(fits.set_index("models")) + "\n\n"
            + render.markdown(forgetting.matched_findings(P, moved, forgetting.kl_fits(moved)))
            + "\n\n" + matched_section(P, scores, moved))


def matched_section(P: Params, scores: pd.DataFrame, moved: pd.DataFrame | None = None) -> str:
    """SFT against RL at matched KL and at matched in-domain gain, inside the range both cover (the findings and
    the tables; also the README's ``matched`` block)."""
    if moved is None:
        moved = forgetting.movement_table(P, scores, forgetting.ensure_sweep_scores(P))
    rl = P.crosscoder.rl_method
    tables = [matched.matched_table(moved, x, rl=rl) for x in matched.AXES]
    return ("**Matched comparisons** (only inside the range both methods' models cover):\n\n"
            + render.markdown(matched.findings(moved, rl=rl))
            + "".join("\n\n" + render.table(t.set_index("axis"), ".4f") for t in tables if len(t)))


def sweep_section(P: Params, scores: pd.DataFrame) -> str:
    moved = forgetting.movement_table(P, scores, forgetting.ensure_sweep_scores(P))
    sweep = forgetting.sweep_table(P, moved, forgetting.ensure_validation(P)).set_index("model").drop(columns="lr")
    fin = moved[moved.final].groupby("method")[[c for c in moved.columns if c.startswith("changed")]].mean()
    return ("**SFT learning-rate grid** (first seed, each rate at its best checkpoint; `chosen by validation` = the `sft` model):"
            "\n\n" + render.table(sweep, ".4f") + "\n\n**Share of parameters changed** (final models, mean over seeds):\n\n"
            + render.table(fin, ".3f"))


def pool_section(P: Params) -> str:
    """Study A's pools per selection family, with the RL-right/base-wrong samples its selection half reached
    against ``interventions.min_rl_right`` — or a sentence saying there is none and why."""
    rl = P.crosscoder.rl_method
    counts = evaluate.pool_counts(evaluate.ensure_pool_sets(P), P)
    head = f"**Study A's pools** (test prompts per selection family, base vs {rl}):"
    if not len(counts):
        return (f"{head} none — no selection family where {rl}'s gain over the base has its interval above 0, so "
                f"notebook 06 has no RL-right/base-wrong samples to select latents from.")
    return f"{head}\n\n" + render.table(counts, ".0f")


def prereg_section(P: Params, scores: pd.DataFrame) -> str:
    pre = prereg.load(P)
    if pre is None:
        return "No pre-registration named."
    t = prereg.outcome_table(P, pre, scores)
    cols = ["#", "contrast", "applies_to", "scope", "expected", "measured", "matched"]
    return (f"**Pre-registration** (`{P.eval.preregistration}`, {pre.written}), row by row:\n\n"
            + render.markdown(prereg.summary(t)) + "\n\n" + render.table(t[cols], index=False))


def timing_section(paths: list[str]) -> str:
    rows = []
    for p in paths:
        r = json.loads(Path(p).read_text())
        rows.append({"params": r["params"], **{k: v["wall_s"] for k, v in r["per_notebook"].items()},
                     "total (min)": f"{r['total_wall_min']:.1f}", "peak RSS (MiB)": r["peak_rss_mib"],
                     "calibration (s)": f"{r['calibration_s']:.3f}" if "calibration_s" in r else "",
                     "cpu": r.get("cpu", "not recorded")})
    return ("**Wall time in seconds** (`benchmarks/bench_study.py`, 2 cores; `calibration` is 20 fp32 1024² matmuls "
            "on the same machine, recorded to compare machines — only roughly: not all of a notebook's time is matmul):"
            "\n\n"
            + render.table(pd.DataFrame(rows), ".0f", index=False))


def verdict_section(P: Params) -> str:
    """The mechanistic claims, as notebooks 03–06 of the run decided and recorded them (``verdicts/``)."""
    vs = verdicts.load_all(P)
    if not vs:
        return "No verdicts recorded: run notebooks 03–06 first."
    t = verdicts.table(vs)[["notebook", "claim", "decision", "numbers", "null", "detection limit"]]
    t = t.assign(notebook=t.notebook.str.split("_").str[0], decision="**" + t.decision + "**").rename(
        columns={"claim": "claim (the paper)"})
    return (f"**The papers' mechanistic claims on `{P.name}`** (decided by each notebook from its numbers against "
            f"its null; `rlgen_utils/studies/verdicts.py`):\n\n" + render.table(t, index=False))


MECHANISTIC = {"03_crosscoder": "Crosscoders (notebook 03)", "04_feature_dynamics": "Feature dynamics (notebook 04)",
               "05_circuits": "Circuits (notebook 05)", "06_interventions": "Interventions (notebook 06)"}


def offpolicy_section(P: Params, scores: pd.DataFrame) -> str:
    """How off-policy SFT's gold is (notebook 02): the base free and forced into the teacher style, each model's
    answer styles and first errors (first seed)."""
    off = offpolicy.measure(P, scores)
    if off is None:
        return ""
    return ("**How off-policy SFT's gold is** (notebook 02; first seed, final models):\n\n"
            + render.markdown(off.findings)
            + "\n\n" + render.table(off.forced.set_index("completion").drop(columns="model"), ".3f")
            + "\n\n" + render.table(off.styles.set_index("model"), ".3f")
            + "\n\nFirst error of each in-domain answer (share of answers):\n\n"
            + render.table(off.errors.set_index("model"), ".3f"))


def notebook_findings(P: Params) -> str:
    """The findings paragraphs notebooks 03–06 of a run recorded (``findings/``), rendered as the notebooks show
    them."""
    parts = []
    for stem, title in MECHANISTIC.items():
        recorded = findings.load_all(P, stem)
        if recorded:
            parts.append(f"**{title}**, as the executed notebook states it:\n\n"
                         + "\n\n".join(render.markdown(f) for f in recorded))
        elif (RunDir(P).notebooks / f"{stem}.ipynb").is_file():
            parts.append(f"**{title}**: the executed notebook recorded no findings (`findings/{stem}.*.json`); "
                         f"re-run it with this code.")
    return "\n\n".join(parts)


def family_section(P: Params, scores: pd.DataFrame) -> str:
    """Per family: the base's accuracy and each method's change over it, with paired intervals (one seed)."""
    base = train.base_table(P, train.ensure_base_eval(P)).set_index("family")
    methods = [m for m in ("sft", "grpo", "dpo", "rloo") if m in set(scores.method)]
    for m in methods:
        d = evaluate.delta_long(scores, m, "base").set_index("family")
        base[f"{m} − base"] = [_cell(r) for r in d.loc[base.index].itertuples()]
    return (f"**Per family** (base accuracy; change of each final model over the base, 95 % paired intervals over "
            f"the {P.eval.n_per_family} test questions):\n\n" + render.table(base))


def real_page(P: Params, timings: list[str]) -> str:
    """The README section of a real pretrained LM's run: base and changes per family and per transfer class with
    what their intervals resolve, the SFT grid and the KL fits (where params give a grid), the claims table,
    pools, timing."""
    s = _finished(P)
    parts = [family_section(P, s), class_section(P, s)]
    if P.posttrain.sft_sweep:
        parts += [sweep_section(P, s), fit_section(P, s)]
    parts += [verdict_section(P), pool_section(P)]
    if timings:
        parts.append(timing_section(timings))
    return "\n\n".join(parts)


def results_page(one: Params, many: Params | None, timings: list[str]) -> str:
    s1 = _finished(one)
    parts = [verdict_section(one), base_section(one), class_section(one, s1)]
    if many is not None:
        sm = _finished(many)
        parts += [class_section(many, sm), fit_section(many, sm), prereg_section(many, sm)]
    else:
        parts += [fit_section(one, s1), prereg_section(one, s1)]
    parts += [sweep_section(one, s1), offpolicy_section(one, s1), pool_section(one), notebook_findings(one)]
    if timings:
        parts.append(timing_section(timings))
    return "\n\n".join(parts)


def bases_timing(paths: list[str], params: list[Params] | None = None) -> str:
    """The several-bases runs' ``bench_study`` timings, one row each, and their sum; with ``params`` (the files
    the runs were made with) also how many worker processes each ran its jobs on (``compute.jobs``)."""
    total = sum(json.loads(Path(p).read_text())["total_wall_min"] for p in paths)
    jobs = ("" if not params else " Worker processes (`compute.jobs`, `rlgen_utils.run.jobs`): "
            + ", ".join(f"`{P.name}` {P.compute.jobs}" for P in params) + ".")
    return timing_section(paths) + f"\n\nAll {len(paths)} runs together: {total:.1f} min." + jobs


def choice_line(params: list[Params]) -> str:
    """Each base's SFT model as in-domain validation chose it from that base's grid (``posttrain/sft/choice.json``)."""
    def one(P: Params) -> str:
        c = RunDir(P).sft_choice()
        grid = ", ".join(f"{lr:g}" for lr in P.posttrain.sft_sweep)
        return f"`{P.name}` lr {c['lr']:g} at checkpoint {c['checkpoint']} of grid [{grid}]"
    return "SFT chosen by in-domain validation: " + "; ".join(one(P) for P in params) + "."


def bases_page(params: list[Params], timings: list[str] | None = None) -> tuple[str, str]:
    """The several-bases page (summary, then the table row by row, then the timing of its runs where given) and
    its summary alone."""
    runs = [bases.finished(P) for P in params]
    table = bases.outcome_table(runs)
    first = runs[0].params
    head = (f"Runs: {', '.join(f'`{P.name}` (pretrain seed {P.base_seed})' for P in params)}; training seeds "
            f"{first.train_seeds}; pre-registration `{first.eval.preregistration}`.")
    summary = render.markdown(bases.summary(table))
    parts = [head + " " + choice_line(params), summary, render.table(bases.display(table), index=False)]
    if timings:
        parts.append(bases_timing(timings, params))
    return "\n\n".join(parts), summary


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="The generated results pages, from finished run folders.")
    ap.add_argument("--params", help="a finished one-seed organism run (the main results section)")
    ap.add_argument("--seeds", default=None)
    ap.add_argument("--timing", nargs="*", default=[])
    ap.add_argument("--real", default=None, help="a finished run of a real pretrained LM (its own section, between "
                    "the <!-- real:begin/end --> markers)")
    ap.add_argument("--bases", nargs="*", default=None, help="finished runs of several bases (their own section, "
                    "between the <!-- bases:begin/end --> markers)")
    ap.add_argument("--write", default=None, help="the page whose results (or real) block to replace")
    ap.add_argument("--claims", default=None, help="a page whose claims block gets the --params run's claims table")
    a = ap.parse_args(argv)
    if a.bases:
        page, summary = bases_page([load_params(p) for p in a.bases], a.timing)
        if a.write:
            write_between_markers(Path(a.write), page, "bases")
        else:
            print(page)
        if a.claims:
            write_between_markers(Path(a.claims), summary, "bases")
        return 0
    if (a.params is None) == (a.real is None):
        ap.error("give --params (the organism's section) or --real (a real LM's section)")
    if a.write or not a.claims:
        if a.real:
            text, tag = real_page(load_params(a.real), a.timing), "real"
        else:
            text, tag = results_page(load_params(a.params), load_params(a.seeds) if a.seeds else None, a.timing), "results"
        if a.write:
            write_between_markers(Path(a.write), text, tag)
        else:
            print(text)
    if a.claims:
        write_between_markers(Path(a.claims), verdict_section(load_params(a.real or a.params)), "claims")
        if a.seeds and "<!-- matched:begin -->" in Path(a.claims).read_text():
            many = load_params(a.seeds)
            write_between_markers(Path(a.claims), matched_section(many, _finished(many)), "matched")
    return 0


if __name__ == "__main__":
    sys.exit(main())
