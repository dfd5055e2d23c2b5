"""Notebook 02's new tables on hand-made frames: KL fits, accuracy changes, pools, format channel, prereg."""
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from rlgen_utils.run.preregistration import Expectation, Preregistration
from rlgen_utils.studies import evaluate, forgetting, prereg, render, train
from rlgen_utils.world import suite


def test_fit_line_recovers_a_line_and_reports_r2():
    x = np.array([0.0, 0.1, 0.2, 0.3])
    f = forgetting.fit_line(x, 0.05 - 0.4 * x)
    assert f["slope"] == pytest.approx(-0.4) and f["intercept"] == pytest.approx(0.05) and f["r2"] == pytest.approx(1)
    noisy = forgetting.fit_line(x, np.array([0.0, 0.1, -0.1, 0.0]))
    assert 0 <= noisy["r2"] < 0.5 and noisy["n"] == 4
    assert np.isnan(forgetting.fit_line(np.ones(4), x)["r2"]), "a constant KL cannot be fitted"


def test_kl_fits_put_sweep_models_with_sft_and_pool_everything():
    t = pd.DataFrame({"method": ["sft", "sft", "sft-lr1e-05", "grpo", "grpo", "grpo"],
                      "kl": [0.1, 0.2, 0.05, 0.01, 0.02, 0.03], "Δ OOD": [-0.1, -0.2, -0.05, 0.0, 0.0, 0.0]})
    fits = forgetting.kl_fits(t).set_index("models")
    assert fits.loc["sft", "n"] == 3 and fits.loc["sft", "slope"] == pytest.approx(-1.0)
    assert fits.loc["all (pooled)", "n"] == 6


def _scores():
    rows = []
    spec = {("base", -1, 0): {"arith": [0, 0], "cmp": [1, 1]}, ("sft", 0, 1): {"arith": [1, 1], "cmp": [0, 1]},
            ("grpo", 0, 1): {"arith": [1, 0], "cmp": [1, 1]}}
    for (m, s, k), fams in spec.items():
        for fam, ok in fams.items():
            for i, c in enumerate(ok):
                rows.append(dict(method=m, seed=s, checkpoint=k, final=True, family=fam,
                                 role="in_domain" if fam == "arith" else "ood_select", sample=i,
                                 completion="1+1=2####2" if m == "grpo" else "2", correct=bool(c)))
    return pd.DataFrame(rows)


def test_accuracy_changes_are_against_the_base(monkeypatch):
    monkeypatch.setattr(forgetting.suite, "world", lambda P: SimpleNamespace(in_domain_family="arith"))
    d = forgetting.accuracy_changes(None, _scores()).set_index("method")
    assert d.loc["sft", "Δ in-domain"] == 1.0 and d.loc["sft", "Δ OOD"] == -0.5
    assert d.loc["grpo", "Δ in-domain"] == 0.5 and d.loc["grpo", "Δ OOD"] == 0.0
    assert "base" not in d.index


def test_pool_contrasts_partition_the_pool():
    pool = pd.DataFrame({"method": ["base"] * 4 + ["grpo"] * 4, "family": "cmp", "sample": [0, 1, 2, 3] * 2,
                         "correct": [1, 1, 0, 0, 1, 0, 1, 0]})
    P = SimpleNamespace(crosscoder=SimpleNamespace(rl_method="grpo"))
    sets = evaluate.pool_contrasts(P, pool)["cmp"]
    assert sets == {"rl_right_base_wrong": [2], "base_right_rl_wrong": [1], "both_right": [0], "both_wrong": [3]}
    assert evaluate.pool_counts({"cmp": sets}).loc["cmp"].tolist() == [1, 1, 1, 1, 4]


def _families(monkeypatch):
    fams = {"arith": suite.EvalFamily("arith", "in_domain", 0.0, (), "task", "in_domain"),
            "cmp": suite.EvalFamily("cmp", "ood_select", 0.0, (), "task", "format_only")}
    monkeypatch.setattr(suite, "world", lambda P: SimpleNamespace(eval_families=lambda: fams, in_domain_family="arith"))


def test_format_table_counts_chains_and_unparseable_answers(monkeypatch):
    _families(monkeypatch)
    t = evaluate.format_table(None, _scores()).set_index(["model", "family"])
    assert t.loc[("grpo", "cmp"), "chain"] == 1.0 and t.loc[("sft", "cmp"), "chain"] == 0.0
    assert t.loc[("sft", "cmp"), "unparseable"] == 0.0 and t.loc[("base", "arith"), "class"] == "in_domain"


def test_outcome_table_checks_each_family_and_the_pooled_class(monkeypatch):
    _families(monkeypatch)
    pre = Preregistration(written="test", families={"arith": "in_domain", "cmp": "format_only"}, expectations=[
        Expectation(contrast=("sft", "base"), applies_to="in_domain", expect="positive", why="learns"),
        Expectation(contrast=("sft", "base"), applies_to="cmp", expect="no_change", why="no skill"),
        Expectation(contrast=("ppo", "base"), applies_to="cmp", expect="positive", why="not trained")])
    t = prereg.outcome_table(None, pre, _scores())
    assert t.matched.tolist()[:2] == [True, True] and t.matched.tolist()[2] is None
    assert t.scope.tolist()[:2] == ["arith", "cmp"]
    found = prereg.summary(t)
    assert (found.value("matched"), found.value("checked")) == (2, 2) and "2 of 2" in render.markdown(found)
    table = prereg.class_table(None, pre)
    assert table.agree.all()


def test_validation_chooses_one_rate_and_checkpoint_and_a_tie_goes_to_the_smaller_and_earlier():
    """The likely mistakes: taking the last checkpoint or the largest rate when validation ties, or flagging every
    rate that ties as chosen."""
    grid = pd.DataFrame({"lr": [3e-5, 3e-5, 1e-4, 1e-4, 3e-4, 3e-4], "checkpoint": [1, 2, 1, 2, 1, 2],
                         "validation accuracy": [0.2, 0.3, 0.5, 0.5, 0.5, 0.4]})
    assert train.choose(grid) == {"lr": 1e-4, "checkpoint": 1, "validation accuracy": 0.5}
    assert train.choose(grid[grid.lr == 3e-5])["checkpoint"] == 2, "within a rate, the better checkpoint"
    assert train.still_rising(grid, {"lr": 3e-5, "checkpoint": 2}) is True, "best at the last checkpoint, +0.1: too short"
    assert not train.still_rising(grid, train.choose(grid)), "best at an earlier checkpoint: validation stopped"
    post = SimpleNamespace(sft_sweep=[3e-5, 1e-4, 3e-4], grpo=SimpleNamespace(lr=3e-5))
    P = SimpleNamespace(train_seeds=[0], posttrain=post, crosscoder=SimpleNamespace(rl_method="grpo"))
    methods = ["sft-lr3e-05", "sft", "sft-lr0.0003", "grpo"]
    moved = pd.DataFrame({"method": methods, "seed": 0, "final": True, "kl": [0.1, 0.2, 0.4, 0.02],
                          "Δ in-domain": [0.0, 0.1, 0.1, 0.3], "Δ OOD": [0.0, -0.1, -0.2, 0.0]})
    val = pd.DataFrame({"model": ["sft lr=3e-05", "sft lr=0.0001", "sft lr=0.0003", "grpo lr=3e-05"],
                        "validation accuracy": [0.2, 0.5, 0.5, 0.7]})
    t = forgetting.sweep_table(P, moved, val, chosen=1e-4).set_index("model")
    assert t["chosen by validation"].fillna(False).tolist() == [False, True, False, False]
    assert t.loc["sft lr=0.0001", "KL"] == 0.2 and t.loc["grpo lr=3e-05", "KL"] == 0.02
