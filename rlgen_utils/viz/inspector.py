"""An ipywidgets feature inspector for a crosscoder: pick a latent (or sort by NRN / MAS), see its decoder norm per
model, MAS, activation histograms per model, and each model's top-activating contexts with per-token highlighting.

Everything is rendered as HTML inside ``ipywidgets.HTML`` (no JavaScript), so it works in JupyterLab and can be
driven from tests: set ``inspector.latent.value`` or ``inspector.order.value`` and read ``inspector.view.value``.
"""
from __future__ import annotations

import html
from pathlib import Path
from typing import TYPE_CHECKING

import ipywidgets as w
import torch

from ..method import latents
from ..method.activations import ActivationStore

if TYPE_CHECKING:
    from ..method.crosscoder import Crosscoder
    from ..run.types import Tokenizer




class FeatureInspector:
    def __init__(self, cc: Crosscoder, names: list[str], act_dir: str | Path, tokenizer: Tokenizer,
                 n_tokens: int = 20_000,
                 top_k: int = 6, context: int = 24):
        self.cc, self.names, self.tok, self.top_k, self.context = cc, list(names), tokenizer, top_k, context
        store = ActivationStore(Path(act_dir))
        n_shards = min(len(store.index), max(1, n_tokens // max(1, store.index[0]["n_tokens"]) + 1))
        parts = [store.shard(i) for i in range(n_shards)]
        cat = {k: torch.cat([p[k] for p in parts])[:n_tokens] for k in parts[0]}
        self.x_NMD = cat["acts_NMD"] * store.scale_M[None, :, None]
        self.token_N, self.doc_N, self.pos_N = cat["token"], cat["doc"], cat["position"]
        norms = cc.dec_norms_LM().detach()
        self.norms_LM, self.mas_LM = norms, latents.mas_LM(norms)
        self._build()

    # ------------------------------------------------------------------------------------------- numbers
    def acts_NM(self, k: int) -> torch.Tensor:
        """Latent ``k``'s activation on every loaded token, read from each model's encoder block alone."""
        with torch.no_grad():
            pre = torch.einsum("nmd,md->nm", self.x_NMD, self.cc.W_enc_MDL[:, :, k]) + self.cc.b_enc_L[k]
        return torch.relu(pre)

    def ordering(self, key: str) -> list[int]:
        L = self.norms_LM.shape[0]
        if key == "index":
            return list(range(L))
        model = self.names.index(key.removeprefix("MAS "))
        return self.mas_LM[:, model].argsort(descending=True).tolist()

    def top_contexts(self, k: int, m: int) -> list[tuple[float, str]]:
        """The ``top_k`` tokens where latent ``k`` fires most in model ``m``, each as highlighted HTML."""
        a = self.acts_NM(k)[:, m]
        out = []
        for i in a.argsort(descending=True)[: self.top_k].tolist():
            if a[i] <= 0:
                break
            out.append((float(a[i]), self._context_html(i, a)))
        return out

    def _context_html(self, i: int, a_N: torch.Tensor) -> str:
        same = (self.doc_N == self.doc_N[i]).nonzero().flatten()
        same = same[(self.pos_N[same] <= self.pos_N[i]) & (self.pos_N[same] > self.pos_N[i] - self.context)]
        peak = float(a_N[i]) or 1.0
        spans = []
        for j in same.tolist():
            text = html.escape(self.tok.decode([int(self.token_N[j])]) or " ")
            alpha = max(0.0, min(1.0, float(a_N[j]) / peak))
            border = "border-bottom:2px solid #000;" if j == i else ""
            spans.append(f'<span style="background:rgba(255,120,0,{alpha:.2f});{border}">{text}</span>')
        return "".join(spans).replace("\n", "⏎")

    # ------------------------------------------------------------------------------------------- widgets
    def _build(self):
        self.order = w.Dropdown(options=["index"] + [f"MAS {n}" for n in self.names], value="index",
                                description="sort by")
        self.rank = w.BoundedIntText(value=0, min=0, max=self.norms_LM.shape[0] - 1, description="rank")
        self.latent = w.BoundedIntText(value=0, min=0, max=self.norms_LM.shape[0] - 1, description="latent")
        self.view = w.HTML()
        self.order.observe(lambda _: self._from_rank(), "value")
        self.rank.observe(lambda _: self._from_rank(), "value")
        self.latent.observe(lambda _: self.render(), "value")
        self.widget = w.VBox([w.HBox([self.order, self.rank, self.latent]), self.view])
        self.render()

    def _from_rank(self):
        self.latent.value = self.ordering(str(self.order.value))[int(self.rank.value)]
        self.render()

    def render(self):
        k = int(self.latent.value)
        acts = self.acts_NM(k)
        parts = [f"<h4>latent {k}</h4>", "<table style='font-family:monospace'>"]
        top = float(self.norms_LM[k].max()) or 1.0
        for m, n in enumerate(self.names):
            width = int(200 * float(self.norms_LM[k, m]) / top)
            frac = float((acts[:, m] > 0).float().mean())
            parts.append(f"<tr><td>{html.escape(n)}</td><td><div style='width:{width}px;height:10px;"
                         f"background:#3b7dd8'></div></td><td>‖W_dec‖={float(self.norms_LM[k, m]):.3f}</td>"
                         f"<td>MAS={float(self.mas_LM[k, m]):.2f}</td><td>fires on {frac:.1%}</td>"
                         f"<td>{_sparkline(acts[:, m])}</td></tr>")
        parts.append("</table>")
        for m, n in enumerate(self.names):
            ctx = self.top_contexts(k, m)
            parts.append(f"<b>{html.escape(n)}: top contexts</b><br>" + ("".join(
                f"<div style='font-family:monospace'>{v:.2f} │ {c}</div>" for v, c in ctx) or "<i>never fires</i>"))
        self.view.value = "".join(parts)


def _sparkline(a_N: torch.Tensor, bins: int = 12) -> str:
    """A tiny text histogram of the positive activations."""
    pos = a_N[a_N > 0]
    if pos.numel() == 0:
        return ""
    h = torch.histc(pos, bins=bins, min=0, max=float(pos.max()))
    blocks = "▁▂▃▄▅▆▇█"
    return "".join(blocks[min(7, int(7 * v / h.max()))] for v in h.tolist())
