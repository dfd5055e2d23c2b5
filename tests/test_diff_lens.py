"""The activation difference lens recovers a planted shift, reads it through the unembedding, and steers with it."""
import copy

import torch

from rlgen_utils.method import activations, diff_lens
from rlgen_utils.models import loading
from rlgen_utils.run import config

LAYER = 1
TEXTS = ["sort 9 4 7:", "colour of zor?", "rev abcde:", "time 3:05+20:", "cost 1.25+0.50:", "max of 3 8 1?"] * 3


def _planted():
    """The base, and a copy whose layer-1 MLP writes ``v`` (the unembedding row of the token with the longest
    row, divided by the final norm's weights) at every position: the residual after layer 1 is the base's + v."""
    tok = loading.char_tokenizer()
    base = loading.organism_model(config.OrganismCfg(d_model=32, n_layers=3, n_heads=2, d_ff=64), tok, 0).eval()
    tuned = copy.deepcopy(base)
    W_U_VD = base.get_output_embeddings().weight.detach()
    j = int(W_U_VD.norm(dim=-1).argmax())
    v_D = 3.0 * W_U_VD[j] / base.model.norm.weight.detach()
    old = tuned.model.layers[LAYER].mlp.down_proj
    new = torch.nn.Linear(old.in_features, old.out_features, bias=True)
    with torch.no_grad():
        new.weight.copy_(old.weight)
        new.bias.copy_(v_D)
    tuned.model.layers[LAYER].mlp.down_proj = new
    return tok, base, tuned, v_D, j


def test_the_lens_recovers_a_planted_shift_and_reads_it_through_the_unembedding():
    tok, base, tuned, v_D, j = _planted()
    path = activations.decoder_layers_path(base)
    a = diff_lens.first_positions(activations.wrap(base, tok), tok, TEXTS, path, LAYER, k=5)
    b = diff_lens.first_positions(activations.wrap(tuned, tok), tok, TEXTS, path, LAYER, k=5)
    diff_KD = diff_lens.mean_difference_KD(a, b)
    assert diff_KD.shape == (5, 32)
    assert torch.allclose(diff_KD, v_D.expand(5, -1), atol=1e-4), "the difference at the planted layer is v"
    assert (diff_lens.relative_norm_K(diff_KD, a) > 0).all()
    logits_KV = diff_lens.logit_lens_KV(base, diff_KD)
    assert (logits_KV.argmax(-1) == j).all(), "the lens promotes the token whose unembedding was planted"
    assert diff_lens.top_tokens(logits_KV[0], tok, 3)[0][0] == tok.decode([j])
    # a later layer reads the shift through the blocks after it: no longer exactly v, still aligned with it
    c = diff_lens.first_positions(activations.wrap(base, tok), tok, TEXTS, path, 2, k=5)
    d = diff_lens.first_positions(activations.wrap(tuned, tok), tok, TEXTS, path, 2, k=5)
    later = diff_lens.mean_difference_KD(c, d).mean(0)
    assert torch.cosine_similarity(later, v_D, dim=0) > 0.5


def test_steering_the_base_with_the_difference_gives_the_tuned_models_answers():
    tok, base, tuned, v_D, _ = _planted()
    path = activations.decoder_layers_path(base)
    prompts = ["sort 9 4 7:", "rev abc:"]
    steered = diff_lens.steer(activations.wrap(base, tok), tok, prompts, v_D, path, LAYER, max_new_tokens=8)
    plain = diff_lens.steer(activations.wrap(tuned, tok), tok, prompts, torch.zeros_like(v_D), path, LAYER,
                            max_new_tokens=8)
    assert steered == plain
    unsteered = diff_lens.steer(activations.wrap(base, tok), tok, prompts, torch.zeros_like(v_D), path, LAYER,
                                max_new_tokens=8)
    assert unsteered != steered, "the planted shift must change what the model writes for this test to mean anything"
