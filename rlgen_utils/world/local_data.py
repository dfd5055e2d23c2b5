"""Real benchmarks from local JSONL files, turned into :class:`~rlgen_utils.tasks.Example` s.

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
    body = " ".join(f"{LETTERS[i]}){c}" for i, c in enumerate(choices))
    return tasks.Example(family, f"{question} {body}>", letter, letter)


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
            out.append(tasks.Example(family, row["problem"] + "\n", f"{tasks.ANSWER_MARKER}{answer}", answer))
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


def mc_answer(completion: str) -> str:
    """The letter a multiple-choice completion picks: after ``####`` if present, else its first standalone
    choice letter a–h (``"b"``, ``" B) iron"``, ``"(c)"``, ``"I think d"``)."""
    text = tasks.parse_answer(completion) if tasks.ANSWER_MARKER in completion else completion
    m = re.search(r"(?<![A-Za-z])([A-Ha-h])(?![A-Za-z])", text)
    return m.group(1).lower() if m else ""


def math_answer(completion: str) -> str:
    """The final answer of a free-form math completion."""
    if tasks.ANSWER_MARKER in completion:
        return normalise_number(tasks.parse_answer(completion))
    boxed = _BOXED.findall(completion)
    if boxed:
        return normalise_number(boxed[-1])
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
                                     normalise_number(str(row["answer"]))))
    return out
