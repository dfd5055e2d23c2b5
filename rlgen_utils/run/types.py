"""Names for the library objects that cross rlgen's module boundaries.

``Model`` is any Hugging Face causal LM. ``Tokenizer`` is any Hugging Face tokenizer: transformers types its
special-token ids as ``int | list[int] | str | None``, while every tokenizer rlgen loads has integer ids and a pad
token (``loading.load_tokenizer`` guarantees it), so the alias is left open rather than narrowed at every use.
``LM`` is an nnsight ``TransformersModel`` wrapping a Model: its envoys are attributes built at run time, which a
type checker cannot follow. Import these under ``TYPE_CHECKING`` (they cost nothing at run time).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeAlias

if TYPE_CHECKING:
    from transformers import PreTrainedModel

Model: TypeAlias = "PreTrainedModel"
Tokenizer: TypeAlias = Any
LM: TypeAlias = Any
