"""How far a model moved: KL against a direct sum over the vocabulary, and changed-parameter fractions."""
import math

import pytest
import torch

from rlgen_utils.method import divergence
from rlgen_utils.models import loading
from rlgen_utils.run import config


def _tiny(seed):
    tok = loading.char_tokenizer()
    return loading.organism_model(config.OrganismCfg(d_model=32, n_layers=2, n_heads=2, d_ff=64), tok, seed), tok


PROMPTS, COMPLETIONS = ["12+3=", "rev abc:", "max 4 9:"], ["12+3=15####15", "cba", "9"]


def _direct_kl(base, model, tok, prompt, completion):
    """Slow reference: one forward per prefix, KL summed entry by entry in Python floats."""
    head = tok(prompt)["input_ids"]
    tail = tok(completion, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    total = 0.0
    for t in range(len(tail)):
        ids = torch.tensor([head + tail[:t]])
        with torch.no_grad():
            p = base(input_ids=ids).logits[0, -1].double().softmax(-1).tolist()
            q = model(input_ids=ids).logits[0, -1].double().softmax(-1).tolist()
        total += sum(pv * (math.log(pv) - math.log(qv)) for pv, qv in zip(p, q) if pv > 0)
    return total / len(tail)


def test_completion_kl_equals_a_direct_sum_over_the_vocabulary():
    (base, tok), (other, _) = _tiny(0), _tiny(1)
    fast = divergence.completion_kl(base, other, tok, PROMPTS, COMPLETIONS, batch_size=2)
    slow = [_direct_kl(base, other, tok, p, c) for p, c in zip(PROMPTS, COMPLETIONS)]
    assert fast == pytest.approx(slow, rel=1e-5), "padding, the target mask or the KL direction is off"
    assert all(k > 0 for k in fast)


def test_kl_direction_is_base_to_model():
    """The likely mistake: KL(π ‖ π_base) instead of KL(π_base ‖ π) — they differ for different models."""
    a, b = torch.randn(1, 3, 7), torch.randn(1, 3, 7)
    fwd, rev = divergence.token_kl_BS(a, b), divergence.token_kl_BS(b, a)
    ref = (a.double().softmax(-1) * (a.double().log_softmax(-1) - b.double().log_softmax(-1))).sum(-1)
    assert torch.allclose(fwd, ref) and not torch.allclose(fwd, rev)


def test_a_model_has_zero_kl_and_no_changed_parameters_against_itself():
    base, tok = _tiny(0)
    assert divergence.completion_kl(base, base, tok, PROMPTS, COMPLETIONS) == pytest.approx([0.0] * 3, abs=1e-12)
    assert divergence.changed_fraction(base, base) == {1e-6: 0.0, 1e-5: 0.0, 1e-4: 0.0}


def test_changed_fraction_counts_entries_above_each_tolerance():
    base, _ = _tiny(0)
    moved, _ = _tiny(0)
    n = sum(p.numel() for p in base.parameters())
    with torch.no_grad():
        w = dict(moved.named_parameters())["model.layers.0.mlp.up_proj.weight"]
        w.view(-1)[:10] += 5e-5          # above 1e-5, below 1e-4
        w.view(-1)[10:13] += 1e-3        # above every tolerance
    frac = divergence.changed_fraction(base, moved)
    assert frac[1e-5] == pytest.approx(13 / n) and frac[1e-4] == pytest.approx(3 / n)


def test_pack_marks_the_positions_that_predict_the_completion():
    _, tok = _tiny(0)
    ids, attn, target = divergence.pack(tok, ["ab:", "a:"], ["x", "yz"])
    assert attn.sum(1).tolist() == [6, 6]                  # <bos> ab: x <eos> | <bos> a: yz <eos>
    assert target[0].nonzero().flatten().tolist() == [3, 4]  # ':' predicts x, x predicts <eos>
    assert target[1].nonzero().flatten().tolist() == [2, 3, 4]
