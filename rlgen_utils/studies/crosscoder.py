"""Stages and tables of notebook 03: the corpus, activations of several models on it, crosscoders over them, and
what the crosscoders' decoders say (NRN, MAS, latent scaling, decoder cosines, quality on held-out tokens). The nulls
are :mod:`rlgen_utils.studies.nulls`, the instruments' own checks :mod:`rlgen_utils.studies.baselines`, the findings
and verdicts :mod:`rlgen_utils.studies.crosscoder_claims`.

Run-folder layout::

    acts/<key>-<models>-ts<training seed>/shard-*.safetensors, index.json, norm.json, DONE.json
    crosscoders/<models>[-<tag>]/crosscoder.safetensors, config.json, log.json, DONE.json (key inside)

Models are :class:`~rlgen_utils.run.modelid.ModelId` values (``base``, a post-training method's final checkpoint
or ``<method>@<k>``), post-trained with the first training seed unless a ``train_seed`` is given; stages also take
their names as text and read them with :func:`~rlgen_utils.run.modelid.ids`.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import pandas as pd
import torch

from ..method import activations, latents
from ..method.activations import ActivationStore
from ..method.crosscoder import TRAINER_VERSION, Crosscoder, CrosscoderConfig, fvu_M
from ..method.crosscoder import train as train_crosscoder
from ..method.latent_scaling import betas_LM
from ..method.sae_export import export_sae_lens
from ..models import generation, loading
from ..run import launch
from ..run.artifacts import is_done, mark_done, read_json, write_json
from ..run.config import Params
from ..run.keys import activations_key, columns_key, crosscoder_key, stage_key
from ..run.modelid import BASE, ModelId, ids, slug
from ..run.rundir import RunDir
from ..run.session import seed_everything
from ..world import suite

if TYPE_CHECKING:
    from ..run.types import Model


@dataclass(frozen=True)
class PairKey:
    """One two-model crosscoder of the pairwise view: the base against ``tuned``, or a null — ``"copy"`` (the base
    against an exact copy of itself) or ``"noise"`` (against the base moved as far as ``tuned``, at random). Dicts
    of pairs are keyed by it; ``str`` is the label tables, figures and prose show."""
    tuned: ModelId
    null: Literal["", "copy", "noise"] = ""

    def __str__(self) -> str:
        if self.null == "copy":
            return "base–base copy (null)"
        return f"base–noise like {self.tuned} (null)" if self.null == "noise" else f"base–{self.tuned}"


def trio(P: Params) -> tuple[ModelId, ModelId, ModelId]:
    """The three models of Study A: the base, the SFT and the RL method (``crosscoder.sft_method / rl_method``)."""
    return (BASE, ModelId(P.crosscoder.sft_method), ModelId(P.crosscoder.rl_method))


def layer_of(P: Params, model: Model) -> int:
    return P.crosscoder.layer if P.crosscoder.layer is not None else activations.middle_layer(model)


def corpus_models(P: Params) -> tuple[ModelId, ...]:
    """The models whose generations make a ``generations`` corpus: Study A's trio, those these params train."""
    return tuple(m for m in trio(P) if m == BASE or m.method in P.posttrain.methods)


def corpus_texts(P: Params, train_seed: int | None = None, n_texts: int | None = None) -> list[str]:
    """The texts every activation collection of the run reads (its first ``n_texts`` when given).

    ``crosscoder.corpus: gold`` — the world's corpus (:meth:`~rlgen_utils.world.suite.World.corpus`): in-domain
    gold solutions and the general mixture. ``generations`` — the same corpus with each in-domain prompt completed
    greedily by one of :func:`corpus_models` in turn (prompt *i* by model *i* mod 3), so each model reads its own
    answers and the others' where a gold corpus shows none of them; generated once per training seed
    (``corpus/generations-ts<seed>.json``, keyed like the activations) and read by every collection and null."""
    world, ts = suite.world(P), P.train_seeds[0] if train_seed is None else train_seed
    if P.crosscoder.corpus == "gold":
        return world.corpus(n_texts)
    path, key = RunDir(P).path / "corpus" / f"generations-ts{ts}.json", stage_key(P, "activations")
    done = read_json(path) if path.is_file() else None
    if done is None or done["key"] != key:
        problems, names = world.corpus_in_domain(), corpus_models(P)
        texts = [e.text for e in problems]
        for j, name in enumerate(names):
            folder = RunDir(P).model(name, ts)
            model, tok = loading.load_model(folder, P.model.dtype), loading.load_tokenizer(folder)
            idx = list(range(j, len(problems), len(names)))
            got = generation.generate(model, tok, [problems[i].prompt for i in idx], P.eval.max_new_tokens,
                                      P.eval.batch_size, show_progress=True)
            for i, completion in zip(idx, got):
                texts[i] = problems[i].prompt + completion
        done = {"key": key, "models": list(names), "train_seed": ts, "texts": texts}
        if launch.is_main():
            write_json(path, done)
    return world.corpus(n_texts, in_domain=done["texts"])


def ensure_activations(P: Params, names: tuple[ModelId, ...], train_seed: int | None = None,
                       n_texts: int | None = None) -> Path:
    """Activations of the named models (post-trained with ``train_seed``) on the corpus, or on its first
    ``n_texts`` texts (resumable, keyed)."""
    names, ts, n_texts = ids(names), P.train_seeds[0] if train_seed is None else train_seed, _prefix(P, n_texts)
    key = activations_key(P, names, ts, n_texts)
    out = RunDir(P).acts(key)
    for n in names:   # every name checked before anything is resolved or loaded
        RunDir(P).check_model(n)
    paths = [RunDir(P).model(n, ts) for n in names]
    if is_done(out, key):
        return out
    texts = corpus_texts(P, ts, n_texts)   # a generations corpus is written here, before any rank reads it
    if launch.should_launch(P):   # the shards dealt over compute.processes ranks
        launch.run_stage(P, ["activations", "--names", ",".join(names), "--train-seed", str(ts),
                             *(["--n-texts", str(n_texts)] if n_texts else [])])
        if not is_done(out, key):
            raise RuntimeError(f"activations of {names}: the launch ended without them")
        return out
    loaded = [loading.load_model(p, P.model.dtype) for p in paths]
    tok = loading.load_tokenizer(paths[0])
    c = P.crosscoder
    info = activations.collect(loaded, tok, texts, layer_of(P, loaded[0]), out,
                               batch_size=c.collect_batch_size, shard_tokens=c.shard_tokens, max_len=c.max_len)
    if launch.is_main():
        mark_done(out, key, names=list(names), train_seed=ts, layer=layer_of(P, loaded[0]), **info)
    launch.barrier()
    return out


def _prefix(P: Params, n_texts: int | None) -> int | None:
    """A corpus prefix of ``n_texts`` texts, or ``None`` for the whole corpus (one key however it is asked for)."""
    return None if n_texts is None or n_texts >= P.crosscoder.n_texts else n_texts


def crosscoder_config(P: Params, n_models: int, d_model: int, n_latents: int | None = None, seed: int | None = None,
                      sparsity: str | None = None) -> CrosscoderConfig:
    """The one place a :class:`~rlgen_utils.method.crosscoder.CrosscoderConfig` is built from params: the crosscoder
    section's sparsity, k, L1 penalty and dead-latent window, with width, seed and sparsity overridable."""
    c = P.crosscoder
    return CrosscoderConfig(n_models=n_models, d_model=d_model, n_latents=n_latents or c.n_latents,
                            sparsity=sparsity or c.sparsity, k=c.k, l1_coeff=c.l1_coeff,
                            dead_after_tokens=c.dead_after_tokens, seed=P.seed if seed is None else seed)


def ensure_crosscoder(P: Params, names: tuple[ModelId, ...], steps: int | None = None,
                      source: tuple[ModelId, ...] | None = None, n_latents: int | None = None,
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
    names = ids(names)
    source = ids(source or names)
    acts = ensure_activations(P, source, train_seed, n_texts)
    columns = [source.index(n) for n in names]
    ts = P.train_seeds[0] if train_seed is None else train_seed
    # keyed by the columns it reads, not by the collection holding them (a column is the same in any collection)
    key = crosscoder_key(P, columns_key(P, names, ts, _prefix(P, n_texts)), names, steps, n_latents, seed,
                         TRAINER_VERSION)
    out = crosscoder_dir(P, names, tag)
    if is_done(out, key):
        return Crosscoder.load(out)
    store = ActivationStore(acts)
    cfg = crosscoder_config(P, len(names), store.d_model, n_latents, seed)
    seed_everything(seed)
    cc = Crosscoder(cfg)
    log = train_crosscoder(cc, store.batches(c.batch_size, seed=seed, columns=columns, split="train"), steps,
                           lr=c.lr, resample_every=c.resample_every)
    cc.eval()
    cc.save(out)
    write_json(out / "log.json", {"log": log, "names": list(names), "layer": store.layer})
    mark_done(out, key, names=list(names))
    return cc


def quality(P: Params, cc: Crosscoder, names: tuple[ModelId, ...], source: tuple[ModelId, ...] | None = None) -> pd.DataFrame:
    """On held-out texts' tokens (never trained on): FVU per model, mean L0, and the fraction of latents that
    fire on none of them ("silent"); beside it the training-time dead fraction. Every held-out token is read once."""
    names = ids(names)
    source = ids(source or names)
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


def crosscoder_dir(P: Params, names: tuple[ModelId, ...], tag: str = "") -> Path:
    name = slug(names)
    if len(name) > 80:  # long trajectories: a readable prefix and a hash
        name = name[:60] + "-" + hashlib.sha1(name.encode()).hexdigest()[:8]
    return RunDir(P).crosscoder(name + (f"-{tag}" if tag else ""))


def training_log(P: Params, names: tuple[ModelId, ...], tag: str = "") -> list[dict]:
    return read_json(crosscoder_dir(P, names, tag) / "log.json")["log"]


def activation_info(acts: Path) -> dict:
    return ActivationStore(acts).info


def nrn_table(nrn_by_pair: dict, low: float, high: float) -> pd.DataFrame:
    """Counts of base-only / shared / tuned-only latents per pair."""
    return pd.DataFrame({str(pair): latents.nrn_counts(v, low, high) for pair, v in nrn_by_pair.items()}).T


def shared_cosines(cc: Crosscoder, names: tuple[ModelId, ...], specific_above: float) -> pd.DataFrame:
    """Mean and quartiles of decoder cosine between each pair of models, over shared alive latents."""
    keep = (latents.owner_L(cc.dec_norms_LM().detach(), specific_above) == -1) & cc.alive_L()
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


def cosine_shift(P: Params, cc: Crosscoder, names: tuple[ModelId, ...], nulls: dict[str, Crosscoder] | None = None
                 ) -> pd.DataFrame:
    """The rotation-sensitive reading: per tuned slot, the median decoder cosine with the base's slot over the
    shared alive latents, in the real three-model crosscoder and in each null (:func:`nulls.ensure_null_trios`:
    identical copies, random updates of the same size). NRN and MAS cannot see a latent the fine-tune rotated
    (its norm is unchanged); a cosine lower than every null's is a rotation beyond what any change of that size
    gives."""
    rows = []
    for label, c in {"crosscoder": cc, **(nulls or {})}.items():
        shared = (latents.owner_L(c.dec_norms_LM().detach(), P.crosscoder.mas_specific_above) == -1) & c.alive_L()
        W = c.W_dec_LMD.detach()
        for i, n in enumerate(names):
            if i:
                cos = latents.decoder_cosine_L(W, 0, i)[shared]
                rows.append({"crosscoder": label, "slot": str(n), "shared latents": int(shared.sum()),
                             "median cosine": float(cos.median()) if cos.numel() else float("nan")})
    return pd.DataFrame(rows).pivot(index="slot", columns="crosscoder", values="median cosine")


def ensure_pairs(P: Params, trio: tuple[ModelId, ModelId, ModelId]) -> dict:
    """The two-model (base vs tuned) crosscoders of the paper's pairwise view, read from the trio's activations."""
    return {PairKey(m): ensure_crosscoder(P, (BASE, m), steps=P.crosscoder.pair_steps, source=trio)
            for m in trio[1:]}


def nrn_by_pair(pairs: dict) -> dict:
    """NRN of every alive latent of each two-model crosscoder."""
    return {name: latents.nrn_L(cc.dec_norms_LM().detach())[cc.alive_L()] for name, cc in pairs.items()}


def mas(cc: Crosscoder) -> torch.Tensor:
    """``[L, M]`` MAS of every latent (each model's share of the latent's decoder norm)."""
    return latents.mas_LM(cc.dec_norms_LM().detach())


def ownership(P: Params, cc: Crosscoder, names: tuple[ModelId, ...], nulls: dict[str, Crosscoder] | None = None
              ) -> pd.DataFrame:
    """How many alive latents each model owns (MAS above ``crosscoder.mas_specific_above``), and how many are
    shared; with ``nulls`` (:func:`ensure_null_trios`) a column per null, its slots named after the real models."""
    ccs = {"crosscoder": cc, **(nulls or {})}
    cols = {label: latents.ownership_counts(c.dec_norms_LM().detach(), list(names), P.crosscoder.mas_specific_above,
                                            alive=c.alive_L()).set_index("owner")["latents"] for label, c in ccs.items()}
    table = pd.DataFrame(cols)
    return table.rename_axis("owner").reset_index() if nulls else table["crosscoder"].rename("latents").reset_index()


def tokenizer(P: Params, name: ModelId | str = BASE):
    """The tokenizer of a named model (for the inspector's contexts)."""
    return loading.load_tokenizer(RunDir(P).model(name))


def latent_scaling(P: Params, cc: Crosscoder, names: tuple[ModelId, ...], n_batches: int = 16,
                   nu_max: float = 0.3) -> pd.DataFrame:
    """Per tuned model: alive latents it owns by decoder norm (MAS), those specific to it by latent scaling
    against the base (both β ratios below ``nu_max``; :mod:`rlgen_utils.method.latent_scaling`), and both.
    β is fitted on ``n_batches`` batches of held-out texts' tokens (not trained on)."""
    store = ActivationStore(ensure_activations(P, names))
    live = cc.alive_L()
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


def export_slices(P: Params, cc: Crosscoder, names: tuple[ModelId, ...]) -> pd.DataFrame:
    """Every model's slice of the crosscoder over ``names`` as a sae-lens SAE on the model's raw residual stream
    (:mod:`rlgen_utils.method.sae_export`), under ``crosscoders/<names>/sae_lens/<model>/``. Written once per
    trained crosscoder (retraining replaces the crosscoder's folder, exports included)."""
    names = ids(names)
    store = ActivationStore(ensure_activations(P, names))
    rows = []
    for m, name in enumerate(names):
        out = crosscoder_dir(P, names) / "sae_lens" / name.slug
        if not (out / "cfg.json").is_file():
            export_sae_lens(cc, m, float(store.scale_M[m]), out, hook_name=f"blocks.{store.layer}.hook_resid_post",
                            model_name=str(RunDir(P).model(name)))
        rows.append({"model": name, "sae-lens folder": str(out), "hook": f"blocks.{store.layer}.hook_resid_post"})
    return pd.DataFrame(rows)
