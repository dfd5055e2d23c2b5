"""A model of the run, named by what made it: the typed id every stage passes.

A model is the base, a post-training method's final checkpoint, its checkpoint ``k``, or the norm-matched
random-update null of one of those (the base moved as far as that model in a random direction: notebook 03's and
04's null). :class:`ModelId` holds those fields (``method``, ``checkpoint``, ``null``) and *is* its text form —
``base``, ``sft``, ``sft@3``, ``noise+sft``, ``noise+sft@3`` — so one value serves as a typed id in code and as
the label that folders, keys, Parquet columns and tables already use (``ModelId("sft", 3) == "sft@3"``). Only
:meth:`ModelId.parse` reads the text (a name from params, a notebook or a table); no other module splits on
``@`` or ``noise+``.

The training seed is not part of the id: one crosscoder slot, folder label or table row names a model for
every training seed, and a run folder resolves an id for a given seed
(:meth:`rlgen_utils.run.rundir.RunDir.model`; notebook 02's per-checkpoint scores carry the seed beside the id,
:class:`rlgen_utils.studies.evaluate.ModelRef`).

Example::

    m = ModelId("grpo", 2)        # "grpo@2"
    m.noise                       # "noise+grpo@2", its random-walk null
    ModelId.parse("noise+sft").tuned.method   # "sft"
"""
from __future__ import annotations

from collections.abc import Iterable

NOISE_PREFIX = "noise+"
"""Text prefix of a random-update null (``noise+<model>``)."""


class ModelId(str):
    """``ModelId(method, checkpoint=None, null=False)``: a model as a typed value that is also its name.

    ``method`` is ``"base"`` or a post-training method (``posttrain.methods``); ``checkpoint`` counts from 1
    (``None``: the final one); ``null`` marks the random-update null of that model. Immutable; equal to, and
    hashed like, its text, so ids and names from a table or JSON file compare and index alike."""

    __slots__ = ()

    def __new__(cls, method: str, checkpoint: int | None = None, null: bool = False) -> ModelId:
        if not method or "@" in method or method.startswith(NOISE_PREFIX):
            raise ValueError(f"model method {method!r}: expected a bare method name (use ModelId.parse for a name)")
        if method == "base" and (checkpoint is not None or null):
            raise ValueError("the base has no checkpoints and no random-update null of its own")
        if checkpoint is not None and checkpoint < 1:
            raise ValueError(f"checkpoint {checkpoint}: checkpoints count from 1")
        return super().__new__(cls, (NOISE_PREFIX if null else "") + method + (f"@{checkpoint}" if checkpoint else ""))

    # The fields are read back from the text (a str subclass holds no slots of its own); __new__ built the text
    # from validated fields, so this is the one place that splits it.
    def _fields(self) -> tuple[str, int | None, bool]:
        method, _, ckpt = self.removeprefix(NOISE_PREFIX).partition("@")
        return method, int(ckpt) if ckpt else None, self.startswith(NOISE_PREFIX)

    @property
    def method(self) -> str:
        """``"base"`` or a post-training method."""
        return self._fields()[0]

    @property
    def checkpoint(self) -> int | None:
        """1 … ``posttrain.n_checkpoints``; ``None``: the final checkpoint (or the base)."""
        return self._fields()[1]

    @property
    def null(self) -> bool:
        """Whether this is the random-update null of ``tuned``."""
        return self._fields()[2]

    def __repr__(self) -> str:
        method, ckpt, null = self._fields()
        return f"ModelId({method!r}" + (f", {ckpt}" if ckpt else "") + (", null=True" if null else "") + ")"

    def __getnewargs__(self) -> tuple[str, int | None, bool]:   # copy / deepcopy rebuild from the fields
        return self._fields()

    @classmethod
    def parse(cls, name: str) -> ModelId:
        """``"noise+sft@3"`` → ``ModelId("sft", 3, null=True)``; an id is returned as it is; a malformed name is
        a ValueError naming it."""
        if isinstance(name, ModelId):
            return name
        null = name.startswith(NOISE_PREFIX)
        method, at, ckpt = name.removeprefix(NOISE_PREFIX).partition("@")
        if not method or (at and not ckpt.isdigit()) or method.startswith(NOISE_PREFIX):
            raise ValueError(f"model {name!r}: expected base, <method>, <method>@<k> or {NOISE_PREFIX}<model>")
        return cls(method, int(ckpt) if at else None, null)

    @property
    def tuned(self) -> ModelId:
        """The model this null stands beside (itself when it is not a null)."""
        return ModelId(self.method, self.checkpoint)

    @property
    def noise(self) -> ModelId:
        """This model's random-update null."""
        return ModelId(self.method, self.checkpoint, null=True)

    @property
    def slug(self) -> str:
        """The id as a folder-name part (``sft@3`` → ``sftat3``)."""
        return self.replace("@", "at")


BASE = ModelId("base")


def ids(names: Iterable[str]) -> tuple[ModelId, ...]:
    """Names (ids, or text from params, notebooks and tables) as ids, in order: the entry of every stage that
    takes several models."""
    return tuple(ModelId.parse(n) for n in names)


def slug(names: Iterable[str]) -> str:
    """Several models as one folder-name part: their slugs joined by ``-``."""
    return "-".join(m.slug for m in ids(names))


def checkpoint_ids(method: str, n: int) -> list[ModelId]:
    """A method's checkpoints 1 … ``n`` (``sft@1 … sft@n``)."""
    return [ModelId(method, k) for k in range(1, n + 1)]
