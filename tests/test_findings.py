"""Typed findings and the one renderer: statements keep their numbers as values, survive the run folder unchanged,
and render to the Markdown the notebooks show."""
import pytest

from rlgen_utils.run.config import load_params
from rlgen_utils.studies import findings, render
from rlgen_utils.studies.findings import Finding, Findings
from rlgen_utils.studies.verdicts import Verdict


@pytest.fixture
def P(write_params):
    return load_params(write_params())


def _verdict() -> Verdict:
    return Verdict(claim="x beats y", notebook="04_feature_dynamics", estimate=0.25, interval=(0.1, 0.4),
                   null="copies 0.0–0.1", decision="reproduced", limit="seeds separated", detail="x 0.5, y 0.25")


def _paragraph() -> Findings:
    return Findings("04_feature_dynamics", "trajectories", (
        Finding("x overlaps **0.50**", {"x_overlap": 0.5}),
        Finding("its walk 0.20", {"walk": 0.2}, style="sub"),
        Finding("**Verdict:** holds", {"holds": True}, style="paragraph"),
        Finding("read with care.", style="line"),
        _verdict()))


def test_each_style_renders_as_the_notebooks_printed_it():
    assert render.markdown(_paragraph()).split("\n") == [
        "- x overlaps **0.50**", "  - its walk 0.20", "", "**Verdict:** holds", "read with care.",
        "- **x beats y**: **reproduced** — x 0.5, y 0.25 (null: copies 0.0–0.1; limit: seeds separated)."]
    assert render.markdown([_verdict()]) == render.markdown(_verdict()) == render.verdict_line(_verdict())


def test_value_names_are_identifiers_made_from_model_and_metric_names():
    assert [findings.ident(n) for n in ("sft_grpo", "noise+sft", "intensity / loss", "kurtosis of |W| (scale-free)")] \
        == ["sft_grpo", "noise_sft", "intensity_loss", "kurtosis_of_W_scale_free"]


def test_values_are_read_by_name_not_parsed_from_prose():
    f = _paragraph()
    assert f.value("x_overlap") == 0.5 and f.value("holds") is True and f.verdicts == [_verdict()]
    with pytest.raises(KeyError):
        f.value("missing")
    twice = Findings("02_evaluate", "behaviour", (Finding("a", {"n": 1}), Finding("b", {"n": 2})))
    with pytest.raises(ValueError, match="2 statements"):
        twice.value("n")


def test_bad_styles_topics_and_value_names_are_refused():
    with pytest.raises(ValueError, match="style"):
        Finding("a", style="heading")  # pyright: ignore[reportArgumentType]
    with pytest.raises(ValueError, match="identifiers"):
        Finding("a", {"Δ OOD": 0.1})
    with pytest.raises(ValueError, match="identifier"):
        Findings("02_evaluate", "two words", ())
    with pytest.raises(TypeError, match="cannot render"):
        render.markdown("already a string")  # pyright: ignore[reportArgumentType]


def test_recorded_findings_come_back_equal_in_topic_order(P):
    later = Findings("04_feature_dynamics", "nulls", (Finding("copies 0.1", {"lo": 0.1}),))
    assert findings.record(P, _paragraph()) == _paragraph()
    findings.record(P, later)
    findings.record(P, Findings("03_crosscoder", "crosscoders", (Finding("n 3", {"n": 3}),)))
    back = findings.load_all(P, "04_feature_dynamics")
    assert back == [later, _paragraph()], "topics sort as the notebook's cells come (nulls, then trajectories)"
    assert [f.notebook for f in findings.load_all(P)] == ["03_crosscoder", "04_feature_dynamics",
                                                          "04_feature_dynamics"]
    again = Findings("04_feature_dynamics", "nulls", (Finding("copies 0.2", {"lo": 0.2}),))
    findings.record(P, again)
    assert findings.load_all(P, "04_feature_dynamics")[0] == again, "re-running a cell replaces its paragraph"
