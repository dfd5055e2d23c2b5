"""Local benchmark files: both shapes load, answers verify, and a malformed line names file and line."""
import json

import pytest

from rlgen_utils.world import local_data, tasks


def _write(path, rows):
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")
    return path


def test_multiple_choice_accepts_letter_index_and_text(tmp_path):
    f = _write(tmp_path / "arc.jsonl", [
        {"question": "Which is a metal?", "choices": ["wood", "iron", "glass"], "answer": "B"},
        {"question": "Sky colour?", "choices": ["blue", "green"], "answer": 0},
        {"question": "2+2?", "choices": ["3", "4", "5"], "answer": "4"},
    ])
    ex = local_data.load_jsonl(f, "multiple_choice")
    assert [e.answer for e in ex] == ["b", "a", "b"]
    assert ex[0].family == "arc" and ex[0].prompt == "Which is a metal? a)wood b)iron c)glass>"
    assert tasks.is_correct(" b", ex[0].answer) and not tasks.is_correct("a", ex[0].answer)


def test_math_answers_are_extracted_and_normalised(tmp_path):
    f = _write(tmp_path / "math500.jsonl", [{"problem": "What is 1000+234.5?", "answer": "1,234.50"},
                                            {"problem": "7*6?", "answer": 42}])
    ex = local_data.load_jsonl(f, "math")
    assert [e.answer for e in ex] == ["1234.5", "42"]
    assert local_data.math_answer("so the answer is \\boxed{1,234.5}.") == "1234.5"
    assert local_data.math_answer("6*7=42, and 42 it is") == "42"
    assert local_data.math_answer("work ####  42") == "42"
    assert local_data.math_answer("no number here") == ""
    assert local_data.math_answer("\\boxed{\\frac{1}{2}}") == "\\frac{1}{2}"


@pytest.mark.parametrize("bad,why", [
    ("{not json", "not valid JSON"),
    ('["a list"]', "expected a JSON object"),
    ('{"question": "q", "choices": ["a", "b"]}', "missing key 'answer'"),
    ('{"question": "q", "choices": "ab", "answer": "a"}', "key 'choices' has type str"),
    ('{"question": "q", "choices": ["a", "b"], "answer": 5}', "out of range"),
    ('{"question": "q", "choices": ["a", "b"], "answer": "zebra"}', "is not a letter, index or text"),
    ('{"question": "q", "choices": ["a"], "answer": "a"}', "at least two strings"),
])
def test_malformed_line_names_file_and_line(tmp_path, bad, why):
    good = json.dumps({"question": "q", "choices": ["x", "y"], "answer": "a"})
    f = _write(tmp_path / "bad.jsonl", [good, "", bad, good])
    with pytest.raises(ValueError, match=rf"bad\.jsonl:3: .*{why}"):
        local_data.load_jsonl(f, "multiple_choice")


def test_math_line_without_answer_is_an_error_not_a_skip(tmp_path):
    f = _write(tmp_path / "m.jsonl", [{"problem": "1+1?", "answer": "2"}, {"problem": "2+2?"}])
    with pytest.raises(ValueError, match=r"m\.jsonl:2: missing key 'answer'"):
        local_data.load_jsonl(f, "math")


def test_shipped_example_files_load():
    from pathlib import Path

    from rlgen_utils.world import suite
    ex = Path(__file__).resolve().parent.parent / "data" / "examples"
    assert [e.answer for e in local_data.load_jsonl(ex / "multiple_choice.jsonl", "multiple_choice")] == ["b", "a", "b"]
    assert [e.answer for e in local_data.load_jsonl(ex / "math.jsonl", "math")] == ["5", "100", "0.25"]
    train = local_data.load_train_file(str(ex / "train_math.jsonl"), "math")
    assert all(suite.VERIFIERS["math"](e.completion, e.answer) for e in train), "gold solutions must verify"


def test_mc_answer_reads_the_chosen_letter():
    assert local_data.mc_answer(" B) iron") == "b"
    assert local_data.mc_answer("(c)") == "c"
    assert local_data.mc_answer("The answer is c") == "c"
    assert local_data.mc_answer("####a") == "a"
    assert local_data.mc_answer("I think d") == "d", "a standalone 'I' is not a choice letter"
