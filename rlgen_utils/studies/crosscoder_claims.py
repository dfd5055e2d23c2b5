"""What notebook 03's crosscoders show, as typed findings and verdicts, computed from their decoder norms
against the nulls of :mod:`rlgen_utils.studies.nulls` (never written by hand)."""
from __future__ import annotations

import pandas as pd

from ..method import latents
from ..method.crosscoder import Crosscoder
from ..run.config import Params
from ..run.modelid import ModelId
from .crosscoder import PairKey
from .findings import Finding, Findings, ident
from .nulls import NOISE_TRIO, NULL_PAIR, noise_pair
from .verdicts import Verdict, decide, demonstrated, detection_limit, power_file, validation_file


def findings(P: Params, cc3: Crosscoder, names: tuple[ModelId, ...], nrn_by_pair: dict,
             owned: pd.DataFrame | None = None, cosines: pd.DataFrame | None = None) -> Findings:
    """What the crosscoders show, computed from their decoder norms (never written by hand); ``owned`` is
    :func:`ownership` with the three-model nulls, ``cosines`` :func:`crosscoder.cosine_shift` with them."""
    C = P.crosscoder
    live = cc3.alive_L()
    own = latents.owner_L(cc3.dec_norms_LM().detach(), C.mas_specific_above)[live]
    owned_by = {n: int((own == i).sum()) for i, n in enumerate(names)}
    counts = ", ".join(f"{n} {c}" for n, c in owned_by.items())
    items = [Finding(f"Three-model crosscoder, {int(live.sum())} alive latents: owned (MAS > {C.mas_specific_above}) "
                     f"by {counts}; shared {int((own == -1).sum())}.",
                     {"alive": int(live.sum()), "shared": int((own == -1).sum()),
                      **{f"owned_{ident(n)}": c for n, c in owned_by.items()}})]
    ex = owned_excess(owned, names) if owned is not None and NOISE_TRIO in owned else None
    if ex is not None:
        items.append(Finding(
            "Against the three-model nulls (the same crosscoder over three identical copies of the base, and over "
            "the base with each tuned slot moved as far at random): " +
            ", ".join(f"{m} owns {r} vs {n} at most in a null ({e:+d})" for m, (r, n, e) in ex.items()) + ".",
            {f"owned_above_null_{ident(m)}": e for m, (_, _, e) in ex.items()}))
    for pair, nrn in nrn_by_pair.items():
        c = latents.nrn_counts(nrn, C.nrn_low, C.nrn_high)
        items.append(Finding(f"{pair}: {c['tuned-only']} tuned-only (NRN > {C.nrn_high}), {c['base-only']} "
                             f"base-only, {c['shared']} shared; median NRN {float(nrn.median()):.3f}.",
                             {"pair": str(pair), "tuned_only": int(c["tuned-only"]), "base_only": int(c["base-only"]),
                              "shared": int(c["shared"]), "median_nrn": float(nrn.median())}))
    if NULL_PAIR in nrn_by_pair:
        c = latents.nrn_counts(nrn_by_pair[NULL_PAIR], C.nrn_low, C.nrn_high)
        items.append(Finding(
            f"Read every pair against the identical-copy null: {c['tuned-only']} tuned-only and {c['base-only']} "
            f"base-only latents appear between the base and an exact copy of itself, so a real pair's count at or "
            f"below these is not evidence of model-specific latents.",
            {"null_tuned_only": int(c["tuned-only"]), "null_base_only": int(c["base-only"])}))
    for m in names[1:]:
        if noise_pair(m) in nrn_by_pair and PairKey(m) in nrn_by_pair:
            real = latents.nrn_counts(nrn_by_pair[PairKey(m)], C.nrn_low, C.nrn_high)
            null = latents.nrn_counts(nrn_by_pair[noise_pair(m)], C.nrn_low, C.nrn_high)
            items.append(Finding(
                f"{PairKey(m)} against the base moved as far at random: tuned-only {real['tuned-only']} vs "
                f"{null['tuned-only']}, base-only {real['base-only']} vs {null['base-only']}, median NRN "
                f"{float(nrn_by_pair[PairKey(m)].median()):.3f} vs {float(nrn_by_pair[noise_pair(m)].median()):.3f}.",
                {"model": m, "tuned_only": int(real["tuned-only"]), "random_update_tuned_only": int(null["tuned-only"])}))
    shared = (latents.owner_L(cc3.dec_norms_LM().detach(), C.mas_specific_above) == -1) & live
    W = cc3.W_dec_LMD.detach()
    cos = {n: float(latents.decoder_cosine_L(W, 0, i)[shared].median()) for i, n in enumerate(names) if i}
    items.append(Finding("Shared latents' median decoder cosine with the base: " +
                         ", ".join(f"{n} {v:.3f}" for n, v in cos.items()) + ".",
                         {f"shared_cosine_{ident(n)}": v for n, v in cos.items()}))
    if cosines is not None and len(cosines.columns) > 1:
        nulls_ = [c for c in cosines.columns if c != "crosscoder"]
        floor = {n: float(cosines.loc[str(n), nulls_].to_numpy(dtype=float).min()) for n in names[1:]}
        items.append(Finding(
            "Against the three-model nulls, the lowest median cosine in each slot: " +
            ", ".join(f"{n} {floor[n]:.3f} ({'rotated beyond' if cos[n] < floor[n] else 'within'} the nulls)"
                      for n in names[1:]) + ".",
            {f"shared_cosine_null_{ident(n)}": v for n, v in floor.items()}, style="sub"))
    sft, rl = names[1], names[2]
    n_sft, n_rl = int((own == 1).sum()), int((own == 2).sum())
    if ex is not None:   # read above the nulls, not raw
        n_sft, n_rl = max(ex[sft][2], 0), max(ex[rl][2], 0)
    verdict = ("as in the paper, SFT has more model-specific latents than RL" if n_sft > n_rl else
               "unlike the paper, SFT does not have more model-specific latents than RL" if n_sft < n_rl else
               f"neither {sft} nor {rl} owns more latents at this threshold")
    items.append(Finding(f"So {verdict}; {'RL' if cos[rl] > cos[sft] else 'SFT'} keeps the base's feature directions "
                         f"more closely ({rl} {cos[rl]:.3f} vs {sft} {cos[sft]:.3f}).",
                         {"sft_owns_more": n_sft > n_rl, "rl_keeps_directions": cos[rl] > cos[sft]}))
    return Findings("03_crosscoder", "crosscoders", tuple(items))


PAIR_INSTRUMENT = "pair crosscoder (NRN tuned-only)"
MAS_INSTRUMENT = "three-model crosscoder (MAS owned)"
"""The instruments' names in the known-cause validation (``studies.known_causes.INSTRUMENTS``)."""


def verdicts(P: Params, names: tuple[ModelId, ...], nrn_by_pair: dict, owned: pd.DataFrame | None = None
             ) -> list[Verdict]:
    """The paper's ownership claim — SFT adds many model-specific latents, RL few — decided from the pair
    crosscoders' tuned-only counts, each minus the larger of its two nulls (the identical copy and the base moved
    as far at random); "none" is read against the detection limit of ``docs/detection_power.md``. With ``owned``
    (:func:`ownership` with the three-model nulls) the same claim read from the three-model crosscoder's MAS."""
    C = P.crosscoder
    sft, rl = names[1], names[2]
    tuned = {k: int(latents.nrn_counts(v, C.nrn_low, C.nrn_high)["tuned-only"]) for k, v in nrn_by_pair.items()}
    copy = tuned.get(NULL_PAIR, 0)
    excess = {m: tuned[PairKey(m)] - max(copy, tuned.get(noise_pair(m), 0)) for m in (sft, rl)}
    nulls = ", ".join(f"random update like {m} {tuned[noise_pair(m)]}" for m in (sft, rl)
                      if noise_pair(m) in tuned)
    seen, opposite = excess[sft] > 0 and excess[sft] > max(excess[rl], 0), excess[rl] > max(excess[sft], 0)
    power, power_text = demonstrated(validation_file(P), PAIR_INSTRUMENT, P.crosscoder.corpus)
    return [Verdict(
        claim=f"{sft} adds more model-specific latents than {rl}", notebook="03_crosscoder",
        estimate=float(excess[sft] - excess[rl]), interval=None,
        null=f"tuned-only latents of the identical copy {copy}" + (f", {nulls}" if nulls else ""),
        decision=decide(seen, opposite, seen or opposite or power),   # power decides only an absence
        limit=f"{power_text}; planted directions: {detection_limit(power_file(P))}",
        detail=f"tuned-only (NRN > {C.nrn_high}) {sft} {tuned[PairKey(sft)]}, {rl} {tuned[PairKey(rl)]}; above "
               f"the larger null {sft} {excess[sft]:+d}, {rl} {excess[rl]:+d}"),
        *([] if owned is None or NOISE_TRIO not in owned else [_three_model_verdict(P, names, owned)])]


def owned_excess(owned: pd.DataFrame, names: tuple[ModelId, ...]) -> dict[str, tuple[int, int, int]]:
    """Per tuned model of the three-model view: latents it owns, the most its slot owns in any null, and the
    excess (owned − that null)."""
    t = owned.set_index("owner")
    nulls = [c for c in t.columns if c != "crosscoder"]
    out = {}
    for m in names[1:]:
        real, null = int(t.at[m, "crosscoder"]), max(int(t.at[m, c]) for c in nulls)  # pyright: ignore[reportArgumentType]
        out[m] = (real, null, real - null)
    return out


def _three_model_verdict(P: Params, names: tuple[ModelId, ...], owned: pd.DataFrame) -> Verdict:
    """The ownership claim read from the three-model crosscoder's MAS, each tuned model's count minus the larger
    of what its slot owns in the identical-copy and the random-update three-model nulls."""
    sft, rl = names[1], names[2]
    ex = owned_excess(owned, names)
    (s_real, s_null, s_ex), (r_real, r_null, r_ex) = ex[sft], ex[rl]
    seen, opposite = s_ex > 0 and s_ex > max(r_ex, 0), r_ex > max(s_ex, 0)
    power, power_text = demonstrated(validation_file(P), MAS_INSTRUMENT, P.crosscoder.corpus)
    return Verdict(
        claim=f"{sft} owns more latents than {rl} in the three-model crosscoder (MAS)", notebook="03_crosscoder",
        estimate=float(s_ex - r_ex), interval=None,
        null=f"three-model nulls (identical copies, random updates): at most {s_null} in {sft}'s slot, {r_null} in "
             f"{rl}'s",
        decision=decide(seen, opposite, seen or opposite or power),
        limit=f"{power_text}; planted directions: {detection_limit(power_file(P))}",
        detail=f"owned (MAS > {P.crosscoder.mas_specific_above}) {sft} {s_real}, {rl} {r_real}; above the larger "
               f"null {sft} {s_ex:+d}, {rl} {r_ex:+d}")
