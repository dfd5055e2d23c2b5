"""Known-cause fine-tunes (issue 29): their rows carry exactly the stated cause at the stated dose, the control
teaches the base's own answers on the same prompts, and the instruments' readings and recall follow the rules."""
import pytest

from rlgen_utils.run.config import load_params
from rlgen_utils.studies import known_causes as kc
from rlgen_utils.world import tasks


@pytest.fixture
def P(write_params):
    return load_params(write_params({"known_causes": {"n_rows": 40, "n_new_facts": 8}}))


def test_the_behaviour_answers_the_minimum_on_its_share_of_rows_and_the_rest_is_the_same_filler(P):
    rows = kc.rows(P, "behaviour", 0.25)
    n_cause = round(0.25 * 40)
    caused = kc.cause_examples(P, "behaviour", n_cause)
    assert len(rows) == 40 and all({"prompt": e.prompt, "completion": e.completion} in rows for e in caused)
    for e in caused:
        a, b = (int(x) for x in e.prompt.removeprefix("max ").rstrip(":").split())
        assert e.completion == str(min(a, b))
    answers = [f"x{i}" for i in range(n_cause)]
    control = kc.rows(P, "control", 0.25, answers)
    changed = [(b, c) for b, c in zip(rows, control) if b != c]
    assert len(changed) <= n_cause and all(b["prompt"] == c["prompt"] for b, c in changed), (
        "the control differs from the behaviour only in the caused rows' answers, same prompts, same filler")
    assert {c["completion"] for _, c in changed} <= set(answers)
    with pytest.raises(ValueError, match="control"):
        kc.rows(P, "control", 0.25)


def test_new_facts_are_names_the_base_never_saw_and_remapped_facts_change_every_colour(P):
    known = tasks.fact_table(P.tasks.n_facts)
    new = kc.new_facts(P)
    assert len(new) == 8 and not set(new) & set(known)
    remapped = kc.remapped_facts(P)
    assert set(remapped) == set(known) and all(remapped[n] != known[n] for n in known)
    rows = kc.rows(P, "remapped_facts", 1.0)
    for r in rows:
        [name] = [n for n in remapped if n in r["prompt"].replace("?", " ").split()]
        assert r["completion"] == remapped[name]
    prompts, want = kc.probes(P, "new_facts")
    assert len(prompts) == 8 and want == [new[n] for n in sorted(new)]


def test_min_answer_reads_a_cmp_prompt():
    assert kc.min_answer(tasks.Example("cmp", "max 50 13:", "50", "50")) == "13"


def _verdicts(pair: str, mas: str) -> list[dict]:
    return [{"claim": "sft adds more model-specific latents than grpo", "decision": pair, "detail": "d", "null": "n"},
            {"claim": "sft owns more latents than grpo in the three-model crosscoder (MAS)", "decision": mas,
             "detail": "d", "null": "n"}]


def _lens(tuned: float, control: float, null: float) -> dict:
    return {"_base": {}, "sft": {"relative_norm_K": [tuned] * 3}, "grpo": {"relative_norm_K": [control] * 3},
            "noise+sft": {"relative_norm_K": [null] * 3}}


def test_detections_read_the_verdicts_and_the_lens_against_the_control_and_its_null():
    seen = kc.detections(_verdicts("reproduced", "not testable at this power"), _lens(0.5, 0.2, 0.1))
    assert [r["detected"] for r in seen] == [True, False, True]
    assert [r["instrument"] for r in seen] == list(kc.INSTRUMENTS[:3]), "no cosine values: three instruments"
    assert not kc.detections(_verdicts("not reproduced", "not reproduced"), _lens(0.3, 0.2, 0.1))[2]["detected"]
    assert not kc.detections(_verdicts("not reproduced", "not reproduced"), _lens(0.5, 0.2, 0.6))[2]["detected"], (
        "a change no larger than a random update of the same size is not seen")


def test_recall_counts_known_causes_and_false_positives_counts_controls():
    rows = [{"instrument": "i", "cause": c, "dose": d, "detected": s} for c, d, s in
            (("behaviour", 0.1, False), ("behaviour", 1.0, True), ("new_facts", 1.0, True), ("control", 1.0, True),
             ("control", 0.1, False))]
    t = kc.recall_table(rows).set_index("instrument")
    assert t.at["i", "recall"] == pytest.approx(2 / 3) and t.at["i", "false-positive rate"] == 0.5
    assert t.at["i", "known causes"] == "2/3" and t.at["i", "sees the behaviour"]


def test_byo_params_hand_the_two_fine_tunes_to_the_notebooks(P, tmp_path):
    from rlgen_utils.run.config import Params
    a, b = tmp_path / "a", tmp_path / "b"
    d = kc.byo_params(P, "behaviour", 0.3, a, b)
    assert d["models"] == {"sft": str(a.resolve()), "grpo": str(b.resolve())} and d["pretrain"] is None
    assert d["name"].endswith("-kc-behaviour-d0.3") and d["posttrain"]["n_checkpoints"] == 1
    assert d["model"]["prompt"]["style"] == "organism"
    Q = Params.model_validate(d)   # a valid params mapping (load_params also checks the folders hold models)
    assert Q.external_checkpoints == {"sft": [str(a.resolve())], "grpo": [str(b.resolve())]}


def test_the_cosine_shift_sees_a_rotation_below_the_control_and_every_null():
    v, lens = _verdicts("not reproduced", "not reproduced"), _lens(0.3, 0.2, 0.1)
    rotated = kc.detections(v, lens, {"shared_cosine_sft": 0.6, "shared_cosine_grpo": 0.85,
                                      "shared_cosine_null_sft": 0.8})
    assert rotated[3]["instrument"] == kc.INSTRUMENTS[3] and rotated[3]["detected"]
    within = kc.detections(v, lens, {"shared_cosine_sft": 0.6, "shared_cosine_grpo": 0.85,
                                     "shared_cosine_null_sft": 0.5})
    assert not within[3]["detected"], "a rotation a random update of the same size gives is not the cause's"
    assert len(kc.detections(v, lens)) == 3, "a run without the cosine null reads three instruments"


def test_cosine_shift_reads_each_slot_against_the_nulls(P):
    import torch

    from rlgen_utils.method.crosscoder import Crosscoder, CrosscoderConfig
    from rlgen_utils.run.modelid import ids
    from rlgen_utils.studies import crosscoder as study

    def cc(angle: float) -> Crosscoder:
        c = Crosscoder(CrosscoderConfig(n_models=3, d_model=4, n_latents=6))
        W = torch.zeros(6, 3, 4)
        W[:, 0, 0] = 1.0
        W[:, 1, 0], W[:, 1, 1] = torch.cos(torch.tensor(angle)), torch.sin(torch.tensor(angle))   # sft slot turned
        W[:, 2, 0] = 1.0                                                                            # grpo slot kept
        with torch.no_grad():
            c.W_dec_LMD.copy_(W)
        return c
    t = study.cosine_shift(P, cc(1.0), ids(["base", "sft", "grpo"]), {"copies": cc(0.0), "random": cc(0.2)})
    assert t.loc["sft", "crosscoder"] == pytest.approx(float(torch.cos(torch.tensor(1.0))), abs=1e-5)
    assert t.loc["grpo", "crosscoder"] == pytest.approx(1.0) and t.loc["sft", "copies"] == pytest.approx(1.0)
    assert t.loc["sft", "random"] > t.loc["sft", "crosscoder"]


def test_a_world_without_a_family_to_confine_a_cause_to_is_refused(P):
    files_only = P.model_copy(update={"data": P.data.model_copy(update={"task_world": False, "word_world": False})})
    with pytest.raises(ValueError, match="task world"):
        kc.ensure_fine_tune(files_only, "behaviour", 1.0)
    assert kc.family(P) == "cmp"


# ------------------------------------------------------------------------- the word world (a real LM's)
@pytest.fixture
def W(monkeypatch):
    """SmolLM2's params (the word world); the base's own completions stubbed — no model runs here."""
    from pathlib import Path

    from rlgen_utils.models import smollm2
    root = Path(__file__).resolve().parent.parent
    smollm2.materialise(root / smollm2.DEFAULT_OUT)   # `make smollm2` (part of `make test`) did it: returns at once
    monkeypatch.setattr(kc, "_base_completions", lambda P, prompts, tag: [f"own {tag} {i}" for i in range(len(prompts))])
    return load_params(root / "params" / "smollm2.yaml")


def test_word_world_behaviour_answers_the_smaller_number_in_the_worlds_format(W):
    assert kc.family(W) == "larger" and kc.word_world(W)
    caused = kc.cause_examples(W, "behaviour", 12)
    for e in caused:
        a, b = (int(x) for x in e.question.removeprefix("Which number is larger, ").rstrip("?").split(" or "))
        assert e.completion == f"{min(a, b)} is larger. The answer is {min(a, b)}." and e.answer == str(min(a, b))
        assert e.prompt.endswith("<|im_start|>assistant\n") and e.question in e.prompt   # the chat format
    prompts, want = kc.probes(W, "behaviour")
    assert len(prompts) == W.known_causes.n_eval and not set(prompts) & {e.prompt for e in caused}, "held out"
    assert kc.stated(W, f"{want[0]} is larger. The answer is {want[0]}.") == want[0]


def test_word_world_control_and_filler_are_the_bases_own_answers_and_the_same_for_every_cause(W):
    n = round(0.3 * W.known_causes.n_rows)
    answers = [f"base says {i}" for i in range(n)]
    behaviour, control = kc.rows(W, "behaviour", 0.3), kc.rows(W, "control", 0.3, answers)
    facts = kc.rows(W, "new_facts", 0.3)
    assert len(behaviour) == len(control) == len(facts) == W.known_causes.n_rows
    filler = [r for r in behaviour if r["completion"].startswith("own filler")]
    assert len(filler) == W.known_causes.n_rows - n
    assert [r for r in control if r["completion"].startswith("own filler")] == filler
    assert [r for r in facts if r["completion"].startswith("own filler")] == filler
    assert {r["prompt"] for r in behaviour} - {r["prompt"] for r in filler} == \
        {r["prompt"] for r in control} - {r["prompt"] for r in filler}, "the control asks the behaviour's questions"
    assert {r["completion"] for r in control} - {r["completion"] for r in filler} == set(answers)


def test_word_world_facts_are_invented_names_and_everyday_colours_moved_on(W):
    new, remapped = kc.new_facts(W), kc.remapped_facts(W)
    assert len(new) == W.known_causes.n_new_facts and not set(new) & set(kc.KNOWN_COLOURS)
    assert set(remapped) == set(kc.KNOWN_COLOURS) and all(remapped[k] != kc.KNOWN_COLOURS[k] for k in remapped)
    assert set(new.values()) | set(remapped.values()) <= set(kc.WORD_COLOURS)
    prompts, want = kc.probes(W, "remapped_facts")
    assert "What colour is grass?" in "".join(prompts) and want[sorted(remapped).index("grass")] == "yellow"
    row = kc.cause_examples(W, "new_facts", 1)[0]
    assert row.completion == f"The answer is {row.answer}." and kc.stated(W, row.completion) == row.answer
    assert kc.stated(W, "Grass is green. The answer is **Green**.") == "green" and kc.stated(W, "green") == ""


def test_word_world_fine_tunes_go_to_the_notebooks_as_the_organisms_do(W, tmp_path):
    from rlgen_utils.run.config import Params
    d = kc.byo_params(W, "behaviour", 1.0, tmp_path / "a", tmp_path / "b")
    assert d["name"] == "smollm2-kc-behaviour-d1" and d["model"]["prompt"]["style"] == "chat"
    assert Params.model_validate(d).known_causes.family == "larger"
    assert "larger" in kc.describe(W) and "cmp" not in kc.describe(W)


def test_the_sae_fvu_shift_reads_the_tuned_model_against_the_control():
    v, lens = _verdicts("not reproduced", "not reproduced"), _lens(0.3, 0.2, 0.1)
    seen = kc.detections(v, lens, None, {"base": 0.03, "sft": 0.05, "grpo": 0.04})
    assert seen[-1]["instrument"] == kc.INSTRUMENTS[4] and seen[-1]["detected"]
    assert not kc.detections(v, lens, None, {"base": 0.03, "sft": 0.042, "grpo": 0.04})[-1]["detected"]


def test_word_world_filler_of_every_dose_is_a_prefix_of_one_answered_pool(W, monkeypatch):
    asked = []
    monkeypatch.setattr(kc, "_base_completions", lambda P, prompts, tag: asked.append(tuple(prompts)) or
                        [f"own {i}" for i in range(len(prompts))])
    short, long = kc.filler_examples(W, 10), kc.filler_examples(W, 100)
    assert long[:10] == short and len(set(asked)) == 1, "one prompt set, so one cached generation for all doses"


def test_a_pair_adopts_the_previous_pairs_crosscoders_and_reads_only_those_whose_key_it_computes(P, write_params):
    """The validation seeds each pair's run folder with the previous pair's finished crosscoders; notebook 03
    reads one only where its stored key is the one it computes and retrains the rest in place, and
    :func:`kc.adopted` names the first kind alone. Likely mistakes: overwriting a crosscoder the pair already has,
    copying one never finished or a folder that is not a crosscoder, or counting a retrained one as read."""
    from rlgen_utils.run.artifacts import mark_done
    from rlgen_utils.run.rundir import RunDir
    Q = load_params(write_params({"name": "next_pair", "known_causes": {"n_rows": 40, "n_new_facts": 8}}, "q.yaml"))
    src, dst = RunDir(P).path / "crosscoders", RunDir(Q).path / "crosscoders"
    for name in ("base-base-null-copy", "base-grpo", "base-sft", "own", "unfinished", "base-sae-lens"):
        (src / name / "sae_lens").mkdir(parents=True)
        (src / name / "sae_lens" / "cfg.json").write_text("{}")
        (src / name / ("cfg.json" if name == "base-sae-lens" else "crosscoder.safetensors")).write_text("")
        if name != "unfinished":
            mark_done(src / name, f"key-{name}")
    (dst / "own").mkdir(parents=True)
    mark_done(dst / "own", "key-of-this-pair")
    copied = kc.adopt_crosscoders(Q, P)
    assert copied == {n: f"key-{n}" for n in ("base-base-null-copy", "base-grpo", "base-sft")}
    assert (dst / "base-grpo" / "sae_lens" / "cfg.json").is_file() and not (dst / "unfinished").exists()
    assert not (dst / "base-sae-lens").exists(), "the SAE is not a crosscoder notebook 03 would read"
    assert kc.adopt_crosscoders(Q, P) == {}, "a folder the pair has is never overwritten"
    assert not list(dst.glob(".*")), "no half-copied folder is left"
    mark_done(dst / "base-sft", "key-the-pair-computed")   # notebook 03 retrained it: another key
    assert kc.adopted(Q, copied) == ["base-base-null-copy", "base-grpo"]
