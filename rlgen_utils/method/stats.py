"""Bootstrap confidence intervals for accuracies and their differences.

* :func:`bootstrap_ci` — percentile interval of the mean of per-sample values (0/1 correctness).
* :func:`paired_diff_ci` — interval of mean(a − b) when ``a`` and ``b`` are scored on the same samples: resampling
  the *pairs* keeps the correlation between models, which makes the interval much tighter than comparing two
  independent intervals.
* :func:`hierarchical_ci` — several training seeds, each scored on the same samples: resample seeds, then
  samples, so the interval carries both training-seed and sample uncertainty. Every seed answers the *same*
  questions, so one resample of the questions is applied to every drawn seed (a question that is hard for one
  seed is hard for all; resampling questions independently per seed would average that away).
* :func:`hierarchical_diff_ci` — the same for a difference between models: per-seed differences on paired
  samples (a model with one seed, the base, is compared with every seed of the other).

* :func:`multilevel_ci` / :func:`multilevel_diff_ci` — several base models (pretraining seeds), each post-trained
  with several training seeds, every model scored on the same samples: resample bases, then training seeds within
  each drawn base, then samples (one resample of the questions shared by every drawn model, as above). The
  interval carries base-to-base variation, which intervals over the training seeds of one base do not.

Averaging seeds per sample *before* a paired bootstrap drops the seed variance from the interval: with three
seeds that disagree, such an interval is far too narrow (``tests/test_stats.py`` shows it).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from numpy.typing import ArrayLike


@dataclass(frozen=True)
class CI:
    mean: float
    lo: float
    hi: float

    def excludes_zero(self) -> bool:
        return self.lo > 0 or self.hi < 0

    def __str__(self) -> str:
        return f"{self.mean:.3f} [{self.lo:.3f}, {self.hi:.3f}]"


def _interval(draws_X: np.ndarray, mean: float, level: float) -> CI:
    lo, hi = np.quantile(draws_X, [(1 - level) / 2, (1 + level) / 2])
    return CI(float(mean), float(lo), float(hi))


def bootstrap_ci(values_N: ArrayLike, n_boot: int = 2000, level: float = 0.95, seed: int = 0) -> CI:
    """Mean of ``values_N`` with a percentile bootstrap interval."""
    v = np.asarray(values_N, dtype=float)
    if v.size == 0:
        return CI(float("nan"), float("nan"), float("nan"))
    idx_XN = np.random.default_rng(seed).integers(0, v.size, size=(n_boot, v.size))
    return _interval(v[idx_XN].mean(axis=1), v.mean(), level)


def paired_diff_ci(a_N: ArrayLike, b_N: ArrayLike, n_boot: int = 2000, level: float = 0.95, seed: int = 0) -> CI:
    """mean(a − b) over paired samples, with a bootstrap interval that resamples pairs."""
    a, b = np.asarray(a_N, dtype=float), np.asarray(b_N, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired samples must have the same shape, got {a.shape} and {b.shape}")
    return bootstrap_ci(a - b, n_boot, level, seed)


def hierarchical_draws(values_ZN: ArrayLike, n_boot: int = 2000, seed: int = 0) -> np.ndarray:
    """``n_boot`` bootstrap means of a ``[seeds, samples]`` array: draw Z seeds with replacement, then N samples
    with replacement (the same N for every drawn seed), and average."""
    v = np.asarray(values_ZN, dtype=float)
    if v.ndim != 2 or v.size == 0:
        raise ValueError(f"expected a [seeds, samples] array, got shape {v.shape}")
    rng = np.random.default_rng(seed)
    z_idx_XZ = rng.integers(0, v.shape[0], size=(n_boot, v.shape[0]))
    n_idx_XN = rng.integers(0, v.shape[1], size=(n_boot, v.shape[1]))
    out_X = np.empty(n_boot)
    for lo in range(0, n_boot, 256):  # chunks keep the [X, Z, N] gather small
        z, n = z_idx_XZ[lo:lo + 256], n_idx_XN[lo:lo + 256]
        out_X[lo:lo + 256] = v[z[:, :, None], n[:, None, :]].mean(axis=(1, 2))
    return out_X


def hierarchical_ci(values_ZN: ArrayLike, n_boot: int = 2000, level: float = 0.95, seed: int = 0) -> CI:
    """Mean over seeds (rows) and samples (columns), resampling seeds then samples."""
    v = np.asarray(values_ZN, dtype=float)
    return _interval(hierarchical_draws(v, n_boot, seed), v.mean(), level)


def hierarchical_diff_ci(a_ZN: ArrayLike, b_ZN: ArrayLike, n_boot: int = 2000, level: float = 0.95,
                         seed: int = 0) -> CI:
    """mean(a − b) over seeds and paired samples. ``b`` has the same seeds as ``a`` (paired by row) or one row
    (a model trained once, e.g. the base), which is compared with every seed of ``a``."""
    a, b = np.atleast_2d(np.asarray(a_ZN, dtype=float)), np.atleast_2d(np.asarray(b_ZN, dtype=float))
    if a.shape[1] != b.shape[1] or b.shape[0] not in (1, a.shape[0]):
        raise ValueError(f"cannot pair [seeds, samples] arrays of shapes {a.shape} and {b.shape}")
    return hierarchical_ci(a - b, n_boot, level, seed)


def multilevel_draws(values_GZN: ArrayLike, n_boot: int = 2000, seed: int = 0) -> np.ndarray:
    """``n_boot`` bootstrap means of a ``[bases, seeds, samples]`` array: draw G bases with replacement; within
    each drawn base draw Z of its seeds with replacement; draw N samples with replacement (the same N for every
    drawn model); average."""
    v = np.asarray(values_GZN, dtype=float)
    if v.ndim != 3 or v.size == 0:
        raise ValueError(f"expected a [bases, seeds, samples] array, got shape {v.shape}")
    G, Z, N = v.shape
    rng = np.random.default_rng(seed)
    g_idx_XG = rng.integers(0, G, size=(n_boot, G))
    z_idx_XGZ = rng.integers(0, Z, size=(n_boot, G, Z))
    n_idx_XN = rng.integers(0, N, size=(n_boot, N))
    out_X = np.empty(n_boot)
    for lo in range(0, n_boot, 64):  # chunks keep the [X, G, Z, N] gather small
        g, z, n = g_idx_XG[lo:lo + 64], z_idx_XGZ[lo:lo + 64], n_idx_XN[lo:lo + 64]
        out_X[lo:lo + 64] = v[g[:, :, None, None], z[:, :, :, None], n[:, None, None, :]].mean(axis=(1, 2, 3))
    return out_X


def multilevel_ci(values_GZN: ArrayLike, n_boot: int = 2000, level: float = 0.95, seed: int = 0) -> CI:
    """Mean over bases, their seeds and the samples, resampling bases, then seeds within a base, then samples."""
    v = np.asarray(values_GZN, dtype=float)
    return _interval(multilevel_draws(v, n_boot, seed), v.mean(), level)


def multilevel_diff_ci(a_GZN: ArrayLike, b_GZN: ArrayLike, n_boot: int = 2000, level: float = 0.95,
                       seed: int = 0) -> CI:
    """mean(a − b) over bases, seeds and paired samples. ``b`` has ``a``'s bases (paired by base) and either
    ``a``'s seeds (paired by seed) or one row per base (the base model itself, compared with every seed of
    ``a`` post-trained from it)."""
    a, b = np.asarray(a_GZN, dtype=float), np.asarray(b_GZN, dtype=float)
    if a.ndim != 3 or b.ndim != 3 or a.shape[0] != b.shape[0] or a.shape[2] != b.shape[2] \
            or b.shape[1] not in (1, a.shape[1]):
        raise ValueError(f"cannot pair [bases, seeds, samples] arrays of shapes {a.shape} and {b.shape}")
    return multilevel_ci(a - b, n_boot, level, seed)
