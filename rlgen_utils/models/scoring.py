"""Answering an evaluation family: generate and verify, or pick the likeliest choice (cloze form).

**Generation** (every family can be scored so): greedy completions, read by the family's verifier.

**Log-likelihood of each choice** (multiple choice with ``scoring: loglik`` / ``loglik_norm``; Gu et al. 2024, OLMES;
lm-evaluation-harness): for the question's context c and each choice's text x_i, the model's
log p(x_i | c) = Σ_t log p(x_i,t | c, x_i,<t); ``acc`` picks the argmax of the sum, ``acc_norm`` of the sum divided
by the choice's length in characters. Small models that know an answer but cannot yet play the lettered format
are read fairly this way. Tokenisation follows lm-evaluation-harness: trailing spaces of the context move to the
continuation, the whole text is encoded once, and the continuation is its tokens after the context's tokens.
Batches are padded on the right (positions stay those of the unpadded text) and sorted by length.
:func:`choice_logliks` takes any ``forward(ids_BT, mask_BT) -> logits_BTV``, so an edited model (notebook 06) is
scored by the same code; the tests compare it with one unpadded sequence at a time.

Every answer records which scoring made its verdict (:class:`Answer`), so Study A's RL-right/base-wrong sets work
in either mode.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from ..world.local_data import LETTERS
from .generation import generate

if TYPE_CHECKING:
    from ..run.types import Model, Tokenizer
    from ..world.suite import EvalFamily
    from ..world.tasks import Example

Forward = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Generate = Callable[[list[str], int], list[str]]


@dataclass(frozen=True)
class Answer:
    """One sample's answer: the generated text (or the chosen choice's text), what was read from it, the verdict,
    and the scoring that made it; loglik families also carry both lm-evaluation-harness metrics."""
    completion: str
    parsed: str
    correct: bool
    scoring: str
    acc: bool | None = None
    acc_norm: bool | None = None


def split_request(tokenizer: Tokenizer, context: str, continuation: str) -> tuple[list[int], list[int]]:
    """(context ids, continuation ids) the lm-evaluation-harness way."""
    n_space = len(context) - len(context.rstrip(" "))
    if n_space:
        context, continuation = context[:-n_space], context[-n_space:] + continuation
    whole = tokenizer(context + continuation)["input_ids"]
    ctx = tokenizer(context)["input_ids"]
    return whole[: len(ctx)], whole[len(ctx):]


def model_forward(model: Model) -> Forward:
    """``forward`` of a plain HF causal LM."""
    def forward(ids_BT: torch.Tensor, mask_BT: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return model(input_ids=ids_BT, attention_mask=mask_BT).logits
    return forward


def choice_logliks(forward: Forward, tokenizer: Tokenizer, requests: Sequence[tuple[str, str]],
                   batch_size: int = 32, device: str | torch.device = "cpu") -> list[float]:
    """log p(continuation | context) for every (context, continuation), batched (right padding, longest first)."""
    pairs = [split_request(tokenizer, c, x) for c, x in requests]
    order = sorted(range(len(pairs)), key=lambda i: -len(pairs[i][0]) - len(pairs[i][1]))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    out = [0.0] * len(pairs)
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        seqs = [pairs[i][0] + pairs[i][1] for i in idx]
        T = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), T), pad, dtype=torch.long)
        mask = torch.zeros((len(seqs), T), dtype=torch.long)
        for r, s in enumerate(seqs):
            ids[r, : len(s)], mask[r, : len(s)] = torch.tensor(s), 1
        logp_BTV = torch.log_softmax(forward(ids.to(device), mask.to(device)).float(), dim=-1).cpu()
        for r, i in enumerate(idx):
            n_ctx, cont = len(pairs[i][0]), pairs[i][1]
            pos = torch.arange(n_ctx - 1, n_ctx - 1 + len(cont))
            out[i] = float(logp_BTV[r, pos, torch.tensor(cont)].sum())
    return out


def pick(logliks: Sequence[float], choices: Sequence[str], norm: bool) -> int:
    """Index of the chosen choice: argmax of the sum (``acc``) or of the sum per character (``acc_norm``)."""
    scores = [ll / max(1, len(c)) for ll, c in zip(logliks, choices)] if norm else list(logliks)
    return max(range(len(scores)), key=scores.__getitem__)


def cloze_answers(fam: EvalFamily, indices: Sequence[int], forward: Forward, tokenizer: Tokenizer,
                  batch_size: int, device: str | torch.device = "cpu") -> list[Answer]:
    """Answers of a loglik family's samples ``indices``; ``correct`` follows the family's scoring."""
    requests = [(fam.cloze[i][0], x) for i in indices for x in fam.cloze[i][1]]
    flat = choice_logliks(forward, tokenizer, requests, batch_size, device)
    out, at = [], 0
    for i in indices:
        ex, conts = fam.examples[i], fam.cloze[i][1]
        ll, at = flat[at:at + len(conts)], at + len(conts)
        raw, norm = pick(ll, ex.choices, False), pick(ll, ex.choices, True)
        chosen = norm if fam.scoring == "loglik_norm" else raw
        gold = LETTERS.index(ex.answer)
        out.append(Answer(ex.choices[chosen], LETTERS[chosen], chosen == gold, fam.scoring, raw == gold, norm == gold))
    return out


def answers(fam: EvalFamily, indices: Sequence[int], generate: Generate, forward: Forward, tokenizer: Tokenizer,
            max_new_tokens: int, batch_size: int, device: str | torch.device = "cpu") -> list[Answer]:
    """Answers of family ``fam`` on samples ``indices``, by the family's scoring. ``generate(prompts,
    max_new_tokens)`` and ``forward(ids, mask)`` are the (possibly edited) model."""
    if fam.scoring != "generate":
        return cloze_answers(fam, indices, forward, tokenizer, batch_size, device)
    examples: list[Example] = [fam.examples[i] for i in indices]
    comps = generate([e.prompt for e in examples], fam.max_new_tokens(tokenizer, max_new_tokens))
    return [Answer(c, fam.parse(c, e), fam.verify(c, e), "generate") for c, e in zip(comps, examples)]


def plain_answers(model: Model, tokenizer: Tokenizer, fam: EvalFamily, max_new_tokens: int, batch_size: int,
                  indices: Sequence[int] | None = None) -> list[Answer]:
    """:func:`answers` of an unedited model on every sample (or ``indices``)."""
    idx = list(range(len(fam.examples))) if indices is None else list(indices)
    gen: Generate = lambda prompts, n: generate(model, tokenizer, prompts, n, batch_size)
    return answers(fam, idx, gen, model_forward(model), tokenizer, max_new_tokens, batch_size, model.device)


def accuracy(model: Model, tokenizer: Tokenizer, fam: EvalFamily, max_new_tokens: int, batch_size: int) -> float:
    got = plain_answers(model, tokenizer, fam, max_new_tokens, batch_size)
    return sum(a.correct for a in got) / max(1, len(got))
