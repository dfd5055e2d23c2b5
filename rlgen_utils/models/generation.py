"""Batched generation and exact verification.

``generate`` pads a batch on the left, decodes with the KV cache (greedy or sampled), and returns only the new
text. ``accuracy`` / ``pass_at_k`` score completions with each family's exact verifier. The unbiased pass@k
estimator (Chen et al. 2021) is used when more than k samples are drawn.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

from ..run.progress import progress
from ..world import tasks

if TYPE_CHECKING:
    from collections.abc import Callable

    from ..run.types import Model, Tokenizer

# imported inside functions, for their import cost (rlgen_utils.run.imports): torch


def generate(model: Model, tokenizer: Tokenizer, prompts: list[str], max_new_tokens: int,
             batch_size: int = 128,
             do_sample: bool = False, temperature: float = 1.0, num_return_sequences: int = 1,
             seed: int = 0, show_progress: bool = False) -> list[str]:
    """Completions for ``prompts`` (``num_return_sequences`` consecutive entries per prompt)."""
    import torch

    tokenizer.padding_side = "left"
    out: list[str] = []
    gen = torch.Generator().manual_seed(seed)
    batches = range(0, len(prompts), batch_size)
    for i in progress(batches, desc="generate", disable=not show_progress):
        enc = tokenizer(prompts[i:i + batch_size], return_tensors="pt", padding=True).to(model.device)
        if do_sample:  # a per-batch seed keeps results independent of how many batches ran before
            torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=gen)))
        with torch.no_grad():
            ids = model.generate(  # pyright: ignore[reportCallIssue]  (causal LMs mix in GenerationMixin)
                **enc, max_new_tokens=max_new_tokens, do_sample=do_sample,
                temperature=temperature if do_sample else None, top_k=0 if do_sample else None,
                top_p=1.0 if do_sample else None, num_return_sequences=num_return_sequences,
                pad_token_id=tokenizer.pad_token_id, eos_token_id=stop_ids(model, tokenizer))
        out += tokenizer.batch_decode(ids[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
    return out


def stop_ids(model: Model, tokenizer: Tokenizer) -> list[int]:
    """Token ids that end a completion: the tokenizer's EOS (a chat template's end of turn, e.g. ``<|im_end|>``)
    and any the model's generation config adds (Qwen-style configs list both end-of-text and end-of-turn)."""
    ids = [tokenizer.eos_token_id]
    extra = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids += extra if isinstance(extra, list) else [extra]
    return list(dict.fromkeys(i for i in ids if i is not None))


def exact(completion: str, ex: tasks.Example) -> bool:
    """The task world's verifier (the default)."""
    return tasks.is_correct(completion, ex.answer)


def correctness(completions: list[str], examples: list[tasks.Example],
                verify: Callable[[str, tasks.Example], bool] = exact) -> list[bool]:
    return [verify(c, e) for c, e in zip(completions, examples)]


def accuracy(model: Model, tokenizer: Tokenizer, examples: list[tasks.Example], max_new_tokens: int,
             batch_size: int = 128,
             verify: Callable[[str, tasks.Example], bool] = exact) -> float:
    comps = generate(model, tokenizer, [e.prompt for e in examples], max_new_tokens, batch_size)
    return sum(correctness(comps, examples, verify)) / max(1, len(examples))


def pass_at_k_estimate(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from ``c`` correct among ``n`` samples."""
    if n - c < k:
        return 1.0
    return 1.0 - math.prod((n - c - i) / (n - i) for i in range(k))


def sampled_scores(model: Model, tokenizer: Tokenizer, examples: list[tasks.Example], k: int,
                   max_new_tokens: int,
                   batch_size: int = 128, temperature: float = 1.0, seed: int = 0,
                   verify: Callable[[str, tasks.Example], bool] = exact) -> dict[str, float]:
    """``pass@k`` and the mean per-sample accuracy of ``k`` samples per prompt."""
    comps = generate(model, tokenizer, [e.prompt for e in examples], max_new_tokens, max(1, batch_size // k),
                     do_sample=True, temperature=temperature, num_return_sequences=k, seed=seed)
    ok = correctness(comps, [e for e in examples for _ in range(k)], verify)
    per_prompt = [sum(ok[i * k:(i + 1) * k]) for i in range(len(examples))]
    return {f"pass@{k}": sum(pass_at_k_estimate(k, c, k) for c in per_prompt) / max(1, len(examples)),
            "sampled_mean": sum(ok) / max(1, len(ok))}
