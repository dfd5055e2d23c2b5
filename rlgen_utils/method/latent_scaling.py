"""Latent scaling: is a latent really specific to one model, or an artifact of the sparsity penalty?

Decoder norms (NRN, MAS) say where a crosscoder *puts* a latent's reconstruction; Minder et al. (2025,
"Overcoming sparsity artifacts in crosscoders") showed that an L1 crosscoder can shrink a latent's decoder in one
model while that model's activations still contain the direction. Latent scaling asks the activations directly.
For latent k with activation f_k(n) on token n and direction d_k (its decoder vector in the tuned model t), fit
for every model m the scalar that best explains model m's activation by the latent alone:

    β[k, m] = argmin_β Σ_n ‖β f_k(n) d_k − y_m(n)‖² = Σ_n f_k(n) ⟨d_k, y_m(n)⟩ / (‖d_k‖² Σ_n f_k(n)²)

with two targets: **reconstruction**, y_m = x_m (the activation itself), and **error**, y_m = x_m − x̂_m +
f_k W_dec[k, m] (what every other latent leaves unexplained, plus latent k's own contribution to m). The ratio
ν[k] = β[k, base] / β[k, t] is ≈ 1 when the base carries the direction as strongly as the tuned model (a shared
latent, whatever its decoder norms say) and ≈ 0 when only the tuned model does. A latent is tuned-specific by
latent scaling when both ratios are below ``nu_max``.

The sums stream over batches (:func:`betas_LM`), so any number of tokens fits in memory.

Legend: ``B`` rows of a batch, ``M`` models, ``D`` d_model, ``L`` latents.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch

from .crosscoder import Crosscoder


@dataclass(frozen=True)
class LatentScaling:
    """β per latent and model for both targets, and how many tokens each latent fired on."""
    beta_recon_LM: torch.Tensor
    beta_error_LM: torch.Tensor
    n_fired_L: torch.Tensor

    def nu_L(self, base: int, tuned: int, target: str = "recon") -> torch.Tensor:
        """β[:, base] / β[:, tuned] (NaN where the latent never fired or β[:, tuned] is 0)."""
        b = self.beta_recon_LM if target == "recon" else self.beta_error_LM
        return torch.where(b[:, tuned] != 0, b[:, base] / b[:, tuned], torch.full_like(b[:, base], float("nan")))

    def specific_L(self, base: int, tuned: int, nu_max: float = 0.3) -> torch.Tensor:
        """Latents whose base/tuned ratio is below ``nu_max`` for both targets (NaN counts as not specific)."""
        r, e = self.nu_L(base, tuned, "recon"), self.nu_L(base, tuned, "error")
        return (r < nu_max) & (e < nu_max)


@torch.no_grad()
def betas_LM(cc: Crosscoder, batches: Iterable[torch.Tensor], tuned: int) -> LatentScaling:
    """Closed-form β of every latent in every model, directions taken from model ``tuned``'s decoder, summed
    over normalised ``x_BMD`` batches (the activations the crosscoder was trained on, or held-out ones)."""
    W_LMD = cc.W_dec_LMD.detach()
    d_LD = W_LMD[:, tuned]
    L, M, _ = W_LMD.shape
    num_r, num_e = torch.zeros(L, M, dtype=torch.float64), torch.zeros(L, M, dtype=torch.float64)
    f2_L, fired_L = torch.zeros(L, dtype=torch.float64), torch.zeros(L, dtype=torch.long)
    self_LM = torch.einsum("lmd,ld->lm", W_LMD, d_LD).double()  # ⟨d_k, W_dec[k, m]⟩
    for x_BMD in batches:
        f_BL = cc.encode(x_BMD, use_threshold=True)
        resid_BMD = x_BMD - cc.decode(f_BL)
        proj_x_BML = torch.einsum("bmd,ld->bml", x_BMD, d_LD)
        proj_e_BML = torch.einsum("bmd,ld->bml", resid_BMD, d_LD)
        num_r += torch.einsum("bl,bml->lm", f_BL, proj_x_BML).double()
        f2_batch_L = f_BL.pow(2).sum(0).double()
        num_e += torch.einsum("bl,bml->lm", f_BL, proj_e_BML).double() + f2_batch_L[:, None] * self_LM
        f2_L += f2_batch_L
        fired_L += (f_BL > 0).sum(0)
    den_L = f2_L * d_LD.pow(2).sum(-1).double()
    safe = den_L > 0
    beta = lambda num: torch.where(safe[:, None], num / den_L.clamp_min(1e-30)[:, None], torch.zeros_like(num))
    return LatentScaling(beta(num_r).float(), beta(num_e).float(), fired_L)
