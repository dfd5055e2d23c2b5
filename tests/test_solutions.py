"""Reading an arith solution: its style and its first error (rlgen_utils.world.solutions)."""
import pytest

from rlgen_utils.run.config import TasksCfg
from rlgen_utils.world import solutions, tasks


@pytest.mark.parametrize("completion, kind", [
    ("take 77, sub 5: 72, sub 9: 63 ####63", "correct"),
    ("77-5=72,72-9=63####63", "correct"),
    ("take 77, sub 9: 79, sub 9: 79 ####79", "operand"),      # the miscopy issue 28 reports
    ("take 77, sub 9: 68 ####68", "steps"),                   # a step skipped
    ("take 77, sub 5: 72, sub 9: 53 ####53", "step"),
    ("take 77, sub 5: 72, sub 9: 73 ####73", "carry"),        # the borrow dropped (72-9 → 73)
    ("take 77, sub 5: 72, sub 9: 63 ####64", "answer"),
    ("sixty-three", "unreadable"),
    ("take 77, sub 5: 72, sub 9: 63", "unreadable"),          # no answer marker
])
def test_the_first_error_of_a_solution_is_named(completion, kind):
    assert solutions.error_kind("77-5-9=", completion) == kind


def test_the_teacher_solution_reads_as_teacher_style_and_correct_and_the_prefix_opens_it():
    for ex in tasks.sample_split("arith", "train", 50, 0, TasksCfg()):
        gold = tasks.teacher_completion(ex)
        assert solutions.style_of(gold) == "teacher" and solutions.error_kind(ex.prompt, gold) == "correct"
        assert solutions.style_of(ex.completion) == "pretraining"
        assert solutions.error_kind(ex.prompt, ex.completion) == "correct"
        assert gold.startswith(solutions.teacher_prefix(ex.prompt))

