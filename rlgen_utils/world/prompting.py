"""How a problem becomes a prompt — one place for every stage (docs/METHOD.md §A1).

A real model scores near zero through a format it was never taught, for reasons that have nothing to do with what
it knows: an instruct model continues a bare arithmetic prompt as an essay, a small model that knows the answer
cannot yet play the lettered multiple-choice game. So params choose, per model, how a problem is shown
(``model.prompt``), and every stage reads its prompts from here: evaluation, SFT targets, GRPO/RLOO prompts and
rewards, DPO pairs, the crosscoder's corpus, circuit questions and interventions all see the same text.

Styles (``model.prompt.style``):

* ``organism`` — the task world's compact format (``add 37 8:``, ``q a)x b)y>``), the only one the organism's
  character vocabulary can spell;
* ``plain`` — ``Question: …\\nAnswer:`` for base models (the paper's Qwen3-4B-Base), optionally after
  ``n_shots`` worked examples (few-shot); a completion is read up to the next ``Question:`` block;
* ``chat`` — the tokenizer's chat template (instruct models), with an optional system message; generation stops
  at the template's end-of-turn token, which is the tokenizer's EOS.

Multiple choice can also be scored without generating (``scoring: loglik`` per benchmark): the log-likelihood of
each choice's text after the question (:meth:`Format.cloze`, the cloze form of OLMES / lm-evaluation-harness).

Problems from words or files keep their bare ``question`` (:class:`~rlgen_utils.world.tasks.Example`); the task
world's examples have none and pass through every style unchanged.
"""
from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from .local_data import LETTERS
from .tasks import Example

if TYPE_CHECKING:
    from ..run.config import PromptCfg
    from ..run.types import Tokenizer


@dataclass(frozen=True)
class Format:
    """A prompt style with its settings, the worked examples shown before math questions and (chat) the
    tokenizer whose template renders the turns."""
    style: str
    system: str | None = None
    math_instruction: str = ""
    mc_instruction: str = ""
    shots: tuple[Example, ...] = ()
    tokenizer: Tokenizer | None = None

    @classmethod
    def from_cfg(cls, style: str, cfg: PromptCfg, shots: tuple[Example, ...] = (),
                 tokenizer: Tokenizer | None = None, golds: Sequence[str] = ()) -> Format:
        """The format ``cfg`` describes. ``golds`` are the in-domain gold completions (SFT's targets); with the
        worked examples they decide the chat instruction for math questions (:func:`math_instruction`)."""
        if style == "chat" and tokenizer is None:
            raise ValueError("prompt style 'chat' needs the model's tokenizer")
        instruction = math_instruction(cfg.math_instruction, [*golds, *(s.completion for s in shots)]) \
            if style == "chat" else ""
        return cls(style, cfg.system, instruction, cfg.mc_instruction, shots, tokenizer)

    # ------------------------------------------------------------------------------------------ prompts
    def prompt(self, ex: Example) -> str:
        """The text a model reads before answering ``ex``."""
        if not ex.question or self.style == "organism":
            return ex.prompt
        if self.style == "plain":
            shots = "".join(f"{_plain_question(s)} {s.completion}\n\n" for s in self._shots_for(ex))
            return shots + _plain_question(ex)
        turns = [t for s in self._shots_for(ex) for t in (self._user(s), {"role": "assistant", "content": s.completion})]
        return self._chat([*turns, self._user(ex)])

    def target(self, ex: Example) -> str:
        """The gold text after :meth:`prompt` (SFT's target, DPO's chosen side): a plain prompt ends in
        ``Answer:``, so its target starts with a space."""
        return " " + ex.completion if ex.question and self.style == "plain" else ex.completion

    def render(self, ex: Example) -> Example:
        """``ex`` with this format's prompt and target."""
        return replace(ex, prompt=self.prompt(ex), completion=self.target(ex)) if ex.question else ex

    def cloze(self, ex: Example) -> tuple[str, tuple[str, ...]]:
        """(context, continuations): the question without its choices, and each choice's text as its answer."""
        if not ex.choices:
            raise ValueError(f"{ex.family}: cloze scoring needs choices")
        if self.style == "plain":
            return f"Question: {ex.question}\nAnswer:", tuple(" " + c for c in ex.choices)
        if self.style == "chat":
            return self._chat([{"role": "user", "content": ex.question}]), tuple(ex.choices)
        return ex.question + " ", tuple(ex.choices)

    # ------------------------------------------------------------------------------------------ pieces
    def _shots_for(self, ex: Example) -> tuple[Example, ...]:
        """Worked examples go before math-kind questions only (multiple choice is asked zero-shot)."""
        return () if ex.choices else tuple(s for s in self.shots if s.question != ex.question)

    def _user(self, ex: Example) -> dict:
        if ex.choices:
            body = ex.question + "\n" + _choice_lines(ex.choices) + "\n" + self.mc_instruction
        else:
            body = ex.question + (" " + self.math_instruction if self.math_instruction else "")
        return {"role": "user", "content": body.strip()}

    def _chat(self, turns: list[dict]) -> str:
        assert self.tokenizer is not None
        system = [] if self.system is None else [{"role": "system", "content": self.system}]
        text = self.tokenizer.apply_chat_template(system + turns, tokenize=False, add_generation_prompt=True)
        return str(text)


def _choice_lines(choices: tuple[str, ...]) -> str:
    return "\n".join(f"{LETTERS[i].upper()}. {c}" for i, c in enumerate(choices))


def _plain_question(ex: Example) -> str:
    body = f"Question: {ex.question}\n"
    if ex.choices:
        body += _choice_lines(ex.choices) + "\n"
    return body + "Answer:"


# How a math answer's final value is marked, in the order the math verifier reads them
# (:func:`~rlgen_utils.world.local_data.math_answer`), with the instruction that asks for it. No instruction names
# a placeholder ("The answer is N."): a small model copies the placeholder literally.
ENDINGS: dict[str, tuple[re.Pattern, str]] = {
    "####": (re.compile(r"####"), "End with '####' followed by the final answer."),
    "boxed": (re.compile(r"\\boxed\{"), "Put the final answer in \\boxed{}."),
    "answer is": (re.compile(r"answer\s*is", re.I), "End with 'The answer is' followed by the final answer."),
}


def ending(text: str) -> str | None:
    """Which answer marker of :data:`ENDINGS` ``text`` uses (the first the verifier would read), else None."""
    return next((name for name, (pattern, _) in ENDINGS.items() if pattern.search(text)), None)


def math_instruction(given: str | None, golds: Sequence[str]) -> str:
    """The instruction appended to a chat math question: ``given``, or (None) the one that asks for the ending the
    gold completions use — the worked examples a model is shown and the SFT targets it imitates must agree with
    what it is told. A ``given`` instruction that names a different marker than the golds' commonest is an error
    naming the key; golds with no marker and no ``given`` give no instruction."""
    found = Counter(e for e in map(ending, golds) if e)
    gold = found.most_common(1)[0][0] if found else None
    if given is None:
        return ENDINGS[gold][1] if gold else ""
    asked = ending(given)
    if asked and gold and asked != gold:
        example = next(g for g in golds if ending(g) == gold)
        raise ValueError(f"model.prompt.math_instruction: asks for an answer marked {asked!r}, but the worked examples "
                         f"and SFT targets mark theirs {gold!r} (e.g. {example.strip()[-40:]!r}); make them agree, or "
                         f"set it to null to derive it from them")
    return given


ORGANISM = Format("organism")
"""The organism's format: every example as the task world wrote it."""
