"""Pretraining the organism: a plain torch loop over a seeded mixture of every task family.

Each step's batch is a pure function of ``(seed, step)``: examples are drawn from the mixture (the in-domain
family at ``in_domain_weight`` times the others' weight, arith with its sloppy-solver fraction, see
:mod:`rlgen_utils.world.tasks`), tokenised as ``<bos>prompt completion<eos>`` and packed whole into ``batch_rows`` rows
of ``seq_len`` tokens (right-padded, loss on every real token). Because batches need no data-loader state,
resuming from a checkpoint (weights + optimizer moments + step) reproduces an uninterrupted run exactly.
"""
from __future__ import annotations

import math
import random
from pathlib import Path
from typing import TYPE_CHECKING

from ..run.artifacts import atomic_dir, read_json, write_json
from ..run.progress import progress
from ..world.pretraining import mixture, pretrain_example
from .checkpoint import load_optimizer, save_optimizer

if TYPE_CHECKING:
    from ..run.config import TasksCfg
    from ..run.types import Model, Tokenizer

# imported inside functions, for their import cost (rlgen_utils.run.imports): safetensors, torch


def encode_chars(text: str, tokenizer: Tokenizer) -> list[int]:
    vocab = tokenizer.get_vocab()
    return [vocab[tokenizer.bos_token]] + [vocab[c] for c in text] + [vocab[tokenizer.eos_token]]


def packed_batch(step: int, seed: int, pcfg, tcfg: TasksCfg, tokenizer: Tokenizer):
    """``(input_ids_BS, attention_mask_BS)`` for ``step``: whole examples packed into rows."""
    import torch

    rng = random.Random(f"pretrain/{seed}/{step}")
    names, weights = mixture(pcfg.in_domain_weight, pcfg.family_weights)
    pad = tokenizer.pad_token_id
    ids = torch.full((pcfg.batch_rows, pcfg.seq_len), pad, dtype=torch.long)
    for r in range(pcfg.batch_rows):
        row: list[int] = []
        while True:
            ex = pretrain_example(rng, rng.choices(names, weights)[0], tcfg)
            toks = encode_chars(ex.text, tokenizer)[: pcfg.seq_len]
            if len(row) + len(toks) > pcfg.seq_len:
                break
            row += toks
        ids[r, : len(row)] = torch.tensor(row)
    return ids, (ids != pad).long()


def lr_factor(step: int, total: int, warmup: int) -> float:
    """Linear warm-up, then cosine decay to 10 %."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))


def _latest_checkpoint(ckpt_root: Path) -> Path | None:
    done = sorted((p for p in ckpt_root.glob("step-*") if (p / "state.json").is_file()),
                  key=lambda p: int(p.name.split("-")[1]))
    return done[-1] if done else None


def pretrain(model: Model, tokenizer: Tokenizer, pcfg, tcfg: TasksCfg, seed: int,
             ckpt_root: str | Path, on_log = None) -> list[dict]:
    """Train ``model`` in place for ``pcfg.steps`` steps, checkpointing ``n_checkpoints`` times under
    ``ckpt_root``; resumes from the latest complete checkpoint found there. Returns the loss log."""
    import torch
    from safetensors.torch import load_model, save_model

    ckpt_root = Path(ckpt_root)
    opt = torch.optim.AdamW(model.parameters(), lr=pcfg.lr, betas=(0.9, 0.98),
                            weight_decay=pcfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, pcfg.steps, pcfg.warmup_steps))
    start, log = 0, []
    last = _latest_checkpoint(ckpt_root)
    if last is not None:
        load_model(model, str(last / "model.safetensors"))
        load_optimizer(opt, last)
        state = read_json(last / "state.json")
        start, log = state["step"], state["log"]
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s + start, pcfg.steps,
                                                                           pcfg.warmup_steps))
    every = max(1, math.ceil(pcfg.steps / pcfg.n_checkpoints))
    model.train()
    for step in progress(range(start, pcfg.steps), desc="pretrain", initial=start, total=pcfg.steps):
        ids, mask = packed_batch(step, seed, pcfg, tcfg, tokenizer)
        loss = model(input_ids=ids, attention_mask=mask, labels=ids.masked_fill(mask == 0, -100)).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        log.append({"step": step + 1, "loss": loss.item()})
        if on_log:
            on_log(log[-1])
        if (step + 1) % every == 0 or step + 1 == pcfg.steps:
            with atomic_dir(ckpt_root / f"step-{step + 1:06d}") as tmp:
                save_model(model, str(tmp / "model.safetensors"))
                save_optimizer(opt, tmp)
                write_json(tmp / "state.json", {"step": step + 1, "log": log})
    model.eval()
    return log
