"""Stages of notebook 03: the corpus, activations of several models on it, and crosscoders over them.

Run-folder layout::

    acts/<key>-<models>-ts<training seed>/shard-*.safetensors, index.json, norm.json, DONE.json
    crosscoders/<models>[-<tag>]/crosscoder.safetensors, config.json, log.json, DONE.json (key inside)

Models are named ``base`` or a post-training method (its final checkpoint, first training seed), or
``<method>@<k>`` for checkpoint ``k``.
"""
from __future__ import annotations

import random
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import torch

from ..method import activations, latents
from ..method.activations import ActivationStore
from ..method.crosscoder import TRAINER_VERSION, Crosscoder, CrosscoderConfig, fvu_M
from ..method.crosscoder import train as train_crosscoder
from ..models import loading, pretrain
from ..run import launch
from ..run.artifacts import is_done, mark_done, read_json, write_json
from ..run.config import Params
from ..run.keys import stage_key
from ..run.rundir import NOISE_PREFIX, RunDir
from ..run.session import seed_everything
from ..world import suite, tasks, words
from .verdicts import Verdict, decide, detection_limit, power_file

if TYPE_CHECKING:
    from ..run.types import Model


def corpus(P: Params) -> list[str]:
    """Texts the models read: in-domain gold solutions and the general pretraining mixture, mixed by
    ``crosscoder.in_domain_fraction`` (the paper: half reasoning traces, half general web text). Task world: the
    in-domain texts are correct solutions in the corpus's own style on training-split prompts, not SFT's teacher
    texts (which would favour the model trained on them)."""
    c = P.crosscoder
    n_in = round(c.n_texts * c.in_domain_fraction)
    if P.data.word_world:   # worked solutions of training-split problems drawn apart from SFT's (another seed)
        in_dom = suite.render(P, words.sample(words.IN_DOMAIN_FAMILY, "train", max(1, n_in), P.seed + 3, P.tasks))
    else:
        in_dom = (suite.train_examples(P) if P.data.train_file else
                  tasks.sample_split("arith", "train", max(1, n_in), P.seed + 3, P.tasks))
    texts = [in_dom[i % len(in_dom)].text for i in range(n_in)]
    rng = random.Random(f"corpus/{P.seed}")
    names, weights = pretrain.mixture(1.0)
    if P.data.task_world:
        texts += [pretrain.pretrain_example(rng, rng.choices(names, weights)[0], P.tasks).text
                  for _ in range(c.n_texts - n_in)]
    else:  # a real model: every family's questions stand in for general text (the word world's training split)
        pool = [e.text for name in words.FAMILIES if P.data.word_world
                for e in suite.render(P, words.sample(name, "train", 100, P.seed + 3, P.tasks))]
        pool += [e.text for f in suite.eval_families(P).values() if f.kind != "words" for e in f.examples]
        rng.shuffle(pool)
        texts += [pool[i % len(pool)] for i in range(c.n_texts - n_in)]
    random.Random(P.seed).shuffle(texts)
    return texts


def layer_of(P: Params, model: Model) -> int:
    return P.crosscoder.layer if P.crosscoder.layer is not None else activations.middle_layer(model)


def acts_key(P: Params, names: tuple[str, ...]) -> str:
    """Key of an activation collection: the models and the corpus fields only (not crosscoder training)."""
    return stage_key(P, "activations") + "-" + "-".join(names).replace("@", "at")


def ensure_activations(P: Params, names: tuple[str, ...], train_seed: int | None = None,
                       n_texts: int | None = None) -> Path:
    """Activations of the named models (post-trained with ``train_seed``) on the corpus, or on its first
    ``n_texts`` texts (resumable, keyed)."""
    ts = P.train_seeds[0] if train_seed is None else train_seed
    n_texts = None if n_texts is None or n_texts >= P.crosscoder.n_texts else n_texts   # the whole corpus: one key
    key = f"{acts_key(P, names)}-ts{ts}" + (f"-n{n_texts}" if n_texts else "")
    out = RunDir(P).acts(key)
    paths = [RunDir(P).model(n, ts) for n in names]   # every name checked before anything is loaded
    if is_done(out, key):
        return out
    if launch.should_launch(P):   # the shards dealt over compute.processes ranks
        launch.run_stage(P, ["activations", "--names", ",".join(names), "--train-seed", str(ts),
                             *(["--n-texts", str(n_texts)] if n_texts else [])])
        if not is_done(out, key):
            raise RuntimeError(f"activations of {names}: the launch ended without them")
        return out
    loaded = [loading.load_model(p, P.model.dtype) for p in paths]
    tok = loading.load_tokenizer(paths[0])
    c = P.crosscoder
    info = activations.collect(loaded, tok, corpus(P)[:n_texts], layer_of(P, loaded[0]), out, batch_size=c.collect_batch_size,
                               shard_tokens=c.shard_tokens, max_len=c.max_len)
    if launch.is_main():
        mark_done(out, key, names=list(names), train_seed=ts, layer=layer_of(P, loaded[0]), **info)
    launch.barrier()
    return out


def ensure_crosscoder(P: Params, names: tuple[str, ...], steps: int | None = None,
                      source: tuple[str, ...] | None = None, n_latents: int | None = None,
                      seed: int | None = None, tag: str = "", train_seed: int | None = None,
                      n_texts: int | None = None) -> Crosscoder:
    """A crosscoder over the named models (keyed; reloaded when done). Activations come from ``source``'s
    collection when given (e.g. base–RL read out of the base/SFT/RL activations), else are collected for
    ``names``, on the corpus's first ``n_texts`` texts when given. ``n_latents`` / ``seed`` override the crosscoder
    section; ``tag`` names the folder; models are those post-trained with ``train_seed`` (default the first
    training seed)."""
    c = P.crosscoder
    steps, n_latents = steps or c.steps, n_latents or c.n_latents
    seed = P.seed if seed is None else seed
    source = source or names
    acts = ensure_activations(P, source, train_seed, n_texts)
    columns = [source.index(n) for n in names]
    key = f"{stage_key(P, 'crosscoder')}-{acts.name}-{'-'.join(names)}-{steps}-{n_latents}-{seed}-{TRAINER_VERSION}"
    out = crosscoder_dir(P, names, tag)
    if is_done(out, key):
        return Crosscoder.load(out)
    store = ActivationStore(acts)
    cfg = CrosscoderConfig(n_models=len(names), d_model=store.d_model, n_latents=n_latents, sparsity=c.sparsity,
                           k=c.k, l1_coeff=c.l1_coeff, dead_after_tokens=c.dead_after_tokens, seed=seed)
    seed_everything(seed)
    cc = Crosscoder(cfg)
    log = train_crosscoder(cc, store.batches(c.batch_size, seed=seed, columns=columns, split="train"), steps,
                           lr=c.lr, resample_every=c.resample_every)
    cc.eval()
    cc.save(out)
    write_json(out / "log.json", {"log": log, "names": list(names), "layer": store.layer})
    mark_done(out, key, names=list(names))
    return cc


def quality(P: Params, cc: Crosscoder, names: tuple[str, ...], source: tuple[str, ...] | None = None) -> pd.DataFrame:
    """On held-out texts' tokens (never trained on): FVU per model, mean L0, and the fraction of latents that
    fire on none of them ("silent"); beside it the training-time dead fraction. Every held-out token is read once."""
    source = source or names
    acts = ensure_activations(P, source)
    it = ActivationStore(acts).batches(P.crosscoder.batch_size, seed=P.seed + 12345,
                                       columns=[source.index(n) for n in names], split="heldout", epochs=1)
    fvu, l0, fired_L = [], [], torch.zeros(cc.cfg.n_latents, dtype=torch.bool)
    with torch.no_grad():
        for x in it:
            f = cc.encode(x)
            fvu.append(fvu_M(x, cc.decode(f)))
            l0.append((f > 0).float().sum(-1).mean())
            fired_L |= (f > 0).any(0)
    fvu_M_ = torch.stack(fvu).mean(0)
    dead = (cc.tokens_since_fired_L > cc.cfg.dead_after_tokens).float().mean().item()
    silent = 1 - fired_L.float().mean().item()
    return pd.DataFrame([{"model": n, "held-out FVU": float(fvu_M_[i]), "mean L0": float(torch.stack(l0).mean()),
                          "silent on held-out": silent, "dead in training": dead} for i, n in enumerate(names)])


def crosscoder_dir(P: Params, names: tuple[str, ...], tag: str = "") -> Path:
    name = "-".join(names).replace("@", "at")
    if len(name) > 80:  # long trajectories: a readable prefix and a hash
        import hashlib
        name = name[:60] + "-" + hashlib.sha1(name.encode()).hexdigest()[:8]
    return RunDir(P).crosscoder(name + (f"-{tag}" if tag else ""))


def training_log(P: Params, names: tuple[str, ...], tag: str = "") -> list[dict]:
    return read_json(crosscoder_dir(P, names, tag) / "log.json")["log"]


def activation_info(acts: Path) -> dict:
    return ActivationStore(acts).info


def alive(cc: Crosscoder):
    """Latents that fired within the last ``dead_after_tokens`` training tokens."""
    return cc.tokens_since_fired_L <= cc.cfg.dead_after_tokens


def nrn_table(nrn_by_pair: dict, low: float, high: float) -> pd.DataFrame:
    """Counts of base-only / shared / tuned-only latents per pair."""
    return pd.DataFrame({name: latents.nrn_counts(v, low, high) for name, v in nrn_by_pair.items()}).T


def shared_cosines(cc: Crosscoder, names: tuple[str, ...], specific_above: float) -> pd.DataFrame:
    """Mean and quartiles of decoder cosine between each pair of models, over shared alive latents."""
    keep = (latents.owner_L(cc.dec_norms_LM().detach(), specific_above) == -1) & alive(cc)
    rows = []
    W = cc.W_dec_LMD.detach()
    for a in range(len(names)):
        for b in range(a + 1, len(names)):
            cos = latents.decoder_cosine_L(W, a, b)[keep]
            q = torch.quantile(cos, torch.tensor([0.25, 0.5, 0.75])) if cos.numel() else torch.full((3,), float("nan"))
            rows.append({"pair": f"{names[a]}–{names[b]}", "shared latents": int(keep.sum()),
                         "mean cosine": float(cos.mean()) if cos.numel() else float("nan"),
                         "q25": float(q[0]), "median": float(q[1]), "q75": float(q[2])})
    return pd.DataFrame(rows)


def findings(P: Params, cc3: Crosscoder, names: tuple[str, ...], nrn_by_pair: dict,
             owned: pd.DataFrame | None = None) -> str:
    """What the crosscoders show, computed from their decoder norms (never written by hand); ``owned`` is
    :func:`ownership` with the three-model nulls."""
    C = P.crosscoder
    live = alive(cc3)
    own = latents.owner_L(cc3.dec_norms_LM().detach(), C.mas_specific_above)[live]
    counts = ", ".join(f"{n} {int((own == i).sum())}" for i, n in enumerate(names))
    lines = [f"- Three-model crosscoder, {int(live.sum())} alive latents: owned (MAS > {C.mas_specific_above}) by "
             f"{counts}; shared {int((own == -1).sum())}."]
    ex = owned_excess(owned, names) if owned is not None and NOISE_TRIO in owned else None
    if ex is not None:
        lines.append("- Against the three-model nulls (the same crosscoder over three identical copies of the base, "
                     "and over the base with each tuned slot moved as far at random): " +
                     ", ".join(f"{m} owns {r} vs {n} at most in a null ({e:+d})" for m, (r, n, e) in ex.items()) + ".")
    for pair, nrn in nrn_by_pair.items():
        c = latents.nrn_counts(nrn, C.nrn_low, C.nrn_high)
        lines.append(f"- {pair}: {c['tuned-only']} tuned-only (NRN > {C.nrn_high}), {c['base-only']} base-only, "
                     f"{c['shared']} shared; median NRN {float(nrn.median()):.3f}.")
    if NULL_PAIR in nrn_by_pair:
        c = latents.nrn_counts(nrn_by_pair[NULL_PAIR], C.nrn_low, C.nrn_high)
        lines.append(f"- Read every pair against the identical-copy null: {c['tuned-only']} tuned-only and "
                     f"{c['base-only']} base-only latents appear between the base and an exact copy of itself, so a "
                     f"real pair's count at or below these is not evidence of model-specific latents.")
    for m in names[1:]:
        if noise_pair_name(m) in nrn_by_pair and f"base–{m}" in nrn_by_pair:
            real = latents.nrn_counts(nrn_by_pair[f"base–{m}"], C.nrn_low, C.nrn_high)
            null = latents.nrn_counts(nrn_by_pair[noise_pair_name(m)], C.nrn_low, C.nrn_high)
            lines.append(f"- base–{m} against the base moved as far at random: tuned-only {real['tuned-only']} vs "
                         f"{null['tuned-only']}, base-only {real['base-only']} vs {null['base-only']}, median NRN "
                         f"{float(nrn_by_pair[f'base–{m}'].median()):.3f} vs "
                         f"{float(nrn_by_pair[noise_pair_name(m)].median()):.3f}.")
    shared = (latents.owner_L(cc3.dec_norms_LM().detach(), C.mas_specific_above) == -1) & live
    W = cc3.W_dec_LMD.detach()
    cos = {n: float(latents.decoder_cosine_L(W, 0, i)[shared].median()) for i, n in enumerate(names) if i}
    lines.append("- Shared latents' median decoder cosine with the base: " +
                 ", ".join(f"{n} {v:.3f}" for n, v in cos.items()) + ".")
    sft, rl = names[1], names[2]
    n_sft, n_rl = int((own == 1).sum()), int((own == 2).sum())
    if ex is not None:   # read above the nulls, not raw
        n_sft, n_rl = max(ex[sft][2], 0), max(ex[rl][2], 0)
    verdict = ("as in the paper, SFT has more model-specific latents than RL" if n_sft > n_rl else
               "unlike the paper, SFT does not have more model-specific latents than RL" if n_sft < n_rl else
               f"neither {sft} nor {rl} owns more latents at this threshold")
    lines.append(f"- So {verdict}; {'RL' if cos[rl] > cos[sft] else 'SFT'} keeps the base's feature directions "
                 f"more closely ({rl} {cos[rl]:.3f} vs {sft} {cos[sft]:.3f}).")
    return "\n".join(lines)


NULL_PAIR = "base–base copy (null)"


def ensure_null_pair(P: Params, trio: tuple[str, str, str]) -> dict:
    """The identical-model null of the pairwise view: a two-model crosscoder over the base and an exact copy of
    it (the base's activations in both slots, read from the trio's collection), trained like the real pairs.
    Any latent it calls base-only or tuned-only is produced by the method, not by post-training."""
    return {NULL_PAIR: ensure_crosscoder(P, ("base", "base"), steps=P.crosscoder.pair_steps, source=trio,
                                         tag="null-copy")}


def noise_pair_name(tuned: str) -> str:
    return f"base–noise like {tuned} (null)"


def noise_seed(P: Params, tuned: str) -> int:
    """The seed of ``tuned``'s random update: its own per model (stable across processes), so the nulls of two
    tuned models move in independent directions (one seed would make them collinear)."""
    import zlib
    return P.seed + zlib.crc32(tuned.partition("@")[0].encode()) % 100_000


def ensure_noise_model(P: Params, tuned: str) -> Path:
    """The base plus a random update with ``tuned``'s per-tensor norm (:mod:`rlgen_utils.method.perturb`), saved
    once as a model folder (``noise+<tuned>``; keyed by the post-training stage). Checkpoints get theirs from
    :func:`ensure_noise_walk`."""
    from ..method.perturb import norm_matched_noise
    run = RunDir(P)
    out, key = run.model(NOISE_PREFIX + tuned), f"{stage_key(P, 'trained')}-{tuned}-seed{noise_seed(P, tuned)}"
    if is_done(out, key):
        return out
    base, t = loading.load_model(run.model("base"), P.model.dtype), loading.load_model(run.model(tuned), P.model.dtype)
    _save_moved(P, base, norm_matched_noise(_state(base), _state(t), seed=noise_seed(P, tuned)), out)
    mark_done(out, key, tuned=tuned)
    return out


def ensure_noise_walk(P: Params, method: str) -> list[Path]:
    """The random-walk null of one method's checkpoints (``noise+<method>@1 … @N``): per tensor as far from the
    base as each checkpoint and as far from the previous one, in random directions (:func:`rlgen_utils.method.
    perturb.norm_matched_walk`). Checkpoints are loaded one at a time; keyed by the post-training stage."""
    from ..method.perturb import norm_matched_walk
    run = RunDir(P)
    names = [f"{method}@{k}" for k in range(1, P.posttrain.n_checkpoints + 1)]
    outs = [run.model(NOISE_PREFIX + n) for n in names]
    key = f"{stage_key(P, 'trained')}-{method}-walk-seed{noise_seed(P, method)}"
    if all(is_done(o, key) for o in outs):
        return outs
    base = loading.load_model(run.model("base"), P.model.dtype)
    ckpts = (_state(loading.load_model(run.model(n), P.model.dtype)) for n in names)
    for name, out, moved in zip(names, outs, norm_matched_walk(_state(base), ckpts, seed=noise_seed(P, method))):
        _save_moved(P, base, moved, out)
        mark_done(out, key, tuned=name)
    return outs


def _state(model) -> dict[str, torch.Tensor]:
    """A copy of a model's parameters by name (tied weights once): unchanged when the model is overwritten."""
    return {k: v.detach().clone() for k, v in model.named_parameters()}


def _save_moved(P: Params, model, moved: dict[str, torch.Tensor], out: Path) -> None:
    """Save ``model``'s architecture and the base's tokenizer with every parameter set to ``moved``'s."""
    params = dict(model.named_parameters())
    with torch.no_grad():
        for k, v in moved.items():
            params[k].copy_(v)
    loading.save_model(model, loading.load_tokenizer(RunDir(P).model("base")), out)


def noise_trio(trio: tuple[str, ...]) -> tuple[str, ...]:
    """The base and each tuned model's random-update null (``noise+<model>``), in the trio's slots."""
    return ("base", *(NOISE_PREFIX + m for m in trio[1:]))


def ensure_noise_pairs(P: Params, trio: tuple[str, str, str]) -> dict:
    """The random-update null of the pairwise view, per tuned model: a two-model crosscoder over the base and the
    base moved as far as that model, at random (read from the null trio's collection), trained like the real
    pairs. Latents it calls tuned-only come from *any* change of that size, not from what post-training learnt."""
    for m in trio[1:]:
        ensure_noise_model(P, m)
    return {noise_pair_name(m): ensure_crosscoder(P, ("base", NOISE_PREFIX + m), steps=P.crosscoder.pair_steps,
                                                  source=noise_trio(trio)) for m in trio[1:]}


COPY_TRIO, NOISE_TRIO = "identical copies (null)", "random updates (null)"
"""Labels of the three-model view's nulls (:func:`ensure_null_trios`)."""


def ensure_null_trios(P: Params, trio: tuple[str, str, str]) -> dict[str, Crosscoder]:
    """The three-model view's nulls, trained exactly like the real three-model crosscoder: the base's activations
    in every slot (read from the trio's collection), and the base with each tuned model's slot holding the base
    moved as far as that model at random. What they own is what the method, or any change of that size, makes."""
    for m in trio[1:]:
        ensure_noise_model(P, m)
    return {COPY_TRIO: ensure_crosscoder(P, ("base",) * len(trio), source=trio, tag="null-copy"),
            NOISE_TRIO: ensure_crosscoder(P, noise_trio(trio))}


def ensure_pairs(P: Params, trio: tuple[str, str, str]) -> dict:
    """The two-model (base vs tuned) crosscoders of the paper's pairwise view, read from the trio's activations."""
    return {f"base–{m}": ensure_crosscoder(P, ("base", m), steps=P.crosscoder.pair_steps, source=trio)
            for m in trio[1:]}


def nrn_by_pair(pairs: dict) -> dict:
    """NRN of every alive latent of each two-model crosscoder."""
    return {name: latents.nrn_L(cc.dec_norms_LM().detach())[alive(cc)] for name, cc in pairs.items()}


def mas(cc: Crosscoder) -> torch.Tensor:
    """``[L, M]`` MAS of every latent (each model's share of the latent's decoder norm)."""
    return latents.mas_LM(cc.dec_norms_LM().detach())


def ownership(P: Params, cc: Crosscoder, names: tuple[str, ...], nulls: dict[str, Crosscoder] | None = None
              ) -> pd.DataFrame:
    """How many alive latents each model owns (MAS above ``crosscoder.mas_specific_above``), and how many are
    shared; with ``nulls`` (:func:`ensure_null_trios`) a column per null, its slots named after the real models."""
    ccs = {"crosscoder": cc, **(nulls or {})}
    cols = {label: latents.ownership_counts(c.dec_norms_LM().detach(), list(names), P.crosscoder.mas_specific_above,
                                            alive=alive(c)).set_index("owner")["latents"] for label, c in ccs.items()}
    table = pd.DataFrame(cols)
    return table.rename_axis("owner").reset_index() if nulls else table["crosscoder"].rename("latents").reset_index()


def tokenizer(P: Params, name: str = "base"):
    """The tokenizer of a named model (for the inspector's contexts)."""
    return loading.load_tokenizer(RunDir(P).model(name))


def latent_scaling(P: Params, cc: Crosscoder, names: tuple[str, ...], n_batches: int = 16,
                   nu_max: float = 0.3) -> pd.DataFrame:
    """Per tuned model: alive latents it owns by decoder norm (MAS), those specific to it by latent scaling
    against the base (both β ratios below ``nu_max``; :mod:`rlgen_utils.method.latent_scaling`), and both.
    β is fitted on ``n_batches`` batches of held-out texts' tokens (not trained on)."""
    from ..method.latent_scaling import betas_LM
    store = ActivationStore(ensure_activations(P, names))
    live = alive(cc)
    owner = latents.owner_L(cc.dec_norms_LM().detach(), P.crosscoder.mas_specific_above)
    it = store.batches(P.crosscoder.batch_size, seed=P.seed + 777, split="heldout")
    xs = [next(it) for _ in range(n_batches)]  # read once, fitted for every tuned model
    rows = []
    for t, name in enumerate(names[1:], start=1):
        scaling = betas_LM(cc, xs, tuned=t)
        by_scaling, by_norm = scaling.specific_L(0, t, nu_max) & live, (owner == t) & live
        nu = scaling.nu_L(0, t)[live & (scaling.n_fired_L > 0)]
        rows.append({"tuned model": name, "alive latents": int(live.sum()), "owned by MAS": int(by_norm.sum()),
                     f"specific by latent scaling (ν < {nu_max})": int(by_scaling.sum()),
                     "both": int((by_norm & by_scaling).sum()),
                     "median ν (recon.)": float(nu.nanmedian()) if nu.numel() else float("nan")})
    return pd.DataFrame(rows)


def export_slices(P: Params, cc: Crosscoder, names: tuple[str, ...]) -> pd.DataFrame:
    """Every model's slice of the crosscoder over ``names`` as a sae-lens SAE on the model's raw residual stream
    (:mod:`rlgen_utils.method.sae_export`), under ``crosscoders/<names>/sae_lens/<model>/``. Written once per
    trained crosscoder (retraining replaces the crosscoder's folder, exports included)."""
    from ..method.sae_export import export_sae_lens
    store = ActivationStore(ensure_activations(P, names))
    rows = []
    for m, name in enumerate(names):
        out = crosscoder_dir(P, names) / "sae_lens" / name.replace("@", "at")
        if not (out / "cfg.json").is_file():
            export_sae_lens(cc, m, float(store.scale_M[m]), out, hook_name=f"blocks.{store.layer}.hook_resid_post",
                            model_name=str(RunDir(P).model(name)))
        rows.append({"model": name, "sae-lens folder": str(out), "hook": f"blocks.{store.layer}.hook_resid_post"})
    return pd.DataFrame(rows)


def detection_power(P: Params, rates: tuple[float, ...] = (0.001, 0.003, 0.01, 0.03), per_rate: int = 8,
                    seeds: tuple[int, ...] = (0, 1), coef_rel: float = 0.25) -> pd.DataFrame:
    """Recall of planted tuned-only features by a base–tuned pair crosscoder trained as notebook 03 trains its pairs
    (``pair_steps``, ``n_latents``, ``k``, resampling), per planting rate (:mod:`rlgen_utils.method.detection`).
    The pair is the base's own activations twice, features planted into the second copy with coefficient
    ``coef_rel · √d_model · U(0.5, 1.5)`` (activations are scaled to mean squared norm d_model). Not cached."""
    from ..method import detection
    c = P.crosscoder
    store = ActivationStore(ensure_activations(P, ("base", c.sft_method, c.rl_method)))
    rows = []
    for seed in seeds:
        planting = detection.Planting.random(list(rates), per_rate, store.d_model, coef_rel * store.d_model ** 0.5,
                                             seed=1000 + seed)
        cfg = CrosscoderConfig(n_models=2, d_model=store.d_model, n_latents=c.n_latents, sparsity=c.sparsity, k=c.k,
                               l1_coeff=c.l1_coeff, dead_after_tokens=c.dead_after_tokens, seed=seed)
        seed_everything(seed)
        cc = Crosscoder(cfg)
        base = store.batches(c.batch_size, seed=seed, columns=[0], split="train")
        train_crosscoder(cc, detection.planted_batches(base, planting, seed), c.pair_steps, lr=c.lr,
                         resample_every=c.resample_every)
        found = detection.recovered_F(cc.W_dec_LMD, alive(cc), planting, nrn_high=c.nrn_high)
        rows += [{"seed": seed, "rate": r, "found": f, "planted": n}
                 for r, (f, n) in detection.recall_by_rate(found, planting).items()]
    df = pd.DataFrame(rows).groupby("rate")[["found", "planted"]].sum().reset_index()
    return df.assign(recall=df.found / df.planted)


def verdicts(P: Params, names: tuple[str, ...], nrn_by_pair: dict, owned: pd.DataFrame | None = None
             ) -> list[Verdict]:
    """The paper's ownership claim — SFT adds many model-specific latents, RL few — decided from the pair
    crosscoders' tuned-only counts, each minus the larger of its two nulls (the identical copy and the base moved
    as far at random); "none" is read against the detection limit of ``docs/detection_power.md``. With ``owned``
    (:func:`ownership` with the three-model nulls) the same claim read from the three-model crosscoder's MAS."""
    C = P.crosscoder
    sft, rl = names[1], names[2]
    tuned = {k: int(latents.nrn_counts(v, C.nrn_low, C.nrn_high)["tuned-only"]) for k, v in nrn_by_pair.items()}
    copy = tuned.get(NULL_PAIR, 0)
    excess = {m: tuned[f"base–{m}"] - max(copy, tuned.get(noise_pair_name(m), 0)) for m in (sft, rl)}
    nulls = ", ".join(f"random update like {m} {tuned[noise_pair_name(m)]}" for m in (sft, rl)
                      if noise_pair_name(m) in tuned)
    return [Verdict(
        claim=f"{sft} adds more model-specific latents than {rl}", notebook="03_crosscoder",
        estimate=float(excess[sft] - excess[rl]), interval=None,
        null=f"tuned-only latents of the identical copy {copy}" + (f", {nulls}" if nulls else ""),
        decision=decide(excess[sft] > 0 and excess[sft] > max(excess[rl], 0), excess[rl] > max(excess[sft], 0), True),
        limit=detection_limit(power_file(P)),
        detail=f"tuned-only (NRN > {C.nrn_high}) {sft} {tuned[f'base–{sft}']}, {rl} {tuned[f'base–{rl}']}; above "
               f"the larger null {sft} {excess[sft]:+d}, {rl} {excess[rl]:+d}"),
        *([] if owned is None or NOISE_TRIO not in owned else [_three_model_verdict(P, names, owned)])]


def owned_excess(owned: pd.DataFrame, names: tuple[str, ...]) -> dict[str, tuple[int, int, int]]:
    """Per tuned model of the three-model view: latents it owns, the most its slot owns in any null, and the
    excess (owned − that null)."""
    t = owned.set_index("owner")
    nulls = [c for c in t.columns if c != "crosscoder"]
    out = {}
    for m in names[1:]:
        real, null = int(t.at[m, "crosscoder"]), max(int(t.at[m, c]) for c in nulls)  # pyright: ignore[reportArgumentType]
        out[m] = (real, null, real - null)
    return out


def _three_model_verdict(P: Params, names: tuple[str, ...], owned: pd.DataFrame) -> Verdict:
    """The ownership claim read from the three-model crosscoder's MAS, each tuned model's count minus the larger
    of what its slot owns in the identical-copy and the random-update three-model nulls."""
    sft, rl = names[1], names[2]
    ex = owned_excess(owned, names)
    (s_real, s_null, s_ex), (r_real, r_null, r_ex) = ex[sft], ex[rl]
    return Verdict(
        claim=f"{sft} owns more latents than {rl} in the three-model crosscoder (MAS)", notebook="03_crosscoder",
        estimate=float(s_ex - r_ex), interval=None,
        null=f"three-model nulls (identical copies, random updates): at most {s_null} in {sft}'s slot, {r_null} in "
             f"{rl}'s",
        decision=decide(s_ex > 0 and s_ex > max(r_ex, 0), r_ex > max(s_ex, 0), True),
        limit=detection_limit(power_file(P)),
        detail=f"owned (MAS > {P.crosscoder.mas_specific_above}) {sft} {s_real}, {rl} {r_real}; above the larger "
               f"null {sft} {s_ex:+d}, {rl} {r_ex:+d}")


def l1_params(P: Params, l1_coeff: float) -> Params:
    """``P`` with the paper's L1 crosscoder at penalty ``l1_coeff`` (same width, steps and corpus)."""
    return P.model_copy(update={"crosscoder": P.crosscoder.model_copy(update={"sparsity": "l1", "l1_coeff": l1_coeff})})


def sparsity_comparison(P: Params, l1_coeffs: tuple[float, ...], trio: tuple[str, str, str] | None = None,
                        nu_max: float = 0.3) -> pd.DataFrame:
    """The paper's L1 crosscoder beside BatchTopK on the same pairs: for each sparsity (BatchTopK at
    ``crosscoder.k``, L1 at every ``l1_coeffs``) and pair (base–SFT, base–RL, base–base copy), held-out FVU of the
    tuned slot, mean L0 and the tuned-only / base-only counts. Where L1 yields tuned-only latents that BatchTopK at
    a matched L0 and FVU does not — and that the identical copy also shows — they are the sparsity artifacts of
    Minder et al. 2025; latent scaling tells (the last column: tuned-only latents whose decoder direction explains
    the base's activations and reconstruction error less than ``nu_max`` times as much as the tuned model's).
    Pair crosscoders are keyed and cached like notebook 03's."""
    C = P.crosscoder
    trio = trio or ("base", C.sft_method, C.rl_method)
    rows = []
    batchtopk = P.model_copy(update={"crosscoder": C.model_copy(update={"sparsity": "batchtopk"})})
    for label, Q in [(f"batchtopk k={C.k}", batchtopk), *[(f"l1 λ={c:g}", l1_params(P, c)) for c in l1_coeffs]]:
        # notebook 03's own pairs when the setting is the params' own; else folders of their own
        tag = "" if Q.crosscoder == C else f"sparsity-{Q.crosscoder.sparsity}-{Q.crosscoder.l1_coeff:g}"
        for pair in (("base", trio[1]), ("base", trio[2]), ("base", "base")):
            copy = pair == ("base", "base")
            cc = ensure_crosscoder(Q, pair, steps=C.pair_steps, source=trio,
                                   tag="-".join(t for t in (tag, "null-copy" if copy else "") if t))
            q = quality(Q, cc, pair, source=trio)
            nrn = latents.nrn_L(cc.dec_norms_LM().detach())
            counts = latents.nrn_counts(nrn[alive(cc)], C.nrn_low, C.nrn_high)
            tuned_only = alive(cc) & (nrn > C.nrn_high)
            rows.append({"sparsity": label, "pair": "base–base copy (null)" if copy else f"base–{pair[1]}",
                         "held-out FVU (tuned slot)": float(q["held-out FVU"].iloc[1]),
                         "mean L0": float(q["mean L0"].iloc[0]), "alive": int(alive(cc).sum()),
                         "tuned-only": int(counts["tuned-only"]), "base-only": int(counts["base-only"]),
                         f"tuned-only confirmed by latent scaling (ν < {nu_max})":
                             int((tuned_only & pair_scaling(Q, cc, pair, trio).specific_L(0, 1, nu_max)).sum())})
    return pd.DataFrame(rows)


def pair_scaling(P: Params, cc: Crosscoder, pair: tuple[str, str], source: tuple[str, ...], n_batches: int = 16):
    """Latent scaling (:mod:`rlgen_utils.method.latent_scaling`) of a pair crosscoder, the tuned slot's decoder
    directions fitted on ``n_batches`` batches of held-out tokens of the pair's columns in ``source``."""
    from ..method.latent_scaling import betas_LM
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


def ensure_sae_baseline(P: Params, trio: tuple[str, str, str] | None = None) -> Path:
    """The standard per-model baseline beside the crosscoder: a sae-lens BatchTopK SAE trained with sae-lens's own
    trainer on the base's activations of the corpus's training texts (``crosscoder.n_latents`` wide, ``k``,
    ``steps``, ``lr``, batch size as the crosscoder's), saved as a sae-lens inference model (JumpReLU with the
    learnt threshold) that ``sae_lens.SAE.load_from_disk`` opens. Keyed by the crosscoder section and the
    activations."""
    from sae_lens import BatchTopKTrainingSAE, BatchTopKTrainingSAEConfig, LoggingConfig, SAETrainer
    from sae_lens.config import SAETrainerConfig

    from ..run.artifacts import atomic_dir
    C = P.crosscoder
    trio = trio or ("base", C.sft_method, C.rl_method)
    acts = ensure_activations(P, trio)
    out, key = crosscoder_dir(P, ("base",), SAE_BASELINE), f"{stage_key(P, 'crosscoder')}-{acts.name}-{SAE_BASELINE}"
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


def sae_baseline(P: Params, trio: tuple[str, str, str] | None = None) -> pd.DataFrame:
    """How far each model moved off the base's own dictionary: held-out FVU and mean L0 of the base's sae-lens SAE
    (:func:`ensure_sae_baseline`) on every model's activations of the same held-out tokens (every token read
    once). A tuned model whose FVU rises above the base's uses directions the base's dictionary lacks."""
    from sae_lens import SAE
    C = P.crosscoder
    trio = trio or ("base", C.sft_method, C.rl_method)
    sae = SAE.load_from_disk(str(ensure_sae_baseline(P, trio)))
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
