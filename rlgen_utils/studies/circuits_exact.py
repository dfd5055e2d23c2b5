"""Notebook 05's check of the first-order edge scores: every edge of one model ablated exactly on its first pair's
questions (``circuits.exact_model``), and how well the two rank the edges."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch
from safetensors.torch import save_file

from ..method import activations, edge_attribution
from ..run.artifacts import atomic_dir, is_done, mark_done, write_json
from ..run.config import Params
from ..run.progress import progress
from .circuits import batches, circuits_key, ensure_selection, graph, load_model_and_tokenizer, read_edge_scores, study_dir, t_cut


# ------------------------------------------------------------------------------------------------ exact check
def ensure_exact(P: Params, scores: pd.DataFrame) -> Path:
    """First-order and exact-ablation scores of ``circuits.exact_model`` on its first pair's questions."""

    key = circuits_key(P)
    out = study_dir(P) / "exact"
    if is_done(out, key):
        return out
    c, name = P.circuits, P.circuits.exact_model
    pair = next((p for p in P.circuit_pairs if name in p), None) or (name, name)
    sel = ensure_selection(P, pair, scores)
    k = min(c.exact_n_samples, len(sel.samples))
    model, tok = load_model_and_tokenizer(P, name)
    lm = activations.wrap(model, tok)
    cut = t_cut(c.main_alpha, sel.mean_length)
    first, exact = [], []
    for clean, _ in progress(list(batches(tok, sel.prompts[:k], sel.answers[name][:k], cut, c.batch_size, P.seed)),
                         desc="exact ablation"):
        first.append(edge_attribution.zero_ablation_scores(lm, clean).float().cpu())
        exact.append(edge_attribution.exact_ablation_scores(model, clean).float().cpu())
    n = 2 * edge_attribution.graph_of(model).n_layers + 1
    with atomic_dir(out) as tmp:
        for label, parts in (("first_order", first), ("exact", exact)):
            W = torch.cat(parts) if parts else torch.zeros(0, n, n)
            save_file({"W_KRS": W.contiguous()}, str(tmp / f"{label}.safetensors"))
        write_json(tmp / "graph.json", {"n_layers": edge_attribution.graph_of(model).n_layers})
    mark_done(out, key, model=name, pair=list(pair), n=k)
    return out


def agreement(first_KRS: np.ndarray, exact_KRS: np.ndarray, graph: edge_attribution.Graph) -> dict:
    """Rank agreement of first-order and exact scores: per receiver (Spearman over its senders, mean over
    samples; receivers with fewer than 3 senders are skipped), over all edges, and the receivers' signed sums
    (≈ 0 for first order under a scale-invariant norm)."""

    mask = graph.mask_RS.numpy()
    per = []
    for r, name in enumerate(graph.receivers):
        n_s = int(mask[r].sum())
        rho = [spearman(f[r, :n_s], e[r, :n_s]) for f, e in zip(first_KRS, exact_KRS)] if n_s >= 3 else []
        per.append({"receiver": name, "senders": n_s, "spearman": float(np.nanmean(rho)) if rho else float("nan"),
                    "first-order sum": float(first_KRS[:, r].sum(1).mean()),
                    "exact sum": float(exact_KRS[:, r].sum(1).mean()),
                    "first-order mean |score|": float(np.abs(first_KRS[:, r, :n_s]).mean()),
                    "exact mean |score|": float(np.abs(exact_KRS[:, r, :n_s]).mean())})
    f_flat, e_flat = first_KRS[:, mask], exact_KRS[:, mask]
    return {"per_receiver": pd.DataFrame(per), "n_samples": len(first_KRS),
            "overall_mean_scores": spearman(f_flat.mean(0), e_flat.mean(0)),
            "overall_per_sample": float(np.nanmean([spearman(f, e) for f, e in zip(f_flat, e_flat)])),
            "overall_abs": spearman(np.abs(f_flat).mean(0), np.abs(e_flat).mean(0))}


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation (average ranks for ties); NaN when either side is constant."""

    ra, rb = pd.Series(a).rank().to_numpy(), pd.Series(b).rank().to_numpy()
    if ra.std() == 0 or rb.std() == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])


def load_exact(folder: Path) -> tuple[np.ndarray, np.ndarray, edge_attribution.Graph]:
    return read_edge_scores(folder / "first_order.safetensors"), read_edge_scores(folder / "exact.safetensors"), graph(folder)
