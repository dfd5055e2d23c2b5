"""Scoring tables on hand-made per-sample frames whose answers are known."""
from types import SimpleNamespace

import pandas as pd
import pytest

from rlgen_utils.studies import evaluate


def _frame(spec):
    """spec: {(method, seed, checkpoint, final): {family: [correct per sample]}}"""
    rows = []
    for (method, seed, ckpt, final), fams in spec.items():
        for family, correct in fams.items():
            role = "in_domain" if family == "arith" else "ood_select"
            for i, c in enumerate(correct):
                rows.append(dict(method=method, seed=seed, checkpoint=ckpt, final=final, family=family,
                                 role=role, sample=i, prompt=f"p{i}", completion="", parsed="", correct=bool(c)))
    return pd.DataFrame(rows)


DF = _frame({
    ("base", -1, 0, True): {"arith": [0, 0, 1, 0], "cmp": [1, 0, 0, 1]},
    ("sft", 0, 1, False): {"arith": [1, 0, 1, 0], "cmp": [0, 0, 0, 1]},
    ("sft", 0, 2, True): {"arith": [1, 1, 1, 0], "cmp": [0, 0, 0, 0]},
    ("grpo", 0, 1, False): {"arith": [0, 1, 1, 0], "cmp": [1, 1, 0, 1]},
    ("grpo", 0, 2, True): {"arith": [1, 1, 1, 1], "cmp": [1, 1, 1, 1]},
})


def test_right_wrong_sets_pick_samples_where_tuned_is_right_and_base_wrong():
    assert evaluate.right_wrong_sets(DF, "grpo") == {"cmp": {0: [1, 2]}}
    assert evaluate.right_wrong_sets(DF, "sft") == {"cmp": {0: []}}
    assert evaluate.right_wrong_sets(DF, "grpo", roles=("in_domain",)) == {"arith": {0: [0, 1, 3]}}


def test_accuracy_uses_the_final_checkpoint():
    acc = evaluate.accuracy_long(DF).set_index(["method", "family"])["accuracy"]
    assert acc["sft", "arith"] == pytest.approx(0.75), "must read the final checkpoint, not the first"
    assert acc["grpo", "cmp"] == 1.0 and acc["base", "cmp"] == 0.5


def test_paired_delta_and_table_shape(monkeypatch):
    d = evaluate.delta_long(DF, "grpo", "sft").set_index("family")
    assert d.loc["cmp", "delta"] == pytest.approx(1.0) and d.loc["cmp", "excludes_zero"]
    assert d.loc["arith", "delta"] == pytest.approx(0.25)
    monkeypatch.setattr(evaluate.suite, "world", lambda _P: SimpleNamespace(eval_families=lambda: {"arith": None, "cmp": None}))
    P = SimpleNamespace(posttrain=SimpleNamespace(methods=["sft", "grpo"]))
    t = evaluate.table1(DF, P)
    assert list(t.index[:3]) == ["base", "sft", "grpo"] and "grpo − sft" in t.index
    assert list(t.columns) == ["arith", "cmp"]


def test_checkpoint_curves_start_at_the_base():
    c = evaluate.checkpoint_curves(DF)
    g = c[(c.method == "grpo") & (c.family == "cmp")].set_index("checkpoint")["accuracy"]
    assert g.to_dict() == {0: 0.5, 1: 0.75, 2: 1.0}


def test_a_multi_seed_model_is_compared_with_every_seed_of_a_single_seed_one():
    two = pd.concat([DF, DF[DF.method == "grpo"].assign(seed=1, correct=False)])
    d = evaluate.delta_long(two, "grpo", "sft").set_index("family")
    assert d.loc["cmp", "delta"] == pytest.approx(0.5)
    acc = evaluate.accuracy_long(two).set_index(["method", "family"])
    assert acc.loc[("grpo", "cmp"), "n_seeds"] == 2 and acc.loc[("grpo", "cmp"), "accuracy"] == 0.5


def test_pooling_a_role_keeps_every_family_sample():
    """The likely mistake: pivoting pooled families on the sample index silently keeps one family's rows."""
    two = pd.concat([DF, DF[DF.family == "cmp"].assign(family="sort")])
    pooled = evaluate.pool_by_role(two[two.role == "ood_select"])
    acc = evaluate.accuracy_long(pooled).set_index(["method", "family"])
    assert acc.loc[("grpo", "ood_select (mean)"), "n_samples"] == 8
    assert acc.loc[("sft", "ood_select (mean)"), "accuracy"] == 0.0
