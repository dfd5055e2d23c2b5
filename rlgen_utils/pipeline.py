"""Stages of notebook 01_train, each keyed by the params that make it and skipped when already done.

Run-folder layout (``runs/<name>/``)::

    base/                    the base model (organism: pretrained here; HF model: a pointer, see base.json)
    pretrain/step-*/         resumable pretraining checkpoints (organism only)
    pretrain_log.json        loss per step
    base_eval.json           greedy accuracy per family and pass@k in-domain, for the base
    posttrain/<method>/seed-<s>/checkpoint-{1..N}/   save_pretrained folders + optimizer moments + train_log.json
"""
from __future__ import annotations

from pathlib import Path

from . import evaluate, models, posttrain, pretrain, suite
from .artifacts import is_done, mark_done, provenance, read_json, set_provenance, write_json


REPO = Path(__file__).resolve().parent.parent


def start(params_path: str | Path):
    """What every notebook does first: work from the repository root (params and run folders are relative to
    it, in JupyterLab as under papermill), load and validate the params, set threads and seeds."""
    import os

    from .config import load_params
    os.chdir(REPO)
    P = load_params(params_path)
    init(P)
    return P


def init(P) -> None:
    """Per-process set-up a notebook does first: torch threads and seeds from params."""
    models.set_threads(P.threads)
    models.seed_everything(P.seed)
    models.quiet_libraries()
    set_provenance(params_hash(P))


def params_hash(P) -> str:
    """Hash of every params value: the provenance every artifact records."""
    return P.section_hash(*type(P).model_fields)


def base_key(P) -> str:
    return P.section_hash("model", "tasks", "pretrain")


def posttrain_key(P) -> str:
    """Key of every post-training checkpoint: which methods and seeds are listed does not change any one
    (method, seed)'s training, so adding a seed or a method retrains nothing that exists."""
    return P.section_hash("model", "tasks", "pretrain", "posttrain", "data", "eval",
                          ignore=("posttrain.methods", "posttrain.seeds"))


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


def evaluate_model(P, model_dir: Path, sampled: bool = True) -> dict:
    """Greedy accuracy on every evaluation family, accuracy on the curve prompts (``in_domain_curve``), and
    pass@k / mean sampled accuracy in-domain (``in_domain_pass@k``, ``in_domain_sampled_mean``)."""
    tok, model = models.load_tokenizer(model_dir), models.load_model(model_dir, P.model.dtype)
    e, fams = P.eval, suite.eval_families(P)
    out = {name: evaluate.accuracy(model, tok, list(f.examples), e.max_new_tokens, e.batch_size, f.verify)
           for name, f in fams.items()}
    in_dom = fams[suite.in_domain_family(P)]
    out["in_domain_curve"] = evaluate.accuracy(model, tok, suite.curve_examples(P), e.max_new_tokens,
                                               e.batch_size, in_dom.verify)
    if sampled:
        scores = evaluate.sampled_scores(model, tok, list(in_dom.examples[: e.curve_n]), e.pass_k,
                                         e.max_new_tokens, e.batch_size, seed=P.seed, verify=in_dom.verify)
        out.update({f"in_domain_{k}": v for k, v in scores.items()})
    return out


def ensure_base_eval(P) -> dict:
    path, key = P.run_dir / "base_eval.json", P.section_hash("model", "tasks", "pretrain", "data", "eval")
    if path.is_file() and read_json(path).get("key") == key:
        return read_json(path)["scores"]
    scores = evaluate_model(P, ensure_base(P))
    write_json(path, {"key": key, "scores": scores, "provenance": provenance()})
    return scores


def method_dir(P, method: str, seed: int) -> Path:
    return P.run_dir / "posttrain" / method / f"seed-{seed}"


def checkpoints(P, method: str, seed: int) -> list[Path]:
    return posttrain.checkpoint_dirs(method_dir(P, method, seed), P.posttrain.n_checkpoints)


def final_checkpoint(P, method: str, seed: int) -> Path:
    return checkpoints(P, method, seed)[-1]


def start_dir(P, method: str, seed: int) -> Path:
    return ensure_base(P) if posttrain.STARTS_FROM[method] == "base" else final_checkpoint(P, "sft", seed)


def method_rows(P, method: str, start: Path, seed: int) -> list[dict]:
    examples = suite.train_examples(P)
    algorithm = posttrain.ALGORITHM[method]
    if algorithm == "sft":
        return posttrain.sft_rows(examples)
    if algorithm in ("grpo", "rloo"):
        return posttrain.rl_rows(examples, suite.train_kind(P))
    return _dpo_pairs(P, method, start, examples, seed)


def _dpo_pairs(P, method: str, start: Path, examples, seed: int) -> list[dict]:
    path, key = method_dir(P, method, seed) / "pairs.json", posttrain_key(P)
    if path.is_file() and read_json(path)["key"] == key:
        return read_json(path)["rows"]
    rows = posttrain.dpo_rows(models.load_model(start, P.model.dtype), models.load_tokenizer(start), examples,
                              P.posttrain.dpo, P.eval.max_new_tokens, seed, suite.train_kind(P))
    if not rows:
        raise RuntimeError(f"{method}: the starting model answered every prompt right; no DPO pairs to train on")
    write_json(path, {"key": key, "rows": rows, "provenance": provenance()})
    return rows


def ensure_posttrained(P) -> dict[tuple[str, int], Path]:
    """Train every method in ``posttrain.methods`` for every training seed (SFT first, since SFT→X starts from
    it); resumable. Returns the final checkpoint of each (method, seed)."""
    order = sorted(P.posttrain.methods, key=lambda m: posttrain.STARTS_FROM[m] != "base")
    curve, verify = suite.curve_examples(P), suite.eval_families(P)[suite.in_domain_family(P)].verify
    out = {}
    for seed in P.train_seeds:
        for m in order:
            start = start_dir(P, m, seed)
            out[m, seed] = posttrain.train_method(m, start, method_dir(P, m, seed), method_rows(P, m, start, seed),
                                                  P, posttrain_key(P), seed, curve, verify)
    return out


def training_logs(P, seed: int | None = None) -> dict[str, list[dict]]:
    """Per-segment logs of every method for one training seed (default: the first)."""
    seed = P.train_seeds[0] if seed is None else seed
    return {m: posttrain.training_log(method_dir(P, m, seed), P.posttrain.n_checkpoints)
            for m in P.posttrain.methods}


def family_table(P):
    """One row per evaluation family: role, chance level, an example prompt and gold completion, test size."""
    import pandas as pd
    return pd.DataFrame([{"family": name, "role": f.role, "chance": round(f.chance, 3),
                          "prompt": f.examples[0].prompt, "gold completion": f.examples[0].completion,
                          "n_test": len(f.examples)} for name, f in suite.eval_families(P).items()])


def in_domain_summary(P, scores: dict):
    """Greedy accuracy, pass@k and mean sampled accuracy in-domain: room for post-training and RL's signal."""
    import pandas as pd
    k = P.eval.pass_k
    return pd.DataFrame([{"family": suite.in_domain_family(P), "greedy": scores[suite.in_domain_family(P)],
                          f"pass@{k} (sampled)": scores[f"in_domain_pass@{k}"],
                          "mean sampled accuracy": scores["in_domain_sampled_mean"]}])


def base_table(P, scores: dict):
    """The base model's greedy accuracy per family next to chance."""
    import pandas as pd
    return pd.DataFrame([{"family": name, "role": f.role, "greedy accuracy": scores[name], "chance": f.chance}
                         for name, f in suite.eval_families(P).items()])


def start_accuracies(P, logs: dict[str, list[dict]], base_scores: dict) -> dict[str, float]:
    """Held-out in-domain accuracy of each method's starting model (the curves' checkpoint 0)."""
    return {m: base_scores["in_domain_curve"] if posttrain.STARTS_FROM[m] == "base"
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
