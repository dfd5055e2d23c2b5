"""Independent jobs on worker processes (rlgen_utils.run.jobs, ``compute.jobs``): the order rules, a failure that
names its job, and on smoke params every method trained and every model scored on two workers, byte for byte what
one process writes.

Likely mistakes: a job started before one it waits for (SFT→GRPO before that seed's SFT, SFT on seed 1 before
the choice), a worker at another thread count than one process (DPO and GRPO weights then differ in the last
bits), a failed job swallowed so the notebook goes on with a model missing.
"""
import math
import os
from pathlib import Path

import pytest

from rlgen_utils.run import config, jobs
from rlgen_utils.run.rundir import RunDir
from rlgen_utils.studies import evaluate, forgetting, train


def _assert_same_bytes(a: Path, b: Path) -> None:
    assert a.read_bytes() == b.read_bytes(), f"{a} and {b} differ"


def test_a_job_may_only_wait_for_an_earlier_one_and_names_are_unique():
    f = math.sqrt
    jobs.check([jobs.Job("a", f, (1,)), jobs.Job("b", f, (4,), after=("a",))])
    with pytest.raises(ValueError, match=r"job 'b' waits for \['c'\]"):
        jobs.check([jobs.Job("a", f, (1,)), jobs.Job("b", f, (4,), after=("c",)), jobs.Job("c", f, (9,))])
    with pytest.raises(ValueError, match="listed twice"):
        jobs.check([jobs.Job("a", f, (1,)), jobs.Job("a", f, (4,))])


def test_jobs_in_one_process_run_in_list_order(write_params):
    P = config.load_params(write_params())
    seen = []
    out = jobs.run(P, [jobs.Job(n, seen.append, (n,)) for n in "abc"], desc="t")
    assert seen == list("abc") and set(out) == set("abc")


def test_two_workers_keep_the_order_a_job_waits_for_and_a_failure_names_its_job(write_params, tmp_path):
    P = config.load_params(write_params({"compute": {"jobs": 2}}))
    first = tmp_path / "first.txt"
    # "read" fails (no file) if it starts before "write" has finished; "slow" keeps the other worker busy meanwhile
    out = jobs.run(P, [jobs.Job("write", Path.write_text, (first, "x" * 7)),
                       jobs.Job("slow", math.factorial, (30000,)),
                       jobs.Job("read", Path.read_text, (first,), after=("write",))], desc="t")
    assert out["read"] == "x" * 7 and out["write"] == 7 and out["slow"] == math.factorial(30000)
    with pytest.raises(RuntimeError, match=r"job 'bad' failed in its worker: ValueError"):
        jobs.run(P, [jobs.Job("ok", math.sqrt, (4.0,)), jobs.Job("bad", math.sqrt, (-1.0,))], desc="t")
    assert "OMP_WAIT_POLICY" not in os.environ or os.environ["OMP_WAIT_POLICY"] != "PASSIVE"


def test_the_training_jobs_wait_only_for_what_each_starts_from(write_params):
    P = config.load_params(write_params({"posttrain": {"seeds": [0, 1]}}))
    grid = train.sft_grid_jobs(P)
    jobs.check(grid)
    rates = [j.name for j in grid if not j.after]
    assert rates == [f"sft lr={lr:g} seed 0" for lr in P.posttrain.sft_sweep]
    for lr, name in zip(P.posttrain.sft_sweep, rates):   # each checkpoint is scored once its own rate has trained
        scored = [j for j in grid if j.after == (name,)]
        assert [j.args[1] for j in scored] == RunDir(P).checkpoints(train.sweep_name(lr), 0)
    js = train.posttrain_jobs(P)
    after = {j.name: set(j.after) for j in js}
    assert "sft seed 0" not in after and after["sft seed 1"] == set()   # seed 0's sft is the grid's chosen rate
    assert after["sft_grpo seed 0"] == set() and after["sft_grpo seed 1"] == {"sft seed 1"}
    assert after["grpo seed 1"] == after["dpo seed 0"] == set()
    jobs.check(js)


def test_a_jobs_setting_with_launched_ranks_is_one_line_naming_the_key(write_params):
    with pytest.raises(config.ParamsError, match=r"compute.*jobs: 2 worker processes and processes: 2") as err:
        config.load_params(write_params({"compute": {"jobs": 2, "processes": 2}}))
    assert "\n" not in str(err.value)


@pytest.mark.slow
def test_two_workers_train_and_score_the_same_bytes_as_one_process(smoke_run, write_params):
    """GRPO and DPO are the methods whose bits depend on the thread count; SFT→DPO waits for SFT."""
    P, _ = smoke_run
    Q = config.load_params(write_params({"compute": {"jobs": 2},
                                         "posttrain": {"methods": ["sft", "grpo", "dpo", "sft_dpo"]}}))
    train.ensure_posttrained(Q)
    for m in Q.posttrain.methods:
        for a, b in zip(RunDir(P).checkpoints(m, P.seed), RunDir(Q).checkpoints(m, Q.seed), strict=True):
            _assert_same_bytes(a / "model.safetensors", b / "model.safetensors")
    for lr in Q.posttrain.sft_sweep:
        name = train.sweep_name(lr)
        for a, b in zip(RunDir(P).checkpoints(name, P.seed), RunDir(Q).checkpoints(name, Q.seed), strict=True):
            _assert_same_bytes(a / "model.safetensors", b / "model.safetensors")
    assert RunDir(Q).sft_choice()["table"] == RunDir(P).sft_choice()["table"]
    mine, theirs = evaluate.ensure_scores(Q, all_checkpoints=False), evaluate.ensure_scores(P, all_checkpoints=False)
    assert mine.equals(theirs[theirs.method.isin(Q.posttrain.methods + ["base"])].reset_index(drop=True))
    assert forgetting.ensure_sweep_scores(Q).equals(forgetting.ensure_sweep_scores(P))
