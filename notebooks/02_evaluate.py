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
# # 02 · Evaluate: in-domain and out-of-domain accuracy of every model and checkpoint
#
# Study A's first finding (Shi et al., Table 1) is behavioural: trained from the same base on the same math
# prompts, **SFT gains in-domain but forgets out of domain** (Qwen3-4B: SciQ 78.5 → 51.8), while **RL gains
# in-domain and keeps or improves out of domain** (SciQ 89.5). This notebook measures the same thing for every
# model that notebook 01 trained — base, SFT, GRPO, RLOO, DPO, SFT→GRPO, SFT→DPO and each of their checkpoints —
# and produces the per-sample correctness that notebooks 03 and 06 select samples from.
#
# **How.** Greedy decoding in batches (left padding, KV cache), then each family's exact verifier of the final
# answer. Every accuracy carries a 95 % bootstrap interval over samples (and over training seeds when
# `posttrain.seeds` lists several); a difference between two models is bootstrapped over *paired* samples, since
# both models answer the same questions.

# %% tags=["parameters"]
params_path = None  # None: $RLGEN_PARAMS, else the run last made by `make reproduce`, else smoke

# %%
from IPython.display import Markdown

from rlgen_utils.studies import evaluate, start, train
from rlgen_utils.viz import plots

P = start(params_path)
print(f"run folder: {P.run_dir}   training seeds: {P.train_seeds}")

# %% [markdown]
# ## What is evaluated
# Every family's held-out test split (task world) and every local benchmark file named in `data.benchmarks`.

# %%
train.family_table(P)

# %% [markdown]
# ## Per-sample correctness
# One row per model × training seed × checkpoint × family × sample, saved as
# `runs/<name>/eval/per_sample.parquet`. Each model's rows are cached, so re-running scores only new models.

# %%
scores = evaluate.ensure_scores(P)
scores.groupby(["method", "checkpoint"]).correct.mean().unstack("checkpoint").round(3)

# %% [markdown]
# ## Table 1 at the organism's scale
# Final models, greedy accuracy with 95 % intervals; the last rows are paired differences. Chance is 1/3 for
# the multiple-choice families and 1/8 for `fact`.

# %%
evaluate.table1(scores, P)

# %% [markdown]
# ## What the organism shows
# Computed from the intervals above (a change whose interval includes zero is reported as such):

# %%
Markdown(evaluate.findings(P, scores))

# %%
plots.deltas(evaluate.contrasts_by_role(scores), "Change over the base, families of each role pooled")

# %% [markdown]
# ## Over training
# Accuracy at every checkpoint (checkpoint 0 is the base). The paper analyses five checkpoints per run; so does
# notebook 04, with features instead of accuracy.

# %%
plots.checkpoint_curves(evaluate.checkpoint_curves(scores))

# %% [markdown]
# ## The samples Study A selects features on
# For each out-of-domain family: the samples where the final RL (GRPO) model is right and the base is wrong
# (notebook 06 scores latents on these), and, for contrast, where SFT is right and the base wrong. Saved as
# `runs/<name>/eval/right_wrong.json`.

# %%
sets = evaluate.ensure_right_wrong(P, scores)
evaluate.right_wrong_counts(sets).pivot_table(index="family", columns="set", values="n_samples", aggfunc="sum")
