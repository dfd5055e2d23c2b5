"""Notebook 02, second half: how far each method moved the model, and whether that — not the paradigm —
predicts forgetting (Shenfeld et al. 2025, "RL's Razor"; docs/METHOD.md §A1).

For every checkpoint of every method and training seed, and for every other SFT learning rate in
``posttrain.sft_sweep`` (every checkpoint; ``final`` marks the one validation prefers for that rate):

* **KL** — forward KL(π_base ‖ π) per completion token on held-out in-domain prompts, with completions the base
  sampled itself (:func:`rlgen_utils.method.divergence.completion_kl`);
* **changed parameters** — the share of entries that moved by more than 1e-6, 1e-5 and 1e-4;
* **accuracy change** — in-domain and out-of-domain (every OOD family's samples pooled) against the base, from
  notebook 02's per-sample scores.

Then a least-squares line ΔOOD = a + b · KL per method and over all models, with R²: if forgetting follows KL
whatever the paradigm, the pooled fit explains it as well as the per-method fits do. SFT's learning-rate sweep
gives SFT models at several KLs, so SFT and RL can be compared at matched KL and at matched in-domain gain; the
sweep's in-domain *validation* accuracy (training-split prompts no method trains on) is what chose the rate and
checkpoint that is ``sft`` (notebook 01, :func:`rlgen_utils.studies.train.ensure_sft_choice`), without looking at
the test sets.

    eval/movement/base_samples.json              the base's sampled completions (the KL's y ~ π_base)
    eval/movement/<model>.json                   KL and changed fractions of one model
    eval/sweep/<model>.parquet                   per-sample test scores of the sweep's extra models
    eval/validation/<model>.json                 in-domain validation accuracy
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..method import curves, divergence, stats
from ..models import generation, loading
from ..run import jobs
from ..run.artifacts import provenance, read_json, read_parquet, write_json
from ..run.config import Params
from ..run.progress import progress
from ..run.rundir import RunDir
from ..world import suite
from . import evaluate, train
from .findings import Finding, Findings

TOLERANCES = (1e-6, 1e-5, 1e-4)


def sweep_refs(P: Params) -> list[evaluate.ModelRef]:
    """Every checkpoint of the grid's other SFT rates (the chosen rate is ``sft``), ``final`` marking the one
    validation prefers for that rate: small rates and early checkpoints are the SFT models that move least, which
    a matched-KL comparison with RL needs."""
    if "sft" not in P.posttrain.methods or "sft" in P.models:
        return []
    seed, chosen = P.train_seeds[0], RunDir(P).sft_choice()["lr"]
    refs = []
    for lr, best in train.sweep_dirs(P).items():
        if lr != chosen:
            for k, path in enumerate(RunDir(P).checkpoints(train.sweep_name(lr), seed), start=1):
                refs.append(evaluate.ModelRef(train.sweep_name(lr), seed, k, path == best, path))
    return refs


def ensure_sweep_scores(P: Params) -> pd.DataFrame:
    """Per-sample test scores of the sweep's extra models (same columns as :func:`evaluate.ensure_scores`)."""
    key, refs = evaluate.eval_key(P), sweep_refs(P)
    paths = [RunDir(P).eval / "sweep" / ref.cache_name for ref in refs]
    parts = [read_parquet(path, key) for path in paths]
    jobs.run(P, [jobs.Job(str(path), evaluate.write_scores, (P, ref, path)) for ref, path, df in zip(refs, paths, parts)
                 if df is None], desc="evaluate sweep")   # on compute.jobs workers
    parts = [read_parquet(path, key) if df is None else df for path, df in zip(paths, parts)]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def ensure_base_samples(P: Params) -> dict[str, list[str]]:
    """Held-out in-domain prompts and one completion per prompt sampled from the base (temperature 1)."""
    path, key = RunDir(P).eval / "movement" / "base_samples.json", evaluate.eval_key(P)
    if path.is_file() and read_json(path)["key"] == key:
        return read_json(path)["samples"]
    base = train.base_dir(P)
    tok, model = loading.load_tokenizer(base), loading.load_model(base, P.model.dtype)
    prompts = [e.prompt for e in suite.world(P).curve_examples()]
    comps = generation.generate(model, tok, prompts, P.eval.max_new_tokens, P.eval.batch_size, do_sample=True,
                                seed=P.seed)
    samples = {"prompts": prompts, "completions": comps}
    write_json(path, {"key": key, "samples": samples, "provenance": provenance()})
    return samples


def _movement_refs(P: Params) -> list[evaluate.ModelRef]:
    return [r for r in evaluate.model_refs(P) if r.method != "base"] + sweep_refs(P)


def ensure_movement(P: Params) -> pd.DataFrame:
    """KL(π_base ‖ π) and changed-parameter fractions of every checkpoint and sweep model (cached per model)."""
    key, samples, rows, base = evaluate.eval_key(P), ensure_base_samples(P), [], None
    for ref in progress(_movement_refs(P), desc="KL from the base"):
        path = RunDir(P).eval / "movement" / ref.cache_name.replace(".parquet", ".json")
        if not (path.is_file() and read_json(path)["key"] == key):
            if base is None:
                base = loading.load_model(train.base_dir(P), P.model.dtype)
            tok, model = loading.load_tokenizer(ref.path), loading.load_model(ref.path, P.model.dtype)
            kl = divergence.completion_kl(base, model, tok, samples["prompts"], samples["completions"])
            frac = divergence.changed_fraction(base, model, TOLERANCES)
            write_json(path, {"key": key, "kl": float(np.mean(kl)), "kl_per_prompt": kl,
                              "changed": {f"{t:g}": v for t, v in frac.items()}, "provenance": provenance()})
        got = read_json(path)
        rows.append({"method": ref.method, "seed": ref.seed, "checkpoint": ref.checkpoint, "final": ref.final,
                     "kl": got["kl"], **{f"changed > {t}": v for t, v in got["changed"].items()}})
    return pd.DataFrame(rows)


def accuracy_changes(P: Params, scores: pd.DataFrame) -> pd.DataFrame:
    """Per (method, seed, checkpoint): in-domain and out-of-domain accuracy (OOD families' samples pooled) minus
    the base's."""
    in_dom = suite.world(P).in_domain_family
    kind = np.where(scores.family == in_dom, "in_domain", np.where(scores.role == "in_domain", "other", "ood"))
    acc = scores.assign(kind=kind).groupby(["method", "seed", "checkpoint", "kind"]).correct.mean().unstack("kind")
    base = acc.xs("base", level="method").iloc[0]
    out = (acc[["in_domain", "ood"]] - base[["in_domain", "ood"]]).rename(columns={"in_domain": "Δ in-domain",
                                                                                    "ood": "Δ OOD"})
    return out.reset_index().query("method != 'base'")


def movement_table(P: Params, scores: pd.DataFrame, sweep_scores: pd.DataFrame) -> pd.DataFrame:
    """One row per model: KL, changed fractions, Δ in-domain, Δ OOD (sweep models included)."""
    both = pd.concat([scores, sweep_scores], ignore_index=True) if len(sweep_scores) else scores
    return ensure_movement(P).merge(accuracy_changes(P, both), on=["method", "seed", "checkpoint"])


def fit_line(x: np.ndarray, y: np.ndarray) -> dict:
    """Least squares y = a + b·x: slope, intercept, R² and n (R² is nan for fewer than 3 points or constant x)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(x) < 3 or np.ptp(x) == 0:
        return {"slope": np.nan, "intercept": np.nan, "r2": np.nan, "resid_sd": np.nan, "n": len(x)}
    b, a = np.polyfit(x, y, 1)
    resid = y - (a + b * x)
    ss = ((y - y.mean()) ** 2).sum()
    return {"slope": float(b), "intercept": float(a), "r2": float(1 - (resid ** 2).sum() / ss) if ss else np.nan,
            "resid_sd": float(np.sqrt((resid ** 2).sum() / (len(x) - 2))), "n": len(x)}


def group_of(method: str) -> str:
    """Fit groups: the SFT sweep's models join ``sft``."""
    return "sft" if method.startswith("sft-lr") else method


def kl_fits(table: pd.DataFrame) -> pd.DataFrame:
    """ΔOOD against KL: a line per method (sweep models count as SFT) and one over every model, and the slope of
    the line through the origin (the base moved nothing and changed nothing)."""
    g = table.assign(group=table.method.map(group_of))
    def fits(d: pd.DataFrame) -> dict:
        return {**fit_line(d.kl.to_numpy(), d["Δ OOD"].to_numpy()),
                "slope through origin": curves.origin_slope(d.kl, d["Δ OOD"])}
    rows = [{"models": m, **fits(d)} for m, d in g.groupby("group", sort=False)]
    rows.append({"models": "all (pooled)", **fits(g)})
    return pd.DataFrame(rows)


def ensure_validation(P: Params) -> pd.DataFrame:
    """In-domain validation accuracy (training-split prompts no method trains on) of every SFT learning rate
    and of the RL method, first training seed: what a learning rate is chosen by."""
    seed, rows = P.train_seeds[0], []
    models = {} if "sft" in P.models else {f"sft lr={lr:g}": path for lr, path in train.sweep_dirs(P).items()}
    rl = P.crosscoder.rl_method
    if rl in P.posttrain.methods:
        models[f"{rl} lr={getattr(P.posttrain, rl).lr:g}"] = RunDir(P).model(rl, seed)
    for name, path in models.items():
        ci = stats.bootstrap_ci(train.validation_correct(P, path))
        rows.append({"model": name, "validation accuracy": ci.mean, "lo": ci.lo, "hi": ci.hi,
                     "n": P.eval.n_per_family})
    return pd.DataFrame(rows)


def sweep_table(P: Params, table: pd.DataFrame, validation: pd.DataFrame, chosen: float | None = None
                ) -> pd.DataFrame:
    """Per SFT learning rate (and the RL method for reference): validation accuracy, KL, Δ in-domain, Δ OOD of
    the final model (first seed, each rate at its best checkpoint); ``chosen by validation`` marks the rate that
    is ``sft`` (``chosen``, default notebook 01's choice: :func:`rlgen_utils.studies.train.ensure_sft_choice`)."""
    seed, rows = P.train_seeds[0], []
    final = table[table.final & (table.seed == seed)].set_index("method")
    val = validation.set_index("model")["validation accuracy"]
    chosen = train.ensure_sft_choice(P).get("lr") if chosen is None else chosen
    for lr in sorted(P.posttrain.sft_sweep):
        method = "sft" if lr == chosen else train.sweep_name(lr)
        if method in final.index:
            r = final.loc[method]
            rows.append({"model": f"sft lr={lr:g}", "lr": lr, "validation accuracy": val.get(f"sft lr={lr:g}"),
                         "KL": r.kl, "Δ in-domain": r["Δ in-domain"], "Δ OOD": r["Δ OOD"],
                         "chosen by validation": lr == chosen})
    out = pd.DataFrame(rows)
    rl = P.crosscoder.rl_method
    if rl in final.index:
        r, name = final.loc[rl], f"{rl} lr={getattr(P.posttrain, rl).lr:g}"
        out = pd.concat([out, pd.DataFrame([{"model": name, "lr": getattr(P.posttrain, rl).lr,
                                             "validation accuracy": val.get(name), "KL": r.kl,
                                             "Δ in-domain": r["Δ in-domain"], "Δ OOD": r["Δ OOD"]}])],
                        ignore_index=True)
    return out


def matched_findings(P: Params, table: pd.DataFrame, fits: pd.DataFrame) -> Findings:
    """Plain statements from the fits: R² per method and pooled, and SFT's curve at RL's final KL where SFT's
    models cover that KL (said to be out of range otherwise: never an extrapolation)."""
    rl, items = P.crosscoder.rl_method, []
    for r in fits.to_dict("records"):
        if np.isfinite(float(r["r2"])):
            items.append(Finding(f"**{r['models']}**: ΔOOD = {r['intercept']:+.3f} {r['slope']:+.3f} · KL, R² = "
                                 f"{r['r2']:.2f} ({r['n']} models); through the origin ΔOOD = "
                                 f"{r['slope through origin']:+.3f} · KL",
                                 {"models": str(r["models"]), "intercept": float(r["intercept"]),
                                  "slope": float(r["slope"]), "r2": float(r["r2"]), "n": int(r["n"]),
                                  "slope_origin": float(r["slope through origin"])}))
    final_rl = table[(table.method == rl) & table.final]
    sft_kl = table[table.method.map(group_of) == "sft"].kl
    if len(final_rl) and len(sft_kl):
        kl, got = float(final_rl.kl.mean()), float(final_rl["Δ OOD"].mean())
        if sft_kl.min() <= kl <= sft_kl.max():   # read SFT's curve only where SFT has models
            g = table[table.method.map(group_of) == "sft"]
            pred = float(curves.evaluate(curves.monotone_through_origin(g.kl, g["Δ OOD"]), [kl])[0])
            items.append(Finding(f"At {rl}'s final KL ({kl:.4f} nats/token), inside the KL range of SFT's models, "
                                 f"SFT's monotone curve through the origin gives ΔOOD {pred:+.3f}; {rl} measured "
                                 f"{got:+.3f} (matched comparisons with intervals: the matched table).",
                                 {"rl_kl": kl, "sft_at_rl_kl": pred, "rl_measured": got}))
        else:
            items.append(Finding(f"{rl}'s final KL ({kl:.4f} nats/token) lies outside the KL range of SFT's models "
                                 f"[{sft_kl.min():.4f}, {sft_kl.max():.4f}]: no SFT model moved as little (or as "
                                 f"much), so nothing is said about SFT at that KL.",
                                 {"rl_kl": kl, "sft_kl_min": float(sft_kl.min()), "rl_measured": got}))
    return Findings("02_evaluate", "forgetting_vs_kl",
                    tuple(items) or (Finding("Too few models for a fit.", style="line"),))
