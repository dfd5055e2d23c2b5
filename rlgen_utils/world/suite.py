"""What a run trains on and is evaluated on: the task world (or its version in words), local benchmark files.

* :func:`train_examples` — the in-domain post-training prompts, the same for every method: the task world's
  ``arith`` train split, the word world's ``story`` train split, or ``data.train_file`` (JSONL of
  ``{problem, solution, answer}``) for real models.
* :func:`eval_families` — every evaluation family with its role, chance level, test examples, how it is scored
  (generation, or the log-likelihood of each choice) and its exact verifier: the task world's families
  (``data.task_world``) or the word world's (``data.word_world``), plus each ``data.benchmarks`` file.

Every example leaves this module rendered in the run's prompt format (:func:`prompt_format`,
:mod:`rlgen_utils.world.prompting`), so every later stage reads the same prompts.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..run.config import Params
from . import local_data, prompting, tasks, words

if TYPE_CHECKING:
    from ..run.types import Tokenizer


@dataclass(frozen=True)
class EvalFamily:
    name: str
    role: str
    chance: float
    examples: tuple[tasks.Example, ...]
    kind: str                       # "task" (organism world), "words" (word world), "math", "multiple_choice"
    transfer: str = ""              # task world: tasks.CLASSES; local files: data.benchmarks[].transfer
    scoring: str = "generate"       # "generate", or "loglik" / "loglik_norm" (multiple choice, cloze form)
    cloze: tuple[tuple[str, tuple[str, ...]], ...] = ()   # per example: (context, continuations) when loglik

    def verify(self, completion: str, ex: tasks.Example) -> bool:
        return check(self.kind, completion, ex.answer, ex.choices)

    def parse(self, completion: str, ex: tasks.Example | None = None) -> str:
        return parse(self.kind, completion, ex.choices if ex else ())

    def parseable(self, completion: str) -> bool:
        """Whether the completion's final answer has this family's answer form (else it is *unparseable*)."""
        if self.kind == "task" and self.name in tasks.FAMILIES:
            return tasks.parseable(self.name, completion)
        return self.parse(completion) != ""

    def max_new_tokens(self, tokenizer: Tokenizer, cap: int) -> int:
        """Generation budget: the longest completion in any form the task world writes (plain, chained,
        teacher) plus a margin; free-form math gets the cap; words and files the longest gold answer plus a
        margin (words: 16 tokens, for a model's own phrasing of the step)."""
        key = (self.name, len(self.examples), cap, getattr(tokenizer, "name_or_path", ""))
        if key not in _BUDGETS:  # computed once per family: interventions ask for it once per set and condition
            if self.kind == "math":
                _BUDGETS[key] = cap
            elif self.kind == "task" and self.name in tasks.FAMILIES:
                _BUDGETS[key] = min(cap, tasks.completion_budget(list(self.examples)) + 8)  # a character a token
            else:
                longest = max(len(tokenizer(e.completion, add_special_tokens=False)["input_ids"])
                              for e in self.examples)
                _BUDGETS[key] = min(cap, longest + (16 if self.kind == "words" else 8))
        return _BUDGETS[key]


_BUDGETS: dict[tuple, int] = {}


def _math_correct(completion: str, answer: str) -> bool:
    return local_data.math_answer(completion) == answer


def _mc_correct(completion: str, answer: str) -> bool:
    return local_data.mc_answer(completion) == answer


def _words_correct(completion: str, answer: str) -> bool:
    return words.stated_answer(completion) == answer


VERIFIERS: dict[str, Callable[[str, str], bool]] = {"task": tasks.is_correct, "math": _math_correct,
                                                    "words": _words_correct, "multiple_choice": _mc_correct}
"""Answer-only verifiers per kind (the RL reward and DPO's wrong samples; multiple choice by letter alone)."""


def check(kind: str, completion: str, answer: str, choices: tuple[str, ...] = ()) -> bool:
    """Whether ``completion`` answers right; multiple choice also reads a named choice's text."""
    if kind == "multiple_choice":
        return local_data.mc_answer(completion, choices) == answer
    return VERIFIERS[kind](completion, answer)


def parse(kind: str, completion: str, choices: tuple[str, ...] = ()) -> str:
    if kind == "multiple_choice":
        return local_data.mc_answer(completion, choices)
    return {"math": local_data.math_answer, "words": words.stated_answer}.get(kind, tasks.parse_answer)(completion)


def in_domain_family(P: Params) -> str:
    named = [b.name for b in P.data.benchmarks if b.role == tasks.IN_DOMAIN]
    return named[0] if named else (words.IN_DOMAIN_FAMILY if P.data.word_world else "arith")


def train_examples(P: Params) -> list[tasks.Example]:
    """The in-domain post-training prompts — the same for every method — with the gold solutions SFT imitates and
    DPO prefers: the task world's *teacher* solutions (``posttrain.sft_style: teacher``, rare in pretraining) or
    its pretraining-style ones; the word world's worked steps; a ``data.train_file``'s own solutions. Rendered in
    the run's prompt format (targets included)."""
    if P.data.train_file or P.data.word_world:
        return render(P, _in_domain_pool(P)[: P.posttrain.n_train_prompts])
    examples = tasks.sample_split("arith", "train", P.posttrain.n_train_prompts, P.seed, P.tasks)
    if P.posttrain.sft_style == "teacher":
        return [tasks.Example(e.family, e.prompt, tasks.teacher_completion(e), e.answer) for e in examples]
    return examples


def _in_domain_pool(P: Params, extra: int = 0) -> list[tasks.Example]:
    """Unrendered in-domain training-split problems of a real-model run: the train file's rows in order, or the
    word world's ``story`` train split (``n_train_prompts + extra`` of them)."""
    if P.data.train_file:
        return local_data.load_train_file(P.data.train_file, in_domain_family(P))
    return words.sample(words.IN_DOMAIN_FAMILY, "train", P.posttrain.n_train_prompts + extra, P.seed, P.tasks)


def validation_examples(P: Params, n: int) -> list[tasks.Example]:
    """In-domain prompts for choosing learning rates: training-split prompts that no method trains on (never
    the test split, which reports results)."""
    if P.data.train_file or P.data.word_world:
        rows = _in_domain_pool(P, n)
        return render(P, rows[P.posttrain.n_train_prompts: P.posttrain.n_train_prompts + n])
    trained = {e.prompt for e in train_examples(P)}
    pool = tasks.sample_split("arith", "train", n + len(trained), P.seed + 7, P.tasks)
    return [e for e in pool if e.prompt not in trained][:n]


def shot_examples(P: Params) -> tuple[tasks.Example, ...]:
    """The ``model.prompt.n_shots`` worked examples shown before math questions: in-domain training-split problems
    that no method trains on and validation never reads (the train file's last rows; word-world problems of
    their own seed)."""
    n = P.model.prompt.n_shots
    if not n or not (P.data.train_file or P.data.word_world):
        return ()
    if P.data.train_file:
        rows = local_data.load_train_file(P.data.train_file, in_domain_family(P))
        if len(rows) < P.posttrain.n_train_prompts + n:
            raise ValueError(f"model.prompt.n_shots: {P.data.train_file} has {len(rows)} rows, fewer than "
                             f"posttrain.n_train_prompts + n_shots")
        return tuple(rows[-n:])
    used = {e.question for e in _in_domain_pool(P, P.eval.n_per_family)}   # training and validation
    pool = words.sample(words.IN_DOMAIN_FAMILY, "train", n + len(used), P.seed + 11, P.tasks)
    return tuple([e for e in pool if e.question not in used][:n])


_FORMATS: dict[str, prompting.Format] = {}


def prompt_format(P: Params) -> prompting.Format:
    """The run's prompt format (built once per process and params; chat reads the base model's tokenizer)."""
    if P.model.prompt_style == "organism":
        return prompting.ORGANISM
    key = P.section_hash("model", "tasks", "data", "posttrain")
    if key not in _FORMATS:
        tok = None
        if P.model.prompt_style == "chat":
            from transformers import AutoTokenizer

            from ..run.rundir import RunDir
            tok = AutoTokenizer.from_pretrained(str(RunDir(P).base()), local_files_only=True)
        _FORMATS[key] = prompting.Format.from_cfg(P.model.prompt_style, P.model.prompt, shot_examples(P), tok)
    return _FORMATS[key]


def render(P: Params, examples: list[tasks.Example]) -> list[tasks.Example]:
    """Examples in the run's prompt format (the organism's pass unchanged)."""
    fmt = prompt_format(P)
    return [fmt.render(e) for e in examples]


def train_kind(P: Params) -> str:
    """Which verifier scores the training prompts (the GRPO/RLOO reward and DPO's wrong samples)."""
    return "math" if P.data.train_file or P.data.word_world else "task"


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
    fmt = prompt_format(P)
    if P.data.task_world:
        for name, fam in tasks.FAMILIES.items():
            ex = tasks.sample_split(name, "test", P.eval.n_per_family, P.seed, P.tasks, allow_fewer=True)
            out[name] = EvalFamily(name, fam.role, fam.chance, tuple(ex), "task", fam.transfer)
    if P.data.word_world:
        for name, wf in words.FAMILIES.items():
            ex = words.sample(name, "test", P.eval.n_per_family, P.seed, P.tasks)
            out[name] = EvalFamily(name, wf.role, 0.0, tuple(fmt.render(e) for e in ex), "words", wf.transfer)
    for b in P.data.benchmarks:
        ex = local_data.load_jsonl(b.path, b.kind, b.name)[: b.limit]
        chance = sum(1 / len(e.choices) for e in ex) / len(ex) if b.kind == "multiple_choice" else 0.0
        transfer = tasks.IN_DOMAIN if b.role == tasks.IN_DOMAIN else b.transfer
        cloze = tuple(fmt.cloze(e) for e in ex) if b.scoring != "generate" else ()
        out[b.name] = EvalFamily(b.name, b.role, chance, tuple(fmt.render(e) for e in ex), b.kind, transfer,
                                 b.scoring, cloze)
    return out
