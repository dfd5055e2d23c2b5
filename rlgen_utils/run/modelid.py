"""A model of the run, named by what made it — the one place its text form is written and read.

Crosscoder slots, folders, keys and tables name a model by a short text: ``base``, ``sft`` (a post-training
method's final checkpoint), ``sft@3`` (its checkpoint 3), ``noise+sft`` / ``noise+sft@3`` (the base moved as far
as that model, in a random direction: notebook 03's and 04's null). :class:`ModelId` is that name as a value;
``str(ModelId)`` writes the text and :meth:`ModelId.parse` reads it, so no other module splits on ``@`` or
``noise+``. The training seed is not part of the name: a run folder resolves a name for a given training seed
(:meth:`rlgen_utils.run.rundir.RunDir.model`).
"""
from __future__ import annotations

from dataclasses import dataclass, replace

NOISE_PREFIX = "noise+"
"""Text prefix of a random-update null (``noise+<model>``)."""


@dataclass(frozen=True)
class ModelId:
    method: str                    # "base" or a post-training method (posttrain.methods)
    checkpoint: int | None = None  # 1 … posttrain.n_checkpoints; None: the final one
    null: bool = False             # the norm-matched random-update null of this model

    def __post_init__(self):
        if self.method == "base" and (self.checkpoint is not None or self.null):
            raise ValueError("the base has no checkpoints and no random-update null of its own")
        if self.checkpoint is not None and self.checkpoint < 1:
            raise ValueError(f"checkpoint {self.checkpoint}: checkpoints count from 1")

    def __str__(self) -> str:
        return (NOISE_PREFIX if self.null else "") + self.method + (f"@{self.checkpoint}" if self.checkpoint else "")

    @classmethod
    def parse(cls, name: str) -> ModelId:
        """``"noise+sft@3"`` → ``ModelId("sft", 3, null=True)``; a malformed name is a ValueError naming it."""
        null = name.startswith(NOISE_PREFIX)
        method, at, ckpt = name.removeprefix(NOISE_PREFIX).partition("@")
        if not method or (at and not ckpt.isdigit()):
            raise ValueError(f"model {name!r}: expected base, <method>, <method>@<k> or {NOISE_PREFIX}<model>")
        return cls(method, int(ckpt) if at else None, null)

    @property
    def tuned(self) -> ModelId:
        """The model this null stands beside (itself when it is not a null)."""
        return replace(self, null=False)

    @property
    def noise(self) -> ModelId:
        """This model's random-update null."""
        return replace(self, null=True)


def checkpoint_names(method: str, n: int) -> list[str]:
    """The names of a method's checkpoints 1 … ``n`` (``sft@1 … sft@n``)."""
    return [str(ModelId(method, k)) for k in range(1, n + 1)]


def noise_name(name: str) -> str:
    """The name of a model's random-update null (``sft@3`` → ``noise+sft@3``)."""
    return str(ModelId.parse(name).noise)
