import random

import pytest

from rlgen_utils.models import pretrain
from rlgen_utils.run import config
from rlgen_utils.world import tasks

CFG = config.TasksCfg()


def test_world_has_the_roles_the_study_needs():
    assert len(tasks.FAMILIES) >= 8
    assert tasks.families_with_role(tasks.IN_DOMAIN) == ["arith"]
    selection = tasks.families_with_role(tasks.OOD_SELECT)
    assert len(selection) >= 5
    assert len(tasks.families_with_role(tasks.OOD_HELDOUT)) >= 2
    assert any(tasks.FAMILIES[f].multiple_choice for f in selection), "selection needs a multiple-choice format"
    assert {"fact", "factmc"} <= set(selection), "memorized facts are the knowledge SFT can make a model forget"


@pytest.mark.parametrize("family", list(tasks.FAMILIES))
def test_generators_are_seeded_and_gold_is_verified(family):
    a = [tasks.FAMILIES[family].generate(random.Random(7), CFG) for _ in range(1)]
    b = [tasks.FAMILIES[family].generate(random.Random(7), CFG) for _ in range(1)]
    assert a == b, "same seed must give the same example"
    for ex in tasks.sample_split(family, "test", 30, 0, CFG, allow_fewer=True):
        assert tasks.is_correct(ex.completion, ex.answer), f"gold completion fails its own verifier: {ex}"
        assert not tasks.is_correct(ex.completion + "9", ex.answer), "verifier must be exact, not a prefix match"


def test_arith_gold_chain_is_correct_arithmetic():
    for ex in tasks.sample_split("arith", "train", 200, 0, CFG):
        first, ops = tasks._parse_arith_prompt(ex.prompt)
        value = first
        for op, b in ops:
            value = value + b if op == "+" else value - b
            assert 0 <= value <= 99, f"intermediate value leaves [0, 99]: {ex.prompt}"
        assert ex.answer == str(value) == str(eval(ex.prompt.rstrip("=")))
        assert ex.completion.endswith(f"{tasks.ANSWER_MARKER}{value}")


def test_sloppy_solver_only_differs_on_carries_and_borrows():
    assert tasks._step(17, "+", 5, sloppy=True) == 12, "a sloppy solver drops the carry"
    assert tasks._step(30, "-", 15, sloppy=True) == 25, "a sloppy solver drops the borrow"
    assert tasks._step(12, "+", 5, sloppy=True) == 17, "no carry: sloppy and correct agree"
    assert tasks.arith_solution(17, [("+", 5)], sloppy=True)[1] != tasks.arith_solution(17, [("+", 5)])[1]


def test_parse_answer():
    assert tasks.parse_answer("3+4=7####7") == "7"
    assert tasks.parse_answer("1####2####  13 \nnoise") == "13"
    assert tasks.parse_answer(" b") == "b"
    assert not tasks.is_correct("3+4=7####71", "7")


@pytest.mark.parametrize("family", list(tasks.FAMILIES))
def test_test_split_is_disjoint_from_every_training_prompt(family):
    cfg = config.TasksCfg(n_facts=40)
    test = {e.prompt for e in tasks.sample_split(family, "test", 400, 0, cfg, allow_fewer=True)}
    post = {e.prompt for e in tasks.sample_split(family, "train", 300, 0, cfg, allow_fewer=True)}
    rng = random.Random(0)
    pre = {pretrain.pretrain_example(rng, family, cfg).prompt for _ in range(1500)}
    assert test, "no test prompts at all"
    assert not test & post, "a post-training prompt leaked into the test split"
    assert not test & pre, "a pretraining prompt leaked into the test split"


def test_fact_test_prompts_ask_facts_that_pretraining_teaches_in_other_words():
    cfg = config.TasksCfg(n_facts=40)
    test = tasks.sample_split("fact", "test", 100, 0, cfg, allow_fewer=True)
    rng = random.Random(0)
    pre = [pretrain.pretrain_example(rng, "fact", cfg) for _ in range(1500)]
    name_of = lambda prompt: prompt.replace("colour of ", "").split("?")[0].split()[0]  # noqa: E731
    taught = {(name_of(ex.prompt), ex.answer) for ex in pre}
    for ex in test:
        assert (name_of(ex.prompt), ex.answer) in taught, f"{ex.prompt!r}: this fact is never taught in pretraining"


def test_sample_split_refuses_more_than_the_family_has():
    with pytest.raises(ValueError, match="cannot supply"):
        tasks.sample_split("fact", "test", 300, 0, config.TasksCfg(n_facts=8))
