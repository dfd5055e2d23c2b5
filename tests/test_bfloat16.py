"""The bfloat16 path of every stage, on CPU (bfloat16 works there): all six notebooks on smoke params in bf16.

Likely mistakes: a crosscoder trained in bf16 (its small decoder-norm differences drown in bf16's 8 bits of
mantissa), activations stored in bf16, losses or log-probabilities computed in bf16, an edit that returns a
float32 change into a bf16 residual stream.
"""
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from safetensors import safe_open

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def test_all_six_notebooks_run_in_bfloat16(write_params):
    # SFT and GRPO only: every stage's bf16 path, without the six methods' cost (bf16 matmuls are slow on CPUs)
    path = write_params({"name": "smoke-bf16", "model": {"dtype": "bfloat16"},
                         "posttrain": {"methods": ["sft", "grpo"], "sft_sweep": [1.0e-3]}})
    r = subprocess.run([sys.executable, "-m", "rlgen_utils.run", "--params", str(path), "--no-report"], cwd=ROOT,
                       capture_output=True, text=True, timeout=1200)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    run = Path(yaml.safe_load(path.read_text())["run_root"]) / "smoke-bf16"
    with safe_open(str(run / "posttrain" / "grpo" / "seed-0" / "checkpoint-5" / "model.safetensors"), "pt") as f:
        assert f.get_tensor(next(iter(f.keys()))).dtype.is_floating_point
        assert str(f.get_tensor(next(iter(f.keys()))).dtype) == "torch.bfloat16", "the models train in bf16"
    shard = next((run / "acts").glob("*/shard-00000.safetensors"))
    with safe_open(str(shard), "pt") as f:
        assert str(f.get_tensor("acts_NMD").dtype) == "torch.float32", "activations are stored in float32"
    cc = next((run / "crosscoders").glob("*/crosscoder.safetensors"))
    with safe_open(str(cc), "pt") as f:
        weights = {k: f.get_tensor(k).dtype for k in f.keys() if f.get_tensor(k).dtype.is_floating_point}
        assert "W_dec_LMD" in weights and set(map(str, weights.values())) == {"torch.float32"}, \
            f"crosscoders train in float32 (the dead-latent counter is an integer buffer): {weights}"
    for nb in ("01_train", "02_evaluate", "03_crosscoder", "04_feature_dynamics", "05_circuits", "06_interventions"):
        assert (run / "notebooks" / f"{nb}.ipynb").is_file()
