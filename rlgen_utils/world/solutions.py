"""Reading an ``arith`` solution step by step: its style and the first thing it gets wrong.

The in-domain family's prompts are chains such as ``77-5-9=``. A model answers in one of two styles:

* the **pretraining style** ``77-5=72,72-9=63####63`` (what the corpus mostly writes);
* the **teacher style** ``take 77, sub 5: 72, sub 9: 63 ####63`` (SFT's off-policy gold, rare in pretraining:
  :func:`rlgen_utils.world.tasks.teacher_completion`).

:func:`read_solution` parses either into the operands and results it wrote; :func:`error_kind` compares them with
the prompt and names the first error, in the order a reader checks a worked solution:

``unreadable``  no step and answer could be read in either style;
``steps``       a different number of steps than the prompt has (a skipped or invented operation);
``operand``     a step starts from, or applies, a number the prompt (or the previous step) does not give —
                miscopying, as in ``take 77, sub 9: 79`` for ``77-5-9=``;
``carry``       a step's result is the sloppy solver's: the carry or the borrow dropped (``17+5=12``);
``step``        a step's result is wrong in another way;
``answer``      every step right but the final answer is not the last step's result;
``correct``     every step and the answer right.

Notebook 02 uses these to say *how* an off-policy model fails (:mod:`rlgen_utils.studies.offpolicy`).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from .tasks import ANSWER_MARKER, arith_step, parse_answer, parse_arith_prompt

STYLES = ("teacher", "pretraining", "unreadable")
ERROR_KINDS = ("correct", "unreadable", "steps", "operand", "carry", "step", "answer")

_TEACHER_START = re.compile(r"\s*take (\d+)")
_TEACHER_STEP = re.compile(r",\s*(add|sub) (\d+): (\d+)")
_NATIVE_STEP = re.compile(r"(\d+)([+-])(\d+)=(\d+)")


@dataclass(frozen=True)
class Solution:
    """What a completion wrote: its style, the value each step starts from, the step's operator and operand, the
    result it wrote, and its final answer."""
    style: str
    steps: tuple[tuple[int, str, int, int], ...]   # (start, op, operand, result) per step
    answer: str


def read_solution(completion: str) -> Solution:
    """Parse ``completion`` (the text after an ``arith`` prompt) in the teacher or the pretraining style."""
    body = completion.split(ANSWER_MARKER, 1)[0]
    answer = parse_answer(completion) if ANSWER_MARKER in completion else ""
    start = _TEACHER_START.match(body)
    if start:
        value, steps = int(start.group(1)), []
        for m in _TEACHER_STEP.finditer(body, start.end()):
            op, b, result = "+" if m.group(1) == "add" else "-", int(m.group(2)), int(m.group(3))
            steps.append((value, op, b, result))
            value = result
        return Solution("teacher", tuple(steps), answer)
    steps = tuple((int(a), op, int(b), int(r)) for a, op, b, r in _NATIVE_STEP.findall(body))
    return Solution("pretraining" if steps else "unreadable", steps, answer)


def style_of(completion: str) -> str:
    """``teacher``, ``pretraining`` or ``unreadable``."""
    return read_solution(completion).style


def error_kind(prompt: str, completion: str) -> str:
    """The first error of ``completion`` as a solution of the ``arith`` ``prompt`` (one of :data:`ERROR_KINDS`)."""
    sol = read_solution(completion)
    if sol.style == "unreadable" or not sol.answer:
        return "unreadable"
    first, ops = parse_arith_prompt(prompt)
    if len(sol.steps) != len(ops):
        return "steps"
    value = first
    for (start, op, b, result), (want_op, want_b) in zip(sol.steps, ops):
        if start != value or op != want_op or b != want_b:
            return "operand"
        right = arith_step(value, op, b, sloppy=False)
        if result != right:
            return "carry" if result == arith_step(value, op, b, sloppy=True) else "step"
        value = right
    return "correct" if sol.answer == str(value) else "answer"


def teacher_prefix(prompt: str) -> str:
    """The opening a completion is forced to begin with to answer ``prompt`` in the teacher style
    (``take 77,``): the first operand copied and the style chosen, every step left to the model."""
    first, _ = parse_arith_prompt(prompt)
    return f"take {first},"
