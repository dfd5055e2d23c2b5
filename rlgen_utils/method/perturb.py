"""Norm-matched random updates: the "moved as far, but in no particular direction" nulls.

An exact copy of the base answers "what does the method report when nothing changed?". It does not answer "what
does it report when the weights moved as much as post-training moved them, but at random?" — a crosscoder may call
latents model-specific merely because the second model is *different*. So for a tuned model θ_T and its base θ_B
the null model is θ_B + ε with, per tensor, ε ~ N(0, I) rescaled to ‖ε‖ = ‖θ_T − θ_B‖ (a tensor post-training did
not touch stays exactly as it was).

**A trajectory** of checkpoints θ_1 … θ_N has a geometry of its own: how far each checkpoint is from the base
(r_k = ‖Δ_k‖, Δ_k = θ_k − θ_B) and how far it moved since the previous one (‖Δ_k − Δ_{k−1}‖). A checkpoint-by-
checkpoint overlap of features (notebook 04) may follow from that geometry alone — a run that barely moves after
its first checkpoint "stabilises" whatever it learnt. The **random walk** null keeps it and randomises the rest:
per tensor, P_1 = r_1 · u_1 and

    P_k = a_k · P_{k−1} + b_k · u_k,   a_k = ⟨Δ_k, Δ_{k−1}⟩ / r_{k−1}²,   b_k² = r_k² − a_k² r_{k−1}²,

with u_k a random unit vector orthogonal to P_{k−1}. Then ‖P_k‖ = r_k and ⟨P_k, P_{k−1}⟩ = ⟨Δ_k, Δ_{k−1}⟩
(so ‖P_k − P_{k−1}‖ = ‖Δ_k − Δ_{k−1}‖) exactly, while the directions are random. The first step of a walk is the
single-model null above.

**The fixed-direction** null keeps the same distances and removes every change of direction: per tensor,

    L_k = (r_k / r_N) · Δ_N,

the base moved straight towards the final checkpoint θ_N, as far as checkpoint k is from the base (L_N = Δ_N: its
last slot is the final model itself). A run that knew its destination from its first step would look like this;
an overlap between checkpoints that the line shows too follows from how fast the distance grew, not from features
that appeared and then stayed. Beside the random walk (no direction kept) it brackets the real trajectory.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator

import torch

State = dict[str, torch.Tensor]


def _check(base: State, tuned: State) -> None:
    if base.keys() != tuned.keys():
        raise ValueError(f"tensors differ: {sorted(set(base) ^ set(tuned))[:5]}")
    for name in base:
        if base[name].shape != tuned[name].shape:
            raise ValueError(f"{name}: shapes {tuple(base[name].shape)} and {tuple(tuned[name].shape)}")


def _step(delta: torch.Tensor, prev_delta: torch.Tensor | None, prev_walk: torch.Tensor | None,
          g: torch.Generator) -> torch.Tensor:
    """One tensor's walk position P_k (float64) from the real Δ_k, Δ_{k−1} and the walk's P_{k−1}."""
    noise = torch.randn(delta.shape, generator=g, dtype=torch.float64)
    r2 = delta.pow(2).sum()
    if r2 == 0:
        return torch.zeros_like(delta)
    a = torch.zeros((), dtype=torch.float64)
    if prev_walk is not None and prev_delta is not None and (p2 := prev_walk.pow(2).sum()) > 0:
        a = (delta * prev_delta).sum() / p2
        noise = noise - (noise * prev_walk).sum() / p2 * prev_walk       # orthogonal to P_{k−1}
        b = (r2 - a * a * p2).clamp_min(0).sqrt()
        return a * prev_walk + b * noise / noise.norm().clamp_min(1e-30)
    return noise * r2.sqrt() / noise.norm().clamp_min(1e-30)


def norm_matched_walk(base: State, checkpoints: Iterable[State], seed: int) -> Iterator[State]:
    """The random walk null of a trajectory (module docstring): for each checkpoint in order, ``base`` plus P_k
    (same keys, shapes and dtypes). A generator, so only one checkpoint's tensors are held at a time."""
    g = torch.Generator().manual_seed(seed)
    prev_delta: State = {}
    prev_walk: State = {}
    for tuned in checkpoints:
        _check(base, tuned)
        out = {}
        for name in sorted(base):
            b = base[name]
            delta = tuned[name].double() - b.double()
            walk = _step(delta, prev_delta.get(name), prev_walk.get(name), g)
            prev_delta[name], prev_walk[name] = delta, walk
            out[name] = (b.double() + walk).to(b.dtype) if delta.any() else b.clone()
        yield out


def norm_matched_noise(base: State, tuned: State, seed: int) -> State:
    """``base`` plus, per tensor, Gaussian noise with the norm of ``tuned − base`` (same keys, shapes, dtypes)."""
    return next(norm_matched_walk(base, [tuned], seed))


def fixed_direction_path(base: State, checkpoints: Iterable[State], final: State) -> Iterator[State]:
    """The fixed-direction null of a trajectory (module docstring): for each checkpoint in order, ``base`` plus,
    per tensor, (‖Δ_k‖ / ‖Δ_N‖) · Δ_N with Δ_N = ``final`` − ``base`` (same keys, shapes and dtypes; a tensor the
    final checkpoint did not move stays as it was). A generator: one checkpoint's tensors at a time."""
    _check(base, final)
    for tuned in checkpoints:
        _check(base, tuned)
        out = {}
        for name in sorted(base):
            b = base[name].double()
            d_final, r_k = final[name].double() - b, (tuned[name].double() - b).norm()
            r_n = d_final.norm()
            out[name] = (b + d_final * (r_k / r_n)).to(base[name].dtype) if r_n > 0 else base[name].clone()
        yield out
