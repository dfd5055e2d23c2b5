"""Edge attribution over a decoder-only transformer's graph (Study B), through nnsight.

**The graph.** Senders are the embedding and every attention and MLP block's *output*; receivers are every
attention and MLP block's *input* and the final residual (the input of the final norm, before the unembedding).
Because of the residual stream, a receiver's input is exactly the sum of every earlier sender's output::

    H_r = Σ_{s precedes r} O_s          (checked at run time: :func:`check_decomposition`)

so an edge s → r is one term of that sum. With L layers there are 2L+1 senders ``emb, a0, m0, …`` and 2L+1
receivers ``a0, m0, …, logits``, and (2L+1)(L+1) edges (sender index ≤ receiver index).

**Scores.** Removing edge s → r replaces H_r by H_r − O_s for receiver r only. To first order the loss changes by
``I(s → r) = −⟨∇_{H_r} L, O_s⟩`` summed over positions, where ∇_{H_r} is the gradient through receiver r's own
input (not through the residual stream that carries H_r onwards). The nnsight trace gets that gradient by handing
each receiver a *clone* of its input: the clone's gradient is the path through that receiver alone. One forward
and one backward give every edge of every sample in the batch (:func:`zero_ablation_scores`). Classic EAP
replaces O_s by the corrupted-minus-clean difference (:func:`eap_scores`); EAP-IG averages the receiver
gradients along a straight path from the corrupted to the clean embedding output (:func:`eap_ig_scores`).
Sign convention everywhere: a score estimates L(edge removed or corrupted) − L(clean).

**References** (plain torch hooks, no nnsight, one forward per edge) remove ``scale``·O_s from receiver r's input
only and measure the loss change: :func:`exact_ablation_scores` is ``scale=1`` for every edge
(the slow, obviously-correct answer first order approximates) and :func:`directional_scores` is the central
difference in ``scale`` (the derivative the fast path must equal).

**The trap.** RMSNorm/LayerNorm make a block's output invariant to the scale of its input, so
⟨∇_{H_r} L, H_r⟩ ≈ 0: the first-order scores into each receiver sum to ≈ 0 even when removing an edge changes the
loss a lot (edges from the embedding into layer 0 look unimportant). Compare with exact ablation
(:func:`agreement`) before trusting first-order scores on a small model.

Legend: ``B`` samples in a batch, ``T`` positions, ``D`` d_model, ``S`` senders, ``R`` receivers, ``K`` samples.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from .activations import decoder_layers_path, submodule

if TYPE_CHECKING:
    from ..run.types import LM, Model, Tokenizer


# ------------------------------------------------------------------------------------------------ graph
@dataclass(frozen=True)
class Adapter:
    """Where one architecture family keeps its blocks (dotted paths from the top-level model)."""
    layers: str
    attn_norm: str
    attn: str
    mlp_norm: str
    mlp: str
    final_norm: str


# Module names inside a decoder layer, by style; the layer list and final norm are found by search.
_STYLES = {"llama": ("input_layernorm", "self_attn", "post_attention_layernorm", "mlp"),  # Llama, Qwen2/3, Mistral
           "gpt2": ("ln_1", "attn", "ln_2", "mlp")}
_FINAL_NORMS = ("norm", "ln_f", "final_layernorm")


def adapter_for(model: Model) -> Adapter:
    """The adapter of a loaded HF causal LM, found from its module names (error naming what is missing)."""

    layers = decoder_layers_path(model)
    mods = dict(model.named_modules())
    first = mods[f"{layers}.0"]
    for names in _STYLES.values():
        if all(hasattr(first, n) for n in names):
            break
    else:
        raise ValueError(f"{type(model).__name__}: decoder layers have none of the known block layouts "
                         f"{list(_STYLES.values())}; add one to rlgen_utils.method.edge_attribution._STYLES")
    parent = layers.rsplit(".", 1)[0] if "." in layers else ""
    finals = [f"{parent}.{n}" if parent else n for n in _FINAL_NORMS]
    final = next((f for f in finals if f in mods), None)
    if final is None:
        raise ValueError(f"{type(model).__name__}: no final norm among {finals}")
    return Adapter(layers, names[0], names[1], names[2], names[3], final)


@dataclass(frozen=True)
class Graph:
    n_layers: int

    @property
    def senders(self) -> list[str]:
        return ["emb"] + [f"{k}{l}" for l in range(self.n_layers) for k in ("a", "m")]

    @property
    def receivers(self) -> list[str]:
        return [f"{k}{l}" for l in range(self.n_layers) for k in ("a", "m")] + ["logits"]

    @property
    def mask_RS(self) -> torch.Tensor:
        """True where sender s feeds receiver r (s's index ≤ r's index)."""
        n = 2 * self.n_layers + 1
        return torch.ones(n, n, dtype=torch.bool).tril()

    @property
    def n_edges(self) -> int:
        return (2 * self.n_layers + 1) * (self.n_layers + 1)

    def edge_names(self) -> list[str]:
        m = self.mask_RS
        return [f"{s}->{r}" for i, r in enumerate(self.receivers) for j, s in enumerate(self.senders) if m[i, j]]

    def flat(self, W_KRS: torch.Tensor) -> torch.Tensor:
        """``[K, E]`` edge scores in :meth:`edge_names` order."""
        return W_KRS[:, self.mask_RS]


def graph_of(model: Model) -> Graph:
    return Graph(model.config.get_text_config().num_hidden_layers)


# ------------------------------------------------------------------------------------------------ loss
@dataclass
class Batch:
    """Right-padded token ids and the positions whose next token the loss scores."""
    input_ids_BT: torch.Tensor
    attention_mask_BT: torch.Tensor
    loss_mask_BT: torch.Tensor  # True at position t when token t+1 is one of the scored response tokens

    def to(self, device: str | torch.device) -> Batch:
        """The batch on ``device`` (the model's: a GPU at paper scale)."""
        return Batch(self.input_ids_BT.to(device), self.attention_mask_BT.to(device), self.loss_mask_BT.to(device))


def make_batch(tokenizer: Tokenizer, prompts_ids: list[list[int]], responses_ids: list[list[int]],
               pad_id: int) -> Batch:
    """Batch of ``prompt + response`` sequences; the loss scores every response token."""
    seqs = [p + r for p, r in zip(prompts_ids, responses_ids)]
    T = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), T), pad_id, dtype=torch.long)
    att = torch.zeros(len(seqs), T, dtype=torch.long)
    lm = torch.zeros(len(seqs), T, dtype=torch.bool)
    for b, (p, s) in enumerate(zip(prompts_ids, seqs)):
        ids[b, :len(s)] = torch.tensor(s)
        att[b, :len(s)] = 1
        lm[b, len(p) - 1:len(s) - 1] = True
    return Batch(ids, att, lm)


def _at_least_fp32(x: torch.Tensor) -> torch.Tensor:
    return x.to(torch.promote_types(x.dtype, torch.float32))


def self_entropy_B(logits_BTV: torch.Tensor, batch: Batch) -> torch.Tensor:
    """Per-sample mean cross-entropy of the model on its own (truncated) response tokens."""
    logp = torch.log_softmax(_at_least_fp32(logits_BTV[:, :-1]), -1)
    target = batch.input_ids_BT[:, 1:]
    nll_BT = -logp.gather(-1, target[..., None])[..., 0] * batch.loss_mask_BT[:, :-1]
    return nll_BT.sum(1) / batch.loss_mask_BT.sum(1).clamp(min=1)


# ------------------------------------------------------------------------------------------------ fast path
def _first(x: Any) -> Any:
    return x[0] if isinstance(x, tuple) else x


def _isolate(norm_envoy):
    """Give a receiver a clone of its input; the clone's gradient is the path through this receiver only."""
    x = norm_envoy.input.clone()
    norm_envoy.input = x
    return x.save()


def trace_graph(lm: LM, ad: Adapter, n_layers: int, batch: Batch, emb_override: torch.Tensor | None = None,
                receivers: bool = True):
    """One nnsight trace: sender outputs ``[S] × [B, T, D]``, isolated receiver inputs ``[R] × [B, T, D]``
    (clones, part of the autograd graph) and the logits. ``emb_override`` replaces the embedding output."""
    senders, recv = [], []
    with lm.trace({"input_ids": batch.input_ids_BT, "attention_mask": batch.attention_mask_BT}):
        layers = submodule(lm, ad.layers)
        emb: Any = layers[0].input if emb_override is None else emb_override
        emb = emb.detach().clone().requires_grad_(receivers)  # the graph starts here; no parameter gradients
        layers[0].input = emb
        senders.append(emb.save())
        for i in range(n_layers):
            blk = layers[i]
            if receivers:
                recv.append(_isolate(submodule(blk, ad.attn_norm)))
            senders.append(_first(submodule(blk, ad.attn).output).save())
            if receivers:
                recv.append(_isolate(submodule(blk, ad.mlp_norm)))
            senders.append(submodule(blk, ad.mlp).output.save())
        if receivers:
            recv.append(_isolate(submodule(lm, ad.final_norm)))
        logits = lm.output.logits.save()
    return senders, recv, logits


def _hf(lm: LM):
    """The Hugging Face model inside an nnsight wrapper."""
    return lm._module


def _plan(lm: LM) -> tuple[Adapter, Graph]:
    model = _hf(lm)
    return adapter_for(model), graph_of(model)


def _receiver_grads(lm: LM, ad, n_layers, batch, emb_override: torch.Tensor | None = None):
    with torch.enable_grad():
        senders, recv, logits = trace_graph(lm, ad, n_layers, batch, emb_override)
        loss_B = self_entropy_B(logits, batch)
        grads = torch.autograd.grad(loss_B.sum(), recv)
    return [s.detach() for s in senders], list(grads), loss_B.detach()


def _contract(grads: list[torch.Tensor], senders: list[torch.Tensor], graph: Graph) -> torch.Tensor:
    """``W[b, r, s] = ⟨G_r, O_s⟩`` summed over positions and d_model, zero off the graph."""
    G_RBTD, O_SBTD = _at_least_fp32(torch.stack(grads)), _at_least_fp32(torch.stack(senders))
    return torch.einsum("rbtd,sbtd->brs", G_RBTD, O_SBTD) * graph.mask_RS


def zero_ablation_scores(lm: LM, batch: Batch) -> torch.Tensor:
    """The paper's corruption-free score ``−⟨∇_{H_r} L, O_s⟩`` for every edge: ``[B, R, S]``."""
    ad, graph = _plan(lm)
    senders, grads, _ = _receiver_grads(lm, ad, graph.n_layers, batch)
    return -_contract(grads, senders, graph)


def _senders_only(lm: LM, ad, n_layers, batch):
    with torch.no_grad():
        senders, _, _ = trace_graph(lm, ad, n_layers, batch, receivers=False)
    return [s.detach() for s in senders]


def eap_scores(lm: LM, batch: Batch, corrupt: Batch) -> torch.Tensor:
    """Classic EAP: ``⟨∇_{H_r} L(clean), O_s(corrupt) − O_s(clean)⟩``: ``[B, R, S]``."""
    ad, graph = _plan(lm)
    clean, grads, _ = _receiver_grads(lm, ad, graph.n_layers, batch)
    corr = _senders_only(lm, ad, graph.n_layers, corrupt)
    return _contract(grads, [c - o for c, o in zip(corr, clean)], graph)


def eap_ig_scores(lm: LM, batch: Batch, corrupt: Batch, steps: int = 5) -> torch.Tensor:
    """EAP-IG: receiver gradients averaged over ``steps`` points on the straight path from the corrupted to the
    clean embedding output (t = 1/steps … 1), times the sender differences: ``[B, R, S]``."""
    ad, graph = _plan(lm)
    clean = _senders_only(lm, ad, graph.n_layers, batch)
    corr = _senders_only(lm, ad, graph.n_layers, corrupt)
    total = None
    for k in range(1, steps + 1):
        emb = corr[0] + (k / steps) * (clean[0] - corr[0])
        _, grads, _ = _receiver_grads(lm, ad, graph.n_layers, batch, emb_override=emb)
        total = grads if total is None else [t + g for t, g in zip(total, grads)]
    assert total is not None, "steps must be at least 1"
    return _contract([t / steps for t in total], [c - o for c, o in zip(corr, clean)], graph)


def check_decomposition(lm: LM, batch: Batch, atol: float = 1e-3) -> float:
    """Largest relative error of ``H_r = Σ_{s ≤ r} O_s`` over receivers; raises when the adapter does not
    describe the architecture (e.g. extra post-norms), since every edge score would then be wrong."""
    ad, graph = _plan(lm)
    with torch.no_grad():
        senders, recv, _ = trace_graph(lm, ad, graph.n_layers, batch)
    worst = 0.0
    senders, recv = [s.detach() for s in senders], [h.detach() for h in recv]
    for r, H in enumerate(recv):
        total = sum(senders[: r + 1])
        worst = max(worst, float((H - total).norm() / H.norm().clamp(min=1e-12)))
    if worst > atol:
        raise ValueError(f"{type(_hf(lm)).__name__}: receiver inputs are not sums of sender outputs "
                         f"(relative error {worst:.2g}); the circuits adapter does not fit this architecture")
    return worst


# ------------------------------------------------------------------------------------------------ references
def _hook_senders(model: Model, ad: Adapter, n_layers: int, batch: Batch) -> list[torch.Tensor]:
    """Sender outputs with plain forward hooks (independent of nnsight)."""
    mods, out, handles = dict(model.named_modules()), {}, []
    handles.append(mods[f"{ad.layers}.0"].register_forward_pre_hook(
        lambda m, a, kw: out.__setitem__(0, (a[0] if a else kw["hidden_states"]).detach()), with_kwargs=True))
    for i in range(n_layers):
        for j, name in ((1 + 2 * i, ad.attn), (2 + 2 * i, ad.mlp)):
            handles.append(mods[f"{ad.layers}.{i}.{name}"].register_forward_hook(
                lambda m, a, o, j=j: out.__setitem__(j, _first(o).detach())))
    try:
        with torch.no_grad():
            model(input_ids=batch.input_ids_BT, attention_mask=batch.attention_mask_BT)
    finally:
        for h in handles:
            h.remove()
    return [out[j] for j in range(2 * n_layers + 1)]


def _receiver_modules(model: Model, ad: Adapter, n_layers: int) -> list:
    """The norm modules whose inputs are the receivers, in receiver order."""
    mods = dict(model.named_modules())
    blocks = [mods[f"{ad.layers}.{i}.{name}"] for i in range(n_layers) for name in (ad.attn_norm, ad.mlp_norm)]
    return blocks + [mods[ad.final_norm]]


def _loss_with_edit(model: Model, batch: Batch, module = None, delta=None) -> torch.Tensor:
    handle = None
    if module is not None:
        handle = module.register_forward_pre_hook(lambda m, a: (a[0] - delta,) + tuple(a[1:]))
    try:
        with torch.no_grad():
            logits = model(input_ids=batch.input_ids_BT, attention_mask=batch.attention_mask_BT).logits
    finally:
        if handle is not None:
            handle.remove()
    return self_entropy_B(logits, batch)


def self_entropy_losses(lm: LM, batch: Batch) -> torch.Tensor:
    """``[B]``: each sample's self-entropy loss (the quantity every edge score is a gradient of), no edit."""
    return _loss_with_edit(_hf(lm), batch)


def _per_edge(model: Model, batch: Batch, effect) -> torch.Tensor:
    """``[B, R, S]`` with ``effect(f)`` per edge, where ``f(scale)`` is the loss change when ``scale``·O_s is
    removed from receiver r's input only (one forward)."""
    ad, graph = adapter_for(model), graph_of(model)
    senders, clean = _hook_senders(model, ad, graph.n_layers, batch), _loss_with_edit(model, batch)
    receivers = _receiver_modules(model, ad, graph.n_layers)
    W = torch.zeros(batch.input_ids_BT.shape[0], len(receivers), len(senders), dtype=_at_least_fp32(senders[0]).dtype)
    for r, module in enumerate(receivers):
        for s in range(r + 1):
            W[:, r, s] = effect(lambda scale, m=module, o=senders[s]: _loss_with_edit(model, batch, m, scale * o) - clean)
    return W


def exact_ablation_scores(model: Model, batch: Batch) -> torch.Tensor:
    """``[B, R, S]``: the loss change when each edge is really removed (one forward per edge)."""
    return _per_edge(model, batch, lambda f: f(1.0))


def directional_scores(model: Model, batch: Batch, eps: float = 1e-3) -> torch.Tensor:
    """``[B, R, S]``: the derivative the first-order scores estimate, by central differences per edge
    (error O(eps²); the norms compute in float32 even in a float64 model, so eps cannot be tiny)."""
    return _per_edge(model, batch, lambda f: (f(eps) - f(-eps)) / (2 * eps))
