"""Train one post-training method for one training seed: what each rank of an ``accelerate launch`` runs.

    python -m accelerate.commands.launch --multi_gpu --num_processes 2 \\
        -m rlgen_utils.studies.train_method --params runs/x/launch/params.yaml --method sft --seed 0

Notebook 01 builds this command (:mod:`rlgen_utils.run.launch`) when ``compute.processes`` > 1; run by hand in one
process it trains in that process. ``--sft-lr`` trains one rate of ``posttrain.sft_sweep``.
"""
from __future__ import annotations

import argparse

from ..run import launch


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m rlgen_utils.studies.train_method", description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--params", required=True)
    ap.add_argument("--method", required=True)
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--sft-lr", type=float, default=None, help="one learning rate of posttrain.sft_sweep")
    args = ap.parse_args(argv)
    with launch.as_rank(args.params, join=False) as P:   # trl's trainer joins the process group
        if args.method not in P.posttrain.methods:
            raise SystemExit(f"--method: {args.method!r} is not one of posttrain.methods {P.posttrain.methods}")
        from . import train  # late (rlgen_utils.run.imports): a bad params file is refused before torch loads
        train.train_here(P, args.method, args.seed, args.sft_lr)


if __name__ == "__main__":
    main()
