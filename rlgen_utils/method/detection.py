"""Detection power of model-specific latents: how rare can a tuned-only feature be and still be found?

"No SFT-specific latents" means little until it says *above which frequency*. The test plants what the question
is about into real activations: take one model's residual stream twice (an identical pair, so nothing is
model-specific), add to the second copy only a set of random unit directions ``u_f``, each on a random fraction
``rate_f`` of tokens with a coefficient ``c · U(0.5, 1.5)``, train the pair crosscoder exactly as the study does,
and ask for each planted feature whether some latent

* points along it in the tuned slot (decoder cosine ≥ ``cos_min``, default 0.9), and
* is called tuned-only by the notebook's own rule (NRN > ``nrn_high``).

Recall per planting rate, over features and crosscoder seeds, is the detection limit that notebook 03's counts are
read against. Legend: ``B`` tokens, ``M`` models, ``D`` d_model, ``F`` planted features, ``L`` latents.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch

from . import latents


@dataclass(frozen=True)
class Planting:
    """Planted tuned-only features: unit directions ``dirs_FD``, firing rates ``rate_F``, coefficient scale."""
    dirs_FD: torch.Tensor
    rate_F: torch.Tensor
    coef: float

    @classmethod
    def random(cls, rates: list[float], per_rate: int, d_model: int, coef: float, seed: int) -> Planting:
        g = torch.Generator().manual_seed(seed)
        dirs = torch.nn.functional.normalize(torch.randn(len(rates) * per_rate, d_model, generator=g), dim=-1)
        rate = torch.tensor([r for r in rates for _ in range(per_rate)], dtype=torch.float64)
        return cls(dirs, rate, coef)


def plant_BMD(x_BD: torch.Tensor, planting: Planting, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x_BMD, on_BF)``: the base tokens as an identical pair (slot 0 base, slot 1 tuned) with the planted
    features added to slot 1 only on the tokens where ``on_BF`` is set."""
    B, F = x_BD.shape[0], planting.rate_F.shape[0]
    on_BF = torch.rand(B, F, generator=g) < planting.rate_F
    coef_BF = on_BF * planting.coef * (0.5 + torch.rand(B, F, generator=g))
    tuned_BD = x_BD + coef_BF @ planting.dirs_FD
    return torch.stack([x_BD, tuned_BD], 1), on_BF


def planted_batches(base_batches: Iterator[torch.Tensor], planting: Planting, seed: int) -> Iterator[torch.Tensor]:
    """Endless ``x_BMD`` pairs made from an iterator of ``x_BD`` (or ``x_B1D``) base batches."""
    g = torch.Generator().manual_seed(seed)
    for x in base_batches:
        yield plant_BMD(x.reshape(x.shape[0], -1), planting, g)[0]


def recovered_F(W_dec_LMD: torch.Tensor, alive_L: torch.Tensor, planting: Planting, cos_min: float = 0.9,
                nrn_high: float = 0.7) -> torch.Tensor:
    """``[F]`` bool: some alive latent's tuned-slot decoder has cosine ≥ ``cos_min`` with the planted direction
    and NRN (tuned vs base) above ``nrn_high``."""
    W = W_dec_LMD.detach()
    cos_FL = planting.dirs_FD @ torch.nn.functional.normalize(W[:, 1], dim=-1).T
    tuned_only_L = (latents.nrn_L(W.norm(dim=-1), base=0, tuned=1) > nrn_high) & alive_L
    return ((cos_FL >= cos_min) & tuned_only_L[None]).any(-1)


def recall_by_rate(found_F: torch.Tensor, planting: Planting) -> dict[float, tuple[int, int]]:
    """``{rate: (found, planted)}``."""
    return {float(r): (int(found_F[planting.rate_F == r].sum()), int((planting.rate_F == r).sum()))
            for r in planting.rate_F.unique().tolist()}
