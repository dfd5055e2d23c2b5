"""Stages of notebook 01_train, each keyed by the params that make it and skipped when already done.

Run-folder layout (``runs/<name>/``)::

    base/                    the base model (organism: pretrained here; HF model: a pointer, see base.json)
    pretrain/step-*/         resumable pretraining checkpoints (organism only)
    pretrain_log.json        loss per step
    base_eval.json           greedy accuracy per family and pass@k in-domain, for the base
    posttrain/<method>/checkpoint-{1..N}/   save_pretrained folders + optimizer moments + train_log.json
"""
from __future__ import annotations

from pathlib import Path

from . import evaluate, models, posttrain, pretrain, tasks
from .artifacts import is_done, mark_done, read_json, write_json


def init(P) -> None:
    """Per-process set-up a notebook does first: torch threads and seeds from params."""
    models.set_threads(P.threads)
    models.seed_everything(P.seed)


def base_key(P) -> str:
    return P.section_hash("model", "tasks", "pretrain")


def posttrain_key(P) -> str:
    return P.section_hash("model", "tasks", "pretrain", "posttrain", "eval")


def base_dir(P) -> Path:
    """Folder of the base model: the organism's under the run folder, else the HF model's own folder."""
    return P.run_dir / "base" if P.model.is_organism else Path(P.model.name_or_path)


def ensure_base(P) -> Path:
    """Pretrain the organism (resuming if interrupted) unless a base with this key exists; HF models are used
    as they are."""
    if not P.model.is_organism:
        return base_dir(P)
    out, key = P.run_dir / "base", base_key(P)
    if is_done(out, key):
        return out
    models.seed_everything(P.seed)
    tokenizer = models.char_tokenizer()
    model = models.organism_model(P.model.organism, tokenizer, P.seed)
    log = pretrain.pretrain(model, tokenizer, P.pretrain, P.tasks, P.seed, P.run_dir / "pretrain" / key)
    write_json(P.run_dir / "pretrain_log.json", log)
    models.save_model(model, tokenizer, out)
    mark_done(out, key, n_params=models.n_params(model))
    return out


def pretrain_log(P) -> list[dict]:
    path = P.run_dir / "pretrain_log.json"
    return read_json(path) if path.is_file() else []


def train_examples(P) -> list[tasks.Example]:
    """The in-domain post-training prompts — the same for every method."""
    return tasks.sample_split("arith", "train", P.posttrain.n_train_prompts, P.seed, P.tasks)


def curve_examples(P) -> list[tasks.Example]:
    """Held-out in-domain prompts scored after every segment for the training curves."""
    return tasks.sample_split("arith", "test", P.eval.curve_n, P.seed + 1, P.tasks)


def test_examples(P, family: str) -> list[tasks.Example]:
    return tasks.sample_split(family, "test", P.eval.n_per_family, P.seed, P.tasks, allow_fewer=True)


def evaluate_model(P, model_dir: Path, sampled: bool = True) -> dict:
    """Greedy accuracy on every family's test split, and pass@k / mean sampled accuracy in-domain."""
    tok, model = models.load_tokenizer(model_dir), models.load_model(model_dir, P.model.dtype)
    e = P.eval
    out = {f: evaluate.accuracy(model, tok, test_examples(P, f), e.max_new_tokens, e.batch_size)
           for f in tasks.FAMILIES}
    if sampled:
        scores = evaluate.sampled_scores(model, tok, test_examples(P, "arith")[: e.curve_n], e.pass_k,
                                         e.max_new_tokens, e.batch_size, seed=P.seed)
        out.update({f"arith_{k}": v for k, v in scores.items()})
    return out


def ensure_base_eval(P) -> dict:
    path, key = P.run_dir / "base_eval.json", P.section_hash("model", "tasks", "pretrain", "eval")
    if path.is_file() and read_json(path).get("key") == key:
        return read_json(path)["scores"]
    scores = evaluate_model(P, ensure_base(P))
    tok, model = models.load_tokenizer(base_dir(P)), models.load_model(base_dir(P), P.model.dtype)
    scores["arith_curve"] = evaluate.accuracy(model, tok, curve_examples(P), P.eval.max_new_tokens,
                                              P.eval.batch_size)
    write_json(path, {"key": key, "scores": scores})
    return scores


def method_dir(P, method: str) -> Path:
    return P.run_dir / "posttrain" / method


def final_checkpoint(P, method: str) -> Path:
    return posttrain.checkpoint_dirs(method_dir(P, method), P.posttrain.n_checkpoints)[-1]


def start_dir(P, method: str) -> Path:
    return ensure_base(P) if posttrain.STARTS_FROM[method] == "base" else final_checkpoint(P, "sft")


def method_rows(P, method: str, start: Path) -> list[dict]:
    examples = train_examples(P)
    algorithm = posttrain.ALGORITHM[method]
    if algorithm == "sft":
        return posttrain.sft_rows(examples)
    if algorithm in ("grpo", "rloo"):
        return posttrain.rl_rows(examples)
    return _dpo_pairs(P, method, start, examples)


def _dpo_pairs(P, method: str, start: Path, examples) -> list[dict]:
    path, key = method_dir(P, method) / "pairs.json", posttrain_key(P)
    if path.is_file() and read_json(path)["key"] == key:
        return read_json(path)["rows"]
    rows = posttrain.dpo_rows(models.load_model(start, P.model.dtype), models.load_tokenizer(start), examples,
                              P.posttrain.dpo, P.eval.max_new_tokens, P.seed)
    if not rows:
        raise RuntimeError(f"{method}: the starting model answered every prompt right; no DPO pairs to train on")
    write_json(path, {"key": key, "rows": rows})
    return rows


def ensure_posttrained(P) -> dict[str, Path]:
    """Train every method in ``posttrain.methods`` (SFT first, since SFT→X starts from it); resumable."""
    order = sorted(P.posttrain.methods, key=lambda m: posttrain.STARTS_FROM[m] != "base")
    out = {}
    for m in order:
        start = start_dir(P, m)
        out[m] = posttrain.train_method(m, start, method_dir(P, m), method_rows(P, m, start), P,
                                        posttrain_key(P), curve_examples(P))
    return out


def training_logs(P) -> dict[str, list[dict]]:
    return {m: posttrain.training_log(method_dir(P, m), P.posttrain.n_checkpoints) for m in P.posttrain.methods}


def family_table(P):
    """One row per family: role, chance level, an example prompt and gold completion, split sizes."""
    import random

    import pandas as pd
    rows = []
    for name, fam in tasks.FAMILIES.items():
        ex = fam.generate(random.Random(P.seed), P.tasks)
        rows.append({"family": name, "role": fam.role, "format": "multiple choice" if fam.multiple_choice
                     else "free form", "chance": round(fam.chance, 3), "prompt": ex.prompt,
                     "gold completion": ex.completion, "n_test": len(test_examples(P, name))})
    return pd.DataFrame(rows)


def base_table(P, scores: dict):
    """The base model's greedy accuracy per family next to chance."""
    import pandas as pd
    return pd.DataFrame([{"family": f, "role": fam.role, "greedy accuracy": scores[f], "chance": fam.chance}
                         for f, fam in tasks.FAMILIES.items()])


def start_accuracies(P, logs: dict[str, list[dict]], base_scores: dict) -> dict[str, float]:
    """Held-out in-domain accuracy of each method's starting model (the curves' checkpoint 0)."""
    return {m: base_scores["arith_curve"] if posttrain.STARTS_FROM[m] == "base"
            else logs["sft"][-1]["curve_accuracy"] for m in logs}


def posttrain_table(P, logs: dict[str, list[dict]], base_scores: dict):
    """Per method: where it started, segments, rows seen, in-domain accuracy at each checkpoint and its change
    over the start."""
    import pandas as pd
    rows, starts = [], start_accuracies(P, logs, base_scores)
    for m, segs in logs.items():
        start = starts[m]
        acc = [s.get("curve_accuracy") for s in segs]
        rows.append({"method": m, "starts from": posttrain.STARTS_FROM[m], "rows trained": sum(s["n_rows"] for s in segs),
                     "optimizer steps": sum(len([h for h in s["log"] if "loss" in h]) for s in segs),
                     "in-domain acc. at start": start, "per checkpoint": acc, "final": acc[-1],
                     "change": None if acc[-1] is None else acc[-1] - start})
    return pd.DataFrame(rows)
