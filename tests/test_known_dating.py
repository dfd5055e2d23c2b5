"""Dating validation of notebook 04 (issue 29): the timed fine-tunes differ only in where the behaviour's rows
sit, a change that begins in the last segment is dated there, and a validation row is detected only when the
verdict and both dates are right."""
import shutil

import pandas as pd
import pytest

from rlgen_utils.run.config import Params, load_params
from rlgen_utils.run.rundir import RunDir
from rlgen_utils.studies import known_causes as kc
from rlgen_utils.studies import known_dating as kd


@pytest.fixture
def P(write_params):
    return load_params(write_params({"known_causes": {"n_rows": 40}, "posttrain": {"n_checkpoints": 4}}))


def _answers(P):
    return [f"x{i}" for i in range(P.known_causes.n_rows)]


def test_late_trains_as_the_control_until_its_last_segment_which_is_earlys(P):
    early, late, control = (kd.plan(P, t, 0.5, 0, _answers(P)) for t in ("early", "late", "control"))
    assert len(early) == len(late) == len(control) == 4
    assert late[:3] == control[:3] and late[3] == early[3] and late[3] != control[3]
    assert [s.index for s in late] == [0, 1, 2, 3] and [s.seed for s in late] == [s.seed for s in control]
    caused = {(e.prompt, e.completion) for e in kc.cause_examples(P, "behaviour", 20)}
    for segs, carries in ((early, [True] * 4), (late, [False, False, False, True]), (control, [False] * 4)):
        assert [any((r["prompt"], r["completion"]) in caused for r in s.rows) for s in segs] == carries
        assert all(len(s.rows) == 40 for s in segs), "one epoch of the same rows per segment: the same budget"


def test_a_plan_refuses_an_unknown_timing_and_a_single_checkpoint(P, write_params):
    with pytest.raises(ValueError, match="timing"):
        kd.plan(P, "middle", 0.5, 0, _answers(P))
    one = load_params(write_params({"posttrain": {"n_checkpoints": 1}}, name="one.yaml"))
    with pytest.raises(ValueError, match="n_checkpoints"):
        kd.plan(one, "late", 0.5, 0, _answers(one))


def _table(method: str, fvl_lo: list[float]) -> pd.DataFrame:
    return pd.DataFrame({"method": method, "checkpoint": range(1, len(fvl_lo) + 1), "fvl_lo": fvl_lo})


def test_a_change_in_the_last_segment_is_dated_there_and_one_from_the_start_at_one():
    null = pd.DataFrame({"method": ["null (sft slots)"] * 5 + ["null (grpo slots)"] * 5,
                         "checkpoint": list(range(1, 6)) * 2, "fvl_hi": [0.3, 0.3, 0.3, 0.3, 1.0] + [0.2] * 4 + [1.0]})
    table = pd.concat([_table("sft", [0.5, 0.6, 0.7, 0.8, 1.0]), _table("grpo", [0.1, 0.2, 0.3, 0.25, 1.0]),
                       _table("gap", [0.5, 0.2, 0.6, 0.7, 1.0]), _table("edge", [0.3, 0.31, 0.4, 0.5, 1.0])])
    assert kd.dated_at(table, null, "sft") == 1
    assert kd.dated_at(table, null, "grpo") == 5, "nothing before the final checkpoint beats the null"
    assert kd.dated_at(table, null, "gap") == 3, "dated from where every later checkpoint beats the null"
    assert kd.dated_at(table, null, "edge") == 2, "an overlap equal to the null's highest does not beat it"
    with pytest.raises(ValueError, match="no overlap rows"):
        kd.dated_at(table, null, "rloo")


def _verdicts(stab: str, evolve: str = "not reproduced") -> list[dict]:
    return [{"claim": "sft stabilises early (…)", "decision": stab, "detail": "sft 0.8, grpo 0.2", "null": "n"},
            {"claim": "grpo keeps evolving (…)", "decision": evolve, "detail": "d", "null": "n"}]


def test_the_cause_pair_is_detected_only_with_the_verdict_and_both_dates_right():
    assert kd.reading("cause", 5, _verdicts("reproduced"), {"sft": 1, "grpo": 5})["detected"] is True
    assert kd.reading("cause", 5, _verdicts("reproduced"), {"sft": 4, "grpo": 5})["detected"] is True
    assert kd.reading("cause", 5, _verdicts("reproduced"), {"sft": 5, "grpo": 5})["detected"] is False, (
        "an instrument that dates both at the final checkpoint is blind")
    assert kd.reading("cause", 5, _verdicts("reproduced"), {"sft": 1, "grpo": 4})["detected"] is False
    assert kd.reading("cause", 5, _verdicts("not testable at this power"), {"sft": 1, "grpo": 5})["detected"] is False
    row = kd.reading("control", 5, _verdicts("reproduced"), {"sft": 1, "grpo": 5})
    assert row["false positive"] is True and row["detected"] is None and row["expected dates"] == "—"
    assert kd.reading("control", 5, _verdicts("not reproduced"), {"sft": 5, "grpo": 5})["false positive"] is False


def test_byo_params_hand_every_checkpoint_to_notebook_04_in_order(P, tmp_path):
    sft, rl = [tmp_path / f"e{i}" for i in range(4)], [tmp_path / f"l{i}" for i in range(4)]
    d = kd.byo_params(P, "cause", 1.0, sft, rl)
    Q = Params.model_validate(d)
    assert Q.posttrain.n_checkpoints == 4 and Q.name.endswith("-dating-cause-d1")
    assert Q.external_checkpoints == {"sft": [str(p.resolve()) for p in sft], "grpo": [str(p.resolve()) for p in rl]}
    with pytest.raises(ValueError, match="checkpoints"):
        kd.byo_params(P, "cause", 1.0, sft[:3], rl)


@pytest.mark.slow
def test_timed_fine_tunes_share_the_controls_checkpoints_until_the_last_and_resume(smoke_run, tmp_path):
    P0, _ = smoke_run
    # its own run folder with the smoke base copied in: the shared smoke run's artifacts all carry its params' hash
    P = P0.model_copy(update={"run_root": str(tmp_path / "runs"),
                              "known_causes": P0.known_causes.model_copy(update={"n_rows": 16, "epochs": 1})})
    shutil.copytree(RunDir(P0).base(), RunDir(P).base())
    control, late = kd.ensure_timed_fine_tune(P, "control", 1.0), kd.ensure_timed_fine_tune(P, "late", 1.0)
    N = P.posttrain.n_checkpoints
    assert len(control) == len(late) == N

    def weights(p):
        return (p / "model.safetensors").read_bytes()
    assert all(weights(a) == weights(b) for a, b in zip(control[:-1], late[:-1])), (
        "late trains exactly as the control until its last segment")
    assert weights(control[-1]) != weights(late[-1])
    stamp = (late[-1] / "model.safetensors").stat().st_mtime_ns
    assert kd.ensure_timed_fine_tune(P, "late", 1.0) == late
    assert (late[-1] / "model.safetensors").stat().st_mtime_ns == stamp, "a finished fine-tune is not retrained"
