import itertools

import numpy as np
import pytest

from rlgen_utils.method import stats


def test_interval_of_a_constant_is_the_constant():
    ci = stats.bootstrap_ci([1, 1, 1, 1])
    assert (ci.mean, ci.lo, ci.hi) == (1.0, 1.0, 1.0)


def test_interval_matches_the_normal_approximation_for_a_large_sample():
    rng = np.random.default_rng(0)
    v = rng.random(2000) < 0.3
    ci = stats.bootstrap_ci(v, n_boot=4000)
    half = 1.96 * np.sqrt(0.3 * 0.7 / 2000)
    assert ci.lo < v.mean() < ci.hi
    assert ci.hi - ci.lo == pytest.approx(2 * half, rel=0.15)


def test_paired_difference_is_tighter_than_independent_intervals():
    """The likely mistake: comparing two models scored on the same samples as if they were independent."""
    rng = np.random.default_rng(1)
    a = rng.random(300) < 0.5
    b = a.copy()
    b[:15] = ~b[:15]                      # b differs from a on 15 samples only
    d = stats.paired_diff_ci(a, b)
    ia, ib = stats.bootstrap_ci(a), stats.bootstrap_ci(b)
    assert d.hi - d.lo < 0.5 * ((ia.hi - ia.lo) + (ib.hi - ib.lo)) / 2
    assert d.mean == pytest.approx(a.mean() - b.mean())


def test_excludes_zero():
    assert stats.paired_diff_ci([1] * 50 + [0] * 50, [0] * 100).excludes_zero()
    assert not stats.paired_diff_ci([1, 0] * 50, [0, 1] * 50).excludes_zero()


def test_hierarchical_interval_widens_with_seed_disagreement():
    rng = np.random.default_rng(2)
    same = np.tile(rng.random(200) < 0.5, (3, 1))
    spread = np.stack([rng.random(200) < p for p in (0.2, 0.5, 0.8)])
    w_same = stats.hierarchical_ci(same, n_boot=500)
    w_spread = stats.hierarchical_ci(spread, n_boot=500)
    assert (w_spread.hi - w_spread.lo) > 2 * (w_same.hi - w_same.lo)


def _exact_hierarchical_cdf(values_ZN):
    """Every equally likely outcome of 'draw Z seeds, then N samples (shared by the drawn seeds)', enumerated."""
    import itertools
    Z, N = values_ZN.shape
    means = [values_ZN[np.ix_(zs, ns)].mean() for zs in itertools.product(range(Z), repeat=Z)
             for ns in itertools.product(range(N), repeat=N)]
    return np.sort(np.array(means))


def test_hierarchical_bootstrap_matches_brute_force_enumeration():
    v = np.array([[0.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
    exact = _exact_hierarchical_cdf(v)                 # 2^2 seed draws × 3^3 sample draws = 108 outcomes
    draws = stats.hierarchical_draws(v, n_boot=100_000, seed=3)
    for x in np.unique(exact):
        p_exact, p_boot = (exact <= x + 1e-12).mean(), (draws <= x + 1e-12).mean()
        assert abs(p_exact - p_boot) < 0.01, f"P(mean ≤ {x}): enumeration {p_exact:.3f}, bootstrap {p_boot:.3f}"


def test_difference_interval_carries_seed_variance():
    """The likely mistake: average the seeds per sample, then bootstrap the pairs — the seeds' disagreement
    vanishes from the interval."""
    rng = np.random.default_rng(0)
    base_N = rng.integers(0, 2, 400).astype(float)
    tuned_ZN = np.stack([np.where(rng.random(400) < p, 1.0, base_N) for p in (0.05, 0.3, 0.55)])
    right = stats.hierarchical_diff_ci(tuned_ZN, base_N[None], n_boot=2000)
    wrong = stats.paired_diff_ci(tuned_ZN.mean(axis=0), base_N, n_boot=2000)
    assert right.mean == pytest.approx(wrong.mean)
    assert (right.hi - right.lo) > 2 * (wrong.hi - wrong.lo), "seed variance must widen the interval"


def test_difference_pairs_seeds_or_broadcasts_a_single_row():
    a = np.array([[1.0, 0.0], [1.0, 1.0]])
    assert stats.hierarchical_diff_ci(a, np.array([[0.0, 0.0]]), n_boot=50).mean == pytest.approx(0.75)
    assert stats.hierarchical_diff_ci(a, a, n_boot=50).mean == 0.0
    with pytest.raises(ValueError, match="cannot pair"):
        stats.hierarchical_diff_ci(a, np.zeros((3, 2)))


def _exact_multilevel_outcomes(v_GZN):
    """Every equally likely outcome of the three-level bootstrap of a tiny array, enumerated."""
    G, Z, N = v_GZN.shape
    out = []
    for gs in itertools.product(range(G), repeat=G):
        for zs in itertools.product(range(Z), repeat=G * Z):
            for ns in itertools.product(range(N), repeat=N):
                rows = [v_GZN[g, zs[i * Z + j]] for i, g in enumerate(gs) for j in range(Z)]
                out.append(np.mean([r[list(ns)] for r in rows]))
    return np.array(out)


def test_multilevel_bootstrap_matches_brute_force_enumeration():
    v = np.array([[[0.0, 1.0], [1.0, 1.0]], [[0.0, 0.0], [1.0, 0.0]]])   # 2 bases × 2 seeds × 2 samples
    exact = _exact_multilevel_outcomes(v)                               # 2^2 × 2^4 × 2^2 = 256 outcomes
    draws = stats.multilevel_draws(v, n_boot=100_000, seed=5)
    for x in np.unique(exact):
        p_exact, p_boot = (exact <= x + 1e-12).mean(), (draws <= x + 1e-12).mean()
        assert abs(p_exact - p_boot) < 0.01, f"P(mean ≤ {x}): enumeration {p_exact:.3f}, bootstrap {p_boot:.3f}"


def test_multilevel_interval_counts_bases_not_models():
    """The likely mistake: treat every (base, seed) model as one more seed of a single base. With bases that
    disagree and seeds that agree within a base, there are three independent units, not nine."""
    rng = np.random.default_rng(1)
    v_GZN = np.stack([np.tile((rng.random(300) < p).astype(float), (3, 1)) for p in (0.2, 0.5, 0.8)])
    right = stats.multilevel_ci(v_GZN, n_boot=4000)
    flat = stats.hierarchical_ci(v_GZN.reshape(9, 300), n_boot=4000)
    assert right.mean == pytest.approx(flat.mean)
    assert (right.hi - right.lo) > 1.4 * (flat.hi - flat.lo)


def test_multilevel_difference_pairs_bases_and_broadcasts_the_base_model():
    a = np.ones((3, 2, 4))
    b = np.zeros((3, 1, 4))
    assert stats.multilevel_diff_ci(a, b, n_boot=50).mean == pytest.approx(1.0)
    assert stats.multilevel_diff_ci(a, a, n_boot=50).mean == 0.0
    with pytest.raises(ValueError, match="cannot pair"):
        stats.multilevel_diff_ci(a, np.zeros((2, 1, 4)))
    with pytest.raises(ValueError, match="bases, seeds, samples"):
        stats.multilevel_draws(np.zeros((3, 4)))
