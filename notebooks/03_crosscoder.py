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
# # 03 · Crosscoder: one feature space for base, SFT and RL
#
# Study A compares models *feature by feature*. A **crosscoder** reads the residual stream of several models at
# the same layer and token, encodes them jointly into **one sparse latent vector**, and decodes a separate
# reconstruction for each model (docs/METHOD.md §A2). Each latent k therefore has one decoder vector per model, and
# their norms say where the latent lives:
#
# * two models (base O, tuned T): **NRN_k = ‖W_dec,k^T‖ / (‖W_dec,k^O‖ + ‖W_dec,k^T‖)** — ≈ 0 base-only, ≈ 0.5
#   shared, ≈ 1 tuned-only;
# * three models (base, SFT, RL): **MAS_m,k = ‖W_dec,k^m‖ / Σ_m' ‖W_dec,k^m'‖** — the largest share names the owner.
#
# The paper finds that SFT grows a heavy tail of tuned-only latents while RL mostly re-weights base features.
# rlgen's crosscoder is its own (no installable package has one); it is tested on planted features in
# `tests/test_crosscoder.py`.

# %% tags=["parameters"]
params_path = None  # None: $RLGEN_PARAMS, else the run last made by `make reproduce`, else smoke

# %%
from rlgen_utils.studies import crosscoder, crosscoder_claims, difflens, findings, nulls, render, start, verdicts
from rlgen_utils.viz import plots
from rlgen_utils.viz.inspector import FeatureInspector

P = start(params_path)
C = P.crosscoder
TRIO = crosscoder.trio(P)
print(f"models: {TRIO}   sparsity: {C.sparsity} (k={C.k}, λ={C.l1_coeff})   latents: {C.n_latents}")

# %% [markdown]
# ## Activations
# The corpus mixes in-domain gold solutions with the general pretraining mixture (`crosscoder.in_domain_fraction`,
# the paper: half reasoning traces, half web text); with `crosscoder.corpus: generations` each in-domain prompt is
# answered instead by one of the three models in turn (their own greedy generations, generated once and cached).
# Every model reads the same tokens; nnsight saves the output
# of the middle decoder layer (`crosscoder.layer`); padding and BOS positions are dropped; shards stream to disk.
# Each model's activations are scaled to mean squared norm d_model, so no model dominates the loss.

# %%
acts = crosscoder.ensure_activations(P, TRIO)
crosscoder.activation_info(acts)

# %% [markdown]
# ## The three-model crosscoder and its quality
# Fraction of variance unexplained (FVU) per model, mean L0 (active latents per token) and the share of latents
# that fire on none of the held-out texts' tokens (every tenth text of the corpus; the crosscoder never trains on
# them). Dead latents are re-initialised on badly reconstructed tokens during the first 80 % of training
# (`crosscoder.resample_every`): a silent latent is detection power lost.

# %%
cc3 = crosscoder.ensure_crosscoder(P, TRIO)
plots.training_log(crosscoder.training_log(P, TRIO), list(TRIO))

# %%
crosscoder.quality(P, cc3, TRIO)

# %% [markdown]
# ## Who owns the latents (MAS), against two nulls
# A model owns a latent when its MAS exceeds `crosscoder.mas_specific_above`; otherwise the latent is shared.
# Dead latents are left out of the counts. Each count is read against the same three-model crosscoder trained on
# **identical copies** of the base (the base's activations in all three slots) and on **random updates** (each
# tuned slot holds the base moved as far as that tuned model, per tensor, in a random direction): what a slot owns
# there is what the method, or any change of that size, produces.

# %%
plots.mas_distributions(crosscoder.mas(cc3), list(TRIO), C.mas_specific_above)

# %%
null3 = nulls.ensure_null_trios(P, TRIO)
owned = crosscoder.ownership(P, cc3, TRIO, null3)
owned

# %% [markdown]
# ## Ownership read from the activations: latent scaling
# Decoder norms say where the crosscoder *puts* a latent's reconstruction; a sparsity penalty can shrink a latent's
# decoder in one model although that model's activations still carry the direction (Minder et al. 2025). Latent
# scaling fits, per latent, how much of the base's and of the tuned model's activations the latent's direction
# explains (docs/METHOD.md §A2): a tuned-specific latent has a base/tuned ratio ν near 0 for both the activations
# and the reconstruction error; a shared one has ν near 1.

# %%
crosscoder.latent_scaling(P, cc3, TRIO)

# %% [markdown]
# ## Base vs SFT and base vs RL (NRN)
# The paper's pairwise view: one two-model crosscoder per tuned model. Latent indices of different crosscoders are
# not comparable; only the NRN distributions are. Thresholds: base-only below `nrn_low`, tuned-only above
# `nrn_high`. The **null** row is a crosscoder over the base and an exact copy of it, trained the same way: what
# it calls base-only or tuned-only is the method's own noise, and every real count is read against it. The
# **random-update** rows pair the base with the base moved as far as each tuned model (per-tensor norm of the real
# update) in a random direction: what any change of that size produces.
# **Detection limit** of these counts: `docs/detection_power.md` (made by `benchmarks/detection_power.py` on the
# default run) plants tuned-only features into a copy of the base's activations and trains this same pair
# crosscoder; a count of 0 means "none above the rate and strength that table recovers", not "none".
# **Sparsity artifacts**: the paper's L1 crosscoder on the same pairs, at several penalties and at the one whose L0
# matches BatchTopK's, with the identical copy as its null, is `docs/l1_vs_batchtopk.md`
# (`benchmarks/l1_vs_batchtopk.py`; Minder et al. 2025 find L1 makes tuned-only latents that are not).

# %%
nrn = crosscoder.nrn_by_pair({**crosscoder.ensure_pairs(P, TRIO), **nulls.ensure_null_pair(P, TRIO),
                              **nulls.ensure_noise_pairs(P, TRIO)})
plots.nrn_histograms(nrn, C.nrn_low, C.nrn_high)

# %%
crosscoder.nrn_table(nrn, C.nrn_low, C.nrn_high)

# %% [markdown]
# ## Shared latents point the same way
# For latents the three-model crosscoder calls shared, the cosine between a latent's decoder vectors in two
# models: near 1 means the models use the same direction for it.

# %%
crosscoder.shared_cosines(cc3, TRIO, C.mas_specific_above)

# %% [markdown]
# The same median cosine in every null three-model crosscoder (identical copies, random updates of each tuned
# model's size): NRN and MAS cannot see a latent that a fine-tune rotated, this can, and the nulls say how much
# rotation any change of that size gives.

# %%
cosines = crosscoder.cosine_shift(P, cc3, TRIO, null3)
cosines

# %% [markdown]
# ## A second instrument: the activation difference lens
# Crosscoders can miss what a narrow fine-tune changed; the mean activation difference often does not (Minder et
# al. 2025). On texts unrelated to the in-domain task, each tuned model's residual stream minus the base's at the
# crosscoder's layer, averaged over texts at each of the first `crosscoder.lens_positions` tokens: its size
# against the stream and against the same difference for the model's random-update null (the base moved as far
# at random), the tokens the logit lens reads in it, and the base's in-domain accuracy when the difference is
# added while it answers (`crosscoder.lens_steer` factors; `rlgen_utils/method/diff_lens.py`, tested on a
# planted shift). Which of these the lens can see is for a fine-tune with a known cause to show.

# %%
difflens.lens_table(difflens.ensure_lens(P, TRIO))

# %% [markdown]
# ## What the organism shows
# Computed from the decoder norms above:

# %%
render.show(findings.record(P, crosscoder_claims.findings(P, cc3, TRIO, nrn, owned, cosines)))

# %% [markdown]
# ## Verdicts
# Each claim decided from the numbers above against its null (`rlgen_utils/studies/verdicts.py`): reproduced, not
# reproduced, or not testable at this power, with the detection limit. Recorded in the run folder
# (`verdicts/03_crosscoder.json`), from which the README's claims table is written.

# %%
verdicts.record(P, "03_crosscoder", crosscoder_claims.verdicts(P, TRIO, nrn, owned))

# %% [markdown]
# ## The features in sae-lens
# Each model's slice of the three-model crosscoder (its own encoder block, its decoder, the BatchTopK threshold as
# a per-latent JumpReLU threshold, the activation scale folded in) is written as a sae-lens SAE, so sae-lens's
# tools open rlgen's features on the model's raw residual stream: `sae_lens.SAE.load_from_disk(folder)`.
# The standard per-model baseline — a sae-lens SAE trained with sae-lens's own trainer on the base alone, read on
# every model's held-out activations (how far each tuned model moved off the base's dictionary) — is
# `docs/sae_baseline.md` (`benchmarks/sae_baseline.py`; `baselines.sae_baseline(P)` here gives the same table).

# %%
crosscoder.export_slices(P, cc3, TRIO)

# %% [markdown]
# ## Feature inspector
# Pick a latent (or sort by a model's MAS and step through ranks): decoder norms and MAS per model, activation
# histograms, and each model's top-activating contexts, highlighted per token.

# %%
inspector = FeatureInspector(cc3, list(TRIO), acts, crosscoder.tokenizer(P))
inspector.order.value = f"MAS {C.rl_method}"
inspector.widget
