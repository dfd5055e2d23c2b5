# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: rlgen (.venv)
#     language: python
#     name: rlgen
# ---

# %% [markdown]
# # 06 · Interventions: generalization features and their causal test
#
# Study A's last claim (docs/METHOD.md §A4–A5): a **compact, task-agnostic** set of crosscoder latents carries RL's
# out-of-domain gains, and it is **causal** — zeroing it in the RL model undoes the gains, amplifying it in the
# base model brings them.
#
# **Selection.** For each out-of-domain selection family, take the samples where RL answers correctly and the base
# does not; Score_k = mean over them of f_k^RL − f_k^base with the three-model crosscoder of notebook 03. A model's
# f_k^m is read from the joint crosscoder with `interventions.encode` (`replicate`: model m's activation in every
# model slot; `own`: in its own slot only), averaged over `interventions.score_positions` (`prompt`: the question's
# tokens; `all`: question and RL's answer). Each family keeps the latents above `interventions.fraction` of its
# maximum; the task-agnostic set is their intersection (`interventions.combine`).
#
# **Interventions**, through nnsight during greedy generation at the crosscoder's layer: **disable** multiplies the
# selected latents by 0 in RL, **amplify** by `interventions.amplify` in the base; the crosscoder's reconstruction
# error is kept, so only the latents' decoded directions change; on `interventions.edit_positions`.
#
# **Controls the paper lacks**: `interventions.n_random` random sets of the same size (alive latents outside the
# selected set), a dose-response over `interventions.dose`, and the identity check (routing through the crosscoder
# with nothing changed must leave every generation unchanged).

# %% tags=["parameters"]
params_path = None  # None: $RLGEN_PARAMS, else the run last made by `make reproduce`, else smoke

# %%
from IPython.display import Markdown

from rlgen_utils.studies import interventions as study
from rlgen_utils.studies import start
from rlgen_utils.viz import plots

P = start(params_path)
I = P.interventions
print(f"selection families {study.selection_families(P)}; encode={I.encode}, positions={I.score_positions}, "
      f"fraction={I.fraction}, combine={I.combine}; edits on {I.edit_positions} positions, amplify ×{I.amplify}")

# %% [markdown]
# ## RL-right / base-wrong samples and each family's latent set

# %%
setup = study.Setup(P)
pool = study.ensure_pool(P)
sel = study.ensure_selection(P, setup, pool)
study.set_table(sel)

# %%
plots.score_curves(sel.scores, I.fraction)

# %%
plots.family_overlap(*study.family_overlap(sel))

# %% [markdown]
# ## Disable in RL, amplify in the base: the intervention table
# Accuracy change in points (edited − unedited on the same samples, 95 % paired bootstrap), on the
# RL-right/base-wrong subsets (`rw:`) and on whole families (`all:`; selection, held-out and in-domain).

# %%
results = study.ensure_conditions(P, setup, pool, sel)
study.identity_check(results)

# %%
study.effect_table(P, results)

# %% [markdown]
# ## Against random latent sets of the same size

# %%
control = study.random_control(P, results)
plots.random_control(control)

# %%
control.drop(columns="random")

# %% [markdown]
# ## Dose-response

# %%
plots.dose_curves(study.dose_response(P, results))

# %% [markdown]
# ## Findings

# %%
Markdown(study.findings(P, sel, control, study.identity_check(results)))

# %% [markdown]
# ## Explore: pick a latent set, a model, a factor and a prompt

# %%
from rlgen_utils.viz.explorer import InterventionExplorer

explorer = InterventionExplorer(setup, study.explorer_sets(P, setup, sel), study.explorer_prompts(P, pool, sel),
                                max_new_tokens=P.eval.max_new_tokens)
explorer.render()
explorer.widget
