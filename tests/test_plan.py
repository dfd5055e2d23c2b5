"""``--plan``: the model's size is counted from its config alone, and the paper-scale file gets a plan here.

Likely mistakes: counting grouped key/value heads as full heads (Qwen3-4B would look 20 % larger), counting a tied
head twice, and a plan that needs the weights present (the point is to plan before copying them in).
"""
import subprocess
import sys
from pathlib import Path

import pytest

from rlgen_utils.models import loading, smollm2
from rlgen_utils.run import config, plan

ROOT = Path(__file__).resolve().parents[1]


def test_parameter_count_from_the_config_matches_the_loaded_model(tmp_path):
    from transformers import Qwen3Config, Qwen3ForCausalLM
    smol = ROOT / smollm2.DEFAULT_OUT
    P = config.load_params(ROOT / "params" / "smollm2.yaml")
    assert plan.shape_of(P).n_params == loading.n_params(loading.load_model(smol))
    qwen = Qwen3ForCausalLM(Qwen3Config(vocab_size=100, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                                        num_attention_heads=4, num_key_value_heads=2, head_dim=32,
                                        tie_word_embeddings=False))
    qwen.save_pretrained(tmp_path / "q")
    qk_norms = 2 * 2 * 32          # Qwen3's per-head q/k norms, which the plan leaves out
    shape = plan.shape_of(P, tmp_path / "q" / "config.json")
    assert shape.n_params + qk_norms == loading.n_params(qwen)


def test_paper_scale_plan_runs_before_the_weights_are_here():
    cmd = [sys.executable, "-m", "rlgen_utils.run", "--params", "params/qwen3-4b.yaml", "--plan", "--devices", "8"]
    r = subprocess.run(cmd + ["--model-config", "params/configs/qwen3-4b-base.json"], cwd=ROOT, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "4.02 B parameters" in r.stdout and "01 post-train grpo" in r.stdout and "peak per device" in r.stdout
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "--model-config" in r.stderr


@pytest.mark.parametrize("devices", [1, 8])
def test_training_memory_shrinks_with_devices_and_analysis_does_not(devices):
    P = config.load_params(ROOT / "params" / "qwen3-4b.yaml", check_files=False)
    rows = {r["stage"]: float(r["GiB per device"]) for r in plan.rows(P, plan.shape_of(
        P, ROOT / "params" / "configs" / "qwen3-4b-base.json"), devices)}
    one = {r["stage"]: float(r["GiB per device"]) for r in plan.rows(P, plan.shape_of(
        P, ROOT / "params" / "configs" / "qwen3-4b-base.json"), 1)}
    assert rows["02 evaluate 31 models"] == one["02 evaluate 31 models"]
    if devices > 1:
        assert rows["01 post-train sft ×1 seed(s)"] < one["01 post-train sft ×1 seed(s)"] / 4


def test_the_paper_scale_plan_in_docs_is_what_the_plan_prints_today():
    """docs/PAPER_SCALE.md's plan is written by `python -m rlgen_utils.run.plan --write docs/PAPER_SCALE.md`; a params or
    estimate change that is not re-written there leaves the docs stating a plan nobody can reproduce."""
    from rlgen_utils.run.plan import transcript
    page = (Path(__file__).resolve().parents[1] / "docs" / "PAPER_SCALE.md").read_text()
    block = page.split("<!-- plan:begin -->\n", 1)[1].split("\n<!-- plan:end -->", 1)[0]
    assert block == transcript("params/qwen3-4b.yaml", [1, 8], "params/configs/qwen3-4b-base.json"), \
        "re-run: python -m rlgen_utils.run.plan --params params/qwen3-4b.yaml " \
        "--model-config params/configs/qwen3-4b-base.json --devices 1 8 --write docs/PAPER_SCALE.md"


def test_the_trajectory_reads_the_dynamics_subset_of_the_corpus():
    """04's collections read the corpus's first ``dynamics.n_texts`` texts; the plan must count those, not the
    whole crosscoder corpus (the likely mistake: planning the eleven-model collection over every text)."""
    P = config.load_params(ROOT / "params" / "qwen3-4b.yaml", check_files=False)
    shape = plan.shape_of(P, ROOT / "params" / "configs" / "qwen3-4b-base.json")
    tokens = lambda Q: next(r["tokens"] for r in plan.rows(Q, shape, 1) if r["stage"].startswith("04"))  # noqa: E731
    half = P.model_copy(update={"dynamics": P.dynamics.model_copy(update={"n_texts": P.crosscoder.n_texts // 2})})
    n_traj = 1 + 2 * P.posttrain.n_checkpoints
    assert tokens(P) == f"{n_traj * P.crosscoder.n_texts * P.crosscoder.max_len:,} read"
    assert tokens(half) == f"{n_traj * (P.crosscoder.n_texts // 2) * P.crosscoder.max_len:,} read"
