"""Residual-stream activations of several models on the same tokens, collected through nnsight.

Every model reads the same token batches; at decoder layer ``layer`` the block's output (the residual stream
after that layer, ``[batch, pos, d_model]`` in transformers 5) is saved inside an nnsight trace. Padding and BOS
positions are dropped, the remaining tokens of all M models are stacked into ``acts_NMD`` and streamed to disk in
safetensors shards of ``shard_tokens`` tokens, each written atomically. Memory therefore stays flat however many
tokens are collected.

Per-model normalisation (``norm.json``): scale_m = sqrt(d_model / E‖x_m‖²), estimated on the first shard, so that
every model's activations have mean squared norm d_model. Readers apply it; shards hold raw activations.
:class:`ActivationStore` is the one reader of a collection's folder (its index, scales, shards and marker).

Legend: ``N`` tokens, ``M`` models, ``D`` d_model, ``B`` batch, ``T`` positions.
"""
from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors.torch import load_file, save_file

from ..run import launch
from ..run.artifacts import atomic_file, atomic_write_text, read_json, write_json
from ..run.progress import progress

if TYPE_CHECKING:
    from ..run.types import LM, Model, Tokenizer

# imported inside functions, for their import cost (rlgen_utils.run.imports): nnsight


def decoder_layers_path(model: Model) -> str:
    """Dotted path of the model's list of decoder blocks (``model.layers`` for Llama/Qwen, ``transformer.h``
    for GPT-2): the ``ModuleList`` whose length is the number of hidden layers."""
    n = model.config.get_text_config().num_hidden_layers
    for name, mod in model.named_modules():
        if isinstance(mod, torch.nn.ModuleList) and len(mod) == n:
            return name
    raise ValueError(f"{type(model).__name__}: no ModuleList of {n} decoder layers found")


def middle_layer(model: Model) -> int:
    return model.config.get_text_config().num_hidden_layers // 2


def submodule(obj: Any, dotted: str) -> Any:
    """``obj.a.b.3`` for ``dotted="a.b.3"``: a module (or nnsight envoy) by its dotted path."""
    for part in dotted.split("."):
        obj = obj[int(part)] if part.isdigit() else getattr(obj, part)
    return obj


def wrap(model: Model, tokenizer: Tokenizer):
    """An nnsight ``TransformersModel`` around an already-loaded HF model."""
    import nnsight
    return nnsight.TransformersModel(model, tokenizer=tokenizer, task="text-generation")


def resid_nnsight(lm: LM, layers_path: str, layer: int, input_ids_BT: torch.Tensor,
                  attention_mask_BT: torch.Tensor) -> torch.Tensor:
    """``[B, T, D]`` residual stream after decoder layer ``layer``, read inside one nnsight trace. The forward
    pass stops once the layer's output is saved: the later layers and the unembedding are never computed (half
    the cost at the middle layer)."""
    with torch.no_grad(), lm.trace({"input_ids": input_ids_BT, "attention_mask": attention_mask_BT}) as tracer:
        out = submodule(lm, layers_path)[layer].output
        saved = (out[0] if isinstance(out, tuple) else out).save()
        tracer.stop()
    return saved.detach()


class _Stop(Exception):
    """Raised by :func:`resid_hook`'s hook to end the forward pass after the layer it reads."""


def resid_hook(model: Model, layers_path: str, layer: int, input_ids_BT: torch.Tensor,
               attention_mask_BT: torch.Tensor) -> torch.Tensor:
    """The same activations with a plain torch forward hook (the reference nnsight is benchmarked against),
    stopping the forward pass at the same point."""
    box = {}

    def hook(_m, _i, o):
        box["x"] = o[0] if isinstance(o, tuple) else o
        raise _Stop

    handle = submodule(model, f"{layers_path}.{layer}").register_forward_hook(hook)
    try:
        with torch.no_grad():
            model(input_ids=input_ids_BT, attention_mask=attention_mask_BT)
    except _Stop:
        pass
    finally:
        handle.remove()
    return box["x"].detach()


def keep_mask_BT(input_ids_BT: torch.Tensor, attention_mask_BT: torch.Tensor, tokenizer: Tokenizer) -> torch.Tensor:
    """Positions that are real tokens: not padding, not BOS."""
    keep = attention_mask_BT.bool()
    if tokenizer.bos_token_id is not None:
        keep &= input_ids_BT != tokenizer.bos_token_id
    return keep


def shard_plan(tokenizer: Tokenizer, texts: list[str], batch_size: int, shard_tokens: int,
               max_len: int) -> list[tuple[list[list[int]], int]]:
    """``(batches of text indices, kept tokens)`` of each shard. Texts fill shards in corpus order, a shard
    closing once it holds ``shard_tokens`` kept tokens; inside a shard they are batched shortest first, because a
    batch pads to its longest text (30 % of the default corpus's positions were padding in corpus order) —
    a shard still holds the same mix of texts, which the crosscoder's batches (drawn within one shard at a time)
    need. Fixed by the texts and the tokenizer alone, so any number of ranks (each taking whole shards) writes
    the same shards as one process."""
    ids = tokenizer(texts, truncation=True, max_length=max_len)["input_ids"]
    bos = tokenizer.bos_token_id
    kept = [sum(t != bos for t in row) for row in ids]
    plan, shard, n = [], [], 0
    for i in range(len(texts)):
        shard.append(i)
        n += kept[i]
        if n >= shard_tokens or i == len(texts) - 1:
            by_length = sorted(shard, key=lambda j: len(ids[j]))
            plan.append(([by_length[k:k + batch_size] for k in range(0, len(shard), batch_size)], n))
            shard, n = [], 0
    return plan


def _encode(tokenizer: Tokenizer, batch: list[str], max_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    side, tokenizer.padding_side = tokenizer.padding_side, "right"
    enc = tokenizer(batch, return_tensors="pt", padding=True, truncation=True, max_length=max_len)
    tokenizer.padding_side = side
    return enc["input_ids"], enc["attention_mask"]


def collect(models_: list, tokenizer: Tokenizer, texts: list[str], layer: int, out_dir: str | Path,
            batch_size: int = 64,
            shard_tokens: int = 65_536, max_len: int = 128, use_nnsight: bool = True) -> dict:
    """Collect layer-``layer`` activations of every model on ``texts`` into ``out_dir/shard-*.safetensors``.
    Resumable: shards already on disk (written atomically) are skipped. In a rank of ``accelerate launch`` this
    rank writes its share of the shards (:func:`rlgen_utils.run.launch.mine`) and rank 0 the index."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    plan = shard_plan(tokenizer, texts, batch_size, shard_tokens, max_len)
    todo = [(s, batch) for s, (batches, _) in enumerate(plan) if launch.mine(s) and not (out_dir / _name(s)).is_file()
            for batch in batches]
    paths = [decoder_layers_path(m) for m in models_]
    lms = [wrap(m, tokenizer) for m in models_] if use_nnsight else None
    buf: list[dict] = []
    for j, (s, batch) in enumerate(progress(todo, desc="activations", disable=not launch.is_main())):
        buf.append(_batch_rows(models_, lms, paths, tokenizer, texts, batch, layer, max_len))
        if j + 1 == len(todo) or todo[j + 1][0] != s:
            _flush(buf, out_dir, s)
            buf = []
    launch.barrier()
    index = [{"file": _name(s), "n_tokens": n} for s, (_, n) in enumerate(plan)]
    if launch.is_main():
        atomic_write_text(out_dir / "index.json", json.dumps(index))
        if not (out_dir / "norm.json").is_file():
            write_json(out_dir / "norm.json", {"scale": norm_scales(out_dir / index[0]["file"]).tolist()})
    launch.barrier()
    return {"n_tokens": sum(s["n_tokens"] for s in index), "n_shards": len(index)}


def _batch_rows(models_: list, lms: list | None, paths: list[str], tokenizer: Tokenizer, texts: list[str],
                batch: list[int], layer: int, max_len: int) -> dict[str, torch.Tensor]:
    """One batch's kept tokens (texts ``batch`` of ``texts``): every model's activations ``[N, M, D]`` (CPU,
    float32) and where each token is (``doc``: the text's index in ``texts``)."""
    ids, mask = _encode(tokenizer, [texts[i] for i in batch], max_len)
    keep = keep_mask_BT(ids, mask, tokenizer)
    per_model = []
    for i, m in enumerate(models_):
        d_ids, d_mask = ids.to(m.device), mask.to(m.device)   # the model's device; activations come back to CPU
        x_BTD = (resid_nnsight(lms[i], paths[i], layer, d_ids, d_mask) if lms is not None
                 else resid_hook(m, paths[i], layer, d_ids, d_mask))
        per_model.append(x_BTD.float().cpu()[keep])
    pos_BT = torch.arange(ids.shape[1]).expand_as(ids)
    doc_BT = torch.tensor(batch)[:, None].expand_as(ids)
    return {"acts_NMD": torch.stack(per_model, 1).float(), "token": ids[keep], "position": pos_BT[keep],
            "doc": doc_BT[keep]}


def _name(shard: int) -> str:
    return f"shard-{shard:05d}.safetensors"


def _flush(buf: list[dict], out_dir: Path, shard: int) -> None:
    tensors = {k: torch.cat([b[k] for b in buf]).contiguous() for k in buf[0]}
    with atomic_file(out_dir / _name(shard)) as tmp:
        save_file(tensors, str(tmp))


def norm_scales(shard_path: str | Path) -> torch.Tensor:
    """Per-model scale making E‖scale · x_m‖² = d_model on this shard. Each model's is reduced over its own column
    alone, so it is bit for bit the same whichever models are collected beside it (crosscoders are keyed by the
    columns they read: :func:`rlgen_utils.run.keys.columns_key`)."""
    x_NMD = load_file(str(shard_path))["acts_NMD"]
    return torch.stack([(x_NMD.shape[-1] / x_NMD[:, m].contiguous().pow(2).sum(-1).mean()).sqrt()
                        for m in range(x_NMD.shape[1])])


def load_shard(path: str | Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(str(path))
    except Exception as e:
        raise ValueError(f"{path}: corrupt or truncated activation shard ({e.__class__.__name__})") from None


@dataclass(frozen=True)
class ActivationStore:
    """A collection's folder: ``index.json`` (shards and their token counts), ``norm.json`` (per-model scales),
    ``shard-*.safetensors`` and the stage marker ``DONE.json`` (models, layer, token count)."""
    folder: Path

    def __post_init__(self):
        object.__setattr__(self, "folder", Path(self.folder))

    @property
    def index(self) -> list[dict]:
        path = self.folder / "index.json"
        return json.loads(path.read_text()) if path.is_file() else []

    @cached_property
    def scale_M(self) -> torch.Tensor:
        return torch.tensor(read_json(self.folder / "norm.json")["scale"])

    @property
    def info(self) -> dict:
        """The marker: model names, training seed, layer, number of tokens and shards."""
        return read_json(self.folder / "DONE.json")

    @property
    def layer(self) -> int:
        return int(self.info["layer"])

    @property
    def n_tokens(self) -> int:
        return sum(s["n_tokens"] for s in self.index)

    @cached_property
    def d_model(self) -> int:
        return int(self.shard(0)["acts_NMD"].shape[-1])

    def shard(self, i: int) -> dict[str, torch.Tensor]:
        """Shard ``i`` as stored: raw ``acts_NMD`` and ``token``, ``position``, ``doc`` per row."""
        return load_shard(self.folder / self.index[i]["file"])

    def batches(self, batch_size: int, seed: int = 0, epochs: float = math.inf,
                columns: list[int] | None = None, split: str | None = None) -> Iterator[torch.Tensor]:
        """Endless (or ``epochs``) shuffled, normalised ``x_BMD`` batches, one shard in memory at a time;
        ``columns`` selects some of the models (e.g. base and RL out of base, SFT, RL); ``split`` keeps only the
        tokens of training (``"train"``) or held-out (``"heldout"``) texts (:func:`held_out_doc`)."""
        index = self.index
        cols = None if columns is None else list(columns)
        scale_1MD = (self.scale_M if cols is None else self.scale_M[cols])[None, :, None]
        g = torch.Generator().manual_seed(seed)
        epoch = 0
        while epoch < epochs:
            yielded = 0
            for s in torch.randperm(len(index), generator=g).tolist():
                shard = self.shard(s)
                raw_NMD = shard["acts_NMD"]   # gathered per batch: a whole-shard copy would cost as much as training
                rows = (torch.arange(raw_NMD.shape[0]) if split is None else
                        (held_out_doc(shard["doc"]) == (split == "heldout")).nonzero().flatten())
                perm = rows[torch.randperm(len(rows), generator=g)]
                for i in range(0, len(perm) - batch_size + 1, batch_size):
                    yielded += 1
                    x_BMD = raw_NMD[perm[i:i + batch_size]]
                    yield (x_BMD if cols is None else x_BMD[:, cols]) * scale_1MD
            if not yielded:   # else an endless iterator would spin without ever yielding
                raise ValueError(f"{self.folder}: no shard holds {batch_size} tokens{f' of the {split} split' if split else ''}"
                                 f" (raise crosscoder.n_texts or lower crosscoder.batch_size)")
            epoch += 1


def batches(act_dir: str | Path, batch_size: int, seed: int = 0, epochs: float = math.inf,
            columns: list[int] | None = None, split: str | None = None) -> Iterator[torch.Tensor]:
    """:meth:`ActivationStore.batches` of the collection in ``act_dir``."""
    return ActivationStore(Path(act_dir)).batches(batch_size, seed, epochs, columns, split)


HELD_OUT_EVERY = 10


def held_out_doc(doc_N: torch.Tensor) -> torch.Tensor:
    """``[N]`` bool: rows from held-out texts — every ``HELD_OUT_EVERY``-th text of the corpus. Crosscoders train
    on the rest and report FVU and firing on these, tokens they never saw."""
    return doc_N % HELD_OUT_EVERY == 0
