"""The norm-matched random update moves each tensor exactly as far as post-training did, in a random direction."""
import pytest
import torch

from rlgen_utils.method.perturb import norm_matched_noise


def test_each_tensor_moves_as_far_as_the_real_update_and_untouched_ones_stay():
    g = torch.Generator().manual_seed(0)
    base = {"a": torch.randn(8, 4, generator=g), "b": torch.randn(5, generator=g), "c": torch.randn(3, generator=g)}
    tuned = {"a": base["a"] + 0.1 * torch.randn(8, 4, generator=g), "b": base["b"] * 2, "c": base["c"].clone()}
    null = norm_matched_noise(base, tuned, seed=1)
    for k in ("a", "b"):
        assert (null[k] - base[k]).norm() == pytest.approx((tuned[k] - base[k]).norm().item(), rel=1e-5)
    assert torch.equal(null["c"], base["c"]), "a tensor post-training left alone must stay exactly as it was"
    cos = torch.nn.functional.cosine_similarity((null["a"] - base["a"]).flatten(), (tuned["a"] - base["a"]).flatten(), 0)
    assert abs(cos) < 0.5, "the null update should not follow the real update's direction"
    assert torch.equal(norm_matched_noise(base, tuned, seed=1)["a"], null["a"]), "same seed, same null"


def test_mismatched_models_are_named():
    with pytest.raises(ValueError, match="x"):
        norm_matched_noise({"x": torch.zeros(2)}, {"x": torch.zeros(3)}, seed=0)
