"""Feature dynamics over training checkpoints (docs/METHOD.md §A3).

For each checkpoint c of a run, rank latents by how specific they are to c (NRN against the base, or MAS), keep
the top K, and compare these sets across checkpoints:

* **first-vs-last** — overlap of each checkpoint's top-K with the final checkpoint's: high early means the
  specialised latents "appear early and stabilise" (the paper's SFT);
* **neighbour overlap** — overlap of consecutive checkpoints: low means changes "keep evolving" (the paper's RL).

Overlap is the Jaccard index |A ∩ B| / |A ∪ B|. With one crosscoder over base + every checkpoint the latent
indices are shared and the sets compare directly; with separately trained (base vs checkpoint) crosscoders,
latents are first matched by the cosine of their tuned-model decoder vectors (:func:`match_latents`).

Legend: ``L`` latents, ``M`` models, ``C`` checkpoints, ``D`` d_model.
"""
from __future__ import annotations

import numpy as np
import torch

from .latents import mas_LM, nrn_L


def specificity_CL(dec_norms_LM: torch.Tensor, base: int, checkpoints: list[int], key: str = "nrn") -> torch.Tensor:
    """Per checkpoint column, each latent's specificity to it: NRN against the base, or its MAS share."""
    if key == "nrn":
        return torch.stack([nrn_L(dec_norms_LM, base, c) for c in checkpoints])
    if key == "mas":
        return mas_LM(dec_norms_LM)[:, checkpoints].T
    raise ValueError(f"unknown ranking key {key!r} (nrn or mas)")


def top_k_sets(spec_CL: torch.Tensor, k: int, alive_L: torch.Tensor | None = None) -> list[set[int]]:
    """The ``k`` most specific (alive) latents of every checkpoint."""
    if alive_L is not None:
        spec_CL = spec_CL.masked_fill(~alive_L[None, :], float("-inf"))
    k = min(k, spec_CL.shape[1] if alive_L is None else int(alive_L.sum()))
    return [set(row.topk(k).indices.tolist()) for row in spec_CL]


def jaccard(a: set, b: set) -> float:
    return len(a & b) / len(a | b) if a | b else 1.0


def overlap_matrix(sets: list[set]) -> np.ndarray:
    """``[C, C]`` Jaccard overlaps of every pair of checkpoints' top-K sets."""
    return np.array([[jaccard(a, b) for b in sets] for a in sets])


def first_vs_last(sets: list[set]) -> list[float]:
    """Overlap of each checkpoint's set with the final checkpoint's."""
    return [jaccard(s, sets[-1]) for s in sets]


def neighbour_overlap(sets: list[set]) -> list[float]:
    """Overlap of consecutive checkpoints' sets (C − 1 values)."""
    return [jaccard(a, b) for a, b in zip(sets, sets[1:])]


def tuned_only_counts(spec_CL: torch.Tensor, threshold: float, alive_L: torch.Tensor | None = None) -> list[int]:
    keep = torch.ones(spec_CL.shape[1], dtype=torch.bool) if alive_L is None else alive_L
    return [int(((row > threshold) & keep).sum()) for row in spec_CL]


def match_latents(W_a_LD: torch.Tensor, W_b_LD: torch.Tensor, threshold: float) -> dict[int, int]:
    """Latent index in crosscoder a → its best match in crosscoder b, by cosine of decoder vectors, for
    matches above ``threshold`` (greedy one-to-one, best pairs first)."""
    a = torch.nn.functional.normalize(W_a_LD, dim=-1)
    b = torch.nn.functional.normalize(W_b_LD, dim=-1)
    cos = a @ b.T
    order = cos.flatten().argsort(descending=True)
    out, used_b = {}, set()
    for flat in order.tolist():
        i, j = divmod(flat, cos.shape[1])
        if cos[i, j] < threshold:
            break
        if i not in out and j not in used_b:
            out[i] = j
            used_b.add(j)
    return out


def map_into(top: set[int], a_to_b: dict[int, int], source: str) -> set[int | tuple[str, int]]:
    """A top-K set of crosscoder ``source`` in the target crosscoder's indices: matched latents become the
    target's index; an unmatched latent becomes ``(source, index)``, a latent no other crosscoder has. (Mapping
    unmatched latents to a number such as ``-1 - index`` made the same index in two crosscoders count as one
    shared latent.)"""
    return {a_to_b[i] if i in a_to_b else (source, i) for i in top}


def matched_jaccard(a: set[int], b: set[int], a_to_b: dict[int, int]) -> float:
    """Jaccard of two top-K sets from different crosscoders, after mapping a's latents into b's indices
    (an unmatched latent of a counts as a latent b does not have)."""
    mapped = {a_to_b.get(i, ("unmatched", i)) for i in a}
    return jaccard(mapped, set(b))
