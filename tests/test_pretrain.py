"""Pretraining batches: whole examples packed into rows, a pure function of (seed, step)."""
import torch

from rlgen_utils.models import loading, pretrain
from rlgen_utils.run import config

PCFG = config.PretrainCfg(batch_rows=4, seq_len=64)
TCFG = config.TasksCfg()


def test_batches_are_a_pure_function_of_seed_and_step():
    tok = loading.char_tokenizer()
    a, _ = pretrain.packed_batch(5, 0, PCFG, TCFG, tok)
    b, _ = pretrain.packed_batch(5, 0, PCFG, TCFG, tok)
    c, _ = pretrain.packed_batch(6, 0, PCFG, TCFG, tok)
    assert torch.equal(a, b), "resume needs step s to rebuild exactly the same batch"
    assert not torch.equal(a, c)


def test_rows_hold_whole_examples_and_padding_only_at_the_end():
    tok = loading.char_tokenizer()
    ids, mask = pretrain.packed_batch(0, 0, PCFG, TCFG, tok)
    for row, m in zip(ids.tolist(), mask.tolist()):
        n = sum(m)
        assert m == [1] * n + [0] * (len(m) - n), "padding must sit at the end of a row"
        real = row[:n]
        assert real[0] == tok.bos_token_id and real[-1] == tok.eos_token_id, "an example was cut mid-way"
        assert real.count(tok.bos_token_id) == real.count(tok.eos_token_id) >= 1


def test_char_tokenizer_roundtrips_every_family_and_adds_bos():
    tok = loading.char_tokenizer()
    text = "23+7=30,30-15=15####15 rev abc: colour of zor? a)red>"
    enc = tok(text)["input_ids"]
    assert enc[0] == tok.bos_token_id and len(enc) == len(text) + 1, "one token per character after <bos>"
    assert tok.decode(enc, skip_special_tokens=True) == text


def test_pretrain_seed_gives_another_base_on_the_same_questions(write_params):
    """``pretrain.seed`` changes the base (its initialisation and corpus order), not the evaluation suite."""
    from rlgen_utils.studies import start, train
    from rlgen_utils.world import suite
    a = start(str(write_params({"pretrain": {"steps": 2}}, name="a.yaml")))
    b = start(str(write_params({"pretrain": {"steps": 2, "seed": 1}}, name="b.yaml")))
    wa = loading.load_model(train.ensure_base(a)).state_dict()
    wb = loading.load_model(train.ensure_base(b)).state_dict()
    assert any(not torch.equal(wa[k], wb[k]) for k in wa)
    qa, qb = suite.world(a).eval_families(), suite.world(b).eval_families()
    assert all([e.prompt for e in qa[f].examples] == [e.prompt for e in qb[f].examples] for f in qa)
