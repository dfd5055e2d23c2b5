"""Notebook 01 (train): pretrain the organism, evaluate the base, post-train every method — each stage keyed
by the params that make it and skipped when already done (paths: :class:`rlgen_utils.run.rundir.RunDir`).

    base/                    the base model (organism only; a local HF model is used where it is)
    pretrain/<key>/step-*/   resumable pretraining checkpoints;  pretrain_log.json: loss per step
    base_eval.json           greedy accuracy per family and pass@k in-domain, for the base
    posttrain/<method>/seed-<s>/checkpoint-{1..N}/   save_pretrained folders + optimizer moments + train_log.json
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..models import generation, loading, posttrain, pretrain, scoring
from ..run import launch
from ..run.artifacts import is_done, mark_done, provenance, read_json, write_json
from ..run.config import Params
from ..run.keys import stage_key
from ..run.rundir import RunDir, checkpoint_dirs
from ..run.session import seed_everything
from ..world import pretraining, suite, tasks
from ..world.tasks import Example


def base_dir(P: Params) -> Path:
    """Folder of the base model: the organism's under the run folder, else the HF model's own folder."""
    return RunDir(P).base()


def ensure_base(P: Params) -> Path:
    """Pretrain the organism (resuming if interrupted) unless a base with this key exists; HF models are used
    as they are."""
    if not P.model.is_organism:
        return base_dir(P)
    run = RunDir(P)
    out, key = run.organism_base, stage_key(P, "base")
    if is_done(out, key):
        return out
    seed_everything(P.seed)
    tokenizer = loading.char_tokenizer()
    model = loading.organism_model(P.model.organism, tokenizer, P.seed)
    log = pretrain.pretrain(model, tokenizer, P.pretrain, P.tasks, P.seed, run.pretrain(key))
    write_json(run.pretrain_log, log)
    loading.save_model(model, tokenizer, out)
    mark_done(out, key, n_params=loading.n_params(model))
    return out


def pretrain_log(P: Params) -> list[dict]:
    path = RunDir(P).pretrain_log
    return read_json(path) if path.is_file() else []


def evaluate_model(P: Params, model_dir: Path, sampled: bool = True) -> dict:
    """Greedy accuracy on every evaluation family, accuracy on the curve prompts (``in_domain_curve``), and
    pass@k / mean sampled accuracy in-domain (``in_domain_pass@k``, ``in_domain_sampled_mean``)."""
    tok, model = loading.load_tokenizer(model_dir), loading.load_model(model_dir, P.model.dtype)
    e, world = P.eval, suite.world(P)
    fams = world.eval_families()
    out = {name: generation.accuracy(model, tok, list(f.examples), e.max_new_tokens, e.batch_size, f.verify)
           if f.scoring == "generate" else scoring.accuracy(model, tok, f, e.max_new_tokens, e.batch_size)
           for name, f in fams.items()}
    in_dom = fams[world.in_domain_family]
    out["in_domain_curve"] = generation.accuracy(model, tok, world.curve_examples(), e.max_new_tokens,
                                               e.batch_size, in_dom.verify)
    if sampled:
        scores = generation.sampled_scores(model, tok, list(in_dom.examples[: e.curve_n]), e.pass_k,
                                         e.max_new_tokens, e.batch_size, seed=P.seed, verify=in_dom.verify)
        out.update({f"in_domain_{k}": v for k, v in scores.items()})
    return out


def ensure_base_eval(P: Params) -> dict:
    path, key = RunDir(P).base_eval, stage_key(P, "base_eval")
    if path.is_file() and read_json(path).get("key") == key:
        return read_json(path)["scores"]
    scores = evaluate_model(P, ensure_base(P))
    write_json(path, {"key": key, "scores": scores, "provenance": provenance()})
    return scores


def start_dir(P: Params, method: str, seed: int) -> Path:
    return ensure_base(P) if posttrain.STARTS_FROM[method] == "base" else RunDir(P).checkpoints("sft", seed)[-1]


def method_rows(P: Params, method: str, start: Path, seed: int) -> list[dict]:
    examples = suite.world(P).train_examples()
    algorithm = posttrain.ALGORITHM[method]
    if algorithm == "sft":
        return posttrain.sft_rows(examples)
    if algorithm in ("grpo", "rloo"):
        return posttrain.rl_rows(examples, suite.world(P).train_kind)
    return _dpo_pairs(P, method, start, examples, seed)


def _dpo_pairs(P: Params, method: str, start: Path, examples: list[Example], seed: int) -> list[dict]:
    path, key = RunDir(P).method(method, seed) / "pairs.json", stage_key(P, "trained")
    if path.is_file() and read_json(path)["key"] == key:
        return read_json(path)["rows"]
    rows = posttrain.dpo_rows(loading.load_model(start, P.model.dtype), loading.load_tokenizer(start), examples,
                              P.posttrain.dpo, P.eval.max_new_tokens, seed, suite.world(P).train_kind)
    if not rows:
        raise RuntimeError(f"{method}: the starting model answered every prompt right; no DPO pairs to train on")
    write_json(path, {"key": key, "rows": rows, "provenance": provenance()})
    return rows


def ensure_posttrained(P: Params) -> dict[tuple[str, int], Path]:
    """Train every method in ``posttrain.methods`` for every training seed (SFT first, since SFT→X starts from
    it); resumable. Returns the final checkpoint of each (method, seed)."""
    order = sorted(P.posttrain.methods, key=lambda m: posttrain.STARTS_FROM[m] != "base")
    out = {}
    for seed in P.train_seeds:
        for m in order:
            # trained elsewhere: analysed as it is
            out[m, seed] = RunDir(P).checkpoints(m, seed)[-1] if m in P.models else train_one(P, m, seed)
    return out


def train_one(P: Params, method: str, seed: int, sft_lr: float | None = None) -> Path:
    """Train ``method`` for training seed ``seed`` (``sft_lr``: one rate of the SFT sweep), resumable: here, or
    with ``compute.processes`` > 1 under ``accelerate launch`` (:mod:`rlgen_utils.run.launch`). Returns the final
    checkpoint."""
    Q, folder = _target(P, method, seed, sft_lr)
    final = checkpoint_dirs(folder, P.posttrain.n_checkpoints)[-1]
    if not launch.should_launch(P) or is_done(final, stage_key(Q, "trained")):
        return train_here(P, method, seed, sft_lr)
    start = start_dir(P, method, seed)   # the base is pretrained here, once, before the ranks start
    if posttrain.ALGORITHM[method] == "dpo":
        method_rows(Q, method, start, seed)   # and DPO's pairs are sampled once
    launch.run(launch.command(P, launch.params_file(P), method, seed, sft_lr))
    if not is_done(final, stage_key(Q, "trained")):
        raise RuntimeError(f"{method} seed {seed}: the launch ended without its final checkpoint {final}")
    return final


def train_here(P: Params, method: str, seed: int, sft_lr: float | None = None) -> Path:
    """Train in this process (one rank of a launch, or the only process)."""
    Q, folder = _target(P, method, seed, sft_lr)
    start = start_dir(P, method, seed)
    world = suite.world(P)
    curve, verify = world.curve_examples(), world.in_domain_eval().verify
    return posttrain.train_method(method, start, folder, method_rows(Q, method, start, seed), Q,
                                  stage_key(Q, "trained"), seed, curve, verify)


def _target(P: Params, method: str, seed: int, sft_lr: float | None) -> tuple[Params, Path]:
    """The params a model trains under (the sweep's rate, if any) and its folder."""
    if sft_lr is None:
        return P, RunDir(P).method(method, seed)
    return sweep_params(P, sft_lr), RunDir(P).method(sweep_name(sft_lr), seed)


def sweep_params(P: Params, lr: float) -> Params:
    """``P`` with SFT's learning rate set to ``lr`` (the sweep's models are keyed by these params)."""
    pt = P.posttrain
    return P.model_copy(update={"posttrain": pt.model_copy(update={"sft": pt.sft.model_copy(update={"lr": lr})})})


def sweep_name(lr: float) -> str:
    return f"sft-lr{lr:g}"


def sweep_dirs(P: Params) -> dict[float, Path]:
    """Final checkpoint of every SFT learning rate of ``posttrain.sft_sweep`` (first training seed); the rate
    that ``posttrain.sft.lr`` already trains is that model, not a second copy."""
    seed, out = P.train_seeds[0], {}
    for lr in P.posttrain.sft_sweep:
        main = lr == P.posttrain.sft.lr
        out[lr] = RunDir(P).checkpoints("sft" if main else sweep_name(lr), seed)[-1]
    return out


def ensure_sft_sweep(P: Params) -> dict[float, Path]:
    """Train SFT at every learning rate of ``posttrain.sft_sweep`` (first training seed), resumable; returns the
    final checkpoints. The sweep lets SFT and RL be compared at matched KL or matched in-domain gain."""
    for lr in P.posttrain.sft_sweep:
        if lr != P.posttrain.sft.lr:
            train_one(P, "sft", P.train_seeds[0], lr)
    return sweep_dirs(P)


def training_logs(P: Params, seed: int | None = None) -> dict[str, list[dict]]:
    """Per-segment logs of every method for one training seed (default: the first)."""
    seed = P.train_seeds[0] if seed is None else seed
    return {m: posttrain.training_log(RunDir(P).method(m, seed), P.posttrain.n_checkpoints)
            for m in P.posttrain.methods if m not in P.models}   # no logs for models trained elsewhere


def family_table(P: Params) -> pd.DataFrame:
    """One row per evaluation family: role, chance level, an example prompt and gold completion, test size."""
    return pd.DataFrame([{"family": name, "role": f.role, "class": f.transfer, "chance": round(f.chance, 3),
                          "prompt": f.examples[0].prompt, "gold completion": f.examples[0].completion,
                          "n_test": len(f.examples)} for name, f in suite.world(P).eval_families().items()])


def in_domain_summary(P: Params, scores: dict) -> pd.DataFrame:
    """Greedy accuracy, pass@k and mean sampled accuracy in-domain: room for post-training and RL's signal."""
    k, fam = P.eval.pass_k, suite.world(P).in_domain_family
    return pd.DataFrame([{"family": fam, "greedy": scores[fam],
                          f"pass@{k} (sampled)": scores[f"in_domain_pass@{k}"],
                          "mean sampled accuracy": scores["in_domain_sampled_mean"]}])


def corpus_table(P: Params, n: int = 20_000) -> pd.DataFrame:
    """What the pretraining corpus holds, from ``n`` examples drawn as its batches draw them: per family its
    share, and the shares of sloppy answers, chained answers (``####``) and teacher-style solutions; a last row
    for the whole corpus. Empty for a model pretrained elsewhere."""
    if not P.model.is_organism or P.pretrain is None:
        return pd.DataFrame()
    ex = pretraining.corpus_sample(n, P.seed, P.pretrain, P.tasks)
    df = pd.DataFrame({"family": [e.family for e in ex], "sloppy": [tasks.is_sloppy(e) for e in ex],
                       "chained": [e.family != "arith" and tasks.uses_chain(e.completion) for e in ex],
                       "teacher style": [tasks.is_teacher_style(e.text) for e in ex]})
    out = df.groupby("family", sort=False).agg(share=("sloppy", "size"), sloppy=("sloppy", "mean"),
                                               chained=("chained", "mean"), teacher_style=("teacher style", "mean"))
    out["share"] /= len(df)
    total = pd.DataFrame({"share": [1.0], "sloppy": [df.sloppy.mean()], "chained": [df.chained.mean()],
                          "teacher_style": [df["teacher style"].mean()]}, index=["(corpus)"])
    return pd.concat([out, total]).rename(columns={"teacher_style": "teacher style"})


HEADROOM = (0.25, 0.85)
"""The base's greedy accuracy on every out-of-domain family should lie here (and above chance): room to gain
and to forget. The world and pretraining are calibrated on the base alone to meet it."""


def base_table(P: Params, scores: dict) -> pd.DataFrame:
    """The base model's greedy accuracy per family next to chance, with the headroom check for OOD families."""
    lo, hi = HEADROOM
    rows, fams = [], suite.world(P).eval_families()
    mixed = any(f.scoring != "generate" for f in fams.values())   # say which scoring made each accuracy
    for name, f in fams.items():
        acc = scores[name]
        ok = None if f.role == "in_domain" else bool(lo <= acc <= hi and acc > f.chance)
        rows.append({"family": name, "role": f.role, "class": f.transfer, **({"scoring": f.scoring} if mixed else {}),
                     "greedy accuracy" if not mixed else "accuracy": acc, "chance": f.chance,
                     f"headroom {lo}–{hi}": ok})
    return pd.DataFrame(rows)


def start_accuracies(P: Params, logs: dict[str, list[dict]], base_scores: dict) -> dict[str, float | None]:
    """Held-out in-domain accuracy of each method's starting model (the curves' checkpoint 0; unknown for a
    method started from an SFT model trained elsewhere)."""
    sft = logs["sft"][-1].get("curve_accuracy") if "sft" in logs else None
    return {m: base_scores["in_domain_curve"] if posttrain.STARTS_FROM[m] == "base" else sft for m in logs}


def posttrain_table(P: Params, logs: dict[str, list[dict]], base_scores: dict) -> pd.DataFrame:
    """Per method: where it started, segments, rows seen, in-domain accuracy at each checkpoint and its change
    over the start."""
    rows, starts = [], start_accuracies(P, logs, base_scores)
    for m, segs in logs.items():
        start = starts[m]
        acc = [s.get("curve_accuracy") for s in segs]
        rows.append({"method": m, "starts from": posttrain.STARTS_FROM[m], "rows trained": sum(s["n_rows"] for s in segs),
                     "optimizer steps": sum(len([h for h in s["log"] if "loss" in h]) for s in segs),
                     "in-domain acc. at start": start, "per checkpoint": acc, "final": acc[-1],
                     "change": None if acc[-1] is None or start is None else acc[-1] - start})
    return pd.DataFrame(rows)
