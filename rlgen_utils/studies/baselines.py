"""The instruments' own checks beside notebook 03: how much the pair crosscoder can see (recall of planted
tuned-only features), the paper's L1 crosscoder against BatchTopK on the same pairs, and the standard per-model
baseline (a sae-lens SAE trained on the base, read on every model). Each is run by a script in ``benchmarks/``
that writes a page under ``docs/``.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch

from ..method import detection, latents
from ..method.activations import ActivationStore
from ..method.crosscoder import Crosscoder
from ..method.crosscoder import train as train_crosscoder
from ..method.latent_scaling import betas_LM
from ..run.artifacts import atomic_dir, is_done, mark_done
from ..run.config import Params
from ..run.keys import columns_key, sae_baseline_key
from ..run.modelid import BASE, ModelId, ids
from ..run.session import seed_everything
from .crosscoder import PairKey, crosscoder_config, crosscoder_dir, ensure_activations, ensure_crosscoder, quality
from .crosscoder import trio as study_trio

# imported inside functions, for their import cost (rlgen_utils.run.imports): sae_lens


def detection_power(P: Params, rates: tuple[float, ...] = (0.001, 0.003, 0.01, 0.03), per_rate: int = 8,
                    seeds: tuple[int, ...] = (0, 1), coef_rel: float = 0.25) -> pd.DataFrame:
    """Recall of planted tuned-only features by a base–tuned pair crosscoder trained as notebook 03 trains its pairs
    (``pair_steps``, ``n_latents``, ``k``, resampling), per planting rate (:mod:`rlgen_utils.method.detection`).
    The pair is the base's own activations twice, features planted into the second copy with coefficient
    ``coef_rel · √d_model · U(0.5, 1.5)`` (activations are scaled to mean squared norm d_model). Not cached."""
    c = P.crosscoder
    store = ActivationStore(ensure_activations(P, study_trio(P)))
    rows = []
    for seed in seeds:
        planting = detection.Planting.random(list(rates), per_rate, store.d_model, coef_rel * store.d_model ** 0.5,
                                             seed=1000 + seed)
        cfg = crosscoder_config(P, 2, store.d_model, seed=seed)
        seed_everything(seed)
        cc = Crosscoder(cfg)
        base = store.batches(c.batch_size, seed=seed, columns=[0], split="train")
        train_crosscoder(cc, detection.planted_batches(base, planting, seed), c.pair_steps, lr=c.lr,
                         resample_every=c.resample_every)
        found = detection.recovered_F(cc.W_dec_LMD, cc.alive_L(), planting, nrn_high=c.nrn_high)
        rows += [{"seed": seed, "rate": r, "found": f, "planted": n}
                 for r, (f, n) in detection.recall_by_rate(found, planting).items()]
    df = pd.DataFrame(rows).groupby("rate")[["found", "planted"]].sum().reset_index()
    return df.assign(recall=df.found / df.planted)


def l1_params(P: Params, l1_coeff: float) -> Params:
    """``P`` with the paper's L1 crosscoder at penalty ``l1_coeff`` (same width, steps and corpus)."""
    return P.model_copy(update={"crosscoder": P.crosscoder.model_copy(update={"sparsity": "l1", "l1_coeff": l1_coeff})})


def sparsity_comparison(P: Params, l1_coeffs: tuple[float, ...], trio: tuple[str, ...] | None = None,
                        nu_max: float = 0.3) -> pd.DataFrame:
    """The paper's L1 crosscoder beside BatchTopK on the same pairs: for each sparsity (BatchTopK at
    ``crosscoder.k``, L1 at every ``l1_coeffs``) and pair (base–SFT, base–RL, base–base copy), held-out FVU of the
    tuned slot, mean L0 and the tuned-only / base-only counts. Where L1 yields tuned-only latents that BatchTopK at
    a matched L0 and FVU does not — and that the identical copy also shows — they are the sparsity artifacts of
    Minder et al. 2025; latent scaling tells (the last column: tuned-only latents whose decoder direction explains
    the base's activations and reconstruction error less than ``nu_max`` times as much as the tuned model's).
    Pair crosscoders are keyed and cached like notebook 03's."""
    C = P.crosscoder
    trio = ids(trio) if trio else study_trio(P)   # the given names as ids, or the study's three
    rows = []
    batchtopk = P.model_copy(update={"crosscoder": C.model_copy(update={"sparsity": "batchtopk"})})
    for label, Q in [(f"batchtopk k={C.k}", batchtopk), *[(f"l1 λ={c:g}", l1_params(P, c)) for c in l1_coeffs]]:
        # notebook 03's own pairs when the setting is the params' own; else folders of their own
        tag = "" if Q.crosscoder == C else f"sparsity-{Q.crosscoder.sparsity}-{Q.crosscoder.l1_coeff:g}"
        for pair in ((BASE, trio[1]), (BASE, trio[2]), (BASE, BASE)):
            copy = pair == (BASE, BASE)
            cc = ensure_crosscoder(Q, pair, steps=C.pair_steps, source=trio,
                                   tag="-".join(t for t in (tag, "null-copy" if copy else "") if t))
            q = quality(Q, cc, pair, source=trio)
            nrn = latents.nrn_L(cc.dec_norms_LM().detach())
            counts = latents.nrn_counts(nrn[cc.alive_L()], C.nrn_low, C.nrn_high)
            tuned_only = cc.alive_L() & (nrn > C.nrn_high)
            rows.append({"sparsity": label, "pair": str(PairKey(BASE, "copy") if copy else PairKey(pair[1])),
                         "held-out FVU (tuned slot)": float(q["held-out FVU"].iloc[1]),
                         "mean L0": float(q["mean L0"].iloc[0]), "alive": int(cc.alive_L().sum()),
                         "tuned-only": int(counts["tuned-only"]), "base-only": int(counts["base-only"]),
                         f"tuned-only confirmed by latent scaling (ν < {nu_max})":
                             int((tuned_only & pair_scaling(Q, cc, pair, trio).specific_L(0, 1, nu_max)).sum())})
    return pd.DataFrame(rows)


def pair_scaling(P: Params, cc: Crosscoder, pair: tuple[ModelId, ModelId], source: tuple[ModelId, ...], n_batches: int = 16):
    """Latent scaling (:mod:`rlgen_utils.method.latent_scaling`) of a pair crosscoder, the tuned slot's decoder
    directions fitted on ``n_batches`` batches of held-out tokens of the pair's columns in ``source``."""
    it = ActivationStore(ensure_activations(P, source)).batches(
        P.crosscoder.batch_size, seed=P.seed + 777, columns=[source.index(n) for n in pair], split="heldout")
    return betas_LM(cc, [next(it) for _ in range(n_batches)], tuned=1)


def matched_l1(table: pd.DataFrame, by: str = "mean L0") -> str:
    """The L1 setting whose ``by`` (``"mean L0"`` or ``"held-out FVU (tuned slot)"``) over the real pairs is
    closest to BatchTopK's (ties: the lower FVU)."""
    fvu = "held-out FVU (tuned slot)"
    real = table[~table.pair.str.contains("null")]
    g = real.groupby("sparsity")[list(dict.fromkeys(["mean L0", fvu, by]))].mean()
    ref = g.loc[[s for s in g.index if s.startswith("batchtopk")][0], by]
    l1 = g[g.index.str.startswith("l1")]
    return str(l1.assign(gap=(l1[by] - ref).abs()).sort_values(["gap", fvu]).index[0])


SAE_BASELINE = "sae-lens"
"""Folder tag of the base's sae-lens SAE (``crosscoders/base-sae-lens/``)."""


def ensure_sae_baseline(P: Params, trio: tuple[str, ...] | None = None) -> Path:
    """The standard per-model baseline beside the crosscoder: a sae-lens BatchTopK SAE trained with sae-lens's own
    trainer on the base's activations of the corpus's training texts (``crosscoder.n_latents`` wide, ``k``,
    ``steps``, ``lr``, batch size as the crosscoder's), saved as a sae-lens inference model (JumpReLU with the
    learnt threshold) that ``sae_lens.SAE.load_from_disk`` opens. Keyed by the crosscoder section and the base's
    column of the activations (the models collected beside it do not change it: ``keys.columns_key``)."""
    # imported here: sae_lens costs ~4 s at import (measured after torch), and only this baseline needs it
    from sae_lens import BatchTopKTrainingSAE, BatchTopKTrainingSAEConfig, LoggingConfig, SAETrainer
    from sae_lens.config import SAETrainerConfig

    C = P.crosscoder
    trio = ids(trio) if trio else study_trio(P)   # the given names as ids, or the study's three
    acts = ensure_activations(P, trio)
    key = sae_baseline_key(P, columns_key(P, (BASE,), P.train_seeds[0]), SAE_BASELINE)   # it reads the base's column
    out = crosscoder_dir(P, (BASE,), SAE_BASELINE)
    if is_done(out, key):
        return out
    seed_everything(P.seed)
    store = ActivationStore(acts)
    data = (x[:, 0] for x in store.batches(C.batch_size, seed=P.seed, columns=[0], split="train"))
    sae = BatchTopKTrainingSAE(BatchTopKTrainingSAEConfig(d_in=store.d_model, d_sae=C.n_latents, k=C.k))
    cfg = SAETrainerConfig(total_training_samples=C.batch_size * C.steps, train_batch_size_samples=C.batch_size,
                           lr=C.lr, lr_end=C.lr, n_batches_for_norm_estimate=1, logger=LoggingConfig(log_to_wandb=False))
    trained = SAETrainer(cfg=cfg, sae=sae, data_provider=data).fit()
    with atomic_dir(out) as tmp:
        trained.save_inference_model(str(tmp))
    mark_done(out, key, names=["base"], trainer="sae_lens.SAETrainer")
    return out


def sae_baseline(P: Params, trio: tuple[str, ...] | None = None, sae_dir: Path | None = None) -> pd.DataFrame:
    """How far each model moved off the base's own dictionary: held-out FVU and mean L0 of the base's sae-lens SAE
    (:func:`ensure_sae_baseline`) on every model's activations of the same held-out tokens (every token read
    once). A tuned model whose FVU rises above the base's uses directions the base's dictionary lacks.
    ``sae_dir``: read that saved SAE of the same base instead of this run's own (trained once, read by several
    runs: the instrument validation's pairs share one base), and train none here."""
    from sae_lens import SAE  # ~4 s at import: see ensure_sae_baseline
    C = P.crosscoder
    trio = ids(trio) if trio else study_trio(P)   # the given names as ids, or the study's three
    sae = SAE.load_from_disk(str(sae_dir or ensure_sae_baseline(P, trio)))
    it = ActivationStore(ensure_activations(P, trio)).batches(C.batch_size, seed=P.seed + 12345, split="heldout",
                                                             epochs=1)
    resid, total, l0, n = torch.zeros(len(trio)), torch.zeros(len(trio)), torch.zeros(len(trio)), 0
    with torch.no_grad():
        for x_BMD in it:
            for m in range(len(trio)):
                f_BL = sae.encode(x_BMD[:, m])
                resid[m] += (x_BMD[:, m] - sae.decode(f_BL)).pow(2).sum()
                total[m] += (x_BMD[:, m] - x_BMD[:, m].mean(0)).pow(2).sum()
                l0[m] += (f_BL > 0).float().sum(-1).sum()
            n += x_BMD.shape[0]
    return pd.DataFrame([{"model": name, "held-out FVU (base's SAE)": float(resid[m] / total[m]),
                          "mean L0": float(l0[m] / max(n, 1))} for m, name in enumerate(trio)])
