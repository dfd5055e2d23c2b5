"""An ipywidgets explorer for interventions: pick a latent set, a model, a factor and a prompt; see the greedy
generation with and without the edit, and the set's latents along the edited sequence.

Rendered as HTML in ``ipywidgets.HTML`` (no JavaScript), so tests can drive it: set ``explorer.latent_set.value``,
``explorer.factor.value``, ``explorer.prompt.value`` … then call ``explorer.render()`` and read
``explorer.view.value``. Generations go through :func:`latent_edits.generate` (nnsight), the notebook's path.
"""
from __future__ import annotations

import html
from typing import TYPE_CHECKING

import ipywidgets as w

from ..method import latent_edits

if TYPE_CHECKING:
    import torch




class InterventionExplorer:
    def __init__(self, setup, latent_sets: dict[str, list[int]], prompts: dict[str, str], max_new_tokens: int = 48,
                 max_latents_shown: int = 12):
        self.setup, self.sets, self.prompts = setup, dict(latent_sets), dict(prompts)
        self.max_new_tokens, self.max_shown = max_new_tokens, max_latents_shown
        self._build()

    def _build(self):
        self.latent_set = w.Dropdown(options=list(self.sets), description="latents")
        self.model = w.ToggleButtons(options=["base", "rl"], value="base", description="model")
        self.factor = w.FloatSlider(value=self.setup.P.interventions.amplify, min=0.0, max=10.0, step=0.5,
                                    description="factor")
        self.prompt = w.Dropdown(options=list(self.prompts), description="prompt")
        self.view = w.HTML()
        go = w.Button(description="generate")
        go.on_click(lambda _: self.render())
        self.widget = w.VBox([w.HBox([self.latent_set, self.model]), w.HBox([self.factor, self.prompt, go]),
                              self.view])

    def bundle(self):
        return self.setup.base if self.model.value == "base" else self.setup.rl

    def generations(self) -> tuple[str, str]:
        """(unedited, edited) greedy completions of the chosen prompt."""
        b, text = self.bundle(), self.prompts[str(self.prompt.value)]
        edit = self.setup.edit(b, self.sets[str(self.latent_set.value)], float(self.factor.value))
        plain = latent_edits.generate(b.lm, b.tok, [text], self.max_new_tokens, None, b.layers_path, b.layer)[0]
        edited = latent_edits.generate(b.lm, b.tok, [text], self.max_new_tokens, edit, b.layers_path, b.layer)[0]
        return plain, edited

    def render(self):
        b, text = self.bundle(), self.prompts[str(self.prompt.value)]
        plain, edited = self.generations()
        latents = self.sets[str(self.latent_set.value)][: self.max_shown]
        parts = [f"<h4>{html.escape(str(self.latent_set.value))} × {self.factor.value:g} in {b.name}</h4>",
                 "<table style='font-family:monospace'>",
                 f"<tr><td>prompt</td><td>{_esc(text)}</td></tr>",
                 f"<tr><td>without</td><td>{_esc(plain)}</td></tr>",
                 f"<tr><td>with</td><td><b>{_esc(edited)}</b></td></tr></table>"]
        if latents:
            tokens, f_Tl = latent_edits.latent_trace(b.model, b.tok, text + edited, self.setup.cc, b.slot, b.scale,
                                                      latents, b.layers_path, b.layer, self.setup.P.interventions.encode)
            parts.append(_heat_table(tokens, f_Tl, latents))
        else:
            parts.append("<i>empty latent set: the edit changes nothing</i>")
        self.view.value = "".join(parts)


def _esc(s: str) -> str:
    return html.escape(s).replace("\n", "⏎")


def _heat_table(tokens: list[str], f_Tl: torch.Tensor, latents: list[int]) -> str:
    """One row per latent, one cell per token, shaded by the latent's activation (unedited forward)."""
    peak = float(f_Tl.max()) or 1.0
    head = "".join(f"<th>{_esc(t) or '∅'}</th>" for t in tokens)
    rows = []
    for j, k in enumerate(latents):
        cells = "".join(f"<td style='background:rgba(255,120,0,{max(0.0, min(1.0, float(v) / peak)):.2f})'>"
                        f"{float(v):.1f}</td>" for v in f_Tl[:, j])
        rows.append(f"<tr><th>{k}</th>{cells}</tr>")
    return ("<div style='overflow-x:auto'><table style='font-family:monospace;font-size:10px'>"
            f"<tr><th>latent</th>{head}</tr>{''.join(rows)}</table></div>")
