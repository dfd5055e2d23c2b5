"""SmolLM2-135M-Instruct, materialised from the GGUF that `make smollm2` installs, is an ordinary HF Llama folder:
it loads through rlgen's loader, has SmolLM2's shape (grouped-query attention, tied embeddings) and its chat
template, and generates a reply that stops at the end-of-turn token. The likely mistakes: an untied or randomly
initialised head (the GGUF has no separate lm_head), a tokenizer without the chat template, generation that runs
past <|im_end|>."""
from pathlib import Path

import pytest
import torch

from rlgen_utils.models import loading, smollm2

FOLDER = Path(__file__).resolve().parents[1] / smollm2.DEFAULT_OUT


@pytest.fixture(scope="module")
def folder():
    return smollm2.materialise(FOLDER)   # done by `make smollm2`: returns at once


def test_materialised_folder_has_smollm2s_shape(folder):
    model = loading.load_model(folder)
    c = model.config
    assert (c.num_hidden_layers, c.hidden_size, c.num_attention_heads, c.num_key_value_heads) == (30, 576, 9, 3)
    assert c.tie_word_embeddings and model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr(), (
        "the head must be the embedding (tied), not a fresh random matrix")
    assert smollm2.materialise(folder) == folder, "a second call must reuse the folder"
    assert getattr(c, "quantization_config", None) is None, (
        "the weights are dequantised floats: a config that still names the GGUF quantization makes trainers refuse it")


def test_chat_reply_is_coherent_and_stops_at_end_of_turn(folder):
    model, tok = loading.load_model(folder), loading.load_tokenizer(folder)
    assert tok.chat_template and tok.eos_token == "<|im_end|>"
    prompt = tok.apply_chat_template([{"role": "user", "content": "What is the capital of France?"}],
                                     tokenize=False, add_generation_prompt=True)
    ids = tok(prompt, return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**ids, max_new_tokens=40, do_sample=False, eos_token_id=tok.eos_token_id,
                             pad_token_id=tok.eos_token_id)
    new = out[0, ids["input_ids"].shape[1]:]
    text = tok.decode(new, skip_special_tokens=True)
    assert "paris" in text.lower(), f"a dequantised SmolLM2 knows this; got {text!r}"
    assert new[-1].item() == tok.eos_token_id or len(new) == 40
    assert (new == tok.eos_token_id).sum() <= 1, "generation must stop at the first <|im_end|>"


def test_a_missing_package_is_one_line_naming_the_make_target(monkeypatch):
    monkeypatch.setattr(smollm2, "PACKAGE", "no_such_package_rlgen")
    with pytest.raises(ValueError, match="make smollm2"):
        smollm2.gguf_folder()
