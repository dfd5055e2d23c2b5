"""Known-cause validation of notebook 06's ablation: does zeroing the latents an instrument found remove a
behaviour whose cause is known (issue 29)?

Notebook 06 proves latents causal by editing them during generation (:mod:`rlgen_utils.method.latent_edits`:
at the crosscoder's layer, the selected latents × 0, everything the crosscoder does not reconstruct kept). Before
"disabling the set changes nothing" means anything, that edit must remove a behaviour it should. This module reads
a known-cause pair that notebook 03 has run (:func:`rlgen_utils.studies.known_causes.byo_params`: the cause in the
SFT slot) and:

1. takes the latents notebook 03's pair crosscoder (base vs the SFT slot) found **tuned-only** (NRN above
   ``crosscoder.nrn_high``) — what an instrument found, not what we know;
2. zeroes them in the fine-tune while it answers the cause's held-out probes (``known_causes.probes``) with 06's
   edit, and counts the probes still answered the caused way (:func:`rate`);
3. does the same with ``n_random`` random latent sets of the same size and firing frequency (the null 06 uses).

The ablation **lowers** the cause when the found set lowers the caused share by more than every random set does
(one-sided permutation p ≤ 1 / (n_random + 1)). A fine-tune in which the instrument found nothing has nothing to
ablate: its row says so. ``benchmarks/bench_ablation_validation.py`` writes ``docs/ablation_validation.md``.

Legend: ``L`` latents, ``M`` models, ``D`` d_model, ``B`` batch.
"""
from __future__ import annotations

from pathlib import Path

import torch

from ..method import activations, latent_edits, latents
from ..method.activations import ActivationStore
from ..models import loading
from ..run.config import Params
from ..run.rundir import RunDir
from . import crosscoder
from . import known_causes as kc
from .crosscoder import PairKey


def found_latents(Q: Params, cc) -> list[int]:
    """Alive latents of the base-vs-SFT-slot crosscoder ``cc`` whose NRN exceeds ``crosscoder.nrn_high`` (notebook
    03's tuned-only count), in index order."""
    nrn_L = latents.nrn_L(cc.dec_norms_LM().detach())
    keep = cc.alive_L() & (nrn_L > Q.crosscoder.nrn_high)
    return torch.nonzero(keep).flatten().tolist()


def firing_frequency_L(cc, store: ActivationStore, columns: list[int], n_batches: int = 8,
                       batch_size: int = 1024) -> torch.Tensor:
    """``[L]`` share of held-out corpus tokens on which each latent of ``cc`` fires (joint encoding of the
    ``columns`` it reads), the quantity random control sets are matched on."""
    fired, n = None, 0
    with torch.no_grad():
        for i, x_BMD in enumerate(store.batches(batch_size, seed=0, columns=columns, split="heldout")):
            if i >= n_batches:
                break
            f = (cc.encode(x_BMD) > 0).float().sum(0)
            fired, n = (f if fired is None else fired + f), n + x_BMD.shape[0]
    return fired / max(1, n) if fired is not None else torch.zeros(cc.cfg.n_latents)


def rate(P: Params, completions: list[str], want: list[str]) -> float:
    """Share of probe completions that state the caused answer (``want``)."""
    return sum(kc.stated(P, c) == w for c, w in zip(completions, want)) / max(1, len(want))


def ablation(P: Params, Q: Params, cause: str, n_random: int, seed: int = 0) -> dict:
    """Zero what notebook 03 found in the SFT slot of the validation pair run ``Q`` (run from ``P``) and read the
    caused share of ``cause``'s probes, against ``n_random`` frequency-matched random sets. Returns one row:
    ``found`` (how many latents), ``plain`` / ``ablated`` caused shares, the random sets' ``random_drops``, the
    found set's ``drop``, its permutation ``p`` and whether the ablation ``lowers`` the cause beyond the null
    (how far it is from removed: ``ablated`` against the base's own share, which the benchmark page shows)."""
    names = crosscoder.trio(Q)
    pair = crosscoder.ensure_pairs(Q, names)[PairKey(names[1])]   # read back under its key: trained by 03
    pair.eval()
    store = ActivationStore(crosscoder.ensure_activations(Q, names))
    chosen = found_latents(Q, pair)
    path: Path = RunDir(Q).model(names[1])
    model, tok = loading.load_model(path, Q.model.dtype), loading.load_tokenizer(path)
    lm, layers = activations.wrap(model, tok), activations.decoder_layers_path(model)
    prompts, want = kc.probes(P, cause)
    I = Q.interventions

    def caused(latents_: list[int] | None) -> float:
        edit = None if latents_ is None else latent_edits.Edit(pair, 1, float(store.scale_M[1]), tuple(latents_), 0.0,
                                                               I.encode, I.edit_positions)
        return rate(P, latent_edits.generate(lm, tok, prompts, P.eval.max_new_tokens, edit, layers,
                                                    store.layer, P.eval.batch_size), want)
    plain = caused(None)
    row = {"found": len(chosen), "plain": plain, "ablated": None, "drop": None, "random_drops": [], "p": None,
           "lowers": False}
    if not chosen:
        return row
    alive = torch.nonzero(pair.alive_L()).flatten().tolist()
    freq = firing_frequency_L(pair, store, [0, 1])
    drops = [plain - caused(s) for s in latent_edits.frequency_matched_sets(freq, chosen, alive, n_random, seed)]
    ablated = caused(chosen)
    return {**row, "ablated": ablated, "random_drops": drops, **against_random(plain - ablated, drops)}


def against_random(drop: float, random_drops: list[float]) -> dict:
    """The found set's ``drop`` in the caused share against the random sets': the one-sided permutation ``p``
    (ties count against it) and whether it ``lowers`` the cause — a positive drop larger than every random one."""
    p = (1 + sum(d >= drop for d in random_drops)) / (1 + len(random_drops))
    return {"drop": drop, "p": p, "lowers": bool(random_drops) and drop > 0 and p <= 1 / (1 + len(random_drops))}
