"""Study A's generalization features and their causal test (docs/METHOD.md §A4–A5).

**Reading one model's latents out of a joint crosscoder.** The crosscoder encodes M models' activations at the
same token jointly; during one model's generation only that model's activation exists. ``encode="replicate"``
puts model m's (normalised) activation into every model slot — on the default organism this reconstructs model m
about as well as the joint code (FVU 0.015 vs 0.013); ``encode="own"`` gives the other slots zeros (the other
encoder blocks then contribute nothing; FVU ≈ 0.44 there). Both are offered; the notebook states which is used.

**Score and selection.** Score_k = mean over a family's RL-right/base-wrong samples of (f_k^RL − f_k^base), each
f averaged over the chosen token positions of the sample. The paper keeps latents with Score_k > ``fraction`` ×
the family's maximum (:func:`family_set`). Score_k alone also rewards latents that drift between the models on
*every* prompt, so the default selection is a **contrast**: the same difference on RL-right/base-wrong samples
minus its mean on control samples where RL does not win (base-right/RL-wrong and both-right) (:func:`contrast_L`),
kept where a label-permutation test (:func:`permutation_pvalues_L`) rejects "no contrast" under Benjamini–Hochberg
control of the false discovery rate (:func:`bh_mask`). The paper's task-agnostic set is the intersection over
families (:func:`select_sets`): a latent must pass in *every* family on that family's samples alone, so with a few
dozen targets per family a real shared latent is lost to the weakest family. The default instead pools the
families in one **stratified permutation test** (:func:`stratified_pvalues_L`: the families' contrasts summed with
inverse-variance weights, labels permuted within each family) and keeps a BH-significant latent whose contrast is
positive in every family (:func:`pooled_selection`): the evidence is pooled, the sign must hold everywhere, so a
latent that rises in one family and falls in another is rejected. :func:`selection_power` simulates, for the
families' sample counts, how often either rule keeps one planted latent of a stated standardized effect.
Random control sets are matched to the selected latents' firing frequency
(:func:`frequency_matched_sets`), since frequent latents move generations more than rare ones.

**The edit.** At the crosscoder's layer, with x = scale_m · h (the activation normalisation of notebook 03) and
f = encode(x), the edited stream is ``h + (decode(f')[m] − decode(f)[m]) / scale_m`` where f' multiplies the
selected latents by ``factor`` (0 = disable, α > 1 = amplify). Everything the crosscoder does not reconstruct
(its error) is kept, and with nothing changed f' = f and the edit is exactly zero, so generations are unchanged
token for token (the identity check). Zeroing latent k removes exactly f_k · W_dec[k, m] / scale_m.

**Where.** ``positions="prompt"`` edits the forward pass over the prompt, ``"generated"`` every later step
(one new token each, with the KV cache), ``"both"`` all of them. :func:`generate` does it through nnsight
(``tracer.iter`` over generation steps); :func:`generate_hooked` does the same with a plain torch forward hook,
the reference the nnsight path is tested against.

Legend: ``B`` batch, ``T`` positions, ``D`` d_model, ``L`` latents, ``M`` models, ``F`` families.
"""
from __future__ import annotations

import warnings
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np
import torch

from .activations import resid_hook, submodule
from .crosscoder import Crosscoder

if TYPE_CHECKING:
    from ..run.types import LM, Model, Tokenizer


# ------------------------------------------------------------------------------------------------ latents
def latents_of(cc: Crosscoder, x_BD: torch.Tensor, m: int, encode: str = "replicate") -> torch.Tensor:
    """``f_BL`` of model ``m`` alone (``x_BD`` already normalised)."""
    if encode == "own":
        return cc.encode_one(x_BD, m)
    if encode == "replicate":
        return cc.encode(x_BD[:, None, :].expand(-1, cc.cfg.n_models, -1), use_threshold=True)
    raise ValueError(f"encode: {encode!r} is not 'own' or 'replicate'")


def score_L(f_rl_NL: torch.Tensor, f_base_NL: torch.Tensor) -> torch.Tensor:
    """Score_k = mean over samples of f_k^RL − f_k^base (each row one sample's position-averaged latents)."""
    return (f_rl_NL - f_base_NL).mean(0)


def sign_flip_pvalues_L(d_NL: torch.Tensor, n_perm: int = 999, seed: int = 0) -> torch.Tensor:
    """One-sided p-value per latent that its mean paired difference ``d`` (e.g. f^RL − f^base per sample) is
    above zero, by a sign-flip permutation test: under the null that the difference is symmetric about zero,
    each sample's sign is exchangeable. p = (1 + #{flipped means ≥ observed}) / (n_perm + 1), so the smallest
    attainable p is 1 / (n_perm + 1); under the null p is (super-)uniform (tested on planted scores)."""
    n = d_NL.shape[0]
    if n == 0:
        return torch.ones(d_NL.shape[1])
    g = torch.Generator().manual_seed(seed)
    observed_L = d_NL.mean(0)
    signs_XN = torch.randint(0, 2, (n_perm, n), generator=g).to(d_NL.dtype) * 2 - 1
    flipped_XL = signs_XN @ d_NL / n
    return (1 + (flipped_XL >= observed_L[None, :] - 1e-12).sum(0)) / (n_perm + 1)


def contrast_L(d_target_NL: torch.Tensor, d_control_KL: torch.Tensor) -> torch.Tensor:
    """Mean paired difference (f^RL − f^base) on the target samples minus its mean on the control samples."""
    return d_target_NL.mean(0) - d_control_KL.mean(0)


def permutation_pvalues_L(d_target_NL: torch.Tensor, d_control_KL: torch.Tensor, n_perm: int = 999,
                          seed: int = 0, chunk: int = 2000) -> torch.Tensor:
    """One-sided p-value per latent that :func:`contrast_L` is above zero, by permuting the target/control labels
    over the pooled samples (exchangeable under the null that the difference does not depend on the label).
    p = (1 + #{permuted contrasts ≥ observed}) / (n_perm + 1): at least 1 / (n_perm + 1), uniform under the null.
    With Benjamini–Hochberg over m latents a single latent can only be kept if 1 / (n_perm + 1) ≤ q / m, so
    ``n_perm`` must grow with the dictionary (:func:`bh_reachable`)."""
    n, k = d_target_NL.shape[0], d_control_KL.shape[0]
    if n == 0 or k == 0:
        return torch.ones(d_target_NL.shape[1])
    pooled_SL = torch.cat([d_target_NL, d_control_KL]).double()
    g = torch.Generator().manual_seed(seed)
    total_L = pooled_SL.sum(0)
    observed_L = contrast_L(d_target_NL.double(), d_control_KL.double())
    extreme_L = torch.zeros(pooled_SL.shape[1], dtype=torch.long)
    for start in range(0, n_perm, chunk):                     # chunks bound the [X, L] memory
        x = min(chunk, n_perm - start)
        order_XS = torch.argsort(torch.rand(x, n + k, generator=g), dim=1)
        in_target_XL = (order_XS < n).double() @ pooled_SL   # each row: a random n-subset labelled "target"
        perm_XL = in_target_XL / n - (total_L[None] - in_target_XL) / k
        extreme_L += (perm_XL >= observed_L[None] - 1e-12).sum(0)
    return ((1 + extreme_L) / (n_perm + 1)).float()


def bh_mask(p_L: torch.Tensor, q: float, among: torch.Tensor | None = None) -> torch.Tensor:
    """Benjamini–Hochberg at false-discovery rate ``q`` over the latents in ``among`` (default all): the largest r
    with p_(r) ≤ q·r/m, and every latent with p ≤ p_(r)."""
    among = torch.ones_like(p_L, dtype=torch.bool) if among is None else among
    p = p_L[among]
    m = p.numel()
    if m == 0:
        return torch.zeros_like(among)
    ranked = torch.sort(p).values
    ok = ranked <= q * torch.arange(1, m + 1, dtype=p.dtype) / m
    if not bool(ok.any()):
        return torch.zeros_like(among)
    cut = ranked[int(torch.nonzero(ok).max())]
    return among & (p_L <= cut)


Group = tuple[torch.Tensor, torch.Tensor]
"""One family's (d_target_NL, d_control_KL): paired differences f^RL − f^base on its target and control samples."""


def stratum_weight(n: int, k: int) -> float:
    """Inverse-variance weight of one family's contrast (n targets, k controls): 1 / (1/n + 1/k)."""
    return n * k / (n + k) if n and k else 0.0


def stratified_contrast_L(groups: list[Group]) -> torch.Tensor:
    """Σ_f w_f · contrast_f / Σ_f w_f: the families' contrasts (:func:`contrast_L`) averaged with inverse-variance
    weights (:func:`stratum_weight`); families with an empty group count for nothing."""
    used = [(t, c, stratum_weight(len(t), len(c))) for t, c in groups if len(t) and len(c)]
    if not used:
        return torch.zeros(groups[0][0].shape[1]) if groups else torch.zeros(0)
    total = sum(w for *_, w in used)
    return torch.stack([w * contrast_L(t.double(), c.double()) for t, c, w in used]).sum(0).float() / total


def stratified_pvalues_L(groups: list[Group], n_perm: int = 999, seed: int = 0, chunk: int = 2000) -> torch.Tensor:
    """One-sided p-value per latent that :func:`stratified_contrast_L` is above zero, by permuting target/control
    labels **within each family** (every family keeps its own counts, so a family with more controls, or a
    different activation level, cannot fake a contrast). p = (1 + #{permuted ≥ observed}) / (n_perm + 1), as in
    :func:`permutation_pvalues_L` (which this equals for one family)."""
    used = [(t.double(), c.double()) for t, c in groups if len(t) and len(c)]
    if not used:
        return torch.ones(groups[0][0].shape[1]) if groups else torch.ones(0)
    g = torch.Generator().manual_seed(seed)
    weights = [stratum_weight(len(t), len(c)) for t, c in used]
    observed_L = torch.stack([w * contrast_L(t, c) for (t, c), w in zip(used, weights)]).sum(0)
    extreme_L = torch.zeros(used[0][0].shape[1], dtype=torch.long)
    for start in range(0, n_perm, chunk):
        x = min(chunk, n_perm - start)
        perm_XL = torch.zeros(x, extreme_L.numel(), dtype=torch.float64)
        for (t, c), w in zip(used, weights):
            n, k = len(t), len(c)
            pooled_SL = torch.cat([t, c])
            order_XS = torch.argsort(torch.rand(x, n + k, generator=g), dim=1)
            in_target_XL = (order_XS < n).double() @ pooled_SL
            perm_XL += w * (in_target_XL / n - (pooled_SL.sum(0)[None] - in_target_XL) / k)
        extreme_L += (perm_XL >= observed_L[None] - 1e-12).sum(0)
    return ((1 + extreme_L) / (n_perm + 1)).float()


def pooled_selection(groups: list[Group], n_perm: int, q: float, alive_L: torch.Tensor, seed: int
                     ) -> tuple[torch.Tensor, set[int]]:
    """The pooled rule: stratified p-values (:func:`stratified_pvalues_L`), Benjamini–Hochberg at ``q`` over the
    alive latents, and a contrast above zero in every family. Returns (p-values, kept latents)."""
    p_L = stratified_pvalues_L(groups, n_perm, seed)
    used = [(t, c) for t, c in groups if len(t) and len(c)]
    if not used:
        return p_L, set()
    every_L = torch.stack([contrast_L(t, c) > 0 for t, c in used]).all(0)
    keep = bh_mask(p_L, q, alive_L) & every_L
    return p_L, set(torch.nonzero(keep).flatten().tolist())


def selection_power(counts: list[tuple[int, int]], effect: float, m: int, q: float, n_perm: int,
                    combine: str = "pooled", n_sim: int = 4000, seed: int = 0) -> float:
    """Simulated probability that the selection keeps **one planted latent** whose paired difference is
    ``effect`` standard deviations higher on every family's targets than on its controls (unit-variance noise),
    among ``m`` alive latents, given each family's (targets, controls) ``counts``.

    Each draw samples the planted latent's family contrasts, c_f ~ N(effect, 1/n_f + 1/k_f) — the large-sample law
    of a mean difference, which the label-permutation test's null matches — and applies the rule: ``"pooled"``
    (:func:`pooled_selection`: the inverse-variance z of the families together, every c_f > 0) or
    ``"intersection"`` (every family's own z); a latent is kept when its one-sided p, floored at 1/(n_perm + 1),
    is at most q/m — the BH cut for a lone discovery, so the estimate is conservative when other latents are real.
    ``"union"`` keeps it when any family's does. Checked against the real permutation tests on simulated
    activations in ``tests/test_pooled_selection.py``."""
    used = [(n, k) for n, k in counts if n and k]
    if not used or m < 1:
        return 0.0
    rng = np.random.default_rng(seed)
    var_F = np.array([1 / n + 1 / k for n, k in used])
    c_SF = effect + rng.standard_normal((n_sim, len(used))) * np.sqrt(var_F)
    cut = q / m
    floor = 1 / (n_perm + 1)

    def passes(z):
        p = 0.5 * torch.special.erfc(torch.as_tensor(z, dtype=torch.float64) / np.sqrt(2)).numpy()   # normal sf
        return np.maximum(p, floor) <= cut
    if combine == "pooled":
        w_F = 1 / var_F
        z_S = (c_SF * w_F).sum(1) / np.sqrt(w_F.sum())
        kept = passes(z_S) & (c_SF > 0).all(1)
    else:
        each_SF = passes(c_SF / np.sqrt(var_F))
        kept = each_SF.all(1) if combine == "intersection" else each_SF.any(1)
    return float(kept.mean())


def bh_reachable(n_perm: int, q: float, m: int) -> bool:
    """Whether a single latent can pass Benjamini–Hochberg at ``q`` over ``m`` latents with ``n_perm``
    permutations (its smallest attainable p, 1 / (n_perm + 1), at most q / m)."""
    return 1 / (n_perm + 1) <= q / max(m, 1)


def frequency_matched_sets(freq_L: torch.Tensor, chosen: list[int], alive: list[int], n: int, seed: int,
                           n_bins: int = 10) -> list[list[int]]:
    """``n`` random sets, each holding for every chosen latent one alive, unchosen latent from the same firing-
    frequency quantile bin (bins over the alive latents; a bin with too few candidates borrows from its
    neighbours), so a random set fires as often as the selected one."""
    cand = np.array(sorted(set(alive) - set(chosen)))
    if not chosen or cand.size == 0:
        return [[] for _ in range(n)]
    f = freq_L.detach().double().numpy()
    edges = np.quantile(f[np.array(alive)], np.linspace(0, 1, n_bins + 1)[1:-1])
    bin_of = np.searchsorted(edges, f, side="right")
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        taken: set[int] = set()
        for c in chosen:
            for width in range(n_bins):
                near = cand[(np.abs(bin_of[cand] - bin_of[c]) <= width) & ~np.isin(cand, list(taken))]
                if near.size:
                    taken.add(int(rng.choice(near)))
                    break
        out.append(sorted(taken))
    return out


def family_set(score: torch.Tensor, fraction: float) -> set[int]:
    """Latents scoring above ``fraction`` × the family's maximum (none when no latent scores above 0)."""
    top = float(score.max()) if score.numel() else 0.0
    return set(torch.nonzero(score > fraction * top).flatten().tolist()) if top > 0 else set()


def task_agnostic(sets: dict[str, set[int]], combine: str = "intersection") -> set[int]:
    """The families' sets combined: their intersection (the paper) or union; empty without families."""
    if not sets:
        return set()
    return set.intersection(*sets.values()) if combine == "intersection" else set.union(*sets.values())


def select_sets(scores: dict[str, torch.Tensor], fraction: float) -> tuple[dict[str, set[int]], set[int]]:
    """The paper's rule: per-family sets (:func:`family_set`) and their intersection (the task-agnostic set)."""
    sets = {f: family_set(s, fraction) for f, s in scores.items()}
    return sets, task_agnostic(sets)


def overlap_matrix(sets: dict[str, set[int]]) -> np.ndarray:
    """``[F, F]`` share of the smaller set found in the other (the paper's "> 80 % overlap")."""
    names = list(sets)
    out = np.full((len(names), len(names)), np.nan)
    for i, a in enumerate(names):
        for j, b in enumerate(names):
            small = min(len(sets[a]), len(sets[b]))
            if small:
                out[i, j] = len(sets[a] & sets[b]) / small
    return out


def random_sets(alive: list[int], size: int, n: int, seed: int, exclude: AbstractSet[int] = frozenset()) -> list[list[int]]:
    """``n`` random latent sets of ``size`` drawn from alive latents outside ``exclude``."""
    pool = np.array(sorted(set(alive) - set(exclude)))
    rng = np.random.default_rng(seed)
    size = min(size, len(pool))
    return [sorted(rng.choice(pool, size, replace=False).tolist()) for _ in range(n)]


# ------------------------------------------------------------------------------------------------ the edit
@dataclass(frozen=True)
class Edit:
    """Multiply ``latents`` of model slot ``m`` by ``factor`` at the crosscoder's layer."""
    cc: Crosscoder
    m: int
    scale: float                 # activation normalisation of model m (norm.json)
    latents: tuple[int, ...]
    factor: float
    encode: str = "replicate"
    positions: str = "both"      # prompt | generated | both

    def applies(self, step: int) -> bool:
        return self.positions == "both" or (self.positions == "prompt") == (step == 0)

    def with_(self, **kw) -> "Edit":
        return replace(self, **kw)


def edit_delta(h_BTD: torch.Tensor, e: Edit) -> torch.Tensor:
    """The change the edit makes to the residual stream ``h_BTD`` (model units)."""
    B, T, D = h_BTD.shape
    cc_device = next(e.cc.parameters()).device
    with torch.no_grad():   # the crosscoder reads float32 on its own device; the change returns in h's dtype/device
        x = h_BTD.reshape(B * T, D).float().to(cc_device) * e.scale
        f = latents_of(e.cc, x, e.m, e.encode)
        f_new = f.clone()
        idx = torch.tensor(e.latents, dtype=torch.long, device=cc_device)
        f_new[:, idx] = f[:, idx] * e.factor
        d = e.cc.decode(f_new)[:, e.m] - e.cc.decode(f)[:, e.m]
    return (d / e.scale).reshape(B, T, D).to(h_BTD.device, h_BTD.dtype)


def apply(h_BTD: torch.Tensor, e: Edit) -> torch.Tensor:
    return h_BTD + edit_delta(h_BTD, e)


# ------------------------------------------------------------------------------------------------ generation
def _decode(tokenizer: Tokenizer, ids_BT: torch.Tensor, n_prompt: int) -> list[str]:
    return tokenizer.batch_decode(ids_BT[:, n_prompt:], skip_special_tokens=True)


def _gen_kwargs(tokenizer: Tokenizer, max_new_tokens: int) -> dict:
    return {"max_new_tokens": max_new_tokens, "do_sample": False, "pad_token_id": tokenizer.pad_token_id,
            "eos_token_id": tokenizer.eos_token_id}


def generate(lm: LM, tokenizer: Tokenizer, prompts: list[str], max_new_tokens: int,
             edit: Edit | None, layers_path: str,
             layer: int, batch_size: int = 128) -> list[str]:
    """Greedy completions with ``edit`` applied at ``layer`` through nnsight (None: no edit, same path)."""

    tokenizer.padding_side = "left"
    out: list[str] = []
    for i in range(0, len(prompts), batch_size):
        enc = tokenizer(prompts[i:i + batch_size], return_tensors="pt", padding=True).to(lm.device)
        with warnings.catch_warnings():  # a batch that stops early leaves the bounded loop's last steps unreached
            warnings.filterwarnings("ignore", message=".*was never reached.*")
            with lm.generate(**_gen_kwargs(tokenizer, max_new_tokens)) as tracer:
                with tracer.invoke({"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}):
                    for step in tracer.iter[:max_new_tokens]:
                        if edit is not None and edit.applies(step):
                            block = submodule(lm, layers_path)[layer]
                            block.output = apply(block.output, edit)
                with tracer.invoke():
                    ids = tracer.result.save()
        out += _decode(tokenizer, ids, enc["input_ids"].shape[1])
    return out


def edited_forward(lm: LM, edit: Edit | None, layers_path: str, layer: int):
    """``forward(ids_BT, mask_BT) -> logits_BTV`` of the nnsight-wrapped model with ``edit`` applied at ``layer``
    on every position (a cloze-scored choice is read in one pass: question and answer alike), for
    :func:`rlgen_utils.models.scoring.choice_logliks`."""
    def forward(ids_BT: torch.Tensor, mask_BT: torch.Tensor) -> torch.Tensor:
        with torch.no_grad(), lm.trace({"input_ids": ids_BT, "attention_mask": mask_BT}):
            if edit is not None:
                block = submodule(lm, layers_path)[layer]
                block.output = apply(block.output, edit)
            logits = lm.output.logits.save()
        return logits
    return forward


def generate_hooked(model: Model, tokenizer: Tokenizer, prompts: list[str], max_new_tokens: int,
                    edit: Edit | None,
                    layers_path: str, layer: int, batch_size: int = 128) -> list[str]:
    """The same as :func:`generate` with a plain torch forward hook (the reference)."""
    block = submodule(model, f"{layers_path}.{layer}")
    tokenizer.padding_side = "left"
    out: list[str] = []
    for i in range(0, len(prompts), batch_size):
        enc = tokenizer(prompts[i:i + batch_size], return_tensors="pt", padding=True)
        step = {"n": 0}

        def hook(mod, args, output, step=step):
            s, step["n"] = step["n"], step["n"] + 1
            if edit is None or not edit.applies(s):
                return None
            return (apply(output[0], edit),) + tuple(output[1:]) if isinstance(output, tuple) else apply(output, edit)

        handle = block.register_forward_hook(hook)
        try:
            with torch.no_grad():
                ids = model.generate(**enc, **_gen_kwargs(tokenizer, max_new_tokens))  # pyright: ignore[reportCallIssue]
        finally:
            handle.remove()
        out += _decode(tokenizer, ids, enc["input_ids"].shape[1])
    return out


def latent_trace(model: Model, tokenizer: Tokenizer, text: str, cc: Crosscoder, m: int, scale: float,
                 latents: list[int],
                 layers_path: str, layer: int, encode: str = "replicate") -> tuple[list[str], torch.Tensor]:
    """Tokens of ``text`` and the activations ``[T, len(latents)]`` of the given latents along it."""

    enc = tokenizer(text, return_tensors="pt")
    h = resid_hook(model, layers_path, layer, enc["input_ids"], enc["attention_mask"])[0]
    with torch.no_grad():
        f = latents_of(cc, h.float() * scale, m, encode)
    tokens = [tokenizer.decode([t]) for t in enc["input_ids"][0]]
    return tokens, f[:, latents]
