"""Real benchmarks from local JSONL files, turned into :class:`~rlgen_utils.world.tasks.Example` s.

Two shapes, one JSON object per line:

* ``multiple_choice`` — ``{"question": str, "choices": [str, ...], "answer": ...}`` (ARC, CommonsenseQA, SciQ,
  OpenBookQA...). ``answer`` may be a letter (``"B"``), a 0-based index (``1``) or the text of a choice.
  The prompt lists the choices as ``a) ... b) ...`` and the gold answer is the letter.
* ``math`` — ``{"problem": str, "answer": str | number}`` (MATH500, GSM8K, AIME...). The final answer of a
  completion is the text after ``####`` if present, else the last ``\\boxed{...}``, else the last number.

Nothing is skipped silently: a malformed line raises ``ValueError`` naming the file and the line number.
"""
from __future__ import annotations

import json
import re
import string
from functools import lru_cache
from pathlib import Path
from typing import NoReturn

from . import tasks

LETTERS = string.ascii_lowercase


def _fail(path: Path, line_no: int, why: str) -> NoReturn:
    raise ValueError(f"{path}:{line_no}: {why}")


def _mc_letter(path, line_no, row: dict) -> str:
    choices, answer = row["choices"], row["answer"]
    if isinstance(answer, bool):
        _fail(path, line_no, f"answer {answer!r} is not a letter, index or choice")
    if isinstance(answer, int):
        if not 0 <= answer < len(choices):
            _fail(path, line_no, f"answer index {answer} out of range for {len(choices)} choices")
        return LETTERS[answer]
    if isinstance(answer, str):
        a = answer.strip()
        if len(a) == 1 and a.lower() in LETTERS[: len(choices)]:
            return a.lower()
        if a in choices:
            return LETTERS[choices.index(a)]
    _fail(path, line_no, f"answer {answer!r} is not a letter, index or text of one of the {len(choices)} choices")


def mc_example(family: str, question: str, choices: list[str], letter: str) -> tasks.Example:
    """A multiple-choice example; its ``prompt`` is the organism's compact form until a prompt format renders it."""
    body = " ".join(f"{LETTERS[i]}){c}" for i, c in enumerate(choices))
    return tasks.Example(family, f"{question} {body}>", letter, letter, question, tuple(choices))


def parse_row(path: Path, line_no: int, line: str, required: dict[str, type | tuple]) -> dict:
    try:
        row = json.loads(line)
    except json.JSONDecodeError as e:
        _fail(path, line_no, f"not valid JSON ({e.msg})")
    if not isinstance(row, dict):
        _fail(path, line_no, "expected a JSON object")
    for key, typ in required.items():
        if key not in row:
            _fail(path, line_no, f"missing key {key!r}")
        if not isinstance(row[key], typ):
            _fail(path, line_no, f"key {key!r} has type {type(row[key]).__name__}")
    return row


def load_jsonl(path: str | Path, kind: str, family: str | None = None) -> list[tasks.Example]:
    """All examples of a local benchmark file; ``family`` defaults to the file's stem."""
    path = Path(path)
    family = family or path.stem
    out = []
    for line_no, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        if kind == "multiple_choice":
            row = parse_row(path, line_no, line, {"question": str, "choices": list, "answer": (str, int)})
            if len(row["choices"]) < 2 or not all(isinstance(c, str) for c in row["choices"]):
                _fail(path, line_no, "choices must be a list of at least two strings")
            if len(row["choices"]) > len(LETTERS):
                _fail(path, line_no, f"more than {len(LETTERS)} choices")
            out.append(mc_example(family, row["question"], row["choices"], _mc_letter(path, line_no, row)))
        elif kind == "math":
            row = parse_row(path, line_no, line, {"problem": str, "answer": (str, int, float)})
            answer = normalise_number(str(row["answer"]))
            out.append(tasks.Example(family, row["problem"] + "\n", f"{tasks.ANSWER_MARKER}{answer}", answer,
                                     row["problem"]))
        else:
            raise ValueError(f"unknown benchmark kind {kind!r} (multiple_choice or math)")
    if not out:
        raise ValueError(f"{path}: no examples")
    return out


_BOXED = re.compile(r"\\boxed\{((?:[^{}]|\{[^{}]*\})*)\}")
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


def normalise_number(text: str) -> str:
    """``" 1,234.50 "`` → ``"1234.5"``; non-numeric text is only stripped."""
    t = text.strip().rstrip(".").replace("$", "")
    if _NUMBER.fullmatch(t):
        t = t.replace(",", "")
        if "." in t:
            t = t.rstrip("0").rstrip(".")
    return t


NEXT_QUESTION = "\nQuestion:"
"""Where a plain (few-shot) prompt's next block starts: a base model that runs on is read up to here."""


def answer_block(completion: str) -> str:
    """The completion up to the next ``Question:`` block (a base model continuing a few-shot prompt)."""
    return completion.split(NEXT_QUESTION, 1)[0]


_L = "A-Ha-h"
_MC_RULES = [  # tried in order; each captures one choice letter
    re.compile(rf"answer\s*(?:is|:)\s*[:\s]*\**\(?([{_L}])(?:[).*,:]|\s*$|\.(?:\s|$))", re.I),  # answer is (B) / c.
    re.compile(r"answer\s*(?:is|:)\s*[:\s]*\**\(?([A-H])\b"),                                # The answer is B iron
    re.compile(rf"\*\*\(?([{_L}])\)?[).:]?\*\*"),                                               # **B** / **(b)**
    re.compile(rf"^\s*\(?([{_L}])(?:[).:]|\s*$)"),                                               # B) iron / (c) / b
]
_LISTED = re.compile(rf"(?m)^\s*\(?([{_L}])[).:]")
_LOOSE = re.compile(rf"(?<![A-Za-z])([{_L}])(?![A-Za-z])(?!\s+[A-Za-z])")  # 'I think d' (not 'a dog')


def mc_answer(completion: str, choices: tuple[str, ...] | list[str] = ()) -> str:
    """The letter a multiple-choice completion picks (lower case), or ``""``. Read in order: the text after
    ``####``; "The answer is (B)" / "Answer: B" / "answer is c."; "**B**"; a leading "B)", "(c)" or bare letter;
    the one choice whose text the completion names (with ``choices``); else the first standalone letter not
    followed by a word ("I think d", never the article in "a dog"). A completion that lists the choices line by
    line ("A. x\nB. y…") picks one only by stating it ("The answer is: C."). Letters beyond the number of choices
    are ignored. Tested on real SmolLM2 completions (``tests/fixtures/smollm2_mc.jsonl``)."""
    text = answer_block(completion)
    if tasks.ANSWER_MARKER in text:
        text = tasks.parse_answer(text)
    valid = LETTERS[: len(choices)] if choices else LETTERS[:8]
    listed = len(set(_LISTED.findall(text))) >= 2   # "A. x\nB. y\n…": the choices repeated, none picked
    for rule in _MC_RULES[:2] if listed else _MC_RULES:
        for m in rule.finditer(text):
            if m.group(1).lower() in valid:
                return m.group(1).lower()
    if listed:
        return ""
    named = _named_choice(text, choices)
    if named:
        return named
    for m in _LOOSE.finditer(text):
        if m.group(1).lower() in valid:
            return m.group(1).lower()
    return ""


def _named_choice(text: str, choices: tuple[str, ...] | list[str]) -> str:
    """The letter of the only choice whose text the completion contains (a choice inside a longer named choice
    does not count), else ``""``."""
    low = text.lower()
    hits = [i for i, c in enumerate(choices) if c.strip() and re.search(
        rf"(?<![a-z0-9]){re.escape(c.strip().lower())}(?![a-z0-9])", low)]
    hits = [i for i in hits if not any(j != i and choices[i].strip().lower() in choices[j].strip().lower()
                                       for j in hits)]
    return LETTERS[hits[0]] if len(hits) == 1 else ""


ANSWER_IS = re.compile(r"answer\s*(?:is|:)\s*[:\s]*\**\$?(-?\d[\d,]*(?:\.\d+)?)", re.I)


def math_answer(completion: str) -> str:
    """The final answer of a free-form math completion: after ``####``, else the last ``\\boxed{}``, else the
    last "The answer is N", else the last number (read up to the next ``Question:`` block)."""
    completion = answer_block(completion)
    if tasks.ANSWER_MARKER in completion:
        return normalise_number(tasks.parse_answer(completion))
    boxed = _BOXED.findall(completion)
    if boxed:
        return normalise_number(boxed[-1])
    stated = ANSWER_IS.findall(completion)
    if stated:
        return normalise_number(stated[-1])
    numbers = _NUMBER.findall(completion)
    return normalise_number(numbers[-1]) if numbers else ""


@lru_cache(maxsize=8)
def load_train_file(path: str, family: str) -> list[tasks.Example]:
    """In-domain post-training examples from a JSONL file of ``{problem, solution, answer}`` (cached per path)."""
    out = []
    for line_no, line in enumerate(Path(path).read_text().splitlines(), start=1):
        if line.strip():
            row = parse_row(Path(path), line_no, line, {"problem": str, "solution": str, "answer": (str, int, float)})
            out.append(tasks.Example(family, row["problem"] + "\n", row["solution"],
                                     normalise_number(str(row["answer"])), row["problem"]))
    return out
