"""Activation collection: nnsight vs a plain torch forward-hook collector, and peak memory vs token count.

    .venv/bin/python benchmarks/bench_activations.py --params params/default.yaml

Throughput: both collectors run ``activations.collect`` (same model, same texts and batches, same masking and
shard writing) in this process, alternating, best of ``--repeats``; the ratio is nnsight tokens/s over hook
tokens/s. Memory: ``collect`` runs in a fresh subprocess at ``--texts`` and 4× as many texts, and each reports its
peak RSS; with streamed shards it should not grow with the token count. The model is the run's base if it
exists, else a fresh organism of the same size. Writes ``benchmarks/results/activations-<name>.json``.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, write_result  # (also puts the repo on sys.path)

from rlgen_utils.method import activations
from rlgen_utils.models import loading
from rlgen_utils.run import config, session
from rlgen_utils.studies import train
from rlgen_utils.world import suite


def setup(P):
    base = train.base_dir(P)
    if (base / "config.json").is_file():
        return loading.load_model(base), loading.load_tokenizer(base)
    tok = loading.char_tokenizer()
    return loading.organism_model(P.model.organism, tok, P.seed), tok


def run_collect(P, n_texts: int, use_nnsight: bool, out: Path) -> tuple[float, int]:
    model, tok = setup(P)
    texts = suite.world(P).corpus(n_texts)
    t0 = time.perf_counter()
    c = P.crosscoder
    info = activations.collect([model], tok, texts, activations.middle_layer(model), out,
                               batch_size=c.collect_batch_size, shard_tokens=c.shard_tokens, max_len=c.max_len,
                               use_nnsight=use_nnsight)
    return time.perf_counter() - t0, info["n_tokens"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--params", default="params/default.yaml")
    ap.add_argument("--texts", type=int, default=1500)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--memory-child", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    P = config.load_params(args.params)
    session.init(P)
    if args.memory_child:
        with tempfile.TemporaryDirectory() as tmp:
            _, n = run_collect(P, args.memory_child, True, Path(tmp))
        print(json.dumps({"tokens": n, "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
        return
    t_nn, t_hook, n = [], [], 0
    for _ in range(args.repeats):
        for use_nn, bucket in ((True, t_nn), (False, t_hook)):
            with tempfile.TemporaryDirectory() as tmp:
                s, n = run_collect(P, args.texts, use_nn, Path(tmp))
            bucket.append(s)
    mem = []
    for n_texts in (args.texts, 4 * args.texts):
        r = subprocess.run([sys.executable, __file__, "--params", args.params, "--memory-child", str(n_texts)],
                           capture_output=True, text=True, check=True, cwd=ROOT)
        mem.append(json.loads(r.stdout.strip().splitlines()[-1]))
    res = {"params": args.params, "texts": args.texts, "tokens": n, "batch": P.crosscoder.collect_batch_size,
           "nnsight_tokens_per_s": round(n / min(t_nn)), "hook_tokens_per_s": round(n / min(t_hook)),
           "ratio_nnsight_over_hook": round(min(t_hook) / min(t_nn), 3), "peak_memory": mem}
    write_result("activations", P.name, res)


if __name__ == "__main__":
    main()
