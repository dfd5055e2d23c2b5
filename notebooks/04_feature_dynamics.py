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
# # 04 · Feature dynamics: how features evolve over SFT and RL training
#
# Study A's second finding (docs/METHOD.md §A3): **SFT** introduces specialised latents that *appear early and
# stabilise* (its top model-specific latents overlap strongly between checkpoints), while **RL**'s changes are
# *restrained and keep evolving* (low overlap between neighbouring checkpoints).
#
# **Method.** One crosscoder over the base and every checkpoint of both runs reads all of them on the same tokens,
# so a latent index means the same thing at every checkpoint. For each checkpoint we rank latents by NRN against
# the base (`dynamics.ranking`), keep the top K (`dynamics.top_k`, the paper's 50) and compare the sets with the
# Jaccard index. The paper trained a separate base-vs-checkpoint crosscoder per checkpoint; that cross-check is
# below, with latents matched across crosscoders by decoder cosine (`dynamics.match_threshold`). The trajectory
# crosscoder is repeated over `dynamics.crosscoder_seeds` and, when post-training ran several seeds
# (`posttrain.seeds`), over those too; intervals are [min, max] over all of these crosscoders. Every crosscoder here
# reads the first `dynamics.n_texts` texts of notebook 03's corpus (the same mix; all of it when null), since each
# collection runs all eleven models.

# %% tags=["parameters"]
params_path = None  # None: $RLGEN_PARAMS, else the run last made by `make reproduce`, else smoke

# %%
from rlgen_utils.studies import dynamics, dynamics_claims, findings, render, start, verdicts
from rlgen_utils.viz import plots

P = start(params_path)
D = P.dynamics
print(f"models: {', '.join(dynamics.trajectory_names(P))}\n"
      f"top-K {D.top_k} by {D.ranking}; crosscoder seeds {D.crosscoder_seeds}; "
      f"texts: the corpus's first {D.n_texts or P.crosscoder.n_texts} of {P.crosscoder.n_texts}")

# %% [markdown]
# ## One latent space for the whole trajectory

# %%
ccs = dynamics.ensure_all(P)
first = next(iter(ccs))
plots.training_log(dynamics.training_log(P, *first), list(dynamics.trajectory_names(P)))

# %% [markdown]
# ## Overlap of the top-K model-specific latents across checkpoints (first training and crosscoder seed)

# %%
cc0 = ccs[first]
plots.overlap_heatmaps(dynamics.overlap_matrices(P, cc0))

# %% [markdown]
# ## "Stabilises early" and "keeps evolving", over seeds

# %%
table = dynamics.overlap_table(P, ccs)
plots.overlap_curves(table)

# %%
dynamics.summary(table)

# %% [markdown]
# ## The null: identical checkpoints
# The same trajectory crosscoder with the base's activations in every checkpoint's slot. Its checkpoints differ in
# nothing, so the overlaps it shows (the base's own norm sits in every slot's NRN) are the level a real paradigm
# must leave to count as "stabilising" or "evolving".

# %%
null = dynamics.null_table(P)
dynamics.summary(null)

# %% [markdown]
# ## The null: random walks of the same geometry
# A trajectory that barely moves after its first checkpoint "stabilises" whatever it learnt. So the same
# crosscoder is trained once more (`dynamics.walk_seeds`) with every checkpoint's slot holding the base moved along
# a random walk that keeps, per tensor, that checkpoint's distance from the base and its step from the previous
# checkpoint (`rlgen_utils/method/perturb.py`), in random directions. A difference between SFT and RL that their
# random walks show too follows from how far and how steadily the weights moved, not from what was learnt.

# %%
walk = dynamics.walk_table(P)
dynamics.summary(walk) if not walk.empty else "random-walk null skipped (dynamics.walk_seeds: [])"

# %% [markdown]
# ## The null: straight lines to the final models
# A random walk keeps the steps and randomises their direction; the opposite null keeps the destination. Each
# checkpoint's slot holds the base moved straight towards its method's final checkpoint, per tensor as far as that
# checkpoint is from the base (`dynamics.line_seeds`; the last slot is the final model itself). Nothing turns on the
# way, so an ordering that the lines show too follows from how fast each method's distance grew, not from
# features that appeared and then stayed.

# %%
line = dynamics.line_table(P)
dynamics.summary(line) if not line.empty else "fixed-direction null skipped (dynamics.line_seeds: [])"

# %%
render.show(findings.record(P, dynamics_claims.null_findings(P, table, null, walk, line)))

# %% [markdown]
# ## How specific the checkpoints' latents are
# NRN against the base for every alive latent, per checkpoint, and the count above `dynamics.tuned_threshold`
# (tuned-only) per checkpoint, averaged over seeds.

# %%
plots.nrn_violins(dynamics.nrn_by_method(P, cc0))

# %%
table.pivot(index="method", columns="checkpoint", values="tuned_only")

# %% [markdown]
# ## Paper-faithful cross-check: one base-vs-checkpoint crosscoder per checkpoint
# Latents of each checkpoint's crosscoder are matched to the final checkpoint's by the cosine of their tuned-model
# decoder vectors; an unmatched latent counts as absent. If the two methods agree, the curves have the same shape.

# %%
pairs = dynamics.pairwise_table(P)
pairs

# %% [markdown]
# ## What the organism shows
# Computed from the tables above (trajectory crosscoders, the pairwise cross-check, the identical-copy null,
# the random walks and the straight lines):

# %%
render.show(findings.record(P, dynamics_claims.findings(P, table, pairs, null, walk, line)))

# %% [markdown]
# ## Verdicts
# Each claim decided from the numbers above against its null (`rlgen_utils/studies/verdicts.py`): reproduced, not
# reproduced, or not testable at this power, with the detection limit. A claim is testable only where the
# pairwise cross-check orders SFT and RL as the trajectory crosscoders do; it is reproduced only where SFT − RL
# exceeds what both geometry nulls (random walks, straight lines) give. Recorded in the run folder
# (`verdicts/04_feature_dynamics.json`), from which the README's claims table is written.

# %%
verdicts.record(P, "04_feature_dynamics", dynamics_claims.verdicts(P, table, null, walk, pairs, line))
