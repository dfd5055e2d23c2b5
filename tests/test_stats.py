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
