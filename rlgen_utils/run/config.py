"""Typed params: every ``params/*.yaml`` is validated here before any compute.

A bad value produces :class:`ParamsError` whose message is one line naming the file and the key, e.g.
``params/x.yaml: posttrain.grpo.lr: Input should be greater than 0 (got -1.0)``. ``python -m rlgen_utils.run.config
FILE`` validates a file from the shell (exit 2 on error).

Example (the smoke file, abridged)::

    name: smoke
    seed: 0
    model: {name_or_path: organism, organism: {d_model: 64, n_layers: 2, n_heads: 2, d_ff: 256}}
    pretrain: {steps: 60, batch_rows: 16, seq_len: 96, lr: 3.0e-3}
    posttrain:
      methods: [sft, grpo, rloo, dpo, sft_grpo, sft_dpo]
      n_train_prompts: 64
      grpo: {lr: 5.0e-5, num_generations: 4, completions_per_step: 16}
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import sys
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .errors import ParamsError, one_line_error
from .modelfiles import compare
from .preregistration import load_preregistration
from .rundir import RunDirError, check, repo_path

METHODS = ("sft", "grpo", "rloo", "dpo", "sft_grpo", "sft_dpo")
Method = Literal["sft", "grpo", "rloo", "dpo", "sft_grpo", "sft_dpo"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class OrganismCfg(Strict):
    d_model: int = Field(default=128, ge=8, le=4096)
    n_layers: int = Field(default=4, ge=1, le=64)
    n_heads: int = Field(default=4, ge=1, le=64)
    d_ff: int = Field(default=512, ge=8)
    max_len: int = Field(default=192, ge=32, le=8192)

    @model_validator(mode="after")
    def _heads_divide(self):
        if self.d_model % self.n_heads:
            raise ValueError(f"n_heads: {self.n_heads} must divide d_model ({self.d_model})")
        return self


class PromptCfg(Strict):
    """How a question becomes a prompt (:mod:`rlgen_utils.world.prompting`): one place, used by evaluation, SFT
    targets, RL prompts and rewards, DPO pairs, activation corpora, circuit questions and interventions."""
    style: Literal["organism", "plain", "chat"] | None = Field(default=None, description=
        "organism: the task world's compact format; plain: 'Question: …\\nAnswer:' (base models, with n_shots "
        "worked examples: few-shot); chat: the tokenizer's chat template (instruct models). null: organism for the "
        "organism, plain otherwise")
    system: str | None = Field(default=None, description="chat: the system message (null: none, and a template "
                               "may then insert its own default)")
    n_shots: int = Field(default=0, ge=0, le=16, description="worked in-domain examples shown before every "
                         "math-kind question (chat: as earlier turns)")
    math_instruction: str | None = Field(default=None, description="chat: appended to a math question; null: "
                                         "the one asking for the marker ('####', \\boxed{}, 'The answer is') that "
                                         "the worked examples and SFT targets use (a different marker is an error)")
    mc_instruction: str = Field(default="Answer with the letter of the correct choice.", description="chat: "
                                "appended to a generated multiple-choice question")


class ModelCfg(Strict):
    name_or_path: str = Field(default="organism", min_length=1,
                              description="'organism' (pretrained here) or a local Hugging Face model folder")
    organism: OrganismCfg = Field(default_factory=OrganismCfg)
    dtype: Literal["float32", "bfloat16"] = "float32"
    prompt: PromptCfg = Field(default_factory=PromptCfg)

    @property
    def is_organism(self) -> bool:
        return self.name_or_path == "organism"

    @property
    def prompt_style(self) -> str:
        """The prompt style in effect: as set, else ``organism`` for the organism and ``plain`` for any other."""
        return self.prompt.style or ("organism" if self.is_organism else "plain")

    @model_validator(mode="after")
    def _style_fits(self):
        if self.is_organism and self.prompt_style != "organism":
            raise ValueError(f"prompt: style {self.prompt_style!r} needs a real tokenizer; the organism reads only "
                             f"its own format (style: organism)")
        return self


class TasksCfg(Strict):
    test_fraction: float = Field(default=0.2, gt=0, lt=1)
    min_ops: int = Field(default=2, ge=1, le=8)
    max_ops: int = Field(default=3, ge=1, le=8)
    first_max: int = Field(default=99, ge=10, le=99)
    operand_max: int = Field(default=9, ge=2, le=99)
    slip_rate: float = Field(default=0.65, ge=0, le=1, description="fraction of sloppy arith (and shared-skill) "
                             "answers in pretraining")
    chain_rate: float = Field(default=0.5, ge=0, le=1, description="fraction of chained (####) answers of the "
                              "shared-skill and format-only families in pretraining")
    shared_chain_rate: float | None = Field(default=None, ge=0, le=1, description="fraction of chained answers "
                                            "of the shared-skill families alone (default chain_rate): a chained "
                                            "answer computes its carry step in arith's notation")
    teacher_rate: float = Field(default=0.02, ge=0, le=1, description="fraction of teacher-style arith solutions "
                                "in pretraining (SFT's style; keep it rare)")
    n_facts: int = Field(default=120, ge=8, le=2000)

    @model_validator(mode="after")
    def _ops_order(self):
        if self.max_ops < self.min_ops:
            raise ValueError(f"max_ops: {self.max_ops} must be >= min_ops ({self.min_ops})")
        return self


class PretrainCfg(Strict):
    steps: int = Field(default=700, ge=1)
    batch_rows: int = Field(default=32, ge=1)
    seq_len: int = Field(default=96, ge=16)
    lr: float = Field(default=2e-3, gt=0, lt=1)
    warmup_steps: int = Field(default=30, ge=0)
    weight_decay: float = Field(default=0.01, ge=0)
    in_domain_weight: float = Field(default=3.0, gt=0)
    family_weights: dict[str, float] = Field(default={}, description="mixture weight of named out-of-domain "
                                             "families (default 1)")
    n_checkpoints: int = Field(default=5, ge=1, le=100)
    seed: int | None = Field(default=None, ge=0, description="the base's own seed (initialisation and corpus "
                             "order; default the top-level seed): bases that differ only here answer the same "
                             "evaluation prompts, so their results pair sample by sample")


class SFTCfg(Strict):
    """SFT's optimiser settings. Its learning rate is not here: in-domain validation chooses it (and the checkpoint)
    from ``posttrain.sft_sweep`` (:func:`rlgen_utils.studies.train.ensure_sft_choice`)."""
    batch_size: int = Field(default=16, ge=1)
    epochs: int | None = Field(default=None, ge=1, description="SFT's passes over the training prompts (default "
                               "posttrain.epochs): imitation of an off-policy style needs more passes than RL")
    warmup: float = Field(default=0.0, ge=0, lt=1, description="share of SFT's optimizer steps warmed up linearly")
    schedule: Literal["constant", "linear", "cosine"] = Field(default="constant", description="SFT's learning-rate "
                                                             "decay over the whole run (every segment together)")

    @model_validator(mode="before")
    @classmethod
    def _no_rate(cls, data):
        if isinstance(data, dict) and "lr" in data:
            raise ValueError("lr: SFT's learning rate is chosen by in-domain validation; list candidate rates in "
                             "posttrain.sft_sweep instead")
        return data


class OnlineRLCfg(Strict):
    lr: float = Field(default=3e-5, gt=0, lt=1)
    num_generations: int = Field(default=8, ge=2)
    completions_per_step: int = Field(default=32, ge=2)
    max_completion_length: int = Field(default=48, ge=1)
    temperature: float = Field(default=1.0, gt=0)
    beta: float = Field(default=0.0, ge=0)
    use_vllm: bool = Field(default=False, description="generate rollouts with vLLM through trl (colocate mode: the "
                           "trainer's GPUs); vLLM is an optional extra, not installed on CPU machines")

    @model_validator(mode="after")
    def _groups_fit(self):
        if self.completions_per_step % self.num_generations:
            raise ValueError(f"completions_per_step: {self.completions_per_step} must be a multiple of "
                             f"num_generations ({self.num_generations})")
        return self


class DPOCfg(Strict):
    lr: float = Field(default=5e-5, gt=0, lt=1)
    beta: float = Field(default=0.1, gt=0)
    batch_size: int = Field(default=16, ge=1)
    samples_per_prompt: int = Field(default=4, ge=1, description="base samples searched for a wrong (rejected) answer")


class PosttrainCfg(Strict):
    methods: list[Method] = list(METHODS)
    seeds: list[int] | None = Field(default=None, min_length=1, description="training seeds; default [top-level seed]")
    n_train_prompts: int = Field(default=512, ge=4)
    epochs: int = Field(default=1, ge=1)
    n_checkpoints: int = Field(default=5, ge=1, le=50)
    sft_style: Literal["teacher", "pretraining"] = Field(default="teacher", description="task world: SFT/DPO gold "
                                                         "in the teacher style (rare in pretraining) or the corpus's")
    sft_sweep: list[float] = Field(default=[], description="SFT's learning-rate grid, trained on the first seed: "
                                   "in-domain validation picks the rate and checkpoint that is `sft`; the others "
                                   "serve the matched-KL and matched-gain comparisons")
    sft: SFTCfg = Field(default_factory=SFTCfg)
    grpo: OnlineRLCfg = Field(default_factory=OnlineRLCfg)
    rloo: OnlineRLCfg = Field(default_factory=OnlineRLCfg)
    dpo: DPOCfg = Field(default_factory=DPOCfg)

    @model_validator(mode="after")
    def _dependencies(self):
        for m in ("sft_grpo", "sft_dpo"):
            if m in self.methods and "sft" not in self.methods:
                raise ValueError(f"methods: {m} starts from the SFT model, so 'sft' must be in methods")
        if len(set(self.methods)) != len(self.methods):
            raise ValueError("methods: must not repeat")
        if any(not 0 < lr < 1 for lr in self.sft_sweep) or len(set(self.sft_sweep)) != len(self.sft_sweep):
            raise ValueError(f"sft_sweep: learning rates must be distinct and in (0, 1), got {self.sft_sweep}")
        if self.sft_sweep and "sft" not in self.methods:
            raise ValueError("sft_sweep: needs 'sft' in methods")
        if self.seeds is not None and (len(set(self.seeds)) != len(self.seeds) or min(self.seeds) < 0):
            raise ValueError("seeds: must be distinct non-negative integers")
        return self


Scoring = Literal["generate", "loglik", "loglik_norm"]


class BenchmarkCfg(Strict):
    name: str = Field(..., pattern=r"^[A-Za-z0-9_.-]+$")
    path: str
    kind: Literal["multiple_choice", "math"]
    role: Literal["in_domain", "ood_select", "ood_heldout"]
    limit: int | None = Field(default=None, ge=1, description="evaluate the first N examples only")
    transfer: Literal["shared_skill", "format_only", "far_control", "unclassified"] = Field(
        default="unclassified", description="what it shares with the in-domain data (the pre-registration's class)")
    scoring: Scoring = Field(default="generate", description="multiple choice: generate an answer and read the "
                             "letter (or the choice's text), or pick the choice whose text is likeliest after the "
                             "question (cloze form, lm-evaluation-harness's acc; loglik_norm: per character, its "
                             "acc_norm)")

    @model_validator(mode="after")
    def _scoring_fits(self):
        if self.kind == "math" and self.scoring != "generate":
            raise ValueError(f"scoring: {self.scoring!r} needs choices; a math benchmark is scored by generation")
        return self


class DataCfg(Strict):
    """Where training prompts and evaluation sets come from. The first ``in_domain`` benchmark (or the task
    world's ``arith``) is the primary in-domain set: training curves and pass@k use it."""
    task_world: bool = Field(default=True, description="evaluate the synthetic task families (the organism's "
                             "compact format)")
    word_world: bool = Field(default=False, description="the task world in words for a real tokenizer "
                             "(rlgen_utils/world/words.py): one-step word problems in-domain, related and unrelated "
                             "families out of domain")
    train_file: str | None = Field(default=None, description="JSONL of {problem, solution, answer}: in-domain "
                                                     "post-training prompts instead of the task world's arith")
    benchmarks: list[BenchmarkCfg] = []

    @model_validator(mode="after")
    def _evaluable(self):
        names = [b.name for b in self.benchmarks]
        if len(set(names)) != len(names):
            raise ValueError("benchmarks: names must be distinct")
        if self.task_world and self.word_world:
            raise ValueError("word_world: the organism's task world and its version in words are two worlds; "
                             "switch one off (task_world: false)")
        if not (self.task_world or self.word_world) and not any(b.role == "in_domain" for b in self.benchmarks):
            raise ValueError("benchmarks: without the task world, one benchmark must have role in_domain")
        if self.train_file and self.word_world:
            raise ValueError("train_file: the word world trains on its own in-domain family; drop one")
        return self


class CrosscoderCfg(Strict):
    """Study A's shared feature space (notebook 03). Thresholds are stated in the notebook."""
    layer: int | None = Field(default=None, ge=0, description="decoder layer whose output is read; default the middle")
    n_texts: int = Field(default=6000, ge=8, description="corpus size in texts (prompt + gold completion)")
    in_domain_fraction: float = Field(default=0.5, ge=0, le=1, description="share of in-domain solutions; the rest is "
                                                                   "the general pretraining mixture")
    corpus: Literal["gold", "generations"] = Field(default="gold", description="the in-domain texts: gold solutions, "
                                                   "or each in-domain prompt answered greedily by one of Study A's "
                                                   "models in turn (their own generations)")
    max_len: int = Field(default=128, ge=8)
    collect_batch_size: int = Field(default=256, ge=1, description="texts per forward pass when collecting activations")
    shard_tokens: int = Field(default=65_536, ge=256)
    n_latents: int = Field(default=1024, ge=8)
    sparsity: Literal["batchtopk", "l1"] = "batchtopk"
    k: int = Field(default=16, ge=1, description="batchtopk: mean active latents per token")
    l1_coeff: float = Field(default=2.0, ge=0, description="l1: sparsity coefficient λ (the paper's 2)")
    lr: float = Field(default=1e-3, gt=0, lt=1)
    batch_size: int = Field(default=1024, ge=8)
    steps: int = Field(default=2000, ge=1)
    pair_steps: int = Field(default=1500, ge=1, description="steps for each two-model (base vs tuned) crosscoder")
    dead_after_tokens: int = Field(default=200_000, ge=1)
    resample_every: int = Field(default=50, ge=0, description="steps between re-initialisations of dead latents "
                                "(first 80 % of training; 0 = never)")
    sft_method: Method = "sft"
    rl_method: Method = "grpo"
    lens_positions: int = Field(default=5, ge=1, le=64, description="activation difference lens: first token "
                                "positions (after BOS) read on unrelated texts")
    lens_texts: int = Field(default=256, ge=2, description="activation difference lens: unrelated texts read")
    lens_steer: list[float] = Field(default=[1.0, 4.0], min_length=1, description="activation difference lens: "
                                    "factors on the mean difference added to the base while it answers")
    mas_specific_above: float = Field(default=0.7, gt=0.5, lt=1, description="MAS share above which a model owns a latent")
    nrn_low: float = Field(default=0.3, gt=0, lt=0.5)
    nrn_high: float = Field(default=0.7, gt=0.5, lt=1)


class DynamicsCfg(Strict):
    """Feature dynamics over checkpoints (notebook 04)."""
    top_k: int = Field(default=50, ge=1, description="model-specific latents kept per checkpoint (the paper: 50)")
    ranking: Literal["nrn", "mas"] = "nrn"
    tuned_threshold: float = Field(default=0.7, gt=0.5, lt=1, description="NRN above which a latent is tuned-only")
    match_threshold: float = Field(default=0.7, gt=0, lt=1, description="decoder cosine for matching latents across "
                                                                "separately trained crosscoders")
    n_latents: int = Field(default=512, ge=8)
    n_texts: int | None = Field(default=None, ge=1, description="texts of the crosscoder corpus (its first n: the "
                                "same mix) whose activations the trajectory, its nulls and the pairwise crosscoders "
                                "read; each of those collections runs every checkpoint; null = all crosscoder.n_texts")
    steps: int = Field(default=600, ge=1)
    pair_steps: int = Field(default=250, ge=1)
    crosscoder_seeds: list[int] = Field(default=[0, 1], min_length=1)
    walk_seeds: list[int] = Field(default=[0], description="crosscoder seeds of the random-walk null (each one a "
                                  "trajectory crosscoder over the base and every checkpoint's random-walk copy; "
                                  "[] = skip it)")
    line_seeds: list[int] = Field(default=[0], description="crosscoder seeds of the fixed-direction null (each one "
                                  "a trajectory crosscoder over the base and every checkpoint moved straight "
                                  "towards its method's final model, as far as the checkpoint; [] = skip it)")


ModelName = str  # "base" or a post-training method


class TrainedElsewhereCfg(Strict):
    """A method's models trained outside rlgen (verl, OpenRLHF, a public release): notebook 01 skips it."""
    checkpoints: list[str] = Field(..., min_length=1, description="local model folders in training order; the last "
                                   "is the final model (their number must equal posttrain.n_checkpoints)")


PAPER_PAIRS = (("sft", "sft_grpo"), ("sft", "sft_dpo"), ("base", "sft"), ("base", "grpo"), ("base", "rloo"),
               ("base", "dpo"))


class CircuitsCfg(Strict):
    """Study B: edge attribution before → after post-training (notebook 05)."""
    pairs: list[tuple[ModelName, ModelName]] | None = Field(default=
        None, description="(before, after) model pairs; null = the paper's pairs whose models are trained")
    n_samples: int = Field(default=100, ge=2, description="questions per pair (the paper: 100)")
    both_correct: bool = Field(default=True, description="keep questions both models answer correctly (the paper)")
    beta: float = Field(default=0.5, gt=0, description="answer length / mean answer length at least beta")
    gamma: float = Field(default=1.5, gt=0, description="… and at most gamma")
    delta: float = Field(default=0.5, gt=0, le=1, description="relative answer-length gap between the two models below")
    alphas: list[float] = Field(default=[0.03, 0.1, 0.3, 0.5], min_length=1,
                                description="truncation T_cut = alpha · mean answer length")
    main_alpha: float = Field(default=0.3, description="the alpha of the headline table; one of alphas")
    scores: list[Literal["zero", "eap", "eap_ig"]] = Field(default=["zero", "eap", "eap_ig"], min_length=1)
    ig_steps: int = Field(default=5, ge=1, le=100)
    n_bins: int = Field(default=100, ge=2, description="histogram bins of the entropy (same edges for both models)")
    min_questions: int = Field(default=10, ge=2, description="a pair with fewer selected questions is shown but "
                               "does not count in the verdict (not testable at that power)")
    min_effect: float = Field(default=0.05, gt=0, description="the smallest rise the claim is about, relative to "
                              "the metric's value before: a pair shows 'no rise' only when its interval excludes "
                              "a rise this large, and a pair whose interval allows both is undecided")
    n_boot: int = Field(default=1000, ge=10)
    batch_size: int = Field(default=32, ge=1)
    exact_scores: Literal["none", "main_alpha", "every_alpha"] = Field(default="main_alpha", description=
        "exact ablation of every edge on every selected question of every pair (one forward per edge), scored like "
        "the first-order kinds: at the headline alpha, at every alpha, or not at all")
    exact_model: ModelName = Field(default="base", description="model whose first-order scores are checked by ablation")
    exact_n_samples: int = Field(default=16, ge=0, description="samples for the exact-ablation check (0 = skip)")

    @model_validator(mode="after")
    def _ranges(self):
        if any(not 0 < a <= 1 for a in self.alphas):
            raise ValueError(f"alphas: every alpha must be in (0, 1], got {self.alphas}")
        if self.main_alpha not in self.alphas:
            raise ValueError(f"main_alpha: {self.main_alpha} is not one of alphas {self.alphas}")
        if self.gamma < self.beta:
            raise ValueError(f"gamma: {self.gamma} is below beta ({self.beta})")
        return self


class InterventionsCfg(Strict):
    """Study A §A4–A5: generalization features and their causal test (notebook 06)."""
    families: list[str] | None = Field(default=None, description="selection families; null = the ood_select "
                                       "families chosen by family_rule")
    family_rule: Literal["significant", "all"] = Field(default="significant", description="with families null: "
                                                       "'significant' = the ood_select families where RL's net gain "
                                                       "over the base (notebook 02, final models) has its interval "
                                                       "above 0; 'all' = every ood_select family")
    pool_per_family: int = Field(default=1000, ge=1, description="test prompts per selection family searched for "
                                                         "RL-right/base-wrong samples (at least)")
    min_rl_right: int = Field(default=150, ge=0, description="RL-right/base-wrong samples the selection half should "
                              "hold per family: a family's pool grows past pool_per_family by the rate 02 measured, "
                              "up to pool_max and the family's prompt space; 0 keeps pool_per_family")
    pool_max: int = Field(default=4000, ge=1, description="most test prompts per selection family")
    selection: Literal["contrast", "paper"] = Field(default="contrast", description="contrast: RL-right/base-wrong "
                                                    "against base-right/RL-wrong and both-right samples, kept by a "
                                                    "permutation test; paper: Score_k above `fraction` of its maximum")
    fraction: float = Field(default=0.2, gt=0, lt=1, description="paper selection: keep latents above this share "
                                                               "of a family's max Score")
    fdr: float = Field(default=0.05, gt=0, lt=1, description="contrast selection: Benjamini–Hochberg false-discovery "
                                                            "rate over the alive latents")
    n_control: int = Field(default=100, ge=1, description="contrast selection: at most this many control samples "
                                                         "per family (a seeded subset of the selection half's)")
    n_perm: int = Field(default=39999, ge=19, description="label permutations per family (smallest p "
                                                         "1/(n_perm+1); one latent of m passes BH only if that is "
                                                         "≤ fdr/m)")
    encode: Literal["replicate", "own"] = Field(default="replicate", description="how f_k^m is read from the joint "
                                                "crosscoder: model m's activation in every slot, or in its own")
    score_positions: Literal["prompt", "all"] = Field(default="prompt", description="tokens averaged for f_k^m: the "
                                                      "prompt, or the prompt and the RL model's answer")
    min_samples: int = Field(default=2, ge=1, description="families with fewer RL-right/base-wrong samples get no set")
    combine: Literal["pooled", "intersection", "union"] = Field(
        default="pooled", description="task-agnostic set: pooled = one stratified permutation test over the "
        "families with a positive contrast in every family (contrast selection only; with selection paper the "
        "default is intersection); intersection (the paper) or union of the families' own sets")
    power_effect: float = Field(default=0.5, gt=0, description="standardized effect (target − control, in SDs of "
                                "the paired difference) of one latent whose detection power decides testability")
    min_power: float = Field(default=0.8, gt=0, lt=1, description="simulated power the selection needs for "
                             "'not found' to count as evidence (else: not testable at this power)")
    edit_positions: Literal["prompt", "generated", "both"] = "both"
    amplify: float = Field(default=4.0, gt=1, description="factor on the selected latents in the base model")
    dose: list[float] = Field(default=[0.0, 0.5, 1.0, 2.0, 4.0, 8.0], min_length=2,
                              description="factors of the dose-response curve")
    n_random: int = Field(default=100, ge=2, description="random latent sets of the same size and firing frequency "
                                                        "(the control; p can reach 1/(n_random+1))")
    alpha: float = Field(default=0.05, gt=0, lt=1, description="level of the random-set test of the causal claim")
    n_eval: int = Field(default=100, ge=1, description="prompts per family for whole-family evaluation")
    n_boot: int = Field(default=1000, ge=10)

    @model_validator(mode="after")
    def _dose(self):
        if self.combine == "pooled" and self.selection == "paper" and "combine" not in self.model_fields_set:
            object.__setattr__(self, "combine", "intersection")    # the paper's rule, combined as the paper does
        if self.combine == "pooled" and self.selection == "paper":
            raise ValueError("combine: pooled needs selection: contrast (the paper's rule has no test to pool); "
                             "use intersection or union")
        if any(d < 0 for d in self.dose):
            raise ValueError(f"dose: factors must be ≥ 0, got {self.dose}")
        return self


class EvalCfg(Strict):
    n_per_family: int = Field(default=200, ge=1)
    curve_n: int = Field(default=100, ge=1, description="in-domain prompts per checkpoint for training curves")
    pass_k: int = Field(default=8, ge=1)
    max_new_tokens: int = Field(default=48, ge=1)
    batch_size: int = Field(default=128, ge=1)
    preregistration: str | None = Field(default=None, description="a prereg/*.yaml stating the expected outcomes "
                                        "before the run; notebook 02 reports whether each matched")


class ComputeCfg(Strict):
    """How the work is launched. ``processes: 1`` runs everything in the notebook's own process; more launches each
    method's training with ``accelerate launch`` (:mod:`rlgen_utils.run.launch`) — trl's trainers then run
    data-parallel (DDP, or DeepSpeed ZeRO / FSDP from an accelerate config file), each rank a slice of every global
    batch, so batch sizes in ``posttrain`` stay global — and deals evaluation, activation collection and edge
    attribution over the same number of ranks. Not part of any stage key: the same params give the same models."""
    processes: int = Field(default=1, ge=1, le=1024, description="processes (GPUs) per launch")
    accelerate_config: str | None = Field(default=None, description="an accelerate config file (DDP, DeepSpeed "
                                          "ZeRO-3, FSDP: see params/accelerate/); null: plain DDP")
    main_process_port: int | None = Field(default=None, ge=1024, le=65535, description="rendezvous port; null: a "
                                          "free one")
    micro_batches: int = Field(default=1, ge=1, le=4096, description="gradient-accumulation steps per global batch "
                               "on each rank: activation memory ÷ micro_batches, the same optimizer steps")
    jobs: int = Field(default=1, ge=1, le=64, description="independent trainings (01) and model evaluations (02) "
                      "run at once in this many worker processes on one machine, each writing the same bytes as one "
                      "process (rlgen_utils.run.jobs); not with processes > 1")

    @model_validator(mode="after")
    def _one_kind_of_parallelism(self):
        if self.jobs > 1 and self.processes > 1:
            raise ValueError(f"jobs: {self.jobs} worker processes and processes: {self.processes} ranks per launch "
                             "do not combine; set one of them to 1")
        return self


class KnownCausesCfg(Strict):
    """Fine-tunes of the base whose cause is known (``studies.known_causes``; the instrument validation of
    ``benchmarks/bench_instrument_validation.py``): a new behaviour confined to one family, facts taught only in
    the fine-tune, facts the base knows remapped, and a control that teaches the base's own answers — each at
    several doses (the share of the fine-tune's rows that carry the cause; the rest is pretraining-like text)."""
    causes: list[Literal["behaviour", "new_facts", "remapped_facts", "control"]] = Field(
        default=["behaviour", "new_facts", "remapped_facts", "control"], min_length=1)
    doses: list[float] = Field(default=[0.1, 0.3, 1.0], min_length=1, description="share of rows carrying the cause")
    family: Literal["cmp", "larger"] | None = Field(default=None, description="the family whose answers the "
                        "behaviour changes (max → min) and whose prompts the control answers as the base does: the "
                        "organism's cmp, or the word world's larger (a real LM; its facts are then written in words); "
                        "null = the run's world's")
    n_rows: int = Field(default=512, ge=8, description="rows of every fine-tune (same budget for every cause)")
    epochs: int = Field(default=4, ge=1)
    lr: float = Field(default=3.0e-4, gt=0, lt=1)
    n_new_facts: int = Field(default=64, ge=4, description="invented names the new-facts fine-tune teaches")
    n_eval: int = Field(default=200, ge=10, description="prompts that measure whether the cause was learnt")

    @model_validator(mode="after")
    def _doses(self):
        if any(not 0 < d <= 1 for d in self.doses):
            raise ValueError(f"doses: shares must lie in (0, 1], got {self.doses}")
        return self


class Params(Strict):
    name: str = Field(..., pattern=r"^[A-Za-z0-9_.-]+$")
    seed: int = Field(default=0, ge=0)
    run_root: str = "runs"
    threads: int = Field(default=0, ge=0, description="torch threads; 0 = library default")
    model: ModelCfg = Field(default_factory=ModelCfg)
    tasks: TasksCfg = Field(default_factory=TasksCfg)
    pretrain: PretrainCfg | None = Field(default_factory=PretrainCfg)
    posttrain: PosttrainCfg = Field(default_factory=PosttrainCfg)
    data: DataCfg = Field(default_factory=DataCfg)
    eval: EvalCfg = Field(default_factory=EvalCfg)
    crosscoder: CrosscoderCfg = Field(default_factory=CrosscoderCfg)
    dynamics: DynamicsCfg = Field(default_factory=DynamicsCfg)
    circuits: CircuitsCfg = Field(default_factory=CircuitsCfg)
    interventions: InterventionsCfg = Field(default_factory=InterventionsCfg)
    compute: ComputeCfg = Field(default_factory=ComputeCfg)
    known_causes: KnownCausesCfg = Field(default_factory=KnownCausesCfg)
    models: dict[Method, str | TrainedElsewhereCfg] = Field(default={}, description="bring your own checkpoints: "
        "method → its final model's folder, or {checkpoints: [...]}; such methods are analysed, never trained (the "
        "base is model.name_or_path)")

    @model_validator(mode="after")
    def _consistent(self):
        if self.model.is_organism and self.pretrain is None:
            raise ValueError("pretrain: is required when model.name_or_path is 'organism'")
        self._check_trained_elsewhere()
        self._check_divisible_batches()
        if "sft" in self.posttrain.methods and "sft" not in self.models and not self.posttrain.sft_sweep:
            raise ValueError("posttrain.sft_sweep: list SFT's candidate learning rates (one or more): in-domain "
                             "validation chooses the SFT model from them")
        known = {"base", *self.posttrain.methods}
        for i, pair in enumerate(self.circuits.pairs or []):
            for name in pair:
                if name not in known:
                    raise ValueError(f"circuits.pairs.{i}: {name!r} is neither 'base' nor one of "
                                     f"posttrain.methods {sorted(self.posttrain.methods)}")
        if self.dynamics.n_texts is not None and self.dynamics.n_texts > self.crosscoder.n_texts:
            raise ValueError(f"dynamics.n_texts: {self.dynamics.n_texts} is more than the crosscoder corpus holds "
                             f"(crosscoder.n_texts {self.crosscoder.n_texts})")
        family = self.known_causes.family
        if family and ((family == "cmp") != self.data.task_world or (family == "larger" and not self.data.word_world)):
            raise ValueError(f"known_causes.family: {family!r} needs the "
                             + ("organism's task world (data.task_world)" if family == "cmp" else
                                "word world (data.word_world) without the task world")
                             + "; use cmp for the organism, larger for a real LM's word world")
        if self.circuits.exact_model not in known:
            raise ValueError(f"circuits.exact_model: {self.circuits.exact_model!r} is neither 'base' nor one of "
                             f"posttrain.methods")
        return self

    def _check_trained_elsewhere(self) -> None:
        if not self.models:
            return
        if self.model.is_organism:
            raise ValueError("models: checkpoints trained elsewhere need that base too: set model.name_or_path to "
                             "its folder")
        if len(self.train_seeds) > 1:
            raise ValueError("posttrain.seeds: models trained elsewhere come with one training seed; list one")
        n = self.posttrain.n_checkpoints
        for method, folders in self.external_checkpoints.items():
            if method not in self.posttrain.methods:
                raise ValueError(f"models: {method!r} is not one of posttrain.methods {sorted(self.posttrain.methods)}")
            if len(folders) != n:
                raise ValueError(f"models: {method} names {len(folders)} checkpoint(s) but posttrain.n_checkpoints is "
                                 f"{n}: list every checkpoint or set n_checkpoints: {len(folders)}")
        if "sft" in self.models and self.posttrain.sft_sweep:
            raise ValueError("posttrain.sft_sweep: sft is trained elsewhere; there is nothing to sweep")

    def _check_divisible_batches(self) -> None:
        """Every global batch splits evenly over ``compute.processes`` ranks × ``compute.micro_batches``."""
        n = self.compute.processes * self.compute.micro_batches
        sizes = {"sft.batch_size": self.posttrain.sft.batch_size, "dpo.batch_size": self.posttrain.dpo.batch_size,
                 "grpo.completions_per_step": self.posttrain.grpo.completions_per_step,
                 "rloo.completions_per_step": self.posttrain.rloo.completions_per_step}
        used = {m.split("_")[-1] for m in self.posttrain.methods}   # sft_grpo trains with grpo's settings
        for key, size in sizes.items():
            if key.split(".")[0] in used and size % n:
                raise ValueError(f"posttrain.{key}: {size} does not split over compute.processes × micro_batches = "
                                 f"{n}; make it a multiple of {n}")

    @property
    def external_checkpoints(self) -> dict[str, list[str]]:
        """Methods trained elsewhere → their checkpoint folders in training order (the last is the final model)."""
        return {m: [v] if isinstance(v, str) else list(v.checkpoints) for m, v in self.models.items()}

    @property
    def circuit_pairs(self) -> list[tuple[str, str]]:
        """Study B's (before, after) pairs: as listed, or the paper's pairs whose models this file trains."""
        if self.circuits.pairs is not None:
            return [(p[0], p[1]) for p in self.circuits.pairs]
        known = {"base", *self.posttrain.methods}
        return [p for p in PAPER_PAIRS if set(p) <= known]

    @property
    def base_seed(self) -> int:
        """The organism's pretraining seed: ``pretrain.seed`` or, by default, the top-level seed."""
        return self.seed if self.pretrain is None or self.pretrain.seed is None else self.pretrain.seed

    @property
    def train_seeds(self) -> list[int]:
        """Post-training seeds: ``posttrain.seeds`` or, by default, the top-level seed alone."""
        return self.posttrain.seeds or [self.seed]

    @property
    def run_dir(self) -> Path:
        """This run's folder, absolute and checked to lie inside ``run_root`` (:mod:`rlgen_utils.run.rundir`)."""
        return check(self)

    def section_hash(self, *keys: str, ignore: tuple[str, ...] = ()) -> str:
        """Hash of the named top-level sections plus the seed: the key a stage's artifacts are stored under.
        ``ignore`` drops dotted sub-keys (``"posttrain.seeds"``) that do not change the stage's outputs."""
        dump = self.model_dump(mode="json")
        for dotted in ignore:
            section, sub = dotted.split(".", 1)
            dump[section].pop(sub, None)
        blob = json.dumps({k: dump[k] for k in ("seed",) + keys}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def load_params(path: str | Path, check_files: bool = True) -> Params:
    """Read and validate a params file; raise :class:`ParamsError` with one line naming the key. ``check_files``
    false skips the checks of named files and folders (a plan made before the model is copied in)."""
    path = Path(path)
    raw = read_params_yaml(path)
    try:
        params = Params.model_validate(raw)
    except ValidationError as e:
        raise ParamsError(one_line_error(path, e)) from None
    if check_files:
        _check_files(path, params)
    _check_run_dir(path, params)
    return params


def read_params_yaml(path: str | Path) -> dict:
    """A params file as one mapping, before validation: ``name`` defaults to the file's stem, and a file that
    starts with ``extends: OTHER.yaml`` (a path relative to it) is OTHER's mapping with this file's keys merged
    in, section by section (mappings merge key by key; any other value, a list included, replaces). The name is
    never inherited: each file is its own run folder. So a second base of a study is three lines::

        extends: default-3seeds.yaml
        pretrain: {seed: 1}
    """
    return _read_yaml(Path(path), ())


def _read_yaml(path: Path, chain: tuple[Path, ...]) -> dict:
    if not path.is_file():
        raise ParamsError(f"{path}: params file not found")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise ParamsError(f"{path}:{where}: not valid YAML ({getattr(e, 'problem', e)})") from None
    if not isinstance(raw, dict):
        raise ParamsError(f"{path}: top level must be a mapping of keys")
    parent = raw.pop("extends", None)
    if parent is not None:
        if not isinstance(parent, str):
            raise ParamsError(f"{path}: extends: must be the path of another params file (got {parent!r})")
        other = path.parent / parent
        if other.resolve() in chain or other.resolve() == path.resolve():
            raise ParamsError(f"{path}: extends: {parent} extends this file again (a cycle)")
        if not other.is_file():
            raise ParamsError(f"{path}: extends: params file not found: {parent}")
        inherited = _read_yaml(other, (*chain, path.resolve()))
        inherited.pop("name", None)
        raw = _merged(inherited, raw)
    raw.setdefault("name", path.stem)
    return raw


def _merged(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merged(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _check_run_dir(path: Path, p: Params) -> None:
    try:
        check(p)
    except RunDirError as e:
        raise ParamsError(f"{path}: {e}") from None


def _check_files(path: Path, p: Params) -> None:
    if not p.model.is_organism:
        model_dir = Path(p.model.name_or_path)
        if not (model_dir / "config.json").is_file():
            raise ParamsError(f"{path}: model.name_or_path: no Hugging Face model (config.json) at {model_dir}")
        if p.model.prompt_style == "chat" and not _has_chat_template(model_dir):
            raise ParamsError(f"{path}: model.prompt.style: 'chat' needs a chat template, and the tokenizer at "
                              f"{model_dir} has none (use style: plain)")
        _check_trained_elsewhere(path, p, model_dir)
    if p.eval.preregistration:
        prereg = repo_path(p.eval.preregistration)
        if not prereg.is_file():
            raise ParamsError(f"{path}: eval.preregistration: file not found: {p.eval.preregistration}")
        load_preregistration(prereg)
    for m in ("grpo", "rloo"):
        if getattr(p.posttrain, m).use_vllm and importlib.util.find_spec("vllm") is None:
            raise ParamsError(f"{path}: posttrain.{m}.use_vllm: vLLM is not installed here (an optional extra for GPU "
                              f"machines: pip install vllm); set it to false")
    if p.compute.accelerate_config and not repo_path(p.compute.accelerate_config).is_file():
        raise ParamsError(f"{path}: compute.accelerate_config: file not found: {p.compute.accelerate_config}")
    if p.data.train_file and not Path(p.data.train_file).is_file():
        raise ParamsError(f"{path}: data.train_file: file not found: {p.data.train_file}")
    for i, b in enumerate(p.data.benchmarks):
        if not Path(b.path).is_file():
            raise ParamsError(f"{path}: data.benchmarks.{i}.path: file not found: {b.path}")


def _has_chat_template(folder: Path) -> bool:
    if (folder / "chat_template.jinja").is_file() or (folder / "chat_template.json").is_file():
        return True
    cfg = folder / "tokenizer_config.json"
    return cfg.is_file() and bool(json.loads(cfg.read_text()).get("chat_template"))


def _check_trained_elsewhere(path: Path, p: Params, base: Path) -> None:
    """Every model trained elsewhere is a model folder with the base's shape and tokenizer: a crosscoder reads
    the models token by token at one layer, and a circuit pair compares edge matrices of one graph."""
    for method, folders in p.external_checkpoints.items():
        for folder in folders:
            if not (Path(folder) / "config.json").is_file():
                raise ParamsError(f"{path}: models.{method}: no Hugging Face model (config.json) at {folder}")
            problem = compare(base, Path(folder))
            if problem:
                raise ParamsError(f"{path}: models.{method}: {folder} {problem} (the base is {base})")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    try:
        for a in args:
            load_params(a)
            print(f"{a}: ok")
    except ParamsError as e:
        print(e, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
