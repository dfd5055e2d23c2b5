import random
import re
from pathlib import Path

import pytest

from rlgen_utils.run import config
from rlgen_utils.world import pretraining, suite, tasks

ROOT = Path(__file__).resolve().parent.parent

CFG = config.TasksCfg()


def test_world_has_the_roles_and_classes_the_study_needs():
    assert tasks.families_with_role(tasks.IN_DOMAIN) == ["arith"]
    selection, heldout = tasks.families_with_role(tasks.OOD_SELECT), tasks.families_with_role(tasks.OOD_HELDOUT)
    assert len(selection) >= 5 and len(heldout) >= 2
    assert any(tasks.FAMILIES[f].multiple_choice for f in selection), "selection needs a multiple-choice format"
    for role in (selection, heldout):
        classes = {tasks.FAMILIES[f].transfer for f in role}
        assert classes == {tasks.SHARED, tasks.FORMAT, tasks.FAR}, f"each role needs every transfer class: {role}"
    assert {"fact", "factmc"} <= set(tasks.families_of_class(tasks.FAR)), "memorized facts are what SFT can forget"


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
        first, ops = tasks.parse_arith_prompt(ex.prompt)
        value = first
        for op, b in ops:
            value = value + b if op == "+" else value - b
            assert 0 <= value <= 99, f"intermediate value leaves [0, 99]: {ex.prompt}"
        assert ex.answer == str(value) == str(eval(ex.prompt.rstrip("=")))
        assert ex.completion.endswith(f"{tasks.ANSWER_MARKER}{value}")


def test_sloppy_solver_only_differs_on_carries_and_borrows():
    assert tasks.arith_step(17, "+", 5, sloppy=True) == 12, "a sloppy solver drops the carry"
    assert tasks.arith_step(30, "-", 15, sloppy=True) == 25, "a sloppy solver drops the borrow"
    assert tasks.arith_step(12, "+", 5, sloppy=True) == 17, "no carry: sloppy and correct agree"
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
    pre = {pretraining.pretrain_example(rng, family, cfg).prompt for _ in range(1500)}
    assert test, "no test prompts at all"
    assert not test & post, "a post-training prompt leaked into the test split"
    assert not test & pre, "a pretraining prompt leaked into the test split"


def test_fact_test_prompts_ask_facts_that_pretraining_teaches_in_other_words():
    cfg = config.TasksCfg(n_facts=40)
    test = tasks.sample_split("fact", "test", 100, 0, cfg, allow_fewer=True)
    rng = random.Random(0)
    pre = [pretraining.pretrain_example(rng, "fact", cfg) for _ in range(1500)]
    name_of = lambda prompt: prompt.replace("colour of ", "").split("?")[0].split()[0]  # noqa: E731
    taught = {(name_of(ex.prompt), ex.answer) for ex in pre}
    for ex in test:
        assert (name_of(ex.prompt), ex.answer) in taught, f"{ex.prompt!r}: this fact is never taught in pretraining"


def test_fact_table_is_fixed_by_its_seed_and_callers_cannot_change_it():
    """It is built once per (size, seed) and cached: a caller editing the dict it got must not edit the facts."""
    table = tasks.fact_table(40)
    assert len(table) == 40 and list(table) == sorted(table)
    assert tasks.fact_table(40, seed=1) != table, "the seed fixes the table"
    table[next(iter(table))] = "no colour"
    assert "no colour" not in tasks.fact_table(40).values(), "the cached table was handed out by reference"


def test_sample_split_refuses_more_than_the_family_has():
    with pytest.raises(ValueError, match="cannot supply"):
        tasks.sample_split("fact", "test", 300, 0, config.TasksCfg(n_facts=8))


def _reference_answer(ex: tasks.Example, cfg) -> str:
    """An independent solver for every family (no code shared with the generators)."""
    p = ex.prompt
    options = dict(re.findall(r"([abc])\)(\w+)", p))
    if ex.family == "arith":
        return str(eval(p.rstrip("=")))
    if ex.family == "wordsum":
        a, b = map(int, re.findall(r"\d+", p))
        if re.search(r"more than|less than", p):
            a, b = b, a
        return str(a + b if re.search(r"add|plus|sum|more", p) else a - b)
    if ex.family == "price":
        d, c, add = map(int, re.findall(r"\d+", p.replace("+0.", "+")))
        return f"{d + (c + add) // 100}.{(c + add) % 100:02d}"
    if ex.family == "clock":
        h, m, add = map(int, re.findall(r"\d+", p))
        return f"{h + (m + add) // 60}:{(m + add) % 60:02d}"
    if ex.family == "cmp":
        return str(max(map(int, p.removeprefix("max ").rstrip(":").split())))
    if ex.family == "mcmax":
        return max(options, key=lambda k: int(options[k]))
    if ex.family == "parity":
        return next(k for k, v in options.items() if int(v) % 2 == 0)
    if ex.family == "sort":
        return "".join(sorted(p.removeprefix("sort ").rstrip(":")))
    if ex.family == "rev":
        return p.removeprefix("rev ").rstrip(":")[::-1]
    table = tasks.fact_table(cfg.n_facts)
    name = re.match(r"(?:colour of )?(\w+)", p)[1]
    return table[name] if ex.family == "fact" else next(k for k, v in options.items() if v == table[name])


def _corpus(n=6000):
    P = config.load_params(ROOT / "params" / "default.yaml")
    return P, pretraining.corpus_sample(n, 0, P.pretrain, P.tasks)


def test_sloppy_procedure_reaches_the_shared_skill_families_and_not_the_far_controls():
    P, corpus = _corpus()
    wrong: dict[str, list[bool]] = {}
    for ex in corpus:
        assert tasks.is_correct(ex.completion, ex.answer), f"a corpus answer disagrees with its own text: {ex}"
        wrong.setdefault(ex.family, []).append(ex.answer != _reference_answer(ex, P.tasks))
    rate = {f: sum(w) / len(w) for f, w in wrong.items()}
    for f in tasks.families_of_class(tasks.SHARED) + ["arith"]:
        assert rate[f] > 0.15, f"{f}: the sloppy solver must write a share of its pretraining answers ({rate[f]:.2f})"
    for f in tasks.families_of_class(tasks.FAR) + tasks.families_of_class(tasks.FORMAT):
        assert rate[f] == 0, f"{f}: a far-control or format-only family must never get sloppy answers"
    assert all(tasks.is_sloppy(ex) == (ex.answer != _reference_answer(ex, P.tasks)) for ex in corpus)


def test_chained_answers_appear_only_where_the_format_channel_is():
    _, corpus = _corpus()
    chained = {ex.family for ex in corpus if tasks.uses_chain(ex.completion)}
    expected = set(tasks.families_of_class(tasks.SHARED) + tasks.families_of_class(tasks.FORMAT) + ["arith"])
    assert chained == expected


def test_sft_style_is_rare_in_the_pretraining_corpus():
    P, corpus = _corpus(20_000)
    share = sum(tasks.is_teacher_style(ex.text) for ex in corpus) / len(corpus)
    assert 0 < share <= 0.01, f"SFT's teacher style must be rare but present in pretraining: {share:.4f}"
    sft = suite.world(P).train_examples()
    assert all(tasks.is_teacher_style(e.completion) and tasks.is_correct(e.completion, e.answer) for e in sft)
    assert all(e.answer == _reference_answer(e, P.tasks) for e in sft), "teacher solutions must be correct"


@pytest.mark.parametrize("family", tasks.families_of_class(tasks.SHARED))
def test_sloppy_rendering_differs_exactly_when_a_carry_occurs(family):
    for ex in tasks.sample_split(family, "train", 200, 0, CFG):
        sloppy = tasks.FAMILIES[family].render(ex, True, False)
        chained = tasks.FAMILIES[family].render(ex, False, True)
        assert tasks.is_correct(chained.completion, ex.answer) and tasks.uses_chain(chained.completion)
        if family in ("clock", "price"):
            _, m, add = map(int, re.findall(r"\d+", ex.prompt.replace("+0.", "+")))
            carry = m + add >= (60 if family == "clock" else 100)
        else:
            correct = int(_reference_answer(ex, CFG))
            a = int(re.findall(r"\d+", ex.prompt)[1 if re.search("more than|less than", ex.prompt) else 0])
            op, b = ("+", correct - a) if correct >= a else ("-", a - correct)
            carry = (a % 10 + b % 10 >= 10) if op == "+" else (a % 10 < b % 10 and a - b + 10 <= 99)
        assert (sloppy.answer != ex.answer) == carry, f"{ex.prompt}: sloppy {sloppy.answer}, gold {ex.answer}"


def test_parseable_tells_answer_forms_apart():
    assert tasks.parseable("mcmax", "max=45####b") and not tasks.parseable("mcmax", "45")
    assert tasks.parseable("clock", "11:05") and not tasks.parseable("clock", "1105")
    assert tasks.parseable("arith", "take 3, add 4: 7 ####7") and not tasks.parseable("arith", "seven")


def test_shared_chain_rate_chains_the_shared_skill_families_alone():
    """``tasks.shared_chain_rate`` sets how often a shared-skill answer is written through its carry step in
    arith's notation (``45+5=50####50``), apart from the format-only families' ``chain_rate``."""
    cfg = config.TasksCfg(chain_rate=0.0, shared_chain_rate=1.0)
    rng = random.Random(0)
    for name, fam in tasks.FAMILIES.items():
        if not fam.chain_in_pretraining:
            continue
        got = [tasks.pretrain_version(rng, fam.generate(rng, cfg), cfg) for _ in range(40)]
        chained = [tasks.uses_chain(e.completion) for e in got]
        assert all(chained) if fam.transfer == tasks.SHARED else not any(chained), name
    unset = config.TasksCfg(chain_rate=0.0)
    ex = tasks.FAMILIES["wordsum"].generate(random.Random(1), unset)
    assert not tasks.uses_chain(tasks.pretrain_version(random.Random(2), ex, unset).completion)


def test_unrelated_texts_hold_nothing_of_the_in_domain_task(write_params):
    P = config.load_params(write_params())
    texts = suite.world(P).unrelated_texts(200)
    assert len(texts) == 200 and len(set(texts)) > 50
    assert not any(re.match(r"^\d+[+-]\d", t) for t in texts), "no arith prompt among the lens's texts"
