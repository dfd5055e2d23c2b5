"""Detection power: planted tuned-only features go into the tuned copy only, and "found" means found *and* called
tuned-only by the notebook's rule."""
import torch

from rlgen_utils.method import detection
from rlgen_utils.method.crosscoder import Crosscoder, CrosscoderConfig, train


def test_planting_touches_only_the_tuned_copy_and_only_where_the_feature_is_on():
    p = detection.Planting.random([0.1, 0.3], per_rate=2, d_model=16, coef=2.0, seed=0)
    x = torch.randn(4000, 16)
    x_BMD, on_BF = detection.plant_BMD(x, p, torch.Generator().manual_seed(0))
    assert torch.equal(x_BMD[:, 0], x), "the base slot must be the untouched activations"
    delta = x_BMD[:, 1] - x
    assert torch.allclose(delta[~on_BF.any(-1)], torch.zeros(1)), "a token with no planted feature changed"
    rates = on_BF.float().mean(0)
    assert torch.allclose(rates, p.rate_F.float(), atol=0.03), f"planting rates {rates} for {p.rate_F}"
    # on a token with only feature f on, the change is along u_f with a coefficient in coef · [0.5, 1.5]
    only0 = on_BF[:, 0] & (on_BF.sum(-1) == 1)
    c = delta[only0] @ p.dirs_FD[0]
    assert ((c >= 1.0) & (c <= 3.0)).all() and torch.allclose(delta[only0], c[:, None] * p.dirs_FD[0], atol=1e-5)


def test_recovered_needs_direction_tuned_only_norm_and_an_alive_latent():
    p = detection.Planting.random([0.01], per_rate=4, d_model=8, coef=1.0, seed=1)
    W = torch.zeros(4, 2, 8)
    W[0, 1] = p.dirs_FD[0]                           # tuned-only, along u_0: found
    W[1, 0], W[1, 1] = p.dirs_FD[1], p.dirs_FD[1]    # shared (NRN 0.5): the likely mistake is to count it
    W[2, 1] = p.dirs_FD[2]                           # tuned-only but dead
    W[3, 1] = torch.nn.functional.normalize(p.dirs_FD[3] + torch.randn(8), dim=-1)  # tuned-only, wrong direction
    alive = torch.tensor([True, True, False, True])
    found = detection.recovered_F(W, alive, p)
    assert found.tolist() == [True, False, False, False]
    assert detection.recall_by_rate(found, p) == {0.01: (1, 4)}


def test_a_frequent_planted_feature_is_found_and_an_identical_pair_plants_nothing_by_itself():
    d = 32
    g = torch.Generator().manual_seed(0)
    shared = torch.nn.functional.normalize(torch.randn(96, d, generator=g), dim=-1)

    def base():
        while True:
            yield ((torch.rand(512, 96, generator=g) < 0.05).float() * (0.5 + torch.rand(512, 96, generator=g))) @ shared
    p = detection.Planting.random([0.05], per_rate=6, d_model=d, coef=1.0, seed=2)
    cc = Crosscoder(CrosscoderConfig(n_models=2, d_model=d, n_latents=192, k=8, dead_after_tokens=20_000, seed=0))
    train(cc, detection.planted_batches(base(), p, seed=0), total_steps=800, lr=3e-3, show_progress=False,
          resample_every=50)
    alive = torch.ones(192, dtype=torch.bool)
    assert detection.recovered_F(cc.W_dec_LMD, alive, p).float().mean() >= 0.8, "a 5 % planted feature was missed"
    decoy = detection.Planting.random([0.05], per_rate=6, d_model=d, coef=1.0, seed=3)   # never planted
    assert not detection.recovered_F(cc.W_dec_LMD, alive, decoy).any(), "found a feature that was never planted"
