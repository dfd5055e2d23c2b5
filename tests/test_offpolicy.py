"""Answer styles and first errors per model, from per-sample scores (rlgen_utils.studies.offpolicy)."""
import pandas as pd

from rlgen_utils.run import config
from rlgen_utils.studies import offpolicy


def _scores(rows):
    return pd.DataFrame([{"method": m, "seed": -1 if m == "base" else 0, "final": True, "family": "arith",
                          "prompt": "77-5-9=", "completion": c, "correct": c.endswith("####63")} for m, c in rows])


def test_styles_and_errors_are_counted_per_model(write_params):
    P = config.load_params(write_params())
    scores = _scores([("base", "77-5=72,72-9=63####63"), ("base", "77-5=72,72-9=73####73"),
                      ("sft", "take 77, sub 5: 72, sub 9: 63 ####63"), ("sft", "take 77, sub 9: 79, sub 9: 79 ####79"),
                      ("sft", "take 77, sub 9: 68 ####68"), ("sft", "take 77, sub 5: 72, sub 9: 63 ####63")])
    styles = offpolicy.style_table(P, scores).set_index("model")
    assert styles.loc["base", "pretraining share"] == 1.0 and styles.loc["sft", "teacher share"] == 1.0
    assert styles.loc["sft", "accuracy"] == 0.5 and styles.loc["sft", "accuracy in teacher style"] == 0.5
    errors = offpolicy.error_table(P, scores).set_index("model")
    assert errors.loc["base"].to_dict() == {"correct": 0.5, "unreadable": 0.0, "steps": 0.0, "operand": 0.0,
                                            "carry": 0.5, "step": 0.0, "answer": 0.0}
    assert (errors.loc["sft", "operand"], errors.loc["sft", "steps"], errors.loc["sft", "correct"]) == (0.25, 0.25, 0.5)
    forced = {"model": "base", "free": [True, True, False, False], "forced": [True, False, False, False]}
    found = offpolicy.findings(P, forced, styles.reset_index(), errors.reset_index())
    assert (found.value("base_free"), found.value("base_forced_teacher")) == (0.5, 0.25)
    assert found.value("sft_commonest_error") in ("operand", "steps") and found.value("sft_teacher_share") == 1.0
