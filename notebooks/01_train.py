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
# # 01 · Train: one base, three post-training paradigms
#
# *Why does RL post-training generalize while SFT forgets?* Study A (Shi et al., ACL 2026) answers with a
# controlled comparison: an SFT model and an RL (GRPO) model are trained **from the same base on the same
# prompts** for the same number of epochs, so the paradigm is the only difference. Study B (Zhang et al., ICLR
# 2026) compares online RL with DPO. This notebook builds every model the later notebooks analyse.
#
# By default the base is a **model organism**: a small Llama-architecture LM that rlgen pretrains itself on
# synthetic task families with exactly verifiable answers. Any local Hugging Face causal LM can replace it by
# setting `model.name_or_path` in the params file; then pretraining is skipped and the same post-training runs.

# %% tags=["parameters"]
params_path = None  # None: $RLGEN_PARAMS, else the run last made by `make reproduce`, else smoke

# %%
from rlgen_utils.studies import start, train
from rlgen_utils.viz import plots

P = start(params_path)
models_used = "the organism" if P.model.is_organism else P.model.name_or_path
print(f"run folder: {P.run_dir}   model: {models_used}   seed: {P.seed}")

# %% [markdown]
# ## The task world
#
# Eight families, each with a seeded generator and an exact verifier of the final answer. **arith** is the
# in-domain "math" family (multi-step integer arithmetic; the gold solution is a short chain of thought ending in
# `####` and the answer) and the only one post-training sees. Five **OOD selection** families play the role of
# the paper's OpenBookQA / CSQA / SciQ / ARC / HeadQA — two of them multiple choice, two of them recall
# invented facts (name → colour) that are taught only in pretraining, knowledge SFT can make a model forget.
# Two **held-out** families are never used to select features (the paper's LogiQA / PIQA).
#
# A prompt's split is fixed by a hash of its text, so test prompts never occur in pretraining or post-training.
# For the fact families the test split holds (name, template) pairs that pretraining never showed: recalling
# the fact means retrieving it under an unseen phrasing.

# %%
train.family_table(P)

# %% [markdown]
# ## The base model
#
# The organism is pretrained on a mixture of all families (the in-domain one weighted up). One property of real
# pretraining corpora is built in on purpose: most arithmetic solutions in the corpus (`tasks.slip_rate`) come
# from a *sloppy solver* that drops carries and borrows (`17+5=12`). The base therefore knows both procedures
# and samples each: greedy decoding follows the sloppy majority, while sampling often finds the correct answer.
# That leaves **room for post-training** and gives RL a **signal** (pass@k well above greedy accuracy) — the
# regime in which the paper finds RL re-weighting features the base already has. With `slip_rate: 0` the
# property is off.

# %%
base = train.ensure_base(P)
log = train.pretrain_log(P)
plots.pretrain_loss(log) if log else print("pretrained elsewhere:", base)

# %%
base_scores = train.ensure_base_eval(P)
train.in_domain_summary(P, base_scores)

# %%
train.base_table(P, base_scores)

# %% [markdown]
# ## Post-training: SFT, GRPO, RLOO, DPO — and SFT → GRPO, SFT → DPO
#
# All methods start from the base (or, for the SFT → X pairs of Study B, from the final SFT model) and train for
# the same number of epochs over **the same in-domain prompts**:
#
# * **SFT** — cross-entropy on the gold chain-of-thought solutions (loss on the completion only);
# * **GRPO** — `num_generations` samples per prompt, reward 1 for an exactly correct final answer, group-relative
#   advantages, no KL term by default (`beta: 0`, as in trl's default);
# * **RLOO** — the same reward with leave-one-out baselines: a second online-RL method for Study B;
# * **DPO** — pairs of (gold solution ≻ a wrong sample of the starting model) for the same prompts.
#
# Training is cut into `posttrain.n_checkpoints` equal segments (1/5 of training each by default); each ends in a
# checkpoint loadable with `from_pretrained`, and each is scored on held-out in-domain prompts for the curves.
# An interrupted run resumes from the last finished segment. trl 1.16 has no PPO trainer, so PPO is not offered.

# %%
finals = train.ensure_posttrained(P)
logs = train.training_logs(P)
plots.training_curves(logs, train.start_accuracies(P, logs, base_scores))

# %%
train.posttrain_table(P, logs, base_scores)

# %% [markdown]
# The table gives each method's held-out in-domain accuracy (greedy, `eval.curve_n` prompts) at every
# checkpoint. Notebook 02 evaluates every model and checkpoint on every family with confidence intervals; this
# notebook only checks that each paradigm learned the in-domain task.
