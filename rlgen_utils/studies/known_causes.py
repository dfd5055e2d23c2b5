"""Fine-tunes of the base whose cause is known: the ground truth an instrument must find before its "not found"
means anything (issue 29; ``params: known_causes``).

Every fine-tune starts from the run's base, trains SFT on ``known_causes.n_rows`` rows for ``epochs`` passes at
``lr`` (the same budget for every cause), and a share ``dose`` of its rows carries the cause; the rest are
pretraining-like examples of the base's own mixture (the same rows, in the same order, for every cause at a dose):

* ``behaviour`` — a new behaviour confined to one family: ``cmp`` prompts (``max a b:``) answered with the
  *minimum*. Present when the fine-tune answers the minimum on held-out ``cmp`` test prompts.
* ``new_facts`` — facts taught only in the fine-tune: invented names the pretraining never saw, each with a colour.
* ``remapped_facts`` — facts the base knows, remapped: each of its names moved to the next colour (a rotation of
  features it has, not a new one).
* ``control`` — the same ``cmp`` prompts as ``behaviour``, answered as the base itself answers them (its greedy
  completions): same data and budget, nothing new to learn. An instrument that reports the control as changed is
  reporting the act of fine-tuning, not its cause.

:func:`ensure_fine_tune` trains one (keyed, resumable; ``runs/<name>/known_causes/<cause>-d<dose>-s<seed>/``) and
:func:`cause_rate` measures whether the cause was learnt (the share of its probe prompts answered the caused way).
"""
from __future__ import annotations

import hashlib
import random
from pathlib import Path

import pandas as pd

from ..models import generation, loading, posttrain
from ..run.artifacts import is_done, read_json, write_json
from ..run.config import Params
from ..run.keys import stage_key
from ..run.rundir import RunDir
from ..world import pretraining, suite, tasks

CAUSES = ("behaviour", "new_facts", "remapped_facts", "control")
NEW_FACT_SEED = 4321
"""Seed of the invented names only the new-facts fine-tune teaches (the base's table uses seed 1234)."""


def folder(P: Params, cause: str, dose: float, seed: int = 0) -> Path:
    return RunDir(P).path / "known_causes" / f"{cause}-d{dose:g}-s{seed}"


def fine_tune_key(P: Params, cause: str, dose: float, seed: int) -> str:
    """The base's key, the known-causes section, the cause, its dose and seed."""
    text = stage_key(P, "base") + P.known_causes.model_dump_json() + f"{cause}/{dose:g}/{seed}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# ------------------------------------------------------------------------------------------------- the rows
def family_prompts(P: Params, n: int, split: str, seed: int) -> list[tasks.Example]:
    """``n`` distinct examples of ``known_causes.family`` from ``split``."""
    return tasks.sample_split(P.known_causes.family, split, n, seed, P.tasks, allow_fewer=True)


def min_answer(ex: tasks.Example) -> str:
    """The caused answer of a ``cmp`` prompt (``max a b:``): the smaller number."""
    a, b = (int(x) for x in ex.prompt.removeprefix("max ").rstrip(":").split())
    return str(min(a, b))


def new_facts(P: Params) -> dict[str, str]:
    """Invented names (none of the base's) → colours, taught only by the ``new_facts`` fine-tune."""
    known = tasks.fact_table(P.tasks.n_facts)
    fresh = tasks.fact_table(P.known_causes.n_new_facts + len(known), seed=NEW_FACT_SEED)
    return dict([(n, c) for n, c in fresh.items() if n not in known][: P.known_causes.n_new_facts])


def remapped_facts(P: Params) -> dict[str, str]:
    """The base's own names, each moved to the next colour of :data:`tasks.COLOURS`."""
    nxt = {c: tasks.COLOURS[(i + 1) % len(tasks.COLOURS)] for i, c in enumerate(tasks.COLOURS)}
    return {n: nxt[c] for n, c in tasks.fact_table(P.tasks.n_facts).items()}


def _fact_examples(table: dict[str, str], n: int, seed: int) -> list[tasks.Example]:
    rng, names = random.Random(seed), sorted(table)
    return [tasks.Example("fact", rng.choice(tasks.FACT_TEMPLATES).format(n=nm) + " ", table[nm], table[nm])
            for nm in (names[i % len(names)] for i in range(n))]


def cause_examples(P: Params, cause: str, n: int, base_answers: list[str] | None = None) -> list[tasks.Example]:
    """The ``n`` rows that carry ``cause`` (``control`` needs the base's own completions of the same prompts)."""
    if cause in ("behaviour", "control"):
        prompts = family_prompts(P, n, "train", P.seed + 31)
        prompts = [prompts[i % len(prompts)] for i in range(n)]
        if cause == "behaviour":
            return [tasks.Example(e.family, e.prompt, min_answer(e), min_answer(e)) for e in prompts]
        if base_answers is None or len(base_answers) != len(prompts):
            raise ValueError("control: the base's completions of the behaviour prompts are needed")
        return [tasks.Example(e.family, e.prompt, c, c) for e, c in zip(prompts, base_answers)]
    table = new_facts(P) if cause == "new_facts" else remapped_facts(P)
    return _fact_examples(table, n, P.seed + 37)


def filler_examples(P: Params, n: int) -> list[tasks.Example]:
    """``n`` pretraining-like examples of the base's own mixture (the share of the rows no cause touches)."""
    rng = random.Random(f"known-causes-filler/{P.seed}")
    names, weights = pretraining.mixture(P.pretrain.in_domain_weight if P.pretrain else 1.0,
                                         P.pretrain.family_weights if P.pretrain else None)
    return [pretraining.pretrain_example(rng, rng.choices(names, weights)[0], P.tasks) for _ in range(n)]


def rows(P: Params, cause: str, dose: float, base_answers: list[str] | None = None) -> list[dict]:
    """The fine-tune's SFT rows: ``round(dose · n_rows)`` cause rows, then filler, in a fixed shuffled order."""
    K = P.known_causes
    n_cause = max(1, round(dose * K.n_rows))
    ex = cause_examples(P, cause, n_cause, base_answers) + filler_examples(P, K.n_rows - n_cause)
    random.Random(f"known-causes-order/{P.seed}/{dose:g}").shuffle(ex)
    return posttrain.sft_rows(ex)


# --------------------------------------------------------------------------------------------- the stage
def base_answers(P: Params) -> list[str]:
    """The base's greedy completions of the behaviour prompts (cached beside the fine-tunes)."""
    n = max(1, round(max(P.known_causes.doses) * P.known_causes.n_rows))
    path = RunDir(P).path / "known_causes" / "base_answers.json"
    key = fine_tune_key(P, "control", 0.0, 0)
    if path.is_file() and read_json(path)["key"] == key:
        return read_json(path)["completions"]
    prompts = [e.prompt for e in cause_examples(P, "behaviour", n)]
    base = RunDir(P).base()
    tok, model = loading.load_tokenizer(base), loading.load_model(base, P.model.dtype)
    out = generation.generate(model, tok, prompts, P.eval.max_new_tokens, P.eval.batch_size)
    write_json(path, {"key": key, "completions": out})
    return out


def ensure_fine_tune(P: Params, cause: str, dose: float, seed: int = 0) -> Path:
    """Train (or find) the fine-tune of ``cause`` at ``dose`` with training seed ``seed``; returns its model
    folder. One checkpoint, ``known_causes.epochs`` passes at ``known_causes.lr``, SFT's batch settings."""
    if cause not in CAUSES:
        raise ValueError(f"known cause {cause!r}: expected one of {CAUSES}")
    if suite.World.of(P).real_lm or not P.data.task_world:
        raise ValueError("known_causes: built for the organism's task world (cmp, invented facts); a real LM's "
                         "known causes are not built yet")
    K, out = P.known_causes, folder(P, cause, dose, seed)
    key = fine_tune_key(P, cause, dose, seed)
    final = out / "checkpoint-1"
    if is_done(final, key):
        return final
    answers = base_answers(P)[: max(1, round(dose * K.n_rows))] if cause == "control" else None
    sft = P.posttrain.sft.model_copy(update={"epochs": K.epochs})
    Pk = P.model_copy(update={"posttrain": P.posttrain.model_copy(update={"n_checkpoints": 1, "sft": sft})})
    return posttrain.train_method("sft", RunDir(P).base(), out, rows(P, cause, dose, answers), Pk, key, seed,
                                  sft_lr=K.lr)


def probes(P: Params, cause: str) -> tuple[list[str], list[str]]:
    """Prompts that show the cause and the caused answers: held-out ``cmp`` test prompts (behaviour: the minimum;
    control: the base's answer, filled in by :func:`cause_rate`), or every taught fact once."""
    K = P.known_causes
    if cause in ("behaviour", "control"):
        ex = family_prompts(P, K.n_eval, "test", P.seed + 41)
        return [e.prompt for e in ex], [min_answer(e) for e in ex]
    table = new_facts(P) if cause == "new_facts" else remapped_facts(P)
    names = sorted(table)[: K.n_eval]
    return [tasks.FACT_TEMPLATES[0].format(n=nm) + " " for nm in names], [table[nm] for nm in names]


def cause_rate(P: Params, path: Path, cause: str) -> float:
    """Share of the cause's probe prompts that the model at ``path`` answers the caused way (for the control:
    as the base answers them, so 1.0 means the control changed nothing there)."""
    prompts, want = probes(P, cause)
    tok = loading.load_tokenizer(path)
    got = generation.generate(loading.load_model(path, P.model.dtype), tok, prompts, P.eval.max_new_tokens,
                              P.eval.batch_size)
    if cause == "control":
        base = RunDir(P).base()
        want = generation.generate(loading.load_model(base, P.model.dtype), loading.load_tokenizer(base), prompts,
                                   P.eval.max_new_tokens, P.eval.batch_size)
        return sum(tasks.parse_answer(g) == tasks.parse_answer(w) for g, w in zip(got, want)) / len(prompts)
    return sum(tasks.parse_answer(g) == w for g, w in zip(got, want)) / len(prompts)


# ------------------------------------------------------------------------------- handed to the notebooks
def byo_params(P: Params, cause: str, dose: float, tuned: Path, other: Path) -> dict:
    """A params mapping that hands two fine-tunes to the notebooks as bring-your-own checkpoints: ``tuned`` in
    the SFT slot, ``other`` in the RL slot, the base by its folder, everything else as in ``P`` (one seed, one
    checkpoint, no sweep, no pre-registration). Notebook 03 then runs *unchanged* on a change whose cause is
    known; its verdict "SFT adds more model-specific latents" reads "does the instrument see the cause"."""
    d = P.model_dump(mode="json")
    d["name"] = f"{P.name}-kc-{cause}-d{dose:g}" + ("" if P.crosscoder.corpus == "gold" else f"-{P.crosscoder.corpus}")
    d["model"]["name_or_path"] = str(RunDir(P).base().resolve())
    d["model"]["prompt"]["style"] = P.model.prompt_style
    d["pretrain"] = None
    d["posttrain"].update(methods=["sft", "grpo"], n_checkpoints=1, sft_sweep=[], seeds=None)
    d["models"] = {"sft": str(tuned.resolve()), "grpo": str(other.resolve())}
    d["circuits"].update(pairs=None, exact_model="base")
    d["eval"]["preregistration"] = None
    d["interventions"]["families"] = None
    return d


# ------------------------------------------------------------------------------------------ what was seen
INSTRUMENTS = ("pair crosscoder (NRN tuned-only)", "three-model crosscoder (MAS owned)",
               "activation difference lens (relative norm)", "decoder-cosine shift (shared latents)",
               "sae-lens FVU shift (the base's SAE)")
SAE_RATIO = 1.1
"""The base's sae-lens SAE sees a cause when its held-out FVU on the tuned model is at least this many times its FVU
on the control of the same budget (stated before the first run)."""
LENS_RATIO = 2.0
"""The lens sees a cause when the tuned slot's mean relative norm is at least this many times the other slot's
(the control fine-tune of the same budget) and above its own random-update null's."""


def detections(verdicts_03: list[dict], lens: dict, cosines: dict | None = None,
               sae_fvu: dict[str, float] | None = None) -> list[dict]:
    """Per instrument, from one notebook-03 run on (cause in the SFT slot, control in the RL slot): its effect,
    its null and whether it saw the cause — the crosscoders by notebook 03's own verdicts (decided against their
    identical-copy and random-update nulls), the lens by :data:`LENS_RATIO` against the control and its null, the
    decoder-cosine shift (``cosines``: notebook 03's finding values ``shared_cosine_<slot>`` and
    ``shared_cosine_null_<slot>``) when the tuned slot's median cosine lies below the control's and below the
    lowest of its nulls', and the base's sae-lens SAE (``sae_fvu``: held-out FVU per model, ``studies.baselines.
    sae_baseline``) when its FVU on the tuned model is ≥ :data:`SAE_RATIO` × its FVU on the control."""
    by_claim = {("MAS" in v["claim"]): v for v in verdicts_03}
    out = [{"instrument": INSTRUMENTS[int(mas)], "effect": v["detail"], "null": v["null"],
            "detected": v["decision"] == "reproduced"} for mas, v in sorted(by_claim.items())]
    rel = {m: sum(r["relative_norm_K"]) / len(r["relative_norm_K"]) for m, r in lens.items() if not m.startswith("_")}
    tuned, other, null = rel.get("sft", float("nan")), rel.get("grpo", float("nan")), rel.get("noise+sft", float("nan"))
    out.append({"instrument": INSTRUMENTS[2], "effect": f"tuned {tuned:.3f}, control {other:.3f}",
                "null": f"random update like the tuned model {null:.3f}; needs ≥ {LENS_RATIO:g}× the control",
                "detected": bool(tuned >= LENS_RATIO * other and tuned > null)})
    if cosines is not None and "shared_cosine_null_sft" in cosines:
        c_t, c_o, c_n = (float(cosines[k]) for k in ("shared_cosine_sft", "shared_cosine_grpo",
                                                      "shared_cosine_null_sft"))
        out.append({"instrument": INSTRUMENTS[3], "effect": f"tuned {c_t:.3f}, control {c_o:.3f}",
                    "null": f"lowest null cosine in the tuned slot {c_n:.3f}",
                    "detected": bool(c_t < c_o and c_t < c_n)})
    if sae_fvu is not None:
        f_t, f_o, f_b = sae_fvu["sft"], sae_fvu["grpo"], sae_fvu["base"]
        out.append({"instrument": INSTRUMENTS[4], "effect": f"FVU tuned {f_t:.4f}, control {f_o:.4f}, base {f_b:.4f}",
                    "null": f"needs ≥ {SAE_RATIO:g}× the control's FVU",
                    "detected": bool(f_t >= SAE_RATIO * f_o)})
    return out


def recall_table(rows: list[dict]) -> pd.DataFrame:
    """Per instrument and corpus (``crosscoder.corpus``; rows without one are ``gold``): recall over the known
    causes (every non-control fine-tune and dose) and false-positive rate on the control (a control fine-tune
    against another control of the same budget)."""
    df = pd.DataFrame(rows)
    df = df.assign(corpus=df["corpus"].fillna("gold") if "corpus" in df else "gold")
    out = []
    for (inst, corpus), g in df.groupby(["instrument", "corpus"], sort=False):
        causes, control = g[g.cause != "control"], g[g.cause == "control"]
        out.append({"instrument": inst, "corpus": corpus,
                    "recall": causes.detected.mean() if len(causes) else float("nan"),
                    "known causes": f"{int(causes.detected.sum())}/{len(causes)}",
                    "false-positive rate": control.detected.mean() if len(control) else float("nan"),
                    "controls": f"{int(control.detected.sum())}/{len(control)}",
                    "sees the behaviour": bool(causes[causes.cause == "behaviour"].detected.any())})
    return pd.DataFrame(out)

