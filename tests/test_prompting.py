"""Prompt formats for real models, answer extraction from real completions, and cloze scoring (issue 16).

Likely mistakes these catch: a chat prompt without the assistant turn opened (the model then writes the user's
next line), a plain prompt whose SFT target lacks the space after ``Answer:``, multiple-choice extraction that
reads the article in "a dog" as choice (a) or picks the first line of a completion that merely lists the
choices, choice log-likelihoods that change with padding or count the question's last token as the answer's,
generation that runs past the end-of-turn token.
"""
import json
from pathlib import Path

import pytest
import torch

from rlgen_utils.models import generation, loading, scoring, smollm2
from rlgen_utils.run.config import PromptCfg
from rlgen_utils.world import local_data, prompting, words
from rlgen_utils.world.suite import EvalFamily
from rlgen_utils.world.tasks import Example

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
SMOL = ROOT / smollm2.DEFAULT_OUT

MATH = Example("story", "Sam has 6 pens and gets 3 more. How many pens does Sam have now?", "6 + 3 = 9. The answer is 9.",
               "9", "Sam has 6 pens and gets 3 more. How many pens does Sam have now?")
SHOT = Example("story", "Ann has 4 cups and drops 1. How many cups does Ann have now?", "4 - 1 = 3. The answer is 3.",
               "3", "Ann has 4 cups and drops 1. How many cups does Ann have now?")
MC = local_data.mc_example("capitals", "What is the capital of France?", ["Rome", "Paris", "Oslo"], "b")


@pytest.fixture(scope="module")
def smol():
    return loading.load_tokenizer(SMOL), loading.load_model(SMOL)


# ------------------------------------------------------------------------------------------------ formats
def test_plain_format_few_shot_and_target():
    fmt = prompting.Format.from_cfg("plain", PromptCfg(n_shots=1), (SHOT,))
    p = fmt.prompt(MATH)
    assert p == (f"Question: {SHOT.question}\nAnswer: {SHOT.completion}\n\nQuestion: {MATH.question}\nAnswer:")
    assert fmt.target(MATH) == " " + MATH.completion, "after 'Answer:' the gold text starts with a space"
    mc = fmt.prompt(MC)
    assert mc == "Question: What is the capital of France?\nA. Rome\nB. Paris\nC. Oslo\nAnswer:", \
        "multiple choice is asked zero-shot, choices lettered in capitals"
    assert fmt.cloze(MC) == ("Question: What is the capital of France?\nAnswer:", (" Rome", " Paris", " Oslo"))


def test_organism_examples_pass_every_style_unchanged():
    organism = Example("arith", "37+8=", "37+8=45####45", "45")
    for style in ("organism", "plain"):
        fmt = prompting.Format.from_cfg(style, PromptCfg())
        assert fmt.render(organism) == organism
    assert prompting.ORGANISM.render(MATH) == MATH


def test_chat_format_uses_the_template_with_system_and_shot_turns(smol):
    tok, _ = smol
    fmt = prompting.Format.from_cfg("chat", PromptCfg(system="Answer briefly.", n_shots=1), (SHOT,), tok)
    p = fmt.prompt(MATH)
    assert p.startswith("<|im_start|>system\nAnswer briefly.<|im_end|>\n<|im_start|>user\n" + SHOT.question)
    assert f"<|im_start|>assistant\n{SHOT.completion}<|im_end|>" in p, "the worked example is an earlier turn"
    assert p.endswith(f"{MATH.question} End with 'The answer is' followed by the final answer.<|im_end|>\n"
                      "<|im_start|>assistant\n"), "the prompt must open the assistant's turn"
    assert fmt.target(MATH) == MATH.completion
    mc = fmt.prompt(MC)
    assert "A. Rome\nB. Paris\nC. Oslo\nAnswer with the letter" in mc and SHOT.question not in mc
    with pytest.raises(ValueError, match="tokenizer"):
        prompting.Format.from_cfg("chat", PromptCfg())


def test_math_instruction_agrees_with_the_worked_examples(smol):
    """Issue 28: a training file whose solutions end '#### 14' shown beside the instruction "End with 'The answer
    is N.'" made the model answer the literal "The answer is N."; the instruction now follows the golds."""
    tok, _ = smol
    hashed = Example("gsm", "Tom has 9 apples and eats 3. How many are left?", "9 - 3 = 6\n#### 6", "6",
                     "Tom has 9 apples and eats 3. How many are left?")
    fmt = prompting.Format.from_cfg("chat", PromptCfg(n_shots=1), (hashed,), tok, [r"So \boxed{2}", "1+1\n#### 2"])
    assert fmt.math_instruction == "End with '####' followed by the final answer.", "the golds' commonest marker"
    assert "N." not in fmt.prompt(MATH)
    assert prompting.math_instruction(None, [r"so \boxed{4}"]) == "Put the final answer in \\boxed{}."
    assert prompting.math_instruction(None, ["just 4"]) == "", "no marker to ask for: no instruction"
    assert prompting.math_instruction("Answer in one line.", ["#### 4"]) == "Answer in one line.", \
        "an instruction naming no marker is the user's choice"
    with pytest.raises(ValueError, match=r"model\.prompt\.math_instruction: .*'answer is'.*'####'"):
        prompting.Format.from_cfg("chat", PromptCfg(math_instruction="End with 'The answer is N.'"), (hashed,), tok)
    assert prompting.Format.from_cfg("plain", PromptCfg(), (hashed,)).math_instruction == "", "chat only"


def test_generation_stops_at_the_end_of_turn(smol):
    tok, model = smol
    fmt = prompting.Format.from_cfg("chat", PromptCfg(system="Answer briefly."), (), tok)
    assert generation.stop_ids(model, tok) == [tok.convert_tokens_to_ids("<|im_end|>")]
    out = generation.generate(model, tok, [fmt.prompt(MC)], max_new_tokens=40)[0]
    ids = tok(out, add_special_tokens=False)["input_ids"]
    assert len(ids) < 40 and "<|im_start|>" not in out and "user" not in out.lower(), out


# ------------------------------------------------------------------------------------------------ extraction
def test_multiple_choice_extraction_on_real_smollm2_completions():
    """48 completions SmolLM2-135M-Instruct wrote to three phrasings of the question (letter, free, 'The answer
    is (X)'), each labelled by hand with the letter a reader takes from it ('' = none)."""
    rows = [json.loads(line) for line in (FIXTURES / "smollm2_mc.jsonl").read_text().splitlines()]
    wrong = [(r["completion"][:60], local_data.mc_answer(r["completion"], tuple(r["choices"])), r["read_as"])
             for r in rows if local_data.mc_answer(r["completion"], tuple(r["choices"])) != r["read_as"]]
    assert not wrong, wrong
    assert {r["read_as"] for r in rows} >= {"", "a", "b", "c", "d"}


@pytest.mark.parametrize("text,choices,want", [
    ("The answer is (B).", (), "b"), ("**C**", (), "c"), ("Answer: B", (), "b"), ("The answer is c", (), "c"),
    ("I think d", (), "d"), ("The answer is a dog", (), ""), ("A bat is a mammal.", ("fish", "mammal"), "b"),
    ("A. x\nB. y\nC. z", ("x", "y", "z"), ""), ("A. x\nB. y\nThe answer is: B.", ("x", "y"), "b"),
    ("Paris is in France.\nQuestion: And Rome?\nAnswer: Rome", ("Rome", "Paris"), "b"),
])
def test_multiple_choice_rules_name_the_trap(text, choices, want):
    assert local_data.mc_answer(text, choices) == want


def test_stated_answer_needs_the_sentence():
    assert words.stated_answer("6 + 3 = 9. The answer is 9.") == "9"
    assert words.stated_answer("60 is larger than 76.") == "", "the last number alone must not credit an answer"
    assert words.stated_answer("The answer is 12.\nQuestion: What is 1+1?\nAnswer: The answer is 2.") == "12"
    assert local_data.math_answer("So 4 + 5 = 9. The answer is 9. Sam is happy with 10") == "9"


# ------------------------------------------------------------------------------------------------ cloze
def _reference_loglik(model, tok, context: str, continuation: str) -> float:
    """One unpadded sequence; the answer's tokens are those starting at or after the context's last character
    (trailing spaces belong to the answer), found from the tokenizer's character offsets."""
    stripped = context.rstrip(" ")
    text = stripped + context[len(stripped):] + continuation
    enc = tok(text, return_offsets_mapping=True)
    ids, offsets = enc["input_ids"], enc["offset_mapping"]
    first = next(i for i, (a, _) in enumerate(offsets) if a >= len(stripped) and i > 0)
    with torch.no_grad():
        logp = torch.log_softmax(model(input_ids=torch.tensor([ids])).logits[0].float(), -1)
    return float(sum(logp[i - 1, ids[i]] for i in range(first, len(ids))))


def test_batched_choice_logliks_equal_one_sequence_at_a_time(smol):
    tok, model = smol
    requests = [("Question: What is the capital of France?\nAnswer:", " Paris"),
                ("Question: What is the capital of France?\nAnswer:", " Buenos Aires"),
                ("Question: What is the opposite of \"hot\"?\nAnswer: ", "cold"),   # the space moves to the answer
                ("Q: 2+2=", "4"), ("Question: A long question about the colour of the sky on a clear day?\nAnswer:",
                                    " blue, mostly")]
    batched = scoring.choice_logliks(scoring.model_forward(model), tok, requests, batch_size=3)
    for (c, x), got in zip(requests, batched):
        assert got == pytest.approx(_reference_loglik(model, tok, c, x), abs=2e-3), (c, x)
    assert batched[0] > batched[1], "SmolLM2 knows Paris"


def test_cloze_family_records_its_scoring_and_both_metrics(smol):
    tok, model = smol
    fmt = prompting.Format.from_cfg("plain", PromptCfg())
    ex = [local_data.mc_example("caps", "What is the capital of France?", ["Rome", "Paris", "Oslo"], "b"),
          local_data.mc_example("caps", "What is the capital of Japan?", ["Tokyo", "Lima", "Cairo"], "a")]
    fam = EvalFamily("caps", "ood_select", 1 / 3, tuple(fmt.render(e) for e in ex), "multiple_choice", "far_control",
                     "loglik_norm", tuple(fmt.cloze(e) for e in ex))
    got = scoring.plain_answers(model, tok, fam, 16, 8)
    assert [a.scoring for a in got] == ["loglik_norm"] * 2
    assert [(a.completion, a.parsed, a.correct) for a in got] == [("Paris", "b", True), ("Tokyo", "a", True)]
    assert all(a.acc is not None and a.acc_norm == a.correct for a in got)
    assert scoring.pick([-6.0, -4.0], ["a long answer", "no"], norm=True) == 0, "acc_norm divides by characters"
    assert scoring.pick([-6.0, -4.0], ["a long answer", "no"], norm=False) == 1


# ------------------------------------------------------------------------------------------------ words
def test_word_world_families_verify_their_gold_and_split_cleanly():
    from rlgen_utils.run.config import TasksCfg
    cfg = TasksCfg()
    for name in words.FAMILIES:
        test = words.sample(name, "test", 30, 0, cfg)
        train = words.sample(name, "train", 30, 0, cfg)
        assert len(test) == 30 and not {e.question for e in test} & {e.question for e in train}, name
        assert all(words.stated_answer(e.completion) == e.answer for e in test + train), name
        assert all(e.prompt == e.question for e in test), "unrendered examples carry the bare question"
    story = words.sample("story", "test", 200, 0, cfg)
    assert all(0 <= int(e.answer) <= 18 for e in story), "in-domain numbers stay single-digit"
