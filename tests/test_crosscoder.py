"""The crosscoder recovers planted shared and model-specific features, in both sparsity modes."""
import pytest
import torch

from rlgen_utils.method import latents
from rlgen_utils.method.crosscoder import Crosscoder, CrosscoderConfig, batch_top_k, fvu_M, resample_dead, train

D, N_FEAT = 32, 48


def planted(seed: int = 0):
    """Three "models" (base, sft, rl) whose activations are sparse sums of planted directions: 24 shared by all
    (the same feature, each model with its own direction), 8 base-only, 8 sft-only, 8 rl-only."""
    g = torch.Generator().manual_seed(seed)
    dirs_FMD = torch.randn(N_FEAT, 3, D, generator=g)
    dirs_FMD /= dirs_FMD.norm(dim=-1, keepdim=True)
    owner = torch.tensor([-1] * 24 + [0] * 8 + [1] * 8 + [2] * 8)
    for f in range(24, N_FEAT):                      # a specific feature is absent from the other models
        mask = torch.zeros(3)
        mask[owner[f]] = 1
        dirs_FMD[f] *= mask[:, None]

    def batches(batch: int = 256):
        while True:
            active_BF = (torch.rand(batch, N_FEAT, generator=g) < 0.06).float()
            coef_BF = active_BF * (0.5 + torch.rand(batch, N_FEAT, generator=g))
            yield torch.einsum("bf,fmd->bmd", coef_BF, dirs_FMD)
    return dirs_FMD, owner, batches()


def _match(cc, dirs_FMD):
    """For each planted feature, the latent whose concatenated decoder is most cosine-similar."""
    W = cc.W_dec_LMD.detach().flatten(1)
    F = dirs_FMD.flatten(1)
    cos_FL = torch.nn.functional.normalize(F, dim=-1) @ torch.nn.functional.normalize(W, dim=-1).T
    return cos_FL.max(-1)


@pytest.mark.parametrize("sparsity", ["batchtopk", "l1"])
def test_recovers_planted_features_and_classifies_them(sparsity):
    dirs, owner, batches = planted()
    cfg = CrosscoderConfig(n_models=3, d_model=D, n_latents=96, sparsity=sparsity, k=4, l1_coeff=0.3,
                           dead_after_tokens=20_000, seed=0)
    cc = Crosscoder(cfg)
    train(cc, batches, total_steps=1500, lr=3e-3, show_progress=False)
    cc.eval()
    cos, idx = _match(cc, dirs)
    assert (cos >= 0.9).float().mean() >= 0.8, f"planted features not recovered: cosines {cos}"
    norms = cc.dec_norms_LM().detach()[idx]
    pred = latents.owner_L(norms, specific_above=0.7)
    correct = (pred == owner).float().mean()
    assert correct >= 0.9, f"MAS ownership right for only {correct:.2f}: predicted {pred.tolist()}"
    nrn = latents.nrn_L(norms, base=0, tuned=2)       # base vs rl: rl-only ≈ 1, base-only ≈ 0, shared ≈ 0.5
    assert (nrn[owner == 2] > 0.9).all() and (nrn[owner == 0] < 0.1).all()
    assert ((nrn[owner == -1] > 0.3) & (nrn[owner == -1] < 0.7)).float().mean() >= 0.9
    x = next(batches)
    assert (fvu_M(x, cc(x)) < 0.2).all()


def test_save_and_reload_gives_identical_outputs(tmp_path):
    _, _, batches = planted()
    cc = Crosscoder(CrosscoderConfig(n_models=3, d_model=D, n_latents=64, k=4))
    train(cc, batches, total_steps=30, show_progress=False)
    cc.eval()
    cc.save(tmp_path / "cc")
    again = Crosscoder.load(tmp_path / "cc")
    x = next(batches)
    assert torch.equal(cc.encode(x), again.encode(x)) and torch.equal(cc(x), again(x))


def test_corrupt_file_is_named(tmp_path):
    cc = Crosscoder(CrosscoderConfig(n_models=2, d_model=8, n_latents=16))
    cc.save(tmp_path / "cc")
    f = tmp_path / "cc" / "crosscoder.safetensors"
    f.write_bytes(f.read_bytes()[:100])
    with pytest.raises(ValueError, match="crosscoder.safetensors: corrupt"):
        Crosscoder.load(tmp_path / "cc")


def test_batchtopk_keeps_k_per_token_on_average_and_ranks_by_decoder_norm():
    cc = Crosscoder(CrosscoderConfig(n_models=2, d_model=8, n_latents=32, k=3)).train()
    x = torch.randn(64, 2, 8)
    f = cc.encode(x)
    assert (f > 0).sum() == 3 * 64
    with torch.no_grad():                       # a latent with 0 decoder norm can never be selected
        cc.W_dec_LMD[5] = 0
    assert (cc.encode(x)[:, 5] == 0).all()


def test_nrn_and_mas_on_hand_made_norms():
    norms = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 2.0]])
    assert latents.nrn_L(norms).tolist() == [0.0, 0.5, 1.0]
    assert latents.nrn_class_L(latents.nrn_L(norms)) == ["base-only", "shared", "tuned-only"]
    mas = latents.mas_LM(torch.tensor([[3.0, 1.0, 0.0], [1.0, 1.0, 1.0]]))
    assert torch.allclose(mas[0], torch.tensor([0.75, 0.25, 0.0]))
    assert latents.owner_L(torch.tensor([[3.0, 1.0, 0.0], [1.0, 1.0, 1.0]]), 0.6).tolist() == [0, -1]


def test_untrained_method_is_named_before_any_compute(write_params):
    from rlgen_utils.run import config
    from rlgen_utils.studies import crosscoder
    P = config.load_params(write_params({"posttrain": {"methods": ["sft", "dpo"]}}))
    with pytest.raises(ValueError, match="method 'grpo' is not in posttrain.methods"):
        crosscoder.ensure_activations(P, ("base", "sft", "grpo"))


@pytest.mark.parametrize("sparsity", ["batchtopk", "l1"])
def test_identical_models_give_no_model_specific_latent(sparsity):
    """The null every ownership count is read against: a crosscoder over two *identical* copies of the same
    activations must call no alive latent model-specific (MAS ≤ 0.7) and put every NRN near 0.5. A crosscoder
    whose initialisation or sparsity penalty manufactures ownership fails here."""
    _, _, batches = planted(seed=3)
    twins = (x[:, :1].expand(-1, 2, -1).contiguous() for x in batches)
    cfg = CrosscoderConfig(n_models=2, d_model=D, n_latents=96, sparsity=sparsity, k=4, l1_coeff=0.3,
                           dead_after_tokens=20_000, seed=0)
    cc = Crosscoder(cfg)
    train(cc, twins, total_steps=400, lr=3e-3, show_progress=False)
    cc.eval()
    alive = cc.tokens_since_fired_L <= cfg.dead_after_tokens
    norms = cc.dec_norms_LM().detach()[alive]
    assert alive.sum() > 10
    assert (latents.owner_L(norms, specific_above=0.7) == -1).all()
    nrn = latents.nrn_L(norms, base=0, tuned=1)
    assert ((nrn - 0.5).abs() < 0.2).all(), f"NRN of identical models strays from 0.5: {nrn.min():.2f}–{nrn.max():.2f}"


def _shared_and_tuned_only(seed: int = 0):
    """Two models whose activations share 24 features *with the same direction* (as a fine-tuned model keeps
    its base's features) and 8 features only the tuned model (slot 1) has."""
    g = torch.Generator().manual_seed(seed)
    dirs_FD = torch.randn(32, D, generator=g)
    dirs_FD /= dirs_FD.norm(dim=-1, keepdim=True)
    present_FM = torch.ones(32, 2)
    present_FM[24:, 0] = 0                                   # features 24..31: tuned model only

    def batches(batch: int = 256):
        while True:
            coef_BF = (torch.rand(batch, 32, generator=g) < 0.08).float() * (0.5 + torch.rand(batch, 32, generator=g))
            yield torch.einsum("bf,fm,fd->bmd", coef_BF, present_FM, dirs_FD)
    return dirs_FD, batches()


def test_latent_scaling_keeps_planted_tuned_only_latents_and_rejects_shared_ones():
    """β of the base over β of the tuned model: ≈ 0 for a feature only the tuned model has, ≈ 1 for a shared one —
    read from the activations, not from the decoder norms (which an L1 penalty can distort)."""
    from rlgen_utils.method.latent_scaling import betas_LM
    dirs_FD, batches = _shared_and_tuned_only()
    cfg = CrosscoderConfig(n_models=2, d_model=D, n_latents=64, sparsity="batchtopk", k=4, dead_after_tokens=20_000)
    cc = Crosscoder(cfg)
    train(cc, batches, total_steps=1000, lr=3e-3, show_progress=False)
    cc.eval()
    scaling = betas_LM(cc, (next(batches) for _ in range(20)), tuned=1)
    W = torch.nn.functional.normalize(cc.W_dec_LMD.detach()[:, 1], dim=-1)
    cos_FL = dirs_FD @ W.T
    best, found = cos_FL.argmax(-1), cos_FL.max(-1).values > 0.95
    assert found.float().mean() > 0.75 and found[24:].sum() >= 6, "planted features not recovered"
    tuned_only, shared = found & (torch.arange(32) >= 24), found & (torch.arange(32) < 24)
    nu_r, nu_e = scaling.nu_L(0, 1, "recon")[best], scaling.nu_L(0, 1, "error")[best]
    assert (nu_r[tuned_only] < 0.2).all() and (nu_e[tuned_only] < 0.2).all(), (nu_r, nu_e)
    assert ((nu_r[shared] - 1).abs() < 0.3).float().mean() > 0.9, nu_r[shared]
    specific = scaling.specific_L(0, 1)[best]
    assert specific[tuned_only].all() and not specific[shared].any()


def test_latent_scaling_matches_a_direct_least_squares_fit():
    """The streamed closed form equals lstsq on the stacked tokens (the slow, obviously-correct reference)."""
    from rlgen_utils.method.latent_scaling import betas_LM
    _, batches = _shared_and_tuned_only(seed=2)
    cc = Crosscoder(CrosscoderConfig(n_models=2, d_model=D, n_latents=16, k=4))
    train(cc, batches, total_steps=50, lr=3e-3, show_progress=False)
    cc.eval()
    xs = [next(batches) for _ in range(3)]
    scaling = betas_LM(cc, iter(xs), tuned=1)
    x = torch.cat(xs)
    f = cc.encode(x, use_threshold=True).detach()
    k = int(f.sum(0).argmax())
    d = cc.W_dec_LMD.detach()[k, 1]
    for m in range(2):
        A = (f[:, k:k + 1, None] * d[None, None, :]).reshape(-1, 1)       # [B·D, 1]
        beta = torch.linalg.lstsq(A.double(), x[:, m].reshape(-1, 1).double()).solution.item()
        assert abs(scaling.beta_recon_LM[k, m].item() - beta) < 1e-4 * max(1.0, abs(beta))


@pytest.mark.parametrize("sparsity", ["batchtopk", "l1"])
def test_sae_lens_loads_an_exported_slice_and_encodes_like_rlgen(tmp_path, sparsity):
    """A model's slice, written for sae-lens and read back by sae-lens's own loader, gives the same latents as
    the crosscoder read with that model's encoder block alone, on raw (unnormalised) activations, and decodes
    to that model's reconstruction."""
    from sae_lens import SAE

    from rlgen_utils.method.sae_export import export_sae_lens
    _, _, batches = planted(seed=4)
    cc = Crosscoder(CrosscoderConfig(n_models=3, d_model=D, n_latents=64, sparsity=sparsity, k=4, l1_coeff=0.3))
    train(cc, batches, total_steps=200, lr=3e-3, show_progress=False)
    cc.eval()
    m, scale = 2, 1.7
    sae = SAE.load_from_disk(export_sae_lens(cc, m, scale, tmp_path / "slice", hook_name="model.layers.1"))
    h = next(batches)[:, m] / scale                              # the model's raw activations
    with torch.no_grad():
        ours = cc.encode_one(h * scale, m)
        theirs = sae.encode(h)
        torch.testing.assert_close(theirs, ours, rtol=1e-5, atol=1e-5)
        assert (ours > 0).any() and (ours == 0).any()
        recon = (ours @ cc.W_dec_LMD[:, m] + cc.b_dec_MD[m]) / scale
        torch.testing.assert_close(sae.decode(theirs), recon, rtol=1e-5, atol=1e-5)
    assert sae.cfg.metadata.hook_name == "model.layers.1"


def _many_features(seed: int = 0, draws: int = 1, n_feat: int = 768, d: int = 48):
    """Two models' activations as sparse sums of ``n_feat`` shared directions (more features than latents) with
    Zipf-like firing rates (0.2 % – 6 % of tokens): every latent of a smaller dictionary has something to encode."""
    g = torch.Generator().manual_seed(seed)
    dirs_FMD = torch.nn.functional.normalize(torch.randn(n_feat, 2, d, generator=g), dim=-1)
    rate_F = 0.06 / (1 + torch.arange(n_feat) / 24.0)
    g = torch.Generator().manual_seed(draws)

    def batches(batch: int = 512):
        while True:
            coef_BF = (torch.rand(batch, n_feat, generator=g) < rate_F).float() * (0.5 + torch.rand(batch, n_feat, generator=g))
            yield torch.einsum("bf,fmd->bmd", coef_BF, dirs_FMD)
    return batches


def _held_out_alive_and_fvu(cc, batches, n: int = 8):
    cc.eval()
    fired, fvu = torch.zeros(cc.cfg.n_latents, dtype=torch.bool), []
    with torch.no_grad():
        for _ in range(n):
            x = next(batches)
            f = cc.encode(x)
            fired |= (f > 0).any(0)
            fvu.append(fvu_M(x, cc.decode(f)))
    return fired.float().mean().item(), torch.stack(fvu).mean().item()


def test_resampling_revives_a_half_dead_dictionary_on_planted_data():
    """The likely mistake: latents that stop firing (under BatchTopK, never beating the batch's k-th score) are
    detection power lost without a sign. Here half the dictionary starts dead (encoder bias −1000: neither the
    reconstruction nor the auxiliary loss reaches it); resampling dead latents onto badly reconstructed tokens must
    leave ≥ 90 % of latents firing on tokens not seen in training, and reconstruct them better."""
    res = {}
    for every in (0, 50):
        cfg = CrosscoderConfig(n_models=2, d_model=48, n_latents=256, k=8, dead_after_tokens=25_000, seed=0)
        cc = Crosscoder(cfg)
        with torch.no_grad():
            cc.b_enc_L[::2] = -1000.0
        train(cc, _many_features(draws=1)(), total_steps=800, lr=3e-3, show_progress=False, resample_every=every)
        res[every] = _held_out_alive_and_fvu(cc, _many_features(draws=2)())  # same directions, other tokens
    (alive0, fvu0), (alive1, fvu1) = res[0], res[50]
    assert alive0 <= 0.55, f"the planted dead half revived without resampling ({alive0:.0%}): the test shows nothing"
    assert alive1 >= 0.9, f"only {alive1:.0%} of latents fire on held-out tokens with resampling (without: {alive0:.0%})"
    assert fvu1 < fvu0, f"resampling did not use the revived capacity: FVU {fvu1:.4f} vs {fvu0:.4f} without"


def test_resample_dead_touches_only_dead_latents_and_points_them_at_the_worst_tokens():
    """Live latents keep their weights; each dead one gets a decoder direction equal to some token's residual
    error (cosine 1) and fires on that token."""
    cc = Crosscoder(CrosscoderConfig(n_models=2, d_model=48, n_latents=64, k=4, dead_after_tokens=10, seed=0))
    x = next(_many_features(draws=3)())
    cc.tokens_since_fired_L[:16] = 100          # 16 dead
    live_before = cc.W_dec_LMD[16:].detach().clone()
    with torch.no_grad():
        err = (x - cc.eval().decode(cc.encode(x, use_threshold=False))).flatten(1)   # before resampling
    opt = torch.optim.Adam(cc.train().parameters())
    n = resample_dead(cc, x, opt, torch.Generator().manual_seed(0))
    assert n == 16 and torch.equal(cc.W_dec_LMD[16:].detach(), live_before)
    assert (cc.tokens_since_fired_L[:16] == 0).all() and (cc.b_enc_L[:16] == 0).all()
    with torch.no_grad():
        dec = torch.nn.functional.normalize(cc.W_dec_LMD[:16].flatten(1), dim=-1)
        best = (dec @ torch.nn.functional.normalize(err, dim=-1).T).max(-1)
        pre = cc.pre_acts_BL(x)[best.indices, torch.arange(16)]
    assert (best.values > 0.999).all(), "a resampled decoder is not a token's residual error direction"
    assert (pre > 0).all(), "a resampled latent does not fire on the token it was resampled on"


@pytest.mark.parametrize("guess", [0.0, 0.5, 1.2, 100.0])
@pytest.mark.parametrize("positive", [0.9, 0.3, 0.001])
def test_batch_top_k_keeps_exactly_what_a_full_topk_keeps(guess, positive):
    """The pre-filtered top-k must keep the same entries as ``topk`` whatever the guess (below the k-th value,
    above it, above everything) and however few scores are positive (fewer than k: all positives, minimum 0)."""
    g = torch.Generator().manual_seed(0)
    score = torch.rand(4096, generator=g) * (torch.rand(4096, generator=g) < positive)
    k = 256
    idx, kept_min = batch_top_k(score, k, guess)
    top = score.topk(k)
    n_pos = int((score > 0).sum())
    if n_pos >= k:
        assert set(idx.tolist()) == set(top.indices.tolist()), "a top-k entry was lost by the pre-filter"
        assert kept_min == top.values.min()
    else:
        assert set(idx.tolist()) == set((score > 0).nonzero().flatten().tolist()) and kept_min == 0


@pytest.mark.parametrize("n_models, n_latents", [(2, 256), (3, 512), (11, 128)])
@pytest.mark.parametrize("with_dead", [False, True])
def test_sparse_batchtopk_loss_equals_the_dense_reference(n_models, n_latents, with_dead):
    """Training takes the sparse path (gather + ``embedding_bag``); it must give the dense loss's value,
    gradients, running threshold and dead-latent counts. Likely mistakes: a token's latents not contiguous for
    the offsets (scrambled reconstructions), the aux loss decoding live latents, or ReLU dropped on a kept value."""
    import copy
    g = torch.Generator().manual_seed(1)
    cc = Crosscoder(CrosscoderConfig(n_models=n_models, d_model=24, n_latents=n_latents, k=8,
                                     dead_after_tokens=300)).train()
    x = torch.randn(256, n_models, 24, generator=g)
    if with_dead:                                   # a third of the dictionary silent but with positive pre-acts
        cc.tokens_since_fired_L[: n_latents // 3] = 1000
        with torch.no_grad():
            cc.W_dec_LMD[: n_latents // 3] *= 1e-3
    dense, sparse = copy.deepcopy(cc), copy.deepcopy(cc)
    for step in range(3):                           # the second step reads the first's threshold as its guess
        l_d, s_d = dense.loss_dense(x, 0.0)
        l_s, s_s = sparse.loss_sparse(x)
        for m in (dense, sparse):
            m.zero_grad()
        l_d.backward()
        l_s.backward()
        assert torch.allclose(l_d, l_s, rtol=1e-5), f"step {step}: loss {l_s.item()} vs dense {l_d.item()}"
        assert s_s.keys() == s_d.keys() and ("aux" in s_s or not with_dead), "aux loss missing or extra"
        assert s_s["l0"] == pytest.approx(s_d["l0"]) and s_s["aux" if with_dead else "mse"] == pytest.approx(
            s_d["aux" if with_dead else "mse"], rel=1e-5)
        for (name, p_d), p_s in zip(dense.named_parameters(), sparse.parameters()):
            assert torch.allclose(p_d.grad, p_s.grad, rtol=1e-4, atol=1e-6), f"step {step}: gradient of {name}"
        assert torch.equal(dense.threshold, sparse.threshold)
        assert torch.equal(dense.tokens_since_fired_L, sparse.tokens_since_fired_L)
