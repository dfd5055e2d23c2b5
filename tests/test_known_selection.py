"""Known-cause validation of notebook 06's selection (issue 29): probes split once into a selection and a test
half, target and control drawn from the selection half only, and on a finished run the row is consistent."""
import pytest

from rlgen_utils.run.config import load_params
from rlgen_utils.studies import known_selection as ks


def test_the_halves_split_every_probe_once_and_repeat_with_the_seed():
    select, test = ks.halves(0, 11)
    assert sorted(select + test) == list(range(11)) and len(select) == 5
    assert ks.halves(0, 11) == (select, test), "seeded"
    assert ks.halves(1, 11) != (select, test), "another seed, another split"


def test_target_and_control_come_from_the_selection_half_only(write_params):
    P = load_params(write_params())
    n = 40
    caused_tuned = [i % 4 != 0 for i in range(n)]        # the fine-tune gives the caused answer on 3 of 4
    caused_base = [i % 8 == 1 for i in range(n)]         # the base on a few of those
    g = ks.groups(P, caused_tuned, caused_base)
    select, test = ks.halves(P.seed, n)
    assert g["test"] == test
    assert g["target"] == [i for i in select if caused_tuned[i] and not caused_base[i]]
    assert g["control"] == [i for i in select if caused_base[i]], "06's controls: where the base is right"
    assert not set(g["target"]) & set(test) and not set(g["control"]) & set(test), "selection never sees the test half"


def test_the_control_group_is_capped_by_a_seeded_subset(write_params):
    P = load_params(write_params({"interventions": {"n_control": 3}}))
    g = ks.groups(P, [True] * 30, [True] * 30)
    assert len(g["control"]) == 3 and g == ks.groups(P, [True] * 30, [True] * 30)
    assert g["target"] == []


@pytest.mark.slow
def test_the_selection_runs_on_a_finished_run_and_ablates_only_what_it_kept(smoke_run):
    P, _ = smoke_run
    row = ks.selection(P, P, "behaviour", which=1, n_random=3)
    assert 0.0 <= row["plain"] <= 1.0 and 0.0 <= row["base"] <= 1.0
    assert row["target"] + row["control"] <= P.known_causes.n_eval // 2 + 1
    if row["selected"]:
        assert len(row["random_drops"]) == 3 and 0.0 <= row["ablated"] <= 1.0
        assert row["drop"] == pytest.approx(row["plain"] - row["ablated"])
    else:
        assert row["ablated"] is None and row["lowers"] is False
