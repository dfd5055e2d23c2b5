"""Study B's statistics of edge-score matrices, and their before → after comparison with bootstrap intervals.

For a model scored on K samples, ``W_KE`` holds each sample's E edge scores (the graph's edges, flattened):

* **activation intensity** — mean |W| over samples and edges;
* **information complexity** — entropy −Σ_b p_b log p_b (nats) of the histogram of all |W| values, with the
  **same bin edges** for the two models compared (``n_bins`` equal bins from 0 to the larger maximum);
* **kurtosis** — mean over samples of the excess kurtosis of W^(k) (0 for a Gaussian; large = a few edges
  dominate);
* **diversity** — 1 − mean Pearson correlation between different samples' W^(k);
* **node entropy** — per sender, entropy of its outgoing |scores| normalised over receivers, mean over samples.

**Scale-free companions.** With shared equal-width bins the entropy tracks the *scale* of the scores:
multiplying one model's W by 1.2 moves mass into more bins and raises its entropy, although the shape of the
distribution is unchanged (and the gradient of a self-entropy loss scales with the model's confidence). So each
sample's |W^(k)| is also divided by its own mean, a^(k) = |W^(k)| / mean |W^(k)|, and **entropy (scale-free)**
is the entropy of the histogram of a (shared bins over both models' a) and **kurtosis of |W| (scale-free)** the
mean excess kurtosis of a^(k). Both are invariant to rescaling either model's scores; the paper's entropy is not.

**Intensity per unit loss.** The scores are gradients of the model's self-entropy loss on its own answer, and that
gradient shrinks as the model grows confident (∂(−log p)/∂logit = p − 1 for the chosen token). A tuned model that
is more confident on the same questions has smaller scores for that reason alone. **intensity / loss** divides the
intensity by the mean self-entropy loss of the same samples, so a change in it is a change per unit of loss.

Every statistic is computed per sample first (intensity, histogram counts, kurtosis, the K×K correlation
matrix), so a bootstrap over samples only re-aggregates: :func:`compare` resamples the *same* sample indices for
both models (they are scored on the same questions), giving intervals for before, after and after − before.
"""
from __future__ import annotations

import numpy as np


def shared_bin_edges(*W: np.ndarray, n_bins: int) -> np.ndarray:
    top = max(float(np.abs(w).max()) for w in W)
    return np.linspace(0.0, top if top > 0 else 1.0, n_bins + 1)


def scale_free_KE(W_KE: np.ndarray) -> np.ndarray:
    """Each sample's |scores| divided by their mean (all-zero samples stay zero)."""
    a = np.abs(np.asarray(W_KE, dtype=np.float64))
    mean = a.mean(1, keepdims=True)
    return np.divide(a, mean, out=np.zeros_like(a), where=mean > 0)


def entropy_of_counts(counts_H: np.ndarray) -> float:
    p = counts_H / counts_H.sum()
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


def entropy_of_counts_X(counts_XH: np.ndarray) -> np.ndarray:
    """:func:`entropy_of_counts` of each row."""
    p = counts_XH / counts_XH.sum(1, keepdims=True)
    return -np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0).sum(1)


def excess_kurtosis_K(W_KE: np.ndarray) -> np.ndarray:
    d = W_KE - W_KE.mean(1, keepdims=True)
    var = (d ** 2).mean(1)
    m4 = (d ** 4).mean(1)
    return np.divide(m4, var ** 2, out=np.full_like(var, 3.0), where=var > 0) - 3.0  # constant sample: 0


def correlation_KK(W_KE: np.ndarray) -> np.ndarray:
    return np.corrcoef(W_KE) if len(W_KE) > 1 else np.ones((1, 1))


def node_entropy_S(W_KRS: np.ndarray) -> np.ndarray:
    """Per sender: entropy of its outgoing |scores| as a distribution over receivers, averaged over samples."""
    a = np.abs(W_KRS)
    p = a / np.maximum(a.sum(1, keepdims=True), 1e-300)
    h = -(np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0)).sum(1)
    return h.mean(0)


class SampleStats:
    """Per-sample pieces of every statistic, for one model. ``edges`` bin |W|; ``free_edges`` bin the scale-free
    a = |W| / mean |W| (default: bins over this model's own a)."""

    def __init__(self, W_KE: np.ndarray, edges: np.ndarray, free_edges: np.ndarray | None = None,
                 loss_K: np.ndarray | None = None):
        W_KE = np.asarray(W_KE, dtype=np.float64)
        self.loss_K = None if loss_K is None else np.asarray(loss_K, dtype=np.float64)
        a_KE = scale_free_KE(W_KE)
        free_edges = shared_bin_edges(a_KE, n_bins=len(edges) - 1) if free_edges is None else free_edges
        self.intensity_K = np.abs(W_KE).mean(1)
        self.counts_KH = np.stack([np.histogram(np.abs(w), edges)[0] for w in W_KE])
        self.kurtosis_K = excess_kurtosis_K(W_KE)
        self.corr_KK = correlation_KK(W_KE)
        self.free_counts_KH = np.stack([np.histogram(a, free_edges)[0] for a in a_KE])
        self.free_kurtosis_K = excess_kurtosis_K(a_KE)

    def metrics(self, idx: np.ndarray) -> dict[str, float]:
        C = self.corr_KK[np.ix_(idx, idx)]
        distinct = idx[:, None] != idx[None, :]  # a sample drawn twice is not "another sample"
        return {"intensity": float(self.intensity_K[idx].mean()),
                "entropy": entropy_of_counts(self.counts_KH[idx].sum(0)),
                "kurtosis": float(self.kurtosis_K[idx].mean()),
                "diversity": float(1.0 - C[distinct].mean()) if distinct.any() else float("nan"),
                "entropy (scale-free)": entropy_of_counts(self.free_counts_KH[idx].sum(0)),
                "kurtosis of |W| (scale-free)": float(self.free_kurtosis_K[idx].mean()),
                "intensity / loss": self.per_loss(idx)}

    def metrics_many(self, idx_XK: np.ndarray) -> dict[str, np.ndarray]:
        """:meth:`metrics` of every row of ``idx_XK`` at once (the bootstrap's X resamples), as ``[X]`` arrays.
        A resample is its count vector n (how often each sample was drawn), so every mean is n · value / K and
        the summed histogram n @ counts. Diversity averages C over pairs of *different* samples:
        (nᵀCn − Σ_s n_s² C_ss) / (K² − Σ_s n_s²). Equal to :meth:`metrics` row by row (tested); 13× faster at K 80
        and 1000 resamples."""
        X, K = idx_XK.shape
        n_XS = np.bincount((idx_XK + len(self.intensity_K) * np.arange(X)[:, None]).ravel(),
                           minlength=X * len(self.intensity_K)).reshape(X, -1).astype(np.float64)
        mean = lambda v_S: n_XS @ v_S / K
        out = {"intensity": mean(self.intensity_K), "entropy": entropy_of_counts_X(n_XS @ self.counts_KH),
               "kurtosis": mean(self.kurtosis_K), "diversity": self._diversity_X(n_XS, K),
               "entropy (scale-free)": entropy_of_counts_X(n_XS @ self.free_counts_KH),
               "kurtosis of |W| (scale-free)": mean(self.free_kurtosis_K)}
        if self.loss_K is None:
            out["intensity / loss"] = np.full(X, np.nan)
        else:
            loss = mean(self.loss_K)
            out["intensity / loss"] = np.divide(out["intensity"], loss, out=np.full(X, np.nan), where=loss > 0)
        return out

    def _diversity_X(self, n_XS: np.ndarray, K: int) -> np.ndarray:
        C = self.corr_KK
        nan_SS = np.isnan(C)
        np.fill_diagonal(nan_SS, False)
        C0 = np.nan_to_num(C, nan=0.0)
        pairs = (n_XS @ C0 * n_XS).sum(1) - (n_XS ** 2 * np.diag(C0)).sum(1)
        count = K * K - (n_XS ** 2).sum(1)
        drawn = (n_XS > 0).astype(np.float64)
        touches_nan = (drawn @ nan_SS * drawn).sum(1) > 0   # a constant sample paired with another: NaN, as np.mean
        div = np.divide(pairs, count, out=np.full(len(n_XS), np.nan), where=count > 0)
        return np.where(touches_nan, np.nan, 1.0 - div)

    def per_loss(self, idx: np.ndarray) -> float:
        """Intensity divided by the mean self-entropy loss of the same samples (NaN without losses)."""
        if self.loss_K is None:
            return float("nan")
        loss = float(self.loss_K[idx].mean())
        return float(self.intensity_K[idx].mean()) / loss if loss > 0 else float("nan")


METRICS = ("intensity", "entropy", "kurtosis", "diversity", "entropy (scale-free)", "kurtosis of |W| (scale-free)",
           "intensity / loss")


def metrics(W_KE: np.ndarray, edges: np.ndarray) -> dict[str, float]:
    return SampleStats(W_KE, edges).metrics(np.arange(len(W_KE)))


def compare(before_KE: np.ndarray, after_KE: np.ndarray, n_bins: int = 100, n_boot: int = 1000,
            level: float = 0.95, seed: int = 0, losses: tuple[np.ndarray, np.ndarray] | None = None) -> list[dict]:
    """One row per metric: before, after, after − before (relative change too), each with a paired bootstrap
    interval over samples. ``losses``: each model's per-sample self-entropy loss (for intensity / loss)."""
    if before_KE.shape != after_KE.shape:
        raise ValueError(f"before and after must score the same samples and edges: {before_KE.shape} vs "
                         f"{after_KE.shape}")
    edges = shared_bin_edges(before_KE, after_KE, n_bins=n_bins)
    free = shared_bin_edges(scale_free_KE(before_KE), scale_free_KE(after_KE), n_bins=n_bins)
    lb, la = losses if losses is not None else (None, None)
    sb, sa = SampleStats(before_KE, edges, free, lb), SampleStats(after_KE, edges, free, la)
    K, everything = len(before_KE), np.arange(len(before_KE))
    point_b, point_a = sb.metrics(everything), sa.metrics(everything)
    idx_XK = np.random.default_rng(seed).integers(0, K, size=(n_boot, K))
    boot_b, boot_a = sb.metrics_many(idx_XK), sa.metrics_many(idx_XK)
    q = [(1 - level) / 2, (1 + level) / 2]
    rows = []
    for m in METRICS:
        b, a = boot_b[m], boot_a[m]
        rows.append({"metric": m, "before": point_b[m], "before_lo": _q(b, q[0]), "before_hi": _q(b, q[1]),
                     "after": point_a[m], "after_lo": _q(a, q[0]), "after_hi": _q(a, q[1]),
                     "delta": point_a[m] - point_b[m], "delta_lo": _q(a - b, q[0]), "delta_hi": _q(a - b, q[1]),
                     "relative": (point_a[m] - point_b[m]) / abs(point_b[m]) if point_b[m] else float("nan")})
    return rows


def _q(x: np.ndarray, p: float) -> float:
    x = x[np.isfinite(x)]
    return float(np.quantile(x, p)) if x.size else float("nan")


def relative_change_RS(before_KRS: np.ndarray, after_KRS: np.ndarray, mask_RS: np.ndarray) -> np.ndarray:
    """Per edge: (mean|W_after| − mean|W_before|) / mean|W_before|; NaN off the graph."""
    b, a = np.abs(before_KRS).mean(0), np.abs(after_KRS).mean(0)
    out = (a - b) / np.where(b > 0, b, np.nan)
    return np.where(mask_RS, out, np.nan)
