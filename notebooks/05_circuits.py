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
# # 05 · Circuits: edge attribution before and after post-training (Study B)
#
# Study B (docs/METHOD.md §B) claims that **online RL** (PPO, GRPO) makes a model's internal circuitry *more active
# and more diverse* — higher activation intensity and information complexity (entropy), lower kurtosis of the
# edge-score distribution — while **DPO** does not.
#
# **The graph.** Nodes are the embedding, every attention block and every MLP block. The residual stream makes
# each block's input the sum of every earlier block's output, so an edge runs from every earlier output O to every
# later input H (and to the final residual before the unembedding).
#
# **The score** of an edge is the first-order loss change when it is removed, **I(O → H) ≈ −⟨∇_H L, O⟩**, one
# forward and one backward pass for every edge of a sample at once (nnsight hands each receiver a clone of its
# input, so ∇_H is the gradient through that receiver alone). The loss is the **truncated self-entropy**: the
# model's cross-entropy on its own first T_cut = α·T̄ answer tokens (T̄ the pair's mean answer length; α over
# `circuits.alphas`). Classic EAP (corrupted prompt: the prompt's tokens shuffled) and EAP-IG (gradients averaged
# along the path from corrupted to clean embeddings) are computed as alternatives.
#
# **Questions**: in-domain test questions both models of a pair answer correctly, with similar answer lengths
# (β ≤ T/T̄ ≤ γ, relative gap < δ), as in the paper. **Metrics** over the per-sample edge matrices: intensity
# (mean |W|), entropy of the |W| histogram (same bins for both models), mean excess kurtosis, diversity
# (1 − mean correlation between samples) and per-node entropy; beside them the scale-free entropy and kurtosis
# (each sample's |W| divided by its mean) and intensity per unit of self-entropy loss (the scores are gradients of
# that loss, which shrink as a model grows confident), and all of them again from exact ablation of every edge
# (`circuits.exact_scores`). Intervals: paired bootstrap over questions.

# %% tags=["parameters"]
params_path = None  # None: $RLGEN_PARAMS, else the run last made by `make reproduce`, else smoke

# %%
from rlgen_utils.studies import circuit_claims, circuits, circuits_exact, evaluate, findings, render, start, verdicts
from rlgen_utils.viz import plots

P = start(params_path)
C = P.circuits
print(f"pairs {P.circuit_pairs}\nalphas {C.alphas} (headline {C.main_alpha}); scores {C.scores}; "
      f"{C.n_samples} questions per pair; β={C.beta} γ={C.gamma} δ={C.delta}")

# %% [markdown]
# ## The questions of each pair

# %%
folders = circuits.ensure_all(P)
circuits.selection_table(P, folders)

# %% [markdown]
# ## Before → after: the paper's table (headline α, zero-ablation scores)
# Each cell: before → after (after − before [95 % bootstrap interval]).

# %%
table = circuits.metric_table(P, folders)
circuits.headline(P, table)

# %%
render.show(findings.record(P, circuit_claims.findings(P, table)))

# %% [markdown]
# ## Verdicts
# Each claim decided from the numbers above against its null (`rlgen_utils/studies/verdicts.py`): reproduced, not
# reproduced, or not testable at this power, with the detection limit. The power is demonstrated, not assumed
# (docs/edge_validation.md): a reading decides "not reproduced" only if it has seen a known widening of a model's
# graph as a rise, and "reproduced" only if it never read a known narrowing or a function-preserving edit as one.
# Recorded in the run folder (`verdicts/05_circuits.json`), from which the README's claims table is written.

# %%
verdicts.record(P, "05_circuits", circuit_claims.verdicts(P, table))

# %% [markdown]
# ## Robustness: every α and every score kind
# The headline should not hang on one truncation fraction or on the choice of zero ablation over EAP / EAP-IG.

# %%
for metric in ("intensity", "entropy", "kurtosis"):
    plots.metric_vs_alpha(table, metric, C.scores[0]).show()

# %%
circuit_claims.robustness(P, table)

# %% [markdown]
# ## Where the change happens: relative change per edge

# %%
g = circuits.graph(next(iter(folders.values())))
plots.edge_change_heatmaps(circuits.relative_changes(P, folders), g.senders, g.receivers)

# %%
plots.node_entropy_bars(circuits.node_entropies(P, folders))

# %% [markdown]
# ## Is first order right? Exact ablation of every edge
# On `circuits.exact_model` we remove each edge for real (one forward per edge: receiver r reads H_r − O_s) and
# compare with the first-order scores. RMSNorm makes a block's output invariant to the scale of its input, so
# ⟨∇_H L, H⟩ ≈ 0: **the first-order scores into each receiver sum to ≈ 0** and edges from the embedding into the
# first block look unimportant, while removing them changes the loss a lot. The table shows both sums.

# %%
exact = circuits_exact.ensure_exact(P, evaluate.ensure_scores(P, all_checkpoints=False))
first_KRS, exact_KRS, eg = circuits_exact.load_exact(exact)
agree = circuits_exact.agreement(first_KRS, exact_KRS, eg)
agree["per_receiver"]

# %%
plots.first_order_vs_exact(first_KRS, exact_KRS, eg.mask_RS.numpy(), eg.edge_names())

# %%
render.show(findings.record(P, circuit_claims.exact_findings(agree)))

# %% [markdown]
# ## The paper's metrics from exact ablation
# Where affordable (`circuits.exact_scores`; default: the headline α), every edge of every selected question of
# every pair is also removed for real, and the same metrics and bootstrap intervals are computed from those
# scores. A verdict that holds for first-order scores but not here rests on local sensitivities, not on what the
# edges do.

# %%
circuits.headline(P, table, score="exact")

# %%
circuit_claims.first_order_vs_exact(P, table)

# %%
render.show(findings.record(P, circuit_claims.exact_agreement_findings(P, table)))
