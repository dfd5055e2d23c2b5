"""SFT's learning-rate schedule runs over the whole run, across segments (rlgen_utils.models.posttrain)."""
import math
from types import SimpleNamespace

import pytest
import torch

from rlgen_utils.models import posttrain


def test_warmup_then_cosine_reaches_zero_and_linear_halves_midway():
    assert posttrain.lr_factor(0, 100, 0.1, "cosine") == 0.0
    assert posttrain.lr_factor(5, 100, 0.1, "cosine") == 0.5, "halfway up the warm-up"
    assert posttrain.lr_factor(10, 100, 0.1, "cosine") == 1.0
    assert posttrain.lr_factor(55, 100, 0.1, "cosine") == pytest.approx(0.5)
    assert posttrain.lr_factor(100, 100, 0.1, "cosine") == pytest.approx(0.0)
    assert posttrain.lr_factor(50, 100, 0.0, "linear") == 0.5
    assert posttrain.lr_factor(99, 100, 0.0, "constant") == 1.0


def test_segments_continue_one_schedule_whatever_the_previous_segment_left():
    """The likely mistake: each segment's trainer restarting the warm-up and decay (five cosines instead of one),
    or a resumed segment starting from the decayed rate the previous one left in the optimizer."""
    cfg = SimpleNamespace(warmup=0.1, schedule="cosine")
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(2))], lr=1.0)
    seen, total = [], 40
    for offset in range(0, total, 8):   # five segments of 8 steps, each with a fresh scheduler
        sched = posttrain._schedule(opt, 1e-3, offset, total, cfg)
        for _ in range(8):
            seen.append(opt.param_groups[0]["lr"])
            opt.step()
            sched.step()
    want = [1e-3 * posttrain.lr_factor(s, total, 0.1, "cosine") for s in range(total)]
    assert seen == pytest.approx(want) and max(seen) == pytest.approx(1e-3) and seen[-1] < 1e-5
    opt.param_groups[0]["lr"] = 123.0   # a resumed segment: whatever the groups hold
    posttrain._schedule(opt, 1e-3, 24, total, cfg)
    assert opt.param_groups[0]["lr"] == pytest.approx(want[24])
    assert math.isclose(sum(posttrain.segment_steps("sft", posttrain.segments([{}] * 30, 2, 5, 0),
                                                    SimpleNamespace(sft=SimpleNamespace(batch_size=4)))), 15)
