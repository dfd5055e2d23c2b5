"""One sample's full edge matrix vs one forward+backward pass of the same model on the same tokens (target ≤ 3×),
and the speed-up over exact per-edge ablation.

    .venv/bin/python benchmarks/bench_circuits.py --params params/default.yaml [--repeats 20]

Uses the run's base model when it exists (else a freshly initialised organism of the params' size) and one
in-domain test question with its gold answer cut to ``T_cut`` at ``circuits.main_alpha``. The baseline is the plain
training step: forward, self-entropy loss, ``loss.backward()`` into the parameters. All timings are taken in this
process, interleaved, best of ``--repeats``. ``--d-model/--layers`` time a larger Llama instead (random weights),
where nnsight's fixed per-trace cost matters less. Results: ``benchmarks/results/circuits-<name>.json``.
"""
from __future__ import annotations

import argparse
import time

from common import write_result  # (also puts the repo on sys.path)

from rlgen_utils.method import activations, edge_attribution
from rlgen_utils.models import loading
from rlgen_utils.run import config, session
from rlgen_utils.studies import circuits, train
from rlgen_utils.world import suite


def _best(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def _model(P, args):
    base = train.base_dir(P)
    if args.d_model is None and (base / "config.json").is_file():
        return loading.load_tokenizer(base), loading.load_model(base)
    tok = loading.char_tokenizer()
    org = P.model.organism
    if args.d_model is not None:
        org = config.OrganismCfg(d_model=args.d_model, n_layers=args.layers, n_heads=max(1, args.d_model // 64),
                                 d_ff=4 * args.d_model, max_len=org.max_len)
    return tok, loading.organism_model(org, tok, P.seed)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--params", default="params/default.yaml")
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--d-model", type=int, default=None)
    ap.add_argument("--layers", type=int, default=8)
    args = ap.parse_args()
    P = config.load_params(args.params)
    session.init(P)
    tok, model = _model(P, args)
    ex = suite.world(P).eval_families()[suite.world(P).in_domain_family].examples[0]
    answer = ex.text[len(ex.prompt):]
    cut = circuits.t_cut(P.circuits.main_alpha, len(tok(answer, add_special_tokens=False).input_ids))
    batch, _ = next(circuits.batches(tok, [ex.prompt], [answer], cut, 1, P.seed))
    lm = activations.wrap(model, tok)

    def fwd_bwd():
        model.zero_grad(set_to_none=True)
        logits = model(input_ids=batch.input_ids_BT, attention_mask=batch.attention_mask_BT).logits
        edge_attribution.self_entropy_B(logits, batch).sum().backward()

    fast = lambda: edge_attribution.zero_ablation_scores(lm, batch)  # noqa: E731
    for f in (fwd_bwd, fast):  # warm-up
        f()
    t_base, t_fast = [], []
    for _ in range(3):  # interleave to share the machine's noise
        t_base.append(_best(fwd_bwd, args.repeats))
        t_fast.append(_best(fast, args.repeats))
    t_exact = _best(lambda: edge_attribution.exact_ablation_scores(model, batch), 2)
    g = edge_attribution.graph_of(model)
    result = {"params": args.params, "model": f"d_model {model.config.hidden_size}, {g.n_layers} layers, "
                                              f"{loading.n_params(model):,} parameters",
              "tokens": int(batch.input_ids_BT.shape[1]), "edges": g.n_edges,
              "forward_backward_s": round(min(t_base), 5), "edge_matrix_s": round(min(t_fast), 5),
              "ratio_to_forward_backward": round(min(t_fast) / min(t_base), 2),
              "exact_ablation_s": round(t_exact, 4), "speedup_over_exact": round(t_exact / min(t_fast), 1)}
    name = P.name if args.d_model is None else f"{P.name}-d{args.d_model}-l{args.layers}"
    write_result("circuits", name, result)


if __name__ == "__main__":
    main()
