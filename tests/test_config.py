"""Bad params fail before any compute, with one line that names the key."""
import subprocess
import sys

import pytest

from rlgen_utils.run import config

ROOT = config.Path(__file__).resolve().parent.parent

BAD = [  # (overrides on smoke.yaml, the key the one-line error must name)
    ({"pretrian": {"steps": 3}}, "pretrian"),
    ({"posttrain": {"grpo": {"lrr": 1e-4}}}, "posttrain.grpo.lrr"),
    ({"pretrain": {"steps": "many"}}, "pretrain.steps"),
    ({"posttrain": {"grpo": {"lr": -1.0}}}, "posttrain.grpo.lr"),
    ({"posttrain": {"methods": ["sft", "ppo"]}}, "posttrain.methods.1"),
    ({"posttrain": {"grpo": {"num_generations": 3, "completions_per_step": 8}}}, "posttrain.grpo.completions_per_step"),
    ({"tasks": {"min_ops": 3, "max_ops": 2}}, "tasks.max_ops"),
    ({"posttrain": {"sft_sweep": [1e-4, 1e-4]}}, "posttrain.sft_sweep"),
    ({"posttrain": {"sft": {"lr": 1e-3}}}, "posttrain.sft.lr"),   # validation chooses SFT's rate; params cannot
    ({"posttrain": {"sft_sweep": []}}, "posttrain.sft_sweep"),    # SFT trained here needs a grid to choose from
    ({"tasks": {"teacher_rate": 1.5}}, "tasks.teacher_rate"),
    ({"eval": {"preregistration": "prereg/nonexistent.yaml"}}, "eval.preregistration"),
    ({"model": {"organism": {"d_model": 30, "n_heads": 4}}}, "model.organism.n_heads"),
    ({"model": {"name_or_path": "/nonexistent/model"}, "pretrain": None}, "model.name_or_path"),
    ({"posttrain": {"methods": ["grpo", "sft_grpo"]}}, "posttrain.methods"),
    ({"tasks": {"slip_rate": 1.5}}, "tasks.slip_rate"),
    ({"tasks": {"shared_chain_rate": -0.1}}, "tasks.shared_chain_rate"),
    ({"pretrain": {"seed": -2}}, "pretrain.seed"),
    ({"name": "a/b"}, "name"),
    ({"pretrain": None}, "pretrain"),
    ({"eval": {"pass_k": 0}}, "eval.pass_k"),
    ({"seed": -1}, "seed"),
    ({"model": {"dtype": "float8"}}, "model.dtype"),
    ({"posttrain": {"seeds": [1, 1]}}, "posttrain.seeds"),
    ({"data": {"task_world": False}}, "data.benchmarks"),
    ({"data": {"benchmarks": [{"name": "x", "path": "/no/such.jsonl", "kind": "math", "role": "ood_select"}]}},
     "data.benchmarks.0.path"),
    ({"crosscoder": {"sparsity": "topk"}}, "crosscoder.sparsity"),
    ({"model": {"prompt": {"style": "chat"}}}, "model.prompt"),       # the organism's vocabulary cannot spell it
    ({"model": {"prompt": {"n_shots": -1}}}, "model.prompt.n_shots"),
    ({"data": {"word_world": True}}, "data.word_world"),              # with the task world still on
    ({"data": {"benchmarks": [{"name": "x", "path": "data/examples/math.jsonl", "kind": "math", "role": "ood_select",
                               "scoring": "loglik"}]}}, "data.benchmarks.0.scoring"),
    ({"models": {"grpo": "/somewhere"}}, "models"),                   # trained elsewhere needs a base from there too
    ({"posttrain": {"grpo": {"use_vllm": True}}}, "posttrain.grpo.use_vllm"),   # vLLM is not installed here
    ({"dynamics": {"n_texts": 201}}, "dynamics.n_texts"),            # more texts than smoke's corpus (200) holds
    ({"known_causes": {"family": "larger"}}, "known_causes.family"),   # the word world's family on the organism
]


@pytest.mark.parametrize("overrides,key", BAD, ids=[k for _, k in BAD])
def test_bad_value_gives_one_line_naming_the_key(write_params, overrides, key):
    path = write_params(overrides)
    with pytest.raises(config.ParamsError) as err:
        config.load_params(path)
    msg = str(err.value)
    assert "\n" not in msg, "the error must be one line, not a traceback or a multi-line dump"
    assert msg.startswith(f"{path}: {key}:"), f"error does not name {key!r}: {msg}"


def test_not_yaml_and_not_a_mapping(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(config.ParamsError, match="not valid YAML"):
        config.load_params(bad)
    bad.write_text("- a\n- b\n")
    with pytest.raises(config.ParamsError, match="top level must be a mapping"):
        config.load_params(bad)
    with pytest.raises(config.ParamsError, match="params file not found"):
        config.load_params(tmp_path / "missing.yaml")


def test_runner_exits_2_with_one_line_before_any_compute(write_params):
    path = write_params({"posttrain": {"sft": {"batch_size": 0}}})
    r = subprocess.run([sys.executable, "-m", "rlgen_utils.run", "--params", str(path)], cwd=ROOT,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "posttrain.sft.batch_size" in lines[0], r.stderr


@pytest.mark.parametrize("name", ["smoke.yaml", "default.yaml", "default-3seeds.yaml"])
def test_shipped_params_validate(name):
    p = config.load_params(ROOT / "params" / name)
    assert p.name == name.removesuffix(".yaml")


@pytest.mark.parametrize("name", ["qwen3-4b.yaml", "study-b-public.yaml"])
def test_paper_scale_params_name_the_missing_model_here(name):
    """The paper-scale files are valid except that their models live on a GPU machine, not here."""
    with pytest.raises(config.ParamsError, match=r"model\.name_or_path: no Hugging Face model"):
        config.load_params(ROOT / "params" / name)


def test_smollm2_params_validate_once_the_model_is_materialised():
    from rlgen_utils.models import smollm2
    smollm2.materialise(ROOT / smollm2.DEFAULT_OUT)   # `make smollm2` (part of `make test`) did it: returns at once
    P = config.load_params(ROOT / "params" / "smollm2.yaml")
    assert P.model.prompt_style == "chat" and P.data.word_world and not P.data.task_world


def test_a_params_file_extends_another_section_by_section(write_params, tmp_path):
    """A second base of a study is three lines: its parent's params, its own name and run folder, one change."""
    parent = write_params({"posttrain": {"seeds": [0, 1]}}, name="study.yaml")
    child = tmp_path / "study-base1.yaml"
    child.write_text("extends: study.yaml\npretrain: {seed: 1}\nposttrain: {seeds: [2]}\n")
    P, Q = config.load_params(parent), config.load_params(child)
    assert Q.name == "study-base1" and Q.run_dir != P.run_dir           # never the parent's name or folder
    assert Q.pretrain.seed == 1 and Q.pretrain.steps == P.pretrain.steps  # mappings merge key by key
    assert Q.posttrain.seeds == [2] and Q.posttrain.methods == P.posttrain.methods   # lists replace
    assert (Q.base_seed, P.base_seed) == (1, P.seed)
    assert Q.section_hash("pretrain") != P.section_hash("pretrain")
    assert Q.section_hash("tasks", "data", "eval") == P.section_hash("tasks", "data", "eval")  # the same questions
    child.write_text("extends: nowhere.yaml\n")
    with pytest.raises(config.ParamsError, match=r"extends: params file not found: nowhere.yaml"):
        config.load_params(child)
    child.write_text("extends: study-base1.yaml\n")
    with pytest.raises(config.ParamsError, match="a cycle"):
        config.load_params(child)


def test_section_hash_changes_only_with_its_sections(write_params):
    a = config.load_params(write_params())
    b = config.load_params(write_params({"eval": {"pass_k": 2}}))
    c = config.load_params(write_params({"pretrain": {"steps": 31}}))
    assert a.section_hash("model", "pretrain") == b.section_hash("model", "pretrain")
    assert a.section_hash("model", "pretrain") != c.section_hash("model", "pretrain")


def test_section_hash_can_ignore_listing_keys(write_params):
    a = config.load_params(write_params())
    b = config.load_params(write_params({"posttrain": {"seeds": [0, 1], "methods": ["sft"]}}))
    ign = ("posttrain.seeds", "posttrain.methods")
    assert a.section_hash("posttrain") != b.section_hash("posttrain")
    assert a.section_hash("posttrain", ignore=ign) == b.section_hash("posttrain", ignore=ign)


def test_preregistration_is_validated_like_params(tmp_path):
    from rlgen_utils.run.preregistration import load_preregistration
    from rlgen_utils.world import tasks
    shipped = load_preregistration(ROOT / "prereg" / "organism.yaml")
    assert set(shipped.families) == set(tasks.FAMILIES), "every family's class must be pre-registered"
    assert all(shipped.families[n] == f.transfer for n, f in tasks.FAMILIES.items()), "classes agree with the world"
    bad = (ROOT / "prereg" / "organism.yaml").read_text().replace("expect: positive", "expect: up", 1)
    (tmp_path / "bad.yaml").write_text(bad)
    with pytest.raises(config.ParamsError) as err:
        load_preregistration(tmp_path / "bad.yaml")
    assert "expectations.0.expect" in str(err.value) and "\n" not in str(err.value)
    (tmp_path / "typo.yaml").write_text("written: today\nfamilies: {arith: in_domain}\nexpectations:\n"
                                        "  - {contrast: [grpo, base], applies_to: arith, expect: positive, whyy: x}\n")
    with pytest.raises(config.ParamsError, match="expectations.0.why"):
        load_preregistration(tmp_path / "typo.yaml")


@pytest.mark.parametrize("expect,lo,hi,ok", [("positive", 0.01, 0.2, True), ("positive", -0.01, 0.2, False),
                                             ("negative", -0.2, -0.01, True), ("no_change", -0.1, 0.1, True),
                                             ("no_change", 0.01, 0.1, False), ("not_negative", -0.1, 0.0, True),
                                             ("not_positive", 0.01, 0.1, False)])
def test_preregistered_outcomes_read_the_interval(expect, lo, hi, ok):
    from rlgen_utils.run.preregistration import matches
    assert matches(expect, lo, hi) is ok
