"""The task world in words, for a real tokenizer (``data.word_world``): what a 135M model can partly do.

The organism's families are written in a compact character format that a pretrained LM never saw. This world
asks the same kind of questions in plain English, sized for SmolLM2-135M-Instruct on a CPU: its in-domain family
is one-step word problems with single-digit numbers (the base answers about half of them with one worked example
in front, and a sample of several often contains the right answer — room for SFT and RL in both directions),
and its out-of-domain families follow the organism's transfer classes (docs/METHOD.md §A1):

======== =========== ============== =====================================================================
family   role        class          example
======== =========== ============== =====================================================================
story    in_domain   —              Anna has 6 shells and finds 3 more. How many shells does Anna have?
story2   ood_select  shared skill   the same stories from 10 to 19 (Ben has 14 cards and gives away 7 …)
bare     ood_select  shared skill   What is 16 + 3?
total    ood_heldout shared skill   A pen costs 4 dollars and a cup costs 5 dollars. How many dollars do they …
larger   ood_select  format only    Which number is larger, 37 or 52?
after    ood_heldout format only    What number comes right after 41?
======== =========== ============== =====================================================================

Far controls (capitals, science, opposites, animal kinds) are small multiple-choice files written for this
repository (``data/mc/``, ``data/mc/build.py``), named in the params like any benchmark. Every answer here is a
number, read from the sentence "The answer is N" (:func:`stated_answer`); gold solutions are one worked step
ending in it. Splits come from a stable hash of the question, as in the organism's world.
"""
from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from .local_data import ANSWER_IS, answer_block, normalise_number
from .tasks import FORMAT, IN_DOMAIN, OOD_HELDOUT, OOD_SELECT, SHARED, Example, sample_split

NAMES = ["Anna", "Ben", "Cara", "Dev", "Eli", "Fay", "Gus", "Hana", "Ivo", "Jess", "Kai", "Lena", "Max", "Nora",
         "Omar", "Pia", "Raj", "Sara", "Tom", "Uma", "Vic", "Wen", "Yuri", "Zoe"]
THINGS = ["apples", "books", "cards", "coins", "shells", "stamps", "pens", "marbles", "stickers", "cookies",
          "flowers", "stones", "buttons", "beads", "rocks", "plums"]
GAIN = ["gets {b} more", "finds {b} more", "buys {b} more", "is given {b} more", "picks up {b} more"]
LOSS = ["gives away {b}", "loses {b}", "sells {b}", "gives {b} to a friend", "drops {b}"]
ITEMS = ["pen", "cup", "hat", "book", "ball", "kite", "lamp", "bag", "card", "toy"]


def stated_answer(completion: str) -> str:
    """The number after the last "The answer is" (read up to the next ``Question:`` block), else ``""``: the
    prompt asks for that sentence, and a completion that never states an answer is unparseable — as the
    organism's families need their ``####`` line. (The last number alone would credit "60 is larger than 76.")"""
    stated = ANSWER_IS.findall(answer_block(completion))
    return normalise_number(stated[-1]) if stated else ""


def solution(a: int, op: str, b: int) -> tuple[str, str]:
    """The worked step and the answer: ``"6 + 3 = 9. The answer is 9."``, ``"9"``."""
    value = a + b if op == "+" else a - b
    return f"{a} {op} {b} = {value}. The answer is {value}.", str(value)


def _example(family: str, question: str, completion: str, answer: str) -> Example:
    return Example(family, question, completion, answer, question)


def _story(rng: random.Random, family: str, lo: int, hi: int) -> Example:
    name, thing, a, op = rng.choice(NAMES), rng.choice(THINGS), rng.randint(lo, hi), rng.choice("+-")
    b = rng.randint(1, 9) if op == "+" else rng.randint(1, min(9, a - 1))
    verb = rng.choice(GAIN if op == "+" else LOSS).format(b=b)
    question = f"{name} has {a} {thing} and {verb}. How many {thing} does {name} have now?"
    return _example(family, question, *solution(a, op, b))


def gen_story(rng: random.Random, cfg=None) -> Example:
    return _story(rng, "story", 2, 9)


def gen_story2(rng: random.Random, cfg=None) -> Example:
    return _story(rng, "story2", 10, 19)


def gen_bare(rng: random.Random, cfg=None) -> Example:
    a, op = rng.randint(2, 20), rng.choice("+-")
    b = rng.randint(1, 9) if op == "+" else rng.randint(1, a - 1)
    return _example("bare", f"What is {a} {op} {b}?", *solution(a, op, b))


def gen_total(rng: random.Random, cfg=None) -> Example:
    x, y = rng.sample(ITEMS, 2)
    a, b = rng.randint(1, 9), rng.randint(1, 9)
    question = f"A {x} costs {a} dollars and a {y} costs {b} dollars. How many dollars do they cost together?"
    return _example("total", question, *solution(a, "+", b))


def gen_larger(rng: random.Random, cfg=None) -> Example:
    a, b = rng.sample(range(10, 100), 2)
    m = max(a, b)
    return _example("larger", f"Which number is larger, {a} or {b}?", f"{m} is larger. The answer is {m}.", str(m))


AFTER = ["What number comes right after {a}?", "Which number follows {a}?", "What comes after {a} when counting?",
         "If you count up from {a}, what is the next number?"]


def gen_after(rng: random.Random, cfg=None) -> Example:
    a = rng.randint(10, 98)
    return _example("after", rng.choice(AFTER).format(a=a),
                    f"The number after {a} is {a + 1}. The answer is {a + 1}.", str(a + 1))


@dataclass(frozen=True)
class WordFamily:
    name: str
    role: str
    transfer: str
    generate: Callable[[random.Random, object], Example]


FAMILIES: dict[str, WordFamily] = {f.name: f for f in [
    WordFamily("story", IN_DOMAIN, IN_DOMAIN, gen_story),
    WordFamily("story2", OOD_SELECT, SHARED, gen_story2),
    WordFamily("bare", OOD_SELECT, SHARED, gen_bare),
    WordFamily("larger", OOD_SELECT, FORMAT, gen_larger),
    WordFamily("total", OOD_HELDOUT, SHARED, gen_total),
    WordFamily("after", OOD_HELDOUT, FORMAT, gen_after),
]}
IN_DOMAIN_FAMILY = "story"


def sample(family: str, split: str, n: int, seed: int, cfg) -> list[Example]:
    """``n`` distinct examples of a word family from ``split`` (``cfg``: the tasks section, for the test
    fraction)."""
    return sample_split(family, split, n, seed, cfg, generator=FAMILIES[family].generate, allow_fewer=True)
