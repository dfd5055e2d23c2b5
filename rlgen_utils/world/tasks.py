"""The task world: synthetic task families with seeded generators and exact verifiers.

Every family produces :class:`Example` s — a ``prompt``, a gold ``completion`` and the final ``answer`` — and
verifies a model's completion by parsing its final answer and comparing it exactly.

Roles follow the paper's design (docs/METHOD.md §A1):

* ``in_domain`` — the "math" domain that post-training uses (``arith``: multi-step integer arithmetic whose gold
  solution is a chain of thought ending in ``####`` and the answer);
* ``ood_select`` — out-of-domain families used to select generalization features (the paper's OBQA / CSQA /
  SciQ / ARC / HeadQA), including multiple-choice formats and facts that are taught only in pretraining;
* ``ood_heldout`` — out-of-domain families never used for selection (the paper's LogiQA / PIQA).

Splits are decided by a stable hash of the prompt string, so a prompt is in exactly one of ``train`` and
``test`` whatever generated it: pretraining and post-training draw only ``train`` prompts, evaluation only
``test`` prompts, and the two can never overlap.

The in-domain family carries one deliberate property of real pretraining corpora: a fraction
``slip_rate`` of its pretraining solutions are written by a *sloppy solver* who ignores carries and borrows
(``17+5=12``). The base model therefore knows both procedures and samples each; greedy decoding follows the
majority. Post-training by SFT (gold solutions) or by RL (reward for a correct final answer) must select the
correct procedure — the regime in which the paper finds RL "re-weighting" base features. Gold solutions used for
SFT, DPO and evaluation are always correct; ``slip_rate: 0`` turns the property off.
"""
from __future__ import annotations

import hashlib
import random
from collections.abc import Callable
from dataclasses import dataclass

ANSWER_MARKER = "####"
IN_DOMAIN, OOD_SELECT, OOD_HELDOUT = "in_domain", "ood_select", "ood_heldout"
MC_LETTERS = "abc"
COLOURS = ["red", "blue", "green", "pink", "gold", "grey", "teal", "plum"]
FACT_TEMPLATES = ["colour of {n}?", "{n} likes?", "{n} wears?"]


@dataclass(frozen=True)
class Example:
    family: str
    prompt: str
    completion: str
    answer: str

    @property
    def text(self) -> str:
        return self.prompt + self.completion


def parse_answer(completion: str) -> str:
    """The final answer of a completion: the text after the last ``####`` if any, else the whole completion;
    cut at the first newline and stripped."""
    if ANSWER_MARKER in completion:
        completion = completion.rsplit(ANSWER_MARKER, 1)[1]
    return completion.split("\n", 1)[0].strip()


def is_correct(completion: str, answer: str) -> bool:
    return parse_answer(completion) == answer


def stable_hash(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


def split_of(prompt: str, test_fraction: float) -> str:
    """``"test"`` for a stable ``test_fraction`` of all prompts, else ``"train"``."""
    return "test" if (stable_hash(prompt) % 10_000) < test_fraction * 10_000 else "train"


# --------------------------------------------------------------------------------------------- generators
def _chain(rng: random.Random, n_ops: int, first: int, operand_max: int) -> list[tuple[str, int]]:
    """Operators and operands of a chain from ``first`` whose every intermediate value stays in [0, 99]."""
    value, ops = first, []
    for _ in range(n_ops):
        b = rng.randint(2, operand_max)
        op = rng.choice("+-")
        if op == "+" and value + b > 99 or op == "-" and value - b < 0:
            op = "-" if op == "+" else "+"
        ops.append((op, b))
        value = value + b if op == "+" else value - b
    return ops


def _step(a: int, op: str, b: int, sloppy: bool) -> int:
    """One step; a sloppy solver drops the carry (``-10``) or the borrow (``+10``) when one occurs."""
    if op == "+":
        return a + b - (10 if sloppy and (a % 10 + b % 10) >= 10 else 0)
    return a - b + (10 if sloppy and (a % 10) < (b % 10) and a - b + 10 <= 99 else 0)


def arith_solution(first: int, ops: list[tuple[str, int]], sloppy: bool = False) -> tuple[str, int]:
    steps, value = [], first
    for op, b in ops:
        new = _step(value, op, b, sloppy)
        steps.append(f"{value}{op}{b}={new}")
        value = new
    return ",".join(steps) + f"{ANSWER_MARKER}{value}", value


def gen_arith(rng: random.Random, cfg) -> Example:
    n_ops = rng.randint(cfg.min_ops, cfg.max_ops)
    first = rng.randint(10, cfg.first_max)
    ops = _chain(rng, n_ops, first, cfg.operand_max)
    prompt = str(first) + "".join(f"{op}{b}" for op, b in ops) + "="
    completion, value = arith_solution(first, ops)
    return Example("arith", prompt, completion, str(value))


def pretrain_arith(rng: random.Random, cfg) -> Example:
    """An arith example as found in the pretraining corpus: sloppy with probability ``cfg.slip_rate``."""
    ex = gen_arith(rng, cfg)
    if rng.random() < cfg.slip_rate:
        first, ops = _parse_arith_prompt(ex.prompt)
        completion, value = arith_solution(first, ops, sloppy=True)
        return Example("arith", ex.prompt, completion, str(value))
    return ex


def _parse_arith_prompt(prompt: str) -> tuple[int, list[tuple[str, int]]]:
    body = prompt.rstrip("=")
    tokens, cur = [], ""
    for ch in body:
        if ch in "+-" and cur:
            tokens.append(cur)
            cur = ch
        else:
            cur += ch
    tokens.append(cur)
    return int(tokens[0]), [(t[0], int(t[1:])) for t in tokens[1:]]


def gen_cmp(rng: random.Random, cfg) -> Example:
    a, b = rng.sample(range(10, 100), 2)
    return Example("cmp", f"max {a} {b}:", str(max(a, b)), str(max(a, b)))


def _mc(family: str, question: str, options: list[str], correct: int) -> Example:
    body = " ".join(f"{MC_LETTERS[i]}){o}" for i, o in enumerate(options))
    return Example(family, f"{question} {body}>", MC_LETTERS[correct], MC_LETTERS[correct])


def gen_mcmax(rng: random.Random, cfg) -> Example:
    nums = rng.sample(range(10, 100), 3)
    return _mc("mcmax", "largest?", [str(n) for n in nums], nums.index(max(nums)))


def gen_parity(rng: random.Random, cfg) -> Example:
    even = rng.randrange(10, 100, 2)
    odds = rng.sample(range(11, 100, 2), 2)
    options = [even] + odds
    rng.shuffle(options)
    return _mc("parity", "even?", [str(n) for n in options], options.index(even))


def fact_table(n_names: int, seed: int = 1234) -> dict[str, str]:
    """Invented names → colours, fixed by ``seed``; taught only in pretraining."""
    rng = random.Random(seed)
    consonants, vowels = "bdfgklmnprstvz", "aeiou"
    names: set[str] = set()
    while len(names) < n_names:
        names.add("".join(rng.choice(consonants) + rng.choice(vowels) for _ in range(2)) + rng.choice(consonants))
    return {n: rng.choice(COLOURS) for n in sorted(names)}


def gen_fact(rng: random.Random, cfg) -> Example:
    table = fact_table(cfg.n_facts)
    name = rng.choice(sorted(table))
    prompt = rng.choice(FACT_TEMPLATES).format(n=name) + " "
    return Example("fact", prompt, table[name], table[name])


def gen_factmc(rng: random.Random, cfg) -> Example:
    table = fact_table(cfg.n_facts)
    name = rng.choice(sorted(table))
    wrong = rng.sample([c for c in COLOURS if c != table[name]], 2)
    options = [table[name]] + wrong
    rng.shuffle(options)
    return _mc("factmc", f"{name}?", options, options.index(table[name]))


def gen_sort(rng: random.Random, cfg) -> Example:
    digits = [rng.randint(0, 9) for _ in range(rng.randint(3, 4))]
    return Example("sort", f"sort {''.join(map(str, digits))}:", "".join(map(str, sorted(digits))),
                   "".join(map(str, sorted(digits))))


def gen_rev(rng: random.Random, cfg) -> Example:
    word = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(3, 5)))
    return Example("rev", f"rev {word}:", word[::-1], word[::-1])


@dataclass(frozen=True)
class Family:
    name: str
    role: str
    generate: Callable[[random.Random, object], Example]
    chance: float          # accuracy of a uniform guess over the answer space
    multiple_choice: bool = False


FAMILIES: dict[str, Family] = {f.name: f for f in [
    Family("arith", IN_DOMAIN, gen_arith, chance=0.0),
    Family("cmp", OOD_SELECT, gen_cmp, chance=0.0),
    Family("mcmax", OOD_SELECT, gen_mcmax, chance=1 / 3, multiple_choice=True),
    Family("fact", OOD_SELECT, gen_fact, chance=1 / len(COLOURS)),
    Family("factmc", OOD_SELECT, gen_factmc, chance=1 / 3, multiple_choice=True),
    Family("sort", OOD_SELECT, gen_sort, chance=0.0),
    Family("rev", OOD_HELDOUT, gen_rev, chance=0.0),
    Family("parity", OOD_HELDOUT, gen_parity, chance=1 / 3, multiple_choice=True),
]}


def families_with_role(role: str) -> list[str]:
    return [n for n, f in FAMILIES.items() if f.role == role]


def sample_split(family: str, split: str, n: int, seed: int, cfg, unique: bool = True,
                 generator: Callable | None = None, allow_fewer: bool = False) -> list[Example]:
    """``n`` examples of ``family`` whose prompts fall in ``split``; distinct prompts when ``unique``.
    A family with a small prompt space (``fact``) returns fewer when ``allow_fewer``, else raises."""
    rng = random.Random(f"{family}/{split}/{seed}")
    gen = generator or FAMILIES[family].generate
    out, seen, tries, misses = [], set(), 0, 0
    while len(out) < n:
        tries += 1
        # an exhausted prompt space: with allow_fewer, stop after a long run of misses (the chance that a prompt
        # still unseen exists is then negligible), else after the overall budget
        if tries > 50 * n + 20_000 or (allow_fewer and misses > 5_000 + 20 * len(out)):
            if allow_fewer:
                break
            raise ValueError(f"family {family!r} cannot supply {n} distinct {split} prompts")
        ex = gen(rng, cfg)
        if split_of(ex.prompt, cfg.test_fraction) != split or (unique and ex.prompt in seen):
            misses += 1
            continue
        misses = 0
        seen.add(ex.prompt)
        out.append(ex)
    return out
