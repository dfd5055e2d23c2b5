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

**Transfer classes** (docs/METHOD.md §A1). Every out-of-domain family belongs to one class, so that transfer
*can* happen by a known mechanism and can equally fail to:

* ``shared_skill`` — the same carry in another surface form (``wordsum``: one step in words, ``add 37 8:``;
  ``clock``: minutes that carry into the hour at 60; ``price``: cents that carry into dollars at 100). The
  same sloppy solver writes ``slip_rate`` of their pretraining answers, so correcting the carry procedure
  in-domain has somewhere to transfer.
* ``format_only`` — number tasks without carries (``cmp``, ``mcmax``, ``parity``) whose pretraining answers are
  written both with and without a short chain and the ``####`` marker (``chain_rate``): answer-format
  discipline is a transfer channel of its own, measured separately (:func:`uses_chain`, :func:`parseable`).
* ``far_control`` — nothing in common with ``arith`` (``fact``, ``factmc``, ``rev``, ``sort``): no transfer is
  expected; forgetting may show here.

**Off-policy SFT.** SFT and DPO's chosen side train on *teacher* solutions (:func:`teacher_completion`,
``take 37, add 8: 45, sub 3: 42 ####42``), a style that is rare in pretraining (``teacher_rate`` of the
pretraining ``arith`` solutions; :func:`is_teacher_style` measures its corpus share), as a teacher's traces are
for a real base. Evaluation and RL's reward read only the final answer, whatever the style.
"""
from __future__ import annotations

import functools
import hashlib
import random
import re
from collections.abc import Callable
from dataclasses import dataclass

ANSWER_MARKER = "####"
IN_DOMAIN, OOD_SELECT, OOD_HELDOUT = "in_domain", "ood_select", "ood_heldout"
SHARED, FORMAT, FAR = "shared_skill", "format_only", "far_control"
CLASSES = (IN_DOMAIN, SHARED, FORMAT, FAR)
MC_LETTERS = "abc"
COLOURS = ["red", "blue", "green", "pink", "gold", "grey", "teal", "plum"]
FACT_TEMPLATES = ["colour of {n}?", "{n} likes?", "{n} wears?"]


@dataclass(frozen=True)
class Example:
    """One problem. ``prompt`` is what the model reads (rendered by :mod:`rlgen_utils.world.prompting`),
    ``completion`` the gold text after it, ``answer`` what a verifier compares. Problems from words or files also
    keep their bare ``question`` (and multiple choice its ``choices``), from which a prompt format renders them;
    the organism's task world has none (its prompts are already in its compact format)."""
    family: str
    prompt: str
    completion: str
    answer: str
    question: str = ""
    choices: tuple[str, ...] = ()

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


def arith_step(a: int, op: str, b: int, sloppy: bool) -> int:
    """One step; a sloppy solver drops the carry (``-10``) or the borrow (``+10``) when one occurs."""
    if op == "+":
        return a + b - (10 if sloppy and (a % 10 + b % 10) >= 10 else 0)
    return a - b + (10 if sloppy and (a % 10) < (b % 10) and a - b + 10 <= 99 else 0)


def arith_solution(first: int, ops: list[tuple[str, int]], sloppy: bool = False) -> tuple[str, int]:
    steps, value = [], first
    for op, b in ops:
        new = arith_step(value, op, b, sloppy)
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


def parse_arith_prompt(prompt: str) -> tuple[int, list[tuple[str, int]]]:
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


def teacher_completion(ex: Example) -> str:
    """The off-policy *teacher* solution of an ``arith`` example: the same correct steps written in a style rare
    in pretraining (``take 37, add 8: 45, sub 3: 42 ####42``)."""
    first, ops = parse_arith_prompt(ex.prompt)
    steps, value = [f"take {first}"], first
    for op, b in ops:
        value = arith_step(value, op, b, sloppy=False)
        steps.append(f"{'add' if op == '+' else 'sub'} {b}: {value}")
    return ", ".join(steps) + f" {ANSWER_MARKER}{value}"


def is_teacher_style(text: str) -> bool:
    """Whether ``text`` contains a teacher-style step (``take 37, add 8: 45``)."""
    return re.search(r"take \d+, (add|sub) \d+: \d+", text) is not None


def uses_chain(completion: str) -> bool:
    """Whether a completion writes a chain and the answer marker (the format channel)."""
    return ANSWER_MARKER in completion


# ------------------------------------------------------------------------------------ shared-skill families
def _sum_step(rng: random.Random) -> tuple[int, str, int]:
    """One ``a op b`` with a in [10, 99], b in [2, 9] and the result in [0, 99] — the in-domain digit operation."""
    a = rng.randint(10, 99)
    (op, b), = _chain(rng, 1, a, 9)
    return a, op, b


def _parse_sum(text: str) -> tuple[int, str, int]:
    m = re.fullmatch(r"(\d+)([+-])(\d+)", text)
    if m is None:
        raise ValueError(f"not a sum: {text!r}")
    return int(m[1]), m[2], int(m[3])


WORDSUM_TEMPLATES = {"+": ["add {a} {b}:", "{a} plus {b}:", "sum {a} {b}:", "{b} more than {a}:"],
                     "-": ["sub {a} {b}:", "{a} minus {b}:", "diff {a} {b}:", "{b} less than {a}:"]}


def gen_wordsum(rng: random.Random, cfg) -> Example:
    a, op, b = _sum_step(rng)
    prompt = rng.choice(WORDSUM_TEMPLATES[op]).format(a=a, b=b)
    return render_wordsum(Example("wordsum", prompt, "", ""), False, False)


def _parse_wordsum(prompt: str) -> tuple[int, str, int]:
    for op, templates in WORDSUM_TEMPLATES.items():
        for t in templates:
            m = re.fullmatch(t.replace("{a}", r"(?P<a>\d+)").replace("{b}", r"(?P<b>\d+)"), prompt)
            if m:
                return int(m["a"]), op, int(m["b"])
    raise ValueError(f"not a wordsum prompt: {prompt!r}")


def render_wordsum(ex: Example, sloppy: bool, chain: bool) -> Example:
    """One in-domain step written in words (``add 37 8:``, ``8 more than 37:``); the sloppy solver drops its carry
    or borrow."""
    a, op, b = _parse_wordsum(ex.prompt)
    value = str(arith_step(a, op, b, sloppy))
    return Example(ex.family, ex.prompt, f"{a}{op}{b}={value}{ANSWER_MARKER}{value}" if chain else value, value)


def gen_clock(rng: random.Random, cfg) -> Example:
    hour, minute, add = rng.randint(1, 10), rng.randint(0, 59), rng.randrange(5, 60, 5)
    return render_clock(Example("clock", f"time {hour}:{minute:02d}+{add}:", "", ""), sloppy=False, chain=False)


def render_clock(ex: Example, sloppy: bool, chain: bool) -> Example:
    """Minutes carry into the hour at 60; the sloppy solver drops that carry (``10:45+20`` → ``10:05``)."""
    return _render_carry(ex, r"time (\d+):(\d+)\+(\d+):", 60, ":", sloppy, chain)


def _render_carry(ex: Example, pattern: str, radix: int, sep: str, sloppy: bool, chain: bool) -> Example:
    """``<big><sep><small> + <add>`` where ``small + add`` carries into ``big`` at ``radix`` (clock minutes at 60,
    cents at 100); the sloppy solver drops the carry, exactly as arith's sloppy solver does."""
    m = re.fullmatch(pattern, ex.prompt)
    if m is None:
        raise ValueError(f"not a {ex.family} prompt: {ex.prompt!r}")
    big, small, add = int(m[1]), int(m[2]), int(m[3])
    total = small + add
    carry = 1 if total >= radix and not sloppy else 0
    answer = f"{big + carry}{sep}{total % radix:02d}"
    return Example(ex.family, ex.prompt, f"{small}+{add}={total}{ANSWER_MARKER}{answer}" if chain else answer,
                   answer)


def gen_price(rng: random.Random, cfg) -> Example:
    dollars, cents, add = rng.randint(1, 8), rng.randrange(0, 100, 5), rng.randrange(5, 100, 5)
    return render_price(Example("price", f"cost {dollars}.{cents:02d}+0.{add:02d}:", "", ""), False, False)


def render_price(ex: Example, sloppy: bool, chain: bool) -> Example:
    """Cents carry into dollars at 100; the sloppy solver drops that carry (``3.75+0.50`` → ``3.25``)."""
    return _render_carry(ex, r"cost (\d+)\.(\d+)\+0\.(\d+):", 100, ".", sloppy, chain)


# ------------------------------------------------------------------------------------- format-only families
def gen_cmp(rng: random.Random, cfg) -> Example:
    a, b = rng.sample(range(10, 100), 2)
    return Example("cmp", f"max {a} {b}:", str(max(a, b)), str(max(a, b)))


def render_cmp(ex: Example, sloppy: bool, chain: bool) -> Example:
    a, b = sorted(int(t) for t in ex.prompt.removeprefix("max ").rstrip(":").split())
    return Example(ex.family, ex.prompt, f"{b}>{a}{ANSWER_MARKER}{ex.answer}" if chain else ex.answer, ex.answer)


def _mc(family: str, question: str, options: list[str], correct: int) -> Example:
    body = " ".join(f"{MC_LETTERS[i]}){o}" for i, o in enumerate(options))
    return Example(family, f"{question} {body}>", MC_LETTERS[correct], MC_LETTERS[correct])


def _mc_chain(ex: Example, chain: bool, word: str) -> Example:
    """A multiple-choice answer with its chosen option stated first (``max=82####b``) when ``chain``."""
    value = re.findall(rf"{ex.answer}\)(\d+)", ex.prompt)[0]
    return Example(ex.family, ex.prompt, f"{word}={value}{ANSWER_MARKER}{ex.answer}" if chain else ex.answer,
                   ex.answer)


def gen_mcmax(rng: random.Random, cfg) -> Example:
    nums = rng.sample(range(10, 100), 3)
    return _mc("mcmax", "largest?", [str(n) for n in nums], nums.index(max(nums)))


def gen_parity(rng: random.Random, cfg) -> Example:
    even = rng.randrange(10, 100, 2)
    odds = rng.sample(range(11, 100, 2), 2)
    options = [even] + odds
    rng.shuffle(options)
    return _mc("parity", "even?", [str(n) for n in options], options.index(even))


# -------------------------------------------------------------------------------------- far-control families
def fact_table(n_names: int, seed: int = 1234) -> dict[str, str]:
    """Invented names → colours, fixed by ``seed``; taught only in pretraining (a fresh dict, names sorted)."""
    return dict(_fact_items(n_names, seed))


@functools.lru_cache(maxsize=16)
def _fact_items(n_names: int, seed: int) -> tuple[tuple[str, str], ...]:
    """The table as sorted ``(name, colour)`` pairs, built once per (size, seed): every fact example reads it, and
    building it draws ~5 random letters a name (sampling an evaluation pool rebuilt it tens of thousands of times)."""
    rng = random.Random(seed)
    consonants, vowels = "bdfgklmnprstvz", "aeiou"
    names: set[str] = set()
    while len(names) < n_names:
        names.add("".join(rng.choice(consonants) + rng.choice(vowels) for _ in range(2)) + rng.choice(consonants))
    return tuple((n, rng.choice(COLOURS)) for n in sorted(names))


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
    word = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(5, 9)))
    return Example("rev", f"rev {word}:", word[::-1], word[::-1])


Render = Callable[[Example, bool, bool], Example]


@dataclass(frozen=True)
class Family:
    """A task family. ``render(example, sloppy, chain)`` rewrites an example's completion as the pretraining
    corpus may have it: by the sloppy solver (shared-skill families) and/or with a chain and the answer marker
    (shared-skill and format-only families). ``answer_pattern`` is what a parseable final answer looks like."""
    name: str
    role: str
    transfer: str
    generate: Callable[[random.Random, object], Example]
    chance: float          # accuracy of a uniform guess over the answer space
    answer_pattern: str
    multiple_choice: bool = False
    render: Render | None = None

    @property
    def sloppy_in_pretraining(self) -> bool:
        return self.transfer in (IN_DOMAIN, SHARED)

    @property
    def chain_in_pretraining(self) -> bool:
        return self.render is not None


MC, NUM = f"[{MC_LETTERS}]", r"\d+"
FAMILIES: dict[str, Family] = {f.name: f for f in [
    Family("arith", IN_DOMAIN, IN_DOMAIN, gen_arith, chance=0.0, answer_pattern=NUM),
    Family("wordsum", OOD_SELECT, SHARED, gen_wordsum, 0.0, NUM, render=render_wordsum),
    Family("clock", OOD_SELECT, SHARED, gen_clock, 0.0, r"\d+:\d\d", render=render_clock),
    Family("cmp", OOD_SELECT, FORMAT, gen_cmp, 0.0, NUM, render=render_cmp),
    Family("mcmax", OOD_SELECT, FORMAT, gen_mcmax, 1 / 3, MC, multiple_choice=True,
           render=lambda e, s, c: _mc_chain(e, c, "max")),
    Family("factmc", OOD_SELECT, FAR, gen_factmc, 1 / 3, MC, multiple_choice=True),
    Family("sort", OOD_SELECT, FAR, gen_sort, 0.0, NUM),
    Family("price", OOD_HELDOUT, SHARED, gen_price, 0.0, r"\d+\.\d\d", render=render_price),
    Family("parity", OOD_HELDOUT, FORMAT, gen_parity, 1 / 3, MC, multiple_choice=True,
           render=lambda e, s, c: _mc_chain(e, c, "even")),
    Family("fact", OOD_HELDOUT, FAR, gen_fact, 1 / len(COLOURS), "|".join(COLOURS)),
    Family("rev", OOD_HELDOUT, FAR, gen_rev, 0.0, "[a-z]+"),
]}


def families_with_role(role: str) -> list[str]:
    return [n for n, f in FAMILIES.items() if f.role == role]


def families_of_class(transfer: str) -> list[str]:
    return [n for n, f in FAMILIES.items() if f.transfer == transfer]


def parseable(family: str, completion: str) -> bool:
    """Whether the final answer of ``completion`` has the family's answer form (a letter, a number, a time…)."""
    return re.fullmatch(FAMILIES[family].answer_pattern, parse_answer(completion)) is not None


def pretrain_version(rng: random.Random, ex: Example, cfg) -> Example:
    """``ex`` as the pretraining corpus writes it: arith sloppy with probability ``slip_rate`` or teacher-style
    with ``teacher_rate``; shared-skill families sloppy with ``slip_rate``; families with a chain form chained
    with ``chain_rate`` (shared-skill ones with ``shared_chain_rate`` where set). Draws from ``rng`` in a fixed
    order whatever the outcome."""
    fam = FAMILIES[ex.family]
    chain_rate = cfg.chain_rate
    if fam.transfer == SHARED and cfg.shared_chain_rate is not None:
        chain_rate = cfg.shared_chain_rate
    sloppy = rng.random() < cfg.slip_rate and fam.sloppy_in_pretraining
    chain = rng.random() < chain_rate and fam.chain_in_pretraining
    teacher = rng.random() < cfg.teacher_rate and ex.family == "arith"
    if ex.family == "arith":
        if teacher:
            return Example("arith", ex.prompt, teacher_completion(ex), ex.answer)
        if sloppy:
            first, ops = parse_arith_prompt(ex.prompt)
            completion, value = arith_solution(first, ops, sloppy=True)
            return Example("arith", ex.prompt, completion, str(value))
        return ex
    return fam.render(ex, sloppy, chain) if fam.render is not None else ex


def correct_answer(ex: Example) -> str:
    """The right answer to ``ex``'s prompt, whatever answer the example itself gives (a corpus example may be
    the sloppy solver's)."""
    if ex.family == "arith":
        first, ops = parse_arith_prompt(ex.prompt)
        return str(arith_solution(first, ops)[1])
    fam = FAMILIES[ex.family]
    return fam.render(ex, False, False).answer if fam.render is not None and fam.sloppy_in_pretraining else ex.answer


def is_sloppy(ex: Example) -> bool:
    """Whether ``ex`` answers with the sloppy solver's wrong result."""
    return ex.answer != correct_answer(ex)


def completion_budget(examples: list[Example]) -> int:
    """Characters a model may need to answer these examples in any form it saw: the longest gold completion,
    chained form or teacher form."""
    def forms(e: Example) -> list[str]:
        fam = FAMILIES.get(e.family)
        out = [e.completion]
        if fam is not None and fam.render is not None:
            out.append(fam.render(e, False, True).completion)
        if e.family == "arith":
            out.append(teacher_completion(e))
        return out
    return max(len(f) for e in examples for f in forms(e))


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
