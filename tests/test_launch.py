"""Post-training under ``accelerate launch`` (rlgen_utils.run.launch): the command, the params checks, and on smoke
params two CPU processes over gloo that finish, resume after a kill, and match one process.

Likely mistakes: batch sizes passed per rank unchanged (each rank then trains on the whole global batch, so two
processes take twice the samples per step), every rank writing the checkpoint (a race on the atomic rename) or
none waiting for rank 0 (a rank reads a half-written segment), the base pretrained by each rank at once.
"""
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

from rlgen_utils.run import config, launch

ROOT = Path(__file__).resolve().parents[1]
TWO = {"posttrain": {"methods": ["sft", "grpo"], "sft_sweep": [1.0e-3]}}


def test_the_launch_command_names_the_engine_the_ranks_and_the_module(write_params):
    P = config.load_params(write_params({**TWO, "compute": {"processes": 2, "main_process_port": 29511}}))
    cmd = launch.command(P, Path("/x/params.yaml"), "grpo", 3)
    assert cmd[1:4] == ["-m", "accelerate.commands.launch", "--multi_gpu"]
    assert cmd[cmd.index("--num_processes") + 1] == "2" and cmd[cmd.index("--main_process_port") + 1] == "29511"
    i = cmd.index("rlgen_utils.studies.train_method")
    assert cmd[i - 1] == "-m" and cmd[i + 1:] == ["--params", "/x/params.yaml", "--method", "grpo", "--seed", "3"]
    Z = config.load_params(write_params({**TWO, "compute": {"processes": 4,
                                                            "accelerate_config": "params/accelerate/zero3.yaml"}},
                                        name="z.yaml"))
    cmd = launch.command(Z, Path("p.yaml"), "sft", 0, sft_lr=1e-5)
    assert "--multi_gpu" not in cmd and cmd[cmd.index("--config_file") + 1] == str(ROOT / "params/accelerate/zero3.yaml")
    assert cmd[-2:] == ["--sft-lr", "1e-05"]


def test_a_batch_that_does_not_split_over_the_ranks_is_one_line_naming_the_key(write_params):
    with pytest.raises(config.ParamsError, match=r"posttrain\.grpo\.completions_per_step: 8 does not split over "
                                                 r"compute\.processes × micro_batches = 3") as err:
        config.load_params(write_params({**TWO, "compute": {"processes": 3}, "posttrain": {
            "methods": ["grpo"], "sft_sweep": [], "sft": {"batch_size": 3}}}))
    assert "\n" not in str(err.value)
    with pytest.raises(config.ParamsError, match=r"compute\.accelerate_config: file not found"):
        config.load_params(write_params({"compute": {"accelerate_config": "params/accelerate/nope.yaml"}}))


def test_every_shipped_accelerate_config_is_yaml_an_engine_can_read():
    import yaml
    shipped = sorted((ROOT / "params" / "accelerate").glob("*.yaml"))
    assert {p.stem for p in shipped} >= {"ddp", "zero3", "fsdp"}
    for p in shipped:
        raw = yaml.safe_load(p.read_text())
        assert raw["distributed_type"] in ("MULTI_GPU", "DEEPSPEED", "FSDP"), p.name


def _train(params: Path, method: str) -> subprocess.Popen:
    """Train one method (SFT at its grid's one rate, 1e-3) in a process of its own."""
    code = ("import sys; from rlgen_utils.run import config, session; from rlgen_utils.studies import train; "
            "P = config.load_params(sys.argv[1]); session.init(P); "
            "train.train_one(P, sys.argv[2], 0, 1e-3 if sys.argv[2] == 'sft' else None)")
    return subprocess.Popen([sys.executable, "-c", code, str(params), method], cwd=ROOT, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _final(params: Path, method: str) -> dict[str, torch.Tensor]:
    P = config.load_params(params)
    return load_file(str(P.run_dir / "posttrain" / method / "seed-0" / "checkpoint-5" / "model.safetensors"))


@pytest.mark.slow
def test_two_processes_in_micro_batches_finish_resume_after_a_kill_and_match_one_process(write_params):
    one = write_params({**TWO, "name": "one"}, name="one.yaml")
    # two ranks, each feeding its half of every global batch in two accumulation steps
    two = write_params({**TWO, "name": "two", "compute": {"processes": 2, "micro_batches": 2}}, name="two.yaml")
    for m in ("sft", "grpo"):
        p = _train(one, m)
        out = p.communicate(timeout=600)[0]
        assert p.returncode == 0, out[-4000:]
    # two ranks: kill the whole launch once the second SFT checkpoint is written, then run again
    proc = _train(two, "sft")
    marker = config.load_params(two).run_dir / "posttrain" / "sft-lr0.001" / "seed-0" / "checkpoint-2" / "DONE.json"
    t0 = time.time()
    while not marker.is_file() and proc.poll() is None and time.time() - t0 < 600:
        time.sleep(0.2)
    assert proc.poll() is None, "the launch ended before it could be killed: " + proc.communicate()[0][-3000:]
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    for late in ("checkpoint-3", "checkpoint-4", "checkpoint-5"):   # a tiny model may have got further by then:
        shutil.rmtree(marker.parent.parent / late, ignore_errors=True)  # the state of a kill right after segment 2
    outs = {}
    for m in ("sft", "grpo"):
        p = _train(two, m)
        outs[m] = p.communicate(timeout=600)[0]
        assert p.returncode == 0, outs[m][-4000:]
    assert "[progress] sft seed 0: 2/5" in outs["sft"], "the relaunch must resume after the two finished segments"
    # gloo sums the two ranks' gradients in another order than one process reduces its batch; Adam's first steps
    # (an update of ~lr wherever a gradient component is tiny) carry that float32 rounding into every tensor, so
    # the runs agree as one training, not bit for bit: measured, their difference is 0.4–0.6 % of the update
    base = load_file(str(config.load_params(two).run_dir / "base" / "model.safetensors"))
    a, b = _final(one, "sft-lr0.001"), _final(two, "sft-lr0.001")
    apart = sum(((a[k] - b[k]) ** 2).sum() for k in a) ** 0.5
    update = sum(((a[k] - base[k]) ** 2).sum() for k in a) ** 0.5
    assert update > 0 and apart / update < 0.02, \
        f"SFT on 2 ranks × 2 micro-batches is {apart / update:.1%} of the update away from 1 process"
    # GRPO samples: each rank draws its own completions, so weights cannot be compared for equality (and on smoke's
    # tiny organism every reward is 0, so neither run moves). What must hold is that the ranks together roll out
    # one global batch per step, not one each: trl counts the tokens seen over all ranks
    seen = [sum(h["num_tokens"] for i in range(1, 6) for h in _log(params, "grpo", i) if "num_tokens" in h) / 5
            for params in (one, two)]
    assert 0.7 < seen[1] / seen[0] < 1.4, f"tokens per GRPO segment: 1 process {seen[0]:.0f}, 2 ranks {seen[1]:.0f}"


def _log(params: Path, method: str, i: int) -> list[dict]:
    import json
    folder = config.load_params(params).run_dir / "posttrain" / method / "seed-0" / f"checkpoint-{i}"
    return json.loads((folder / "train_log.json").read_text())["log"]


@pytest.mark.slow
def test_sharded_evaluation_collection_and_edge_scores_on_two_ranks_equal_one_process(write_params):
    """Each rank takes whole models to evaluate, whole activation shards and whole question batches, computed as one
    process computes them, so the merged folders must hold the same tables and tensors (bit for bit), in order."""
    from rlgen_utils.run import session
    from rlgen_utils.studies import circuits, crosscoder, evaluate, train
    over = {**TWO, "crosscoder": {"collect_batch_size": 16, "shard_tokens": 1536}, "circuits": {"batch_size": 2}}
    P = config.load_params(write_params(over, name="one.yaml"))
    session.init(P)
    train.ensure_posttrained(P)
    scores = evaluate.ensure_scores(P, all_checkpoints=False)
    names, pair = ("base", "sft", "grpo"), ("base", "grpo")
    eval_files = {f.name: pd.read_parquet(f) for f in P.run_dir.joinpath("eval").glob("*.parquet")}
    acts1 = crosscoder.ensure_activations(P, names)
    edges1 = circuits.ensure_pair_scores(P, pair, scores)
    one = {p.relative_to(acts1.parent): load_file(str(p)) for p in acts1.glob("shard-*.safetensors")}
    one |= {p.relative_to(edges1.parent): load_file(str(p)) for p in edges1.glob("*.safetensors")}
    assert len(list(acts1.glob("shard-*"))) >= 3, "the test needs several shards to deal out"
    shutil.rmtree(acts1)
    shutil.rmtree(edges1)
    shutil.rmtree(P.run_dir / "eval")
    # the same run folder (compute is in no stage key), now on two ranks
    Q = config.load_params(write_params({**over, "compute": {"processes": 2}}, name="one.yaml"))
    assert not (Q.run_dir / "launch").exists()
    again = evaluate.ensure_scores(Q, all_checkpoints=False)
    assert (Q.run_dir / "launch" / "params.yaml").is_file(), "the stage must have gone through accelerate launch"
    pd.testing.assert_frame_equal(again, scores)
    for name, df in eval_files.items():   # every model scored by one of the two ranks, as one process scores it
        pd.testing.assert_frame_equal(pd.read_parquet(P.run_dir / "eval" / name), df)
    assert crosscoder.ensure_activations(Q, names) == acts1
    assert circuits.ensure_pair_scores(Q, pair, scores) == edges1
    two = {p.relative_to(acts1.parent): load_file(str(p)) for p in acts1.glob("shard-*.safetensors")}
    two |= {p.relative_to(edges1.parent): load_file(str(p)) for p in edges1.glob("*.safetensors")}
    assert sorted(two) == sorted(one)
    for f, tensors in one.items():
        for k, t in tensors.items():
            assert torch.equal(two[f][k], t), f"{f}:{k} differs between 2 ranks and 1 process"
    assert (acts1 / "index.json").read_text() and not (edges1.parent / "scores.ranks").exists()
    W = load_file(str(edges1 / "grpo-zero-a0.5.safetensors"))["W_KRS"]
    assert W.shape[0] == 8 and W.abs().sum() > 0
