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
# **Selection.** For each out-of-domain selection family the pool is split in two halves (seeded): latents are
# chosen on the first and every edit is tested on the second, so selection and test never share a sample. A
# model's f_k^m is read from the three-model crosscoder of notebook 03 with `interventions.encode` (`replicate`:
# model m's activation in every slot; `own`: its own slot only), averaged over `interventions.score_positions`.
# The paper's Score_k is the mean of f_k^RL − f_k^base on the samples where RL is right and the base wrong; alone it
# also rewards latents that drift between the models on every prompt. The default rule
# (`interventions.selection: contrast`) compares it with the same difference on control samples where RL does not
# win (base-right/RL-wrong and both-right) and keeps a latent when a label-permutation test rejects "no contrast"
# under Benjamini–Hochberg control (`interventions.fdr`, `interventions.n_perm`); `selection: paper` applies the
# paper's threshold (`interventions.fraction` of the maximum). The task-agnostic set (`interventions.combine`) is by
# default **pooled**: one permutation test over all families (labels permuted within each family, the families'
# contrasts weighted by their sample counts) and a positive contrast in every family, so a latent shared by all
# families is not lost to the smallest one; the paper intersects the families' own sets. A set that is not found
# counts as absent only where the selection's simulated power for one latent of `interventions.power_effect`
# standard deviations reaches `interventions.min_power`.
#
# **Interventions**, through nnsight during greedy generation at the crosscoder's layer: **disable** multiplies the
# selected latents by 0 in RL, **amplify** by `interventions.amplify` in the base; the crosscoder's reconstruction
# error is kept, so only the latents' decoded directions change; on `interventions.edit_positions`.
#
# **Controls the paper lacks**: `interventions.n_random` random sets of the same size and firing frequency (alive
# latents outside the selected set; p can reach 1/(n_random+1)), a dose-response over `interventions.dose`, and
# the identity check (routing through the crosscoder with nothing changed must leave every generation unchanged).

# %% tags=["parameters"]
params_path = None  # None: $RLGEN_PARAMS, else the run last made by `make reproduce`, else smoke

# %%
from rlgen_utils.studies import explorer_inputs, findings, intervention_claims, render, start, verdicts
from rlgen_utils.studies import interventions as study
from rlgen_utils.viz import plots

P = start(params_path)
I = P.interventions
print(f"selection families {study.selection_families(P)}; rule={I.selection}, encode={I.encode}, "
      f"positions={I.score_positions}, combine={I.combine}; edits on {I.edit_positions} positions, "
      f"amplify ×{I.amplify}; {I.n_random} random sets")

# %% [markdown]
# ## Selection half: RL-right / base-wrong against control samples, and each family's latent set

# %%
setup = study.Setup(P)
pool = study.ensure_pool(P)
sel = study.ensure_selection(P, setup, pool)
intervention_claims.set_table(sel)

# %%
plots.score_curves(sel.scores, I.fraction if sel.rule == "paper" else None)

# %%
plots.family_overlap(*intervention_claims.family_overlap(sel))

# %% [markdown]
# ## Disable in RL, amplify in the base: the intervention table
# Accuracy change in points (edited − unedited on the same samples, 95 % paired bootstrap), on the test half's
# RL-right/base-wrong samples (`rw:`) and on whole families (`all:`; the test half of selection families, held-out
# and in-domain families).

# %%
results = study.ensure_conditions(P, setup, pool, sel)
study.identity_check(results)

# %%
study.effect_table(P, results)

# %% [markdown]
# ## Against random latent sets of the same size and firing frequency

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
render.show(findings.record(P, intervention_claims.findings(P, sel, control, study.identity_check(results))))

# %% [markdown]
# ## Verdicts
# Each claim decided from the numbers above against its null (`rlgen_utils/studies/verdicts.py`): reproduced, not
# reproduced, or not testable at this power, with the detection limit. Recorded in the run folder
# (`verdicts/06_interventions.json`), from which the README's claims table is written. Absence is read against
# demonstrated power: "no set" or "the edit moves nothing" counts as "not reproduced" only where the same selection
# and edit found a behaviour whose cause is known (a fine-tune of the base that answers `cmp` with the minimum,
# `benchmarks/bench_ablation_validation.py` → [docs/ablation_validation.md](../docs/ablation_validation.md)), and a
# causal find only where no control fine-tune was "lowered"; the verdict's detection limit says what that validation found.

# %%
verdicts.record(P, "06_interventions", intervention_claims.verdicts(P, sel, control))

# %% [markdown]
# ## Explore: pick a latent set, a model, a factor and a prompt

# %%
from rlgen_utils.viz.explorer import InterventionExplorer

explorer = InterventionExplorer(setup, explorer_inputs.sets(P, setup, sel), explorer_inputs.prompts(P, pool, sel),
                                max_new_tokens=P.eval.max_new_tokens)
explorer.render()
explorer.widget
