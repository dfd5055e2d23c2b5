"""Controlled post-training with trl: SFT, GRPO, RLOO and DPO from one starting model on the same prompts.

Each method trains for ``epochs`` passes over the same in-domain prompts, cut into ``n_checkpoints`` equal
*segments* (1/5 of training each by default). A segment is one ``trainer.train()`` call that starts from the
previous segment's weights and optimizer moments and ends by saving a checkpoint (``save_pretrained``
safetensors, optimizer moments as safetensors, trl's log as JSON) with a completion marker. Because a segment is a
pure function of (weights, moments, seed, segment data), a run killed at any point and restarted skips finished
segments and reproduces the uninterrupted run; a finished method with unchanged params trains nothing.

Methods (names used in params and in the run folder):

* ``sft``      — SFTTrainer on gold chain-of-thought solutions, loss on the completion only;
* ``grpo``     — GRPOTrainer, reward 1 for an exactly correct final answer, else 0;
* ``rloo``     — RLOOTrainer with the same reward (a second online-RL method for Study B);
* ``dpo``      — DPOTrainer on pairs (gold solution ≻ a wrong sample of the starting model);
* ``sft_grpo`` / ``sft_dpo`` — GRPO / DPO started from the final SFT model (Study B's before → after pairs).

trl 1.16 has no PPO trainer; none is written here.
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..run import launch
from ..run.artifacts import atomic_dir, is_done, mark_done, read_json, write_json
from ..run.progress import progress
from ..run.rundir import checkpoint_dirs
from ..run.session import quiet_libraries, seed_everything
from ..world import suite, tasks
from . import generation, loading
from .checkpoint import load_optimizer, save_optimizer

if TYPE_CHECKING:
    from collections.abc import Callable

    import torch

    from ..run.config import Params
    from ..run.types import Model, Tokenizer

# imported inside functions, for their import cost (rlgen_utils.run.imports): datasets, torch, transformers, trl


STARTS_FROM = {"sft": "base", "grpo": "base", "rloo": "base", "dpo": "base", "sft_grpo": "sft", "sft_dpo": "sft"}
ALGORITHM = {"sft": "sft", "grpo": "grpo", "rloo": "rloo", "dpo": "dpo", "sft_grpo": "grpo", "sft_dpo": "dpo"}


def answer_reward(completions: list[str], answer: list[str], kind: list[str] | None = None, **_) -> list[float]:
    """1.0 for a completion whose final answer equals the gold ``answer`` exactly, else 0.0; ``kind`` (a dataset
    column) picks the verifier: ``task`` for the task world, ``math`` for free-form math files."""
    kind = kind or ["task"] * len(completions)
    return [1.0 if suite.VERIFIERS[k](c, a) else 0.0 for c, a, k in zip(completions, answer, kind)]


@dataclass(frozen=True)
class Segment:
    index: int            # 0-based
    rows: list[dict]      # the dataset rows this segment trains on
    seed: int


def segments(rows: list[dict], epochs: int, n_checkpoints: int, seed: int) -> list[Segment]:
    """``epochs`` passes over ``rows`` (each pass shuffled by ``seed``), cut into ``n_checkpoints`` equal parts."""
    stream = []
    for e in range(epochs):
        order = list(range(len(rows)))
        random.Random(f"{seed}/epoch{e}").shuffle(order)
        stream += [rows[i] for i in order]
    bounds = [round(i * len(stream) / n_checkpoints) for i in range(n_checkpoints + 1)]
    return [Segment(i, stream[bounds[i]:bounds[i + 1]], seed * 1000 + i) for i in range(n_checkpoints)]


def sft_rows(examples: list[tasks.Example]) -> list[dict]:
    return [{"prompt": e.prompt, "completion": e.completion} for e in examples]


def rl_rows(examples: list[tasks.Example], kind: str = "task") -> list[dict]:
    return [{"prompt": e.prompt, "answer": e.answer, "kind": kind} for e in examples]


def dpo_rows(model: Model, tokenizer: Tokenizer, examples: list[tasks.Example], cfg,
             max_new_tokens: int, seed: int,
             kind: str = "task") -> list[dict]:
    """Preference pairs: the gold solution is *chosen*; the first wrong one of ``samples_per_prompt`` samples of
    ``model`` is *rejected* (its greedy completion if every sample was right and it is wrong; prompts on which
    the model never errs are dropped, as they carry no preference)."""
    k = cfg.samples_per_prompt
    prompts = [e.prompt for e in examples]
    sampled = generation.generate(model, tokenizer, prompts, max_new_tokens, batch_size=256, do_sample=True,
                                num_return_sequences=k, seed=seed)
    greedy = generation.generate(model, tokenizer, prompts, max_new_tokens, batch_size=256)
    rows = []
    for i, e in enumerate(examples):
        wrong = [c for c in sampled[i * k:(i + 1) * k] + [greedy[i]] if not suite.VERIFIERS[kind](c, e.answer)]
        if wrong:
            rows.append({"prompt": e.prompt, "chosen": e.completion, "rejected": wrong[0]})
    return rows


def lr_factor(step: int, total: int, warmup: float, schedule: str) -> float:
    """The learning-rate multiplier at optimizer step ``step`` (0-based) of a ``total``-step run: a linear
    warm-up over the first ``warmup`` share of steps, then ``constant``, ``linear`` decay to 0 or ``cosine``
    decay to 0 over the rest (as transformers' schedules, but over the whole run rather than one segment)."""
    w = round(warmup * total)
    if step < w:
        return step / w
    progress = (step - w) / max(1, total - w)
    if schedule == "linear":
        return max(0.0, 1.0 - progress)
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
    return 1.0


def segment_steps(algorithm: str, segs: list[Segment], pcfg) -> list[int]:
    """Optimizer steps of each segment (one per global batch)."""
    if algorithm in ("grpo", "rloo"):
        c = getattr(pcfg, algorithm)
        return [math.ceil(len(s.rows) * c.num_generations / c.completions_per_step) for s in segs]
    size = pcfg.sft.batch_size if algorithm == "sft" else pcfg.dpo.batch_size
    return [math.ceil(len(s.rows) / size) for s in segs]


def _schedule(optimizer: torch.optim.Optimizer, lr: float, offset: int, total: int, cfg):
    """A scheduler for one segment that continues the whole run's schedule from step ``offset``: every segment
    (and a resumed one) sets the same rate at the same global step."""
    import torch

    for group in optimizer.param_groups:   # the base rate, whatever the previous segment left in the groups
        group["lr"] = group["initial_lr"] = lr
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(offset + s, total, cfg.warmup, cfg.schedule))


def _common_args(seed: int, lr: float, batch_size: int, max_steps: int, micro_batches: int = 1) -> dict:
    """trl arguments shared by every method; ``batch_size`` is global: under ``accelerate launch`` each of the
    ranks takes an equal slice, fed in ``micro_batches`` gradient-accumulation steps (params check that it
    divides). One optimizer step per global batch either way."""
    per_rank = batch_size // (launch.world()[1] * micro_batches)
    return dict(output_dir="/tmp/rlgen-trl-unused", per_device_train_batch_size=per_rank, learning_rate=lr,
                max_steps=max_steps, lr_scheduler_type="constant", warmup_steps=0, logging_steps=1,
                save_strategy="no", report_to="none", seed=seed, data_seed=seed, use_cpu=loading.device() == "cpu",
                disable_tqdm=True, dataloader_num_workers=0, gradient_accumulation_steps=micro_batches, max_grad_norm=1.0,
                gradient_checkpointing=False,   # trl turns it on by default: pure overhead at this size
                ddp_find_unused_parameters=False)  # under accelerate: every parameter is used


def build_trainer(algorithm: str, model: Model, tokenizer: Tokenizer, seg_rows: list[dict], seed: int,
                  pcfg, optimizer: torch.optim.Optimizer,
                  ref_model: Model | None = None, reward=answer_reward, micro_batches: int = 1,
                  lr: float | None = None, steps_done: int = 0, steps_total: int = 0):
    """A trl trainer for one segment; the optimizer is ours so its moments carry across segments.
    ``micro_batches`` (``compute.micro_batches``) splits each global batch into gradient-accumulation steps.
    SFT trains at ``lr`` (one rate of ``posttrain.sft_sweep``) on ``posttrain.sft``'s schedule, continued from
    step ``steps_done`` of ``steps_total``."""
    from datasets import Dataset

    ds = Dataset.from_list(seg_rows)
    n = len(seg_rows)
    if algorithm == "sft":
        from trl import SFTConfig, SFTTrainer
        c = pcfg.sft
        if lr is None:
            raise ValueError("sft: a learning rate from posttrain.sft_sweep is required")
        steps = math.ceil(n / c.batch_size)
        args = SFTConfig(**_common_args(seed, lr, c.batch_size, steps, micro_batches),
                         completion_only_loss=True, max_length=256, packing=False)
        return SFTTrainer(model=model, args=args, train_dataset=ds, processing_class=tokenizer,
                          optimizers=(optimizer, _schedule(optimizer, lr, steps_done, steps_total or steps, c)))
    if algorithm in ("grpo", "rloo"):
        c = getattr(pcfg, algorithm)
        steps = math.ceil(n * c.num_generations / c.completions_per_step)
        common = dict(**_common_args(seed, c.lr, c.completions_per_step, steps, micro_batches),
                      num_generations=c.num_generations,
                      max_completion_length=c.max_completion_length, temperature=c.temperature, top_k=0,
                      top_p=1.0, beta=c.beta, steps_per_generation=micro_batches, num_iterations=1, shuffle_dataset=True,
                      log_completions=False, **({"use_vllm": True, "vllm_mode": "colocate"} if c.use_vllm else {}))
        if algorithm == "grpo":
            from trl import GRPOConfig, GRPOTrainer
            return GRPOTrainer(model=model, reward_funcs=reward, train_dataset=ds, processing_class=tokenizer,
                               args=GRPOConfig(**common, loss_type="dapo", scale_rewards="group"),
                               optimizers=(optimizer, None))
        from trl import RLOOConfig, RLOOTrainer
        return RLOOTrainer(model=model, reward_funcs=reward, args=RLOOConfig(**common), train_dataset=ds,
                           processing_class=tokenizer, optimizers=(optimizer, None))
    if algorithm == "dpo":
        from trl import DPOConfig, DPOTrainer
        c = pcfg.dpo
        args = DPOConfig(**_common_args(seed, c.lr, c.batch_size, math.ceil(n / c.batch_size), micro_batches), beta=c.beta,
                         max_length=256)
        return DPOTrainer(model=model, ref_model=ref_model, args=args, train_dataset=ds,
                          processing_class=tokenizer, optimizers=(optimizer, None))
    raise ValueError(f"unknown algorithm {algorithm!r}")


def train_method(method: str, start_dir: Path, method_dir: Path, rows: list[dict], params: Params, key: str,
                 seed: int, curve_examples: list[tasks.Example] | None = None,
                 curve_verify: Callable[[str, tasks.Example], bool] = generation.exact,
                 sft_lr: float | None = None, segs: list[Segment] | None = None) -> Path:
    """Train ``method`` from ``start_dir`` into ``method_dir/checkpoint-{1..N}`` with training seed ``seed``;
    resumable. Returns the final checkpoint's folder. ``curve_examples`` (if given) are scored greedily with
    ``curve_verify`` after each segment for the training curves. SFT trains at ``sft_lr``, for
    ``posttrain.sft.epochs`` passes (default ``posttrain.epochs``). ``segs`` replaces the segments cut from
    ``rows`` (:func:`segments`): what each checkpoint trains on, one per ``posttrain.n_checkpoints``."""
    import torch

    quiet_libraries()
    pcfg = params.posttrain
    algorithm = ALGORITHM[method]
    epochs = (pcfg.sft.epochs or pcfg.epochs) if algorithm == "sft" else pcfg.epochs
    segs = segs or segments(rows, epochs, pcfg.n_checkpoints, seed)
    if len(segs) != pcfg.n_checkpoints:
        raise ValueError(f"{method}: {len(segs)} segments for posttrain.n_checkpoints {pcfg.n_checkpoints}")
    steps = segment_steps(algorithm, segs, pcfg)
    ckpts = checkpoint_dirs(method_dir, pcfg.n_checkpoints)
    todo = [s for s in segs if not is_done(ckpts[s.index], key)]
    if not todo:
        return ckpts[-1]
    tokenizer = loading.load_tokenizer(start_dir)
    ref_model = loading.load_model(start_dir, params.model.dtype) if algorithm == "dpo" else None
    first = todo[0].index
    model = loading.load_model(ckpts[first - 1] if first else start_dir, params.model.dtype)
    lr = sft_lr if algorithm == "sft" else _lr(pcfg, algorithm)
    if lr is None:
        raise ValueError(f"{method}: SFT trains at one rate of posttrain.sft_sweep; none was given")
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    if first:
        load_optimizer(optimizer, ckpts[first - 1])
    for seg in progress(todo, desc=f"{method} seed {seed}", initial=first, total=len(segs),
                        disable=not launch.is_main()):
        seed_everything(seg.seed)
        trainer = build_trainer(algorithm, model, tokenizer, seg.rows, seg.seed, pcfg, optimizer, ref_model,
                                micro_batches=params.compute.micro_batches, lr=lr,
                                steps_done=sum(steps[:seg.index]), steps_total=sum(steps))
        _quiet(trainer)
        trainer.train()
        model.eval()
        info = {"segment": seg.index + 1, "of": len(segs), "n_rows": len(seg.rows),
                "log": [h for h in trainer.state.log_history if "loss" in h or "reward" in h]}
        if launch.is_main():   # one writer; under accelerate the other ranks wait for it
            _save_segment(model, tokenizer, optimizer, info, ckpts[seg.index], key, method, params,
                          curve_examples, curve_verify)
        launch.barrier()
    return ckpts[-1]


def _save_segment(model: Model, tokenizer: Tokenizer, optimizer: torch.optim.Optimizer, info: dict, ckpt: Path,
                  key: str, method: str, params: Params, curve_examples: list[tasks.Example] | None,
                  curve_verify: Callable[[str, tasks.Example], bool]) -> None:
    """Score the training curve's prompts (if any) and write the segment's checkpoint with its marker."""
    if curve_examples:
        info["curve_accuracy"] = generation.accuracy(model, tokenizer, curve_examples, params.eval.max_new_tokens,
                                                   params.eval.batch_size, curve_verify)
    with atomic_dir(ckpt) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        save_optimizer(optimizer, tmp)
        write_json(tmp / "train_log.json", info)
    mark_done(ckpt, key, method=method)


def _quiet(trainer) -> None:
    """trl prints every log dict when its own tqdm is off; the outer tqdm and train_log.json replace that."""
    from transformers.trainer_callback import PrinterCallback, ProgressCallback
    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)


def _lr(pcfg, algorithm: str) -> float:
    return getattr(pcfg, algorithm).lr


def training_log(method_dir: Path, n: int) -> list[dict]:
    """The per-segment logs of a trained method, in order."""
    return [read_json(d / "train_log.json") for d in checkpoint_dirs(method_dir, n)]
