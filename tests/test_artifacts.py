"""Atomic writes, completion markers and the pickle-free optimizer checkpoint."""
import pytest
import torch

from rlgen_utils.models import checkpoint, pretrain
from rlgen_utils.run import artifacts


def test_optimizer_roundtrip_resumes_adam_exactly(tmp_path):
    torch.manual_seed(0)
    def run(model, opt, steps):
        for _ in range(steps):
            loss = model(torch.ones(4, 3)).pow(2).sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
    a = torch.nn.Linear(3, 2)
    b = torch.nn.Linear(3, 2)
    b.load_state_dict(a.state_dict())
    opt_a = torch.optim.AdamW(a.parameters(), lr=0.1)
    run(a, opt_a, 3)
    checkpoint.save_optimizer(opt_a, tmp_path)
    b.load_state_dict(a.state_dict())
    opt_b = torch.optim.AdamW(b.parameters(), lr=0.1)
    checkpoint.load_optimizer(opt_b, tmp_path)
    run(a, opt_a, 2)
    run(b, opt_b, 2)
    assert torch.equal(a.weight, b.weight), "resumed Adam diverged: moments or step count were not restored"
    assert not list(tmp_path.glob("*.pt")) and not list(tmp_path.glob("*.pkl")), "no pickle files"


def test_atomic_dir_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "stage"
    with pytest.raises(RuntimeError):
        with artifacts.atomic_dir(target) as tmp:
            (tmp / "half.txt").write_text("half")
            raise RuntimeError("killed")
    assert not target.exists() and list(tmp_path.iterdir()) == [], "a half-written folder was left behind"


def test_done_marker_is_keyed(tmp_path):
    assert not artifacts.is_done(tmp_path, "k1")
    artifacts.mark_done(tmp_path, "k1")
    assert artifacts.is_done(tmp_path, "k1")
    assert not artifacts.is_done(tmp_path, "k2"), "a stage made with other params must not count as done"


def test_lr_schedule_warms_up_then_decays_to_a_tenth():
    assert pretrain.lr_factor(0, 100, 10) == pytest.approx(0.1)
    assert pretrain.lr_factor(9, 100, 10) == pytest.approx(1.0)
    assert pretrain.lr_factor(100, 100, 10) == pytest.approx(0.1)


def test_truncated_checkpoint_is_named(tmp_path):
    from rlgen_utils.models import loading
    from rlgen_utils.run import config
    tok = loading.char_tokenizer()
    model = loading.organism_model(config.OrganismCfg(n_layers=1, d_model=16, n_heads=2, d_ff=32), tok, 0)
    loading.save_model(model, tok, tmp_path / "ckpt")
    weights = tmp_path / "ckpt" / "model.safetensors"
    assert loading.load_model(tmp_path / "ckpt") is not None
    with open(weights, "r+b") as f:
        f.truncate(weights.stat().st_size // 2)
    with pytest.raises(ValueError, match=r"model.safetensors: corrupt or truncated checkpoint"):
        loading.load_model(tmp_path / "ckpt")
