"""The crosscoder recovers planted shared and model-specific features, in both sparsity modes."""
import pytest
import torch

from rlgen_utils.method import latents
from rlgen_utils.method.crosscoder import Crosscoder, CrosscoderConfig, fvu_M, train

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
