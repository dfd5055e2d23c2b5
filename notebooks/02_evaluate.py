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
from rlgen_utils.studies import evaluate, findings, forgetting, matched, offpolicy, prereg, render, start, train
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
# Computed from the intervals above (a change whose interval includes zero is reported as such). With several
# training seeds every interval of a difference is hierarchical: seeds, then paired samples (docs/METHOD.md §C).

# %%
render.show(findings.record(P, evaluate.findings(P, scores)))

# %%
plots.deltas(evaluate.contrasts_by_role(scores), "Change over the base, families of each role pooled")

# %% [markdown]
# ## By transfer class
# The families of each class pooled: **shared skill** (the in-domain carry in another surface form), **format
# only** (a chained answer format, no carry), **far control** (nothing shared). Transfer through the skill shows
# as a gain on shared-skill families that the far controls do not share.

# %%
by_class = evaluate.contrasts_by_class(P, scores)
plots.deltas(by_class, "Change over the base, families of each transfer class pooled")

# %%
by_class

# %% [markdown]
# What those intervals resolve, class by class (a class whose interval includes 0 is "no change resolved", never
# "no change"):

# %%
render.show(findings.record(P, evaluate.class_findings(by_class)))

# %% [markdown]
# ## The format channel
# Per family and final model: how often the answer is written with a chain and the `####` marker, and how often
# its final answer is unparseable (no letter, number or time where one is due). A gain that comes with more
# chains or fewer unparseable answers may be format discipline rather than skill.

# %%
fmt = evaluate.format_table(P, scores)
fmt.pivot_table(index=["class", "family"], columns="model", values=["chain", "unparseable"]).round(3)

# %% [markdown]
# ## How off-policy SFT's gold is
#
# SFT imitates teacher solutions (`take 77, sub 5: 72, sub 9: 63 ####63`), a style rare in pretraining. Below: the
# base's accuracy when its completion is forced to begin in that style (`take 77,` given, every step its own)
# beside its free accuracy; the share of each model's in-domain answers in each style; and the first error of each
# answer — a miscopied operand, a skipped step, a dropped carry, another wrong step, or a wrong final answer
# (`rlgen_utils/world/solutions.py`). Empty where the in-domain family is not the task world's `arith`.

# %%
off = offpolicy.measure(P, scores)
render.show(findings.record(P, off.findings)) if off else "the in-domain family is not the task world's arith"

# %%
off.forced.round(3) if off else None

# %%
off.styles.round(3) if off else None

# %%
off.errors.round(3) if off else None

# %% [markdown]
# ## The pre-registration, row by row
# `eval.preregistration` names a file written before this run: each family's expected class and the contrasts to
# be tested, with the outcome expected of each 95 % interval. Each row below says whether the measured outcome
# matched — whatever it is.

# %%
prereg_file = prereg.load(P)
prereg.class_table(P, prereg_file) if prereg_file else "no pre-registration named in eval.preregistration"

# %%
outcomes = prereg.outcome_table(P, prereg_file, scores) if prereg_file else None
render.show(findings.record(P, prereg.summary(outcomes))) if outcomes is not None else None

# %%
outcomes.drop(columns=["delta", "lo", "hi"], errors="ignore") if outcomes is not None else None

# %% [markdown]
# ## How far each method moved — and does that predict forgetting?
# Shenfeld et al. (2025) find forgetting predicted by the forward KL(π_base ‖ π) on the new task, not by the
# paradigm. For every checkpoint, training seed and SFT learning rate: KL per token on held-out in-domain prompts
# (completions sampled from the base), the share of parameters that moved (Mukherjee et al. 2025: RL updates
# 5–30 %), and the change in in-domain and out-of-domain accuracy (OOD families pooled).

# %%
sweep_scores = forgetting.ensure_sweep_scores(P)
moved = forgetting.movement_table(P, scores, sweep_scores)
fits = forgetting.kl_fits(moved)
plots.kl_vs_forgetting(moved, fits)

# %%
fits

# %%
render.show(findings.record(P, forgetting.matched_findings(P, moved, fits)))

# %%
moved[moved.final].round(4)

# %% [markdown]
# ## SFT against RL at matched KL and at matched in-domain gain
#
# Each method's models (every checkpoint; for SFT every rate of its grid) give a monotone curve through the origin
# of out-of-domain change against KL, and against in-domain gain. The curves are read only over the range **both**
# methods' models cover — a method that never moved as little as the other is not extrapolated there — and the
# difference carries an interval over training seeds (`rlgen_utils/studies/matched.py`).

# %%
render.show(findings.record(P, matched.findings(moved, rl=P.crosscoder.rl_method)))

# %%
matched.matched_table(moved, "kl", rl=P.crosscoder.rl_method).round(4)

# %%
matched.matched_table(moved, "Δ in-domain", rl=P.crosscoder.rl_method).round(4)

# %% [markdown]
# **The SFT learning-rate grid** (first training seed), each rate at the checkpoint validation prefers for it: the
# rate in-domain validation chose as `sft` in notebook 01 (training-split prompts no method trains on; the test
# sets play no part), and each rate's KL, in-domain gain and out-of-domain change next to RL's.

# %%
forgetting.sweep_table(P, moved, forgetting.ensure_validation(P)).round(4)

# %% [markdown]
# ## Over training
# Accuracy at every checkpoint (checkpoint 0 is the base). The paper analyses five checkpoints per run; so does
# notebook 04, with features instead of accuracy.

# %%
plots.checkpoint_curves(evaluate.checkpoint_curves(scores))

# %% [markdown]
# ## The samples Study A selects features on
# The selection families are the ood_select families where RL's net gain over the base is significant (the
# table above; `interventions.family_rule`): elsewhere RL's wins are balanced by its losses and there is no gain
# to explain. For each, base and RL (GRPO, first training seed) answer a pool of test prompts sized from the rate
# measured above so that the selection half holds about `interventions.min_rl_right` RL-right/base-wrong samples
# (at least `pool_per_family`, at most `pool_max` prompts). The pool splits into **RL right, base wrong** (notebook
# 06 scores latents on these) and its contrasts — base right and RL wrong, both right, both wrong. Saved as
# `runs/<name>/eval/pools.json`; the last column is the count the selection half reached.

# %%
pool_sets = evaluate.ensure_pool_sets(P)
evaluate.pool_counts(pool_sets, P)
