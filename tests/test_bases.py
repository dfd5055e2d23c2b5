"""Several bases: each pre-registered contrast over bases × seeds × samples, and per base."""
import numpy as np
import pandas as pd
import pytest

from rlgen_utils.run import config
from rlgen_utils.studies import bases

FAMILIES = {"arith": 0.4, "wordsum": 0.3, "clock": 0.4, "price": 0.5}
N = 120


def _scores(rng, shared_gain: float, seeds=(0, 1)) -> pd.DataFrame:
    rows = []
    truth = {f: rng.random(N) < p for f, p in FAMILIES.items()}
    models = [("base", -1, {f: 0.0 for f in FAMILIES})]
    models += [("sft", s, {"arith": 0.4, "wordsum": -0.25, "clock": -0.3, "price": -0.4}) for s in seeds]
    models += [("grpo", s, {"arith": 0.3, **{f: shared_gain for f in ("wordsum", "clock", "price")}}) for s in seeds]
    for method, seed, gain in models:
        for f, base_right in truth.items():
            flip = rng.random(N) < abs(gain[f])
            right = np.where(flip, gain[f] > 0, base_right)
            rows += [{"method": method, "seed": seed, "final": True, "family": f, "sample": i, "prompt": f"{f}-{i}",
                      "correct": bool(right[i])} for i in range(N)]
    return pd.DataFrame(rows)


@pytest.fixture
def runs(write_params):
    def make(gains):
        out = []
        for g, gain in enumerate(gains):
            P = config.load_params(write_params({"pretrain": {"seed": g}, "posttrain": {"seeds": [0, 1]},
                                                 "eval": {"preregistration": "prereg/organism-sft-learns.yaml"}},
                                                name=f"base{g}.yaml"))
            out.append(bases.BaseRun(P, _scores(np.random.default_rng(g), gain)))
        return out
    return make


def test_a_contrast_that_reverses_on_one_base_does_not_hold_on_every_base(runs):
    table = bases.outcome_table(runs([0.5, 0.5, -0.5]), n_boot=500)
    shared = table[(table.contrast == "grpo − base") & (table.scope == "shared_skill (pooled)")].iloc[0]
    assert shared.bases_matched == 2 and shared.n_bases == 3
    assert not shared.matched, "two bases up and one down is no positive effect over bases"
    assert shared.hi - shared.lo > 0.3, "the interval must carry the bases' disagreement"
    sft = table[(table.contrast == "sft − base") & (table.scope == "arith")].iloc[0]
    assert sft.matched and sft.bases_matched == 3
    text = bases.summary(table)
    assert text.value("held_on_every_base") >= 1 and text.value("not_matched") >= 1
    assert set(bases.display(table).columns) >= {"base_0", "base_1", "base_2", "on_every_base"}


def test_bases_must_answer_the_same_questions_and_be_distinct(runs):
    rs = runs([0.2, 0.2])
    changed = rs[1].scores.assign(prompt=rs[1].scores.prompt + "?")
    with pytest.raises(ValueError, match="other questions"):
        bases.check_paired([rs[0], bases.BaseRun(rs[1].params, changed)])
    with pytest.raises(ValueError, match="share a base"):
        bases.check_paired([rs[0], rs[0]])
    with pytest.raises(ValueError, match="at least two"):
        bases.check_paired(rs[:1])
