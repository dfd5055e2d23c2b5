"""The activation difference lens: what a fine-tune changed, read from mean activation differences on unrelated text.

After Minder et al. 2025 ("Narrow finetuning leaves clearly readable traces in activation differences"), whose
diffing-toolkit reads the difference this way; this is rlgen's own implementation. On texts that have nothing to do
with the fine-tune, the residual stream of the tuned model minus the base's, averaged over texts at each of the
first K token positions, carries a readable trace of a narrow fine-tune's objective:

    acts_NKD = first_positions(lm, tok, texts, layers_path, layer, K)     # per model, the same texts
    diff_KD = mean_difference_KD(acts_base_NKD, acts_tuned_NKD)
    logits_KV = logit_lens_KV(model, diff_KD)        # the difference read as a residual: final norm, unembedding
    steer(lm_base, tok, prompts, alpha * diff_KD.mean(0), layers_path, layer)   # the difference as a steering vector

Positions count from the first token after BOS (a tokenizer that adds one): BOS's residual is the same for
every text and carries nothing the text chose. Legend: ``N`` texts, ``K`` positions read, ``D`` d_model, ``V``
vocabulary, ``B`` batch, ``T`` positions.
"""
from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

import torch

from .activations import submodule

if TYPE_CHECKING:
    from ..run.types import LM, Model, Tokenizer


def _skip_bos(tokenizer: Tokenizer) -> int:
    ids = tokenizer("a")["input_ids"]
    return int(bool(ids) and ids[0] == tokenizer.bos_token_id)


def first_positions(lm: LM, tokenizer: Tokenizer, texts: list[str], layers_path: str, layer: int, k: int,
                    batch_size: int = 64) -> torch.Tensor:
    """``acts_NKD``: the residual stream after decoder layer ``layer`` at the first ``k`` token positions of each
    text (after BOS). Texts shorter than that are dropped, so every row reads the same positions: pass the same
    texts to both models and the rows pair."""
    start = _skip_bos(tokenizer)
    kept = [t for t in texts if len(tokenizer(t)["input_ids"]) >= start + k]
    out = []
    tokenizer.padding_side = "right"
    for i in range(0, len(kept), batch_size):
        enc = tokenizer(kept[i:i + batch_size], return_tensors="pt", padding=True).to(lm.device)
        with torch.no_grad(), lm.trace({"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}) as tr:
            h = submodule(lm, layers_path)[layer].output
            saved = (h[0] if isinstance(h, tuple) else h).save()
            tr.stop()
        out.append(saved.detach()[:, start:start + k].float().cpu())
    if not out:
        raise ValueError(f"no text has {k} tokens after BOS: give longer texts or a smaller k")
    return torch.cat(out)


def mean_difference_KD(acts_base_NKD: torch.Tensor, acts_tuned_NKD: torch.Tensor) -> torch.Tensor:
    """Mean over texts of tuned − base, per position."""
    if acts_base_NKD.shape != acts_tuned_NKD.shape:
        raise ValueError(f"the two models must read the same texts: {tuple(acts_base_NKD.shape)} vs "
                         f"{tuple(acts_tuned_NKD.shape)}")
    return (acts_tuned_NKD - acts_base_NKD).mean(0)


def relative_norm_K(diff_KD: torch.Tensor, acts_base_NKD: torch.Tensor) -> torch.Tensor:
    """‖mean difference‖ / mean ‖base activation‖ per position: how large the trace is against the stream."""
    return diff_KD.norm(dim=-1) / acts_base_NKD.norm(dim=-1).mean(0)


def logit_lens_KV(model: Model, diff_KD: torch.Tensor) -> torch.Tensor:
    """The difference read as if it were a residual stream: through the model's final norm and unembedding."""
    decoder: Any = model.get_decoder()
    norm, head = decoder.norm, model.get_output_embeddings()
    if head is None:
        raise ValueError("the model has no output embedding to read the lens through")
    p = next(head.parameters())
    with torch.no_grad():
        return head(norm(diff_KD.to(p.device, p.dtype))).float().cpu()


def top_tokens(logits_V: torch.Tensor, tokenizer: Tokenizer, n: int = 10) -> list[tuple[str, float]]:
    """The ``n`` tokens the lens promotes most, with their logits."""
    vals, idx = logits_V.topk(min(n, logits_V.numel()))
    return [(tokenizer.decode([int(i)]), float(v)) for v, i in zip(vals, idx)]


def steer(lm: LM, tokenizer: Tokenizer, prompts: list[str], vector_D: torch.Tensor, layers_path: str, layer: int,
          max_new_tokens: int = 32, batch_size: int = 64) -> list[str]:
    """Greedy completions with ``vector_D`` added to the residual stream after ``layer`` at every position, prompt
    and generated tokens alike (through nnsight)."""
    tokenizer.padding_side = "left"
    out: list[str] = []
    kw = {"max_new_tokens": max_new_tokens, "do_sample": False, "pad_token_id": tokenizer.pad_token_id,
          "eos_token_id": tokenizer.eos_token_id}
    for i in range(0, len(prompts), batch_size):
        enc = tokenizer(prompts[i:i + batch_size], return_tensors="pt", padding=True).to(lm.device)
        with warnings.catch_warnings():  # a batch that stops early leaves the bounded loop's last steps unreached
            warnings.filterwarnings("ignore", message=".*was never reached.*")
            with lm.generate(**kw) as tracer:
                with tracer.invoke({"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}):
                    for _ in tracer.iter[:max_new_tokens]:
                        block = submodule(lm, layers_path)[layer]
                        block.output = block.output + vector_D.to(block.output.device, block.output.dtype)
                with tracer.invoke():
                    ids = tracer.result.save()
        out += tokenizer.batch_decode(ids[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
    return out
