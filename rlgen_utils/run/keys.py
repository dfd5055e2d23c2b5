"""Stage keys: which params each stage's artifacts depend on, in one table.

A stage's key is the hash of the params sections it depends on — its own and every upstream stage's — plus the
top-level seed (:meth:`Params.section_hash`). A finished stage whose stored key equals the current one is
skipped; a params change alters exactly the keys of the stages downstream of it, which are recomputed. Sub-keys
listed under ``ignore`` do not change any one artifact: adding a training seed or a method, for example, retrains
nothing that exists.

============== ================================================================ =========================
stage          sections                                                          ignored
============== ================================================================ =========================
base           model, tasks, pretrain
base_eval      + data, eval
trained        model, tasks, pretrain, posttrain, data, eval                     posttrain.methods/seeds/
                                                                                 sft_sweep, eval.prereg…
               (post-training checkpoints *and* their evaluation: the curves
               inside training read the eval section, so both share one key)
activations    trained − eval + the crosscoder's corpus fields                   crosscoder training fields
               (and SFT's grid, which chooses the sft model)
crosscoder     crosscoder (+ the key of the columns it reads, ``columns_key``,
               and the model names, see ``studies.crosscoder``)
circuits       trained + circuits                                                circuits.pairs
interventions  trained + crosscoder + interventions
families       tasks, data, eval (the evaluation suite built in memory)
============== ================================================================ =========================

A model that rlgen did not pretrain adds the content hash of its folders to every key but ``families``
(:func:`model_digest`): models trained elsewhere are identified by what they hold, not by where they lie.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

from .config import CrosscoderCfg, Params
from .modelfiles import folder_digest
from .modelid import ModelId, slug

_UPSTREAM = ("model", "tasks", "pretrain")
_TRAINED = (*_UPSTREAM, "posttrain", "data", "eval")
_AFTER = ("posttrain.methods", "posttrain.seeds", "eval.preregistration")
_LISTS = (*_AFTER, "posttrain.sft_sweep")
# Adding a rate to SFT's grid retrains nothing (each SFT run is keyed by its own rate), but it may change which
# run validation chooses as `sft`: the stages that read `sft` (activations, circuits, interventions) keep the grid
# in their key; notebook 02's scores name the choice itself (studies.evaluate.eval_key).

CORPUS_FIELDS = ("layer", "n_texts", "in_domain_fraction", "corpus", "max_len", "shard_tokens", "collect_batch_size")
"""Crosscoder fields that change the activations collected (the rest only change crosscoder training)."""


@dataclass(frozen=True)
class StageKey:
    sections: tuple[str, ...]
    ignore: tuple[str, ...] = ()


STAGES: dict[str, StageKey] = {
    "base": StageKey(_UPSTREAM),
    "base_eval": StageKey((*_UPSTREAM, "data", "eval"), ("eval.preregistration",)),
    "trained": StageKey(_TRAINED, _LISTS),
    "activations": StageKey((*_UPSTREAM, "posttrain", "data", "crosscoder"),
                            _AFTER + tuple(f"crosscoder.{f}" for f in CrosscoderCfg.model_fields
                                           if f not in CORPUS_FIELDS)),
    "crosscoder": StageKey(("crosscoder",)),
    "circuits": StageKey((*_TRAINED, "circuits"), (*_AFTER, "circuits.pairs")),
    "interventions": StageKey((*_TRAINED, "crosscoder", "interventions"), _AFTER),
    "families": StageKey(("tasks", "data", "eval"), ("eval.preregistration",)),
}


def stage_key(P: Params, stage: str) -> str:
    """The key of ``stage``'s artifacts under params ``P`` (a stage not in :data:`STAGES` is a KeyError). For a
    model that rlgen did not pretrain, the key also covers what the model folders hold (the base's and those of
    methods trained elsewhere): a checkpoint replaced in place changes every key downstream of it."""
    key = _sections_key(P, stage)
    if P.model.is_organism or stage == "families":
        return key
    return hashlib.sha256((key + model_digest(P)).encode()).hexdigest()[:16]


def _sections_key(P: Params, stage: str) -> str:
    """The hash of ``stage``'s params sections alone (no model folder's content)."""
    s = STAGES[stage]
    return P.section_hash(*s.sections, ignore=s.ignore)


def _collection_suffix(names: tuple[ModelId, ...], train_seed: int, n_texts: int | None) -> str:
    return "-" + slug(names) + f"-ts{train_seed}" + (f"-n{n_texts}" if n_texts else "")


def model_digest(P: Params) -> str:
    """Content hash of the base folder and of every folder named under ``models:`` (cached per process)."""
    folders = [P.model.name_or_path] + [f for m in sorted(P.external_checkpoints) for f in P.external_checkpoints[m]]
    return hashlib.sha256("".join(folder_digest(f) for f in folders).encode()).hexdigest()[:16]


def params_hash(P: Params) -> str:
    """Hash of every params value: the provenance every artifact records."""
    return P.section_hash(*type(P).model_fields)


# ------------------------------------------------------------------------------------------ composite keys
# Keys of artifacts that several inputs name besides the params: the models read, the activation collection a
# crosscoder trains on, its width, steps, seed and trainer version, a null's seed. Every one is joined here, so a
# key is never spelled twice (the strings are those of existing run folders: changing one retrains that stage).
def activations_key(P: Params, names: tuple[ModelId, ...], train_seed: int, n_texts: int | None = None) -> str:
    """An activation collection: the models (``@`` spelled ``at``), their training seed and, for a corpus
    prefix, ``n_texts``."""
    return stage_key(P, "activations") + _collection_suffix(names, train_seed, n_texts)


def lens_key(P: Params, names: tuple[ModelId, ...], train_seed: int) -> str:
    """The activation difference lens of ``names`` (the base first): the models, as an activation collection is
    keyed, and the lens's own fields."""
    c = P.crosscoder
    return (stage_key(P, "activations") + "-" + slug(names) + f"-ts{train_seed}-k{c.lens_positions}-n{c.lens_texts}"
            + "-a" + "_".join(f"{a:g}" for a in c.lens_steer))


def columns_key(P: Params, names: tuple[ModelId, ...], train_seed: int, n_texts: int | None = None) -> str:
    """What the named models' activations on the corpus depend on, in whichever collection they are columns: a
    model's column does not depend on the models collected beside it (:func:`rlgen_utils.method.activations.
    collect`). It is :func:`activations_key`'s, with the content of only the folders those models are made of
    (:func:`_folders_of`) where that key has every model folder's; with a corpus of the models' own generations the
    texts depend on every model, so every folder stays in it. Two runs that differ only in models a crosscoder does
    not read give it one key: the known-cause validation's pairs share the base's nulls and the control's pairs."""
    key = _sections_key(P, "activations")
    if not P.model.is_organism:
        folders = (None if P.crosscoder.corpus != "gold" else
                   sorted({f for n in names for f in _folders_of(P, ModelId.parse(n))}))
        digest = model_digest(P) if folders is None else "".join(folder_digest(f) for f in folders)
        key = hashlib.sha256((key + digest).encode()).hexdigest()[:16]
    return key + _collection_suffix(names, train_seed, n_texts)


def _folders_of(P: Params, name: ModelId) -> list[str]:
    """The model folders ``name``'s weights are made of (a run whose base rlgen did not pretrain): the base's; a
    method trained elsewhere, also its checkpoints'; a null, those of the model it moves the base towards; a
    method rlgen trains here (perhaps from one trained elsewhere), every folder the params name."""
    tuned = name.tuned
    external = P.external_checkpoints
    if tuned == "base":
        return [P.model.name_or_path]
    if tuned.method in external:
        return [P.model.name_or_path, *external[tuned.method]]
    return [P.model.name_or_path] + [f for m in sorted(external) for f in external[m]]


def crosscoder_key(P: Params, acts_key: str, names: tuple[ModelId, ...], steps: int, n_latents: int, seed: int,
                   trainer_version: str) -> str:
    """A crosscoder over ``names`` trained on activations keyed ``acts_key`` (:func:`columns_key` of ``names``):
    the crosscoder section's own fields, the models and the training fields. What the models hold is in
    ``acts_key``, so the crosscoder part is the section's hash alone."""
    return f"{_sections_key(P, 'crosscoder')}-{acts_key}-{'-'.join(names)}-{steps}-{n_latents}-{seed}-{trainer_version}"


def sae_baseline_key(P: Params, acts_key: str, tag: str) -> str:
    """The base's sae-lens SAE trained on the base's activations keyed ``acts_key`` (:func:`columns_key` of the
    base alone: it reads the base's column only), as a crosscoder is keyed."""
    return f"{_sections_key(P, 'crosscoder')}-{acts_key}-{tag}"


def noise_model_key(P: Params, tuned: ModelId, seed: int) -> str:
    """A random-update null model of ``tuned`` (keyed by post-training: it is as far from the base as ``tuned``)."""
    return f"{stage_key(P, 'trained')}-{tuned}-seed{seed}"


def noise_walk_key(P: Params, method: str, seed: int) -> str:
    """The random-walk null of ``method``'s checkpoints."""
    return f"{stage_key(P, 'trained')}-{method}-walk-seed{seed}"


def line_path_key(P: Params, method: str) -> str:
    """The fixed-direction null of ``method``'s checkpoints (deterministic: no seed)."""
    return f"{stage_key(P, 'trained')}-{method}-line"
