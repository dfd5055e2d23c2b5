"""Per-sample scoring of every model and checkpoint, and the tables built from it (notebook 02).

:func:`ensure_scores` evaluates the base, every post-trained model's checkpoints and every training seed on every
evaluation family (greedy, batched, left padding, KV cache) and returns one row per
model × seed × checkpoint × family × sample. Each model's rows are cached as Parquet under
``runs/<name>/eval/`` with the params key in the file's metadata, so a re-run scores only what is new.

Columns: ``method`` ("base" or a post-training method), ``seed`` (training seed; -1 for the base),
``checkpoint`` (0 = the base, 1..N), ``final``, ``family``, ``role``, ``sample`` (index in the family's test
set), ``prompt``, ``completion`` (for a loglik family: the chosen choice's text), ``parsed``, ``correct``,
``scoring`` (``generate``, ``loglik`` or ``loglik_norm``: what made ``correct``), ``acc`` and ``acc_norm``
(loglik families: both lm-evaluation-harness metrics; empty otherwise).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..method import stats
from ..models import loading, scoring
from ..run import jobs, launch
from ..run.artifacts import provenance, read_parquet, write_json, write_parquet
from ..run.config import Params
from ..run.keys import stage_key
from ..run.progress import progress
from ..run.rundir import RunDir
from ..world import suite, tasks
from . import train
from .findings import Finding, Findings, Value, ident

BASE_SEED = -1


@dataclass(frozen=True)
class ModelRef:
    method: str
    seed: int
    checkpoint: int
    final: bool
    path: Path

    @property
    def cache_name(self) -> str:
        return "base.parquet" if self.method == "base" else f"{self.method}/seed-{self.seed}/checkpoint-{self.checkpoint}.parquet"


def model_refs(P: Params, all_checkpoints: bool = True) -> list[ModelRef]:
    """The base, then every (method, seed) checkpoint (or only the final ones)."""
    refs = [ModelRef("base", BASE_SEED, 0, True, train.base_dir(P))]
    for m in P.posttrain.methods:
        final = RunDir(P).final_checkpoint(m)   # sft: the checkpoint validation chose
        for s in P.train_seeds:
            for k, path in enumerate(RunDir(P).checkpoints(m, s), start=1):
                if all_checkpoints or k == final:
                    refs.append(ModelRef(m, s, k, k == final, path))
    return refs


def eval_key(P: Params) -> str:
    """Scores depend on exactly what the checkpoints depend on: the ``trained`` key and, where SFT is trained
    here, which rate and checkpoint of its grid validation chose."""
    key = stage_key(P, "trained")
    if "sft" in P.posttrain.methods and "sft" not in P.models:
        c = RunDir(P).sft_choice()
        key += f"-sft-lr{c['lr']:g}-ck{c['checkpoint']}"
    return key


SCORE_COLUMNS = ("method", "seed", "checkpoint", "final", "family", "role", "sample", "prompt", "completion",
                 "parsed", "correct", "scoring", "acc", "acc_norm")


def score_model(P: Params, ref: ModelRef, families: dict[str, suite.EvalFamily]) -> pd.DataFrame:
    """Per-sample rows of one model on every family (``scoring`` names what made each verdict: generation, or
    the likeliest choice; loglik families also keep lm-evaluation-harness's ``acc`` and ``acc_norm``)."""

    tok, model = loading.load_tokenizer(ref.path), loading.load_model(ref.path, P.model.dtype)
    rows = []
    for name, fam in families.items():
        got = scoring.plain_answers(model, tok, fam, P.eval.max_new_tokens, P.eval.batch_size)
        for i, (e, a) in enumerate(zip(fam.examples, got)):
            rows.append({"method": ref.method, "seed": ref.seed, "checkpoint": ref.checkpoint, "final": ref.final,
                         "family": name, "role": fam.role, "sample": i, "prompt": e.prompt, "completion": a.completion,
                         "parsed": a.parsed, "correct": a.correct, "scoring": a.scoring, "acc": a.acc,
                         "acc_norm": a.acc_norm})
    return pd.DataFrame(rows)


def write_scores(P: Params, ref: ModelRef, path: Path) -> None:
    """Score one model (:func:`score_model`) and write its rows to ``path`` under the evaluation key."""
    write_parquet(score_model(P, ref, suite.world(P).eval_families()), path, eval_key(P))


def ensure_scores(P: Params, all_checkpoints: bool = True):
    """Per-sample correctness of every model (cached per model); with ``all_checkpoints`` also saved whole as
    ``eval/per_sample.parquet``. With ``compute.processes`` > 1 the models still to score are dealt over the ranks
    of ``accelerate launch`` (each model scored whole, as one process scores it)."""

    key, root = eval_key(P), RunDir(P).eval
    refs = model_refs(P, all_checkpoints)
    todo = [i for i, ref in enumerate(refs) if read_parquet(root / ref.cache_name, key) is None]
    if todo and launch.should_launch(P):
        launch.run_stage(P, ["evaluate", *([] if all_checkpoints else ["--finals"])])
    elif todo and launch.world()[1] == 1:   # here, or on compute.jobs workers
        jobs.run(P, [jobs.Job(refs[i].cache_name, write_scores, (P, refs[i], root / refs[i].cache_name)) for i in todo],
                 desc="evaluate")
    elif todo:
        families = suite.world(P).eval_families()
        for i in progress([i for i in todo if launch.mine(i)], desc="evaluate", disable=not launch.is_main()):
            write_parquet(score_model(P, refs[i], families), root / refs[i].cache_name, key)
        launch.barrier()
    parts = []
    for ref in refs:
        df = read_parquet(root / ref.cache_name, key)
        if df is None:
            raise RuntimeError(f"{ref.cache_name}: the evaluation ended without this model's scores")
        if "scoring" not in df:  # scored before scoring modes existed: every verdict was generated
            df = df.assign(scoring="generate", acc=None, acc_norm=None)
        parts.append(df)
    scores = pd.concat(parts, ignore_index=True)
    if all_checkpoints and launch.is_main():  # the whole table; a finals-only read (05, 06) must not shrink it
        whole = root / "per_sample.parquet"
        previous = None if todo else read_parquet(whole, key)
        if previous is None or len(previous) != len(scores):  # rewrite only when the set of scored rows changed
            write_parquet(scores, whole, key)
    return scores


# ------------------------------------------------------------------------------------------------ tables
def _matrix(df: pd.DataFrame, method: str, family: str, checkpoint: int | None = None):
    """``[seeds, samples]`` 0/1 array of one method on one family (final checkpoint unless given)."""
    sel = df[(df.method == method) & (df.family == family)]
    sel = sel[sel.final] if checkpoint is None else sel[sel.checkpoint == checkpoint]
    piv = sel.pivot_table(index="seed", columns="sample", values="correct", aggfunc="first")
    return piv.to_numpy(dtype=float) if len(piv) else np.zeros((0, 0))


def accuracy_long(df: pd.DataFrame, n_boot: int = 2000) -> pd.DataFrame:
    """One row per (method, family): mean accuracy of the final model and a 95 % interval (over samples, and
    over training seeds when there are several)."""
    rows = []
    for (method, family), _ in df[df.final].groupby(["method", "family"], sort=False):
        m = _matrix(df, str(method), str(family))
        ci = stats.hierarchical_ci(m, n_boot) if m.shape[0] > 1 else stats.bootstrap_ci(m[0], n_boot)
        rows.append({"method": method, "family": family, "accuracy": ci.mean, "lo": ci.lo, "hi": ci.hi,
                     "n_seeds": m.shape[0], "n_samples": m.shape[1]})
    return pd.DataFrame(rows)


def delta_long(df: pd.DataFrame, a: str, b: str, n_boot: int = 2000) -> pd.DataFrame:
    """``a − b`` per family on the same samples, with a hierarchical interval: training seeds, then paired
    samples (docs/METHOD.md §C); a model trained once (the base) is compared with every seed of the other."""
    rows = []
    for family in df.family.unique():
        ma, mb = _matrix(df, a, family), _matrix(df, b, family)
        if ma.size == 0 or mb.size == 0:
            continue
        if mb.shape[0] > 1 and ma.shape[0] == 1:
            ma, mb = ma.repeat(mb.shape[0], axis=0), mb
        ci = stats.hierarchical_diff_ci(ma, mb, n_boot)
        rows.append({"contrast": f"{a} − {b}", "family": family, "delta": ci.mean, "lo": ci.lo, "hi": ci.hi,
                     "excludes_zero": ci.excludes_zero()})
    return pd.DataFrame(rows)


def table1(df, P, contrasts: tuple[tuple[str, str], ...] = (("grpo", "sft"), ("sft", "base"), ("grpo", "base"))):
    """The paper's Table 1 shape: models × families, each cell ``acc [lo, hi]``, then the contrast rows."""
    acc = accuracy_long(df)
    cell = acc.assign(cell=[f"{r.accuracy:.3f} [{r.lo:.3f}, {r.hi:.3f}]" for r in acc.itertuples()])
    wide = cell.pivot(index="method", columns="family", values="cell")
    order = ["base"] + [m for m in P.posttrain.methods if m in wide.index]
    wide = wide.loc[order, list(suite.world(P).eval_families())]
    deltas = [delta_long(df, a, b) for a, b in contrasts if {a, b} <= set(df.method)]
    if deltas:
        d = pd.concat(deltas)
        d = d.assign(cell=[f"{r.delta:+.3f} [{r.lo:+.3f}, {r.hi:+.3f}]" for r in d.itertuples()])
        wide = pd.concat([wide, d.pivot(index="contrast", columns="family", values="cell")[wide.columns]])
    return wide


def checkpoint_curves(df: pd.DataFrame) -> pd.DataFrame:
    """Accuracy per (method, seed-mean, checkpoint, family), checkpoint 0 being the base (or SFT for SFT→X)."""
    base = df[df.method == "base"]
    curves = df[df.method != "base"].groupby(["method", "checkpoint", "family", "role"], as_index=False).agg(
        accuracy=("correct", "mean"))
    starts = []
    for m in curves.method.unique():
        start = df[(df.method == "sft") & df.final] if m.startswith("sft_") else base
        s = start.groupby(["family", "role"], as_index=False).agg(accuracy=("correct", "mean")).assign(method=m,
                                                                                                   checkpoint=0)
        starts.append(s)
    return pd.concat([*starts, curves], ignore_index=True).sort_values(["method", "family", "checkpoint"])


def right_wrong_sets(df: pd.DataFrame, tuned: str, roles: tuple[str, ...] = ("ood_select", "ood_heldout")) -> dict[str,
                     dict[int, list[int]]]:
    """Per OOD family and training seed: the samples where the final ``tuned`` model is right and the base
    wrong (Study A's "RL right, base wrong" set when ``tuned`` is the RL method)."""
    base = df[df.method == "base"].set_index(["family", "sample"])["correct"]
    out: dict[str, dict[int, list[int]]] = {}
    sel = df[(df.method == tuned) & df.final & df.role.isin(roles)]
    for (family, seed), g in sel.groupby(["family", "seed"]):
        right = g[g.correct]["sample"]
        wrong = ~base.loc[str(family)]
        out.setdefault(str(family), {})[int(str(seed))] = sorted(int(s) for s in right if wrong[s])
    return out


# ----------------------------------------------------------------------------------- selection pools (Study A)
def selection_families(P: Params) -> list[str]:
    """The families Study A selects generalization latents on: ``interventions.families``, or the ood_select
    families ``interventions.family_rule`` keeps — by default those where RL's net gain over the base is
    significant (the interval of :func:`delta_long` on 02's final models above 0): where RL does not gain, its
    right/wrong samples are balanced by its losses and there is no gain to explain."""
    fams = suite.world(P).eval_families()
    I = P.interventions
    if I.families:
        unknown = [f for f in I.families if f not in fams]
        if unknown:
            raise ValueError(f"interventions.families: {unknown} are not evaluation families ({list(fams)})")
        return list(I.families)
    ood = [n for n, f in fams.items() if f.role == "ood_select"]
    if I.family_rule == "all" or P.crosscoder.rl_method not in P.posttrain.methods:
        return ood
    d = delta_long(_final_scores(P), P.crosscoder.rl_method, "base", n_boot=1000)
    gained = set(d[d.lo > 0].family)
    return [f for f in ood if f in gained]


def _final_scores(P: Params) -> pd.DataFrame:
    key = (eval_key(P), P.model_dump_json())
    if key not in _FINALS:
        _FINALS.clear()
        _FINALS[key] = ensure_scores(P, all_checkpoints=False)
    return _FINALS[key]


_FINALS: dict[tuple[str, str], pd.DataFrame] = {}   # 06 asks for the families many times; 02's scores are cached


def pool_sizes(P: Params) -> dict[str, int]:
    """Test prompts per selection family: ``pool_per_family``, grown so that the selection half (half the pool)
    is expected to hold ``min_rl_right`` RL-right/base-wrong samples at the rate 02 measured on the first
    training seed (with 15 % to spare), at most ``pool_max``. A family whose prompt space is smaller keeps what
    it has (:func:`pool_families`)."""
    I = P.interventions
    n0 = max(I.pool_per_family, I.n_eval)
    fams = selection_families(P)
    if not I.min_rl_right or P.crosscoder.rl_method not in P.posttrain.methods:
        return {f: n0 for f in fams}
    scores = _final_scores(P)
    rw = right_wrong_sets(scores, P.crosscoder.rl_method)
    out = {}
    for f in fams:
        n_eval = int(((scores.method == "base") & (scores.family == f)).sum())
        hits = len(rw.get(f, {}).get(P.train_seeds[0], []))
        need = math.ceil(2 * I.min_rl_right * 1.15 * n_eval / hits) if hits else I.pool_max
        out[f] = max(n0, min(I.pool_max, need))
    return out


def pool_families(P: Params) -> dict[str, suite.EvalFamily]:
    """Every family's test prompts for Study A: the selection families :func:`pool_sizes` prompts each, the others
    ``max(pool_per_family, n_eval)`` (task world; local files keep their size). Test prompts are drawn in a fixed
    order, so a smaller pool is the start of a larger one."""
    I = P.interventions
    n0, sizes = max(I.pool_per_family, I.n_eval), pool_sizes(P)
    n = max([n0, *sizes.values()])
    fams = suite.world(P.model_copy(update={"eval": P.eval.model_copy(update={"n_per_family": n})})).eval_families()
    return {name: _first(f, sizes.get(name, n0)) for name, f in fams.items()}


def _first(f: suite.EvalFamily, n: int) -> suite.EvalFamily:
    return dataclasses.replace(f, examples=f.examples[:n], cloze=f.cloze[:n] if f.cloze else ())


def pool_key(P: Params) -> str:
    I = P.interventions
    sizes = ",".join(f"{f}:{n}" for f, n in pool_sizes(P).items())
    return f"{eval_key(P)}/pool-{max(I.pool_per_family, I.n_eval)}/{sizes}"


def ensure_pool(P: Params) -> pd.DataFrame:
    """Greedy answers of the base and the RL model (first training seed) on every selection family's pool
    (``eval/pool/<model>.parquet``, cached)."""
    fams = {n: f for n, f in pool_families(P).items() if n in selection_families(P)}
    if not fams:   # RL gained significantly nowhere: no pool, and 06 has nothing to select from
        return pd.DataFrame(columns=list(SCORE_COLUMNS))
    k, parts = pool_key(P), []
    for name in ("base", P.crosscoder.rl_method):
        path = RunDir(P).eval / "pool" / f"{name}.parquet"
        df = read_parquet(path, k)
        if df is None:
            ref = ModelRef(name, BASE_SEED if name == "base" else P.train_seeds[0], 0, True, RunDir(P).model(name))
            df = score_model(P, ref, fams)
            write_parquet(df, path, k)
        parts.append(df)
    return pd.concat(parts, ignore_index=True)


def halves(P: Params, family: str, samples) -> tuple[set[int], set[int]]:
    """The (selection, test) halves of a family's pool samples: a shuffle seeded by the run seed and the family."""
    ids = sorted(int(i) for i in samples)
    rng = np.random.default_rng([P.seed, *family.encode()])
    order = [ids[i] for i in rng.permutation(len(ids))]
    return set(order[: len(ids) // 2]), set(order[len(ids) // 2:])


CONTRASTS = ("rl_right_base_wrong", "base_right_rl_wrong", "both_right", "both_wrong")


def pool_contrasts(P: Params, pool: pd.DataFrame) -> dict[str, dict[str, list[int]]]:
    """Per selection family: the pool samples where RL is right and the base wrong (Study A's set) and its three
    contrasts — base right and RL wrong, both right, both wrong."""
    rl, out = P.crosscoder.rl_method, {}
    for fam, g in pool.groupby("family", sort=False):
        ok = g.pivot(index="sample", columns="method", values="correct").astype(bool)
        r, b = ok[rl], ok["base"]
        masks = dict(zip(CONTRASTS, (r & ~b, b & ~r, r & b, ~r & ~b)))
        out[str(fam)] = {name: sorted(int(s) for s in ok.index[m]) for name, m in masks.items()}
    return out


def ensure_pool_sets(P: Params) -> dict[str, dict[str, list[int]]]:
    """Score the pools and save the four sets per family (``eval/pools.json``); none without an RL model."""
    if P.crosscoder.rl_method not in P.posttrain.methods:
        return {}
    sets = pool_contrasts(P, ensure_pool(P))
    write_json(RunDir(P).eval / "pools.json", {"key": pool_key(P), "rl_method": P.crosscoder.rl_method,
                                               "sets": sets, "provenance": provenance()})
    return sets


def pool_counts(sets: dict[str, dict[str, list[int]]], P: Params | None = None) -> pd.DataFrame:
    """Samples per family and set, with the pool size; with ``P``, the RL-right/base-wrong samples that fall in
    the selection half (notebook 06's ``target``) against ``interventions.min_rl_right``."""
    if not sets:
        return pd.DataFrame(columns=[*CONTRASTS, "pool"])
    df = pd.DataFrame({fam: {k: len(v) for k, v in s.items()} for fam, s in sets.items()}).T[list(CONTRASTS)]
    df = df.assign(pool=df.sum(axis=1))
    if P is None:
        return df
    half = [len(set(s["rl_right_base_wrong"]) & halves(P, f, [i for v in s.values() for i in v])[0])
            for f, s in sets.items()]
    return df.assign(rl_right_base_wrong_selection_half=half, asked=P.interventions.min_rl_right)


# ---------------------------------------------------------------------------------------- format channel
def format_table(P: Params, df: pd.DataFrame) -> pd.DataFrame:
    """Per family and final model (seeds pooled): accuracy, the share of answers written with a chain and the
    ``####`` marker, and the share whose final answer is unparseable — answer-format discipline told apart from
    skill (a model can gain by answering in the right form without computing better)."""
    fams = suite.world(P).eval_families()
    fin = df[df.final]
    rows = []
    for (method, family), g in fin.groupby(["method", "family"], sort=False):
        fam = fams[str(family)]
        written = fam.scoring == "generate"   # a loglik family's "completion" is the chosen choice: no format to read
        rows.append({"family": family, "class": fam.transfer, "model": method, "accuracy": g.correct.mean(),
                     "chain": g.completion.map(tasks.uses_chain).mean() if written else float("nan"),
                     "unparseable": 1 - g.completion.map(fam.parseable).mean() if written else float("nan")})
    return pd.DataFrame(rows)


def pool_by_role(df: pd.DataFrame) -> pd.DataFrame:
    """Pool the families of each role into one pseudo-family ``"<role> (mean)"`` whose samples are the
    (family, sample) pairs — so intervals over a role resample every sample of every family once."""
    return df.assign(family=df.role + " (mean)", sample=df.family + "/" + df["sample"].astype(str))


def findings(P: Params, df: pd.DataFrame, rl: str = "grpo", sft: str = "sft") -> Findings:
    """A plain statement of what this run shows, computed from the intervals (never written by hand)."""
    if not {rl, sft} <= set(df.method):
        return Findings("02_evaluate", "behaviour",
                        (Finding(f"This run has no {rl} and {sft} models to compare.", style="line"),))
    in_dom = suite.world(P).in_domain_family
    pooled = pool_by_role(df[df.role != "in_domain"])
    items = []
    for m in (sft, rl):
        d_in = delta_long(df[df.family == in_dom], m, "base").iloc[0]
        d_ood = delta_long(pooled, m, "base").set_index("family")
        parts = [f"in-domain ({in_dom}) {_fmt(d_in)}"]
        values: dict[str, Value] = {"model": m, "in_domain": float(d_in["delta"])}
        for role in ("ood_select", "ood_heldout"):
            key = f"{role} (mean)"
            if key in d_ood.index:
                row = d_ood.to_dict("index")[key]
                parts.append(f"{role.replace('_', ' ')} {_fmt(row)}")
                values[role] = float(row["delta"])
        items.append(Finding(f"**{m} − base**: " + "; ".join(parts), values))
    d = delta_long(pooled, rl, sft).set_index("family")
    if "ood_select (mean)" in d.index:
        r = d.to_dict("index")["ood_select (mean)"]
        lo, hi = r["lo"], r["hi"]
        verdict = ("RL keeps more out-of-domain accuracy than SFT" if lo > 0 else
                   "SFT keeps more out-of-domain accuracy than RL" if hi < 0 else
                   "RL and SFT do not differ out of domain at this sample size")
        items.append(Finding(f"**{rl} − {sft}** on the OOD selection families: {_fmt(r)} → {verdict}.",
                             {"rl_minus_sft_ood_select": float(r["delta"]), "lo": float(lo), "hi": float(hi)}))
    return Findings("02_evaluate", "behaviour", tuple(items))


def contrasts_by_class(P: Params, df: pd.DataFrame, methods: tuple[str, ...] = ("sft", "grpo", "rloo", "dpo"),
                       ) -> pd.DataFrame:
    """Each method's change over the base with the families of each transfer class pooled (every sample of every
    family once), hierarchical intervals over seeds and samples."""
    classes = {n: f.transfer or "unclassified" for n, f in suite.world(P).eval_families().items()}
    pooled = df.assign(sample=df.family + "/" + df["sample"].astype(str), family=df.family.map(classes))
    parts = [delta_long(pooled, m, "base") for m in methods if m in set(df.method)]
    if {"grpo", "sft"} <= set(df.method):
        parts.append(delta_long(pooled, "grpo", "sft"))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def contrasts_by_role(df: pd.DataFrame, methods: tuple[str, ...] = ("sft", "grpo", "rloo", "dpo")) -> pd.DataFrame:
    """Each method's change over the base, pooled per role (in-domain, OOD selection, OOD held-out)."""
    pooled = pool_by_role(df)
    parts = [delta_long(pooled, m, "base") for m in methods if m in set(df.method)]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def _fmt(r: Any) -> str:
    """``delta [lo, hi]`` of a row (Series or dict) of :func:`delta_long`."""
    sig = "" if (r["lo"] > 0 or r["hi"] < 0) else " (interval includes 0)"
    return f"{r['delta']:+.3f} [{r['lo']:+.3f}, {r['hi']:+.3f}]{sig}"


def class_findings(by_class: pd.DataFrame) -> Findings:
    """Per contrast of :func:`contrasts_by_class`, the transfer classes it raises and lowers (interval above /
    below 0) and those where no change is resolved — the only reading the intervals support."""
    items = []
    for contrast, d in by_class.groupby("contrast", sort=False):
        up, down = d[d.lo > 0], d[d.hi < 0]
        flat = d[(d.lo <= 0) & (d.hi >= 0)]
        parts = [f"{w} on {', '.join(f'{r.family} {r.delta:+.3f} [{r.lo:+.3f}, {r.hi:+.3f}]' for r in s.itertuples())}"
                 for w, s in (("rises", up), ("falls", down)) if len(s)]
        if len(flat):
            parts.append(f"no change resolved on {', '.join(map(str, flat.family))} (intervals include 0)")
        items.append(Finding(f"**{contrast}** " + "; ".join(parts) + ".",
                             {ident(str(f)): float(v) for f, v in zip(d.family, d.delta)}))
    return Findings("02_evaluate", "transfer_classes", tuple(items))
