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
# Eleven families, each with a seeded generator and an exact verifier of the final answer. **arith** is the
# in-domain "math" family (multi-step integer arithmetic; the gold solution is a short chain of thought ending in
# `####` and the answer) and the only one post-training sees. Six **OOD selection** families play the role of
# the paper's OpenBookQA / CSQA / SciQ / ARC / HeadQA; four **held-out** families are never used to select
# features (the paper's LogiQA / PIQA). Each OOD family has a **transfer class** (docs/METHOD.md §A1), so that
# transfer *can* happen by a known mechanism — and can equally fail to:
#
# * **shared skill** (`wordsum`, `clock`, held-out `price`): the in-domain carry in another surface form (one step
#   in words, minutes that carry into the hour at 60, cents that carry into dollars at 100). The corpus's sloppy
#   solver writes their answers too.
# * **format only** (`cmp`, `mcmax`, `parity`): number tasks without carries, written in pretraining both with
#   and without a short chain and the `####` marker — answer-format discipline, a transfer channel of its own.
# * **far control** (`factmc`, `sort`, `fact`, `rev`): nothing shared with arith; invented facts (name → colour)
#   are taught only in pretraining — knowledge SFT can make a model forget.
#
# A prompt's split is fixed by a hash of its text, so test prompts never occur in pretraining or post-training.
# For the fact families the test split holds (name, template) pairs that pretraining never showed: recalling
# the fact means retrieving it under an unseen phrasing.
#
# **A real pretrained model** cannot read this compact format (its tokenizer and its pretraining never saw it). For
# one (`params/smollm2.yaml`), the same roles and transfer classes are rendered in words
# (`rlgen_utils/world/words.py`: one-step word problems in-domain, related and unrelated families out of domain,
# small multiple-choice sets under `data/mc/` as far controls), and every question is shown in the model's own
# prompt format (`model.prompt`: its chat template, or a few-shot "Question: … Answer:" for a base model). The
# table below lists this run's families, whatever the world: the prompt each model reads and its gold answer.

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
# property is off. The same sloppy solver writes `slip_rate` of the shared-skill families' answers (and only
# theirs); `chain_rate` of the shared-skill and format-only answers carry a chain and the `####` marker.
#
# The corpus as measured (a sample drawn as the pretraining batches draw it): per family, its share, how often
# its answer is the sloppy one, how often it is chained, and the share of SFT's teacher style.

# %%
train.corpus_table(P)

# %%
base = train.ensure_base(P)
log = train.pretrain_log(P)
plots.pretrain_loss(log) if log else print("pretrained elsewhere:", base)

# %%
base_scores = train.ensure_base_eval(P)
train.in_domain_summary(P, base_scores)

# %% [markdown]
# **Calibrated on the base alone.** Every out-of-domain family's greedy accuracy should lie between 0.25 and 0.85
# and above chance — room both to gain and to forget. The mixture weights (`pretrain.family_weights`) were set
# from base runs only, before any post-training; the last column says whether this base meets the range. (A real
# model's word families and their number ranges were likewise chosen from the base's accuracy alone; families it
# cannot do at all stay in the table and are reported as they are.)

# %%
train.base_table(P, base_scores)

# %% [markdown]
# ## Which SFT: a learning rate and checkpoint chosen by in-domain validation
#
# No params value names SFT's learning rate. `posttrain.sft_sweep` is a grid (one of its rates is GRPO's); SFT
# trains at every rate on the first training seed for `posttrain.sft.epochs` passes with warm-up and decay
# (`posttrain.sft`), and every checkpoint is scored on the in-domain *validation* prompts (training-split prompts no
# method trains on; the test sets stay unseen). The best (rate, checkpoint) — a tie goes to the smaller rate and the
# earlier checkpoint — is the `sft` that notebooks 02–06 analyse, that the other training seeds train at, and that
# SFT → GRPO / SFT → DPO start from. The other rates stay for notebook 02's matched-KL and matched-gain comparisons.

# %%
choice = train.ensure_sft_choice(P)
train.sft_choice_table(P)

# %% [markdown]
# ## Post-training: SFT, GRPO, RLOO, DPO — and SFT → GRPO, SFT → DPO
#
# All methods start from the base (or, for the SFT → X pairs of Study B, from the chosen SFT model) and train on
# **the same in-domain prompts** (SFT for its own number of passes, the others for `posttrain.epochs`):
#
# * **SFT** — cross-entropy on gold solutions (loss on the completion only), written in a *teacher* style that is
#   rare in pretraining (`take 37, add 8: 45, sub 3: 42 ####42`; `posttrain.sft_style`), as a teacher's traces
#   are off-policy for a real base;
# * **GRPO** — `num_generations` samples per prompt, reward 1 for an exactly correct final answer, group-relative
#   advantages, no KL term by default (`beta: 0`, as in trl's default);
# * **RLOO** — the same reward with leave-one-out baselines: a second online-RL method for Study B;
# * **DPO** — pairs of (the same teacher solution ≻ a wrong sample of the starting model) for the same prompts.
#
# Training is cut into `posttrain.n_checkpoints` equal segments (1/5 of training each by default); each ends in a
# checkpoint loadable with `from_pretrained`, and each is scored on held-out in-domain prompts for the curves.
# An interrupted run resumes from the last finished segment. trl 1.16 has no PPO trainer, so PPO is not offered.
# With `compute.processes: N` (paper scale) each method trains under `accelerate launch` on N processes — DDP, or
# DeepSpeed ZeRO-3 / FSDP from `compute.accelerate_config` — and this cell waits for it; the checkpoints, curves and
# tables below are the same either way (`rlgen_utils/run/launch.py`).

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

