"""Batched evaluation vs one-sample-at-a-time ``generate`` on the same model and prompts (issue: ≥ 5×).

    .venv/bin/python benchmarks/bench_generation.py --params params/default.yaml [--n 128]

Uses the run's base model if it exists (else a freshly initialised organism of the same size), greedy decoding,
the in-domain test prompts. Both paths run in this process, alternating, and the greedy completions are checked
to be identical, so the ratio compares equal work. Results go to ``benchmarks/results/generation-<name>.json``.
"""
from __future__ import annotations

import argparse
import time

from common import write_result  # (also puts the repo on sys.path)

from rlgen_utils.models import generation, loading
from rlgen_utils.run import config, session
from rlgen_utils.studies import train
from rlgen_utils.world import suite


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--params", default="params/default.yaml")
    ap.add_argument("--n", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    P = config.load_params(args.params)
    session.init(P)
    base = train.base_dir(P)
    if (base / "config.json").is_file():
        tok, model = loading.load_tokenizer(base), loading.load_model(base)
    else:
        tok = loading.char_tokenizer()
        model = loading.organism_model(P.model.organism, tok, P.seed)
    fam = suite.world(P).eval_families()[suite.world(P).in_domain_family]
    prompts = [e.prompt for e in fam.examples[: args.n]]
    budget = fam.max_new_tokens(tok, P.eval.max_new_tokens)
    t_batched, t_single = [], []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        batched = generation.generate(model, tok, prompts, budget, batch_size=P.eval.batch_size)
        t_batched.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        single = [generation.generate(model, tok, [p], budget, batch_size=1)[0] for p in prompts]
        t_single.append(time.perf_counter() - t0)
    same = sum(a == b for a, b in zip(batched, single))
    result = {"params": args.params, "n_prompts": len(prompts), "max_new_tokens": budget,
              "batched_s": round(min(t_batched), 3), "one_at_a_time_s": round(min(t_single), 3),
              "speedup": round(min(t_single) / min(t_batched), 2), "identical_completions": f"{same}/{len(prompts)}"}
    write_result("generation", P.name, result)


if __name__ == "__main__":
    main()
