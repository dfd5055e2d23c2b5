"""Typed verdicts: each mechanistic claim of the papers, decided from numbers against a null.

A :class:`Verdict` holds the claim, the estimate with its interval (or range over seeds), what it is read
against (the null), the detection limit, and one of three decisions:

* ``reproduced`` — the estimate clears its null in the paper's direction;
* ``not reproduced`` — the test could have seen the effect (or its opposite was seen) and did not see it;
* ``not testable at this power`` — the data cannot decide (too few samples, seed ranges that overlap, a null as
  large as the effect).

Notebooks 03–06 compute their verdicts with their study module's ``verdicts(...)`` (from the same tables their
findings paragraphs use), show them, and :func:`record` them in ``runs/<name>/verdicts/<notebook>.json``; the
README's claims table is rendered from those files by :mod:`rlgen_utils.studies.results`, never typed.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import pandas as pd

from ..run.artifacts import write_json
from ..run.config import Params
from ..run.rundir import REPO, RunDir

Decision = Literal["reproduced", "not reproduced", "not testable at this power"]
DECISIONS: tuple[Decision, ...] = ("reproduced", "not reproduced", "not testable at this power")


@dataclass(frozen=True)
class Verdict:
    claim: str                     # the paper's claim, in a few words
    notebook: str                  # e.g. "03_crosscoder"
    estimate: float                # the number the decision reads
    interval: tuple[float, float] | None   # its 95 % interval or [min, max] over seeds, where there is one
    null: str                      # what the estimate is read against, with its value
    decision: Decision
    limit: str                     # detection limit / power: what "not found" means here
    detail: str = ""               # the numbers behind the decision, in one line

    def __post_init__(self):
        if self.decision not in DECISIONS:
            raise ValueError(f"decision {self.decision!r} is not one of {DECISIONS}")

    @classmethod
    def from_json(cls, d: dict) -> "Verdict":
        iv = d.get("interval")
        return cls(**{**d, "interval": None if iv is None else (float(iv[0]), float(iv[1]))})


def decide(effect_seen: bool, opposite_seen: bool, testable: bool) -> Decision:
    """The one decision rule: untestable data decides nothing; else the effect in the paper's direction
    (clearing its null) is reproduced, and anything else — no effect or the opposite one — is not."""
    if not testable:
        return "not testable at this power"
    return "reproduced" if effect_seen and not opposite_seen else "not reproduced"


def table(verdicts: list[Verdict]) -> pd.DataFrame:
    return pd.DataFrame([{"notebook": v.notebook, "claim": v.claim, "decision": v.decision, "estimate": v.estimate,
                          "interval": "" if v.interval is None else f"[{v.interval[0]:.3g}, {v.interval[1]:.3g}]",
                          "null": v.null, "detection limit": v.limit, "numbers": v.detail} for v in verdicts])


def record(P: Params, notebook: str, verdicts: list[Verdict]) -> pd.DataFrame:
    """Write the notebook's verdicts to the run folder and return them as a table (for the notebook to show)."""
    write_json(RunDir(P).verdicts / f"{notebook}.json", [asdict(v) for v in verdicts])
    return table(verdicts)


def load_all(P: Params) -> list[Verdict]:
    """Every recorded verdict of a run, notebooks in order."""
    folder = RunDir(P).verdicts
    return [Verdict.from_json(d) for f in sorted(folder.glob("*.json")) for d in json.loads(f.read_text())]


def model_doc(P, stem: str) -> Path | None:
    """The benchmark page ``docs/<stem>.json`` that applies to run ``P``: ``docs/<stem>-<name>.json`` if measured
    for this run's model, else the organism's ``docs/<stem>.json`` for an organism run, else None — what was
    measured on the organism says nothing about another model."""
    own = REPO / "docs" / f"{stem}-{P.name}.json"
    if own.is_file():
        return own
    return REPO / "docs" / f"{stem}.json" if P.model.is_organism else None


def power_file(P) -> Path | None:
    """The detection-power table that applies to run ``P``: ``docs/detection_power-<name>.json`` if measured for
    it, else the organism's ``docs/detection_power.json`` for an organism run (same dimensions), else None — the
    organism's power says nothing about another model's crosscoders."""
    return model_doc(P, "detection_power")


def validation_file(P) -> Path | None:
    """The known-cause validation that applies to run ``P`` (``benchmarks/bench_instrument_validation.py``):
    ``docs/instrument_validation-<name>.json`` if measured for it, else the organism's
    ``docs/instrument_validation.json`` for an organism run, else None."""
    return model_doc(P, "instrument_validation")


def demonstrated(path: Path | None, instrument: str, corpus: str = "gold") -> tuple[bool, str]:
    """Whether ``instrument`` has shown power of the kind SFT's change is, on fine-tunes with a known cause, read
    on the same kind of corpus (``crosscoder.corpus``; rows written before the option count as ``gold``): it saw
    the behavioural fine-tune at some dose and called no control changed. Returns (that, a sentence saying what
    the validation found). Without a validation file, or without rows for this corpus, nothing is demonstrated."""
    if path is None or not path.is_file():
        return False, "no known-cause validation for this model (benchmarks/bench_instrument_validation.py)"
    rows = [r for r in json.loads(path.read_text())["rows"]
            if r["instrument"] == instrument and r.get("corpus", "gold") == corpus]
    if not rows:
        return False, f"no known-cause validation of this instrument on a {corpus} corpus ({path.name})"
    seen = sorted(r["dose"] for r in rows if r["cause"] == "behaviour" and r["detected"])
    controls = [r for r in rows if r["cause"] == "control"]
    false = sum(r["detected"] for r in controls)
    causes = [r for r in rows if r["cause"] != "control"]
    text = (f"known causes ({path.name}, {corpus} corpus): behaviour seen at dose {', '.join(f'{d:g}' for d in seen) or 'none'}; "
            f"{sum(r['detected'] for r in causes)}/{len(causes)} known-cause fine-tunes seen, {false}/{len(controls)} "
            "controls called changed")
    return bool(seen) and not false and bool(controls), text


def dating_file(P) -> Path | None:
    """The dating validation that applies to run ``P`` (``benchmarks/bench_dating_validation.py``):
    ``docs/dating_validation-<name>.json`` if measured for it, else the organism's ``docs/dating_validation.json``
    for an organism run, else None."""
    return model_doc(P, "dating_validation")


def dating_demonstrated(path: Path | None) -> tuple[bool, bool, str]:
    """Whether notebook 04 has dated changes whose date is known (:mod:`rlgen_utils.studies.known_dating`):
    (power: some cause pair detected — ``late`` dated in its last segment, ``early`` before it, "stabilises
    early" reproduced; clean: control pairs were run and none was decided "reproduced"; a sentence saying what the
    validation found). Without the file nothing is demonstrated."""
    if path is None or not path.is_file():
        return False, False, "no known-cause dating validation for this model (benchmarks/bench_dating_validation.py)"
    rows = json.loads(path.read_text())["rows"]
    seen = sorted(r["dose"] for r in rows if r["pair"] == "cause" and r["detected"])
    causes, controls = [r for r in rows if r["pair"] == "cause"], [r for r in rows if r["pair"] == "control"]
    false = sum(bool(r["false positive"]) for r in controls)
    text = (f"known-cause dating ({path.name}): {len(seen)}/{len(causes)} cause pairs dated right (dose "
            f"{', '.join(f'{d:g}' for d in seen) or 'none'}), {false}/{len(controls)} control pairs decided reproduced")
    return bool(seen), bool(controls) and not false, text


def edges_file(P) -> Path | None:
    """The edge-metric validation that applies to run ``P`` (``benchmarks/bench_edge_validation.py``):
    ``docs/edge_validation-<name>.json`` if measured for it, else the organism's ``docs/edge_validation.json`` for
    an organism run, else None."""
    return model_doc(P, "edge_validation")


def edges_demonstrated(path: Path | None, claim_id: str) -> tuple[bool, bool, str]:
    """Whether notebook 05's reading ``claim_id`` (``paper``, ``scale_free``, ``exact``) has seen known changes of
    the graph (:mod:`rlgen_utils.studies.known_edges`): (power: a known widening read as a rise at some dose;
    clean: known narrowings and function-preserving edits were read and none as a rise; a sentence saying what
    the validation found). Without the file, or without rows for the reading, nothing is demonstrated."""
    if path is None or not path.is_file():
        return False, False, "no known-cause validation of the edge metrics for this model (benchmarks/bench_edge_validation.py)"
    rows = [r for r in json.loads(path.read_text())["rows"] if r["claim_id"] == claim_id]
    if not rows:
        return False, False, f"no known-cause validation of this reading ({path.name})"
    seen = sorted(r["dose"] for r in rows if r["edit"] == "widen" and r["detected"])
    others = [r for r in rows if r["edit"] != "widen"]
    false = [f"{r['edit']} {r['dose']:g}" for r in others if r["false positive"]]
    text = (f"known edits ({path.name}): a widening read as a rise at dose {', '.join(f'{d:g}' for d in seen) or 'none'}; "
            f"{len(false)}/{len(others)} narrowing or function-preserving edits read as a rise"
            + (f" ({', '.join(false)})" if false else ""))
    return bool(seen), bool(others) and not false, text


def ablation_file(P) -> Path | None:
    """The known-cause validation of notebook 06 that applies to run ``P`` (``benchmarks/bench_ablation_validation.py``):
    ``docs/ablation_validation-<name>.json`` if measured for it, else the organism's
    ``docs/ablation_validation.json`` for an organism run, else None."""
    return model_doc(P, "ablation_validation")


def selection_demonstrated(path: Path | None, rule: str = "contrast") -> tuple[bool, bool, bool, str]:
    """Whether notebook 06's selection (under ``rule``, ``interventions.selection``) and edit have found a behaviour
    whose cause is known
    (:mod:`rlgen_utils.studies.known_selection`): (kept: the selection kept latents in the behavioural fine-tune at
    some dose; lowered: zeroing them lowered the known behaviour beyond every random set at some dose; clean: the
    control fine-tunes were run and none had its caused share lowered; a sentence saying what was found). Without
    the file, or without its selection rows, nothing is demonstrated."""
    rows = json.loads(path.read_text()).get("selection", []) if path is not None and path.is_file() else []
    rows = [r for r in rows if r.get("rule", "contrast") == rule]
    if path is None or not rows:
        return False, False, False, (f"no known-cause validation of 06's {rule} selection for this model "
                                     "(benchmarks/bench_ablation_validation.py)")
    tuned, controls = [r for r in rows if r["model"] == "fine-tune"], [r for r in rows if r["model"] == "control"]
    kept = sorted(r["dose"] for r in tuned if r["selected"])
    lowered = sorted(r["dose"] for r in tuned if r["lowers"])
    false = sum(bool(r["lowers"]) for r in controls)
    def doses(ds: list[float]) -> str:
        return ", ".join(f"{d:g}" for d in ds) or "none"
    text = (f"known cause ({path.name}): 06's {rule} selection kept latents at dose {doses(kept)}, "
            f"zeroing them lowered the behaviour beyond random sets at dose {doses(lowered)}; "
            f"{false}/{len(controls)} controls lowered")
    return bool(kept), bool(lowered), bool(controls) and not false, text


def detection_limit(path: Path | None = None, recall: float = 0.8) -> str:
    """Notebook 03's detection limit from ``docs/detection_power.json`` (written by
    ``benchmarks/detection_power.py``): per planting strength, the smallest share of tokens at which at least
    ``recall`` of planted tuned-only features were found."""
    if path is None or not path.is_file():
        return "unmeasured for this model (benchmarks/detection_power.py --params … --write docs/detection_power-<name>.md)"
    rows = json.loads(path.read_text())["rows"]
    parts = []
    for kappa in sorted({r["kappa"] for r in rows}, reverse=True):
        ok = sorted(r["rate"] for r in rows if r["kappa"] == kappa and r["recall"] >= recall)
        parts.append(f"κ {kappa:g}: ≥ {ok[0]:.1%} of tokens" if ok else f"κ {kappa:g}: not found up to "
                     f"{max(r['rate'] for r in rows if r['kappa'] == kappa):.0%} of tokens")
    return f"recall ≥ {recall:.0%} for tuned-only features of strength κ·√d on " + "; ".join(parts)
