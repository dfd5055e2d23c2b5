"""A norm-matched random update: the "moved as far, but in no particular direction" null.

An exact copy of the base answers "what does the method report when nothing changed?". It does not answer "what
does it report when the weights moved as much as post-training moved them, but at random?" — a crosscoder may call
latents model-specific merely because the second model is *different*. So for a tuned model θ_T and its base θ_B
the null model is θ_B + ε with, per tensor, ε ~ N(0, I) rescaled to ‖ε‖ = ‖θ_T − θ_B‖ (a tensor post-training did
not touch stays exactly as it was).
"""
from __future__ import annotations

import torch


def norm_matched_noise(base: dict[str, torch.Tensor], tuned: dict[str, torch.Tensor],
                       seed: int) -> dict[str, torch.Tensor]:
    """``base`` plus, per tensor, Gaussian noise with the norm of ``tuned − base`` (same keys, shapes, dtypes)."""
    if base.keys() != tuned.keys():
        raise ValueError(f"tensors differ: {sorted(set(base) ^ set(tuned))[:5]}")
    g, out = torch.Generator().manual_seed(seed), {}
    for name in sorted(base):
        b, t = base[name], tuned[name]
        if b.shape != t.shape:
            raise ValueError(f"{name}: shapes {tuple(b.shape)} and {tuple(t.shape)}")
        norm = (t.double() - b.double()).norm()
        noise = torch.randn(b.shape, generator=g, dtype=torch.float64)
        out[name] = (b.double() + noise * norm / noise.norm().clamp_min(1e-30)).to(b.dtype) if norm > 0 else b.clone()
    return out
