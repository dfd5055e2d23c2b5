"""Ranking and overlap functions of notebook 04 on hand-made decoder norms whose answer is known."""
import numpy as np
import pytest
import torch

from rlgen_utils.method import overlap


def _norms():
    """6 latents, models [base, ckpt1, ckpt2]: latents 0-1 grow specific to ckpt1 and stay, 2 only at ckpt2,
    3-5 shared."""
    return torch.tensor([
        [0.0, 1.0, 1.0],   # 0: tuned-only from ckpt1 on
        [0.1, 1.0, 0.9],   # 1: tuned-only from ckpt1 on
        [1.0, 1.0, 4.0],   # 2: only ckpt2 grows it
        [1.0, 1.0, 1.0],   # 3-5 shared
        [1.0, 0.9, 1.0],
        [1.0, 1.1, 1.0],
    ])


def test_nrn_ranking_picks_the_tuned_latents_of_each_checkpoint():
    spec = overlap.specificity_CL(_norms(), base=0, checkpoints=[1, 2], key="nrn")
    assert spec.shape == (2, 6)
    sets = overlap.top_k_sets(spec, k=2)
    assert sets[0] == {0, 1}
    assert sets[1] == {0, 1}, "NRN against the base: latent 2 (0.8) is less specific than 0 (1.0) and 1 (0.9)"
    sets3 = overlap.top_k_sets(spec, k=3)
    assert sets3[1] == {0, 1, 2}


def test_mas_ranking_differs_from_nrn_ranking():
    spec = overlap.specificity_CL(_norms(), base=0, checkpoints=[1, 2], key="mas")
    assert spec[1].argmax().item() == 2, "by MAS, latent 2 is most attributed to ckpt2"
    with pytest.raises(ValueError, match="unknown ranking key"):
        overlap.specificity_CL(_norms(), 0, [1], key="kl")


def test_dead_latents_are_never_ranked():
    spec = overlap.specificity_CL(_norms(), 0, [1, 2])
    alive = torch.tensor([False, True, True, True, True, True])
    assert 0 not in set().union(*overlap.top_k_sets(spec, 2, alive))


def test_overlaps_on_known_sets():
    sets = [{1, 2}, {1, 2}, {1, 3}, {1, 3}]
    assert overlap.jaccard({1, 2}, {1, 3}) == pytest.approx(1 / 3)
    assert overlap.first_vs_last(sets) == pytest.approx([1 / 3, 1 / 3, 1.0, 1.0])
    assert overlap.neighbour_overlap(sets) == pytest.approx([1.0, 1 / 3, 1.0])
    m = overlap.overlap_matrix(sets)
    assert m.shape == (4, 4) and np.allclose(np.diag(m), 1) and np.allclose(m, m.T)


def test_tuned_only_counts():
    spec = overlap.specificity_CL(_norms(), 0, [1, 2])
    assert overlap.tuned_only_counts(spec, 0.7) == [2, 3]


def test_matching_latents_across_crosscoders_by_decoder_cosine():
    g = torch.Generator().manual_seed(0)
    W_a = torch.randn(5, 16, generator=g)
    perm = torch.tensor([3, 0, 4, 1, 2])
    W_b = W_a[perm] + 0.01 * torch.randn(5, 16, generator=g)   # b holds a's latents in another order
    a_to_b = overlap.match_latents(W_a, W_b, threshold=0.9)
    assert a_to_b == {int(perm[j]): j for j in range(5)}
    assert overlap.matched_jaccard({0, 3}, {1, 0}, a_to_b) == 1.0, "the same latents under other indices"
    none = overlap.match_latents(W_a, -W_b, threshold=0.9)
    assert none == {} and overlap.matched_jaccard({0}, {0}, none) == 0.0


def test_unmatched_latents_of_two_crosscoders_are_not_the_same_latent():
    """The pairwise cross-check maps each checkpoint's top-K into the final crosscoder's indices. The old
    mapping sent unmatched latent i to -1-i, so two sets with no matched latent at all overlapped (here: 1.0)."""
    no_match: dict[int, int] = {}
    a = overlap.map_into({0, 1}, no_match, "checkpoint-1")
    b = overlap.map_into({0, 1}, no_match, "checkpoint-2")
    assert overlap.jaccard(a, b) == 0.0
    old_a, old_b = ({no_match.get(i, -1 - i) for i in s} for s in ({0, 1}, {0, 1}))
    assert overlap.jaccard(old_a, old_b) == 1.0, "the bug this test guards against"


def test_matched_latents_count_once_in_the_target_space():
    a = overlap.map_into({3, 5}, {3: 10, 5: 11}, "checkpoint-1")
    b = overlap.map_into({7, 9}, {7: 10}, "checkpoint-2")
    assert a == {10, 11} and b == {10, ("checkpoint-2", 9)}
    assert overlap.jaccard(a, b) == 1 / 3
