"""Notebook 01 (train): pretrain the organism, evaluate the base, post-train every method — each stage keyed
by the params that make it and skipped when already done (paths: :class:`rlgen_utils.run.rundir.RunDir`).

    base/                    the base model (organism only; a local HF model is used where it is)
    pretrain/<key>/step-*/   resumable pretraining checkpoints;  pretrain_log.json: loss per step
    base_eval.json           greedy accuracy per family and pass@k in-domain, for the base
    posttrain/<method>/seed-<s>/checkpoint-{1..N}/   save_pretrained folders + optimizer moments + train_log.json
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd

from ..models import generation, loading, posttrain, pretrain, scoring
from ..run import jobs, launch
from ..run.artifacts import is_done, mark_done, provenance, read_json, write_json
from ..run.config import Params
from ..run.keys import stage_key
from ..run.rundir import RunDir, checkpoint_dirs, sft_run_name
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
    seed_everything(P.base_seed)
    tokenizer = loading.char_tokenizer()
    model = loading.organism_model(P.model.organism, tokenizer, P.base_seed)
    log = pretrain.pretrain(model, tokenizer, P.pretrain, P.tasks, P.base_seed, run.pretrain(key))
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
    """The model ``method`` starts from: the base, or the SFT model chosen by validation (``sft_grpo``, ``sft_dpo``)."""
    return ensure_base(P) if posttrain.STARTS_FROM[method] == "base" else RunDir(P).model("sft", seed)


def trained_key(P: Params, method: str, sft_lr: float | None = None) -> str:
    """The key of one method's checkpoints: the ``trained`` stage key, SFT's learning rate for an SFT run, and the
    chosen SFT model (rate and checkpoint) for a method that starts from it."""
    key = stage_key(P, "trained")
    if sft_lr is not None:
        key += f"-lr{sft_lr:g}"
    if posttrain.STARTS_FROM[method] == "sft" and "sft" not in P.models:
        c = RunDir(P).sft_choice()
        key += f"-from-sft-lr{c['lr']:g}-ck{c['checkpoint']}"
    return key


def method_rows(P: Params, method: str, start: Path, seed: int) -> list[dict]:
    examples = suite.world(P).train_examples()
    algorithm = posttrain.ALGORITHM[method]
    if algorithm == "sft":
        return posttrain.sft_rows(examples)
    if algorithm in ("grpo", "rloo"):
        return posttrain.rl_rows(examples, suite.world(P).train_kind)
    return _dpo_pairs(P, method, start, examples, seed)


def _dpo_pairs(P: Params, method: str, start: Path, examples: list[Example], seed: int) -> list[dict]:
    path, key = RunDir(P).method(method, seed) / "pairs.json", trained_key(P, method)
    if path.is_file() and read_json(path)["key"] == key:
        return read_json(path)["rows"]
    rows = posttrain.dpo_rows(loading.load_model(start, P.model.dtype), loading.load_tokenizer(start), examples,
                              P.posttrain.dpo, P.eval.max_new_tokens, seed, suite.world(P).train_kind)
    if not rows:
        raise RuntimeError(f"{method}: the starting model answered every prompt right; no DPO pairs to train on")
    write_json(path, {"key": key, "rows": rows, "provenance": provenance()})
    return rows


def ensure_posttrained(P: Params) -> dict[tuple[str, int], Path]:
    """Train every method in ``posttrain.methods`` for every training seed (SFT first: its learning-rate grid on
    the first seed and the validation choice, then the chosen rate on the other seeds, since SFT→X starts from
    it); resumable. With ``compute.jobs`` > 1 the trainings that do not wait for each other run at once
    (:func:`posttrain_jobs`). Returns the final checkpoint of each (method, seed)."""
    ensure_base(P)   # once, before any worker starts from it
    if "sft" in P.posttrain.methods and "sft" not in P.models:
        ensure_sft_choice(P)
    jobs.run(P, posttrain_jobs(P), desc="post-train")
    # trained above (each job raises unless its final checkpoint is written), or elsewhere and analysed as it is
    return {(m, seed): RunDir(P).checkpoints(m, seed)[-1] for seed in P.train_seeds for m in P.posttrain.methods}


def posttrain_jobs(P: Params) -> list[jobs.Job]:
    """Every training of :func:`ensure_posttrained` after SFT's choice, as a job that waits only for what it starts
    from: SFT at the chosen rate on the later seeds (the first seed's is the grid's run), GRPO, RLOO and DPO from the
    base, SFT→GRPO and SFT→DPO after that seed's SFT. In list order this is the order one process trains in."""
    seed0, out = P.train_seeds[0], []
    order = sorted(P.posttrain.methods, key=lambda m: posttrain.STARTS_FROM[m] != "base")
    here = "sft" in P.posttrain.methods and "sft" not in P.models
    for seed in P.train_seeds:
        for m in order:
            if m in P.models or (m == "sft" and seed == seed0):   # seed 0's sft is the grid's chosen rate
                continue
            after = (f"sft seed {seed}",) if posttrain.STARTS_FROM[m] == "sft" and here and seed != seed0 else ()
            out.append(jobs.Job(f"{m} seed {seed}", train_one, (P, m, seed), after))
    return out


def train_one(P: Params, method: str, seed: int, sft_lr: float | None = None) -> Path:
    """Train ``method`` for training seed ``seed`` (``sft_lr``: one rate of the SFT sweep), resumable: here, or
    with ``compute.processes`` > 1 under ``accelerate launch`` (:mod:`rlgen_utils.run.launch`). Returns the final
    checkpoint."""
    folder, lr = _target(P, method, seed, sft_lr)
    final, key = checkpoint_dirs(folder, P.posttrain.n_checkpoints)[-1], trained_key(P, method, lr)
    if not launch.should_launch(P) or is_done(final, key):
        return train_here(P, method, seed, sft_lr)
    start = start_dir(P, method, seed)   # the base is pretrained here, once, before the ranks start
    if posttrain.ALGORITHM[method] == "dpo":
        method_rows(P, method, start, seed)   # and DPO's pairs are sampled once
    launch.run(launch.command(P, launch.params_file(P), method, seed, lr))
    if not is_done(final, key):
        raise RuntimeError(f"{method} seed {seed}: the launch ended without its final checkpoint {final}")
    return final


def train_here(P: Params, method: str, seed: int, sft_lr: float | None = None) -> Path:
    """Train in this process (one rank of a launch, or the only process)."""
    folder, lr = _target(P, method, seed, sft_lr)
    start = start_dir(P, method, seed)
    world = suite.world(P)
    curve, verify = world.curve_examples(), world.in_domain_eval().verify
    return posttrain.train_method(method, start, folder, method_rows(P, method, start, seed), P,
                                  trained_key(P, method, lr), seed, curve, verify, sft_lr=lr)


def _target(P: Params, method: str, seed: int, sft_lr: float | None) -> tuple[Path, float | None]:
    """The folder a model trains into and, for SFT, its learning rate (``sft_lr``, or the validation choice)."""
    if method != "sft":
        return RunDir(P).method(method, seed), None
    lr = RunDir(P).sft_choice()["lr"] if sft_lr is None else sft_lr
    return RunDir(P).method(sweep_name(lr), seed), lr


sweep_name = sft_run_name


def sweep_dirs(P: Params) -> dict[float, Path]:
    """The checkpoint of every SFT learning rate of ``posttrain.sft_sweep`` that validation would pick for it
    (first training seed): the chosen rate's is the ``sft`` model itself."""
    seed, out = P.train_seeds[0], {}
    for lr in P.posttrain.sft_sweep:
        ckpts = RunDir(P).checkpoints(sweep_name(lr), seed)
        out[lr] = ckpts[_best_checkpoint(P, lr) - 1] if _choice_path(P).is_file() else ckpts[-1]
    return out


def ensure_sft_sweep(P: Params) -> dict[float, Path]:
    """Train SFT at every learning rate of ``posttrain.sft_sweep`` (first training seed), resumable, and choose
    ``sft`` among them by in-domain validation (:func:`ensure_sft_choice`); returns each rate's best checkpoint.
    The other rates let SFT and RL be compared at matched KL or matched in-domain gain."""
    ensure_sft_choice(P)
    return sweep_dirs(P)


# ------------------------------------------------------------------------- SFT chosen by in-domain validation
def validation_correct(P: Params, path: Path) -> list[bool]:
    """Per validation prompt (training-split in-domain prompts no method trains on; never the test split),
    whether the model at ``path`` answers it right; cached per model folder under ``eval/validation/``."""
    key = stage_key(P, "trained")
    name = "_".join(path.parts[-3:]) + "-" + hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:8]
    cache = RunDir(P).eval / "validation" / f"{name}.json"
    if cache.is_file() and read_json(cache)["key"] == key:
        return read_json(cache)["correct"]
    world = suite.world(P)
    examples, verify = world.validation_examples(P.eval.n_per_family), world.in_domain_eval().verify
    tok, model = loading.load_tokenizer(path), loading.load_model(path, P.model.dtype)
    comps = generation.generate(model, tok, [e.prompt for e in examples], P.eval.max_new_tokens, P.eval.batch_size)
    ok = generation.correctness(comps, examples, verify)
    write_json(cache, {"key": key, "path": str(path), "correct": ok, "provenance": provenance()})
    return ok


def sft_grid_jobs(P: Params) -> list[jobs.Job]:
    """SFT at every rate of the grid (first training seed), and the validation score of each checkpoint once its
    rate has trained: jobs for :func:`ensure_sft_choice`."""
    seed, out = P.train_seeds[0], []
    for lr in P.posttrain.sft_sweep:
        name = f"sft lr={lr:g} seed {seed}"
        out.append(jobs.Job(name, train_one, (P, "sft", seed, lr)))
        out += [jobs.Job(f"validation {path.parent.parent.name} {path.name}", validation_correct, (P, path), after=(name,))
                for path in RunDir(P).checkpoints(sweep_name(lr), seed)]
    return out


def _choice_path(P: Params) -> Path:
    return RunDir(P).sft_choice_path


def sft_validation(P: Params) -> pd.DataFrame:
    """In-domain validation accuracy of every (SFT learning rate, checkpoint) of the grid, first training seed."""
    seed, rows = P.train_seeds[0], []
    for lr in P.posttrain.sft_sweep:
        for k, path in enumerate(RunDir(P).checkpoints(sweep_name(lr), seed), start=1):
            ok = validation_correct(P, path)
            rows.append({"lr": lr, "checkpoint": k, "validation accuracy": sum(ok) / max(1, len(ok)), "n": len(ok)})
    return pd.DataFrame(rows)


def choose(table: pd.DataFrame) -> dict:
    """The best validation accuracy of the grid; a tie goes to the smaller rate, then the earlier checkpoint
    (the model that moved least)."""
    best = table.sort_values(["validation accuracy", "lr", "checkpoint"], ascending=[False, True, True]).iloc[0]
    return {"lr": float(best["lr"]), "checkpoint": int(best["checkpoint"]),
            "validation accuracy": float(best["validation accuracy"])}


PLATEAU_RISE = 0.02
"""Validation has stopped rising when the chosen checkpoint is not the last, or the last rose by at most this
much over the one before (4 of 200 validation prompts)."""


def still_rising(table: pd.DataFrame, choice: dict) -> bool:
    """Whether the chosen rate's validation accuracy was still rising at the end of SFT's budget: then the
    budget (``posttrain.sft.epochs``) is too short for the rule "train until validation stops rising"."""
    curve = table[table.lr == choice["lr"]].sort_values("checkpoint")["validation accuracy"].to_numpy()
    return bool(choice["checkpoint"] == len(curve) and len(curve) > 1 and curve[-1] - curve[-2] > PLATEAU_RISE)


def ensure_sft_choice(P: Params) -> dict:
    """Train SFT at every rate of ``posttrain.sft_sweep`` on the first training seed, score every checkpoint on
    the in-domain validation prompts, and record the best (rate, checkpoint) as the ``sft`` model every notebook
    analyses (``posttrain/sft/choice.json``). No params value names the rate: the grid is all params give."""
    if "sft" not in P.posttrain.methods or "sft" in P.models:   # no SFT here, or one trained elsewhere as it is
        return {}
    path, key = _choice_path(P), stage_key(P, "trained") + "-" + ",".join(f"{lr:g}" for lr in P.posttrain.sft_sweep)
    if path.is_file() and read_json(path)["key"] == key:
        return read_json(path)
    jobs.run(P, sft_grid_jobs(P), desc="SFT grid")
    table = sft_validation(P)
    best = choose(table)
    choice = {"key": key, **best, "still_rising": still_rising(table, best), "table": table.to_dict("records"),
              "provenance": provenance()}
    write_json(path, choice)
    return choice


def sft_choice_table(P: Params) -> pd.DataFrame:
    """The grid's validation accuracy, one row per rate and one column per checkpoint, with the choice marked."""
    c = ensure_sft_choice(P)
    if not c:
        return pd.DataFrame()
    table = pd.DataFrame(c["table"]).pivot(index="lr", columns="checkpoint", values="validation accuracy")
    table.columns = [f"checkpoint {k}" for k in table.columns]
    note = " (validation still rising: raise posttrain.sft.epochs)" if c.get("still_rising") else ""
    table["chosen"] = [f"checkpoint {c['checkpoint']}{note}" if lr == c["lr"] else "" for lr in table.index]
    return table.reset_index()


def _best_checkpoint(P: Params, lr: float) -> int:
    """The checkpoint validation prefers within one rate of the grid."""
    table = pd.DataFrame(read_json(_choice_path(P))["table"])
    return choose(table[table.lr == lr])["checkpoint"]


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
    ex = pretraining.corpus_sample(n, P.base_seed, P.pretrain, P.tasks)
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
    """Held-out in-domain accuracy of each method's starting model (the curves' checkpoint 0: the base, or the
    SFT checkpoint validation chose; unknown for a method started from an SFT model trained elsewhere)."""
    sft = logs["sft"][RunDir(P).final_checkpoint("sft") - 1].get("curve_accuracy") if "sft" in logs else None
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
