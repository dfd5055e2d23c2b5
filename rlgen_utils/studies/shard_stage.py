"""One analysis stage on the ranks of an ``accelerate launch``: what each rank runs when ``compute.processes`` > 1.

    python -m accelerate.commands.launch --multi_gpu --num_processes 2 -m rlgen_utils.studies.shard_stage \\
        --params runs/x/launch/params.yaml activations --names base,sft,grpo --train-seed 0 [--n-texts N]
    ... -m rlgen_utils.studies.shard_stage --params runs/x/launch/params.yaml evaluate [--finals]
    ... -m rlgen_utils.studies.shard_stage --params runs/x/launch/params.yaml edges --pair base,grpo

Every rank runs the stage's usual function; inside it, the work is dealt by :func:`rlgen_utils.run.launch.mine`
(activation shards, models to evaluate, question batches) and rank 0 writes the index, the merged folder and the
marker. Notebooks 02, 03 and 05 build these commands (:func:`rlgen_utils.run.launch.run_stage`); run without a
launch, a stage runs whole.
"""
from __future__ import annotations

import argparse

from ..run import launch


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m rlgen_utils.studies.shard_stage",
                                 description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--params", required=True)
    sub = ap.add_subparsers(dest="stage", required=True)
    acts = sub.add_parser("activations", help="collect one activation set (notebooks 03, 04)")
    acts.add_argument("--names", required=True, help="comma-separated model names, e.g. base,sft,grpo")
    acts.add_argument("--train-seed", type=int, required=True)
    acts.add_argument("--n-texts", type=int, default=None, help="the corpus's first n texts (dynamics.n_texts)")
    ev = sub.add_parser("evaluate", help="per-sample scores of every model still unscored (notebook 02)")
    ev.add_argument("--finals", action="store_true", help="final models only (notebooks 05, 06)")
    edges = sub.add_parser("edges", help="edge scores of one circuit pair (notebook 05)")
    edges.add_argument("--pair", required=True, help="before,after, e.g. base,grpo")
    args = ap.parse_args(argv)
    with launch.as_rank(args.params) as P:
        # each branch imports its study late (rlgen_utils.run.imports): params are refused before torch loads,
        # and a rank loads only the stage it runs
        if args.stage == "activations":
            from . import crosscoder
            crosscoder.ensure_activations(P, tuple(args.names.split(",")), args.train_seed, args.n_texts)
        elif args.stage == "evaluate":
            from . import evaluate
            evaluate.ensure_scores(P, all_checkpoints=not args.finals)
        else:
            from . import circuits, evaluate
            before, after = args.pair.split(",")
            circuits.ensure_pair_scores(P, (before, after), evaluate.ensure_scores(P, all_checkpoints=False))


if __name__ == "__main__":
    main()
