"""The norm-matched random update moves each tensor exactly as far as post-training did, in a random direction."""
import pytest
import torch

from rlgen_utils.method.perturb import fixed_direction_path, norm_matched_noise, norm_matched_walk


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


def _trajectory(n=4, seed=0):
    """A base and ``n`` checkpoints that drift consistently (each adds a little to the previous update)."""
    g = torch.Generator().manual_seed(seed)
    base = {"w": torch.randn(16, 8, generator=g), "v": torch.randn(32, generator=g), "frozen": torch.randn(4, generator=g)}
    step = {k: 0.05 * torch.randn(v.shape, generator=g) for k, v in base.items() if k != "frozen"}
    ckpts, cur = [], {k: v.clone() for k, v in base.items()}
    for i in range(n):
        for k in step:
            cur[k] = cur[k] + step[k] * (1.0 / (i + 1)) + 0.01 * torch.randn(cur[k].shape, generator=g)
        ckpts.append({k: v.clone() for k, v in cur.items()})
    return base, ckpts


def test_the_random_walk_keeps_every_distance_and_every_step_of_the_real_trajectory():
    base, ckpts = _trajectory()
    walk = list(norm_matched_walk(base, ckpts, seed=3))
    for k, name in [(k, n) for k in range(len(ckpts)) for n in ("w", "v")]:
        real, null = ckpts[k][name].double() - base[name].double(), walk[k][name].double() - base[name].double()
        assert null.norm() == pytest.approx(real.norm().item(), rel=1e-4), "distance from the base must match"
        if k:
            real_prev = ckpts[k - 1][name].double() - base[name].double()
            null_prev = walk[k - 1][name].double() - base[name].double()
            assert (null - null_prev).norm() == pytest.approx((real - real_prev).norm().item(), rel=1e-3), (
                "the step since the previous checkpoint must match (the walk keeps the trajectory's geometry)")
        cos = torch.nn.functional.cosine_similarity(null.flatten(), real.flatten(), 0)
        assert abs(cos) < 0.5, "the walk must not follow the real update's direction"
    assert all(torch.equal(w["frozen"], base["frozen"]) for w in walk), "an untouched tensor stays as it was"


def test_a_walk_of_one_checkpoint_is_the_single_model_null_and_walks_are_seeded():
    base, ckpts = _trajectory(n=2)
    first = next(norm_matched_walk(base, ckpts, seed=5))
    assert all(torch.equal(first[k], v) for k, v in norm_matched_noise(base, ckpts[0], seed=5).items())
    again = list(norm_matched_walk(base, ckpts, seed=5))
    other = list(norm_matched_walk(base, ckpts, seed=6))
    assert torch.equal(again[1]["w"], list(norm_matched_walk(base, ckpts, seed=5))[1]["w"]), "same seed, same walk"
    assert not torch.equal(again[1]["w"], other[1]["w"]), "the seed must change the walk"


def test_the_fixed_direction_null_moves_straight_to_the_final_checkpoint_as_far_as_each_checkpoint():
    base, ckpts = _trajectory()
    line = list(fixed_direction_path(base, ckpts, ckpts[-1]))
    final = {n: ckpts[-1][n].double() - base[n].double() for n in ("w", "v")}
    for k, name in [(k, n) for k in range(len(ckpts)) for n in ("w", "v")]:
        real, null = ckpts[k][name].double() - base[name].double(), line[k][name].double() - base[name].double()
        assert null.norm() == pytest.approx(real.norm().item(), rel=1e-5), "distance from the base must match"
        cos = torch.nn.functional.cosine_similarity(null.flatten(), final[name].flatten(), 0)
        assert cos == pytest.approx(1.0, abs=1e-9), "every slot lies on the line from the base to the final model"
    assert all(torch.allclose(line[-1][n], ckpts[-1][n], atol=1e-6) for n in ("w", "v")), "its end is the final model"
    assert all(torch.equal(x["frozen"], base["frozen"]) for x in line), "an untouched tensor stays as it was"
    mid = ckpts[1]["w"].double() - base["w"].double()
    assert torch.nn.functional.cosine_similarity(mid.flatten(), final["w"].flatten(), 0) < 0.999, (
        "the real trajectory turns (else the test could not tell the line from it)")
