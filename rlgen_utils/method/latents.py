"""Which model owns a crosscoder latent: NRN, MAS and decoder cosines (docs/METHOD.md §A2).

Legend: ``L`` latents, ``M`` models.

* **NRN** (two models, O = base, T = tuned): NRN_k = ‖W_dec[k, T]‖ / (‖W_dec[k, O]‖ + ‖W_dec[k, T]‖):
  ≈ 0 base-only, ≈ 0.5 shared, ≈ 1 tuned-only.
* **MAS** (M models): MAS[k, m] = ‖W_dec[k, m]‖ / Σ_m' ‖W_dec[k, m']‖; the model with the largest share owns the
  latent if that share exceeds ``specific_above``, else the latent is shared.
"""
from __future__ import annotations

import pandas as pd
import torch


def nrn_L(dec_norms_LM: torch.Tensor, base: int = 0, tuned: int = 1) -> torch.Tensor:
    o, t = dec_norms_LM[:, base], dec_norms_LM[:, tuned]
    return t / (o + t).clamp_min(1e-12)


def mas_LM(dec_norms_LM: torch.Tensor) -> torch.Tensor:
    return dec_norms_LM / dec_norms_LM.sum(-1, keepdim=True).clamp_min(1e-12)


def owner_L(dec_norms_LM: torch.Tensor, specific_above: float) -> torch.Tensor:
    """Index of the owning model per latent, or -1 for a shared latent (no model's MAS above the threshold)."""
    mas = mas_LM(dec_norms_LM)
    share, idx = mas.max(-1)
    return torch.where(share > specific_above, idx, torch.full_like(idx, -1))


def nrn_class_L(nrn: torch.Tensor, low: float = 0.3, high: float = 0.7) -> list[str]:
    """``base-only`` below ``low``, ``tuned-only`` above ``high``, else ``shared``."""
    return ["base-only" if v < low else "tuned-only" if v > high else "shared" for v in nrn.tolist()]


def decoder_cosine_L(W_dec_LMD: torch.Tensor, a: int, b: int) -> torch.Tensor:
    """Cosine between a latent's decoder vectors in models ``a`` and ``b``."""
    return torch.nn.functional.cosine_similarity(W_dec_LMD[:, a], W_dec_LMD[:, b], dim=-1)


def alive_L(dec_norms_LM: torch.Tensor, tokens_since_fired_L: torch.Tensor, dead_after: int) -> torch.Tensor:
    return (tokens_since_fired_L <= dead_after) & (dec_norms_LM.sum(-1) > 0)


def ownership_counts(dec_norms_LM: torch.Tensor, names: list[str], specific_above: float, alive: torch.Tensor | None = None):
    """How many (alive) latents each model owns, and how many are shared, under ``specific_above``."""
    own = owner_L(dec_norms_LM, specific_above)
    if alive is not None:
        own = own[alive]
    rows = [{"owner": n, "latents": int((own == i).sum())} for i, n in enumerate(names)]
    rows.append({"owner": "shared", "latents": int((own == -1).sum())})
    return pd.DataFrame(rows)


def nrn_counts(nrn: torch.Tensor, low: float, high: float):
    classes = nrn_class_L(nrn, low, high)
    return pd.Series(classes).value_counts().reindex(["base-only", "shared", "tuned-only"], fill_value=0)
