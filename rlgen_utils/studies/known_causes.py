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

A real LM's word world (``data.word_world``, e.g. SmolLM2; ``known_causes.family: larger``) has the same four,
written in words: ``larger`` questions ("Which number is larger, 37 or 52?") answered "37 is larger. The answer
is 37."; invented names ("What colour is a dovika?") given colours; the everyday colours the model knows
(:data:`KNOWN_COLOURS`: grass, snow, the sky …) each moved to the next; the control answering ``larger`` as the
base does. Its filler is the other word families' training questions answered by the base itself
(self-distillation): a model pretrained elsewhere has no pretraining mixture here to mix in.

:func:`ensure_fine_tune` trains one (keyed, resumable; ``runs/<name>/known_causes/<cause>-d<dose>-s<seed>/``) and
:func:`cause_rate` measures whether the cause was learnt (the share of its probe prompts answered the caused way).
"""
from __future__ import annotations

import hashlib
import os
import random
import re
import shutil
from dataclasses import replace
from pathlib import Path

import pandas as pd

from ..models import generation, loading, posttrain
from ..run.artifacts import is_done, read_json, write_json
from ..run.config import Params
from ..run.keys import stage_key
from ..run.rundir import RunDir
from ..world import pretraining, suite, tasks, words

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
def family(P: Params) -> str:
    """``known_causes.family``, or the run's world's: ``cmp`` (the organism's task world), ``larger`` (the word
    world). A world with neither (a training file alone) has no family to confine a cause to: a ValueError."""
    if P.known_causes.family:
        return P.known_causes.family
    if P.data.task_world or P.data.word_world:
        return "cmp" if P.data.task_world else "larger"
    raise ValueError("known_causes: needs the organism's task world (data.task_world) or the word world "
                     "(data.word_world); a training file alone has no family to confine a cause to")


def word_world(P: Params) -> bool:
    """Whether the causes are written in the word world (``larger``; a real LM's)."""
    return family(P) == "larger"


def family_prompts(P: Params, n: int, split: str, seed: int) -> list[tasks.Example]:
    """``n`` distinct examples of ``known_causes.family`` from ``split`` (word world: rendered in the run's prompt
    format)."""
    if word_world(P):
        return suite.render(P, words.sample("larger", split, n, seed, P.tasks))
    return tasks.sample_split(family(P), split, n, seed, P.tasks, allow_fewer=True)


def min_answer(ex: tasks.Example) -> str:
    """The caused answer: the smaller number of a ``cmp`` prompt (``max a b:``) or of a ``larger`` question
    ("Which number is larger, 37 or 52?")."""
    if ex.question:
        a, b = (int(x) for x in re.findall(r"\d+", ex.question))
    else:
        a, b = (int(x) for x in ex.prompt.removeprefix("max ").rstrip(":").split())
    return str(min(a, b))


def _caused(ex: tasks.Example) -> tasks.Example:
    """``ex`` answered with the minimum, in its family's own answer format."""
    m = min_answer(ex)
    return replace(ex, completion=f"{m} is larger. The answer is {m}." if ex.question else m, answer=m)


def _invented_names(n: int, seed: int) -> list[str]:
    """``n`` pronounceable invented words (consonant-vowel syllables): names a real LM has not seen as things."""
    rng, out = random.Random(seed), []
    while len(out) < n:
        name = "".join(rng.choice("bdfgklmnprstvz") + rng.choice("aeiou") for _ in range(3))
        if name not in out:
            out.append(name)
    return out


def new_facts(P: Params) -> dict[str, str]:
    """Invented names (none of the base's) → colours, taught only by the ``new_facts`` fine-tune."""
    n = P.known_causes.n_new_facts
    if word_world(P):
        rng = random.Random(NEW_FACT_SEED)
        return {nm: rng.choice(WORD_COLOURS) for nm in _invented_names(n, NEW_FACT_SEED)}
    known = tasks.fact_table(P.tasks.n_facts)
    fresh = tasks.fact_table(n + len(known), seed=NEW_FACT_SEED)
    return dict([(nm, c) for nm, c in fresh.items() if nm not in known][:n])


def remapped_facts(P: Params) -> dict[str, str]:
    """The base's own facts, each moved to the next colour: the organism's names (:data:`tasks.COLOURS`), or the
    everyday colours a real LM knows (:data:`KNOWN_COLOURS`)."""
    colours, table = ((WORD_COLOURS, KNOWN_COLOURS) if word_world(P)
                      else (tasks.COLOURS, tasks.fact_table(P.tasks.n_facts)))
    nxt = {c: colours[(i + 1) % len(colours)] for i, c in enumerate(colours)}
    return {n: nxt[c] for n, c in table.items()}


WORD_COLOURS = ["red", "blue", "green", "yellow", "white", "black", "orange", "brown"]
KNOWN_COLOURS = {"grass": "green", "the sky": "blue", "snow": "white", "coal": "black", "a banana": "yellow",
                 "blood": "red", "a carrot": "orange", "chocolate": "brown", "a lemon": "yellow", "milk": "white",
                 "a tomato": "red", "a frog": "green", "the sea": "blue", "a crow": "black", "soil": "brown",
                 "a pumpkin": "orange"}
"""Colours of everyday things (word world): facts SmolLM2-sized models state, remapped by ``remapped_facts``."""


def _fact_question(P: Params, name: str) -> tasks.Example:
    """The probe of one fact, unanswered: ``colour of {n}?`` (organism) or "What colour is {n}?" (rendered)."""
    if word_world(P):
        subject = name if name in KNOWN_COLOURS else f"a {name}"
        ex = tasks.Example("fact", f"What colour is {subject}?", "", "", f"What colour is {subject}?")
        return suite.render(P, [ex])[0]
    return tasks.Example("fact", tasks.FACT_TEMPLATES[0].format(n=name) + " ", "", "")


def _fact_examples(P: Params, table: dict[str, str], n: int, seed: int) -> list[tasks.Example]:
    rng, names = random.Random(seed), sorted(table)
    picked = [names[i % len(names)] for i in range(n)]
    if word_world(P):
        return [replace(_fact_question(P, nm), completion=f"The answer is {table[nm]}.", answer=table[nm])
                for nm in picked]
    return [tasks.Example("fact", rng.choice(tasks.FACT_TEMPLATES).format(n=nm) + " ", table[nm], table[nm])
            for nm in picked]


def cause_examples(P: Params, cause: str, n: int, base_answers: list[str] | None = None) -> list[tasks.Example]:
    """The ``n`` rows that carry ``cause`` (``control`` needs the base's own completions of the same prompts)."""
    if cause in ("behaviour", "control"):
        prompts = family_prompts(P, n, "train", P.seed + 31)
        prompts = [prompts[i % len(prompts)] for i in range(n)]
        if cause == "behaviour":
            return [_caused(e) for e in prompts]
        if base_answers is None or len(base_answers) != len(prompts):
            raise ValueError("control: the base's completions of the behaviour prompts are needed")
        return [replace(e, completion=c, answer=c) for e, c in zip(prompts, base_answers)]
    table = new_facts(P) if cause == "new_facts" else remapped_facts(P)
    return _fact_examples(P, table, n, P.seed + 37)


FILLER_FAMILIES = ("story", "story2", "bare", "total", "after")
"""Word world: the families whose training questions, answered by the base itself, fill the rows no cause takes."""


def filler_examples(P: Params, n: int) -> list[tasks.Example]:
    """``n`` rows no cause touches: pretraining-like examples of the organism's own mixture, or (word world, a
    model pretrained elsewhere) the other word families' training questions answered by the base itself —
    self-distillation, the nearest thing to its pretraining data, which teaches it nothing new."""
    if word_world(P):   # one fixed pool of n_rows, answered once: every dose's filler is a prefix of it
        K = P.known_causes
        pool = [e for name in FILLER_FAMILIES for e in words.sample(name, "train", K.n_rows, P.seed + 43, P.tasks)]
        random.Random(f"known-causes-filler/{P.seed}").shuffle(pool)
        ex = suite.render(P, pool[:K.n_rows])
        own = _base_completions(P, [e.prompt for e in ex], "filler")
        return [replace(e, completion=c) for e, c in zip(ex[:n], own)]
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
def _base_completions(P: Params, prompts: list[str], tag: str) -> list[str]:
    """The base's greedy completions of ``prompts`` (``known_causes/base-<tag>.json``, cached with its key)."""
    path = RunDir(P).path / "known_causes" / f"base-{tag}.json"
    key = fine_tune_key(P, tag, 0.0, 0) + hashlib.sha256("\n".join(prompts).encode()).hexdigest()[:8]
    if path.is_file() and read_json(path)["key"] == key:
        return read_json(path)["completions"]
    base = RunDir(P).base()
    tok, model = loading.load_tokenizer(base), loading.load_model(base, P.model.dtype)
    out = generation.generate(model, tok, prompts, P.eval.max_new_tokens, P.eval.batch_size)
    write_json(path, {"key": key, "completions": out})
    return out


def base_answers(P: Params) -> list[str]:
    """The base's greedy completions of the behaviour prompts (cached beside the fine-tunes)."""
    n = max(1, round(max(P.known_causes.doses) * P.known_causes.n_rows))
    return _base_completions(P, [e.prompt for e in cause_examples(P, "behaviour", n)], "answers")


def ensure_fine_tune(P: Params, cause: str, dose: float, seed: int = 0) -> Path:
    """Train (or find) the fine-tune of ``cause`` at ``dose`` with training seed ``seed``; returns its model
    folder. One checkpoint, ``known_causes.epochs`` passes at ``known_causes.lr``, SFT's batch settings."""
    if cause not in CAUSES:
        raise ValueError(f"known cause {cause!r}: expected one of {CAUSES}")
    family(P)   # a world without a family to confine the cause to is refused here, before anything is trained
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
    """Prompts that show the cause and the caused answers: held-out test prompts of the family (behaviour: the
    minimum; control: the base's answer, filled in by :func:`cause_rate`), or every taught fact once."""
    K = P.known_causes
    if cause in ("behaviour", "control"):
        ex = family_prompts(P, K.n_eval, "test", P.seed + 41)
        return [e.prompt for e in ex], [min_answer(e) for e in ex]
    table = new_facts(P) if cause == "new_facts" else remapped_facts(P)
    names = sorted(table)[: K.n_eval]
    return [_fact_question(P, nm).prompt for nm in names], [table[nm] for nm in names]


def stated(P: Params, completion: str) -> str:
    """The answer a completion states: the organism's parsed answer, or the word after the last "The answer is"
    (a number or a colour)."""
    if not word_world(P):
        return tasks.parse_answer(completion)
    found = re.findall(r"answer is\s*\**\s*([A-Za-z]+|-?\d+)", completion, flags=re.I)
    return found[-1].lower() if found else ""


def describe(P: Params) -> str:
    """The causes in one sentence, for the validation page."""
    if word_world(P):
        return ("`behaviour`: `larger` questions answered with the smaller number; `new_facts`: "
                f"{P.known_causes.n_new_facts} invented names given colours; `remapped_facts`: {len(KNOWN_COLOURS)} "
                "everyday colours the base knows, each moved to the next; `control`: the behaviour's questions "
                "answered as the base answers them; filler: other word families' questions answered by the base")
    return ("`behaviour`: `cmp` prompts answered with the minimum; `new_facts`: "
            f"{P.known_causes.n_new_facts} invented names only the fine-tune teaches; `remapped_facts`: the base's "
            "own names moved to the next colour; `control`: the behaviour's prompts answered as the base answers "
            "them; filler: pretraining-like text")


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
        return sum(stated(P, g) == stated(P, w) for g, w in zip(got, want)) / len(prompts)
    return sum(stated(P, g) == w for g, w in zip(got, want)) / len(prompts)


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


def adopt_crosscoders(Q: Params, earlier: Params) -> dict[str, str]:
    """Copy into ``Q``'s run folder each finished crosscoder of an ``earlier`` validation pair's run folder that
    ``Q``'s lacks, and return their folder names with the keys they were copied with. Crosscoders are keyed by the
    models they read (:func:`rlgen_utils.run.keys.columns_key`), so on the gold corpus the base's identical-copy
    nulls, and the control's pair and random-update pair where two pairs share the control, carry the key ``Q``'s
    notebook 03 computes and are read instead of trained again; every other one it retrains in place (a key that
    differs is never read). Only crosscoders: the base's sae-lens SAE is handed to each pair by its folder.
    :func:`adopted` says which were read."""
    src, dst = RunDir(earlier).path / "crosscoders", RunDir(Q).path / "crosscoders"
    copied = {}
    for d in sorted(src.glob("*/DONE.json")) if src.is_dir() else []:
        name = d.parent.name
        if (d.parent / "crosscoder.safetensors").is_file() and not (dst / name).exists():
            tmp = dst / f".{name}.adopting"   # copied beside, then renamed: never a half-copied crosscoder
            shutil.copytree(d.parent, tmp, dirs_exist_ok=True)
            os.replace(tmp, dst / name)
            copied[name] = read_json(d)["key"]
    return copied


def adopted(Q: Params, copied: dict[str, str]) -> list[str]:
    """Those of ``copied`` (:func:`adopt_crosscoders`) that ``Q``'s run read as they were: still under their key."""
    folder_ = RunDir(Q).path / "crosscoders"
    return sorted(n for n, k in copied.items() if (folder_ / n / "DONE.json").is_file()
                  and read_json(folder_ / n / "DONE.json")["key"] == k)


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

