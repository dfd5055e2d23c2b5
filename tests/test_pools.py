"""Study A's pools: families where RL's net gain is significant, grown to the RL-right/base-wrong count asked."""
import numpy as np
import pandas as pd

from rlgen_utils.run import config
from rlgen_utils.studies import evaluate


def _finals(rates: dict[str, tuple[float, float]], n: int = 200) -> pd.DataFrame:
    """Final-model scores: per family (base accuracy, share of samples RL turns from wrong to right)."""
    rng, rows = np.random.default_rng(0), []
    for fam, (acc, gain) in rates.items():
        base = rng.random(n) < acc
        rl = base | ((rng.random(n) < gain / (1 - acc)) & ~base)
        for method, seed, right in (("base", -1, base), ("grpo", 0, rl)):
            rows += [{"method": method, "seed": seed, "checkpoint": 5, "final": True, "family": fam,
                      "role": "ood_select", "sample": i, "correct": bool(right[i])} for i in range(n)]
    return pd.DataFrame(rows)


def test_pools_keep_significant_families_and_grow_to_the_count_asked(write_params, monkeypatch):
    P = config.load_params(write_params({"interventions": {"family_rule": "significant", "pool_per_family": 40,
                                                           "min_rl_right": 30, "pool_max": 600}}))
    ood = [n for n, f in evaluate.suite.world(P).eval_families().items() if f.role == "ood_select"]
    gains = {f: (0.4, 0.0) for f in ood} | {ood[0]: (0.4, 0.3), ood[1]: (0.4, 0.05), ood[2]: (0.4, 0.01)}
    monkeypatch.setattr(evaluate, "_final_scores", lambda P: _finals(gains))
    chosen = evaluate.selection_families(P)
    assert ood[0] in chosen and ood[1] in chosen and not set(chosen) & set(ood[3:]), chosen
    sizes = evaluate.pool_sizes(P)
    # ~60 of 200 RL-right/base-wrong: 2·30·1.15 / 0.3 ≈ 230 prompts; ~10 of 200: capped at pool_max
    assert 150 < sizes[ood[0]] < 330 and sizes[ood[1]] == 600
    fams = evaluate.pool_families(P)
    assert len(fams[ood[0]].examples) == sizes[ood[0]] and len(fams[ood[3]].examples) == 40
    small = evaluate.pool_families(P.model_copy(update={"interventions": P.interventions.model_copy(
        update={"min_rl_right": 0})}))
    assert [e.prompt for e in small[ood[0]].examples] == [e.prompt for e in fams[ood[0]].examples[:40]], \
        "a smaller pool is the start of a larger one"
    everything = P.model_copy(update={"interventions": P.interventions.model_copy(update={"family_rule": "all"})})
    assert evaluate.selection_families(everything) == ood


def test_no_significant_family_gives_an_empty_pool_not_an_error(write_params, monkeypatch):
    P = config.load_params(write_params({"interventions": {"family_rule": "significant"}}))
    monkeypatch.setattr(evaluate, "_final_scores", lambda P: _finals({"wordsum": (0.4, 0.0), "clock": (0.4, 0.0)}))
    assert evaluate.selection_families(P) == [] and evaluate.pool_sizes(P) == {}
    pool = evaluate.ensure_pool(P)
    assert pool.empty and evaluate.pool_contrasts(P, pool) == {}
    assert evaluate.pool_counts({}).empty
