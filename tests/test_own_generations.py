"""The crosscoder corpus of the models' own generations (issue 29 item 5): the same corpus with each in-domain
text replaced by one model's greedy answer, generated once, keyed, and read against validation rows of the same
corpus."""
import json
from pathlib import Path

import pytest

from rlgen_utils.run import keys
from rlgen_utils.run.config import load_params
from rlgen_utils.run.rundir import RunDir
from rlgen_utils.studies import crosscoder
from rlgen_utils.studies import known_causes as kc
from rlgen_utils.studies.verdicts import demonstrated
from rlgen_utils.world import suite


@pytest.fixture
def P(write_params):
    return load_params(write_params({"crosscoder": {"n_texts": 40, "corpus": "generations"}, "dynamics": {"n_texts": 20}}))


def test_in_domain_texts_replace_the_gold_ones_in_place_and_nothing_else(P):
    world = suite.world(P)
    problems = world.corpus_in_domain()
    gold = world.corpus()
    assert len(problems) == round(40 * P.crosscoder.in_domain_fraction) and len(gold) == 40
    mine = [f"{e.prompt}<mine {i}>" for i, e in enumerate(problems)]
    own = world.corpus(in_domain=mine)
    assert sum("<mine" in o for o in own) == len(problems) and sorted(o for o in own if "<mine" in o) == sorted(mine)
    assert all(g in {e.text for e in problems} for g, o in zip(gold, own) if "<mine" in o), (
        "each own text sits where a gold in-domain text sat")
    assert [g for g, o in zip(gold, own) if "<mine" not in o] == [o for o in own if "<mine" not in o], (
        "the general part of the corpus and the order are those of the gold corpus")
    assert world.corpus(10, in_domain=mine) == own[:10]
    with pytest.raises(ValueError, match="in-domain texts"):
        world.corpus(in_domain=mine[:-1])


def test_each_model_answers_every_third_prompt_once_and_a_rerun_reads_the_file(P, monkeypatch):
    calls = []

    def generate(model, tok, prompts, max_new_tokens, batch_size=128, **kw):
        calls.append((model, len(prompts)))
        return [f" <{model}>" for _ in prompts]
    monkeypatch.setattr(RunDir, "model", lambda self, name, ts=None: Path(str(name)))
    monkeypatch.setattr(crosscoder.loading, "load_model", lambda path, dtype: path.name)
    monkeypatch.setattr(crosscoder.loading, "load_tokenizer", lambda path: None)
    monkeypatch.setattr(crosscoder.generation, "generate", generate)
    texts = crosscoder.corpus_texts(P)
    problems = suite.world(P).corpus_in_domain()
    names = crosscoder.corpus_models(P)
    assert [str(n) for n in names] == ["base", "sft", "grpo"]
    assert [m for m, _ in calls] == ["base", "sft", "grpo"] and sum(n for _, n in calls) == len(problems)
    saved = json.loads((RunDir(P).path / "corpus" / "generations-ts0.json").read_text())
    assert [t.rsplit(" <", 1)[1] for t in saved["texts"]] == [f"{names[i % 3]}>" for i in range(len(problems))]
    assert all(t.startswith(e.prompt) for t, e in zip(saved["texts"], problems))
    assert sorted(texts) == sorted(suite.world(P).corpus(in_domain=saved["texts"]))
    assert sum("<" in t for t in texts) == len(problems)
    calls.clear()
    assert crosscoder.corpus_texts(P) == texts and not calls, "a finished corpus is read, not generated again"
    gold = P.model_copy(update={"crosscoder": P.crosscoder.model_copy(update={"corpus": "gold"})})
    assert crosscoder.corpus_texts(gold) == suite.world(gold).corpus() and not calls


def test_the_corpus_choice_keys_the_activations_and_names_the_validation_runs(P, tmp_path):
    gold = P.model_copy(update={"crosscoder": P.crosscoder.model_copy(update={"corpus": "gold"})})
    assert keys.stage_key(P, "activations") != keys.stage_key(gold, "activations")
    steps = P.model_copy(update={"crosscoder": P.crosscoder.model_copy(update={"steps": 7})})
    assert keys.stage_key(P, "activations") == keys.stage_key(steps, "activations")
    assert kc.byo_params(P, "behaviour", 0.3, tmp_path, tmp_path)["name"].endswith("-d0.3-generations")
    assert kc.byo_params(gold, "behaviour", 0.3, tmp_path, tmp_path)["name"].endswith("-d0.3")


def test_power_is_read_on_the_corpus_the_run_uses(tmp_path):
    rows = [{"instrument": "pair", "cause": "behaviour", "dose": 1.0, "detected": True},   # older rows: gold
            {"instrument": "pair", "cause": "control", "dose": 1.0, "detected": False},
            {"instrument": "pair", "cause": "behaviour", "dose": 1.0, "detected": False, "corpus": "generations"},
            {"instrument": "pair", "cause": "control", "dose": 1.0, "detected": False, "corpus": "generations"}]
    path = tmp_path / "instrument_validation.json"
    path.write_text(json.dumps({"rows": rows}))
    assert demonstrated(path, "pair")[0] and not demonstrated(path, "pair", "generations")[0]
    assert "generations corpus" in demonstrated(path, "pair", "generations")[1]
    only_gold = tmp_path / "gold.json"
    only_gold.write_text(json.dumps({"rows": rows[:2]}))
    ok, text = demonstrated(only_gold, "pair", "generations")
    assert not ok and "no known-cause validation of this instrument on a generations corpus" in text
    t = kc.recall_table(rows).set_index(["instrument", "corpus"])
    assert t.at[("pair", "gold"), "recall"] == 1.0 and t.at[("pair", "generations"), "recall"] == 0.0
