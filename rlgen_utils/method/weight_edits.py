"""Weight edits whose effect on Study B's graph is known by construction (the known-cause validation of notebook 05).

Study B's claim is about *where* a model's loss depends on its graph: online RL is said to spread the dependence
over more edges (edge intensity and entropy up). No fine-tune is known to do that. An edit of the weights is: every
attention and MLP block writes into the residual stream through one output projection (``o_proj`` / ``down_proj``
in Llama-style blocks, ``c_proj`` in GPT-2's), so multiplying that projection by c multiplies the block's output
O_s — every edge s → r it sends — by exactly c, and nothing else in the weights changes.

* :func:`scale_block_outputs` — the senders named (``a0``, ``m1``, … as in
  :class:`~rlgen_utils.method.edge_attribution.Graph`) write c · O_s. Scaling the *weakest* senders up moves the
  graph's dependence onto edges that carried little (a known widening); scaling the *strongest* up concentrates it
  (a known narrowing).
* :func:`reparametrise` — in every block, value ×c and output ÷c in attention, up ×c and down ÷c in a gated MLP
  (act(gate) ⊙ up is linear in up): the weights move by as much as the widening moves them, the function does not
  change at all (the known "nothing"). Needs Llama-style blocks (``v_proj``/``o_proj``, ``up_proj``/``down_proj``).

Both edit a model in place (under ``torch.no_grad``) and return it.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from .activations import submodule
from .edge_attribution import adapter_for, graph_of

if TYPE_CHECKING:
    from ..run.types import Model

_OUTPUTS = {"a": ("o_proj", "c_proj", "out_proj", "dense"), "m": ("down_proj", "c_proj", "fc2", "dense_4h_to_h")}


def output_projection(model: Model, sender: str) -> torch.nn.Module:
    """The module through which block ``sender`` (``a<l>`` attention, ``m<l>`` MLP of layer l) writes into the
    residual stream."""
    g = graph_of(model)
    if sender not in g.senders[1:]:
        raise ValueError(f"sender {sender!r}: expected one of the blocks {g.senders[1:]} (the embedding has no output "
                         "projection)")
    ad = adapter_for(model)
    kind, layer = sender[0], int(sender[1:])
    block = submodule(model, f"{ad.layers}.{layer}.{ad.attn if kind == 'a' else ad.mlp}")
    for name in _OUTPUTS[kind]:
        if isinstance(getattr(block, name, None), torch.nn.Module):
            return getattr(block, name)
    raise ValueError(f"{type(model).__name__}: block {sender} has no output projection among {_OUTPUTS[kind]}")


def scale_block_outputs(model: Model, factors: dict[str, float]) -> Model:
    """Multiply each named sender's output projection (weight and bias) by its factor: O_s → factor · O_s."""
    with torch.no_grad():
        for sender, c in factors.items():
            proj = output_projection(model, sender)
            for name in ("weight", "bias"):
                t = getattr(proj, name, None)
                if isinstance(t, torch.Tensor):
                    t.mul_(c)
    return model


def reparametrise(model: Model, factor: float) -> Model:
    """The same function with moved weights: in every layer, attention value ×factor and output ÷factor, gated-MLP
    up ×factor and down ÷factor (biases of the scaled-up side ×factor, of the output side unchanged)."""
    if factor <= 0:
        raise ValueError(f"reparametrise: factor {factor} must be positive")
    ad = adapter_for(model)
    n = graph_of(model).n_layers
    with torch.no_grad():
        for layer in range(n):
            attn = submodule(model, f"{ad.layers}.{layer}.{ad.attn}")
            mlp = submodule(model, f"{ad.layers}.{layer}.{ad.mlp}")
            pairs = ((attn, "v_proj", "o_proj"), (mlp, "up_proj", "down_proj"))
            for block, up, down in pairs:
                if not all(isinstance(getattr(block, x, None), torch.nn.Linear) for x in (up, down)):
                    raise ValueError(f"{type(model).__name__}: reparametrise needs Llama-style blocks ({up} and {down} "
                                     f"in layer {layer}'s {type(block).__name__})")
                lin_up, lin_down = getattr(block, up), getattr(block, down)
                lin_up.weight.mul_(factor)
                if lin_up.bias is not None:
                    lin_up.bias.mul_(factor)
                lin_down.weight.div_(factor)
    return model
