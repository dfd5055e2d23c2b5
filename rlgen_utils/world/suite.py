"""What a run trains on and is evaluated on: the task world (or its version in words), local benchmark files.

:func:`world` gives the run's :class:`World`, which reads the data mode from params once (``data.train_file``,
``data.word_world``, ``data.task_world``) and owns everything that depends on it:

* :meth:`World.train_examples` — the in-domain post-training prompts, the same for every method: the task world's
  ``arith`` train split, the word world's ``story`` train split, or ``data.train_file`` (JSONL of
  ``{problem, solution, answer}``) for real models; validation and worked-example prompts beside them.
* :meth:`World.eval_families` — every evaluation family with its role, chance level, test examples, how it is scored
  (generation, or the log-likelihood of each choice) and its exact verifier: the task world's families or the word
  world's, plus each ``data.benchmarks`` file.
* :meth:`World.corpus` — the texts the crosscoders read.

Every example leaves this module rendered in the run's prompt format (:func:`prompt_format`,
:mod:`rlgen_utils.world.prompting`), so every later stage reads the same prompts.
"""
from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from ..run.config import Params
from ..run.rundir import RunDir
from . import local_data, pretraining, prompting, tasks, words

if TYPE_CHECKING:
    from ..run.types import Tokenizer

# imported inside functions, for their import cost (rlgen_utils.run.imports): transformers


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

            tok = AutoTokenizer.from_pretrained(str(RunDir(P).base()), local_files_only=True)
        w = world(P)
        _FORMATS[key] = prompting.Format.from_cfg(P.model.prompt_style, P.model.prompt, w.shot_examples(), tok,
                                                  w.gold_completions())
    return _FORMATS[key]


def render(P: Params, examples: list[tasks.Example]) -> list[tasks.Example]:
    """Examples in the run's prompt format (the organism's pass unchanged)."""
    fmt = prompt_format(P)
    return [fmt.render(e) for e in examples]


_FAMILIES: dict[str, dict[str, EvalFamily]] = {}


InDomain = Literal["task", "words", "file"]
"""Where the in-domain post-training prompts come from: the organism's ``arith`` train split, the word world's
``story`` train split (``data.word_world``), or ``data.train_file``."""


@dataclass(frozen=True)
class World:
    """The run's world, decided once from ``P.data``: where in-domain prompts come from, which evaluation families
    exist, and the texts the crosscoders read. Every stage asks it (:func:`world`) instead of reading the data
    flags itself.

    * :meth:`train_examples` — the in-domain post-training prompts, the same for every method.
    * :meth:`eval_families` — every evaluation family with its role, chance, test examples, scoring and verifier.
    * :meth:`corpus` — the crosscoder corpus: in-domain solutions and general text.
    """
    P: Params
    in_domain: InDomain
    task_families: bool   # the organism's eleven families (``data.task_world``)

    @classmethod
    def of(cls, P: Params) -> World:
        d = P.data
        return cls(P, "file" if d.train_file else "words" if d.word_world else "task", d.task_world)

    @property
    def word_families(self) -> bool:
        """The word world's families: exactly when its in-domain family trains (params refuse a train file beside
        the word world)."""
        return self.in_domain == "words"

    @property
    def real_lm(self) -> bool:
        """A world for a real tokenizer (words or files): prompts rendered, answers read by the math verifier."""
        return self.in_domain != "task"

    @property
    def in_domain_family(self) -> str:
        named = [b.name for b in self.P.data.benchmarks if b.role == tasks.IN_DOMAIN]
        return named[0] if named else (words.IN_DOMAIN_FAMILY if self.in_domain == "words" else "arith")

    def in_domain_eval(self) -> EvalFamily:
        """The in-domain evaluation family (its test examples and verifier)."""
        return self.eval_families()[self.in_domain_family]

    @property
    def train_kind(self) -> str:
        """Which verifier scores the training prompts (the GRPO/RLOO reward and DPO's wrong samples)."""
        return "math" if self.real_lm else "task"

    def train_examples(self) -> list[tasks.Example]:
        """The in-domain post-training prompts — the same for every method — with the gold solutions SFT imitates
        and DPO prefers: the task world's *teacher* solutions (``posttrain.sft_style: teacher``, rare in
        pretraining) or its pretraining-style ones; the word world's worked steps; a ``data.train_file``'s own
        solutions. Rendered in the run's prompt format (targets included)."""
        P = self.P
        if self.real_lm:
            return render(P, self._in_domain_pool()[: P.posttrain.n_train_prompts])
        examples = tasks.sample_split("arith", "train", P.posttrain.n_train_prompts, P.seed, P.tasks)
        if P.posttrain.sft_style == "teacher":
            return [tasks.Example(e.family, e.prompt, tasks.teacher_completion(e), e.answer) for e in examples]
        return examples

    def _in_domain_pool(self, extra: int = 0) -> list[tasks.Example]:
        """Unrendered in-domain training-split problems of a real-model run: the train file's rows in order, or
        the word world's ``story`` train split (``n_train_prompts + extra`` of them)."""
        P = self.P
        if self.in_domain == "file":
            return local_data.load_train_file(str(P.data.train_file), self.in_domain_family)
        return words.sample(words.IN_DOMAIN_FAMILY, "train", P.posttrain.n_train_prompts + extra, P.seed, P.tasks)

    def gold_completions(self) -> list[str]:
        """The in-domain gold solutions SFT imitates (unrendered): what a real model's chat instruction for math
        must agree with (:func:`~rlgen_utils.world.prompting.math_instruction`); none for the task world."""
        if not self.real_lm:
            return []
        return [e.completion for e in self._in_domain_pool()[: self.P.posttrain.n_train_prompts]]

    def validation_examples(self, n: int) -> list[tasks.Example]:
        """In-domain prompts for choosing learning rates: training-split prompts that no method trains on (never
        the test split, which reports results)."""
        P = self.P
        if self.real_lm:
            rows = self._in_domain_pool(n)
            return render(P, rows[P.posttrain.n_train_prompts: P.posttrain.n_train_prompts + n])
        trained = {e.prompt for e in self.train_examples()}
        pool = tasks.sample_split("arith", "train", n + len(trained), P.seed + 7, P.tasks)
        return [e for e in pool if e.prompt not in trained][:n]

    def shot_examples(self) -> tuple[tasks.Example, ...]:
        """The ``model.prompt.n_shots`` worked examples shown before math questions: in-domain training-split
        problems that no method trains on and validation never reads (the train file's last rows; word-world
        problems of their own seed)."""
        P, n = self.P, self.P.model.prompt.n_shots
        if not n or not self.real_lm:
            return ()
        if self.in_domain == "file":
            rows = self._in_domain_pool()
            if len(rows) < P.posttrain.n_train_prompts + n:
                raise ValueError(f"model.prompt.n_shots: {P.data.train_file} has {len(rows)} rows, fewer than "
                                 f"posttrain.n_train_prompts + n_shots")
            return tuple(rows[-n:])
        used = {e.question for e in self._in_domain_pool(P.eval.n_per_family)}   # training and validation
        pool = words.sample(words.IN_DOMAIN_FAMILY, "train", n + len(used), P.seed + 11, P.tasks)
        return tuple([e for e in pool if e.question not in used][:n])

    def curve_examples(self) -> list[tasks.Example]:
        """Held-out in-domain prompts scored after every post-training segment for the training curves."""
        P = self.P
        if self.in_domain_family == "arith":
            return tasks.sample_split("arith", "test", P.eval.curve_n, P.seed + 1, P.tasks)
        return list(self.in_domain_eval().examples[: P.eval.curve_n])

    def eval_families(self) -> dict[str, EvalFamily]:
        """Every evaluation family of this run, task world first, in a fixed order (built once per process and
        params: sampling the test sets takes seconds; local files are re-read when they change)."""
        P = self.P
        stamp = [(b.path, Path(b.path).stat().st_mtime_ns) for b in P.data.benchmarks if Path(b.path).is_file()]
        key = P.section_hash("tasks", "data", "eval") + repr(stamp)
        if key not in _FAMILIES:
            _FAMILIES[key] = self._build_families()
        return dict(_FAMILIES[key])

    def _build_families(self) -> dict[str, EvalFamily]:
        P, out = self.P, {}
        fmt = prompt_format(P)
        if self.task_families:
            for name, fam in tasks.FAMILIES.items():
                ex = tasks.sample_split(name, "test", P.eval.n_per_family, P.seed, P.tasks, allow_fewer=True)
                out[name] = EvalFamily(name, fam.role, fam.chance, tuple(ex), "task", fam.transfer)
        if self.word_families:
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

    def unrelated_texts(self, n: int) -> list[str]:
        """``n`` texts with nothing of the in-domain task, for the activation difference lens: the general part of
        the crosscoder corpus's mixture without the in-domain family (task world), or the other families'
        questions (a real model)."""
        P = self.P
        rng = random.Random(f"unrelated/{P.seed}")
        if self.task_families:
            names, weights = pretraining.mixture(1.0)
            keep = [(nm, w) for nm, w in zip(names, weights) if nm != "arith"]
            return [pretraining.pretrain_example(rng, rng.choices([k for k, _ in keep], [w for _, w in keep])[0],
                                                 P.tasks).text for _ in range(n)]
        pool = [e.text for name in words.FAMILIES if self.word_families and name != words.IN_DOMAIN_FAMILY
                for e in render(P, words.sample(name, "train", 100, P.seed + 5, P.tasks))]
        pool += [e.text for f in self.eval_families().values() if f.kind != "words" and f.role != "in_domain"
                 for e in f.examples]
        rng.shuffle(pool)
        return [pool[i % len(pool)] for i in range(n)] if pool else []

    def corpus_in_domain(self) -> list[tasks.Example]:
        """The corpus's in-domain problems, in corpus order (``round(n_texts · in_domain_fraction)`` of them): their
        gold texts are the ``gold`` corpus's in-domain part; the ``generations`` corpus completes their prompts
        with the models' own answers instead (:func:`rlgen_utils.studies.crosscoder.corpus_texts`)."""
        P, c = self.P, self.P.crosscoder
        n_in = round(c.n_texts * c.in_domain_fraction)
        if self.in_domain == "words":   # worked solutions of training-split problems drawn apart from SFT's
            in_dom = render(P, words.sample(words.IN_DOMAIN_FAMILY, "train", max(1, n_in), P.seed + 3, P.tasks))
        elif self.in_domain == "file":
            in_dom = self.train_examples()
        else:
            in_dom = tasks.sample_split("arith", "train", max(1, n_in), P.seed + 3, P.tasks)
        return [in_dom[i % len(in_dom)] for i in range(n_in)]

    def corpus(self, n_texts: int | None = None, in_domain: Sequence[str] | None = None) -> list[str]:
        """Texts the crosscoders read (its first ``n_texts`` when given): in-domain texts and the general
        pretraining mixture, mixed by ``crosscoder.in_domain_fraction`` (the paper: half reasoning traces, half
        general web text). The in-domain texts are ``in_domain`` when given (one per
        :meth:`corpus_in_domain` problem, e.g. the models' own generations), else those problems' gold texts. Task
        world: correct solutions in the corpus's own style on training-split prompts, not SFT's teacher texts
        (which would favour the model trained on them)."""
        P, c = self.P, self.P.crosscoder
        problems = self.corpus_in_domain()
        if in_domain is not None and len(in_domain) != len(problems):
            raise ValueError(f"{len(in_domain)} in-domain texts for {len(problems)} corpus problems")
        texts = list(in_domain) if in_domain is not None else [e.text for e in problems]
        n_in = len(texts)
        rng = random.Random(f"corpus/{P.seed}")
        names, weights = pretraining.mixture(1.0)
        if self.task_families:
            texts += [pretraining.pretrain_example(rng, rng.choices(names, weights)[0], P.tasks).text
                      for _ in range(c.n_texts - n_in)]
        else:  # a real model: every family's questions stand in for general text (the word world's training split)
            pool = [e.text for name in words.FAMILIES if self.word_families
                    for e in render(P, words.sample(name, "train", 100, P.seed + 3, P.tasks))]
            pool += [e.text for f in self.eval_families().values() if f.kind != "words" for e in f.examples]
            rng.shuffle(pool)
            texts += [pool[i % len(pool)] for i in range(c.n_texts - n_in)]
        random.Random(P.seed).shuffle(texts)
        return texts[:n_texts]


def world(P: Params) -> World:
    """The run's :class:`World` (cheap: it holds the params and the data mode; the families are cached)."""
    return World.of(P)
