"""Online RL must really learn: on a task a few steps can learn, GRPO and RLOO raise the mean reward."""
import pytest
import torch

from rlgen_utils.models import generation, loading, posttrain
from rlgen_utils.run import config, session
from rlgen_utils.world import tasks


def _uniform_digit_model():
    """A tiny organism pretrained until it answers ``x=`` with a uniformly random digit."""
    session.seed_everything(0)
    tok = loading.char_tokenizer()
    model = loading.organism_model(config.OrganismCfg(d_model=32, n_layers=1, n_heads=2, d_ff=64), tok, 0)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    model.train()
    for step in range(60):
        g = torch.Generator().manual_seed(step)
        texts = [f"x={d}" for d in torch.randint(0, 10, (32,), generator=g).tolist()]
        ids = torch.tensor([[tok.bos_token_id] + tok.convert_tokens_to_ids(list(t)) + [tok.eos_token_id]
                            for t in texts])
        loss = model(input_ids=ids, labels=ids).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval(), tok


def _p_seven(model, tok) -> float:
    ex = [tasks.Example("t", "x=", "7", "7")] * 64
    return generation.sampled_scores(model, tok, ex, k=4, max_new_tokens=4, seed=1)["sampled_mean"]


@pytest.mark.parametrize("algorithm", ["grpo", "rloo"])
def test_online_rl_raises_mean_reward_on_a_learnable_task(algorithm):
    model, tok = _uniform_digit_model()
    before = _p_seven(model, tok)
    assert 0.03 < before < 0.3, f"the starting model should answer 7 about 1 time in 10, got {before}"
    rl = config.OnlineRLCfg(lr=3e-3, num_generations=8, completions_per_step=32, max_completion_length=4)
    pcfg = config.PosttrainCfg(grpo=rl, rloo=rl)
    rows = [{"prompt": "x=", "answer": "7"}] * 80  # 80 prompts x 8 samples / 32 per step = 20 steps
    opt = torch.optim.AdamW(model.parameters(), lr=rl.lr, weight_decay=0.0)
    trainer = posttrain.build_trainer(algorithm, model, tok, rows, 0, pcfg, opt)
    posttrain._quiet(trainer)
    trainer.train()
    rewards = [h["reward"] for h in trainer.state.log_history if "reward" in h]
    after = _p_seven(model.eval(), tok)
    assert after > before + 0.3, f"{algorithm} did not learn: P(answer 7) {before:.2f} -> {after:.2f}"
    assert sum(rewards[-5:]) / 5 > sum(rewards[:5]) / 5, f"mean reward did not rise: {rewards}"
