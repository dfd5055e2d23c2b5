"""Study B's edge attribution: the graph, the fast nnsight path against slow references, and the metrics."""
import numpy as np
import pandas as pd
import pytest
import torch

from rlgen_utils.method import activations, circuit_metrics, edge_attribution
from rlgen_utils.models import loading
from rlgen_utils.run import config
from rlgen_utils.studies import circuit_claims, circuits, circuits_exact, render


def llama(n_layers=2, eps=1e-5):
    tok = loading.char_tokenizer()
    m = loading.organism_model(config.OrganismCfg(n_layers=n_layers, d_model=32, n_heads=2, d_ff=64), tok, 0)
    m.config.rms_norm_eps = eps
    for mod in m.modules():
        if hasattr(mod, "variance_epsilon"):
            mod.variance_epsilon = eps
    return m.double(), tok


def gpt2(n_layers=3):
    from transformers import GPT2Config, GPT2LMHeadModel
    torch.manual_seed(0)
    cfg = GPT2Config(vocab_size=60, n_embd=32, n_layer=n_layers, n_head=2, n_positions=64, resid_pdrop=0.0,
                     embd_pdrop=0.0, attn_pdrop=0.0)
    return GPT2LMHeadModel(cfg).eval().double(), loading.char_tokenizer()


def qwen3(n_layers=2):
    from transformers import Qwen3Config, Qwen3ForCausalLM
    torch.manual_seed(0)
    cfg = Qwen3Config(vocab_size=60, hidden_size=32, intermediate_size=64, num_hidden_layers=n_layers,
                      num_attention_heads=2, num_key_value_heads=1, head_dim=16, max_position_embeddings=64)
    return Qwen3ForCausalLM(cfg).eval().double(), loading.char_tokenizer()


def smollm2_shape(n_layers=2):
    """SmolLM2-135M's config (grouped-query attention: 9 query / 3 key-value heads of 64, d_model 576, tied
    embeddings, its RMSNorm eps and rope) with 2 layers and the character vocabulary, randomly initialised."""
    from transformers import LlamaConfig, LlamaForCausalLM
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=60, hidden_size=576, intermediate_size=1536, num_hidden_layers=n_layers,
                      num_attention_heads=9, num_key_value_heads=3, head_dim=64, tie_word_embeddings=True,
                      rms_norm_eps=1e-5, rope_theta=100000.0, max_position_embeddings=64)
    model = LlamaForCausalLM(cfg).eval().double()
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    return model, loading.char_tokenizer()


def batch(tok):
    prompts = [tok("12+3=").input_ids, tok("4+45=").input_ids]
    answers = [tok("15 #### 15", add_special_tokens=False).input_ids, tok("49", add_special_tokens=False).input_ids]
    return edge_attribution.make_batch(tok, prompts, answers, tok.pad_token_id)


def corrupted(tok):
    prompts = [tok("93+1=").input_ids, tok("7+11=").input_ids]
    answers = [tok("15 #### 15", add_special_tokens=False).input_ids, tok("49", add_special_tokens=False).input_ids]
    return edge_attribution.make_batch(tok, prompts, answers, tok.pad_token_id)


@pytest.mark.parametrize("make,n_layers,n_edges", [(llama, 2, 15), (gpt2, 3, 28)])
def test_graph_has_every_earlier_output_to_every_later_input(make, n_layers, n_edges):
    model, tok = make(n_layers)
    g = edge_attribution.graph_of(model)
    assert g.n_edges == n_edges == int(g.mask_RS.sum()) == len(set(g.edge_names()))
    assert g.senders[0] == "emb" and g.receivers[-1] == "logits"
    assert "m0->a0" not in g.edge_names(), "a block's output cannot feed an earlier block's input"
    W = edge_attribution.zero_ablation_scores(activations.wrap(model, tok), batch(tok))
    assert W.shape == (2, 2 * n_layers + 1, 2 * n_layers + 1)
    assert (W[:, ~g.mask_RS] == 0).all(), "scores off the graph (later sender → earlier receiver) must be zero"


@pytest.mark.parametrize("make", [llama, gpt2, qwen3, smollm2_shape])
def test_receiver_inputs_are_sums_of_earlier_sender_outputs(make):
    model, tok = make()
    assert edge_attribution.check_decomposition(activations.wrap(model, tok), batch(tok), atol=1e-9) < 1e-9


def test_adapter_names_the_blocks_of_both_families():
    assert edge_attribution.adapter_for(llama()[0]) == edge_attribution.Adapter("model.layers", "input_layernorm", "self_attn",
                                                                "post_attention_layernorm", "mlp", "model.norm")
    assert edge_attribution.adapter_for(gpt2()[0]) == edge_attribution.Adapter("transformer.h", "ln_1", "attn", "ln_2", "mlp",
                                                               "transformer.ln_f")


def test_scores_into_logits_equal_a_hand_computed_gradient():
    """On a 1-layer model, score(s → logits) = −⟨∂L/∂u, O_s⟩ with L written out by hand:
    u = Σ senders, logits = lm_head(RMSNorm(u)), L = mean CE of each sample's answer tokens."""
    model, tok = llama(n_layers=1)
    b = batch(tok)
    ad = edge_attribution.adapter_for(model)
    senders = edge_attribution._hook_senders(model, ad, 1, b)
    u = sum(senders).clone().requires_grad_(True)
    norm = model.model.norm
    h = u * torch.rsqrt(u.pow(2).mean(-1, keepdim=True) + norm.variance_epsilon) * norm.weight
    logp = torch.log_softmax(model.lm_head(h), -1)
    loss = 0
    for k in range(2):
        pos = torch.nonzero(b.loss_mask_BT[k]).flatten()
        loss = loss - logp[k, pos, b.input_ids_BT[k, pos + 1]].mean()
    (grad,) = torch.autograd.grad(loss, u)
    by_hand = torch.stack([-(grad * O).sum((1, 2)) for O in senders], 1)  # [B, S]
    fast = edge_attribution.zero_ablation_scores(activations.wrap(model, tok), b)[:, -1]
    torch.testing.assert_close(fast, by_hand, rtol=1e-4, atol=1e-7)  # RMSNorm computes in float32


@pytest.mark.parametrize("make", [llama, gpt2, qwen3, smollm2_shape])
def test_fast_path_equals_the_per_edge_directional_reference(make):
    """The likely mistake: taking ∇ of the residual stream (which also flows past the receiver) instead of the
    receiver's own input. The reference nudges only receiver r's input, one edge at a time."""
    model, tok = make()
    b = batch(tok)
    fast = edge_attribution.zero_ablation_scores(activations.wrap(model, tok), b)
    slow = edge_attribution.directional_scores(model, b, eps=1e-3)
    scale = fast.abs().max()
    assert (fast - slow).abs().max() < 1e-3 * scale, (fast - slow).abs().max() / scale
    mid = slice(1, -1)  # mid-network receivers, where the residual-gradient mistake would show most
    torch.testing.assert_close(fast[:, mid], slow[:, mid], rtol=0, atol=float(1e-3 * scale))


def test_a_padded_sample_scores_as_it_does_alone():
    model, tok = llama()
    b = batch(tok)
    both = edge_attribution.zero_ablation_scores(activations.wrap(model, tok), b)
    alone = edge_attribution.zero_ablation_scores(activations.wrap(model, tok), edge_attribution.make_batch(
        tok, [tok("4+45=").input_ids], [tok("49", add_special_tokens=False).input_ids], tok.pad_token_id))
    torch.testing.assert_close(both[1:], alone, rtol=1e-7, atol=1e-10)


def test_first_order_scores_into_a_receiver_sum_to_zero_under_rmsnorm():
    """The norm trap: RMSNorm makes the loss invariant to the scale of a receiver's input, so
    Σ_s I(s → r) = −⟨∇L, H_r⟩ ≈ 0, while exact ablation of the same edges changes the loss."""
    model, tok = llama(eps=1e-12)
    b = batch(tok)
    fast = edge_attribution.zero_ablation_scores(activations.wrap(model, tok), b)
    exact = edge_attribution.exact_ablation_scores(model, b)
    assert fast.sum(-1).abs().max() < 1e-6 * fast.abs().max()
    assert exact[:, 0, 0].abs().min() > 1e-3, "removing the embedding from layer 0's attention changes the loss"


def test_eap_is_zero_without_corruption_and_ig_with_one_step_is_eap():
    model, tok = llama()
    lm, b, c = activations.wrap(model, tok), batch(tok), corrupted(tok)
    assert edge_attribution.eap_scores(lm, b, b).abs().max() == 0
    assert edge_attribution.eap_ig_scores(lm, b, b, steps=3).abs().max() == 0
    torch.testing.assert_close(edge_attribution.eap_ig_scores(lm, b, c, steps=1), edge_attribution.eap_scores(lm, b, c))
    assert not torch.allclose(edge_attribution.eap_ig_scores(lm, b, c, steps=4), edge_attribution.eap_scores(lm, b, c))


# ------------------------------------------------------------------------------------------------ metrics
def test_metrics_on_hand_made_scores():
    W = np.array([[1.0, -1.0, 1.0, -1.0], [2.0, -2.0, 2.0, -2.0]])
    edges = circuit_metrics.shared_bin_edges(W, n_bins=4)  # 0, .5, 1, 1.5, 2: |W|=1 → bin 2, |W|=2 → bin 3
    m = circuit_metrics.metrics(W, edges)
    assert m["intensity"] == pytest.approx(1.5)
    assert m["entropy"] == pytest.approx(np.log(2)), "two equally full bins"
    assert m["kurtosis"] == pytest.approx(-2.0), "a symmetric two-point distribution has excess kurtosis −2"
    assert m["diversity"] == pytest.approx(0.0), "perfectly correlated samples have no diversity"


def test_kurtosis_and_diversity_of_random_scores():
    rng = np.random.default_rng(0)
    W = rng.standard_normal((50, 4000))
    m = circuit_metrics.metrics(W, circuit_metrics.shared_bin_edges(W, n_bins=50))
    assert abs(m["kurtosis"]) < 0.1, "Gaussian scores have excess kurtosis ≈ 0 (not 3: Fisher, not Pearson)"
    assert m["diversity"] == pytest.approx(1.0, abs=0.02), "independent samples are uncorrelated"
    heavy = rng.standard_t(3, size=(50, 4000))
    assert circuit_metrics.metrics(heavy, circuit_metrics.shared_bin_edges(heavy, n_bins=50))["kurtosis"] > 2


def test_node_entropy_is_log_of_receivers_for_uniform_scores():
    W = np.ones((3, 4, 2))
    np.testing.assert_allclose(circuit_metrics.node_entropy_S(W), np.log(4))
    W[:, 1:, 1] = 0
    assert circuit_metrics.node_entropy_S(W)[1] == 0.0


def test_compare_uses_the_same_bins_and_pairs_samples():
    rng = np.random.default_rng(1)
    before = rng.standard_normal((40, 30))
    rows = {r["metric"]: r for r in circuit_metrics.compare(before, 2 * before, n_bins=20, n_boot=200)}
    assert rows["intensity"]["delta"] == pytest.approx(np.abs(before).mean())
    assert rows["intensity"]["delta_lo"] > 0
    assert rows["entropy"]["delta"] > 0, "doubling spreads |W| over more of the shared bins"
    assert rows["kurtosis"]["delta"] == pytest.approx(0.0, abs=1e-9), "kurtosis is scale-free"
    assert rows["diversity"]["delta"] == pytest.approx(0.0, abs=1e-9)
    loss = rng.uniform(0.5, 2.0, size=40)
    same = {r["metric"]: r for r in circuit_metrics.compare(before, before, n_bins=20, n_boot=200,
                                                            losses=(loss, loss))}
    assert all(same[m]["delta_lo"] == same[m]["delta_hi"] == 0 for m in circuit_metrics.METRICS), \
        "identical models must give a zero-width interval: the bootstrap must resample both with the same indices"


def test_relative_change_is_nan_off_the_graph():
    mask = np.tril(np.ones((3, 3), bool))
    rel = circuit_metrics.relative_change_RS(np.ones((2, 3, 3)), 3 * np.ones((2, 3, 3)), mask)
    assert np.isnan(rel[0, 1]) and rel[2, 0] == pytest.approx(2.0)


# ------------------------------------------------------------------------------------------------ selection
def rows(correct, length):
    return pd.DataFrame({"sample": range(len(correct)), "correct": correct, "length": length})


def test_selection_keeps_both_correct_with_similar_lengths():
    a = rows([1, 1, 1, 0, 1, 1], [10, 10, 30, 10, 10, 4])
    b = rows([1, 1, 1, 1, 0, 1], [10, 16, 10, 10, 10, 10])
    ids = circuits.select(a.astype({"correct": bool}), b.astype({"correct": bool}), n=10, beta=0.5, gamma=1.5,
                               delta=0.5, seed=0)
    # 2: a's answer 30 is > 1.5 × a's mean (12.8); 3/4: one model wrong; 5: a 4 vs b 10, gap 0.6 ≥ δ;
    # 1: gap 6/16 < δ, kept
    assert ids == [0, 1]
    assert circuits.select(a.astype({"correct": bool}), b.astype({"correct": bool}), n=10, beta=0.5,
                                gamma=1.5, delta=0.5, both_correct=False, seed=0) == [0, 1, 3, 4]


def test_selection_subsamples_reproducibly():
    a = rows([True] * 50, [10] * 50)
    one = circuits.select(a, a, n=7, beta=0.5, gamma=1.5, delta=0.5, seed=3)
    assert len(one) == 7 and one == circuits.select(a, a, n=7, beta=0.5, gamma=1.5, delta=0.5, seed=3)


def test_corruption_permutes_the_prompt_and_keeps_bos_first():
    ids = [1, 5, 6, 7, 8, 9]
    c = circuits.corrupt_prompt(ids, seed=0, bos_id=1)
    assert c[0] == 1 and sorted(c) == sorted(ids) and c != ids


def test_truncation_keeps_at_least_one_token():
    assert circuits.t_cut(0.03, 10) == 1 and circuits.t_cut(0.5, 25) == 12


def test_agreement_is_perfect_for_identical_scores():
    g = edge_attribution.Graph(2)
    W = np.random.default_rng(0).standard_normal((4, 5, 5)) * g.mask_RS.numpy()
    a = circuits_exact.agreement(W, W, g)
    assert a["overall_mean_scores"] == pytest.approx(1.0)
    assert a["per_receiver"].spearman.dropna().to_list() == pytest.approx([1.0, 1.0, 1.0])


def test_circuit_pairs_default_to_the_papers_trained_pairs(write_params):
    P = config.load_params(write_params({"posttrain": {"methods": ["sft", "grpo", "sft_grpo"]}}))
    assert P.circuit_pairs == [("sft", "sft_grpo"), ("base", "sft"), ("base", "grpo")]


@pytest.mark.parametrize("circuits_section,key", [
    ({"pairs": [["base", "ppo"]]}, "circuits.pairs.0"),
    ({"main_alpha": 0.2}, "circuits.main_alpha"),
    ({"alphas": [0.0]}, "circuits.alphas"),
    ({"exact_model": "ppo"}, "circuits.exact_model"),
])
def test_bad_circuits_params_name_the_key(write_params, circuits_section, key):
    with pytest.raises(config.ParamsError) as e:
        config.load_params(write_params({"circuits": circuits_section}))
    assert f": {key}: " in str(e.value) and "\n" not in str(e.value)


def _table(rows):
    base = {"score": "zero", "alpha": 0.3, "before": 1.0, "after": 1.0, "before_lo": 0, "before_hi": 0,
            "after_lo": 0, "after_hi": 0, "relative": 0.0, "n": 10}
    out = []
    for pair, after, metric, lo, hi in rows:
        out.append({**base, "pair": pair, "model_before": pair.split(" → ")[0], "model_after": after,
                    "metric": metric, "delta": (lo + hi) / 2, "delta_lo": lo, "delta_hi": hi})
    return pd.DataFrame(out)


UNGATED = {"paper": (True, True, "ungated")}
"""The paper's reading with its power given (the known-edit gate is tested in tests/test_verdicts.py)."""


def test_findings_verdict_follows_the_intervals(write_params):
    P = config.load_params(write_params({"circuits": {"main_alpha": 0.3, "alphas": [0.3]}}))
    up, flat = (0.1, 0.3), (-0.01, 0.02)
    rows = [("sft → sft_grpo", "sft_grpo", m, *up) for m in ("intensity", "entropy", "kurtosis")]
    rows += [("sft → sft_dpo", "sft_dpo", m, *flat) for m in ("intensity", "entropy", "kurtosis")]
    found = circuit_claims.findings(P, _table(rows), UNGATED)
    assert found.value("reproduced") is True
    assert (found.value("rl_pairs_rising"), found.value("rl_pairs"), found.value("dpo_pairs_rising")) == (1, 1, 0)
    text = render.markdown(found)
    assert "**reproduced**" in text and "1/1 online-RL pairs and 0/1 DPO pairs" in text
    rows[3] = ("sft → sft_dpo", "sft_dpo", "intensity", *up)
    rows[4] = ("sft → sft_dpo", "sft_dpo", "entropy", *up)
    found = circuit_claims.findings(P, _table(rows), UNGATED)
    assert found.value("reproduced") is False and "**not reproduced**" in render.markdown(found)
    rob = circuit_claims.robustness(P, _table(rows))
    assert rob.loc["sft → sft_grpo", "intensity"] == "↑1 ↓0 ·0" and rob.loc["sft → sft_grpo", "kurtosis"] == "↑1 ↓0 ·0"


def test_tables_and_findings_survive_pairs_without_questions(write_params):
    P = config.load_params(write_params())
    empty = circuits._metric_table(P, {})
    assert empty.empty and "metric" in empty.columns
    assert "No pair had enough questions" in render.markdown(circuit_claims.findings(P, empty))
    assert list(circuits.headline(P, empty).columns) == list(circuit_metrics.METRICS)


def test_scale_free_entropy_ignores_a_rescaling_the_papers_entropy_does_not():
    """Multiplying the same edge matrices by 1.19 reproduced a README row (intensity and entropy 'up'): the paper's
    shared-bin entropy tracks scale. The scale-free metrics must not move; the paper's must."""
    rng = np.random.default_rng(0)
    W = rng.standard_t(3, size=(40, 45))
    rows = {r["metric"]: r for r in circuit_metrics.compare(W, 1.19 * W, n_bins=100, n_boot=50)}
    assert rows["intensity"]["delta"] > 0 and abs(rows["entropy"]["delta"]) > 0.01
    for m in ("entropy (scale-free)", "kurtosis of |W| (scale-free)", "kurtosis", "diversity"):
        assert abs(rows[m]["delta"]) < 1e-9, m


def test_scale_free_entropy_sees_a_change_of_shape():
    rng = np.random.default_rng(1)
    flat, peaked = rng.uniform(-1, 1, size=(30, 45)), rng.standard_t(2, size=(30, 45))
    rows = {r["metric"]: r for r in circuit_metrics.compare(flat, peaked, n_bins=50, n_boot=50)}
    for m in ("entropy (scale-free)", "kurtosis of |W| (scale-free)"):  # heavier tails: both rise
        assert rows[m]["delta_lo"] > 0, (m, rows[m])


def test_intensity_per_loss_divides_by_the_samples_mean_loss_and_cancels_a_confidence_rescaling():
    """The likely mistake: dividing per sample and averaging ratios, or ignoring the bootstrap's resampled indices."""
    rng = np.random.default_rng(0)
    W = rng.normal(size=(6, 20))
    loss = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    edges = circuit_metrics.shared_bin_edges(W, n_bins=10)
    s = circuit_metrics.SampleStats(W, edges, loss_K=loss)
    idx = np.array([0, 0, 5])
    assert s.metrics(idx)["intensity / loss"] == pytest.approx(np.abs(W[idx]).mean() / loss[idx].mean())
    assert np.isnan(circuit_metrics.SampleStats(W, edges).metrics(idx)["intensity / loss"]), "no losses: NaN"
    # a model whose scores and loss both shrink by the same factor (more confident) has the same intensity / loss
    rows = {r["metric"]: r for r in circuit_metrics.compare(W, 0.5 * W, n_bins=10, n_boot=50,
                                                             losses=(loss, 0.5 * loss))}
    assert rows["intensity"]["delta"] < 0 and rows["intensity / loss"]["delta"] == pytest.approx(0, abs=1e-12)


@pytest.mark.parametrize("with_losses", [True, False])
def test_vectorised_bootstrap_equals_the_per_resample_metrics(with_losses):
    """Fast against slow: every resample's metrics from count vectors equal :meth:`SampleStats.metrics` on the
    drawn indices. Likely mistakes: counting a sample drawn twice as two different samples in the diversity, a
    constant sample's NaN correlation leaking into resamples that never drew it, or dividing by distinct samples
    instead of K."""
    rng = np.random.default_rng(3)
    W = rng.standard_t(3, size=(12, 30)) * rng.uniform(0.5, 2, size=(12, 1))
    W[4] = 0.5   # a constant sample (exactly: its mean is 0.5): its correlations are NaN
    loss = rng.uniform(0.1, 2, size=12) if with_losses else None
    edges = circuit_metrics.shared_bin_edges(W, n_bins=15)
    s = circuit_metrics.SampleStats(W, edges, loss_K=loss)
    idx_XK = rng.integers(0, 12, size=(200, 12))
    idx_XK[0], idx_XK[1] = 3, np.array([4, 4, 4, 4, 4, 4, 1, 1, 1, 1, 1, 1])   # one sample only; one with the NaN
    fast = s.metrics_many(idx_XK)
    with np.errstate(invalid="ignore"):
        slow = [s.metrics(i) for i in idx_XK]
    for m in circuit_metrics.METRICS:
        np.testing.assert_allclose(fast[m], [r[m] for r in slow], rtol=1e-10, atol=1e-12, equal_nan=True, err_msg=m)
    assert np.isnan(fast["diversity"][0]) and np.isnan(fast["diversity"][1])
    undrawn = ~(idx_XK == 4).any(1)
    undrawn[0] = False   # one sample drawn K times: no pair of different samples, NaN by definition
    assert undrawn.sum() > 20 and np.isfinite(fast["diversity"][undrawn]).all(), "an undrawn constant sample leaked NaN"


def test_exact_findings_say_when_no_question_was_ablated():
    model, _ = llama()
    g = edge_attribution.graph_of(model)
    n = 2 * g.n_layers + 1
    with np.errstate(all="ignore"), pytest.warns(RuntimeWarning):
        agree = circuits_exact.agreement(np.zeros((0, n, n)), np.zeros((0, n, n)), g)
    text = render.markdown(circuit_claims.exact_findings(agree))
    assert "not run" in text and "nan" not in text, "no ablated question must not read as a Spearman of nan"


def test_verdict_says_no_rise_only_when_the_interval_excludes_the_minimum_effect(write_params):
    """An interval containing 0 is not evidence of no rise: with a 5 % minimum effect (before = 1.0), a DPO pair
    at [-0.01, 0.02] shows no rise, one at [-0.1, 0.2] is undecided and leaves the claim not testable."""
    P = config.load_params(write_params({"circuits": {"main_alpha": 0.3, "alphas": [0.3], "min_effect": 0.05}}))
    up, tight, wide = (0.1, 0.3), (-0.01, 0.02), (-0.1, 0.2)

    def decision(rl, dpo):
        rows = [("sft → sft_grpo", "sft_grpo", m, *rl) for m in ("intensity", "entropy", "entropy (scale-free)")]
        rows += [("sft → sft_dpo", "sft_dpo", m, *dpo) for m in ("intensity", "entropy", "entropy (scale-free)")]
        return circuit_claims.verdicts(P, _table(rows), UNGATED)[0].decision

    assert decision(up, tight) == "reproduced"
    assert decision(up, wide) == "not testable at this power", "an underpowered DPO pair decides nothing"
    assert decision(wide, tight) == "not testable at this power"
    assert decision(tight, tight) == "not reproduced", "RL's interval excludes the stated rise"
    assert decision(up, up) == "not reproduced", "DPO rises too"
    assert circuit_claims.reading(_table([("a → b", "b", "intensity", 0.001, 0.01)]).set_index("metric"),
                                  ("intensity",), 0.05) == circuit_claims.NO_RISE, "a rise below the minimum is none"
