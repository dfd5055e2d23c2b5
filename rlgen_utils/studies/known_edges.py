"""Known-cause validation of notebook 05: edits of the base whose change to its graph is known (issue 29).

Notebook 05 reads "online RL raises edge intensity and entropy" from first-order edge scores. Before a "no rise"
there means anything, the instrument must see a rise whose cause is known — and must not see one where the known
change is a narrowing, or nothing. No fine-tune is known to spread a model's dependence over more edges (the
behavioural fine-tunes of :mod:`~rlgen_utils.studies.known_causes` act on families notebook 05 does not read), so
the causes here are edits of the base's weights (:mod:`rlgen_utils.method.weight_edits`), each at the doses of
``known_causes.doses`` (factor 1 + dose):

* ``widen`` — the weakest half of the blocks (by the base's own mean outgoing |score|, :func:`sender_strength`)
  write (1 + dose) × their output: edges that carried little carry more, a known widening of the graph;
* ``sharpen`` — the strongest half write (1 + dose) × theirs: a known narrowing;
* ``reparam`` — every block's weights moved by the factor without changing the function: a known nothing.

:func:`byo_params` hands the three edits of one dose to notebook 05, unchanged, as bring-your-own models:
``widen`` in the online-RL slot (``grpo``), ``sharpen`` in the DPO slot (``dpo``) and ``reparam`` in the SFT
slot (``sft``), each paired with the base. Notebook 05's own claim — online RL raises, DPO does not — then reads
"does the instrument tell a known widening from a known narrowing", and every pair's reading
(:func:`rlgen_utils.studies.circuit_claims.pair_readings`) is one validation row: ``widen`` should read "rise",
``sharpen`` and ``reparam`` should not. ``benchmarks/bench_edge_validation.py`` writes
``docs/edge_validation.md``, which notebook 05's verdicts read their power from
(:func:`rlgen_utils.studies.verdicts.edges_demonstrated`).
"""
from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..method import activations, edge_attribution, weight_edits
from ..models import generation, loading
from ..run.artifacts import is_done, mark_done, read_json, write_json
from ..run.config import Params
from ..run.keys import stage_key
from ..run.rundir import RunDir
from ..world import suite
from . import circuits

EDITS = ("widen", "sharpen", "reparam")
SLOTS = {"widen": "grpo", "sharpen": "dpo", "reparam": "sft"}
"""The notebook-05 slot each edit is handed in: widen as online RL, sharpen as DPO, reparam outside both groups."""
EXPECTED = {"widen": "rise", "sharpen": "no rise", "reparam": "no rise"}
"""What each edit should read on a claim that some metrics rise (:func:`circuit_claims.reading`)."""


def _key(P: Params, *parts: object) -> str:
    text = stage_key(P, "base") + P.circuits.model_dump_json() + P.eval.model_dump_json() + "/".join(map(str, parts))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def root(P: Params) -> Path:
    return RunDir(P).path / "known_causes" / "edges"


def sender_strength(P: Params) -> dict[str, float]:
    """Per block of the base's graph (``a0``, ``m0``, …; not the embedding), its mean over questions of the summed
    |zero-ablation score| of the edges it sends, on the first ``circuits.n_samples`` in-domain test questions
    with the base's own greedy answers cut at ``circuits.main_alpha`` (as notebook 05 scores them). Cached as
    ``known_causes/edges/strength.json`` under its key."""
    path, key = root(P) / "strength.json", _key(P, "strength")
    if path.is_file() and read_json(path).get("key") == key:
        return read_json(path)["strength"]
    fam = suite.world(P).eval_families()[suite.world(P).in_domain_family]
    prompts = [e.prompt for e in fam.examples[: P.circuits.n_samples]]
    base = RunDir(P).base()
    model, tok = loading.load_model(base, P.model.dtype), loading.load_tokenizer(base)
    answers = generation.generate(model, tok, prompts, fam.max_new_tokens(tok, P.eval.max_new_tokens),
                                  P.eval.batch_size)
    cut = circuits.t_cut(P.circuits.main_alpha, float(np.mean(circuits.answer_lengths(tok, answers))))
    lm = activations.wrap(model, tok)
    W_KRS = torch.cat([edge_attribution.zero_ablation_scores(lm, clean).float().cpu()
                       for clean, _ in circuits.batches(tok, prompts, answers, cut, P.circuits.batch_size, P.seed)])
    per_S = W_KRS.abs().sum(1).mean(0).tolist()
    g = edge_attribution.graph_of(model)
    strength = {s: float(v) for s, v in zip(g.senders, per_S, strict=True) if s != "emb"}
    write_json(path, {"key": key, "strength": strength, "questions": len(prompts), "t_cut": cut})
    return strength


def plan(strength: dict[str, float], edit: str, dose: float) -> dict[str, float]:
    """Sender → output factor of ``edit`` at ``dose``: the weakest half of the blocks (``widen``) or the strongest
    half (``sharpen``) × (1 + dose), ties broken by name; ``reparam`` scales no output (empty)."""
    if edit not in EDITS:
        raise ValueError(f"edit {edit!r}: expected one of {EDITS}")
    if dose <= 0:
        raise ValueError(f"dose {dose}: must be positive")
    order = sorted(strength, key=lambda s: (strength[s], s))
    half = len(order) // 2
    chosen = {"widen": order[:half], "sharpen": order[len(order) - half:], "reparam": []}[edit]
    return {s: 1.0 + dose for s in chosen}


def folder(P: Params, edit: str, dose: float) -> Path:
    return root(P) / f"{edit}-d{dose:g}"


def ensure_edit(P: Params, edit: str, dose: float) -> Path:
    """Write (or find) the base with ``edit`` at ``dose`` as a model folder (keyed by the base, the circuits and
    evaluation sections that define the strengths, the edit and the dose)."""
    strength = sender_strength(P)
    factors = plan(strength, edit, dose)
    out, key = folder(P, edit, dose), _key(P, edit, dose)
    if is_done(out, key):
        return out
    base = RunDir(P).base()
    model = loading.load_model(base, P.model.dtype)
    if edit == "reparam":
        weight_edits.reparametrise(model, 1.0 + dose)
    else:
        weight_edits.scale_block_outputs(model, factors)
    shutil.rmtree(out, ignore_errors=True)
    loading.save_model(model, loading.load_tokenizer(base), out)
    mark_done(out, key, edit=edit, dose=dose, factors=factors)
    return out


def byo_params(P: Params, dose: float, edited: dict[str, Path]) -> dict:
    """A params mapping that hands the three edits of one dose to notebook 05 as bring-your-own models (each in
    its :data:`SLOTS` slot), every pair from the base, everything else as in ``P`` (one seed, one checkpoint, no
    sweep, no pre-registration)."""
    d = P.model_dump(mode="json")
    d["name"] = f"{P.name}-edges-d{dose:g}"
    d["model"]["name_or_path"] = str(RunDir(P).base().resolve())
    d["model"]["prompt"]["style"] = P.model.prompt_style
    d["pretrain"] = None
    d["posttrain"].update(methods=[SLOTS[e] for e in EDITS], n_checkpoints=1, sft_sweep=[], seeds=None)
    d["models"] = {SLOTS[e]: str(edited[e].resolve()) for e in EDITS}
    d["circuits"].update(pairs=[["base", SLOTS[e]] for e in EDITS], exact_model="base")
    d["eval"]["preregistration"] = None
    d["interventions"]["families"] = None
    return d


def unchanged_share(scores: pd.DataFrame, family: str, method: str) -> float:
    """Share of ``family``'s evaluated questions whose greedy completion by ``method`` (final model) equals the
    base's (notebook 02's scores table): how much the edit changed what the model says."""
    pick = lambda m: scores[(scores.method == m) & scores.final & (scores.family == family)].set_index("sample").completion
    a, b = pick("base"), pick(method)
    common = a.index.intersection(b.index)
    return float((a.loc[common] == b.loc[common]).mean()) if len(common) else float("nan")


def rows(dose: float, readings: list[dict], factors: dict[str, dict[str, float]], same: dict[str, float]) -> list[dict]:
    """The validation rows of one dose from notebook 05's pair readings (``readings``: claim id, claim, the
    pair's after-model, its question count and reading): per edit and claim, what it read, what was expected,
    and whether that is a detection (``widen`` read "rise") or a false positive (``sharpen`` or ``reparam``
    read "rise"). ``factors``: each edit's plan; ``same``: the share of questions whose greedy answer the edit
    left unchanged."""
    edit_of = {v: k for k, v in SLOTS.items()}
    out = []
    for r in readings:
        edit = edit_of.get(r["model_after"])
        if edit is None:
            continue
        rise = r["reading"] == "rise"
        out.append({"edit": edit, "dose": dose, "claim_id": r["claim_id"], "claim": r["claim"], "n": r["n"],
                    "reading": r["reading"], "expected": EXPECTED[edit],
                    "blocks scaled": ", ".join(sorted(factors[edit])) or "none (reparametrised)",
                    "answers unchanged": same[edit],
                    "detected": rise if edit == "widen" else None,
                    "false positive": rise if edit != "widen" else None})
    return out
