"""Crosscoder training throughput vs a sae-lens BatchTopK SAE of the same total width, and vs its own dense loss.

    .venv/bin/python benchmarks/bench_crosscoder.py --params params/default.yaml

The data are the run's base/SFT/RL activations if notebook 03 has collected them (else Gaussian activations of the
same shape). The crosscoder sees ``x_BMD``; the SAE sees the same batches flattened to ``[B, M·D]`` with
``d_sae = n_latents`` and the same k — the same matmul sizes. The dense reference is the same crosscoder trained
through :meth:`~rlgen_utils.method.crosscoder.Crosscoder.loss_dense` (every latent of every token: what training
did before the sparse BatchTopK path). All train the same number of steps in this process, alternating, and the
best of ``--repeats`` is kept. Writes ``benchmarks/results/crosscoder-<name>.json``.
"""
from __future__ import annotations

import argparse
import time

import torch
from common import write_result  # also puts the repo on sys.path

from rlgen_utils.method import activations
from rlgen_utils.method.crosscoder import Crosscoder, train
from rlgen_utils.run import config, keys, session
from rlgen_utils.studies import crosscoder


def data(P, n_batches: int):
    C = P.crosscoder
    trio = ("base", C.sft_method, C.rl_method)
    acts = P.run_dir / "acts" / keys.activations_key(P, trio, P.train_seeds[0])   # ensure_activations' folder
    if (acts / "DONE.json").is_file():
        it = activations.batches(acts, C.batch_size, seed=0)
        return [next(it) for _ in range(n_batches)], str(acts)
    g = torch.Generator().manual_seed(0)
    return [torch.randn(C.batch_size, 3, P.model.organism.d_model, generator=g) for _ in range(n_batches)], "gaussian"


def time_crosscoder(P, xs, dense: bool = False) -> float:
    C = P.crosscoder
    cc = Crosscoder(crosscoder.crosscoder_config(P, xs[0].shape[1], xs[0].shape[2], sparsity="batchtopk"))
    if dense:                                       # the reference path, every latent of every token
        cc.loss = cc.loss_dense                     # type: ignore[method-assign]
    t0 = time.perf_counter()
    train(cc, iter(xs), len(xs), lr=C.lr, show_progress=False, log_every=10**9)
    return time.perf_counter() - t0


def time_sae_lens(P, xs) -> float:
    from sae_lens import BatchTopKTrainingSAE, BatchTopKTrainingSAEConfig, LoggingConfig, SAETrainer
    from sae_lens.config import SAETrainerConfig
    C = P.crosscoder
    B, M, D = xs[0].shape
    sae = BatchTopKTrainingSAE(BatchTopKTrainingSAEConfig(d_in=M * D, d_sae=C.n_latents, k=C.k))
    cfg = SAETrainerConfig(total_training_samples=B * len(xs), train_batch_size_samples=B, lr=C.lr, lr_end=C.lr,
                           n_batches_for_norm_estimate=1, logger=LoggingConfig(log_to_wandb=False))
    flat = iter([x.reshape(B, M * D) for x in xs] * 2)
    trainer = SAETrainer(cfg=cfg, sae=sae, data_provider=flat)
    t0 = time.perf_counter()
    trainer.fit()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--params", default="params/default.yaml")
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    P = config.load_params(args.params)
    session.init(P)
    xs, source = data(P, args.steps)
    cc_s, dense_s, sae_s = [], [], []
    for _ in range(args.repeats):
        cc_s.append(time_crosscoder(P, xs))
        dense_s.append(time_crosscoder(P, xs, dense=True))
        sae_s.append(time_sae_lens(P, xs))
    tokens = args.steps * xs[0].shape[0]
    res = {"params": args.params, "data": source, "steps": args.steps, "batch": xs[0].shape[0],
           "shape_MD": list(xs[0].shape[1:]), "n_latents": P.crosscoder.n_latents, "k": P.crosscoder.k,
           "crosscoder_tokens_per_s": round(tokens / min(cc_s)), "sae_lens_tokens_per_s": round(tokens / min(sae_s)),
           "ratio_crosscoder_over_sae_lens": round(min(sae_s) / min(cc_s), 2),
           "dense_loss_tokens_per_s": round(tokens / min(dense_s)),
           "speedup_sparse_over_dense": round(min(dense_s) / min(cc_s), 2)}
    write_result("crosscoder", P.name, res)


if __name__ == "__main__":
    main()
