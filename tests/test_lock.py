"""One runner per run folder: a second waits (or refuses in one line), and a killed runner leaves no lock behind.

Likely mistakes: a lock file whose mere existence blocks (a ``kill -9`` then blocks every later run until someone
deletes it by hand), and two runners that both compute every stage into the same folder.
"""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rlgen_utils.run.lock import RunLocked, run_lock

ROOT = Path(__file__).resolve().parents[1]
HOLD = ("import sys, time; from pathlib import Path; from rlgen_utils.run.lock import run_lock\n"
        "with run_lock(Path(sys.argv[1])):\n    print('held', flush=True); time.sleep(float(sys.argv[2]))\n")


def _holder(folder: Path, seconds: float) -> subprocess.Popen:
    p = subprocess.Popen([sys.executable, "-c", HOLD, str(folder), str(seconds)], cwd=ROOT, stdout=subprocess.PIPE,
                         text=True)
    assert p.stdout is not None and p.stdout.readline().strip() == "held"
    return p


def test_a_held_folder_is_refused_in_one_line_and_freed_by_kill_9(tmp_path):
    p = _holder(tmp_path, 60)
    try:
        with pytest.raises(RunLocked, match=rf"another run holds this run folder \(pid {p.pid} ") as err:
            with run_lock(tmp_path, wait=False):
                pass
        assert "\n" not in str(err.value)
    finally:
        os.kill(p.pid, signal.SIGKILL)
        p.wait()
    assert (tmp_path / ".lock").is_file(), "the file stays; only the OS lock is gone"
    with run_lock(tmp_path, wait=False):   # a killed holder must not leave the folder locked
        assert f"pid {os.getpid()} " in (tmp_path / ".lock").read_text()


def test_a_second_runner_waits_and_says_so_once(tmp_path):
    p = _holder(tmp_path, 1.5)
    said = []
    t0 = time.perf_counter()
    with run_lock(tmp_path, say=said.append):
        waited = time.perf_counter() - t0
    p.wait()
    assert len(said) == 1 and "waiting" in said[0] and waited > 0.5


@pytest.mark.slow
def test_two_runners_started_together_leave_one_complete_run_folder(write_params):
    path = write_params({"posttrain": {"methods": ["sft", "grpo"], "sft_sweep": [1.0e-3]}})
    cmd = [sys.executable, "-m", "rlgen_utils.run", "--params", str(path), "--only", "01_train", "--no-report"]
    procs = [subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for _ in range(2)]
    outs = [p.communicate(timeout=900)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs[0][-2000:] + outs[1][-2000:]
    assert sum("waiting for it to finish" in o for o in outs) == 1, "exactly one of the two must have waited"
    run = path.parent / "runs" / "smoke"
    for m in ("sft-lr0.001", "grpo"):   # sft: its grid's one rate
        ckpt = run / "posttrain" / m / "seed-0" / "checkpoint-5"
        assert (ckpt / "DONE.json").is_file() and (ckpt / "model.safetensors").is_file()
    # the loop's opening line (0/5) is always printed; later lines only every 10 s, so a fast machine may skip 1/5
    progress = [o.count("[progress] grpo seed 0: 0/5") for o in outs]
    assert sorted(progress) == [0, 1], "the second runner must find GRPO trained, not train it again"
