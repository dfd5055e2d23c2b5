"""Pre-registration: what a run is expected to show, written down *before* the run and validated like params.

A pre-registration file (``prereg/*.yaml``, named by ``eval.preregistration``) states every evaluation family's
expected transfer class and the contrasts that will be tested, each with the outcome expected of its 95 %
interval. Notebook 02 reads it and reports, row by row, whether the measured outcome matched — whatever it is
(:mod:`rlgen_utils.studies.prereg`). A bad file fails in one line naming the key, as params do.

Outcomes: ``positive`` (the interval lies above 0), ``negative`` (below 0), ``no_change`` (it contains 0),
``not_negative`` / ``not_positive`` (it does not lie below / above 0).

Example::

    written: 2026-12-01, before the first default run of this world
    families: {arith: in_domain, wordsum: shared_skill, fact: far_control}
    expectations:
      - {contrast: [grpo, base], applies_to: shared_skill, expect: positive, why: the corrected carry transfers}
"""
from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .errors import ParamsError, one_line_error

Outcome = Literal["positive", "negative", "no_change", "not_negative", "not_positive"]
TransferClass = Literal["in_domain", "shared_skill", "format_only", "far_control", "unclassified"]


class Expectation(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    contrast: tuple[str, str] = Field(..., description="(model, reference): e.g. [grpo, base]")
    applies_to: str = Field(..., min_length=1, description="a transfer class (every family of it, and pooled) or a family")
    expect: Outcome
    why: str = Field(..., min_length=3, description="the reason, in a sentence")


class Preregistration(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    written: str = Field(..., min_length=4, description="when, and before which run")
    families: dict[str, TransferClass] = Field(..., min_length=1)
    expectations: list[Expectation] = Field(..., min_length=1)


def matches(expect: str, lo: float, hi: float) -> bool:
    """Whether an interval [lo, hi] is the expected outcome."""
    lo, hi = float(lo), float(hi)  # numpy booleans add as logical or; plain floats give plain bools
    return {"positive": lo > 0, "negative": hi < 0, "no_change": lo <= 0 <= hi,
            "not_negative": hi >= 0, "not_positive": lo <= 0}[expect]


def load_preregistration(path: str | Path) -> Preregistration:
    """Read and validate a pre-registration file; :class:`ParamsError` (one line, naming the key) if bad."""
    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"{path}: pre-registration file not found")
    try:
        raw = yaml.safe_load(path.read_text())
        return Preregistration.model_validate(raw)
    except yaml.YAMLError as e:
        raise ParamsError(f"{path}: not valid YAML ({getattr(e, 'problem', e)})") from None
    except ValidationError as e:
        raise ParamsError(one_line_error(path, e)) from None
