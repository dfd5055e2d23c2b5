r"""Typed findings: what a notebook states in words, as values that code can read and one renderer writes.

A :class:`Findings` is one findings paragraph of a notebook (``notebook``, ``topic``): a sequence of
:class:`Finding` statements — a Markdown sentence together with the numbers it states, keyed by identifier — and,
where a paragraph closes on them, the typed :class:`~rlgen_utils.studies.verdicts.Verdict` values it decided.
Every ``*_claims.findings`` function (and notebook 02's ``evaluate.findings``, ``prereg.summary``,
``forgetting.matched_findings``) returns one; :func:`rlgen_utils.studies.render.markdown` is the only code that
turns it into Markdown, for the notebook, the run report and ``docs/RESULTS.md`` alike.

A notebook :func:`record`\ s a paragraph in ``runs/<name>/findings/`` (JSON) and shows it, so the results page
renders the findings from the run folder, not from a notebook's printed output::

    F = findings.record(P, crosscoder_claims.findings(P, cc3, TRIO, nrn, owned))
    render.show(F)

``Finding.style`` says where a statement sits in the paragraph: ``bullet`` (``- …``), ``sub`` (an indented
bullet under the previous one), ``paragraph`` (a new paragraph, e.g. a closing verdict) or ``line`` (a plain
line that continues the text above it).
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

from ..run.artifacts import write_json
from ..run.config import Params
from ..run.rundir import RunDir
from .verdicts import Verdict

Style = Literal["bullet", "sub", "paragraph", "line"]
STYLES: tuple[Style, ...] = ("bullet", "sub", "paragraph", "line")
Value = float | int | str | bool | None


@dataclass(frozen=True)
class Finding:
    """One statement: ``text`` is Markdown without its bullet, ``values`` the numbers it states by identifier
    (e.g. ``{"tuned_only": 12, "median_nrn": 0.503}``) so a test or a script reads them without parsing prose."""
    text: str
    values: dict[str, Value] = field(default_factory=dict)
    style: Style = "bullet"

    def __post_init__(self):
        if self.style not in STYLES:
            raise ValueError(f"style {self.style!r} is not one of {STYLES}")
        bad = [k for k in self.values if not k.isidentifier()]
        if bad:
            raise ValueError(f"value names must be identifiers, not {bad}")


Item = Finding | Verdict


@dataclass(frozen=True)
class Findings:
    """One findings paragraph of ``notebook`` (e.g. ``"03_crosscoder"``) about ``topic`` (an identifier)."""
    notebook: str
    topic: str
    items: tuple[Item, ...]

    def __post_init__(self):
        if not self.topic.isidentifier():
            raise ValueError(f"topic {self.topic!r} must be an identifier")

    def value(self, name: str) -> Value:
        """The one value called ``name`` among the statements (KeyError if none states it, ValueError if two do)."""
        found = [f.values[name] for f in self.items if isinstance(f, Finding) and name in f.values]
        if not found:
            raise KeyError(name)
        if len(found) > 1:
            raise ValueError(f"{len(found)} statements give {name!r}")
        return found[0]

    @property
    def verdicts(self) -> list[Verdict]:
        return [v for v in self.items if isinstance(v, Verdict)]

    def to_json(self) -> dict:
        return {"notebook": self.notebook, "topic": self.topic,
                "items": [{"verdict": asdict(i)} if isinstance(i, Verdict) else {"finding": asdict(i)}
                          for i in self.items]}

    @classmethod
    def from_json(cls, d: dict) -> "Findings":
        items = tuple(Verdict.from_json(i["verdict"]) if "verdict" in i else Finding(**i["finding"])
                      for i in d["items"])
        return cls(notebook=d["notebook"], topic=d["topic"], items=items)


def ident(name: str) -> str:
    """A model's or metric's name as part of a value name: ``noise+sft`` → ``noise_sft``, ``intensity / loss`` →
    ``intensity_loss``."""
    return "_".join("".join(ch if ch.isalnum() else " " for ch in name).split())


def path(P: Params, f: Findings) -> Path:
    """``runs/<name>/findings/<notebook>.<topic>.json``."""
    return RunDir(P).findings / f"{f.notebook}.{f.topic}.json"


def record(P: Params, f: Findings) -> Findings:
    """Write ``f`` to the run folder (replacing what an earlier run of the cell wrote) and return it."""
    write_json(path(P, f), f.to_json())
    return f


def load_all(P: Params, notebook: str | None = None) -> list[Findings]:
    """Every recorded findings paragraph of a run (of one notebook if given), by notebook, then topic."""
    folder = RunDir(P).findings
    files = sorted(folder.glob(f"{notebook or '*'}.*.json")) if folder.is_dir() else []
    return [Findings.from_json(json.loads(p.read_text())) for p in files]
