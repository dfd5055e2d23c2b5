"""Null models of notebooks 03 and 04: what the crosscoder instruments report when post-training taught nothing.

Two kinds, each trained exactly like the real crosscoders: **identical copies** (the base's activations in every
slot) and **random updates** (the base moved per tensor as far as a tuned model, in a random direction:
``noise+<model>`` model folders, :mod:`rlgen_utils.method.perturb`); for notebook 04 a **random walk** that keeps each
checkpoint's distance from the base and its step from the previous checkpoint, and a **fixed direction** that keeps
each checkpoint's distance and points every checkpoint at the method's final model (``line+<method>@<k>``). A count
at or below its null is not evidence of anything post-training did.
"""
from __future__ import annotations

import zlib
from pathlib import Path

import torch

from ..method.crosscoder import Crosscoder
from ..method.perturb import fixed_direction_path, norm_matched_noise, norm_matched_walk
from ..models import loading
from ..run.artifacts import is_done, mark_done
from ..run.config import Params
from ..run.keys import line_path_key, noise_model_key, noise_walk_key
from ..run.modelid import BASE, ModelId, checkpoint_ids, ids
from ..run.rundir import RunDir
from .crosscoder import PairKey, ensure_crosscoder

NULL_PAIR = PairKey(BASE, "copy")


def ensure_null_pair(P: Params, trio: tuple[ModelId, ModelId, ModelId]) -> dict:
    """The identical-model null of the pairwise view: a two-model crosscoder over the base and an exact copy of
    it (the base's activations in both slots, read from the trio's collection), trained like the real pairs.
    Any latent it calls base-only or tuned-only is produced by the method, not by post-training."""
    return {NULL_PAIR: ensure_crosscoder(P, (BASE, BASE), steps=P.crosscoder.pair_steps, source=trio,
                                         tag="null-copy")}


def noise_pair(tuned: ModelId | str) -> PairKey:
    """The random-update null pair of ``tuned``."""
    return PairKey(ModelId.parse(tuned), "noise")


def noise_seed(P: Params, tuned: ModelId | str) -> int:
    """The seed of ``tuned``'s random update: its own per model (stable across processes), so the nulls of two
    tuned models move in independent directions (one seed would make them collinear)."""
    return P.seed + zlib.crc32(ModelId.parse(tuned).method.encode()) % 100_000


def ensure_noise_model(P: Params, tuned: ModelId | str) -> Path:
    """The base plus a random update with ``tuned``'s per-tensor norm (:mod:`rlgen_utils.method.perturb`), saved
    once as a model folder (``noise+<tuned>``; keyed by the post-training stage). Checkpoints get theirs from
    :func:`ensure_noise_walk`."""
    run, tuned = RunDir(P), ModelId.parse(tuned)
    out, key = run.model(tuned.noise), noise_model_key(P, tuned, noise_seed(P, tuned))
    if is_done(out, key):
        return out
    base, t = loading.load_model(run.model(BASE), P.model.dtype), loading.load_model(run.model(tuned), P.model.dtype)
    _save_moved(P, base, norm_matched_noise(_state(base), _state(t), seed=noise_seed(P, tuned)), out)
    mark_done(out, key, tuned=tuned)
    return out


def ensure_noise_walk(P: Params, method: str) -> list[Path]:
    """The random-walk null of one method's checkpoints (``noise+<method>@1 … @N``): per tensor as far from the
    base as each checkpoint and as far from the previous one, in random directions (:func:`rlgen_utils.method.
    perturb.norm_matched_walk`). Checkpoints are loaded one at a time; keyed by the post-training stage."""
    run = RunDir(P)
    names = checkpoint_ids(method, P.posttrain.n_checkpoints)
    outs = [run.model(n.noise) for n in names]
    key = noise_walk_key(P, method, noise_seed(P, method))
    if all(is_done(o, key) for o in outs):
        return outs
    base = loading.load_model(run.model(BASE), P.model.dtype)
    ckpts = (_state(loading.load_model(run.model(n), P.model.dtype)) for n in names)
    for name, out, moved in zip(names, outs, norm_matched_walk(_state(base), ckpts, seed=noise_seed(P, method))):
        _save_moved(P, base, moved, out)
        mark_done(out, key, tuned=name)
    return outs


def ensure_line_path(P: Params, method: str) -> list[Path]:
    """The fixed-direction null of one method's checkpoints (``line+<method>@1 … @N``): per tensor the base moved
    straight towards the final checkpoint, as far as each checkpoint is from the base (:func:`rlgen_utils.method.
    perturb.fixed_direction_path`; its last slot equals the final model). Keyed by the post-training stage."""
    run = RunDir(P)
    names = checkpoint_ids(method, P.posttrain.n_checkpoints)
    outs, key = [run.model(n.line) for n in names], line_path_key(P, method)
    if all(is_done(o, key) for o in outs):
        return outs
    base = loading.load_model(run.model(BASE), P.model.dtype)
    final = _state(loading.load_model(run.model(names[-1]), P.model.dtype))
    ckpts = (_state(loading.load_model(run.model(n), P.model.dtype)) for n in names)
    for name, out, moved in zip(names, outs, fixed_direction_path(_state(base), ckpts, final)):
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
    loading.save_model(model, loading.load_tokenizer(RunDir(P).model(BASE)), out)


def noise_trio(trio: tuple[ModelId, ...]) -> tuple[ModelId, ...]:
    """The base and each tuned model's random-update null (``noise+<model>``), in the trio's slots."""
    return (BASE, *(m.noise for m in ids(trio)[1:]))


def ensure_noise_pairs(P: Params, trio: tuple[ModelId, ModelId, ModelId]) -> dict:
    """The random-update null of the pairwise view, per tuned model: a two-model crosscoder over the base and the
    base moved as far as that model, at random (read from the null trio's collection), trained like the real
    pairs. Latents it calls tuned-only come from *any* change of that size, not from what post-training learnt."""
    tuned = ids(trio)[1:]
    for m in tuned:
        ensure_noise_model(P, m)
    return {noise_pair(m): ensure_crosscoder(P, (BASE, m.noise), steps=P.crosscoder.pair_steps,
                                                  source=noise_trio(trio)) for m in tuned}


COPY_TRIO, NOISE_TRIO = "identical copies (null)", "random updates (null)"
"""Labels of the three-model view's nulls (:func:`ensure_null_trios`)."""


def ensure_null_trios(P: Params, trio: tuple[ModelId, ModelId, ModelId]) -> dict[str, Crosscoder]:
    """The three-model view's nulls, trained exactly like the real three-model crosscoder: the base's activations
    in every slot (read from the trio's collection), and the base with each tuned model's slot holding the base
    moved as far as that model at random. What they own is what the method, or any change of that size, makes."""
    for m in trio[1:]:
        ensure_noise_model(P, m)
    return {COPY_TRIO: ensure_crosscoder(P, (BASE,) * len(trio), source=trio, tag="null-copy"),
            NOISE_TRIO: ensure_crosscoder(P, noise_trio(trio))}
