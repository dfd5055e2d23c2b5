"""The standard per-model baseline beside notebook 03's crosscoder: a sae-lens SAE trained on the base alone.

    .venv/bin/python benchmarks/sae_baseline.py --params RUN/default.yaml [--write docs/sae_baseline.md]

Needs a run whose notebook 03 has collected activations. Trains (once; cached in the run folder) a sae-lens
BatchTopK SAE with sae-lens's own trainer on the base's activations of the corpus's training texts, at the
crosscoder's width, k, steps and learning rate (:func:`rlgen_utils.studies.baselines.ensure_sae_baseline`), then
reads its FVU on every model's activations of the same held-out tokens (:func:`~rlgen_utils.studies.crosscoder.
sae_baseline`): how far each tuned model moved off the base's own dictionary. Beside it, the three-model
crosscoder's held-out FVU per model (notebook 03's quality table), which has a dictionary for each model.
"""
from __future__ import annotations

import argparse
import subprocess
import time
from pathlib import Path

from common import ROOT  # also puts the repo on sys.path

from rlgen_utils.run import config, session
from rlgen_utils.studies import baselines, crosscoder, render


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--params", default="params/default.yaml")
    ap.add_argument("--write", default=None)
    args = ap.parse_args()
    P = config.load_params(args.params)
    session.init(P)
    c = P.crosscoder
    trio = ("base", c.sft_method, c.rl_method)
    t0 = time.perf_counter()
    table = baselines.sae_baseline(P, trio)
    seconds = time.perf_counter() - t0
    q = crosscoder.quality(P, crosscoder.ensure_crosscoder(P, trio), trio).set_index("model")
    table["held-out FVU (three-model crosscoder)"] = [float(q.loc[m, "held-out FVU"]) for m in table.model]
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip()
    base_fvu = float(table.iloc[0]["held-out FVU (base's SAE)"])
    text = "\n".join([
        "# The base's sae-lens SAE on every model's activations", "",
        f"Written by `benchmarks/sae_baseline.py` (commit {commit}, params `{P.name}`, {seconds:.0f} s; the SAE is "
        f"trained once and cached in the run folder). sae-lens BatchTopK SAE, {c.n_latents} latents, k = {c.k}, "
        f"{c.steps} steps of {c.batch_size} tokens on the base's activations of the corpus's training texts; FVU "
        "on every tenth (held-out) text, the same tokens for every model.", "", render.table(table, ".4f", index=False), "",
        "Relative to the base: " + ", ".join(f"{m} ×{v / base_fvu:.2f}" for m, v in
                                              zip(table.model[1:], table["held-out FVU (base's SAE)"][1:]))
        + " (FVU of the base's dictionary on that model ÷ on the base)."])
    print(text)
    if args.write:
        Path(args.write).write_text(text + "\n")


if __name__ == "__main__":
    main()
