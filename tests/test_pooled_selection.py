"""The pooled selection of notebook 06: a stratified permutation test across families, the sign in every family,
and its simulated power against the real tests (fast approximation vs slow, obviously correct reference)."""
import pytest
import torch

from rlgen_utils.method import latent_edits as le


def _families(counts, shift_FL, seed=0, level_F=None):
    """Per family (n targets, k controls): unit-noise paired differences over L latents, targets shifted by
    ``shift_FL[f]`` and every sample of family f by ``level_F[f]`` (a family-wide offset the test must ignore)."""
    g = torch.Generator().manual_seed(seed)
    L = shift_FL.shape[1]
    out = []
    for f, (n, k) in enumerate(counts):
        lvl = 0.0 if level_F is None else level_F[f]
        out.append((torch.randn(n, L, generator=g) + shift_FL[f] + lvl, torch.randn(k, L, generator=g) + lvl))
    return out


def test_one_family_reduces_to_the_per_family_permutation_test():
    (t, c), = _families([(20, 30)], torch.zeros(1, 6))
    assert torch.equal(le.stratified_pvalues_L([(t, c)], 199, seed=4), le.permutation_pvalues_L(t, c, 199, seed=4))
    assert torch.allclose(le.stratified_contrast_L([(t, c)]), le.contrast_L(t, c))


def test_pooling_keeps_a_shared_latent_each_family_alone_misses_and_rejects_a_drifting_one():
    counts = [(25, 100)] * 6
    L = 40
    shift = torch.zeros(6, L)
    shift[:, 0] = 0.6                       # shared: the same modest rise in every family
    shift[:3, 1], shift[3:, 1] = 1.5, -1.5  # drifting: rises in three families, falls in the other three
    shift[0, 2] = 3.0                       # one family only, large
    groups = _families(counts, shift, seed=1, level_F=[0.0, 2.0, -1.0, 0.5, 0.0, 3.0])
    alive = torch.ones(L, dtype=torch.bool)
    p, kept = le.pooled_selection(groups, 1999, 0.05, alive, seed=0)
    assert 0 in kept, f"the shared latent must be kept (p {p[0]:.4f})"
    assert 1 not in kept and 2 not in kept, "a latent whose sign changes between families is not task-agnostic"
    assert kept <= {0, 3, 4} and len(kept) <= 2, f"null latents kept: {sorted(kept)}"
    each = [le.bh_mask(le.permutation_pvalues_L(t, c, 1999, seed=f), 0.05, alive) for f, (t, c) in
            enumerate(groups)]
    assert not all(bool(m[0]) for m in each), "the every-family intersection must lose the shared latent here"


def test_under_the_null_pooled_p_values_are_uniform_whatever_the_family_levels():
    groups = _families([(10, 40), (30, 30), (5, 80)], torch.zeros(3, 400), seed=2, level_F=[0.0, 5.0, -3.0])
    p = le.stratified_pvalues_L(groups, 499, seed=1)
    assert abs(float((p <= 0.1).float().mean()) - 0.1) < 0.05 and abs(float(p.mean()) - 0.5) < 0.06


def _simulated_power(counts, effect, m, q, n_perm, combine, n_rep=60):
    """The slow reference: real activations with one planted latent among m, the real tests and BH."""
    hits = 0
    alive = torch.ones(m, dtype=torch.bool)
    for r in range(n_rep):
        shift = torch.zeros(len(counts), m)
        shift[:, 0] = effect
        groups = _families(counts, shift, seed=100 + r)
        if combine == "pooled":
            kept = le.pooled_selection(groups, n_perm, q, alive, seed=r)[1]
        else:
            sets = [set(torch.nonzero(le.bh_mask(le.permutation_pvalues_L(t, c, n_perm, seed=r), q, alive)
                                      & (le.contrast_L(t, c) > 0)).flatten().tolist()) for t, c in groups]
            kept = le.task_agnostic(dict(enumerate(sets)), combine)
        hits += 0 in kept
    return hits / n_rep


@pytest.mark.parametrize("combine,effect", [("pooled", 0.45), ("intersection", 0.9)])
def test_simulated_power_matches_the_real_tests(combine, effect):
    counts, m, q, n_perm = [(20, 60), (30, 60), (15, 60)], 20, 0.05, 799
    fast = le.selection_power(counts, effect, m, q, n_perm, combine, n_sim=4000, seed=0)
    slow = _simulated_power(counts, effect, m, q, n_perm, combine)
    assert 0.15 < fast < 0.95, f"pick an effect with power in the middle (got {fast:.2f})"
    assert abs(fast - slow) < 0.2, f"fast {fast:.2f}, reference {slow:.2f}"


def test_power_grows_with_samples_and_is_zero_when_the_p_floor_cannot_pass_bh():
    low = le.selection_power([(10, 50)] * 3, 0.5, 1000, 0.05, 39999)
    high = le.selection_power([(100, 100)] * 3, 0.5, 1000, 0.05, 39999)
    assert low < 0.2 < 0.8 < high
    assert le.selection_power([(500, 500)] * 3, 2.0, 1000, 0.05, 999) == 0.0, "1/(n_perm+1) > q/m: nothing passes"
    assert le.selection_power([(100, 100)] * 3, 0.5, 1000, 0.05, 39999, "intersection") < high
    assert le.selection_power([], 0.5, 1000, 0.05, 39999) == 0.0
