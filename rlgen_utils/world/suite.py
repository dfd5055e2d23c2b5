"""What a run trains on and is evaluated on: the task world, local benchmark files, or both.

* :func:`train_examples` — the in-domain post-training prompts, the same for every method: the task world's
  ``arith`` train split, or ``data.train_file`` (JSONL of ``{problem, solution, answer}``) for real models.
* :func:`eval_families` — every evaluation family with its role, chance level, test examples and exact
  verifier: the task world's families (``data.task_world``) plus each ``data.benchmarks`` file.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..run.config import Params
from . import local_data, tasks

if TYPE_CHECKING:
    from ..run.types import Tokenizer


@dataclass(frozen=True)
class EvalFamily:
    name: str
    role: str
    chance: float
    examples: tuple[tasks.Example, ...]
    kind: str                       # "task" (task world / MC letter), "math" (free-form math file)
    transfer: str = ""              # task world: tasks.CLASSES; local files: data.benchmarks[].transfer

    def verify(self, completion: str, answer: str) -> bool:
        return VERIFIERS[self.kind](completion, answer)

    def parse(self, completion: str) -> str:
        return PARSERS[self.kind](completion)

    def parseable(self, completion: str) -> bool:
        """Whether the completion's final answer has this family's answer form (else it is *unparseable*)."""
        if self.kind == "task" and self.name in tasks.FAMILIES:
            return tasks.parseable(self.name, completion)
        return self.parse(completion) != ""

    def max_new_tokens(self, tokenizer: Tokenizer, cap: int) -> int:
        """Generation budget: the longest completion in any form the task world writes (plain, chained,
        teacher) plus a margin; free-form math gets the cap."""
        if self.kind == "math":
            return cap
        if self.kind == "task" and self.name in tasks.FAMILIES:
            return min(cap, tasks.completion_budget(list(self.examples)) + 8)  # one character per token
        longest = max(len(tokenizer(e.completion, add_special_tokens=False)["input_ids"]) for e in self.examples)
        return min(cap, longest + 8)


def _math_correct(completion: str, answer: str) -> bool:
    return local_data.math_answer(completion) == answer


def _mc_correct(completion: str, answer: str) -> bool:
    return local_data.mc_answer(completion) == answer


VERIFIERS: dict[str, Callable[[str, str], bool]] = {"task": tasks.is_correct, "math": _math_correct,
                                                    "multiple_choice": _mc_correct}
PARSERS: dict[str, Callable[[str], str]] = {"task": tasks.parse_answer, "math": local_data.math_answer,
                                            "multiple_choice": local_data.mc_answer}


def in_domain_family(P: Params) -> str:
    named = [b.name for b in P.data.benchmarks if b.role == tasks.IN_DOMAIN]
    return named[0] if named else "arith"


def train_examples(P: Params) -> list[tasks.Example]:
    """The in-domain post-training prompts — the same for every method — with the gold solutions SFT imitates and
    DPO prefers: the task world's *teacher* solutions (``posttrain.sft_style: teacher``, rare in pretraining) or
    its pretraining-style ones; a ``data.train_file``'s own solutions."""
    if P.data.train_file:
        return local_data.load_train_file(P.data.train_file, in_domain_family(P))[: P.posttrain.n_train_prompts]
    examples = tasks.sample_split("arith", "train", P.posttrain.n_train_prompts, P.seed, P.tasks)
    if P.posttrain.sft_style == "teacher":
        return [tasks.Example(e.family, e.prompt, tasks.teacher_completion(e), e.answer) for e in examples]
    return examples


def validation_examples(P: Params, n: int) -> list[tasks.Example]:
    """In-domain prompts for choosing learning rates: training-split prompts that no method trains on (never
    the test split, which reports results)."""
    if P.data.train_file:
        rows = local_data.load_train_file(P.data.train_file, in_domain_family(P))
        return rows[P.posttrain.n_train_prompts: P.posttrain.n_train_prompts + n]
    trained = {e.prompt for e in train_examples(P)}
    pool = tasks.sample_split("arith", "train", n + len(trained), P.seed + 7, P.tasks)
    return [e for e in pool if e.prompt not in trained][:n]


def train_kind(P: Params) -> str:
    """Which verifier scores the training prompts (the GRPO/RLOO reward and DPO's wrong samples)."""
    return "math" if P.data.train_file else "task"


def curve_examples(P: Params) -> list[tasks.Example]:
    """Held-out in-domain prompts scored after every post-training segment for the training curves."""
    if in_domain_family(P) == "arith":
        return tasks.sample_split("arith", "test", P.eval.curve_n, P.seed + 1, P.tasks)
    return list(eval_families(P)[in_domain_family(P)].examples[: P.eval.curve_n])


_FAMILIES: dict[str, dict[str, EvalFamily]] = {}


def eval_families(P: Params) -> dict[str, EvalFamily]:
    """Every evaluation family of this run, task world first, in a fixed order (built once per process and
    params: sampling the test sets takes seconds; local files are re-read when they change)."""
    stamp = [(b.path, Path(b.path).stat().st_mtime_ns) for b in P.data.benchmarks if Path(b.path).is_file()]
    key = P.section_hash("tasks", "data", "eval") + repr(stamp)
    if key not in _FAMILIES:
        _FAMILIES[key] = _build_families(P)
    return dict(_FAMILIES[key])


def _build_families(P: Params) -> dict[str, EvalFamily]:
    out: dict[str, EvalFamily] = {}
    if P.data.task_world:
        for name, fam in tasks.FAMILIES.items():
            ex = tasks.sample_split(name, "test", P.eval.n_per_family, P.seed, P.tasks, allow_fewer=True)
            out[name] = EvalFamily(name, fam.role, fam.chance, tuple(ex), "task", fam.transfer)
    for b in P.data.benchmarks:
        ex = local_data.load_jsonl(b.path, b.kind, b.name)[: b.limit]
        chance = sum(1 / _n_choices(e.prompt) for e in ex) / len(ex) if b.kind == "multiple_choice" else 0.0
        transfer = tasks.IN_DOMAIN if b.role == tasks.IN_DOMAIN else b.transfer
        out[b.name] = EvalFamily(b.name, b.role, chance, tuple(ex), b.kind, transfer)
    return out


def _n_choices(prompt: str) -> int:
    return sum(f" {c})" in " " + prompt for c in local_data.LETTERS)
