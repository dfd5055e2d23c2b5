"""No run name or path in params can make a run write outside its run root (rlgen_utils.run.rundir); model names
read and write through one typed id (rlgen_utils.run.modelid)."""
import copy
import json
import os

import pytest

from rlgen_utils.run import config
from rlgen_utils.run.modelid import BASE, ModelId, checkpoint_ids, ids, slug
from rlgen_utils.run.rundir import REPO, RunDir


@pytest.mark.parametrize("name", ["..", ".", "../escape", "a/b", "/etc", "..\\x"])
def test_names_that_leave_the_run_root_are_refused(write_params, name):
    with pytest.raises(config.ParamsError, match=r"name: ") as e:
        config.load_params(write_params({"name": name}))
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("root", [".", "..", "/", "notebooks", "rlgen_utils/x", "params", "runs/../notebooks"])
def test_run_roots_over_the_repository_are_refused(write_params, root):
    """The trap: ``name: ..`` or ``run_root: .`` once wrote the executed 01_train.ipynb over the tracked one."""
    root = str(REPO / root) if root not in (".", "..", "/") else (str(REPO) if root == "." else
                                                                   str(REPO.parent) if root == ".." else "/")
    with pytest.raises(config.ParamsError, match=r"run_root: "):
        config.load_params(write_params({"run_root": root}))


def test_a_symlinked_run_folder_that_points_elsewhere_is_refused(write_params, tmp_path):
    path = write_params({"name": "linked"})
    P = config.load_params(path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "runs").mkdir()
    os.symlink(elsewhere, tmp_path / "runs" / "linked")
    with pytest.raises(config.ParamsError, match=r"name: 'linked' resolves to .*outside run_root"):
        config.load_params(path)
    assert P.name == "linked"


def test_every_path_of_a_run_lies_inside_its_folder(write_params):
    P = config.load_params(write_params({"name": "ok.run-1"}))
    run = RunDir(P)
    _choose(run, 1e-3, 2)
    assert run.path.parent == run.path.parent.resolve() and run.path.name == "ok.run-1"
    for p in (run.organism_base, run.pretrain("k"), run.pretrain_log, run.base_eval, run.method("sft", 0),
              *run.checkpoints("sft", 0), run.eval, run.acts("k"), run.crosscoder("x"), run.circuits("k"),
              run.interventions("k"), run.notebooks, run.report, run.model("sft@2"), run.model("noise+grpo")):
        assert p.resolve().is_relative_to(run.path), p


def test_a_random_update_null_is_a_model_of_its_own_and_needs_a_trained_method(write_params):
    P = config.load_params(write_params({"name": "ok.run-2"}))
    run = RunDir(P)
    assert run.model("noise+grpo") != run.model("grpo") and run.model("noise+grpo", 1).name == "seed-1"
    with pytest.raises(ValueError, match="posttrain.methods"):
        run.model("noise+ppo")


def test_relative_run_root_is_relative_to_the_repository_not_the_cwd(write_params, tmp_path, monkeypatch):
    P = config.load_params(write_params({"run_root": "runs"}))
    monkeypatch.chdir(tmp_path)
    assert RunDir(P).path == (REPO / "runs" / P.name).resolve()


def test_notebooks_open_the_given_params_then_the_env_then_the_last_run_then_smoke(tmp_path, monkeypatch):
    """A notebook opened in JupyterLab must show the run the user made, not silently the smoke params."""
    from rlgen_utils.run import session
    monkeypatch.setenv("RLGEN_STATE", str(tmp_path / "state"))
    monkeypatch.delenv("RLGEN_PARAMS", raising=False)
    assert session.resolve_params_path(None) == (session.Path(session.FALLBACK), "no run made yet: the smoke params")
    made = tmp_path / "made.yaml"
    made.write_text("name: made\n")
    session.remember(made)
    assert session.resolve_params_path(None)[0] == made.resolve()
    env = tmp_path / "env.yaml"
    monkeypatch.setenv("RLGEN_PARAMS", str(env))
    assert session.resolve_params_path(None) == (env, "$RLGEN_PARAMS")
    assert session.resolve_params_path("params/x.yaml") == (session.Path("params/x.yaml"), "given")
    made.unlink()
    monkeypatch.delenv("RLGEN_PARAMS")
    assert session.resolve_params_path(None)[1].startswith("no run made yet"), "a vanished last run falls back"


@pytest.mark.parametrize("name, fields", [("base", ("base", None, False)), ("sft", ("sft", None, False)),
                                          ("sft_grpo@3", ("sft_grpo", 3, False)), ("noise+grpo", ("grpo", None, True)),
                                          ("noise+sft@2", ("sft", 2, True))])
def test_a_model_name_reads_and_writes_back_the_same(name, fields):
    m = ModelId.parse(name)
    assert (m.method, m.checkpoint, m.null) == fields and str(ModelId(*fields)) == name
    assert m.method == "base" or (m.noise.tuned == ModelId(m.method, m.checkpoint) and not m.noise.tuned.null)
    assert ModelId.parse(m) is m, "an id passes through parse unchanged"


def test_an_id_is_its_name_in_tables_keys_and_json():
    """Folders, keys, Parquet columns and JSON files hold names; an id must compare, hash, serialise and copy as
    its name so a table read back indexes like the ids that wrote it."""
    m = ModelId("sft", 3)
    assert m == "sft@3" and {m: 1}["sft@3"] == 1 and ("base", "sft@3").index(m) == 1
    assert json.loads(json.dumps({"names": [BASE, m]})) == {"names": ["base", "sft@3"]}
    assert copy.deepcopy(m).checkpoint == 3 and repr(m) == "ModelId('sft', 3)"
    assert ids(["base", "noise+sft@3"]) == (BASE, m.noise) and isinstance(ids(["sft"])[0], ModelId)
    assert m.slug == "sftat3" and slug((BASE, m.noise)) == "base-noise+sftat3"
    with pytest.raises(ValueError, match="bare method"):
        ModelId("sft@3")


def test_a_fixed_direction_null_is_a_checkpoint_id_of_its_own():
    m = ModelId.parse("line+sft@2")
    assert (m.method, m.checkpoint, m.null, m.null_kind) == ("sft", 2, True, "line")
    assert m == ModelId("sft", 2).line == ModelId("sft", 2, null="line") and m.tuned == "sft@2"
    assert ModelId("sft", 2).noise.null_kind == "noise" and ModelId("sft", 2).null_kind is None
    assert repr(m) == "ModelId('sft', 2, null='line')" and copy.deepcopy(m) == m and m.slug == "line+sftat2"


@pytest.mark.parametrize("bad", ["", "sft@", "sft@x", "noise+", "sft@0", "noise+base", "line+sft", "line+base",
                                 "line+noise+sft@2", "noise+line+sft@2"])
def test_a_malformed_model_name_is_one_error_naming_it(bad):
    with pytest.raises(ValueError):
        ModelId.parse(bad)


def test_named_models_resolve_to_the_same_folders_as_before(write_params):
    """The folders a name resolves to are part of every run folder already written: the typed id must not move
    them (``sft@2`` the second checkpoint, ``noise+sft@2`` under ``nulls/noise+sftat2``)."""
    P = config.load_params(write_params())
    run = RunDir(P)
    _choose(run, 1e-3, P.posttrain.n_checkpoints)
    assert run.model("sft@2") == run.checkpoints("sft", P.train_seeds[0])[1]
    assert run.model("sft") == run.checkpoints("sft", P.train_seeds[0])[-1]
    assert run.model("noise+sft@2") == run.path / "nulls" / "noise+sftat2" / f"seed-{P.train_seeds[0]}"
    assert run.model("line+sft@2") == run.path / "nulls" / "line+sftat2" / f"seed-{P.train_seeds[0]}"
    assert checkpoint_ids("grpo", 3) == ["grpo@1", "grpo@2", "grpo@3"] and ModelId("grpo", 3).noise == "noise+grpo@3"


def _choose(run: RunDir, lr: float, checkpoint: int) -> None:
    """Write notebook 01's SFT choice as ``train.ensure_sft_choice`` does."""
    run.sft_choice_path.parent.mkdir(parents=True, exist_ok=True)
    run.sft_choice_path.write_text(json.dumps({"lr": lr, "checkpoint": checkpoint}))


def test_sft_is_the_rate_and_checkpoint_validation_chose_and_nothing_before_the_choice(write_params):
    """``sft`` names no folder of its own: it is the grid run validation chose, at the chosen checkpoint; asked for
    before notebook 01 chose, it is one error saying so (never a silent default rate)."""
    P = config.load_params(write_params())
    run, seed = RunDir(P), P.train_seeds[0]
    with pytest.raises(FileNotFoundError, match="chosen by in-domain validation"):
        run.model("sft")
    _choose(run, 1e-4, 2)
    assert run.method("sft", seed) == run.path / "posttrain" / "sft-lr0.0001" / f"seed-{seed}"
    assert run.model("sft") == run.model("sft@2") == run.checkpoints("sft-lr0.0001", seed)[1]
    assert run.final_checkpoint("sft") == 2 and run.final_checkpoint("grpo") == P.posttrain.n_checkpoints


def test_ids_print_inside_containers():
    """A tuple of ids prints through ``repr``; its fields are plain strings (a field that were an id recursed)."""
    assert str((BASE, ModelId("sft", 2).line)) == "(ModelId('base'), ModelId('sft', 2, null='line'))"
    assert type(BASE.method) is str and type(ModelId.parse("noise+sft").method) is str
