"""Study A §A4–A5: latent selection, the crosscoder edit, and generation with it through nnsight."""
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from rlgen_utils.method import activations, latent_edits
from rlgen_utils.method.crosscoder import Crosscoder, CrosscoderConfig
from rlgen_utils.models import generation, loading
from rlgen_utils.run import config
from rlgen_utils.studies import interventions

PROMPTS = ["12+3+4=", "5*7-2=", "Is 12 > 7? ", "sort: 9 4 7 =", "3+4=", "81-9+2="]


@pytest.fixture(scope="module")
def world():
    tok = loading.char_tokenizer()
    model = loading.organism_model(config.OrganismCfg(n_layers=2, d_model=32, n_heads=2, d_ff=64), tok, 0)
    with torch.no_grad():  # large random weights: varied greedy text that an edit can change
        gen = torch.Generator().manual_seed(0)
        for p in model.parameters():
            if p.ndim == 2:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.3)
    cc = Crosscoder(CrosscoderConfig(n_models=3, d_model=32, n_latents=64, sparsity="batchtopk", k=8, seed=0))
    with torch.no_grad():
        cc.W_dec_LMD.mul_(20.0)
    cc.threshold.fill_(0.0)
    cc.eval()
    return SimpleNamespace(tok=tok, model=model, lm=activations.wrap(model, tok), cc=cc,
                           path=activations.decoder_layers_path(model), layer=1)


def edit(world, latents, factor, positions="both", m=2, scale=3.0):
    return latent_edits.Edit(world.cc, m, scale, tuple(latents), factor, "replicate", positions)


def test_zeroing_a_latent_removes_exactly_its_decoded_direction(world):
    torch.manual_seed(0)
    h = torch.randn(2, 5, 32)
    e = edit(world, [], 1.0)
    f = latent_edits.latents_of(world.cc, h.reshape(-1, 32) * e.scale, e.m)
    k = int(f.sum(0).argmax())
    assert f[:, k].max() > 0, "pick a latent that fires"
    delta = latent_edits.edit_delta(h, e.with_(latents=(k,), factor=0.0)).reshape(-1, 32)
    expected = -f[:, k:k + 1] * world.cc.W_dec_LMD[k, e.m].detach()[None, :] / e.scale
    torch.testing.assert_close(delta, expected, rtol=1e-4, atol=1e-6)


def test_amplifying_scales_the_decoded_direction_and_factor_one_changes_nothing(world):
    h = torch.randn(1, 4, 32, generator=torch.Generator().manual_seed(1))
    e = edit(world, range(64), 1.0)
    assert torch.equal(latent_edits.apply(h, e), h), "with nothing changed the edit must be exactly zero"
    d2 = latent_edits.edit_delta(h, e.with_(factor=2.0))
    d3 = latent_edits.edit_delta(h, e.with_(factor=3.0))
    torch.testing.assert_close(d3, 2 * d2, rtol=1e-4, atol=1e-6)


def test_identity_routing_leaves_every_generation_token_for_token_unchanged(world):
    plain = generation.generate(world.model, world.tok, PROMPTS, 20)
    through = latent_edits.generate(world.lm, world.tok, PROMPTS, 20, edit(world, range(64), 1.0), world.path,
                                     world.layer, batch_size=4)
    assert through == plain
    assert latent_edits.generate(world.lm, world.tok, PROMPTS, 20, None, world.path, world.layer) == plain


@pytest.mark.parametrize("positions", ["prompt", "generated", "both"])
def test_nnsight_edit_equals_the_same_edit_with_a_torch_hook(world, positions):
    e = edit(world, range(0, 64, 2), 6.0, positions)
    via_nnsight = latent_edits.generate(world.lm, world.tok, PROMPTS, 20, e, world.path, world.layer, batch_size=4)
    via_hook = latent_edits.generate_hooked(world.model, world.tok, PROMPTS, 20, e, world.path, world.layer,
                                             batch_size=4)
    assert via_nnsight == via_hook
    plain = generation.generate(world.model, world.tok, PROMPTS, 20)
    assert via_nnsight != plain, "the edit must change something, or this test compares nothing"


def test_positions_select_generation_steps():
    e = latent_edits.Edit(None, 0, 1.0, (), 0.0)
    assert [e.with_(positions=p).applies(s) for p in ("prompt", "generated", "both") for s in (0, 3)] == \
        [True, False, False, True, True, True]


# ------------------------------------------------------------------------------------------------ selection
def test_family_sets_keep_latents_above_a_fraction_of_the_maximum():
    s = torch.tensor([1.0, 0.25, 0.15, -2.0, 0.5])
    assert latent_edits.family_set(s, 0.2) == {0, 1, 4}
    assert latent_edits.family_set(torch.tensor([-1.0, 0.0]), 0.2) == set(), "no positive score, no set"
    sets, common = latent_edits.select_sets({"a": s, "b": torch.tensor([0.1, 0.0, 0.0, 0.0, 1.0])}, 0.2)
    assert sets["b"] == {4} and common == {4}


def test_score_is_the_mean_difference_rl_minus_base():
    rl, base = torch.tensor([[2.0, 0.0], [4.0, 1.0]]), torch.tensor([[1.0, 1.0], [1.0, 1.0]])
    assert latent_edits.score_L(rl, base).tolist() == [2.0, -0.5]


def test_overlap_is_the_share_of_the_smaller_set():
    m = latent_edits.overlap_matrix({"a": {1, 2, 3, 4}, "b": {3, 4}, "c": set()})
    assert m[0, 1] == m[1, 0] == 1.0 and m[0, 0] == 1.0 and np.isnan(m[0, 2])


def test_random_sets_have_the_size_avoid_the_selected_set_and_repeat():
    a = latent_edits.random_sets(list(range(100)), 5, 10, seed=0, exclude={1, 2, 3})
    assert len(a) == 10 and all(len(s) == 5 and not {1, 2, 3} & set(s) for s in a)
    assert a == latent_edits.random_sets(list(range(100)), 5, 10, seed=0, exclude={1, 2, 3})
    assert len({tuple(s) for s in a}) > 1


def _results(rows):
    return pd.DataFrame(rows, columns=["condition", "set", "sample", "correct"])


def test_random_control_p_value_counts_random_sets_at_least_as_extreme(write_params):
    P = config.load_params(write_params({"interventions": {"n_random": 3, "families": ["cmp"]}}))
    rows = []
    for i in range(4):
        rows += [("plain-rl", "rw:cmp", i, True), ("plain-base", "rw:cmp", i, False),
                 ("disable", "rw:cmp", i, i > 1),            # −50 points
                 ("random0-disable", "rw:cmp", i, True), ("random1-disable", "rw:cmp", i, i > 0),
                 ("random2-disable", "rw:cmp", i, i > 2),    # −75: more extreme than the selected set
                 ("amplify", "rw:cmp", i, True), ("random0-amplify", "rw:cmp", i, False),
                 ("random1-amplify", "rw:cmp", i, False), ("random2-amplify", "rw:cmp", i, i == 0)]
        rows += [(c, "all:cmp", i, True) for c in ("plain-rl", "plain-base", "disable", "amplify")]
    ctl = interventions.random_control(P, _results(rows)).set_index(["intervention", "scope"])
    dis = ctl.loc[("disable", "RL-right/base-wrong")]
    assert dis["selected set"] == -0.5 and dis["p (one-sided)"] == pytest.approx(2 / 4)
    amp = ctl.loc[("amplify", "RL-right/base-wrong")]
    assert amp["selected set"] == 1.0 and amp["p (one-sided)"] == pytest.approx(1 / 4)
    assert set(ctl.index.get_level_values("scope")) == {"RL-right/base-wrong"}, "random sets run on rw: sets only"


def test_identity_check_counts_identical_generations():
    df = pd.DataFrame({"condition": ["plain-base", "identity-base", "plain-rl", "identity-rl"] * 2,
                       "set": ["s"] * 8, "sample": [0, 0, 0, 0, 1, 1, 1, 1],
                       "completion": ["a", "a", "b", "b", "c", "c", "d", "x"]})
    t = interventions.identity_check(df).set_index("model")
    assert t.loc["base", "identical"] == 2 and t.loc["rl", "identical"] == 1


def test_explorer_follows_its_controls(world, write_params):
    from rlgen_utils.viz.explorer import InterventionExplorer
    P = config.load_params(write_params())
    bundle = SimpleNamespace(name="base", model=world.model, tok=world.tok, lm=world.lm, slot=0, scale=3.0,
                             layers_path=world.path, layer=world.layer)
    setup = SimpleNamespace(P=P, cc=world.cc, base=bundle, rl=bundle,
                            edit=lambda b, lat, f: edit(world, lat, f, m=b.slot, scale=b.scale))
    ex = InterventionExplorer(setup, {"all": list(range(64)), "none": []}, {"p0": PROMPTS[0], "p1": PROMPTS[1]},
                              max_new_tokens=12)
    ex.factor.value = 1.0
    ex.render()
    assert "without" in ex.view.value and "<th>0</th>" in ex.view.value
    plain, edited = ex.generations()
    assert plain == edited, "factor 1 is the identity"
    ex.latent_set.value, ex.factor.value, ex.prompt.value = "none", 5.0, "p1"
    ex.render()
    assert "empty latent set" in ex.view.value


def test_sign_flip_pvalues_are_uniform_under_a_planted_null_and_small_for_a_planted_effect():
    """Synthetic paired differences: 200 null latents (symmetric about 0) and one latent shifted upwards. The
    likely mistake is a test whose p collapses towards 0 under the null (e.g. comparing against unflipped means)."""
    g = torch.Generator().manual_seed(0)
    d = torch.randn(30, 201, generator=g)
    d[:, 200] += 1.0
    p = latent_edits.sign_flip_pvalues_L(d, n_perm=499, seed=1)
    null = p[:200]
    assert ((null <= 0.05).float().mean() - 0.05).abs() < 0.04
    assert ((null <= 0.5).float().mean() - 0.5).abs() < 0.1
    assert p[200] <= 1 / 500 + 1e-9, "a large planted effect must reach the smallest attainable p"
    assert latent_edits.sign_flip_pvalues_L(d, n_perm=99).min() >= 1 / 100


def test_contrast_permutation_pvalues_are_uniform_under_a_planted_null_and_find_a_planted_contrast():
    """Target and control samples from the same distribution for 300 latents (the null), and one latent raised on
    the target samples only. The likely mistakes: a p-value that collapses towards 0 under the null (e.g. a test of
    the target mean alone, which a model-wide drift passes), or one that cannot reach 1/(n_perm+1)."""
    g = torch.Generator().manual_seed(0)
    drift = 0.7                                           # RL − base on every prompt: no contrast
    t, c = torch.randn(25, 301, generator=g) + drift, torch.randn(40, 301, generator=g) + drift
    t[:, 300] += 1.5
    p = latent_edits.permutation_pvalues_L(t, c, n_perm=999, seed=1, chunk=300)
    null = p[:300]
    assert ((null <= 0.05).float().mean() - 0.05).abs() < 0.035
    assert ((null <= 0.5).float().mean() - 0.5).abs() < 0.1
    assert p[300] == pytest.approx(1 / 1000), "a large planted contrast reaches the smallest attainable p"
    assert latent_edits.sign_flip_pvalues_L(t - 0, n_perm=99)[:300].median() < 0.05, \
        "the drift alone fools a test of the target mean: why the contrast is needed"
    assert torch.allclose(latent_edits.contrast_L(t, c), t.mean(0) - c.mean(0))


def test_permutation_pvalues_do_not_depend_on_the_chunking():
    g = torch.Generator().manual_seed(3)
    t, c = torch.randn(6, 5, generator=g), torch.randn(9, 5, generator=g)
    a = latent_edits.permutation_pvalues_L(t, c, n_perm=500, seed=2, chunk=500)
    b = latent_edits.permutation_pvalues_L(t, c, n_perm=500, seed=2, chunk=500)
    assert torch.equal(a, b)
    assert latent_edits.permutation_pvalues_L(t, c[:0], n_perm=50).eq(1).all(), "no control: nothing testable"


def test_bh_keeps_the_step_up_set_and_only_latents_it_is_asked_about():
    p = torch.tensor([0.001, 0.008, 0.039, 0.041, 0.042, 0.06, 0.074, 0.205, 0.212, 0.216])
    # BH at q=0.05, m=10: thresholds 0.005, 0.01, 0.015, ...; the largest r with p_(r) <= q r/m is 2
    assert latent_edits.bh_mask(p, 0.05).nonzero().flatten().tolist() == [0, 1]
    among = torch.ones(10, dtype=torch.bool)
    among[0] = False
    assert latent_edits.bh_mask(p, 0.05, among).nonzero().flatten().tolist() == [], \
        "latent 0 is not among the tested ones, and with m=9 p=0.008 > 0.05/9"
    assert not latent_edits.bh_mask(torch.full((5,), 0.9), 0.05).any()
    assert latent_edits.bh_reachable(39999, 0.05, 1024) and not latent_edits.bh_reachable(999, 0.05, 1024)


def test_frequency_matched_sets_fire_as_often_as_the_selected_latents():
    freq = torch.linspace(0, 1, 200)
    alive = list(range(200))
    chosen = [195, 196, 197, 198, 199]                  # the most frequent latents
    sets = latent_edits.frequency_matched_sets(freq, chosen, alive, 100, seed=0)
    assert len(sets) == 100 and all(len(s) == 5 and not set(chosen) & set(s) for s in sets)
    assert min(freq[s].mean() for s in sets) > 0.85, "random sets from the same frequency bin, not from all latents"
    assert sets == latent_edits.frequency_matched_sets(freq, chosen, alive, 100, seed=0)
    assert len({tuple(s) for s in sets}) > 50
    assert latent_edits.frequency_matched_sets(freq, [], alive, 3, seed=0) == [[], [], []]


def test_selection_and_test_halves_partition_each_pool_and_depend_on_the_seed(write_params):
    P = config.load_params(write_params())
    a, b = interventions.halves(P, "cmp", range(40))
    assert a | b == set(range(40)) and not a & b and len(a) == 20
    assert interventions.halves(P, "cmp", range(40)) == (a, b)
    assert interventions.halves(P, "clock", range(40))[0] != a, "each family gets its own split"


def test_contrast_selection_keeps_a_planted_rl_latent_and_rejects_a_model_wide_drift(write_params):
    """Latent 3 is raised in RL only where RL wins; latent 5 differs between RL and base on every sample (drift)."""
    P = config.load_params(write_params({"interventions": {"n_perm": 1999}}))
    g = torch.Generator().manual_seed(0)
    t, c = torch.randn(30, 8, generator=g) * 0.1, torch.randn(50, 8, generator=g) * 0.1
    t[:, 3] += 1.0
    t[:, 5] += 2.0
    c[:, 5] += 2.0
    alive = torch.ones(8, dtype=torch.bool)
    score, p, kept = interventions.family_selection(P, t, c, alive, seed=0)
    assert kept == {3}
    paper = config.load_params(write_params({"interventions": {"selection": "paper", "fraction": 0.2}}))
    _, p_none, kept_paper = interventions.family_selection(paper, t, c, alive, seed=0)
    assert p_none is None and {3, 5} <= kept_paper, "the paper's Score_k keeps the drifting latent too"
