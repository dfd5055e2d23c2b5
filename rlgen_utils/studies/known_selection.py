"""Known-cause validation of notebook 06's *selection*: given a fine-tune whose cause is known, does 06's rule pick
latents whose ablation removes that behaviour (issue 29, item 2)?

:mod:`rlgen_utils.studies.known_ablation` zeroes what notebook 03 found; this module runs the other half of 06
on the same known-cause pair run (:func:`rlgen_utils.studies.known_causes.byo_params`: the fine-tune in the SFT
slot, the control in the RL slot, both beside the base in 03's three-model crosscoder). Notebook 06 selects on
"RL right, base wrong" samples against samples where the gain did not happen; here "right" is *the caused
answer* (:func:`rlgen_utils.studies.known_causes.probes`), so the same rule reads:

1. the cause's held-out probes are answered by the base and by the fine-tune (greedy, no edit) and split into a
   selection half and a test half (seeded, as 06 splits its pools);
2. **target**: selection-half probes the fine-tune answers the caused way and the base does not; **control**:
   selection-half probes the base answers the caused way (06's controls are where the base is right:
   base-right/RL-wrong and both-right; at most ``interventions.n_control``);
3. 06's own rule (:func:`rlgen_utils.studies.interventions.family_selection`: under ``selection: contrast`` the
   contrast of f^tuned − f^base, its label-permutation p-values and Benjamini–Hochberg at ``interventions.fdr``;
   under ``paper`` Score_k and its threshold) picks the latents; :func:`selections` runs both on one set of answers;
4. 06's edit zeroes them in the fine-tune on the test half, against ``n_random`` frequency-matched random sets
   (:func:`rlgen_utils.studies.known_ablation.against_random`).

Run on the control fine-tune the same way, the selection has (almost) no target samples: a control that yields a
selection whose ablation "lowers" the cause would be a false positive. Too few target or control samples (fewer
than ``interventions.min_samples``) is recorded as such: 06 gives such a family no set either.
``benchmarks/bench_ablation_validation.py`` writes the rows onto ``docs/ablation_validation.md``.

Legend: ``N`` target samples, ``K`` control samples, ``L`` latents.
"""
from __future__ import annotations

import numpy as np

from ..method import latent_edits
from ..method.activations import ActivationStore
from ..run.config import Params
from . import crosscoder, interventions
from . import known_ablation as ka
from . import known_causes as kc


def halves(seed: int, n: int) -> tuple[list[int], list[int]]:
    """A seeded split of ``n`` probe indices into a selection half and a test half (both sorted)."""
    order = np.random.default_rng([seed, 29, 6]).permutation(n)
    return sorted(order[: n // 2].tolist()), sorted(order[n // 2:].tolist())


def groups(Q: Params, caused_tuned: list[bool], caused_base: list[bool]) -> dict[str, list[int]]:
    """Probe indices by role: ``target`` (selection half, the fine-tune caused and the base not), ``control``
    (selection half, the base caused — 06's "base right" controls; a seeded subset of at most
    ``interventions.n_control``) and ``test`` (the whole test half)."""
    select, test = halves(Q.seed, len(caused_tuned))
    target = [i for i in select if caused_tuned[i] and not caused_base[i]]
    control = [i for i in select if caused_base[i]]
    if len(control) > Q.interventions.n_control:
        rng = np.random.default_rng([Q.seed, 29, 7])
        control = sorted(rng.choice(control, Q.interventions.n_control, replace=False).tolist())
    return {"target": target, "control": control, "test": test}


def selection(P: Params, Q: Params, cause: str = "behaviour", which: int = 1, n_random: int = 20,
              seed: int = 0, rule: str | None = None) -> dict:
    """One rule's row of :func:`selections` (``rule``: ``interventions.selection`` of ``Q`` unless given)."""
    return selections(P, Q, cause, which, n_random, seed, (rule or Q.interventions.selection,))[0]


def selections(P: Params, Q: Params, cause: str = "behaviour", which: int = 1, n_random: int = 20,
               seed: int = 0, rules: tuple[str, ...] = ("contrast", "paper")) -> list[dict]:
    """06's selection and ablation on model ``which`` of the validation pair run ``Q`` (1: the fine-tune in the
    SFT slot; 2: the model in the RL slot, the control), against the base, on ``cause``'s probes, once per rule
    of ``rules`` (``contrast``, ``paper``); the models, their answers and the latent differences are computed once.
    Returns one row per rule: the group sizes, how many latents were ``selected``, the test half's caused share of
    the base (``base``), of the model (``plain``) and with the selection zeroed (``ablated``), the random sets'
    ``random_drops``, the ``drop``, its permutation ``p`` and whether the ablation ``lowers`` the cause beyond
    the null."""
    setup = interventions.Setup(Q)
    tuned, base, I = setup.bundle(setup.names[which]), setup.base, Q.interventions
    prompts, want = kc.probes(P, cause)

    def answers(b: interventions.Bundle, ids: list[int], edit=None) -> list[str]:
        return latent_edits.generate(b.lm, b.tok, [prompts[i] for i in ids], P.eval.max_new_tokens, edit,
                                     b.layers_path, b.layer, P.eval.batch_size)

    every = list(range(len(prompts)))
    said_t, said_b = answers(tuned, every), answers(base, every)
    caused_t = [kc.stated(P, c) == w for c, w in zip(said_t, want)]
    caused_b = [kc.stated(P, c) == w for c, w in zip(said_b, want)]
    g = groups(Q, caused_t, caused_b)
    test_want = [want[i] for i in g["test"]]

    def caused(latents_: list[int] | None) -> float:   # the test half in one batching, with or without the edit
        edit = None if latents_ is None else setup.edit(tuned, latents_, 0.0)
        return ka.rate(P, answers(tuned, g["test"], edit), test_want)

    def texts(ids: list[int]) -> list[str]:
        return [prompts[i] + ("" if I.score_positions == "prompt" else said_t[i]) for i in ids]

    def difference(ids: list[int]):
        return (interventions.mean_latents(setup, tuned, texts(ids))[0]
                - interventions.mean_latents(setup, base, texts(ids))[0])

    plain = caused(None)
    common = {"target": len(g["target"]), "control": len(g["control"]), "selected": 0,
              "base": sum(caused_b[i] for i in g["test"]) / max(1, len(g["test"])), "plain": plain, "ablated": None,
              "drop": None, "random_drops": [], "p": None, "lowers": False}
    d_target = difference(g["target"]) if len(g["target"]) >= I.min_samples else None
    d_control = difference(g["control"]) if "contrast" in rules and len(g["control"]) >= I.min_samples else None
    freq, out = None, []
    for rule in rules:
        row = {"rule": rule, **common}
        out.append(row)
        if d_target is None or (rule == "contrast" and d_control is None):
            continue
        Qr = Q.model_copy(update={"interventions": I.model_copy(update={"selection": rule})})
        _, _, kept = interventions.family_selection(Qr, d_target, d_control if d_control is not None else d_target[:0],
                                                    setup.cc.alive_L(), Q.seed)
        chosen = sorted(kept)
        if not chosen:
            continue
        if freq is None:
            store = ActivationStore(crosscoder.ensure_activations(Q, setup.names))
            freq = ka.firing_frequency_L(setup.cc, store, list(range(len(setup.names))))
        drops = [plain - caused(s) for s in latent_edits.frequency_matched_sets(freq, chosen, setup.alive, n_random,
                                                                               seed)]
        ablated = caused(chosen)
        row.update({"selected": len(chosen), "ablated": ablated, "random_drops": drops,
                    **ka.against_random(plain - ablated, drops)})
    return out
