"""Any Hugging Face causal LM can replace the organism: a locally saved GPT-2 with its own BPE tokenizer."""
from pathlib import Path

import pytest
import yaml

from rlgen_utils.models import posttrain
from rlgen_utils.run import config, session
from rlgen_utils.run.rundir import RunDir
from rlgen_utils.studies import train
from rlgen_utils.world import tasks

pytestmark = pytest.mark.slow


def save_tiny_gpt2(folder: Path, corpus_seed: int = 0) -> Path:
    """A 2-layer GPT-2 and a byte-level BPE tokenizer trained on task text — no BOS, pad = eos, as GPT-2 ships.
    Another ``corpus_seed`` trains the tokenizer on other text: the same size, another vocabulary."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    cfg = config.TasksCfg()
    text = [e.text for f in tasks.FAMILIES
            for e in tasks.sample_split(f, "train", 50, corpus_seed, cfg, allow_fewer=True)]
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(text, trainers.BpeTrainer(vocab_size=300, special_tokens=["<|endoftext|>"],
                                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<|endoftext|>", pad_token="<|endoftext|>")
    model = GPT2LMHeadModel(GPT2Config(vocab_size=len(tok), n_embd=32, n_layer=2, n_head=2, n_positions=256,
                                       eos_token_id=tok.eos_token_id, bos_token_id=tok.eos_token_id))
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def test_gpt2_with_its_own_tokenizer_post_trains_and_evaluates(tmp_path):
    model_dir = save_tiny_gpt2(tmp_path / "gpt2-tiny")
    raw = yaml.safe_load((Path(__file__).parent.parent / "params" / "smoke.yaml").read_text())
    raw.update(run_root=str(tmp_path / "runs"), pretrain=None)
    raw["model"] = {"name_or_path": str(model_dir)}
    raw["posttrain"].update(n_checkpoints=2, n_train_prompts=8)
    path = tmp_path / "gpt2.yaml"
    path.write_text(yaml.safe_dump(raw))
    P = config.load_params(path)
    session.init(P)
    assert train.ensure_base(P) == model_dir, "an HF base is used where it lies, not copied or retrained"
    finals = train.ensure_posttrained(P)
    assert set(finals) == {(m, P.seed) for m in P.posttrain.methods}
    for m in P.posttrain.methods:
        log = posttrain.training_log(RunDir(P).method(m, P.seed), 2)
        assert all("curve_accuracy" in s for s in log)
    scores = train.evaluate_model(P, finals["grpo", P.seed], sampled=False)
    assert set(tasks.FAMILIES) <= set(scores)


def _jsonl(path: Path, rows: list[dict]) -> str:
    import json
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return str(path)


def test_paper_scale_data_path_local_files_only(tmp_path, monkeypatch):
    """The qwen3-4b.yaml shape on CPU: a local model, a local math train file, local benchmark files, no task
    world — post-training uses the math verifier as reward and evaluation covers the files."""
    import random
    model_dir = save_tiny_gpt2(tmp_path / "gpt2-tiny")
    rng = random.Random(0)
    train_rows = [{"problem": f"What is {a}+{b}?", "solution": f"{a}+{b}={a + b}. The answer is \\boxed{{{a + b}}}.",
              "answer": a + b} for a, b in ((rng.randint(1, 50), rng.randint(1, 50)) for _ in range(8))]
    math_eval = [{"problem": f"What is {a}*2?", "answer": str(2 * a)} for a in range(6)]
    mc_eval = [{"question": f"Which is {a}?", "choices": [str(a), str(a + 1), str(a + 2)], "answer": "A"}
               for a in range(6)]
    raw = yaml.safe_load((Path(__file__).parent.parent / "params" / "smoke.yaml").read_text())
    raw.update(run_root=str(tmp_path / "runs"), pretrain=None, model={"name_or_path": str(model_dir)})
    raw["posttrain"].update(methods=["sft", "grpo", "dpo"], n_checkpoints=2, n_train_prompts=8)
    raw["data"] = {"task_world": False, "train_file": _jsonl(tmp_path / "train.jsonl", train_rows), "benchmarks": [
        {"name": "math_x2", "path": _jsonl(tmp_path / "m.jsonl", math_eval), "kind": "math", "role": "in_domain"},
        {"name": "mc_same", "path": _jsonl(tmp_path / "c.jsonl", mc_eval), "kind": "multiple_choice",
         "role": "ood_select"}]}
    path = tmp_path / "paper_shape.yaml"
    path.write_text(yaml.safe_dump(raw))
    P = config.load_params(path)
    session.init(P)
    seen = []
    real_accuracy = posttrain.generation.accuracy
    def spy(*a, **k):
        seen.append(a[5] if len(a) > 5 else k.get("verify"))
        return real_accuracy(*a, **k)
    monkeypatch.setattr(posttrain.generation, "accuracy", spy)
    finals = train.ensure_posttrained(P)
    four = tasks.Example("math_x2", "What is 2*2?", "", "4")
    assert seen and all(v is not None and v("so \\boxed{4}", four) for v in seen), \
        "training curves on a math file must be scored with the math verifier"
    rows = train.method_rows(P, "grpo", train.start_dir(P, "grpo", P.seed), P.seed)
    assert rows[0]["kind"] == "math" and rows[0]["answer"] == str(train_rows[0]["answer"])
    assert posttrain.answer_reward([train_rows[0]["solution"]], [rows[0]["answer"]], ["math"]) == [1.0]
    scores = train.evaluate_model(P, finals["sft", P.seed], sampled=True)
    assert {"math_x2", "mc_same", "in_domain_curve", "in_domain_pass@4"} <= set(scores)
    assert not set(tasks.FAMILIES) & set(scores), "task world was switched off"
