"""A model of the run, named by what made it: the typed id every stage passes.

A model is the base, a post-training method's final checkpoint, its checkpoint ``k``, or a null of one of those:
the norm-matched **random-update** null (the base moved as far as that model in a random direction: notebook 03's
and 04's null, ``noise+``) or, for a checkpoint, the **fixed-direction** null (the base moved straight towards the
method's final checkpoint, as far as that checkpoint: notebook 04's, ``line+``). :class:`ModelId` holds those
fields (``method``, ``checkpoint``, ``null_kind``) and *is* its text form — ``base``, ``sft``, ``sft@3``,
``noise+sft``, ``noise+sft@3``, ``line+sft@3`` — so one value serves as a typed id in code and as the label that
folders, keys, Parquet columns and tables already use (``ModelId("sft", 3) == "sft@3"``). Only
:meth:`ModelId.parse` reads the text (a name from params, a notebook or a table); no other module splits on
``@``, ``noise+`` or ``line+``.

The training seed is not part of the id: one crosscoder slot, folder label or table row names a model for
every training seed, and a run folder resolves an id for a given seed
(:meth:`rlgen_utils.run.rundir.RunDir.model`; notebook 02's per-checkpoint scores carry the seed beside the id,
:class:`rlgen_utils.studies.evaluate.ModelRef`).

Example::

    m = ModelId("grpo", 2)        # "grpo@2"
    m.noise                       # "noise+grpo@2", its random-walk null
    m.line                        # "line+grpo@2", its fixed-direction null
    ModelId.parse("noise+sft").tuned.method   # "sft"
"""
from __future__ import annotations

from collections.abc import Iterable

NOISE_PREFIX = "noise+"
"""Text prefix of a random-update null (``noise+<model>``)."""
LINE_PREFIX = "line+"
"""Text prefix of a fixed-direction null (``line+<method>@<k>``)."""
_PREFIXES = {"noise": NOISE_PREFIX, "line": LINE_PREFIX}


def _split_prefix(name: str) -> tuple[str | None, str]:
    """``"line+sft@3"`` → ``("line", "sft@3")``; a name without a null prefix → ``(None, name)`` (plain ``str``
    parts, never a :class:`ModelId`: a part that were one would make ``repr`` recurse)."""
    name = str.__str__(name)
    for kind, prefix in _PREFIXES.items():
        if name.startswith(prefix):
            return kind, name.removeprefix(prefix)
    return None, name


class ModelId(str):
    """``ModelId(method, checkpoint=None, null=False)``: a model as a typed value that is also its name.

    ``method`` is ``"base"`` or a post-training method (``posttrain.methods``); ``checkpoint`` counts from 1
    (``None``: the final one); ``null`` marks a null of that model: ``True`` or ``"noise"`` the random-update null,
    ``"line"`` the fixed-direction null (checkpoints only). Immutable; equal to, and hashed like, its text, so ids
    and names from a table or JSON file compare and index alike."""

    __slots__ = ()

    def __new__(cls, method: str, checkpoint: int | None = None, null: bool | str = False) -> ModelId:
        kind = "noise" if null is True else (null or None)
        if not method or "@" in method or _split_prefix(method)[0]:
            raise ValueError(f"model method {method!r}: expected a bare method name (use ModelId.parse for a name)")
        if kind is not None and kind not in _PREFIXES:
            raise ValueError(f"null {null!r}: expected True, 'noise' or 'line'")
        if method == "base" and (checkpoint is not None or kind):
            raise ValueError("the base has no checkpoints and no null of its own")
        if checkpoint is not None and checkpoint < 1:
            raise ValueError(f"checkpoint {checkpoint}: checkpoints count from 1")
        if kind == "line" and checkpoint is None:
            raise ValueError(f"line+{method}: a fixed-direction null is of a checkpoint (line+{method}@<k>)")
        return super().__new__(cls, (_PREFIXES[kind] if kind else "") + method
                               + (f"@{checkpoint}" if checkpoint else ""))

    # The fields are read back from the text (a str subclass holds no slots of its own); __new__ built the text
    # from validated fields, so this is the one place that splits it.
    def _fields(self) -> tuple[str, int | None, str | None]:
        kind, rest = _split_prefix(self)
        method, _, ckpt = rest.partition("@")
        return method, int(ckpt) if ckpt else None, kind

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
        """Whether this is a null (random-update or fixed-direction) of ``tuned``."""
        return self._fields()[2] is not None

    @property
    def null_kind(self) -> str | None:
        """``"noise"`` (random update), ``"line"`` (fixed direction), or ``None`` for a real model."""
        return self._fields()[2]

    def __repr__(self) -> str:
        method, ckpt, kind = self._fields()
        null = "" if kind is None else ", null=True" if kind == "noise" else f", null={kind!r}"
        return f"ModelId({method!r}" + (f", {ckpt}" if ckpt else "") + null + ")"

    def __getnewargs__(self) -> tuple[str, int | None, bool | str]:   # copy / deepcopy rebuild from the fields
        method, ckpt, kind = self._fields()
        return method, ckpt, kind or False

    @classmethod
    def parse(cls, name: str) -> ModelId:
        """``"noise+sft@3"`` → ``ModelId("sft", 3, null=True)``, ``"line+sft@3"`` → ``ModelId("sft", 3,
        null="line")``; an id is returned as it is; a malformed name is a ValueError naming it."""
        if isinstance(name, ModelId):
            return name
        kind, rest = _split_prefix(name)
        method, at, ckpt = rest.partition("@")
        if not method or (at and not ckpt.isdigit()) or _split_prefix(method)[0]:
            raise ValueError(f"model {name!r}: expected base, <method>, <method>@<k>, {NOISE_PREFIX}<model> or "
                             f"{LINE_PREFIX}<method>@<k>")
        return cls(method, int(ckpt) if at else None, kind or False)

    @property
    def tuned(self) -> ModelId:
        """The model this null stands beside (itself when it is not a null)."""
        return ModelId(self.method, self.checkpoint)

    @property
    def noise(self) -> ModelId:
        """This model's random-update null."""
        return ModelId(self.method, self.checkpoint, null=True)

    @property
    def line(self) -> ModelId:
        """This checkpoint's fixed-direction null (notebook 04)."""
        return ModelId(self.method, self.checkpoint, null="line")

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
