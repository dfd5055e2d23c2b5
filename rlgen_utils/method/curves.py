"""Monotone curves through the origin, and the range two sets of points both cover.

Notebook 02 compares SFT and RL at matched KL and at matched in-domain gain. Each method's models are points
``(x, y)`` (KL or in-domain gain against out-of-domain change); the base is the origin (it moved nothing and
changed nothing). A comparison reads each method's curve only where *both* methods have models
(:func:`covered`): never an extrapolation of one method's fit into the other's range.

* :func:`origin_slope` — least squares ``y = b·x`` (a line through the origin);
* :func:`monotone_through_origin` — the isotonic (pool-adjacent-violators) fit of the points with the origin
  pinned, non-increasing or non-decreasing as the origin slope's sign says;
* :func:`evaluate` — that curve, linearly interpolated between its knots.
"""
from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

ORIGIN_WEIGHT = 1e9
"""Weight of the pinned origin in the isotonic fit (the curve passes through it)."""


def origin_slope(x_N: ArrayLike, y_N: ArrayLike) -> float:
    """``b`` of the least-squares line ``y = b·x`` (nan without a non-zero x)."""
    x, y = np.asarray(x_N, float), np.asarray(y_N, float)
    sxx = float((x * x).sum())
    return float((x * y).sum() / sxx) if sxx > 0 else float("nan")


def _pava(y_K: np.ndarray, w_K: np.ndarray) -> np.ndarray:
    """Non-decreasing weighted least-squares fit of ``y`` in the given order (pool adjacent violators)."""
    vals, wts, sizes = [], [], []
    for v, w in zip(y_K, w_K):
        vals.append(float(v))
        wts.append(float(w))
        sizes.append(1)
        while len(vals) > 1 and vals[-2] > vals[-1]:
            w2 = wts[-2] + wts[-1]
            v2 = (vals[-2] * wts[-2] + vals[-1] * wts[-1]) / w2
            s2 = sizes[-2] + sizes[-1]
            vals[-2:], wts[-2:], sizes[-2:] = [v2], [w2], [s2]
    return np.repeat(vals, sizes)


def monotone_through_origin(x_N: ArrayLike, y_N: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Knots ``(x_K, y_K)`` of the monotone least-squares curve through the points and the origin, ``x`` sorted
    and starting at 0; its direction follows the sign of :func:`origin_slope` (non-increasing when negative)."""
    x, y = np.asarray(x_N, float), np.asarray(y_N, float)
    order = np.argsort(x, kind="stable")
    xs, ys = np.concatenate([[0.0], x[order]]), np.concatenate([[0.0], y[order]])
    ws = np.concatenate([[ORIGIN_WEIGHT], np.ones(len(x))])
    sign = -1.0 if origin_slope(x, y) < 0 else 1.0
    fitted = sign * _pava(sign * ys, ws)
    return xs, fitted


def evaluate(knots: tuple[np.ndarray, np.ndarray], at: ArrayLike) -> np.ndarray:
    """The curve at ``at`` (linear between knots; equal x values are averaged first)."""
    xs, ys = knots
    ux = np.unique(xs)
    uy = np.array([ys[xs == u].mean() for u in ux])
    return np.interp(np.asarray(at, float), ux, uy)


def covered(x_a: ArrayLike, x_b: ArrayLike) -> tuple[float, float] | None:
    """``[lo, hi]`` that both sets of x values span (their models, not the origin), or None if they do not
    overlap."""
    a, b = np.asarray(x_a, float), np.asarray(x_b, float)
    if not a.size or not b.size:
        return None
    lo, hi = max(a.min(), b.min()), min(a.max(), b.max())
    return (float(lo), float(hi)) if lo <= hi else None
