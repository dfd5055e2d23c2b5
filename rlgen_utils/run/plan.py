"""A plan before a run: per stage, the models held at once, the memory each device needs and the tokens processed.

    python -m rlgen_utils.run --params params/qwen3-4b.yaml --plan [--devices 8]

Read from the params and the model's ``config.json`` alone (nothing is loaded), so a researcher sees before
starting whether a file fits a machine. The estimates are deliberately simple and stated:

* weights: parameters × bytes of ``model.dtype`` (2 for bfloat16, 4 for float32), counted from the config
  (embeddings, attention with grouped key/value heads, gated MLP, an untied head);
* training (SFT, GRPO/RLOO, DPO): weights + gradients + AdamW's two moments, all in the model's dtype, divided over
  ``--devices`` as ZeRO-3 / FSDP shard them; plus the activations kept for backward of the step's batch split over
  the devices and over ``compute.micro_batches`` gradient-accumulation steps (≈ 34 · tokens · d_model · layers
  bytes in 16-bit, Korthikanti et al. 2022, without recomputation); a GRPO/RLOO rank still generates its whole
  share of the step at once (its KV cache is not split by micro-batches); DPO and a KL-regularised GRPO
  (``beta > 0``) add a frozen reference model;
* generation: weights + the KV cache of one batch (2 · layers · kv heads · head dim · tokens · bytes);
* analysis: every model a stage compares is held at once (a crosscoder's collection reads them on the same
  tokens); the crosscoder itself trains in float32 with Adam;
* tokens: prompts × generations × the completion budget for rollouts and evaluation (an upper bound: most answers
  stop earlier), texts × ``max_len`` per model for activation collection.

Inference stages replicate the model on every device and split the work, so their memory per device does not
shrink with ``--devices``; their time does.
"""
from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

from .artifacts import write_between_markers
from .config import Params, load_params
from .rundir import repo_path

GIB = 1024**3


@dataclass(frozen=True)
class Shape:
    layers: int
    d_model: int
    d_ff: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int
    tied: bool

    @property
    def n_params(self) -> int:
        D, hd = self.d_model, self.head_dim
        attn = D * self.heads * hd + 2 * D * self.kv_heads * hd + self.heads * hd * D
        mlp = 3 * D * self.d_ff
        emb = self.vocab * D * (1 if self.tied else 2)
        return self.layers * (attn + mlp + 2 * D) + emb + D

    def kv_bytes(self, tokens: int, bytes_per: int) -> int:
        return 2 * self.layers * self.kv_heads * self.head_dim * tokens * bytes_per


def shape_of(P: Params, config_file: str | Path | None = None) -> Shape:
    """The base model's shape: the organism's from params, any other from its ``config.json`` (or ``config_file``,
    e.g. ``params/configs/qwen3-4b-base.json`` before the weights are copied in)."""
    if P.model.is_organism:
        o = P.model.organism
        return Shape(o.n_layers, o.d_model, o.d_ff, o.n_heads, o.n_heads, o.d_model // o.n_heads, 60, True)
    path = Path(config_file) if config_file else Path(P.model.name_or_path) / "config.json"
    if not path.is_file():
        raise ValueError(f"model.name_or_path: no config.json at {path.parent}: copy the model in, or pass "
                         f"--model-config with its config.json")
    cfg = json.loads(path.read_text())
    cfg = cfg.get("text_config", cfg)
    if "n_embd" in cfg:   # GPT-2 names
        D, H = cfg["n_embd"], cfg["n_head"]
        return Shape(cfg["n_layer"], D, cfg.get("n_inner") or 4 * D, H, H, D // H, cfg["vocab_size"], True)
    D, H = cfg["hidden_size"], cfg["num_attention_heads"]
    return Shape(cfg["num_hidden_layers"], D, cfg.get("intermediate_size", 4 * D), H,
                 cfg.get("num_key_value_heads", H), cfg.get("head_dim") or D // H, cfg["vocab_size"],
                 bool(cfg.get("tie_word_embeddings", False)))


def _gib(n: float) -> str:
    return f"{n / GIB:.1f}"


def rows(P: Params, shape: Shape, devices: int = 1) -> list[dict]:
    """One row per stage: models held at once, GiB per device, tokens (and what the tokens are)."""
    b = 2 if P.model.dtype == "bfloat16" else 4
    W = shape.n_params * b
    act = lambda tokens: 34 * tokens * shape.d_model * shape.layers * b // 2   # noqa: E731
    per_dev = lambda n: max(1, n // devices)    # noqa: E731  (the global batch split over data-parallel ranks)
    micro = lambda n: max(1, per_dev(n) // P.compute.micro_batches)   # noqa: E731  (one accumulation step's share)
    train_state = lambda: 4 * W / devices                                        # noqa: E731
    pt, ev, cc, dy = P.posttrain, P.eval, P.crosscoder, P.dynamics
    n_fam = len(P.data.benchmarks) + (11 if P.data.task_world else 0) + (6 if P.data.word_world else 0)
    n_ck = pt.n_checkpoints
    n_models = 1 + len(pt.methods) * n_ck * len(P.train_seeds)
    out = [{"stage": "01 evaluate the base", "models": 1, "GiB per device": _gib(W + shape.kv_bytes(
                ev.batch_size * 2 * ev.max_new_tokens, b)),
            "tokens": f"{n_fam * ev.n_per_family * ev.max_new_tokens:,} generated (at most)"}]
    for m in pt.methods:
        if m in P.models:
            continue
        algo = {"sft_grpo": "grpo", "sft_dpo": "dpo"}.get(m, m)
        if algo == "sft":
            c, seq = pt.sft, 256
            mem = train_state() + act(micro(c.batch_size) * seq)
            tok = f"{pt.n_train_prompts * pt.epochs * seq:,} trained (at most)"
        elif algo in ("grpo", "rloo"):
            c = getattr(pt, algo)
            seq = 2 * c.max_completion_length
            ref = W if c.beta > 0 else 0
            n = per_dev(c.completions_per_step)
            mem = train_state() + ref + max(shape.kv_bytes(n * seq, b), act(micro(c.completions_per_step) * seq))
            tok = f"{pt.n_train_prompts * pt.epochs * c.num_generations * c.max_completion_length:,} rolled out"
        else:
            c, seq = pt.dpo, 256
            mem = train_state() + W + act(2 * micro(c.batch_size) * seq)
            tok = f"{pt.n_train_prompts * pt.epochs * 2 * seq:,} trained (chosen + rejected)"
        out.append({"stage": f"01 post-train {m} ×{len(P.train_seeds)} seed(s)",
                    "models": 1 + (algo == "dpo") + (algo in ("grpo", "rloo") and getattr(pt, algo).beta > 0),
                    "GiB per device": _gib(mem), "tokens": tok})
    out.append({"stage": f"02 evaluate {n_models} models", "models": 1,
                "GiB per device": _gib(W + shape.kv_bytes(ev.batch_size * 2 * ev.max_new_tokens, b)),
                "tokens": f"{n_models * n_fam * ev.n_per_family * ev.max_new_tokens:,} generated (at most)"})
    cc_bytes = lambda M, L: 4 * 4 * 2 * M * shape.d_model * L     # noqa: E731  (weights, grads, 2 Adam moments)
    out.append({"stage": "03 collect base, SFT, RL + crosscoders", "models": 3,
                "GiB per device": _gib(3 * W + act(cc.collect_batch_size * cc.max_len) // 2 + cc_bytes(3, cc.n_latents)),
                "tokens": f"{3 * cc.n_texts * cc.max_len:,} read (3 models × texts × max_len)"})
    n_traj = 1 + 2 * n_ck
    out.append({"stage": f"04 trajectory over {n_traj} models", "models": n_traj,
                "GiB per device": _gib(n_traj * W + cc_bytes(n_traj, dy.n_latents)),
                "tokens": f"{n_traj * (dy.n_texts or cc.n_texts) * cc.max_len:,} read"})
    edges_act = 2 * (2 * shape.layers + 1) * P.circuits.batch_size * 2 * ev.max_new_tokens * shape.d_model * 4
    out.append({"stage": "05 edge attribution", "models": 1,
                "GiB per device": _gib(W + act(P.circuits.batch_size * 2 * ev.max_new_tokens) + edges_act),
                "tokens": f"{len(P.circuit_pairs) * 2 * P.circuits.n_samples * len(P.circuits.alphas):,} questions"})
    out.append({"stage": "06 interventions", "models": 2,
                "GiB per device": _gib(2 * W + cc_bytes(3, cc.n_latents) / 4 + shape.kv_bytes(
                    ev.batch_size * 2 * ev.max_new_tokens, b)),
                "tokens": f"{P.interventions.n_eval * n_fam * ev.max_new_tokens:,} generated per condition"})
    return out


def render(P: Params, devices: int = 1, config_file: str | Path | None = None) -> str:
    """The plan as text: the model, then one line per stage."""
    s = shape_of(P, config_file)
    head = (f"plan for {P.name}: {s.n_params / 1e9:.2f} B parameters ({s.layers} layers, d_model {s.d_model}, "
            f"{s.heads}/{s.kv_heads} heads), {P.model.dtype}, {devices} device(s) "
            f"(training sharded ZeRO-3/FSDP-style in {P.compute.micro_batches} micro-batch(es) per step, analysis "
            f"replicated)")
    table = rows(P, s, devices)
    width = max(len(r["stage"]) for r in table)
    lines = [head, f"{'stage':<{width}}  models  GiB/device  tokens"]
    lines += [f"{r['stage']:<{width}}  {r['models']:>6}  {r['GiB per device']:>10}  {r['tokens']}" for r in table]
    peak = max(float(r["GiB per device"]) for r in table)
    lines.append(f"peak per device: {peak:.1f} GiB")
    return "\n".join(lines)


def transcript(params: str, devices: list[int], model_config: str | None = None) -> str:
    """The runner's ``--plan`` output at each device count, with its command lines, as a Markdown code block."""
    P = load_params(repo_path(params), check_files=False)   # paths as written, relative to the repository
    cfg = f" --model-config {model_config}" if model_config else ""
    blocks = [f"$ .venv/bin/python -m rlgen_utils.run --params {params} --plan --devices {n}{cfg}\n"
              + render(P, n, repo_path(model_config) if model_config else None) for n in devices]
    return "```text\n" + "\n".join(blocks) + "\n```"


def main(argv: list[str] | None = None) -> None:
    """``python -m rlgen_utils.run.plan --params P --model-config C --devices 1 8 [--write docs/PAPER_SCALE.md]``: the plan at
    each device count, as the runner's ``--plan`` prints it; ``--write`` puts it between the file's
    ``<!-- plan:begin -->`` and ``<!-- plan:end -->`` markers (``docs/PAPER_SCALE.md``)."""

    ap = argparse.ArgumentParser(prog="python -m rlgen_utils.run.plan", description="plans at several device counts")
    ap.add_argument("--params", required=True)
    ap.add_argument("--model-config", default=None)
    ap.add_argument("--devices", type=int, nargs="+", default=[1])
    ap.add_argument("--write", default=None)
    args = ap.parse_args(argv)
    text = transcript(args.params, args.devices, args.model_config)
    if args.write:
        write_between_markers(Path(args.write), text, tag="plan")
    else:
        print(text)


if __name__ == "__main__":
    main()
