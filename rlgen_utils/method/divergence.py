"""How far post-training moved a model: forward KL from the base on in-domain text, and changed parameters.

Shenfeld et al. (2025, "RL's Razor") find that forgetting is predicted by the forward KL
KL(π_base ‖ π) on the new task's distribution, whatever the paradigm; Mukherjee et al. (2025) find that RL
updates only 5–30 % of parameters. Both are measured here (docs/METHOD.md §A1):

* :func:`token_kl_BS` — Σ_v p_base(v) (log p_base(v) − log p(v)) at every position, from two models' logits;
* :func:`completion_kl` — that KL averaged over the completion tokens of (prompt, completion) pairs whose
  completions the base sampled itself, so the expectation is over y ~ π_base as the definition asks; summing the
  whole vocabulary at each position (instead of using log-ratios of the sampled tokens only) removes most of
  the Monte-Carlo variance;
* :func:`changed_fraction` — the share of parameter entries that moved by more than a tolerance.

Legend: B batch, S sequence, V vocabulary.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    import torch

    from ..run.types import Model, Tokenizer


def token_kl_BS(logits_base_BSV: torch.Tensor, logits_BSV: torch.Tensor) -> torch.Tensor:
    """KL(p_base ‖ p) at every position, in nats (float64 for the sum over a large vocabulary)."""
    logp_base = logits_base_BSV.double().log_softmax(-1)
    logp = logits_BSV.double().log_softmax(-1)
    return (logp_base.exp() * (logp_base - logp)).sum(-1)


def pack(tokenizer: Tokenizer, prompts: list[str], completions: list[str]):
    """Right-padded ``(input_ids_BS, attention_mask_BS, target_mask_BS)``; ``target_mask`` marks the positions
    whose *next* token is a completion token (the end-of-sequence token included). Prompt and completion are
    tokenised separately, so a tokenizer cannot merge tokens across their boundary."""

    rows, starts = [], []
    for p, c in zip(prompts, completions):
        head = tokenizer(p)["input_ids"]
        tail = tokenizer(c, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        rows.append(head + tail)
        starts.append(len(head))
    S = max(len(r) for r in rows)
    ids = torch.full((len(rows), S), tokenizer.pad_token_id, dtype=torch.long)
    attn = torch.zeros_like(ids)
    target = torch.zeros_like(ids, dtype=torch.bool)
    for b, (r, s) in enumerate(zip(rows, starts)):
        ids[b, :len(r)] = torch.tensor(r)
        attn[b, :len(r)] = 1
        target[b, s - 1:len(r) - 1] = True
    return ids, attn, target


def completion_kl(base: Model, model: Model, tokenizer: Tokenizer, prompts: list[str], completions: list[str],
                  batch_size: int = 64) -> list[float]:
    """Per pair: the mean over its completion tokens of KL(π_base ‖ π) (nats per token)."""

    out: list[float] = []
    for i in range(0, len(prompts), batch_size):
        ids, attn, target = pack(tokenizer, prompts[i:i + batch_size], completions[i:i + batch_size])
        with torch.no_grad():   # float64 over the vocabulary at the completion positions only
            kl_N = token_kl_BS(base(input_ids=ids, attention_mask=attn).logits[target],
                               model(input_ids=ids, attention_mask=attn).logits[target])
        kl_BS = torch.zeros(target.shape, dtype=kl_N.dtype).masked_scatter(target, kl_N)
        out += (kl_BS.sum(1) / target.sum(1).clamp(min=1)).tolist()
    return out


def changed_fraction(base: Model, model: Model, tolerances: tuple[float, ...] = (1e-6, 1e-5, 1e-4)) -> dict[float, float]:
    """Share of parameter entries with |θ − θ_base| > tol, for each tolerance (tied weights counted once)."""

    ref = dict(base.named_parameters())
    moved = dict.fromkeys(tolerances, 0)
    total = 0
    with torch.no_grad():
        for name, p in model.named_parameters():
            diff = (p.detach().float() - ref[name].detach().float()).abs()
            total += diff.numel()
            for tol in tolerances:
                moved[tol] += int((diff > tol).sum())
    return {tol: moved[tol] / max(1, total) for tol in tolerances}
