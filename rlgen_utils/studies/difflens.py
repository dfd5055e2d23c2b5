"""Notebook 03: the activation difference lens beside the crosscoders (:mod:`rlgen_utils.method.diff_lens`).

For each tuned model of the trio and for its random-update null (the base moved as far at random, per tensor;
:func:`nulls.ensure_noise_model`), the mean residual-stream difference from the base at the crosscoder's layer on
the first ``crosscoder.lens_positions`` tokens of ``crosscoder.lens_texts`` texts unrelated to the in-domain
task (:meth:`World.unrelated_texts`): its size against the stream, the tokens the logit lens reads in it, and what
adding it to the base does to the base's in-domain answers (``crosscoder.lens_steer`` factors). A fine-tune whose
difference is no larger than its null's, and whose steering moves nothing, left no trace this lens can read.
"""
from __future__ import annotations

import pandas as pd
import torch

from ..method import activations, diff_lens
from ..models import generation, loading
from ..run.artifacts import read_json, write_json
from ..run.config import Params
from ..run.keys import lens_key
from ..run.modelid import ModelId
from ..run.progress import progress
from ..run.rundir import RunDir
from ..world import suite
from . import crosscoder, nulls


def _acts(P: Params, path, texts: list[str], layer: int) -> torch.Tensor:
    tok, model = loading.load_tokenizer(path), loading.load_model(path, P.model.dtype)
    lm = activations.wrap(model, tok)
    return diff_lens.first_positions(lm, tok, texts, activations.decoder_layers_path(model), layer,
                                     P.crosscoder.lens_positions, P.eval.batch_size)


def ensure_lens(P: Params, trio: tuple[ModelId, ...]) -> dict:
    """Per tuned model of ``trio`` (base first) and its random-update null: the lens's numbers (cached JSON)."""
    run, C = RunDir(P), P.crosscoder
    key = lens_key(P, trio, P.train_seeds[0])
    path = run.crosscoder("difflens") / "lens.json"
    if path.is_file() and read_json(path)["key"] == key:
        return read_json(path)["models"]
    world = suite.world(P)
    texts = world.unrelated_texts(C.lens_texts)
    base_path = run.model(trio[0])
    tok, base = loading.load_tokenizer(base_path), loading.load_model(base_path, P.model.dtype)
    layer = crosscoder.layer_of(P, base)
    a_base = _acts(P, base_path, texts, layer)
    fam = world.in_domain_eval()
    examples = list(fam.examples)[:P.interventions.n_eval]
    lm, layers = activations.wrap(base, tok), activations.decoder_layers_path(base)
    base_acc = generation.correctness(generation.generate(base, tok, [e.prompt for e in examples],
                                                          P.eval.max_new_tokens, P.eval.batch_size), examples, fam.verify)
    out = {}
    for name in progress(list(trio[1:]), desc="difference lens"):
        for label, model_path in ((str(name), run.model(name)), (f"noise+{name}", nulls.ensure_noise_model(P, name))):
            a = _acts(P, model_path, texts, layer)
            diff_KD = diff_lens.mean_difference_KD(a_base, a)
            logits = diff_lens.logit_lens_KV(base, diff_KD.mean(0, keepdim=True))[0]
            steered = {}
            for alpha in C.lens_steer:
                comps = diff_lens.steer(lm, tok, [e.prompt for e in examples], alpha * diff_KD.mean(0), layers,
                                        layer, P.eval.max_new_tokens, P.eval.batch_size)
                steered[f"{alpha:g}"] = sum(generation.correctness(comps, examples, fam.verify)) / len(examples)
            out[label] = {"relative_norm_K": diff_lens.relative_norm_K(diff_KD, a_base).tolist(),
                          "top_tokens": diff_lens.top_tokens(logits, tok, 8), "steered_accuracy": steered,
                          "mean_D": diff_KD.mean(0).tolist()}
    out["_base"] = {"in_domain_accuracy": sum(base_acc) / len(examples), "n_texts": int(a_base.shape[0]),
                    "n_prompts": len(examples), "layer": layer}
    write_json(path, {"key": key, "models": out})
    return out


def lens_table(lens: dict) -> pd.DataFrame:
    """One row per model: the difference's size against the stream (mean over positions), against its null's,
    the direction's cosine with the null's, the tokens the logit lens reads, and the base's in-domain accuracy
    when the difference is added (per factor)."""
    base = lens["_base"]
    rows = []
    for label, r in lens.items():
        if label.startswith("_"):
            continue
        tuned = label.removeprefix("noise+")
        null = lens.get(f"noise+{tuned}")
        row = {"model": label, "relative_norm": sum(r["relative_norm_K"]) / len(r["relative_norm_K"])}
        if null is not None and label == tuned:
            row["null_relative_norm"] = sum(null["relative_norm_K"]) / len(null["relative_norm_K"])
            row["cosine_with_null"] = float(torch.cosine_similarity(torch.tensor(r["mean_D"]),
                                                                    torch.tensor(null["mean_D"]), dim=0))
        row["logit_lens_tokens"] = " ".join(repr(t) for t, _ in r["top_tokens"])
        row["base_in_domain"] = base["in_domain_accuracy"]
        row |= {f"steered_x{a}": v for a, v in r["steered_accuracy"].items()}
        rows.append(row)
    return pd.DataFrame(rows)
