"""Resumable training state in safe formats: optimizer moments as safetensors, the rest as JSON.

A torch optimizer's ``state_dict()`` is ``{"state": {i: {name: tensor | number}}, "param_groups": [...]}``.
Tensors go to ``optimizer.safetensors`` under ``"{i}.{name}"``; numbers and param groups go to
``optimizer.json``. No pickle is written or read anywhere.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ..run.artifacts import read_json, write_json

if TYPE_CHECKING:
    import torch

# imported inside functions, for their import cost (rlgen_utils.run.imports): safetensors, torch


def save_optimizer(optimizer: torch.optim.Optimizer, folder: str | Path) -> None:
    import torch
    from safetensors.torch import save_file

    folder = Path(folder)
    sd = optimizer.state_dict()
    tensors, scalars = {}, {}
    for idx, st in sd["state"].items():
        for name, v in st.items():
            if isinstance(v, torch.Tensor):
                tensors[f"{idx}.{name}"] = v.detach().contiguous().clone()
            else:
                scalars[f"{idx}.{name}"] = v
    save_file(tensors, str(folder / "optimizer.safetensors"))
    write_json(folder / "optimizer.json", {"param_groups": sd["param_groups"], "scalars": scalars})


def load_optimizer(optimizer: torch.optim.Optimizer, folder: str | Path) -> None:
    from safetensors.torch import load_file

    folder = Path(folder)
    tensors = load_file(str(folder / "optimizer.safetensors"))
    meta = read_json(folder / "optimizer.json")
    state: dict[int, dict] = {}
    for key, v in list(tensors.items()) + list(meta["scalars"].items()):
        idx, name = key.split(".", 1)
        state.setdefault(int(idx), {})[name] = v
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def rng_state() -> dict:
    import torch
    return {"torch": torch.get_rng_state().tolist()}


def set_rng_state(state: dict) -> None:
    import torch
    torch.set_rng_state(torch.tensor(state["torch"], dtype=torch.uint8))
