"""Tokenizer, model construction and loading — for the organism and for any Hugging Face causal LM.

The organism is a small Llama-architecture ``LlamaForCausalLM`` with a character-level tokenizer. Anything
else is loaded from a local folder with ``AutoModelForCausalLM`` / ``AutoTokenizer`` (no hub downloads).
Every loader returns the model in ``eval()`` mode; training code switches modes itself.
"""
from __future__ import annotations

import os
import string
from pathlib import Path
from typing import TYPE_CHECKING

import tokenizers
from tokenizers import decoders, pre_tokenizers, processors
from tokenizers.models import WordLevel

from ..run.artifacts import atomic_dir

if TYPE_CHECKING:
    from ..run.types import Model, Tokenizer

# imported inside functions, for their import cost (rlgen_utils.run.imports): safetensors, torch, transformers




PAD, BOS, EOS = "<pad>", "<bos>", "<eos>"
ORGANISM_CHARS = string.digits + string.ascii_lowercase + " +-=,:?#()>.\n"


def device() -> str:
    """``"cuda"`` where a GPU is visible (paper-scale runs; ``cuda:<local rank>`` in a rank of ``accelerate
    launch``), else ``"cpu"``."""
    import torch
    if not torch.cuda.is_available():
        return "cpu"
    return f"cuda:{os.environ['LOCAL_RANK']}" if "LOCAL_RANK" in os.environ else "cuda"


def char_tokenizer():
    """A character-level ``PreTrainedTokenizerFast``: one id per character of ``ORGANISM_CHARS``, ``<bos>``
    prepended by the post-processor, left padding (what batched generation needs)."""
    from transformers import PreTrainedTokenizerFast

    vocab = {t: i for i, t in enumerate([PAD, BOS, EOS, *ORGANISM_CHARS])}
    tok = tokenizers.Tokenizer(WordLevel(vocab=vocab, unk_token=PAD))
    tok.pre_tokenizer = pre_tokenizers.Split(pattern="", behavior="isolated")
    tok.decoder = decoders.Fuse()
    tok.post_processor = processors.TemplateProcessing(single=f"{BOS} $A", pair=f"{BOS} $A $B",
                                                       special_tokens=[(BOS, vocab[BOS])])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=BOS, eos_token=EOS, pad_token=PAD,
                                   padding_side="left", model_max_length=4096)


def organism_model(cfg, tokenizer: Tokenizer, seed: int):
    """A freshly initialised Llama-architecture LM sized by ``cfg`` (an ``OrganismCfg``)."""
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig

    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=cfg.d_model, intermediate_size=cfg.d_ff,
        num_hidden_layers=cfg.n_layers, num_attention_heads=cfg.n_heads, num_key_value_heads=cfg.n_heads,
        max_position_embeddings=cfg.max_len, tie_word_embeddings=True, rms_norm_eps=1e-5,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    return AutoModelForCausalLM.from_config(config, dtype=torch.float32).eval()


def load_tokenizer(path: str | Path):
    """The tokenizer saved at ``path``, with a pad token and left padding guaranteed."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "left"
    return tok


def load_model(path: str | Path, dtype: str = "float32"):
    """A causal LM from a local folder, in eval mode. Raises ``FileNotFoundError`` naming the folder."""
    import torch
    from transformers import AutoModelForCausalLM

    path = Path(path)
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"no Hugging Face model at {path} (config.json missing)")
    _check_weights(path)
    try:
        model = AutoModelForCausalLM.from_pretrained(str(path), dtype=getattr(torch, dtype), local_files_only=True)
    except (OSError, ValueError, RuntimeError) as e:
        raise ValueError(f"{path}: cannot load the model ({e.__class__.__name__}: {str(e).splitlines()[0][:200]})") \
            from None
    return model.to(device()).eval()  # pyright: ignore[reportArgumentType]  (transformers types .to as generate's)


def _check_weights(path: Path) -> None:
    """Every safetensors weight file in ``path`` must parse (a truncated checkpoint is named, not a deep
    traceback)."""
    from safetensors import safe_open

    for f in sorted(path.glob("*.safetensors")):
        try:
            with safe_open(str(f), "pt") as h:
                for k in h.keys():
                    h.get_slice(k)
        except Exception as e:
            raise ValueError(f"{f}: corrupt or truncated checkpoint ({e.__class__.__name__}); delete its folder "
                             f"to recompute") from None


def save_model(model: Model, tokenizer: Tokenizer, path: str | Path) -> None:
    """``save_pretrained`` (safetensors) for model and tokenizer, written to a temp folder then renamed."""
    with atomic_dir(path) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)


def n_params(model: Model) -> int:
    return sum(p.numel() for p in model.parameters())


os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
