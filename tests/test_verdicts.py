"""Typed verdicts: the decision rule, each mechanistic study's verdict on hand-made numbers, and the record that the
README's claims table is written from. The likely mistakes: calling a claim reproduced when the null is as large as
the effect, or deciding when the seed ranges overlap."""
import json

import pandas as pd
import pytest
import torch

from rlgen_utils.run.config import load_params
from rlgen_utils.studies import (
    baselines,
    circuit_claims,
    crosscoder_claims,
    dynamics_claims,
    intervention_claims,
    nulls,
    render,
    results,
    verdicts,
)
from rlgen_utils.studies.crosscoder import PairKey
from rlgen_utils.studies.verdicts import Verdict, decide


def _validation(tmp_path, behaviour_seen: bool = True, control_seen: bool = False, name: str = "v.json"):
    """A known-cause validation file: both crosscoder instruments on a behaviour fine-tune and a control."""
    rows = [{"instrument": i, "cause": c, "dose": 1.0, "detected": d}
            for i in (crosscoder_claims.PAIR_INSTRUMENT, crosscoder_claims.MAS_INSTRUMENT)
            for c, d in (("behaviour", behaviour_seen), ("control", control_seen))]
    path = tmp_path / name
    path.write_text(json.dumps({"rows": rows}))
    return path


def _dating(tmp_path, detected: bool = True, false_positive: bool = False, name: str = "dating.json"):
    """A dating validation file (``benchmarks/bench_dating_validation.py``): one cause pair and one control pair."""
    path = tmp_path / name
    path.write_text(json.dumps({"rows": [
        {"dose": 1.0, "pair": "cause", "detected": detected, "false positive": None},
        {"dose": 1.0, "pair": "control", "detected": None, "false positive": false_positive}]}))
    return path


@pytest.fixture
def P(write_params, tmp_path, monkeypatch):
    """Params whose crosscoder instruments have demonstrated power (a validation that saw the behaviour) and whose
    notebook 04 dated a change whose date is known."""
    path, dating = _validation(tmp_path), _dating(tmp_path)
    monkeypatch.setattr(crosscoder_claims, "validation_file", lambda P: path)
    monkeypatch.setattr(dynamics_claims, "dating_file", lambda P: dating)
    return load_params(write_params())


def test_decide_reads_power_first_then_direction():
    assert decide(True, False, False) == "not testable at this power", "untestable data must decide nothing"
    assert decide(True, False, True) == "reproduced"
    assert decide(False, False, True) == "not reproduced"
    assert decide(True, True, True) == "not reproduced"
    with pytest.raises(ValueError, match="decision"):
        Verdict("c", "03", 0.0, None, "n", "maybe", "l")  # type: ignore[arg-type]


def _nrn(n_tuned: int, n: int = 100) -> torch.Tensor:
    """NRN values: ``n_tuned`` tuned-only latents (0.9), the rest shared (0.5)."""
    return torch.tensor([0.9] * n_tuned + [0.5] * (n - n_tuned))


def _pairs(sft: int, rl: int, copy: int, noise_sft: int, noise_rl: int) -> dict:
    return {PairKey("sft"): _nrn(sft), PairKey("grpo"): _nrn(rl), nulls.NULL_PAIR: _nrn(copy),
            nulls.noise_pair("sft"): _nrn(noise_sft), nulls.noise_pair("grpo"): _nrn(noise_rl)}


@pytest.mark.parametrize("counts,expected", [
    ((20, 2, 1, 1, 1), "reproduced"),
    ((5, 0, 5, 0, 0), "not reproduced"),      # SFT's count is the identical copy's: no excess
    ((5, 0, 0, 6, 0), "not reproduced"),      # … or no more than a random update of the same size gives
    ((2, 9, 0, 0, 0), "not reproduced"),      # the opposite of the paper
])
def test_ownership_verdict_subtracts_the_larger_null(P, counts, expected):
    [v] = crosscoder_claims.verdicts(P, ("base", "sft", "grpo"), _pairs(*counts))
    assert v.decision == expected, v.detail
    assert "identical copy" in v.null and v.limit


@pytest.mark.parametrize("behaviour_seen,control_seen,missing", [(False, False, False), (True, True, False),
                                                                 (True, False, True)])
def test_an_absence_is_not_testable_without_power_shown_on_a_known_cause(P, tmp_path, monkeypatch,
                                                                        behaviour_seen, control_seen, missing):
    """03 once passed a literal True as "testable": with no instrument shown to find a fine-tune of known cause,
    "0 tuned-only latents" was printed as "not reproduced". A find stays a find; an absence needs the power."""
    path = tmp_path / "absent.json" if missing else _validation(tmp_path, behaviour_seen, control_seen, "w.json")
    monkeypatch.setattr(crosscoder_claims, "validation_file", lambda P: path)
    [absent] = crosscoder_claims.verdicts(P, ("base", "sft", "grpo"), _pairs(5, 0, 5, 0, 0))
    assert absent.decision == "not testable at this power", absent.limit
    assert "known" in absent.limit
    [found] = crosscoder_claims.verdicts(P, ("base", "sft", "grpo"), _pairs(20, 2, 1, 1, 1))
    assert found.decision == "reproduced"
    [opposite] = crosscoder_claims.verdicts(P, ("base", "sft", "grpo"), _pairs(2, 9, 0, 0, 0))
    assert opposite.decision == "not reproduced", "the opposite effect is a finding, not an absence"


def _owned(real: tuple[int, int], copy: tuple[int, int], noise: tuple[int, int]) -> pd.DataFrame:
    """:func:`crosscoder.ownership` with the three-model nulls: (sft, grpo) owned counts per column."""
    return pd.DataFrame({"owner": ["base", "sft", "grpo", "shared"],
                         "crosscoder": [3, *real, 500], nulls.COPY_TRIO: [2, *copy, 500],
                         nulls.NOISE_TRIO: [2, *noise, 500]})


@pytest.mark.parametrize("real,copy,noise,expected", [
    ((30, 4), (2, 2), (5, 3), "reproduced"),
    ((30, 4), (2, 2), (31, 3), "not reproduced"),     # a random update of SFT's size owns as much
    ((6, 4), (6, 1), (0, 0), "not reproduced"),       # identical copies own as much in SFT's slot
    ((4, 30), (2, 2), (5, 3), "not reproduced"),      # the opposite of the paper
])
def test_three_model_ownership_verdict_reads_both_three_model_nulls(P, real, copy, noise, expected):
    pair, mas = crosscoder_claims.verdicts(P, ("base", "sft", "grpo"), _pairs(20, 2, 1, 1, 1),
                                    _owned(real, copy, noise))
    assert pair.decision == "reproduced", "the pair view must not be changed by the three-model nulls"
    assert mas.decision == expected, mas.detail
    assert "MAS" in mas.claim and "random updates" in mas.null


def _overlaps(sft: tuple[float, float], rl: tuple[float, float], n: int = 3) -> pd.DataFrame:
    """An overlap table whose [min, max] over seeds is the given range at every checkpoint (both columns)."""
    rows = []
    for method, (lo, hi) in (("sft", sft), ("grpo", rl)):
        for k in range(1, n + 1):
            rows.append({"method": method, "checkpoint": k, "first_vs_last": (lo + hi) / 2, "fvl_lo": lo, "fvl_hi": hi,
                         "neighbour": (lo + hi) / 2 if k > 1 else float("nan"), "nb_lo": lo if k > 1 else float("nan"),
                         "nb_hi": hi if k > 1 else float("nan"), "tuned_only": 0})
    return pd.DataFrame(rows)


def _null(lo: float, hi: float) -> pd.DataFrame:
    return _overlaps((lo, hi), (lo, hi)).assign(method=lambda d: "null (" + d.method + " slots)")


def test_dynamics_verdict_needs_separated_seed_ranges_and_a_cleared_null(P):
    stable, evolving = dynamics_claims.verdicts(P, _overlaps((0.6, 0.7), (0.2, 0.3)), _null(0.35, 0.45))
    assert stable.decision == "reproduced" and evolving.decision == "reproduced"
    overlapping = dynamics_claims.verdicts(P, _overlaps((0.4, 0.7), (0.3, 0.5)), _null(0.1, 0.2))
    assert {v.decision for v in overlapping} == {"not testable at this power"}, "overlapping seed ranges decide nothing"
    inside = dynamics_claims.verdicts(P, _overlaps((0.6, 0.7), (0.2, 0.3)), _null(0.1, 0.9))
    assert {v.decision for v in inside} == {"not reproduced"}, "a value inside the identical-copy null is no evidence"
    reverse = dynamics_claims.verdicts(P, _overlaps((0.2, 0.3), (0.6, 0.7)), _null(0.35, 0.45))
    assert {v.decision for v in reverse} == {"not reproduced"}


@pytest.mark.parametrize("detected, false_positive, missing, expected", [
    (True, False, False, ("reproduced", "not reproduced")),
    (False, False, False, ("reproduced", "not testable at this power")),   # blind to a known date: no absence
    (True, True, False, ("not testable at this power", "not reproduced")),  # a control decided: no presence
    (True, False, True, ("not testable at this power",) * 2),               # never validated: nothing decided
])
def test_dynamics_verdict_reads_its_power_from_the_known_cause_dating(P, tmp_path, monkeypatch, detected,
                                                                     false_positive, missing, expected):
    path = tmp_path / "none.json" if missing else _dating(tmp_path, detected, false_positive, "d2.json")
    monkeypatch.setattr(dynamics_claims, "dating_file", lambda P: path)
    seen = dynamics_claims.verdicts(P, _overlaps((0.6, 0.7), (0.2, 0.3)), _null(0.35, 0.45))[0]
    absent = dynamics_claims.verdicts(P, _overlaps((0.6, 0.7), (0.2, 0.3)), _null(0.1, 0.9))[0]
    assert (seen.decision, absent.decision) == expected
    assert "dating" in seen.limit


def _walk(sft: float, rl: float) -> pd.DataFrame:
    return _overlaps((sft, sft), (rl, rl)).assign(method=lambda d: "random walk like " + d.method)


def test_dynamics_verdict_asks_for_more_than_random_walks_of_the_same_geometry_give(P):
    table, null = _overlaps((0.6, 0.7), (0.2, 0.3)), _null(0.35, 0.45)
    weak = dynamics_claims.verdicts(P, table, null, _walk(0.7, 0.2))      # walks differ by 0.50, the models by 0.40
    assert {v.decision for v in weak} == {"not reproduced"}, (
        "an SFT−RL difference that random walks of the same geometry show too is not evidence of dynamics")
    strong = dynamics_claims.verdicts(P, table, null, _walk(0.4, 0.35))   # walks differ by 0.05
    assert {v.decision for v in strong} == {"reproduced"}
    assert "random walks" in strong[0].null
    assert dynamics_claims.verdicts(P, table, null, pd.DataFrame()) == dynamics_claims.verdicts(P, table, null), (
        "a skipped walk (walk_seeds: []) decides as without it")


def _line(sft: float, rl: float) -> pd.DataFrame:
    return _overlaps((sft, sft), (rl, rl)).assign(method=lambda d: "fixed direction like " + d.method)


def test_dynamics_verdict_asks_for_more_than_fixed_directions_to_the_final_models_give(P):
    """A method whose distance from the base grows early stabilises early even on a straight line to its final
    model: an SFT − RL difference that the fixed-direction null shows too is the norm schedule, not dynamics."""
    table, null, walk = _overlaps((0.6, 0.7), (0.2, 0.3)), _null(0.35, 0.45), _walk(0.4, 0.35)
    assert {v.decision for v in dynamics_claims.verdicts(P, table, null, walk)} == {"reproduced"}
    lined = dynamics_claims.verdicts(P, table, null, walk, None, _line(0.9, 0.45))   # lines differ by 0.45
    assert {v.decision for v in lined} == {"not reproduced"} and "fixed directions" in lined[0].null
    clear = dynamics_claims.verdicts(P, table, null, walk, None, _line(0.9, 0.8))    # lines differ by 0.10
    assert {v.decision for v in clear} == {"reproduced"}
    assert dynamics_claims.verdicts(P, table, null, walk, None, pd.DataFrame()) == dynamics_claims.verdicts(
        P, table, null, walk), "a skipped line (line_seeds: []) decides as without it"
    shown = dynamics_claims.null_findings(P, table, null, walk, _line(0.9, 0.45))
    assert any("fixed direction" in f.text for f in shown.items)


def _pairwise(sft: float, rl: float, n: int = 3) -> pd.DataFrame:
    return pd.DataFrame([{"method": m, "checkpoint": k, "first_vs_last_matched": v,
                          "neighbour_matched": v if k > 1 else float("nan")}
                         for m, v in (("sft", sft), ("grpo", rl)) for k in range(1, n + 1)])


def test_dynamics_verdict_needs_the_pairwise_cross_check_to_agree(P):
    """04 once marked "SFT stabilises early" reproduced while the paper's own pairwise method ordered the two
    paradigms the other way: two instruments that contradict each other decide nothing."""
    table, null = _overlaps((0.6, 0.7), (0.2, 0.3)), _null(0.35, 0.45)
    agree = dynamics_claims.verdicts(P, table, null, None, _pairwise(0.7, 0.4))
    assert {v.decision for v in agree} == {"reproduced"} and "agrees" in agree[0].limit
    against = dynamics_claims.verdicts(P, table, null, None, _pairwise(0.50, 0.65))
    assert {v.decision for v in against} == {"not testable at this power"}, [v.limit for v in against]
    assert "contradict" in against[0].limit
    assert dynamics_claims.verdicts(P, table, null, None, pd.DataFrame()) == dynamics_claims.verdicts(P, table, null)


def test_verdicts_are_recorded_and_rendered_for_the_readme(P, tmp_path):
    vs = crosscoder_claims.verdicts(P, ("base", "sft", "grpo"), _pairs(20, 2, 1, 1, 1))
    shown = verdicts.record(P, "03_crosscoder", vs)
    assert list(shown.decision) == ["reproduced"]
    assert verdicts.load_all(P) == vs
    md = results.verdict_section(P)
    assert "**reproduced**" in md and "sft adds more model-specific latents than grpo" in md


def test_detection_limit_is_read_from_the_benchmark_rows(tmp_path):
    rows = [{"kappa": 0.25, "rate": r, "found": f, "planted": 16, "recall": f / 16} for r, f in
            ((0.001, 7), (0.003, 14), (0.01, 16))] + [{"kappa": 0.1, "rate": 0.03, "found": 2, "planted": 16,
                                                       "recall": 0.125}]
    path = tmp_path / "dp.json"
    path.write_text(json.dumps({"rows": rows}))
    text = verdicts.detection_limit(path)
    assert "κ 0.25: ≥ 0.3% of tokens" in text and "κ 0.1: not found up to 3% of tokens" in text
    assert "unmeasured" in verdicts.detection_limit(tmp_path / "missing.json")


def _metric_rows(P, pair: str, after: str, intensity_lo: float, entropy_lo: float, scale_free_lo: float,
                 n: int = 12) -> list[dict]:
    base = {"pair": pair, "model_before": "base", "model_after": after, "score": P.circuits.scores[0],
            "alpha": P.circuits.main_alpha, "n": n}
    # an interval above 0 is a rise; one below +0.02 (before = 1: under the 5 % minimum effect) is no rise
    return [{**base, "metric": m, "delta_lo": lo, "delta_hi": lo + 0.1 if lo > 0 else 0.02, "before": 1.0} for m, lo in
            (("intensity", intensity_lo), ("entropy", entropy_lo), ("entropy (scale-free)", scale_free_lo))]


POWER = {cid: (True, True, "ungated") for cid in ("paper", "scale_free", "exact")}
"""Notebook 05's readings with their power given (the known-edit validation is tested on its own below)."""


def test_circuit_verdict_needs_every_online_rl_pair_and_no_dpo_pair(P):
    paper_like = pd.DataFrame(_metric_rows(P, "base→grpo", "grpo", 0.1, 0.2, -0.1)
                              + _metric_rows(P, "base→dpo", "dpo", -0.1, 0.1, -0.1))
    paper, scale_free = circuit_claims.verdicts(P, paper_like, POWER)
    assert paper.decision == "reproduced" and scale_free.decision == "not reproduced", \
        "an entropy rise that vanishes without the scale must not pass the scale-free reading"
    both_rise = pd.DataFrame(_metric_rows(P, "base→grpo", "grpo", 0.1, 0.2, 0.1)
                             + _metric_rows(P, "base→dpo", "dpo", 0.1, 0.1, 0.1))
    assert {v.decision for v in circuit_claims.verdicts(P, both_rise, POWER)} == {"not reproduced"}
    no_dpo = pd.DataFrame(_metric_rows(P, "base→grpo", "grpo", 0.1, 0.2, 0.1))
    assert {v.decision for v in circuit_claims.verdicts(P, no_dpo, POWER)} == {"not testable at this power"}
    few = pd.DataFrame(_metric_rows(P, "base→grpo", "grpo", 0.1, 0.2, 0.1)
                       + _metric_rows(P, "sft→sft_grpo", "sft_grpo", -0.1, -0.1, -0.1, n=3)
                       + _metric_rows(P, "base→dpo", "dpo", -0.1, 0.1, -0.1))
    paper, _ = circuit_claims.verdicts(P, few, POWER)
    assert paper.decision == "reproduced" and "sft→sft_grpo (3)" in paper.limit, \
        "a pair of 3 questions must be left out, not counted as a failure to rise"


def _exact(rows: list[dict]) -> list[dict]:
    return [{**r, "score": "exact"} for r in rows]


def test_exact_ablation_reading_is_a_verdict_of_its_own(P):
    first = (_metric_rows(P, "base→grpo", "grpo", 0.1, 0.2, -0.1) + _metric_rows(P, "base→dpo", "dpo", -0.1, 0.1, -0.1))
    exact_flat = _exact(_metric_rows(P, "base→grpo", "grpo", -0.1, 0.2, -0.1)
                        + _metric_rows(P, "base→dpo", "dpo", -0.1, 0.1, -0.1))
    paper, _, exact = circuit_claims.verdicts(P, pd.DataFrame(first + exact_flat), POWER)
    assert paper.decision == "reproduced" and exact.decision == "not reproduced", (
        "the exact-ablation reading must be decided from the exact rows, not from the first-order ones")
    assert "exact" in exact.claim
    assert len(circuit_claims.verdicts(P, pd.DataFrame(first), POWER)) == 2, "no exact rows, no exact verdict"


def test_first_order_and_exact_directions_are_compared_cell_by_cell(P):
    def rows(score, *deltas):
        return [{"pair": "base → grpo", "score": score, "alpha": P.circuits.main_alpha, "metric": m, "delta": d,
                 "delta_lo": d - 0.05, "delta_hi": d + 0.05} for m, d in zip(("intensity", "entropy", "kurtosis"), deltas)]
    table = pd.DataFrame(rows(P.circuits.scores[0], 0.2, 0.0, -0.2) + rows("exact", 0.2, 0.3, 0.0))
    cmp = circuit_claims.first_order_vs_exact(P, table)
    assert cmp["agree"].tolist() == [True, False, False], cmp
    assert cmp.loc[("base → grpo", "entropy"), "exact"] == "↑" and cmp.loc[("base → grpo", "entropy"),
                                                                           P.circuits.scores[0]] == "·"
    found = circuit_claims.exact_agreement_findings(P, table)
    assert (found.value("cells_agreeing"), found.value("cells")) == (1, 3) and "1 of 3" in render.markdown(found)
    assert circuit_claims.first_order_vs_exact(P, table[table.score != "exact"]).empty


KNOWN = (True, True, True, "ungated")   # 06's selection and edit shown to find a known cause, cleanly


def test_intervention_verdicts_without_a_selected_set(P):
    from rlgen_utils.studies import interventions as study
    groups = {"cmp": {"target": [1, 2], "control": [3], "test": [4], "test_all": [4, 5]}}
    empty = study.FeatureSelection(groups=groups, scores={}, pvalues={}, sets={"cmp": []}, selected=[],
                                   firing=[0.1] * 64, n_alive=64, rule="paper")
    found, causal = intervention_claims.verdicts(P, empty, pd.DataFrame(), KNOWN)
    assert found.decision == "not reproduced" and causal.decision == "not testable at this power"
    no_family = study.FeatureSelection(groups={}, scores={}, pvalues={}, sets={}, selected=[], firing=[0.1] * 64,
                                       n_alive=64, rule="paper")
    assert intervention_claims.verdicts(P, no_family, pd.DataFrame(), KNOWN)[0].decision == "not testable at this power"


def _selection(counts: dict[str, tuple[int, int]], selected: list[int], combine: str = "pooled", n_alive=1000):
    from rlgen_utils.studies import interventions as study
    groups = {f: {"target": list(range(n)), "control": list(range(k)), "test": [0], "test_all": [0]}
              for f, (n, k) in counts.items()}
    return study.FeatureSelection(groups=groups, scores={f: [] for f in counts}, pvalues={},
                                  sets={f: [] for f in counts}, selected=selected, firing=[0.1] * n_alive,
                                  n_alive=n_alive, rule="contrast", combine=combine)


def test_a_selection_that_finds_nothing_is_not_testable_below_its_stated_power(P):
    """06 once called its test "reachable" from the p-value floor alone: with 7–52 targets per family nothing
    could be found, and "not reproduced" was printed. Testability now follows from the simulated power."""
    P = P.model_copy(update={"interventions": P.interventions.model_copy(update={"n_perm": 39999})})
    small = _selection({"a": (8, 100), "b": (12, 100), "c": (10, 100)}, [])
    large = _selection({"a": (300, 100), "b": (300, 100), "c": (300, 100)}, [])
    assert intervention_claims.power(P, small) < P.interventions.min_power <= intervention_claims.power(P, large)
    assert intervention_claims.verdicts(P, small, pd.DataFrame(), KNOWN)[0].decision == "not testable at this power"
    assert intervention_claims.verdicts(P, large, pd.DataFrame(), KNOWN)[0].decision == "not reproduced"
    assert "simulated power" in intervention_claims.verdicts(P, small, pd.DataFrame(), KNOWN)[0].limit
    found = _selection({"a": (8, 100), "b": (12, 100)}, [3, 7])
    assert intervention_claims.verdicts(P, found, pd.DataFrame(), KNOWN)[0].decision == "reproduced", (
        "a set the pooled test kept is a find whatever the power (the FDR guards it)")
    inter = _selection({"a": (300, 100), "b": (300, 100), "c": (300, 100)}, [], combine="intersection")
    assert intervention_claims.power(P, inter) < intervention_claims.power(P, large), "pooling gains power"


def test_06_decides_absence_only_where_it_found_a_known_cause_and_a_find_only_where_its_controls_stayed(P, tmp_path):
    """Issue 29: "not reproduced" needs the selection and the edit to have found a fine-tune whose cause is known;
    "reproduced" for the edit needs the control fine-tunes untouched."""
    found = _selection({"a": (300, 100), "b": (300, 100)}, [3, 7])
    nothing = _selection({"a": (300, 100), "b": (300, 100), "c": (300, 100)}, [])
    moves = pd.DataFrame([{"intervention": "disable", "selected set": -0.1, "p (one-sided)": 0.01},
                          {"intervention": "amplify", "selected set": 0.1, "p (one-sided)": 0.01}])
    still = moves.assign(**{"selected set": 0.0, "p (one-sided)": 0.5})
    blind, fooled = (False, False, True, "never found it"), (True, True, False, "a control lowered")

    def decisions(sel, control, known):
        return [v.decision for v in intervention_claims.verdicts(P, sel, control, known)]
    assert decisions(nothing, pd.DataFrame(), KNOWN)[0] == "not reproduced"
    assert decisions(nothing, pd.DataFrame(), blind)[0] == "not testable at this power", "no set, blind selection"
    idle = (True, False, True, "kept latents whose zeroing did nothing")
    assert decisions(nothing, pd.DataFrame(), idle)[0] == "not testable at this power", (
        "keeping latents that do not carry the known cause is not finding it")
    assert decisions(found, moves, KNOWN) == ["reproduced", "reproduced"]
    assert decisions(found, moves, fooled)[1] == "not testable at this power", "a causal find from a fooled edit"
    assert decisions(found, still, KNOWN)[1] == "not reproduced"
    assert decisions(found, still, blind)[1] == "not testable at this power", "no effect from an edit never shown to act"
    assert decisions(found, moves, blind)[0] == "reproduced", "a kept set is a find whatever the validation"
    assert "never found it" in intervention_claims.verdicts(P, nothing, pd.DataFrame(), blind)[0].limit

    from rlgen_utils.studies.verdicts import selection_demonstrated
    path = tmp_path / "ablation_validation.json"
    path.write_text('{"rows": []}')
    assert selection_demonstrated(path)[:3] == (False, False, False), "a file from before the selection rows"
    row = {"selected": 4, "lowers": True, "dose": 1.0}
    path.write_text(json.dumps({"selection": [{"model": "fine-tune", **row}, {"model": "fine-tune", **row, "dose": 0.1,
                                                                               "selected": 0, "lowers": False},
                                              {"model": "control", **row, "selected": 0, "lowers": False}]}))
    kept, lowered, clean, text = selection_demonstrated(path)
    assert (kept, lowered, clean) == (True, True, True) and "dose 1" in text
    path.write_text(json.dumps({"selection": [{"model": "fine-tune", **row}, {"model": "control", **row}]}))
    assert selection_demonstrated(path)[2] is False, "a control whose caused share the edit lowered"
    assert selection_demonstrated(None)[:3] == (False, False, False)
    assert selection_demonstrated(path, "paper")[:3] == (False, False, False), "rows of the other rule do not count"


def test_matched_l1_is_the_penalty_with_the_closest_l0_over_real_pairs():
    rows = []
    for sparsity, l0, fvu in (("batchtopk k=16", 16.0, 0.02), ("l1 λ=1", 40.0, 0.015), ("l1 λ=2", 18.0, 0.03),
                              ("l1 λ=4", 9.0, 0.05)):
        for pair in ("base–sft", "base–grpo", "base–base copy (null)"):
            # the null pair's L0 must not count: make it misleading
            rows.append({"sparsity": sparsity, "pair": pair, "mean L0": 16.0 if "null" in pair else l0,
                         "held-out FVU (tuned slot)": fvu})
    assert baselines.matched_l1(pd.DataFrame(rows)) == "l1 λ=2"
    assert baselines.matched_l1(pd.DataFrame(rows), by="held-out FVU (tuned slot)") == "l1 λ=1"  # 0.015 vs 0.03


def test_the_organisms_detection_power_is_not_read_for_another_model(write_params):
    from rlgen_utils.run import config
    organism = config.load_params(write_params())
    assert verdicts.power_file(organism).name == "detection_power.json"
    real = organism.model_copy(update={"name": "some-real-lm", "model": organism.model.model_copy(
        update={"name_or_path": "/models/x", "prompt": organism.model.prompt.model_copy(update={"style": "plain"})})})
    assert verdicts.power_file(real) is None and "unmeasured for this model" in verdicts.detection_limit(None)


def test_pair_keys_are_values_whose_labels_are_the_tables_and_prose():
    """Pair dicts are keyed by PairKey, not by prose; the labels (what tables, figures and findings show, and what
    verdict files written before the typed key hold) stay the same."""
    assert [str(k) for k in (PairKey("sft"), nulls.NULL_PAIR, nulls.noise_pair("grpo"))] == [
        "base–sft", "base–base copy (null)", "base–noise like grpo (null)"]
    assert PairKey("sft") == PairKey("sft") and PairKey("sft") != nulls.noise_pair("sft")
    assert {PairKey("sft"): 1}[PairKey("sft")] == 1


def _edge_rows(path, rows: list[tuple[str, float, str, str]]):
    """An edge-validation file: (edit, dose, claim id, reading) per row."""
    out = [{"edit": e, "dose": d, "claim_id": c, "reading": r, "detected": r == "rise" if e == "widen" else None,
            "false positive": r == "rise" if e != "widen" else None} for e, d, c, r in rows]
    path.write_text(json.dumps({"rows": out}))
    return path


def test_circuit_verdicts_take_their_power_from_the_known_edit_validation(P, tmp_path):
    """"Not reproduced" needs a known widening read as a rise; "reproduced" needs no known narrowing or
    function-preserving edit read as one; each reading (paper, scale-free) by its own rows."""
    blind = _edge_rows(tmp_path / "blind.json", [("widen", 0.1, "paper", "undecided"), ("sharpen", 0.1, "paper", "no rise"),
                                                 ("reparam", 0.1, "paper", "no rise")])
    assert verdicts.edges_demonstrated(blind, "paper")[:2] == (False, True)
    assert verdicts.edges_demonstrated(blind, "scale_free")[:2] == (False, False), "no rows for this reading"
    assert verdicts.edges_demonstrated(tmp_path / "none.json", "paper")[:2] == (False, False)
    fooled = _edge_rows(tmp_path / "fooled.json", [("widen", 0.1, "paper", "rise"), ("sharpen", 1.0, "paper", "rise")])
    ok, clean, text = verdicts.edges_demonstrated(fooled, "paper")
    assert ok and not clean and "sharpen 1" in text
    against = pd.DataFrame(_metric_rows(P, "base→grpo", "grpo", -0.1, -0.1, -0.1)
                           + _metric_rows(P, "base→dpo", "dpo", -0.1, -0.1, -0.1))
    paper_like = pd.DataFrame(_metric_rows(P, "base→grpo", "grpo", 0.1, 0.2, 0.2)
                              + _metric_rows(P, "base→dpo", "dpo", -0.1, -0.1, -0.1))
    read = lambda table, path: circuit_claims.verdicts(P, table, {c: verdicts.edges_demonstrated(path, c)
                                                                  for c in ("paper", "scale_free")})[0].decision
    assert read(against, blind) == "not testable at this power", "a blind instrument's no rise decides nothing"
    assert read(against, fooled) == "not reproduced"
    assert read(paper_like, fooled) == "not testable at this power", "an instrument fooled by a narrowing"
    assert read(paper_like, blind) == "reproduced"
