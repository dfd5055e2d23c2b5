"""Activation collection through nnsight: equal to a plain forward pass, streamed in shards, resumable."""
import json

import pytest
import torch

from rlgen_utils.method import activations
from rlgen_utils.models import loading
from rlgen_utils.run import config
from rlgen_utils.world import tasks


def _tiny(seed=0):
    tok = loading.char_tokenizer()
    return loading.organism_model(config.OrganismCfg(d_model=32, n_layers=3, n_heads=2, d_ff=64), tok, seed), tok


def _texts(n=40):
    return [e.text for e in tasks.sample_split("arith", "train", n, 0, config.TasksCfg())]


def test_nnsight_activations_equal_output_hidden_states():
    model, tok = _tiny()
    tok.padding_side = "right"
    enc = tok(_texts(8), return_tensors="pt", padding=True)
    path = activations.decoder_layers_path(model)
    lm = activations.wrap(model, tok)
    with torch.no_grad():
        hidden = model(**enc, output_hidden_states=True).hidden_states
    for layer in range(3):
        got = activations.resid_nnsight(lm, path, layer, enc["input_ids"], enc["attention_mask"])
        hooked = activations.resid_hook(model, path, layer, enc["input_ids"], enc["attention_mask"])
        assert torch.allclose(got, hooked, atol=1e-6)
        if layer < 2:  # the last entry of hidden_states has the final norm applied, so it is not comparable
            assert torch.allclose(got, hidden[layer + 1], atol=1e-5), f"layer {layer}: nnsight read the wrong tensor"


def test_collect_streams_shards_excluding_pad_and_bos(tmp_path):
    a, tok = _tiny(0)
    b, _ = _tiny(1)
    texts = _texts(40)
    info = activations.collect([a, b], tok, texts, layer=1, out_dir=tmp_path, batch_size=8, shard_tokens=300)
    n_real = sum(len(t) for t in texts)          # one token per character; BOS and padding excluded
    assert info["n_tokens"] == n_real and info["n_shards"] > 2
    shard = activations.load_shard(tmp_path / "shard-00000.safetensors")
    assert shard["acts_NMD"].shape[1:] == (2, 32)
    assert (shard["token"] != tok.bos_token_id).all() and (shard["token"] != tok.pad_token_id).all()
    scale = torch.tensor(json.loads((tmp_path / "norm.json").read_text())["scale"])
    x = next(activations.batches(tmp_path, 64))
    assert x.shape == (64, 2, 32)
    assert x.pow(2).sum(-1).mean(0) == pytest.approx(torch.full((2,), 32.0), rel=0.5)
    assert scale.shape == (2,)


def test_a_models_column_is_bit_for_bit_the_same_whichever_models_are_collected_beside_it(tmp_path):
    """Crosscoders are keyed by the columns they read, not by the collection holding them (the known-cause
    validation's pairs share the base's nulls through it: ``keys.columns_key``), so a model's activations, its
    normalisation scale and the batches read from its column must not depend on the other models. Likely mistake:
    the scales reduced over the ``[N, M]`` matrix at once, whose rounding depends on M."""
    a, tok = _tiny(0)
    b, _ = _tiny(1)
    texts = _texts(40)
    activations.collect([a, b], tok, texts, layer=1, out_dir=tmp_path / "ab", batch_size=8, shard_tokens=300)
    activations.collect([a], tok, texts, layer=1, out_dir=tmp_path / "a", batch_size=8, shard_tokens=300)
    both, alone = activations.ActivationStore(tmp_path / "ab"), activations.ActivationStore(tmp_path / "a")
    assert torch.equal(both.shard(1)["acts_NMD"][:, 0], alone.shard(1)["acts_NMD"][:, 0])
    from safetensors.torch import save_file
    for seed in range(4):   # the [N, M] reduction differs from the column's alone in the last bit at seeds 1 and 3
        far_apart_M = torch.tensor([1.0, 30.0, 0.01])
        x = torch.randn(5000, 3, 32, generator=torch.Generator().manual_seed(seed)) * far_apart_M[None, :, None]
        save_file({"acts_NMD": x}, str(tmp_path / "x.safetensors"))
        save_file({"acts_NMD": x[:, :1].contiguous()}, str(tmp_path / "x0.safetensors"))
        assert torch.equal(activations.norm_scales(tmp_path / "x.safetensors")[:1],
                           activations.norm_scales(tmp_path / "x0.safetensors")), seed
    assert both.scale_M[0].item() == alone.scale_M[0].item()
    for x_ab, x_a in zip(both.batches(64, seed=3, columns=[0, 0], split="train", epochs=1),
                         alone.batches(64, seed=3, columns=[0, 0], split="train", epochs=1)):
        assert torch.equal(x_ab, x_a)


def test_shards_batch_texts_shortest_first_and_every_token_keeps_its_text(tmp_path):
    """Batches are sorted by length inside each shard (little padding) while shards keep corpus order, and a
    token's ``doc`` still names its own text. Likely mistakes: sorting the whole corpus (a shard of short texts
    only), or ``doc`` counted by position in the sorted order (the held-out split and the inspector read the
    wrong text)."""
    a, tok = _tiny(0)
    texts = [t + "x" * (i % 7) for i, t in enumerate(_texts(48))]      # lengths not in corpus order
    plan = activations.shard_plan(tok, texts, 8, 400, 128)
    flat = [[i for b in batches for i in b] for batches, _ in plan]
    assert sorted(i for f in flat for i in f) == list(range(48)), "a text is lost or read twice"
    assert [min(f) for f in flat] == sorted(min(f) for f in flat) and max(flat[0]) < min(flat[1]), \
        "shards must take the texts in corpus order"
    assert all([len(texts[i]) for i in f] == sorted(len(texts[i]) for i in f) for f in flat)
    activations.collect([a], tok, texts, 1, tmp_path, batch_size=8, shard_tokens=400)
    shard = activations.load_shard(tmp_path / "shard-00001.safetensors")
    for d in shard["doc"].unique().tolist():
        got = shard["token"][shard["doc"] == d][shard["position"][shard["doc"] == d].argsort()]
        assert got.tolist() == tok(texts[d])["input_ids"][1:], f"doc {d}: tokens of another text"


def test_held_out_texts_are_split_off_and_a_too_small_split_is_an_error_not_a_hang(tmp_path):
    a, tok = _tiny(0)
    activations.collect([a], tok, _texts(40), layer=1, out_dir=tmp_path, batch_size=8, shard_tokens=10_000)
    store = activations.ActivationStore(tmp_path)
    docs = store.shard(0)["doc"]
    held = activations.held_out_doc(docs)
    assert held.any() and (~held).any() and set(docs[held].tolist()) == {0, 10, 20, 30}
    n_held = int(held.sum())
    assert sum(len(x) for x in store.batches(8, split="heldout", epochs=1)) == n_held // 8 * 8
    with pytest.raises(ValueError, match="heldout split"):
        next(store.batches(n_held + 1, split="heldout"))


def test_collect_resumes_without_recomputing_finished_shards(tmp_path):
    a, tok = _tiny(0)
    texts = _texts(40)
    activations.collect([a], tok, texts, 1, tmp_path / "full", batch_size=8, shard_tokens=300)
    part = tmp_path / "part"
    activations.collect([a], tok, texts[:16], 1, part, batch_size=8, shard_tokens=300)
    first = (part / "shard-00000.safetensors").stat().st_mtime_ns
    activations.collect([a], tok, texts, 1, part, batch_size=8, shard_tokens=300)
    assert (part / "shard-00000.safetensors").stat().st_mtime_ns == first
    full = json.loads((tmp_path / "full" / "index.json").read_text())
    again = json.loads((part / "index.json").read_text())
    assert [s["n_tokens"] for s in again] == [s["n_tokens"] for s in full]


def test_truncated_shard_is_named(tmp_path):
    a, tok = _tiny(0)
    activations.collect([a], tok, _texts(8), 1, tmp_path, batch_size=8, shard_tokens=10_000)
    f = tmp_path / "shard-00000.safetensors"
    f.write_bytes(f.read_bytes()[:200])
    with pytest.raises(ValueError, match="shard-00000.safetensors: corrupt or truncated"):
        activations.load_shard(f)


def test_feature_inspector_builds_and_follows_its_controls(tmp_path):
    from rlgen_utils.method.crosscoder import Crosscoder, CrosscoderConfig, train
    from rlgen_utils.viz.inspector import FeatureInspector
    a, tok = _tiny(0)
    b, _ = _tiny(1)
    activations.collect([a, b], tok, _texts(40), 1, tmp_path, batch_size=8, shard_tokens=500)
    cc = Crosscoder(CrosscoderConfig(n_models=2, d_model=32, n_latents=16, k=2))
    train(cc, activations.batches(tmp_path, 64), 20, show_progress=False)
    cc.eval()
    with torch.no_grad():                                   # make latent 3 model-b only
        cc.W_dec_LMD[3, 0] = 0
    ins = FeatureInspector(cc, ["a", "b"], tmp_path, tok, n_tokens=400)
    assert "latent 0" in ins.view.value
    ins.latent.value = 5
    assert "latent 5" in ins.view.value and "a: top contexts" in ins.view.value
    ins.order.value = "MAS b"
    ins.rank.value = 0
    assert ins.latent.value == int(ins.mas_LM[:, 1].argmax()), "sorting by MAS b must put b's latent first"
    assert ins.mas_LM[ins.latent.value, 1] == 1.0
    acts = ins.acts_NM(ins.latent.value)
    if (acts[:, 1] > 0).any():
        assert "<span style=\"background:rgba(255,120,0," in ins.view.value, "contexts are highlighted per token"


def test_reading_a_layer_stops_the_forward_pass_there():
    """Collection stops after the layer it reads: the last layer's MLP weight must never be used (else half the
    cost of collecting at the middle layer goes to layers nobody reads). The spy counts ``F.linear`` calls with
    that weight, which also sees the calls nnsight makes inside its trace (torch hooks do not)."""
    from unittest import mock
    model, tok = _tiny()
    enc = tok(_texts(4), return_tensors="pt", padding=True)
    path, lm = activations.decoder_layers_path(model), activations.wrap(model, tok)
    w, linear, used = activations.submodule(model, f"{path}.2").mlp.down_proj.weight, torch.nn.functional.linear, []

    def spy(x, weight, *a, **k):
        used.extend([1] if weight is w else [])
        return linear(x, weight, *a, **k)

    with mock.patch.object(torch.nn.functional, "linear", spy):
        activations.resid_nnsight(lm, path, 1, enc["input_ids"], enc["attention_mask"])
        activations.resid_hook(model, path, 1, enc["input_ids"], enc["attention_mask"])
        assert not used, "the forward pass ran past the layer that was read"
        with torch.no_grad():
            model(**enc)
        assert used, "the spy does not see the last layer (the test itself is broken)"


def _reference_batches(store, batch_size, seed, columns, split):
    """The obviously-correct reader: scale the whole shard, select columns and split, then cut batches."""
    g = torch.Generator().manual_seed(seed)
    cols = slice(None) if columns is None else torch.tensor(columns)
    for s in torch.randperm(len(store.index), generator=g).tolist():
        shard = store.shard(s)
        x = (shard["acts_NMD"] * store.scale_M[None, :, None])[:, cols]
        if split is not None:
            x = x[activations.held_out_doc(shard["doc"]) == (split == "heldout")]
        perm = torch.randperm(x.shape[0], generator=g)
        for i in range(0, len(perm) - batch_size + 1, batch_size):
            yield x[perm[i:i + batch_size]]


@pytest.mark.parametrize("columns,split", [(None, None), ([1], "train"), ([1, 0], "heldout")])
def test_batches_equal_a_whole_shard_reference_reader(tmp_path, columns, split):
    a, tok = _tiny(0)
    b, _ = _tiny(1)
    activations.collect([a, b], tok, _texts(60), 1, tmp_path, batch_size=8, shard_tokens=400)
    store = activations.ActivationStore(tmp_path)
    got = list(store.batches(16, seed=3, epochs=1, columns=columns, split=split))
    ref = list(_reference_batches(store, 16, 3, columns, split))
    assert len(got) == len(ref) > 0
    assert all(torch.equal(x, y) for x, y in zip(got, ref)), "batches differ from scaling the whole shard"
