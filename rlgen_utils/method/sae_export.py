"""One model's slice of a crosscoder as a sae-lens SAE, so sae-lens's tools (and dashboards built on them) can
open rlgen's features.

The slice of model m reads model m's activation alone — the ``encode="own"`` reading of notebook 06,
``f = ReLU(W_enc[m] · (s_m h) + b_enc)`` — and decodes model m's reconstruction ``(W_dec[:, m] f + b_dec[m]) / s_m``.
The activation scale s_m (notebook 03's normalisation) is folded into the weights, so the exported SAE works on
the model's *raw* residual stream. BatchTopK's inference rule keeps f_k when f_k · Σ_m ‖W_dec[k, m]‖ exceeds the
learnt threshold θ, i.e. when f_k > θ / Σ_m ‖W_dec[k, m]‖: exactly a JumpReLU SAE with that per-latent threshold
(an L1 crosscoder exports with threshold 0, a plain ReLU). Files are sae-lens's own: ``cfg.json`` and
``sae_weights.safetensors``, written by sae-lens (``SAE.load_from_disk`` reads them back).

Legend: ``M`` models, ``D`` d_model, ``L`` latents.
"""
from __future__ import annotations

from pathlib import Path

import torch

from ..run.artifacts import atomic_dir
from .crosscoder import Crosscoder

# imported inside functions, for their import cost (rlgen_utils.run.imports): sae_lens


def slice_weights(cc: Crosscoder, m: int, scale: float) -> dict[str, torch.Tensor]:
    """``W_enc [D, L]``, ``b_enc [L]``, ``W_dec [L, D]``, ``b_dec [D]``, ``threshold [L]`` of model ``m``'s slice
    for raw (unnormalised) activations."""
    W = cc.W_dec_LMD.detach()
    theta = float(cc.threshold) if cc.cfg.sparsity == "batchtopk" and float(cc.threshold) >= 0 else 0.0
    norm_sum_L = cc.dec_norms_LM().detach().sum(-1).clamp_min(1e-12)
    return {"W_enc": (cc.W_enc_MDL.detach()[m] * scale).contiguous(), "b_enc": cc.b_enc_L.detach().clone(),
            "W_dec": (W[:, m] / scale).contiguous(), "b_dec": (cc.b_dec_MD.detach()[m] / scale).contiguous(),
            "threshold": theta / norm_sum_L}


def export_sae_lens(cc: Crosscoder, m: int, scale: float, folder: str | Path, hook_name: str = "",
                    model_name: str = "") -> Path:
    """Write model ``m``'s slice as a sae-lens JumpReLU SAE into ``folder`` (atomically) and return it."""
    from sae_lens import JumpReLUSAE, JumpReLUSAEConfig

    w = slice_weights(cc, m, scale)
    cfg = JumpReLUSAEConfig(d_in=cc.cfg.d_model, d_sae=cc.cfg.n_latents, apply_b_dec_to_input=False,
                            dtype="float32", device="cpu")
    cfg.metadata.hook_name = hook_name
    cfg.metadata.model_name = model_name
    sae = JumpReLUSAE(cfg)
    sae.load_state_dict(w)
    with atomic_dir(folder) as tmp:
        sae.save_model(tmp)
    return Path(folder)
