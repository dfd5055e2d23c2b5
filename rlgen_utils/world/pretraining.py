"""The organism's pretraining corpus as data: the seeded mixture of every task family that pretraining
(:mod:`rlgen_utils.models.pretrain`) packs into batches, and that the crosscoder corpus and notebook 01's corpus
measurements draw from."""
from __future__ import annotations

import random
from typing import TYPE_CHECKING

from . import tasks

if TYPE_CHECKING:
    from ..run.config import TasksCfg



def mixture(in_domain_weight: float, family_weights: dict[str, float] | None = None) -> tuple[list[str], list[float]]:
    """Families and their weights in the pretraining mixture: the in-domain family at ``in_domain_weight``, named
    families at ``family_weights`` (``pretrain.family_weights``), the rest at 1."""
    family_weights = family_weights or {}
    unknown = sorted(set(family_weights) - set(tasks.FAMILIES))
    if unknown or any(w < 0 for w in family_weights.values()):
        raise ValueError(f"pretrain.family_weights: {unknown or 'negative weight'} (families: {list(tasks.FAMILIES)})")
    names = list(tasks.FAMILIES)
    return names, [in_domain_weight if tasks.FAMILIES[n].role == tasks.IN_DOMAIN else family_weights.get(n, 1.0)
                   for n in names]


def pretrain_example(rng: random.Random, family: str, tcfg: TasksCfg) -> tasks.Example:
    """One training-split example of ``family`` as the pretraining corpus has it (:func:`tasks.pretrain_version`)."""
    while True:
        ex = tasks.FAMILIES[family].generate(rng, tcfg)
        if tasks.split_of(ex.prompt, tcfg.test_fraction) == "train":
            return tasks.pretrain_version(rng, ex, tcfg)


def corpus_sample(n: int, seed: int, pcfg, tcfg: TasksCfg) -> list[tasks.Example]:
    """``n`` examples drawn as the pretraining batches draw them (for measuring what the corpus contains)."""
    rng = random.Random(f"corpus/{seed}")
    names, weights = mixture(pcfg.in_domain_weight, pcfg.family_weights)
    return [pretrain_example(rng, rng.choices(names, weights)[0], tcfg) for _ in range(n)]
