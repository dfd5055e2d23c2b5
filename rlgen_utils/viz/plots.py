"""Plotly figures for the notebooks (each returns a ``go.Figure``; nothing here computes results)."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
from plotly.subplots import make_subplots

if TYPE_CHECKING:
    import numpy as np
    import torch


def pretrain_loss(log: list[dict]):
    fig = px.line(x=[r["step"] for r in log], y=[r["loss"] for r in log], labels={"x": "step", "y": "loss"},
                  title="Pretraining loss (all families, packed)")
    return fig.update_layout(height=320)


def training_curves(logs: dict[str, list[dict]], start_acc: dict[str, float]):
    """Three panels: training loss, mean reward (online RL), held-out in-domain accuracy per checkpoint."""

    fig = make_subplots(1, 3, subplot_titles=("training loss", "mean reward (GRPO / RLOO)",
                                              "in-domain accuracy per checkpoint"))
    for i, (method, segs) in enumerate(logs.items()):
        colour = f"hsl({i * 360 // max(1, len(logs))},65%,45%)"
        hist = [h for s in segs for h in s["log"]]
        fig.add_trace(go.Scatter(y=[h["loss"] for h in hist if "loss" in h], name=method, legendgroup=method,
                                 line={"color": colour}), 1, 1)
        rewards = [h["reward"] for h in hist if "reward" in h]
        if rewards:
            fig.add_trace(go.Scatter(y=rewards, name=method, legendgroup=method, showlegend=False,
                                     line={"color": colour}), 1, 2)
        acc = [start_acc[method]] + [s.get("curve_accuracy") for s in segs]
        fig.add_trace(go.Scatter(x=list(range(len(acc))), y=acc, mode="lines+markers", name=method,
                                 legendgroup=method, showlegend=False, line={"color": colour}), 1, 3)
    fig.update_xaxes(title_text="optimizer step", row=1, col=1)
    fig.update_xaxes(title_text="optimizer step", row=1, col=2)
    fig.update_xaxes(title_text="checkpoint (0 = start)", row=1, col=3)
    return fig.update_layout(height=380)


def checkpoint_curves(curves: pd.DataFrame, methods: tuple[str, ...] = ("sft", "grpo")):
    """Accuracy vs checkpoint, one panel per role (in-domain, OOD selection, OOD held-out), families averaged."""
    c = curves[curves.method.isin(methods)].groupby(["method", "checkpoint", "role"], as_index=False)[
        "accuracy"].mean()
    fig = px.line(c, x="checkpoint", y="accuracy", color="method", facet_col="role", markers=True,
                  title="Accuracy per checkpoint (0 = base; families of a role averaged)")
    return fig.update_layout(height=360)


def deltas(delta_df: pd.DataFrame, title: str):
    """Forest plot: one row per family, the change and its 95 % interval."""
    d = delta_df.iloc[::-1]
    fig = go.Figure(go.Scatter(x=d.delta, y=d.family + "  ·  " + d.contrast, mode="markers",
                               error_x={"type": "data", "symmetric": False, "array": d.hi - d.delta,
                                        "arrayminus": d.delta - d.lo}))
    fig.add_vline(x=0, line_dash="dot")
    return fig.update_layout(title=title, height=80 + 22 * len(d), xaxis_title="accuracy change")


def nrn_histograms(nrn_by_pair: dict, low: float, high: float):
    """NRN histograms side by side (e.g. base–SFT and base–RL), with the class thresholds marked; pairs are labelled
    by ``str`` of their keys."""
    fig = make_subplots(1, len(nrn_by_pair), subplot_titles=[str(p) for p in nrn_by_pair], shared_yaxes=True)
    for i, (name, nrn) in enumerate(nrn_by_pair.items(), start=1):
        fig.add_trace(go.Histogram(x=nrn.tolist(), xbins={"start": 0, "end": 1.0001, "size": 0.025}, name=str(name),
                                   showlegend=False), 1, i)
        for t in (low, high):
            fig.add_vline(x=t, line_dash="dot", row=1, col=i)  # pyright: ignore[reportArgumentType]  (plotly's stub says str)
    fig.update_xaxes(title_text="NRN (0 base-only · 0.5 shared · 1 tuned-only)", range=[0, 1])
    fig.update_yaxes(type="log", title_text="latents", row=1, col=1)
    return fig.update_layout(height=340, title="Normalized relative norm of decoder vectors")


def mas_distributions(mas_LM: torch.Tensor, names: list[str], threshold: float):
    """Per model: the distribution of its MAS over latents."""
    fig = go.Figure()
    for i, n in enumerate(names):
        fig.add_trace(go.Histogram(x=mas_LM[:, i].tolist(), name=n, opacity=0.6,
                                   xbins={"start": 0, "end": 1.0001, "size": 0.02}))
    fig.add_vline(x=threshold, line_dash="dot")
    return fig.update_layout(barmode="overlay", height=340, xaxis_title="MAS", yaxis_type="log",
                             title=f"Model attribution score (a model owns a latent above {threshold})")


def training_log(log: list[dict], names: list[str]):
    """Crosscoder training: per-model FVU and L0 over steps."""
    fig = make_subplots(1, 2, subplot_titles=("FVU per model", "mean L0"))
    steps = [r["step"] for r in log]
    for i, n in enumerate(names):
        fig.add_trace(go.Scatter(x=steps, y=[r["fvu"][i] for r in log], name=n), 1, 1)
    fig.add_trace(go.Scatter(x=steps, y=[r["l0"] for r in log], name="L0", showlegend=False), 1, 2)
    fig.update_yaxes(type="log", row=1, col=1)
    return fig.update_layout(height=320)


def overlap_heatmaps(matrices: dict[str, np.ndarray]):
    """Jaccard overlap of top-K sets between checkpoints, one heatmap per paradigm."""
    fig = make_subplots(1, len(matrices), subplot_titles=list(matrices))
    for i, (_name, m) in enumerate(matrices.items(), start=1):
        ticks = [str(k + 1) for k in range(len(m))]
        fig.add_trace(go.Heatmap(z=m, x=ticks, y=ticks, zmin=0, zmax=1, colorscale="Viridis",
                                 showscale=i == len(matrices)), 1, i)
    fig.update_xaxes(title_text="checkpoint")
    fig.update_yaxes(title_text="checkpoint", col=1)
    return fig.update_layout(height=340, title="Overlap (Jaccard) of top-K model-specific latents")


def overlap_curves(table: pd.DataFrame):
    """First-vs-last and neighbour overlap per checkpoint, with [min, max] over crosscoder seeds."""
    fig = make_subplots(1, 2, subplot_titles=("overlap with the final checkpoint", "overlap with the previous one"))
    for method, g in table.groupby("method", sort=False):
        for col, (y, lo, hi) in enumerate([("first_vs_last", "fvl_lo", "fvl_hi"), ("neighbour", "nb_lo", "nb_hi")], 1):
            fig.add_trace(go.Scatter(x=g.checkpoint, y=g[y], name=method, legendgroup=method, showlegend=col == 1,
                                     error_y={"type": "data", "symmetric": False, "array": g[hi] - g[y],
                                              "arrayminus": g[y] - g[lo]}, mode="lines+markers"), 1, col)
    fig.update_xaxes(title_text="checkpoint")
    return fig.update_layout(height=340)


def nrn_violins(nrn_by_method: dict[str, torch.Tensor]):
    """Distribution of NRN (against the base) per checkpoint, per paradigm."""
    fig = go.Figure()
    for method, nrn_CL in nrn_by_method.items():
        for k, row in enumerate(nrn_CL, start=1):
            fig.add_trace(go.Violin(y=row.tolist(), x=[f"{method} {k}"] * len(row), name=method, legendgroup=method,
                                    showlegend=k == 1, spanmode="hard"))
    return fig.update_layout(height=360, yaxis_title="NRN vs base", title="NRN per checkpoint (alive latents)")


def edge_change_heatmaps(changes: dict[str, "object"], senders: list[str], receivers: list[str]):
    """Relative change of mean |edge score| (after vs before), one receiver × sender heatmap per pair."""
    cols = min(3, max(1, len(changes)))
    rows = -(-len(changes) // cols) if changes else 1
    fig = make_subplots(rows, cols, subplot_titles=list(changes))
    for i, (_name, rel_RS) in enumerate(changes.items()):
        fig.add_trace(go.Heatmap(z=rel_RS, x=senders, y=receivers, zmid=0, zmin=-1, zmax=1, colorscale="RdBu_r",
                                 colorbar={"title": "rel. change"}, showscale=i == 0), i // cols + 1, i % cols + 1)
    fig.update_yaxes(autorange="reversed")
    return fig.update_layout(height=300 * rows, title="Relative change of mean |edge score|, per edge "
                                                      "(receiver rows, sender columns; clipped to ±1)")


def metric_vs_alpha(table: pd.DataFrame, metric: str, score: str):
    """One metric before and after, per pair, across the truncation fractions α (bootstrap intervals)."""
    t = table[(table.metric == metric) & (table.score == score)]
    fig = go.Figure()
    for pair, g in t.groupby("pair", sort=False):
        fig.add_trace(go.Scatter(x=g.alpha, y=g.delta, name=pair, mode="lines+markers",
                                 error_y={"type": "data", "symmetric": False, "array": g.delta_hi - g.delta,
                                          "arrayminus": g.delta - g.delta_lo}))
    fig.add_hline(y=0, line_dash="dot")
    return fig.update_layout(height=340, xaxis_type="log", xaxis_title="α (T_cut = α·T̄)",
                             yaxis_title=f"{metric}: after − before", title=f"{metric} change vs α ({score} scores)")


def node_entropy_bars(df: pd.DataFrame):
    """Entropy of each sender's outgoing edge scores, before vs after, per pair."""
    return px.bar(df, x="sender", y="entropy", color="model", barmode="group", facet_col="pair", facet_col_wrap=3,
                  height=320 * max(1, -(-df.pair.nunique() // 3)), title="Per-node entropy of outgoing edge scores")


def first_order_vs_exact(first_KRS: np.ndarray, exact_KRS: np.ndarray, mask_RS: np.ndarray, edge_names: list[str]):
    """Mean first-order score vs mean exact-ablation effect per edge."""
    f, e = first_KRS[:, mask_RS].mean(0), exact_KRS[:, mask_RS].mean(0)
    fig = go.Figure(go.Scatter(x=e, y=f, mode="markers", text=edge_names, hovertemplate="%{text}<br>exact %{x:.3g}"
                                                                                        "<br>first order %{y:.3g}"))
    return fig.update_layout(height=380, xaxis_title="exact ablation ΔL", yaxis_title="first-order score",
                             title="First order vs exact ablation, per edge (mean over samples)")


def random_control(control: pd.DataFrame):
    """Each intervention's effect with the selected set (star) against the random sets of the same size (dots)."""
    fig = go.Figure()
    for r in control.to_dict("records"):
        label = f"{r['intervention']}<br>{r['scope']}"
        fig.add_trace(go.Scatter(x=[label] * len(r["random"]), y=[100 * v for v in r["random"]], mode="markers",
                                 marker={"color": "grey", "size": 7}, name="random sets", showlegend=False))
        fig.add_trace(go.Scatter(x=[label], y=[100 * r["selected set"]], mode="markers", showlegend=False,
                                 marker={"symbol": "star", "size": 16, "color": "crimson"}, name="selected set"))
    fig.add_hline(y=0, line_dash="dot")
    return fig.update_layout(height=360, yaxis_title="accuracy change (points)",
                             title="Selected latent set (red star) vs random sets of the same size (grey)")


def dose_curves(dose: pd.DataFrame):
    """Accuracy against the factor on the selected latents, per model and scope (bootstrap intervals)."""
    fig = px.line(dose, x="factor", y="accuracy", color="model", facet_col="scope", markers=True,
                  error_y=dose.hi - dose.accuracy, error_y_minus=dose.accuracy - dose.lo, height=340)
    fig.add_vline(x=1.0, line_dash="dot")
    return fig.update_layout(title="Dose-response: selected latents × factor (1 = unchanged)")


def family_overlap(matrix: np.ndarray, names: list[str]):
    fig = go.Figure(go.Heatmap(z=matrix, x=names, y=names, zmin=0, zmax=1, colorscale="Viridis"))
    return fig.update_layout(height=340, width=420, title="Overlap of families' latent sets (share of the smaller)")


def score_curves(scores: dict[str, list[float]], fraction: float | None = None):
    """Each family's latent scores sorted, as a share of its maximum (top 100); with ``fraction`` the paper's
    selection threshold is drawn (the contrast rule selects by p-value instead)."""
    fig = go.Figure()
    for fam, s in scores.items():
        top = max(s) or 1.0
        ranked = sorted((v / top for v in s), reverse=True)[:100]
        fig.add_trace(go.Scatter(y=ranked, mode="lines", name=fam))
    if fraction is not None:
        fig.add_hline(y=fraction, line_dash="dot", annotation_text="threshold")
    what = "Score_k (RL-right/base-wrong)" if fraction is not None else "contrast (RL-right/base-wrong − control)"
    return fig.update_layout(height=320, xaxis_title="rank", yaxis_title="score / max score",
                             title=f"{what} of f_k^RL − f_k^base per latent, selection half (top 100)")


def kl_vs_forgetting(table: pd.DataFrame, fits: pd.DataFrame):
    """ΔOOD against KL(π_base ‖ π), one marker per model (checkpoints and seeds), each method's fitted line."""
    fig = go.Figure()
    group = [("sft" if str(m).startswith("sft-lr") else str(m)) for m in table.method]
    f = {str(r["models"]): r for r in fits.to_dict("records")}
    for m, d in table.assign(group=group).groupby("group", sort=False):
        fig.add_trace(go.Scatter(x=d.kl, y=d["Δ OOD"], mode="markers", name=str(m),
                                 text=d.method + " seed " + d.seed.astype(str) + " ckpt " + d.checkpoint.astype(str)))
        fit = f.get(str(m))
        if fit is not None and np.isfinite(float(fit["slope"])):
            xs = np.linspace(0, float(d.kl.max()), 20)
            fig.add_trace(go.Scatter(x=xs, y=float(fit["intercept"]) + float(fit["slope"]) * xs, mode="lines",
                                     name=f"{m} fit (R² {float(fit['r2']):.2f})", line={"dash": "dot"}))
    fig.add_hline(y=0, line_dash="dot")
    return fig.update_layout(title="Forgetting against how far each model moved", xaxis_title="KL(π_base ‖ π), "
                             "nats per in-domain token", yaxis_title="Δ out-of-domain accuracy")
