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
