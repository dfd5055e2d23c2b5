"""Bring your own checkpoints: params name models trained elsewhere, and notebooks 02–06 analyse them as they are.

Likely mistakes: retraining (or silently re-using) a method the params say was trained elsewhere, stage keys that
follow a folder's path but not what it holds (a checkpoint replaced in place would then reuse stale scores), and
a crosscoder or circuit pair over models whose tokenizers differ, which fails much later deep inside torch or —
worse — compares different tokens position by position.
"""
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from test_any_hf_model import save_tiny_gpt2

from rlgen_utils.run import config, session
from rlgen_utils.run.keys import stage_key
from rlgen_utils.run.rundir import RunDir
from rlgen_utils.studies import evaluate, train

ROOT = Path(__file__).resolve().parents[1]


def _perturbed_copy(src: Path, dst: Path, seed: int) -> Path:
    """``src`` with every weight moved a little: a stand-in for a model post-trained elsewhere."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    model = AutoModelForCausalLM.from_pretrained(src)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01 * torch.randn(p.shape, generator=g))
    model.save_pretrained(dst)
    AutoTokenizer.from_pretrained(src).save_pretrained(dst)
    return dst


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("byo")
    base = save_tiny_gpt2(root / "base")
    return {"root": root, "base": base, "rl": _perturbed_copy(base, root / "rl", 1),
            "rl_early": _perturbed_copy(base, root / "rl_early", 2)}


def _params(folders, models, name="byo", **posttrain) -> Path:
    raw = yaml.safe_load((ROOT / "params" / "smoke.yaml").read_text())
    raw.update(name=name, run_root=str(folders["root"] / "runs"), pretrain=None,
               model={"name_or_path": str(folders["base"])}, models=models)
    raw["posttrain"].update({"methods": ["grpo"], "n_checkpoints": 1, "sft_sweep": [], **posttrain})
    raw["eval"].update(preregistration=None)
    path = folders["root"] / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_models_trained_elsewhere_are_scored_not_trained(folders):
    P = config.load_params(_params(folders, {"grpo": str(folders["rl"])}))
    session.init(P)
    assert RunDir(P).model("grpo") == folders["rl"]
    assert train.ensure_posttrained(P) == {("grpo", P.seed): folders["rl"]}
    assert not (RunDir(P).path / "posttrain").exists(), "notebook 01 must not train a method named under models:"
    scores = evaluate.ensure_scores(P)
    assert set(scores.method) == {"base", "grpo"} and (scores.method == "grpo").sum() == (scores.method == "base").sum()


def test_checkpoints_listed_in_order_and_keys_follow_contents(folders):
    P = config.load_params(_params(folders, {"grpo": {"checkpoints": [str(folders["rl_early"]), str(folders["rl"])]}},
                                   name="byo2", n_checkpoints=2))
    assert RunDir(P).checkpoints("grpo", P.seed) == [folders["rl_early"], folders["rl"]]
    assert RunDir(P).model("grpo@1") == folders["rl_early"]
    before = stage_key(P, "trained")
    w = folders["rl_early"] / "model.safetensors"
    blob = w.read_bytes()
    try:
        w.write_bytes(blob[:-4] + bytes(4))          # the same path, other contents
        assert stage_key(P, "trained") != before, "a checkpoint replaced in place must change the keys"
    finally:
        w.write_bytes(blob)
    assert stage_key(P, "trained") == before


def test_a_crosscoder_is_keyed_by_the_content_of_the_models_it_reads(folders):
    """Two runs that share the base and the RL slot but not the SFT slot (two known-cause validation pairs beside
    one control) give the crosscoders that read only what they share — the base's identical-copy nulls, the base
    against RL or against RL's random update — one key, and those reading the SFT slot two. On a corpus of the
    models' own generations the texts depend on every model, so nothing is shared. Likely mistakes: a key that
    follows the collection the columns were read from (nothing shared), or one that leaves out a null's tuned
    model (a null of another model read as this one's)."""
    from rlgen_utils.run.keys import activations_key, columns_key
    from rlgen_utils.run.modelid import ids
    other = _perturbed_copy(folders["base"], folders["root"] / "other_sft", 3)
    two = dict(methods=["sft", "grpo"], n_checkpoints=1)
    a = config.load_params(_params(folders, {"sft": str(folders["rl_early"]), "grpo": str(folders["rl"])}, "pair_a", **two))
    b = config.load_params(_params(folders, {"sft": str(other), "grpo": str(folders["rl"])}, "pair_b", **two))
    c = config.load_params(_params(folders, {"sft": str(other), "grpo": str(folders["rl_early"])}, "pair_c", **two))
    def key(P, *names):
        return columns_key(P, ids(names), 0)
    for shared in [("base", "base"), ("base", "base", "base"), ("base", "grpo"), ("base", "noise+grpo")]:
        assert key(a, *shared) == key(b, *shared), shared
    for own in [("base", "sft"), ("base", "noise+sft"), ("base", "sft", "grpo")]:
        assert key(a, *own) != key(b, *own), own
    assert key(b, "base", "grpo") != key(c, "base", "grpo") and key(b, "base", "base") == key(c, "base", "base")
    assert activations_key(a, ids(("base", "sft", "grpo")), 0) != activations_key(b, ids(("base", "sft", "grpo")), 0)
    gen = [P.model_copy(update={"crosscoder": P.crosscoder.model_copy(update={"corpus": "generations"})}) for P in (a, b)]
    assert key(gen[0], "base", "base") != key(gen[1], "base", "base")
    assert key(gen[0], "base", "base") != key(a, "base", "base")


def test_mismatches_are_one_line_params_errors(folders, tmp_path):
    from transformers import GPT2Config, GPT2LMHeadModel
    other_tok = save_tiny_gpt2(tmp_path / "other", corpus_seed=1)     # its own BPE: another vocabulary
    wide = tmp_path / "wide"
    vocab = GPT2Config.from_pretrained(folders["base"]).vocab_size
    GPT2LMHeadModel(GPT2Config(vocab_size=vocab, n_embd=64, n_layer=2, n_head=2, n_positions=256)).save_pretrained(wide)
    for f in ("tokenizer.json", "tokenizer_config.json"):
        (wide / f).write_bytes((folders["base"] / f).read_bytes())
    cases = [({"grpo": str(other_tok)}, {}, "models.grpo: .* has a different tokenizer"),
             ({"grpo": str(wide)}, {}, "models.grpo: .* has another shape \\(n_embd 64 vs 32\\)"),
             ({"grpo": str(tmp_path / "missing")}, {}, "models.grpo: no Hugging Face model"),
             ({"grpo": str(folders["rl"])}, {"n_checkpoints": 2}, "models: grpo names 1 checkpoint"),
             ({"dpo": str(folders["rl"])}, {}, "models: 'dpo' is not one of posttrain.methods")]
    for i, (models, post, pattern) in enumerate(cases):
        with pytest.raises(config.ParamsError, match=pattern) as err:
            config.load_params(_params(folders, models, name=f"bad{i}", **post))
        assert "\n" not in str(err.value)


@pytest.mark.slow
def test_notebook_02_runs_on_models_trained_elsewhere(folders):
    """The runner with --only 02_evaluate on a params file whose methods were all trained elsewhere: 01 never ran."""
    path = _params(folders, {"grpo": str(folders["rl"])}, name="byo_nb")
    r = subprocess.run([sys.executable, "-m", "rlgen_utils.run", "--params", str(path), "--only", "02_evaluate",
                        "--no-report"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    run = folders["root"] / "runs" / "byo_nb"
    assert (run / "eval" / "per_sample.parquet").is_file() and not (run / "posttrain").exists()


def test_chat_style_needs_a_chat_template(folders):
    path = _params(folders, {}, name="nochat")
    raw = yaml.safe_load(path.read_text())
    raw["model"]["prompt"] = {"style": "chat"}
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(config.ParamsError, match=r"model\.prompt\.style: 'chat' needs a chat template"):
        config.load_params(path)
