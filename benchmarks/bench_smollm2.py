"""SmolLM2-135M-Instruct on this CPU: each speed target as a ratio against a baseline timed in the same process.

    .venv/bin/python benchmarks/bench_smollm2.py [--params params/smollm2.yaml] [--only rollout crosscoder edges scaling]

* **rollout** — GRPO's generation (trl's ``GRPOTrainer._generate``, the trainer rlgen builds) against a plain
  ``model.generate`` of the same prompts, batch, sampling settings and length; completion tokens per second
  (goal ≥ 0.8×).
* **crosscoder** — the crosscoder's training step (BatchTopK, the params' width and k, three models) in FLOP/s,
  counted as a dense step's 3 × (encoder + decoder matmuls), against a plain fp32 matmul ``[B, M·D] @ [M·D, L]``
  of the same shapes: the machine's attainable peak at that size (goal ≥ 50 %). The sparse BatchTopK step does one
  such matmul and sparse work besides, so this dense-equivalent rate can exceed the peak.
* **edges** — one question's full edge matrix (the paper's zero-ablation scores, one nnsight trace and one
  backward) against one plain forward + backward of the same loss on the same tokens (goal ≤ 1.1×).
* **scaling** — activation collection, crosscoder training and edge attribution at three sizes, each size in a
  fresh process so its peak resident memory is its own: time per unit should stay flat (time linear in size) and
  peak memory flat.

Timings are best-of-``--repeats``, interleaved with their baseline. Results: ``benchmarks/results/smollm2-*.json``
and the table ``docs/bench_smollm2.md``, rebuilt after every run from every part's latest result.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time

import torch
from common import ROOT, write_result  # also puts the repo on sys.path

from rlgen_utils.run import config, session

SIZES = {"collection": [48, 96, 192], "crosscoder": [50, 100, 200], "edges": [4, 8, 16]}
UNITS = {"collection": "texts", "crosscoder": "steps", "edges": "questions"}


def best(fn, repeats: int) -> float:
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return min(out)


def smol(P):
    from rlgen_utils.models import loading
    return loading.load_tokenizer(P.model.name_or_path), loading.load_model(P.model.name_or_path)


# ------------------------------------------------------------------------------------------------ rollout
def rollout(P, repeats: int) -> dict:
    from rlgen_utils.models import posttrain
    from rlgen_utils.world import suite
    tok, model = smol(P)
    c = P.posttrain.grpo
    n_prompts = c.completions_per_step // c.num_generations
    rows = posttrain.rl_rows(suite.world(P).train_examples()[:n_prompts], suite.world(P).train_kind)
    opt = torch.optim.AdamW(model.parameters(), lr=c.lr)
    trainer = posttrain.build_trainer("grpo", model, tok, rows, P.seed, P.posttrain, opt)
    prompts = [r["prompt"] for r in rows for _ in range(c.num_generations)]   # as trl's sampler repeats them
    counts = {}

    def trl_generate():
        out = trainer._generate(prompts)
        counts["trl"] = sum(len(ids) for ids in out[1])

    enc = tok(prompts, return_tensors="pt", padding=True)

    def plain_generate():
        with torch.no_grad():
            ids = model.generate(**enc, max_new_tokens=c.max_completion_length, do_sample=True,
                                 temperature=c.temperature, top_k=0, top_p=1.0, pad_token_id=tok.pad_token_id,
                                 eos_token_id=tok.eos_token_id)
        new = ids[:, enc["input_ids"].shape[1]:]
        is_eos = (new == tok.eos_token_id).int()
        ends = torch.where(is_eos.any(1), is_eos.argmax(1) + 1, torch.full_like(is_eos[:, 0], new.shape[1]))
        counts["plain"] = int(ends.sum())

    for f in (trl_generate, plain_generate):
        f()
    t_trl, t_plain = [], []
    for _ in range(repeats):
        torch.manual_seed(0)
        t_trl.append(best(trl_generate, 1))
        torch.manual_seed(0)
        t_plain.append(best(plain_generate, 1))
    # sampled lengths differ run to run: compare tokens per second over all repeats
    tps_trl, tps_plain = counts["trl"] / min(t_trl), counts["plain"] / min(t_plain)
    return {"batch": len(prompts), "max_completion_length": c.max_completion_length,
            "trl_tokens_per_s": round(tps_trl, 1), "plain_tokens_per_s": round(tps_plain, 1),
            "ratio": round(tps_trl / tps_plain, 2), "goal": "≥ 0.8"}


# ------------------------------------------------------------------------------------------------ crosscoder
def crosscoder_flops(P, repeats: int, steps: int = 20) -> dict:
    from rlgen_utils.method.crosscoder import Crosscoder, train
    from rlgen_utils.studies.crosscoder import crosscoder_config
    C, D, M = P.crosscoder, 576, 3
    B, L = C.batch_size, C.n_latents
    g = torch.Generator().manual_seed(0)
    xs = [torch.randn(B, M, D, generator=g) for _ in range(steps)]

    def step_all():
        cc = Crosscoder(crosscoder_config(P, M, D, L, sparsity="batchtopk"))
        train(cc, iter(xs), steps, lr=C.lr, show_progress=False, log_every=10**9, resample_every=0)

    a, w = torch.randn(B, M * D, generator=g), torch.randn(M * D, L, generator=g)
    matmul = lambda: a @ w  # noqa: E731
    step_all(), matmul()
    t_cc = best(step_all, repeats) / steps
    t_mm = best(matmul, 5 * repeats)
    flop_step = 3 * (2 * B * M * D * L) * 2      # a dense step: encoder + decoder, forward and backward (×3)
    flop_mm = 2 * B * M * D * L
    return {"batch": B, "models": M, "d_model": D, "n_latents": L, "k": C.k,
            "crosscoder_gflops": round(flop_step / t_cc / 1e9, 1), "matmul_gflops": round(flop_mm / t_mm / 1e9, 1),
            "ratio": round(flop_step / t_cc / (flop_mm / t_mm), 2), "goal": "≥ 0.5"}


# ------------------------------------------------------------------------------------------------ edges
def _questions(P, tok, n: int):
    from rlgen_utils.studies import circuits
    from rlgen_utils.world import suite
    fam = suite.world(P).eval_families()[suite.world(P).in_domain_family]
    ex = list(fam.examples[:n])
    answers = [e.completion for e in ex]
    cut = circuits.t_cut(P.circuits.main_alpha, max(len(tok(a, add_special_tokens=False).input_ids) for a in answers))
    return [e.prompt for e in ex], answers, cut


def edges(P, repeats: int) -> dict:
    from rlgen_utils.method import activations, edge_attribution
    from rlgen_utils.studies import circuits
    tok, model = smol(P)
    prompts, answers, cut = _questions(P, tok, 1)
    batch, _ = next(circuits.batches(tok, prompts, answers, cut, 1, P.seed))
    lm = activations.wrap(model, tok)

    def fwd_bwd():
        model.zero_grad(set_to_none=True)
        logits = model(input_ids=batch.input_ids_BT, attention_mask=batch.attention_mask_BT).logits
        edge_attribution.self_entropy_B(logits, batch).sum().backward()

    fast = lambda: edge_attribution.zero_ablation_scores(lm, batch)  # noqa: E731
    fwd_bwd(), fast()
    t_base, t_fast = [], []
    for _ in range(3):
        t_base.append(best(fwd_bwd, repeats))
        t_fast.append(best(fast, repeats))
    g = edge_attribution.graph_of(model)
    return {"tokens": int(batch.input_ids_BT.shape[1]), "edges": g.n_edges,
            "forward_backward_s": round(min(t_base), 4), "edge_matrix_s": round(min(t_fast), 4),
            "ratio": round(min(t_fast) / min(t_base), 2), "goal": "≤ 1.1"}


# ------------------------------------------------------------------------------------------------ scaling
def one(P, stage: str, size: int) -> dict:
    """One stage at one size, in this (fresh) process: wall seconds and peak RSS."""
    t0 = time.perf_counter()
    if stage == "collection":
        from rlgen_utils.method import activations
        from rlgen_utils.world import suite
        tok, model = smol(P)
        texts = suite.world(P).corpus(size)
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory() as d:
            activations.collect([model], tok, texts, activations.middle_layer(model), d,
                                batch_size=P.crosscoder.collect_batch_size, shard_tokens=P.crosscoder.shard_tokens,
                                max_len=P.crosscoder.max_len)
    elif stage == "crosscoder":
        from rlgen_utils.method.crosscoder import Crosscoder, train
        from rlgen_utils.studies.crosscoder import crosscoder_config
        C = P.crosscoder
        g = torch.Generator().manual_seed(0)
        batches = (torch.randn(C.batch_size, 3, 576, generator=g) for _ in range(size))
        cc = Crosscoder(crosscoder_config(P, 3, 576, sparsity="batchtopk"))
        t0 = time.perf_counter()
        train(cc, batches, size, lr=C.lr, show_progress=False, log_every=10**9, resample_every=C.resample_every)
    else:
        from rlgen_utils.method import activations, edge_attribution
        from rlgen_utils.studies import circuits
        tok, model = smol(P)
        prompts, answers, cut = _questions(P, tok, size)
        lm = activations.wrap(model, tok)
        t0 = time.perf_counter()
        for batch, _ in circuits.batches(tok, prompts, answers, cut, P.circuits.batch_size, P.seed):
            edge_attribution.zero_ablation_scores(lm, batch)
    wall = time.perf_counter() - t0
    return {"stage": stage, "size": size, "wall_s": round(wall, 2),
            "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


def scaling(params: str) -> list[dict]:
    rows = []
    for stage, sizes in SIZES.items():
        for size in sizes:
            out = subprocess.run([sys.executable, __file__, "--params", params, "--one", stage, str(size)],
                                 cwd=ROOT, capture_output=True, text=True, check=True)
            row = json.loads(out.stdout.strip().splitlines()[-1])
            row["s_per_unit"] = round(row["wall_s"] / size, 4)
            rows.append(row)
            print(row, flush=True)
    return rows


# ------------------------------------------------------------------------------------------------ report
def markdown(res: dict) -> str:
    lines = ["# SmolLM2-135M-Instruct: speed against same-process baselines", "",
             "Written by `benchmarks/bench_smollm2.py` (2 CPU cores; each ratio against a baseline timed in the same "
             "process, so machine speed cancels).", ""]
    if "rollout" in res:
        r = res["rollout"]
        lines += [f"- **GRPO rollouts**: trl {r['trl_tokens_per_s']} completion tokens/s vs plain `generate` "
                  f"{r['plain_tokens_per_s']} at batch {r['batch']}: **{r['ratio']}×** (goal {r['goal']})."]
    if "crosscoder" in res:
        r = res["crosscoder"]
        lines += [f"- **Crosscoder training**: {r['crosscoder_gflops']} dense-equivalent GFLOP/s vs a plain fp32 "
                  f"matmul of the same shapes {r['matmul_gflops']} GFLOP/s (batch {r['batch']}, 3 × d {r['d_model']}, "
                  f"{r['n_latents']} latents): **{r['ratio']}×** (goal {r['goal']})."]
    if "edges" in res:
        r = res["edges"]
        lines += [f"- **Edge attribution**: the full {r['edges']}-edge matrix of one question ({r['tokens']} tokens) "
                  f"{r['edge_matrix_s']} s vs one forward + backward {r['forward_backward_s']} s: **{r['ratio']}×** "
                  f"(goal {r['goal']}). Below 1× because the baseline's backward also forms the 135 M parameter "
                  f"gradients, which the edge matrix never needs (it differentiates the activations only)."]
    if "scaling" in res:
        lines += ["", "**Three sizes** (each in a fresh process):", "",
                  "| stage | size | unit | wall (s) | s per unit | peak RSS (MiB) |", "|---|---|---|---|---|---|"]
        lines += [f"| {r['stage']} | {r['size']} | {UNITS[r['stage']]} | {r['wall_s']} | {r['s_per_unit']} | "
                  f"{r['peak_rss_mib']} |" for r in res["scaling"]]
        lines += ["", "Time is linear in size when *s per unit* stays flat down each stage; memory is flat when peak RSS "
                  "does (collection writes shards as it goes, the crosscoder streams batches, edges run one batch at "
                  "a time)."]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--params", default="params/smollm2.yaml")
    ap.add_argument("--only", nargs="*", default=["rollout", "crosscoder", "edges", "scaling"])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--one", nargs=2, metavar=("STAGE", "SIZE"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    P = config.load_params(args.params)
    session.init(P)
    if args.one:
        print(json.dumps(one(P, args.one[0], int(args.one[1]))))
        return
    res: dict = {"params": args.params}
    for part in args.only:
        res[part] = (scaling(args.params) if part == "scaling" else
                     {"rollout": rollout, "crosscoder": crosscoder_flops, "edges": edges}[part](P, args.repeats))
        write_result("smollm2", part, res[part] if isinstance(res[part], dict) else {"rows": res[part]})
    (ROOT / "docs" / "bench_smollm2.md").write_text(markdown(saved()))


def saved() -> dict:
    """Every part's latest result on this machine (parts run separately still make one table)."""
    res = {}
    for part in ("rollout", "crosscoder", "edges", "scaling"):
        f = ROOT / "benchmarks" / "results" / f"smollm2-{part}.json"
        if f.is_file():
            d = json.loads(f.read_text())
            res[part] = d["rows"] if part == "scaling" else d
    return res


if __name__ == "__main__":
    main()
