"""Stages of notebook 05 (Study B): which questions, edge scores per model, metrics, the exact-ablation check.

Run-folder layout::

    circuits/<key>/<before>__<after>/selection.json        the questions and answer lengths of one pair
    circuits/<key>/<before>__<after>/<model>/<score>-a<alpha>.safetensors   W_KRS, sample ids (score: zero, eap,
                                                                           eap_ig, exact)
    circuits/<key>/exact/{first_order,exact}.safetensors   the ablation check of ``circuits.exact_model``

Every folder is written atomically and marked done with the key (models, tasks, training, evaluation and the
circuits section), so a re-run loads instead of recomputing.

**Sample selection** (the paper's): among the in-domain test questions, keep those both models answer correctly
(``circuits.both_correct``), whose answer lengths T (tokens of each model's own greedy answer) satisfy
β ≤ T / T̄ ≤ γ for both models (T̄: that model's mean over the candidates) and whose relative length gap
|T_a − T_b| / max(T_a, T_b) is below δ; then ``n_samples`` of them at random (seeded).

**Loss**: each model's cross-entropy on its own first ``T_cut = max(1, round(α · T̄))`` answer tokens, T̄ the mean
answer length of the pair over the kept questions (the same cut for both models of a pair).

**Corruption** (EAP and EAP-IG): the prompt's tokens in a seeded random order (the first token stays when it is
BOS), the answer tokens unchanged, so clean and corrupted sequences have the same length.
"""
from __future__ import annotations

import random
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch
from safetensors import safe_open
from safetensors.numpy import load_file
from safetensors.torch import save_file

from ..method import activations, circuit_metrics, edge_attribution
from ..models import loading
from ..run import launch
from ..run.artifacts import atomic_dir, is_done, mark_done, provenance, read_json, read_parquet, write_json, write_parquet
from ..run.config import Params
from ..run.keys import stage_key
from ..run.progress import progress
from ..run.rundir import RunDir
from ..world import suite
from . import evaluate

if TYPE_CHECKING:
    from ..run.types import LM, Tokenizer


def circuits_key(P: Params) -> str:
    return stage_key(P, "circuits")


def study_dir(P: Params) -> Path:
    """``circuits/<key>/`` of this run."""
    return RunDir(P).circuits(circuits_key(P))


def pair_name(pair: tuple[str, str]) -> str:
    return f"{pair[0]}__{pair[1]}"


def pair_label(pair: tuple[str, str]) -> str:
    return f"{pair[0]} → {pair[1]}"


# ------------------------------------------------------------------------------------------------ selection
def answer_lengths(tokenizer: Tokenizer, completions: Iterable[str]) -> list[int]:
    return [len(tokenizer(c, add_special_tokens=False).input_ids) for c in completions]


def select(rows_a: pd.DataFrame, rows_b: pd.DataFrame, n: int, beta: float, gamma: float, delta: float, both_correct: bool = True,
           seed: int = 0) -> list[int]:
    """Sample ids kept for a pair. ``rows_*``: DataFrames with ``sample``, ``correct``, ``length`` (one row per
    question, same questions)."""
    a, b = rows_a.set_index("sample"), rows_b.set_index("sample")
    ok = (a["length"] > 0) & (b["length"] > 0)
    if both_correct:
        ok &= a["correct"] & b["correct"]
    cand = ok[ok].index
    if len(cand) == 0:
        return []
    ra, rb = a.loc[cand, "length"], b.loc[cand, "length"]
    ra, rb = ra / ra.mean(), rb / rb.mean()
    gap = (a.loc[cand, "length"] - b.loc[cand, "length"]).abs() / np.maximum(a.loc[cand, "length"],
                                                                            b.loc[cand, "length"])
    keep = ra.between(beta, gamma) & rb.between(beta, gamma) & (gap < delta)
    ids = sorted(int(i) for i in keep[keep].index)
    return sorted(random.Random(seed).sample(ids, min(n, len(ids))))


def _in_domain_rows(P: Params, scores: pd.DataFrame, name: str, tokenizer: Tokenizer) -> pd.DataFrame:
    fam = suite.world(P).in_domain_family
    seed = evaluate.BASE_SEED if name == "base" else P.train_seeds[0]
    df = scores[(scores.method == name) & (scores.seed == seed) & scores.final & (scores.family == fam)]
    df = df.sort_values("sample").reset_index(drop=True)
    return df.assign(length=answer_lengths(tokenizer, df.completion))


@dataclass(frozen=True)
class PairSelection:
    """The questions of one (before, after) pair: sample ids, prompts, each model's own greedy answer and its
    length in tokens, their mean T̄, and how many candidates the filters started from."""
    pair: tuple[str, str]
    samples: list[int]
    prompts: list[str]
    answers: dict[str, list[str]]
    lengths: dict[str, list[int]]
    mean_length: float
    n_candidates: int
    both_correct: bool

    @classmethod
    def from_json(cls, d: dict) -> PairSelection:
        return cls(pair=(d["pair"][0], d["pair"][1]), samples=d["samples"], prompts=d["prompts"], answers=d["answers"],
                   lengths=d["lengths"], mean_length=d["mean_length"], n_candidates=d["n_candidates"],
                   both_correct=d["both_correct"])


def ensure_selection(P: Params, pair: tuple[str, str], scores: pd.DataFrame) -> PairSelection:
    """The pair's questions (ids, prompts, both models' answers and lengths, T̄), cached as JSON."""
    out = study_dir(P) / pair_name(pair)
    path = out / "selection.json"
    if path.is_file():
        return PairSelection.from_json(read_json(path))
    c = P.circuits
    tok = loading.load_tokenizer(RunDir(P).model(pair[0]))
    ra, rb = (_in_domain_rows(P, scores, name, tok) for name in pair)
    ids = select(ra, rb, c.n_samples, c.beta, c.gamma, c.delta, c.both_correct, P.seed)
    ra, rb = ra.set_index("sample").loc[ids], rb.set_index("sample").loc[ids]
    sel = {"pair": list(pair), "samples": ids, "prompts": ra.prompt.tolist(),
           "answers": {pair[0]: ra.completion.tolist(), pair[1]: rb.completion.tolist()},
           "lengths": {pair[0]: ra.length.tolist(), pair[1]: rb.length.tolist()},
           "mean_length": float(np.mean(ra.length.tolist() + rb.length.tolist())) if ids else 0.0,
           "n_candidates": int(len(ra)), "both_correct": c.both_correct}
    write_json(path, {**sel, "provenance": provenance()})
    return PairSelection.from_json(read_json(path))


def t_cut(alpha: float, mean_length: float) -> int:
    return max(1, round(alpha * mean_length))


# ------------------------------------------------------------------------------------------------ batches
def corrupt_prompt(ids: list[int], seed: int, bos_id: int | None) -> list[int]:
    """The prompt's tokens in a seeded random order (a leading BOS stays first)."""
    head = ids[:1] if ids and bos_id is not None and ids[0] == bos_id else []
    body = ids[len(head):]
    rng = random.Random(seed)
    for _ in range(10):  # a permutation that changes nothing is no corruption
        perm = body[:]
        rng.shuffle(perm)
        if perm != body or len(set(body)) < 2:
            break
    return head + perm


def batches(tokenizer: Tokenizer, prompts: list[str], answers: list[str], cut: int, batch_size: int,
            corrupt_seed: int):
    """(clean, corrupted) :class:`edge_attribution.Batch` pairs over the samples, answers cut to ``cut`` tokens."""
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    p_ids = [tokenizer(p).input_ids for p in prompts]
    r_ids = [tokenizer(a, add_special_tokens=False).input_ids[:cut] for a in answers]
    c_ids = [corrupt_prompt(p, corrupt_seed + i, tokenizer.bos_token_id) for i, p in enumerate(p_ids)]
    dev = loading.device()   # where every model is loaded (models/loading.py)
    for i in range(0, len(p_ids), batch_size):
        sl = slice(i, i + batch_size)
        yield (edge_attribution.make_batch(tokenizer, p_ids[sl], r_ids[sl], pad).to(dev),
               edge_attribution.make_batch(tokenizer, c_ids[sl], r_ids[sl], pad).to(dev))


def score_batch(lm: LM, kind: str, clean, corrupt, ig_steps: int) -> torch.Tensor:
    if kind == "zero":
        return edge_attribution.zero_ablation_scores(lm, clean)
    if kind == "eap":
        return edge_attribution.eap_scores(lm, clean, corrupt)
    return edge_attribution.eap_ig_scores(lm, clean, corrupt, ig_steps)


def edge_scores(P: Params, lm: LM, tokenizer: Tokenizer, sel: PairSelection, name: str, kind: str,
                alpha: float) -> torch.Tensor:
    """``[K, R, S]`` scores of one model (wrapped by nnsight as ``lm``) on a pair's questions."""
    return torch.cat(list(edge_score_parts(P, lm, tokenizer, sel, name, kind, alpha, every=True).values()))


def exact_scores(P: Params, model, tokenizer: Tokenizer, sel: PairSelection, name: str, alpha: float) -> torch.Tensor:
    """``[K, R, S]`` exact-ablation scores of one model on a pair's questions: the loss change when each edge is
    really removed (:func:`edge_attribution.exact_ablation_scores`), on the same truncated answers."""
    return torch.cat(list(edge_score_parts(P, model, tokenizer, sel, name, "exact", alpha, every=True).values()))


def edge_score_parts(P: Params, lm, tokenizer: Tokenizer, sel: PairSelection, name: str, kind: str, alpha: float,
                     every: bool = False) -> dict[int, torch.Tensor]:
    """Batch index → that batch's ``[k, R, S]`` scores (``kind`` ``exact``: ``lm`` is the plain model), for this
    rank's batches (:func:`rlgen_utils.run.launch.mine`), or every batch with ``every``. ``loss`` gives the
    ``[k]`` self-entropy losses instead."""
    cut = t_cut(alpha, sel.mean_length)
    out = {}
    for i, (clean, corr) in enumerate(batches(tokenizer, sel.prompts, sel.answers[name], cut, P.circuits.batch_size,
                                              P.seed)):
        if every or launch.mine(i):
            out[i] = (edge_attribution.exact_ablation_scores(lm, clean) if kind == "exact" else
                      edge_attribution.self_entropy_losses(lm, clean) if kind == "loss" else
                      score_batch(lm, kind, clean, corr, P.circuits.ig_steps)).float().cpu()
    return out


def exact_alphas(P: Params) -> list[float]:
    """The α at which every pair also gets exact-ablation scores (``circuits.exact_scores``)."""
    c = P.circuits
    return {"none": [], "main_alpha": [c.main_alpha], "every_alpha": list(c.alphas)}[c.exact_scores]


def score_kinds(P: Params, alpha: float) -> list[str]:
    """Score kinds stored at ``alpha``: the first-order kinds, and ``exact`` where it is computed."""
    return [*P.circuits.scores, *(["exact"] if alpha in exact_alphas(P) else [])]


def sample_losses(P: Params, lm: LM, tokenizer: Tokenizer, sel: PairSelection, name: str, alpha: float) -> torch.Tensor:
    """``[K]`` self-entropy loss of one model on a pair's questions, on the same truncated answers as the scores."""
    return torch.cat(list(edge_score_parts(P, lm, tokenizer, sel, name, "loss", alpha, every=True).values()))


# ------------------------------------------------------------------------------------------------ stages
def load_model_and_tokenizer(P: Params, name: str):
    path = RunDir(P).model(name)
    return loading.load_model(path, P.model.dtype), loading.load_tokenizer(path)


def ensure_pair_scores(P: Params, pair: tuple[str, str], scores: pd.DataFrame) -> Path:
    """Every (model, score kind, α) matrix of one pair (keyed folder). With ``compute.processes`` > 1 the question
    batches are dealt over ranks of ``accelerate launch`` and merged in order by rank 0."""
    key = circuits_key(P)
    sel = ensure_selection(P, pair, scores)
    out = study_dir(P) / pair_name(pair) / "scores"
    if is_done(out, key):
        return out
    if launch.should_launch(P):
        launch.run_stage(P, ["edges", "--pair", ",".join(pair)])
        if not is_done(out, key):
            raise RuntimeError(f"{pair_label(pair)}: the launch ended without the pair's scores")
        return out
    parts, n_layers = {}, 0
    for name in pair:
        n_layers = _score_model(P, sel, name, parts)
    merged = launch.gather_parts(parts, out.parent / "scores.ranks")
    if merged is not None:
        _write_pair_scores(P, pair, sel, merged, n_layers, out, key)
    launch.barrier()
    return out


def _score_model(P: Params, sel: PairSelection, name: str, parts: dict[str, torch.Tensor]) -> int:
    """This rank's batches of every (kind, α) of one model into ``parts`` (``name|kind|α|batch``); its layers."""
    model, tok = load_model_and_tokenizer(P, name)
    lm = activations.wrap(model, tok)
    if sel.samples:  # an adapter that does not fit the architecture fails here, before any score
        clean, _ = next(batches(tok, sel.prompts[:2], sel.answers[name][:2], 4, 2, P.seed))
        edge_attribution.check_decomposition(lm, clean)
        for alpha in P.circuits.alphas:
            for kind in ["loss", *score_kinds(P, alpha)]:
                got = edge_score_parts(P, model if kind == "exact" else lm, tok, sel, name, kind, alpha)
                parts.update({f"{name}|{kind}|{alpha}|{i:06d}": t for i, t in got.items()})
    return edge_attribution.graph_of(model).n_layers


def _write_pair_scores(P: Params, pair: tuple[str, str], sel: PairSelection, parts: dict[str, torch.Tensor],
                       n_layers: int, out: Path, key: str) -> None:
    """The pair's folder from every batch's part, concatenated in batch order."""

    def whole(name: str, kind: str, alpha: float, empty: torch.Tensor) -> torch.Tensor:
        prefix = f"{name}|{kind}|{alpha}|"
        found = sorted(k for k in parts if k.startswith(prefix))
        return torch.cat([parts[k] for k in found]) if found else empty

    n, samples = 2 * n_layers + 1, torch.tensor(sel.samples, dtype=torch.long)
    with atomic_dir(out) as tmp:
        for name in pair:
            for alpha in P.circuits.alphas:
                save_file({"loss_K": whole(name, "loss", alpha, torch.zeros(0)).contiguous()},
                          str(tmp / f"{name}-loss-a{alpha}.safetensors"))
                for kind in score_kinds(P, alpha):
                    save_file({"W_KRS": whole(name, kind, alpha, torch.zeros(0, n, n)).contiguous(), "samples": samples},
                              str(tmp / f"{name}-{kind}-a{alpha}.safetensors"))
        write_json(tmp / "graph.json", {"n_layers": n_layers})
    mark_done(out, key, pair=list(pair))
    shutil.rmtree(out.parent / "scores.ranks", ignore_errors=True)


def ensure_all(P: Params) -> dict:
    """Scores of every pair: ``{pair: folder}`` (evaluation scores from notebook 02's cache)."""
    scores = evaluate.ensure_scores(P, all_checkpoints=False)
    return {pair: ensure_pair_scores(P, pair, scores) for pair in progress(P.circuit_pairs, desc="pairs")}


def load_scores(folder: Path, name: str, kind: str, alpha: float) -> np.ndarray:
    return read_edge_scores(folder / f"{name}-{kind}-a{alpha}.safetensors")


def load_losses(folder: Path, name: str, alpha: float) -> np.ndarray | None:
    """Per-sample self-entropy losses of one model (None in a folder written before they were stored)."""
    path = folder / f"{name}-loss-a{alpha}.safetensors"
    return load_file(str(path))["loss_K"] if path.is_file() else None


def graph(folder: Path) -> edge_attribution.Graph:
    return edge_attribution.Graph(read_json(folder / "graph.json")["n_layers"])


# ------------------------------------------------------------------------------------------------ tables
METRICS_VERSION = "metrics-v4"  # bump when the metrics computed from the same edge scores change


def metric_table(P: Params, folders: dict) -> pd.DataFrame:
    """Long table: pair (``model_before``, ``model_after``), score kind, α, metric, and the metric's value before
    and after and their difference, each with a bootstrap interval (cached as ``metrics.parquet``, keyed)."""
    path, key = study_dir(P) / "metrics.parquet", circuits_key(P)
    pairs = ",".join(pair_name(p) for p in folders)
    cached = read_parquet(path, f"{key}:{pairs}:{METRICS_VERSION}")
    if cached is not None:
        return cached
    table = _metric_table(P, folders)
    write_parquet(table, path, f"{key}:{pairs}:{METRICS_VERSION}")
    return table


def _metric_table(P: Params, folders: dict) -> pd.DataFrame:

    rows = []
    for pair, folder in folders.items():
        mask = graph(folder).mask_RS.numpy()
        for alpha in P.circuits.alphas:
            for kind in score_kinds(P, alpha):
                Wb, Wa = (load_scores(folder, n, kind, alpha) for n in pair)
                if len(Wb) < 2:
                    continue
                lb, la = (load_losses(folder, n, alpha) for n in pair)
                losses = (lb, la) if lb is not None and la is not None else None
                for r in circuit_metrics.compare(Wb[:, mask], Wa[:, mask], P.circuits.n_bins, P.circuits.n_boot,
                                                 seed=P.seed, losses=losses):
                    rows.append({"pair": pair_label(pair), "model_before": pair[0], "model_after": pair[1], "score": kind,
                                 "alpha": alpha, "n": len(Wb), **r})
    columns = ["pair", "model_before", "model_after", "score", "alpha", "n", "metric", "before", "before_lo",
               "before_hi", "after", "after_lo", "after_hi", "delta", "delta_lo", "delta_hi", "relative"]
    return pd.DataFrame(rows, columns=columns)


def headline(P: Params, table: pd.DataFrame, score: str | None = None) -> pd.DataFrame:
    """The paper's table: the main α, one score kind (default the first: zero ablation), one row per pair, a
    column per metric."""
    t = table[(table.alpha == P.circuits.main_alpha) & (table.score == (score or P.circuits.scores[0]))]
    cell = t.assign(cell=[f"{r.before:.3g} → {r.after:.3g} ({r.delta:+.2g} [{r.delta_lo:+.2g}, {r.delta_hi:+.2g}])"
                          for r in t.itertuples()])
    return cell.pivot(index="pair", columns="metric", values="cell").reindex(columns=list(circuit_metrics.METRICS))


def relative_changes(P: Params, folders: dict, kind: str | None = None, alpha: float | None = None) -> dict:
    """Per pair, ``[R, S]`` relative change of mean |score| per edge (NaN off the graph)."""
    kind, alpha = kind or P.circuits.scores[0], alpha or P.circuits.main_alpha
    out = {}
    for pair, folder in folders.items():
        Wb, Wa = (load_scores(folder, n, kind, alpha) for n in pair)
        if len(Wb):
            out[pair_label(pair)] = circuit_metrics.relative_change_RS(Wb, Wa, graph(folder).mask_RS.numpy())
    return out


def node_entropies(P: Params, folders: dict) -> pd.DataFrame:
    """Per pair and model: mean entropy of each sender's outgoing scores (main α, first score kind)."""

    rows = []
    for pair, folder in folders.items():
        g = graph(folder)
        for name in pair:
            W = load_scores(folder, name, P.circuits.scores[0], P.circuits.main_alpha)
            if len(W):
                for s, h in zip(g.senders, circuit_metrics.node_entropy_S(W)):
                    rows.append({"pair": pair_label(pair), "model": name, "sender": s, "entropy": h})
    return pd.DataFrame(rows)


def selection_table(P: Params, folders: dict) -> pd.DataFrame:

    rows = []
    for pair, folder in folders.items():
        sel = PairSelection.from_json(read_json(folder.parent / "selection.json"))
        rows.append({"pair": pair_label(pair), "candidates": sel.n_candidates, "kept": len(sel.samples),
                     "mean answer tokens": round(sel.mean_length, 1),
                     **{f"T_cut(α={a})": t_cut(a, sel.mean_length) for a in P.circuits.alphas}})
    return pd.DataFrame(rows)


def read_edge_scores(path: Path) -> np.ndarray:

    try:
        with safe_open(str(path), "pt") as f:
            return f.get_tensor("W_KRS").double().numpy()
    except Exception as e:
        raise ValueError(f"{path}: unreadable edge scores ({e.__class__.__name__}); delete the folder to "
                         f"recompute") from None
