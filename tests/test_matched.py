"""Monotone curves through the origin and comparisons only where both methods have models
(rlgen_utils.method.curves, rlgen_utils.studies.matched)."""
import numpy as np
import pandas as pd
import pytest

from rlgen_utils.method import curves
from rlgen_utils.studies import matched


def test_the_curve_passes_through_the_origin_and_is_monotone_where_the_points_are_not():
    x, y = np.array([0.1, 0.2, 0.3, 0.4]), np.array([-0.05, -0.02, -0.2, -0.3])   # one violation
    knots = curves.monotone_through_origin(x, y)
    assert knots[0][0] == 0 and curves.evaluate(knots, [0.0])[0] == pytest.approx(0.0, abs=1e-6)
    assert (np.diff(knots[1]) <= 1e-12).all(), "non-increasing, as the origin slope is negative"
    assert knots[1][1:3] == pytest.approx([-0.035, -0.035]), "the violating pair pooled to its mean"
    assert curves.origin_slope(x, 2 * x) == pytest.approx(2.0)
    assert (np.diff(curves.monotone_through_origin(x, -y)[1]) >= -1e-12).all(), "a rising cloud: non-decreasing"


def test_covered_is_the_overlap_of_the_models_not_of_the_origin():
    assert curves.covered([0.2, 0.5], [0.01, 0.3]) == (0.2, 0.3)
    assert curves.covered([0.2, 0.5], [0.01, 0.02]) is None


def _table(sft_kl, rl_kl, seeds=(0,)):
    rows = []
    for s in seeds:
        for k in sft_kl:
            rows.append({"method": "sft", "seed": s, "kl": k, "Δ in-domain": 2 * k, "Δ OOD": -k + 0.01 * s})
        for k in rl_kl:
            rows.append({"method": "grpo", "seed": s, "kl": k, "Δ in-domain": 20 * k, "Δ OOD": 0.0})
    return pd.DataFrame(rows)


def test_no_statement_outside_the_range_both_methods_cover():
    """The mistake issue 28 found: SFT's line extrapolated from its smallest KL down to GRPO's."""
    t = _table([0.2, 0.4], [0.01, 0.02])
    assert matched.matched_table(t, "kl").empty
    found = matched.findings(t)
    assert found.value("kl_comparable") is False and found.value("gain_comparable") is True


def test_matched_difference_inside_the_covered_range_with_a_seed_interval():
    t = _table([0.05, 0.1, 0.2], [0.02, 0.08, 0.15], seeds=(0, 1, 2))
    m = matched.matched_table(t, "kl", n_boot=200)
    assert m["x"].min() == pytest.approx(0.05) and m["x"].max() == pytest.approx(0.15)
    assert (m.difference > 0).all() and (m.lo <= m.difference).all() and (m.difference <= m.hi).all()
    assert (m.seeds == 3).all()
    one = matched.matched_table(_table([0.05, 0.1], [0.02, 0.08]), "kl")
    assert one.lo.isna().all(), "one training seed: no interval, never a made-up one"
