"""Notebook 02: how off-policy SFT's gold is for the base, and how each model fails in-domain.

SFT imitates *teacher* solutions (``take 77, sub 5: 72, sub 9: 63 ####63``), a style rare in pretraining. Three
measurements say what that costs (:mod:`rlgen_utils.world.solutions` reads the solutions):

* :func:`ensure_forced_style` — the base's accuracy when its completion is forced to begin in the teacher style
  (``take 77,`` given, every step its own) beside its free accuracy on the same test prompts: can the base do
  the arithmetic at all in the style SFT teaches?
* :func:`style_table` — per model (final checkpoints, first training seed), the share of in-domain answers in
  the teacher style, in the pretraining style and unreadable, from notebook 02's per-sample scores;
* :func:`error_table` — per model, the first error of each in-domain answer (miscopied operand, skipped step,
  dropped carry, other wrong step, wrong final answer).

Only the organism's task world writes ``arith`` solutions; on other in-domain families the tables are empty.

    eval/offpolicy/forced-<model>.json     forced-style and free answers of one model (keyed by the scores' key)
"""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from ..method import stats
from ..models import generation, loading
from ..run.artifacts import provenance, read_json, write_json
from ..run.config import Params
from ..run.modelid import BASE, ModelId
from ..run.rundir import RunDir
from ..world import solutions, suite, tasks
from . import evaluate
from .findings import Finding, Findings


def applies(P: Params) -> bool:
    """Whether the in-domain family writes ``arith`` solutions (the organism's task world)."""
    return suite.world(P).in_domain_family == "arith"


def ensure_forced_style(P: Params, model: ModelId | str = BASE) -> dict:
    """Answers of ``model`` on the in-domain test prompts, free and with the completion forced to begin with the
    teacher opening (:func:`rlgen_utils.world.solutions.teacher_prefix`); per sample whether each is right, its
    style and first error. Cached."""
    model = ModelId.parse(model)
    path = RunDir(P).eval / "offpolicy" / f"forced-{model.slug}.json"
    key = evaluate.eval_key(P)
    if path.is_file() and read_json(path)["key"] == key:
        return read_json(path)
    examples = list(suite.world(P).in_domain_eval().examples)
    folder = RunDir(P).model(model)
    tok, lm = loading.load_tokenizer(folder), loading.load_model(folder, P.model.dtype)
    prefixes = [solutions.teacher_prefix(e.prompt) for e in examples]
    free = generation.generate(lm, tok, [e.prompt for e in examples], P.eval.max_new_tokens, P.eval.batch_size)
    cont = generation.generate(lm, tok, [e.prompt + p for e, p in zip(examples, prefixes)], P.eval.max_new_tokens,
                               P.eval.batch_size)
    forced = [p + c for p, c in zip(prefixes, cont)]
    out = {"key": key, "model": model, "provenance": provenance(),
           "free": [tasks.is_correct(c, e.answer) for c, e in zip(free, examples)],
           "forced": [tasks.is_correct(c, e.answer) for c, e in zip(forced, examples)],
           "forced_errors": [solutions.error_kind(e.prompt, c) for c, e in zip(forced, examples)],
           "forced_examples": [{"prompt": e.prompt, "completion": c} for e, c in list(zip(examples, forced))[:5]]}
    write_json(path, out)
    return out


def forced_table(forced: dict) -> pd.DataFrame:
    """Free against forced-style accuracy, with intervals over samples, and the forced answers' first errors."""
    rows = []
    for mode in ("free", "forced"):
        ci = stats.bootstrap_ci([float(x) for x in forced[mode]])
        rows.append({"model": forced["model"], "completion": "free" if mode == "free" else "forced teacher style",
                     "accuracy": ci.mean, "lo": ci.lo, "hi": ci.hi, "n": len(forced[mode])})
    return pd.DataFrame(rows)


def _finals(P: Params, scores: pd.DataFrame) -> pd.DataFrame:
    fam = suite.world(P).in_domain_family
    seed = P.train_seeds[0]
    keep = scores.final & (scores.family == fam) & ((scores.method == "base") | (scores.seed == seed))
    return scores[keep]


def style_table(P: Params, scores: pd.DataFrame) -> pd.DataFrame:
    """Per model (final checkpoints, first training seed): the shares of in-domain answers in each style and the
    accuracy within each style."""
    if not applies(P):
        return pd.DataFrame()
    df = _finals(P, scores).assign(style=lambda d: d.completion.map(solutions.style_of))
    rows = []
    for method, g in df.groupby("method", sort=False):
        row: dict = {"model": method, "n": len(g), "accuracy": g.correct.mean()}
        for s in solutions.STYLES:
            row[f"{s} share"] = (g["style"] == s).mean()
        for s in ("teacher", "pretraining"):
            sub = g[g["style"] == s]
            row[f"accuracy in {s} style"] = sub.correct.mean() if len(sub) else float("nan")
        rows.append(row)
    return pd.DataFrame(rows)


def error_table(P: Params, scores: pd.DataFrame) -> pd.DataFrame:
    """Per model (final checkpoints, first training seed): the share of in-domain answers by first error
    (:data:`rlgen_utils.world.solutions.ERROR_KINDS`)."""
    if not applies(P):
        return pd.DataFrame()
    df = _finals(P, scores)
    kinds = pd.Series([solutions.error_kind(p, c) for p, c in zip(df.prompt, df.completion)], index=df.index)
    table = pd.crosstab(df.method, kinds, normalize="index").reindex(columns=list(solutions.ERROR_KINDS),
                                                                       fill_value=0.0)
    order = list(dict.fromkeys(df.method))
    return table.loc[order].rename_axis(index="model", columns=None).reset_index()


def findings(P: Params, forced: dict, styles: pd.DataFrame, errors: pd.DataFrame, sft: str = "sft") -> Findings:
    """What the off-policy measurements say, in words with their numbers."""
    items = []
    free, forced_ = forced_table(forced).set_index("completion")["accuracy"]
    items.append(Finding(
        f"Forced to begin its answer in the teacher style, the base answers {forced_:.3f} of the in-domain test "
        f"prompts right, against {free:.3f} free ({forced_ - free:+.3f}): how far SFT's gold lies off the base's "
        f"own policy.",
        {"base_free": free, "base_forced_teacher": forced_}))
    if sft in set(styles.model):
        s = styles.set_index("model").loc[sft].to_dict()
        e = errors.set_index("model").loc[sft].to_dict()
        wrong = 1 - float(e["correct"])
        worst = max((k for k in solutions.ERROR_KINDS if k != "correct"), key=lambda k: float(e[k]))
        items.append(Finding(
            f"{sft} answers {float(s['teacher share']):.3f} of in-domain prompts in the teacher style and is right "
            f"on {float(s['accuracy']):.3f}; of its answers {wrong:.3f} are wrong, most often by "
            f"**{worst}** ({float(e[worst]):.3f} of all answers).",
            {"sft_teacher_share": float(s["teacher share"]), "sft_accuracy": float(s["accuracy"]),
             "sft_commonest_error": worst, "sft_commonest_error_share": float(e[worst])}))
    return Findings("02_evaluate", "offpolicy", tuple(items))


@dataclass(frozen=True)
class OffPolicy:
    """Notebook 02's off-policy measurements: the base free and forced into the teacher style, answer styles
    and first errors per model."""
    forced: pd.DataFrame
    styles: pd.DataFrame
    errors: pd.DataFrame
    findings: Findings


def measure(P: Params, scores: pd.DataFrame) -> OffPolicy | None:
    """Every off-policy measurement of this run (None where the in-domain family is not ``arith``)."""
    if not applies(P):
        return None
    forced = ensure_forced_style(P)
    styles, errors = style_table(P, scores), error_table(P, scores)
    return OffPolicy(forced_table(forced), styles, errors, findings(P, forced, styles, errors))
