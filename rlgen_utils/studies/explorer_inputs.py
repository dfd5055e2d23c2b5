"""What notebook 06's intervention explorer (:class:`rlgen_utils.viz.explorer.InterventionExplorer`) offers: the latent
sets to edit and the prompts to try them on."""
from __future__ import annotations

import pandas as pd

from ..method import latent_edits
from ..run.config import Params
from ..world import suite
from .interventions import FeatureSelection, Setup, pool_families, random_sets


# ------------------------------------------------------------------------------------------------ explorer
def sets(P: Params, setup: Setup, sel: FeatureSelection) -> dict[str, list[int]]:
    """Latent sets offered by the explorer: the selected set, each family's, and the first random control."""
    chosen = sel.selected
    out = {f"selected ({len(chosen)})": chosen}
    out.update({f"{f} ({len(s)})": s for f, s in sel.sets.items()})
    rand = (random_sets(P, setup, sel)[0] if chosen
            else latent_edits.random_sets(setup.alive, 1, 1, P.seed, set())[0])
    out[f"random ({len(rand)})"] = rand
    return out


def prompts(P: Params, pool: pd.DataFrame, sel: FeatureSelection, per_family: int = 5) -> dict[str, str]:
    """RL-right/base-wrong prompts first, then a few in-domain ones, labelled by family and sample."""
    rl = pool[pool.method == P.crosscoder.rl_method].set_index(["family", "sample"]).prompt
    out = {}
    for fam, ids in sel.right_wrong.items():
        for i in ids[:per_family]:
            out[f"{fam} #{i} (RL right, base wrong)"] = rl.loc[(fam, i)]
    fam = suite.world(P).in_domain_family
    out.update({f"{fam} #{i}": e.prompt for i, e in enumerate(pool_families(P)[fam].examples[:per_family])})
    return out
