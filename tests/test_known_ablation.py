"""Ablation validation of notebook 06's edit (issue 29): the latents zeroed are those the instrument called
tuned-only, random control sets fire as often, and the ablation "lowers" a cause only beyond every random set."""
import pytest
import torch

from rlgen_utils.method.crosscoder import Crosscoder, CrosscoderConfig
from rlgen_utils.run.config import load_params
from rlgen_utils.studies import known_ablation as ka


def _pair(tuned_only: list[int], dead: list[int], L: int = 12, D: int = 8) -> Crosscoder:
    cc = Crosscoder(CrosscoderConfig(n_models=2, d_model=D, n_latents=L, k=2))
    with torch.no_grad():
        cc.W_dec_LMD.fill_(1.0)
        for k in tuned_only:
            cc.W_dec_LMD[k, 0] = 0.1          # NRN = 1 / 1.1 ≈ 0.91
        cc.tokens_since_fired_L[dead] = 10 ** 9
    return cc


def test_the_found_latents_are_the_alive_tuned_only_ones(write_params):
    P = load_params(write_params())
    cc = _pair(tuned_only=[3, 7, 9], dead=[7])
    assert ka.found_latents(P, cc) == [3, 9], "NRN above crosscoder.nrn_high, alive only"
    assert ka.found_latents(P, _pair([], [])) == []


class _Store:
    def __init__(self, batches):
        self._batches = batches

    def batches(self, batch_size, seed=0, columns=None, split=None):
        assert split == "heldout" and columns == [0, 1]
        yield from self._batches


class _Coder:
    cfg = CrosscoderConfig(n_models=2, d_model=2, n_latents=3, k=1)

    def encode(self, x_BMD):
        return x_BMD[:, 0, :1].repeat(1, 3) * torch.tensor([1.0, 0.0, 1.0])   # latents 0 and 2 follow x


def test_firing_frequency_counts_tokens_over_the_batches_read():
    fires = torch.tensor([[1.0, 0.0], [0.0, 0.0], [1.0, 0.0], [1.0, 0.0]])[:, None, :].repeat(1, 2, 1)
    freq = ka.firing_frequency_L(_Coder(), _Store([fires[:2], fires[2:], torch.ones(4, 2, 2)]), [0, 1], n_batches=2)
    assert freq.tolist() == [0.75, 0.0, 0.75], "the third batch is beyond n_batches"


def test_the_ablation_lowers_a_cause_only_beyond_every_random_set():
    assert ka.against_random(0.3, [0.0, 0.1, 0.05]) == {"drop": 0.3, "p": 0.25, "lowers": True}
    assert ka.against_random(0.1, [0.0, 0.1, 0.05])["lowers"] is False, "a tie with a random set is no evidence"
    assert ka.against_random(-0.2, [-0.3, -0.4])["lowers"] is False, "the caused share must fall"
    assert ka.against_random(0.3, [])["lowers"] is False, "no null, no decision"


def test_the_caused_share_reads_the_stated_answer(write_params):
    P = load_params(write_params())
    assert ka.rate(P, ["12", "7", "x"], ["12", "8", "3"]) == pytest.approx(1 / 3)


@pytest.mark.slow
def test_the_ablation_runs_on_a_finished_pair_and_its_null_has_the_found_sets_size(smoke_run):
    P, _ = smoke_run
    row = ka.ablation(P, P, "behaviour", n_random=3)
    assert 0.0 <= row["plain"] <= 1.0 and row["found"] >= 0
    if row["found"]:
        assert len(row["random_drops"]) == 3 and 0.0 <= row["ablated"] <= 1.0
        assert row["drop"] == pytest.approx(row["plain"] - row["ablated"]) and row["p"] in (0.25, 0.5, 0.75, 1.0)
    else:
        assert row["ablated"] is None and row["lowers"] is False
