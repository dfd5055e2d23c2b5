"""Known-edit validation of notebook 05 (issue 29): the weight edits do exactly what they say, the edit plans pick
the blocks they name, and the validation rows call a widening seen and a narrowing's rise a false positive."""
import shutil

import pandas as pd
import pytest
import torch

from rlgen_utils.method import edge_attribution, weight_edits
from rlgen_utils.run.config import load_params
from rlgen_utils.run.rundir import RunDir
from rlgen_utils.studies import circuit_claims
from rlgen_utils.studies import known_edges as ke
from tests.test_circuits import gpt2, llama, qwen3


def _block_outputs(model, ids):
    """Every block's output (attention and MLP of each layer) on ``ids``, in graph order."""
    ad, got, hooks = edge_attribution.adapter_for(model), [], []
    layers = model.get_submodule(ad.layers)
    for layer in layers:
        for name in (ad.attn, ad.mlp):
            hooks.append(layer.get_submodule(name).register_forward_hook(
                lambda m, i, o: got.append((o[0] if isinstance(o, tuple) else o).detach().clone())))
    with torch.no_grad():
        logits = model(ids).logits
    for h in hooks:
        h.remove()
    return got, logits


@pytest.mark.parametrize("build", [llama, gpt2, qwen3])
def test_scaling_a_block_scales_exactly_its_own_output(build):
    model, _ = build()
    ids = torch.tensor([[1, 5, 9, 3, 7, 2]])
    senders = edge_attribution.graph_of(model).senders[1:]
    before, _ = _block_outputs(model, ids)
    weight_edits.scale_block_outputs(model, {senders[-1]: 1.7})   # the last block: nothing downstream of it changes
    after, _ = _block_outputs(model, ids)
    torch.testing.assert_close(after[-1], 1.7 * before[-1])
    for a, b in zip(after[:-1], before[:-1], strict=True):
        torch.testing.assert_close(a, b)
    with pytest.raises(ValueError, match="emb"):
        weight_edits.scale_block_outputs(model, {"emb": 2.0})


@pytest.mark.parametrize("build", [llama, qwen3])
def test_reparametrising_moves_the_weights_and_keeps_the_function(build):
    model, _ = build()
    ids = torch.tensor([[1, 5, 9, 3, 7, 2]])
    _, before = _block_outputs(model, ids)
    w = model.get_submodule(edge_attribution.adapter_for(model).layers)[0].mlp.up_proj.weight.clone()
    weight_edits.reparametrise(model, 2.0)
    _, after = _block_outputs(model, ids)
    torch.testing.assert_close(after, before)
    assert not torch.equal(model.get_submodule(edge_attribution.adapter_for(model).layers)[0].mlp.up_proj.weight, w)


def test_reparametrising_a_block_layout_it_cannot_is_refused():
    model, _ = gpt2()
    with pytest.raises(ValueError, match="Llama-style"):
        weight_edits.reparametrise(model, 2.0)
    with pytest.raises(ValueError, match="positive"):
        weight_edits.reparametrise(llama()[0], 0.0)


def test_edit_plans_pick_the_weakest_or_strongest_half():
    strength = {"a0": 0.4, "m0": 0.1, "a1": 0.3, "m1": 0.1, "a2": 0.9}
    assert ke.plan(strength, "widen", 0.3) == {"m0": 1.3, "m1": 1.3}, "weakest half, ties by name"
    assert ke.plan(strength, "sharpen", 1.0) == {"a0": 2.0, "a2": 2.0}
    assert ke.plan(strength, "reparam", 0.1) == {}
    with pytest.raises(ValueError, match="edit"):
        ke.plan(strength, "rotate", 0.1)
    with pytest.raises(ValueError, match="dose"):
        ke.plan(strength, "widen", 0.0)


def test_rows_call_a_widening_seen_and_a_narrowings_rise_a_false_positive():
    readings = [{"claim_id": "paper", "claim": "c", "pair": f"base → {m}", "model_after": m, "n": 50, "reading": r}
                for m, r in (("grpo", "rise"), ("dpo", "rise"), ("sft", "no rise"))]
    factors = {"widen": {"m0": 1.1}, "sharpen": {"a0": 1.1}, "reparam": {}}
    rows = {r["edit"]: r for r in ke.rows(0.1, readings, factors, {"widen": 0.9, "sharpen": 0.8, "reparam": 1.0})}
    assert rows["widen"]["detected"] is True and rows["widen"]["false positive"] is None
    assert rows["sharpen"]["false positive"] is True and rows["sharpen"]["detected"] is None
    assert rows["reparam"]["false positive"] is False and rows["reparam"]["blocks scaled"].startswith("none")


def test_unchanged_share_compares_final_completions_with_the_base():
    df = pd.DataFrame({"method": ["base"] * 3 + ["grpo"] * 3, "final": True, "family": "arith",
                       "sample": [0, 1, 2] * 2, "completion": ["1", "2", "3", "1", "x", "3"]})
    assert ke.unchanged_share(df, "arith", "grpo") == pytest.approx(2 / 3)


def test_pair_readings_cover_every_pair_whatever_its_group(write_params):
    P = load_params(write_params({"circuits": {"main_alpha": 0.3, "alphas": [0.3]}}))
    rows = [{"pair": f"base → {m}", "model_before": "base", "model_after": m, "score": P.circuits.scores[0],
             "alpha": 0.3, "n": 20, "metric": metric, "delta_lo": lo, "delta_hi": lo + 0.2, "before": 1.0}
            for m, lo in (("grpo", 0.1), ("sft", -0.3)) for metric in ("intensity", "entropy", "entropy (scale-free)")]
    got = {(r["claim_id"], r["model_after"]): r["reading"] for r in circuit_claims.pair_readings(P, pd.DataFrame(rows))}
    assert got == {("paper", "grpo"): "rise", ("paper", "sft"): "no rise", ("scale_free", "grpo"): "rise",
                   ("scale_free", "sft"): "no rise"}


@pytest.mark.slow
def test_edits_of_the_smoke_base_are_written_once_and_read_by_notebook_05_params(smoke_run, tmp_path):
    P0, _ = smoke_run
    P = P0.model_copy(update={"run_root": str(tmp_path / "runs")})   # its own folder: smoke's artifacts keep their hash
    shutil.copytree(RunDir(P0).base(), RunDir(P).base())
    strength = ke.sender_strength(P)
    assert set(strength) == set(edge_attribution.Graph(P.model.organism.n_layers).senders[1:])
    edited = {e: ke.ensure_edit(P, e, 0.5) for e in ke.EDITS}
    stamp = (edited["widen"] / "model.safetensors").stat().st_mtime_ns
    assert ke.ensure_edit(P, "widen", 0.5) == edited["widen"]
    assert (edited["widen"] / "model.safetensors").stat().st_mtime_ns == stamp, "a written edit is not rewritten"
    Q = load_params(_yaml(tmp_path, ke.byo_params(P, 0.5, edited)))
    assert Q.circuit_pairs == [("base", "grpo"), ("base", "dpo"), ("base", "sft")]
    assert Q.external_checkpoints["grpo"] == [str(edited["widen"].resolve())]


def _yaml(folder, d):
    import yaml
    path = folder / "edges.yaml"
    path.write_text(yaml.safe_dump(d, sort_keys=False))
    return path
