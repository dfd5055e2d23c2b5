"""01_train end to end on smoke params: papermill execution, checkpoints, skip, determinism and resume."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
from conftest import smoke_params_file
from safetensors.torch import load_file

from rlgen_utils.method import circuit_metrics
from rlgen_utils.models import posttrain
from rlgen_utils.run import config, keys, session
from rlgen_utils.run.rundir import RunDir
from rlgen_utils.studies import baselines, findings, intervention_claims, nulls, render, train

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "model.safetensors"))


def _assert_same_weights(a: Path, b: Path):
    wa, wb = _weights(a), _weights(b)
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), f"{a} and {b} differ in {k}"


def test_the_runner_prints_progress_while_notebooks_run(smoke_run):
    """`make reproduce` used to print one line and then nothing for minutes: tqdm rendered as a widget inside
    the kernel. Now each cell start and every long loop print lines on the runner's stdout."""
    P, _ = smoke_run
    log = (P.run_dir.parent.parent / "runner.log").read_text()
    first = log.split("[rlgen] 01_train done")[0]
    assert "[rlgen] 01_train · cell 1/" in first and "· Post-training" in first, first[:2000]
    for loop in ("pretrain", "grpo seed 0", "evaluate"):
        assert f"[progress] {loop}:" in log, f"no progress lines of the {loop!r} loop:\n{log[:3000]}"
    assert "%|" not in log, "tqdm bars leaked into the command line instead of plain progress lines"


def test_notebook_executes_and_writes_every_checkpoint(smoke_run):
    P, seconds = smoke_run
    executed = json.loads((P.run_dir / "notebooks" / "01_train.ipynb").read_text())
    errors = [o for c in executed["cells"] for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    from transformers import AutoModelForCausalLM
    for m in P.posttrain.methods:
        ckpts = RunDir(P).checkpoints(m, P.seed)
        assert len(ckpts) == 5 and all((c / "DONE.json").is_file() for c in ckpts), m
        AutoModelForCausalLM.from_pretrained(str(ckpts[-1]), local_files_only=True)
    print(f"smoke 01_train via papermill: {seconds:.1f} s")


def test_evaluate_notebook_writes_per_sample_scores_and_selection_sets(smoke_run):
    import pandas as pd
    P, _ = smoke_run
    executed = json.loads((P.run_dir / "notebooks" / "02_evaluate.ipynb").read_text())
    assert not [o for c in executed["cells"] for o in c.get("outputs", []) if o.get("output_type") == "error"]
    df = pd.read_parquet(P.run_dir / "eval" / "per_sample.parquet")
    n_models = 1 + len(P.posttrain.methods) * P.posttrain.n_checkpoints
    assert df.groupby(["method", "seed", "checkpoint"]).ngroups == n_models, "every model and checkpoint scored"
    assert set(df.columns) >= {"prompt", "completion", "parsed", "correct", "family", "sample"}
    pools = json.loads((P.run_dir / "eval" / "pools.json").read_text())["sets"]
    assert set(pools) == set(df[df.role == "ood_select"].family), "a pool per selection family"
    for fam, sets in pools.items():
        ids = [i for s in sets.values() for i in s]
        assert len(ids) == len(set(ids)) == P.interventions.pool_per_family, f"{fam}: the four sets partition the pool"
    moved = json.loads((P.run_dir / "eval" / "movement" / "sft" / f"seed-{P.seed}" / "checkpoint-5.json").read_text())
    assert moved["kl"] > 0 and moved["changed"]["1e-06"] > 0, "SFT moves the model (smoke GRPO may not: no reward)"
    chosen = RunDir(P).sft_choice()["lr"]
    other = [lr for lr in P.posttrain.sft_sweep if lr != chosen]
    assert len(other) == 1 and list((P.run_dir / "eval" / "sweep" / train.sweep_name(other[0])).glob("seed-*/*.parquet")), \
        "the SFT grid's other rate is scored"


def test_crosscoder_notebook_trains_and_saves_reloadable_crosscoders(smoke_run):
    from rlgen_utils.method.crosscoder import Crosscoder
    from rlgen_utils.studies import crosscoder
    P, _ = smoke_run
    executed = json.loads((P.run_dir / "notebooks" / "03_crosscoder.ipynb").read_text())
    assert not [o for c in executed["cells"] for o in c.get("outputs", []) if o.get("output_type") == "error"]
    trio = ("base", "sft", "grpo")
    cc = Crosscoder.load(crosscoder.crosscoder_dir(P, trio))
    assert cc.cfg.n_models == 3 and cc.cfg.n_latents == P.crosscoder.n_latents
    assert crosscoder.crosscoder_dir(P, ("base", "grpo")).is_dir()
    null = Crosscoder.load(crosscoder.crosscoder_dir(P, ("base", "base"), "null-copy"))
    assert null.cfg.n_models == 2
    md = "".join("".join(o.get("data", {}).get("text/markdown", "")) for c in executed["cells"]
                 for o in c.get("outputs", []))
    assert "identical-copy null" in md, "the findings must read the pairs against the null"
    recorded = findings.load_all(P, "03_crosscoder")
    assert [f.topic for f in recorded] == ["crosscoders"] and render.markdown(recorded[0]) in md, \
        "the notebook shows what it recorded, through the one renderer"


def test_feature_dynamics_notebook_uses_one_latent_space_per_crosscoder_seed(smoke_run):
    from rlgen_utils.method.crosscoder import Crosscoder
    from rlgen_utils.studies import crosscoder, dynamics
    P, _ = smoke_run
    executed = json.loads((P.run_dir / "notebooks" / "04_feature_dynamics.ipynb").read_text())
    assert not [o for c in executed["cells"] for o in c.get("outputs", []) if o.get("output_type") == "error"]
    names = dynamics.trajectory_names(P)
    assert len(names) == 1 + 2 * P.posttrain.n_checkpoints
    for seed in P.dynamics.crosscoder_seeds:
        cc = Crosscoder.load(crosscoder.crosscoder_dir(P, names, dynamics.trajectory_tag(seed, P.seed)))
        assert cc.cfg.n_models == len(names) and cc.cfg.seed == seed
    # every 04 collection reads the corpus's first dynamics.n_texts texts, each of them, and nothing else
    from rlgen_utils.method.activations import ActivationStore
    store = ActivationStore(crosscoder.ensure_activations(P, names, n_texts=P.dynamics.n_texts))
    docs = torch.cat([store.shard(i)["doc"] for i in range(len(store.index))])
    assert P.dynamics.n_texts < P.crosscoder.n_texts and set(docs.tolist()) == set(range(P.dynamics.n_texts))
    whole = keys.activations_key(P, names, P.train_seeds[0])
    assert not (P.run_dir / "acts" / whole).exists(), "a trajectory collection over the whole corpus was made"
    assert (P.run_dir / "acts" / keys.activations_key(P, names, P.train_seeds[0], P.dynamics.n_texts)).is_dir()
    null = dynamics.null_table(P)
    assert set(null.method) == {"null (sft slots)", "null (grpo slots)"}
    assert (null.fvl_lo <= null.fvl_hi).all() and null.tuned_only.max() == 0, "identical slots own no latent"


def test_circuits_notebook_scores_every_pair_model_kind_and_alpha(smoke_run):
    from rlgen_utils.studies import circuits
    P, _ = smoke_run
    executed = json.loads((P.run_dir / "notebooks" / "05_circuits.ipynb").read_text())
    assert not [o for c in executed["cells"] for o in c.get("outputs", []) if o.get("output_type") == "error"]
    scores = circuits.evaluate.ensure_scores(P, all_checkpoints=False)
    for pair in P.circuit_pairs:
        folder = circuits.ensure_pair_scores(P, pair, scores)   # done: loads, recomputes nothing
        n = len(circuits.ensure_selection(P, pair, scores).samples)
        for name in pair:
            for kind in P.circuits.scores:
                for alpha in P.circuits.alphas:
                    W = circuits.load_scores(folder, name, kind, alpha)
                    assert W.shape[0] == n and W.shape[1] == W.shape[2] == 2 * P.model.organism.n_layers + 1
    table = circuits.metric_table(P, {p: circuits.ensure_pair_scores(P, p, scores) for p in P.circuit_pairs})
    assert set(table.metric) == set(circuit_metrics.METRICS) >= {"intensity", "entropy", "kurtosis", "diversity",
                                                                  "entropy (scale-free)"}


def test_interventions_notebook_runs_every_condition_and_the_identity_holds(smoke_run):
    from rlgen_utils.studies import interventions as study
    P, _ = smoke_run
    executed = json.loads((P.run_dir / "notebooks" / "06_interventions.ipynb").read_text())
    assert not [o for c in executed["cells"] for o in c.get("outputs", []) if o.get("output_type") == "error"]
    sel = study.FeatureSelection.from_json(json.loads((study.study_dir(P) / "selection.json").read_text()))
    for fam, g in sel.groups.items():
        assert not set(g["target"]) & set(g["test"]), f"{fam}: selection and test halves share samples"
    conditions = {p.stem for p in (study.study_dir(P) / "conditions").glob("*.parquet")}
    assert {"plain-base", "plain-rl", "identity-base", "identity-rl"} <= conditions
    if not sel.selected:
        assert conditions == {"plain-base", "plain-rl", "identity-base", "identity-rl"}, \
            "with nothing selected every edit is the identity: none is run"
    results = pd.concat([pd.read_parquet(p) for p in (study.study_dir(P) / "conditions").glob("*.parquet")])
    ident = study.identity_check(results)
    assert (ident.identical == ident.generations).all()


def test_every_edit_condition_runs_on_a_given_selection(smoke_run):
    """The smoke models answer (almost) nothing, so their selection is empty; a hand-made selection of two alive
    latents, with a few pool samples as the test half's RL-right/base-wrong set, drives every edit condition,
    the random-set control and the dose-response through the same functions the notebook calls."""
    from rlgen_utils.studies import interventions as study
    P, _ = smoke_run
    I = P.interventions.model_copy(update={"n_random": 2, "dose": [0.0, 2.0], "n_eval": 4})
    P2 = P.model_copy(update={"interventions": I})
    setup, pool = study.Setup(P2), study.ensure_pool(P2)
    fam = study.selection_families(P2)[0]
    groups = {fam: {"target": [], "control": [], "test": [0, 1, 2], "test_all": [0, 1, 2, 3]}}
    firing = [0.5] * setup.cc.cfg.n_latents
    sel = study.FeatureSelection(groups=groups, scores={}, pvalues={}, sets={fam: setup.alive[:2]},
                                 selected=setup.alive[:2], firing=firing, n_alive=len(setup.alive), rule="contrast")
    results = study.ensure_conditions(P2, setup, pool, sel)
    expected = {"plain-base", "plain-rl", "identity-base", "identity-rl", "disable", "amplify", "random0-disable",
                "random1-amplify", "dose0-base", "dose2-rl"}
    assert expected <= set(results.condition)
    assert set(results[results.condition == "random0-disable"].set) == {f"rw:{fam}"}, "random sets run on rw: only"
    assert len(study.effect_table(P2, results)) >= 1
    control = study.random_control(P2, results)
    assert list(control.intervention) == ["disable", "amplify"] and len(control.random.iloc[0]) == 2
    assert len(study.dose_response(P2, results)) == 2 * 2 * 3
    found = intervention_claims.findings(P2, sel, control, study.identity_check(results))
    assert "causal beyond random sets" in render.markdown(found) and found.value("identity_exact") is True


def test_contrast_selection_runs_on_the_smoke_models(smoke_run):
    """The default rule on the smoke run: a selection file with the contrast rule and its groups, and findings
    that state the detection limit (199 permutations cannot pass BH over the smoke dictionary)."""
    from rlgen_utils.studies import interventions as study
    P, _ = smoke_run
    P2 = P.model_copy(update={"interventions": P.interventions.model_copy(update={"selection": "contrast",
                                                                                  "n_perm": 199})})
    setup = study.Setup(P2)
    sel = study.ensure_selection(P2, setup, study.ensure_pool(P2))
    assert sel.rule == "contrast" and set(sel.pvalues) == set(sel.scores) and set(sel.groups)
    for fam, kept in sel.sets.items():
        p, score = torch.tensor(sel.pvalues[fam]), torch.tensor(sel.scores[fam])
        assert ((p > 0) & (p <= 1)).all() and (score[kept] > 0).all()
    assert "not reachable" in intervention_claims.selection_power(P2, sel)


def test_notebooks_03_to_06_record_typed_verdicts(smoke_run):
    """Every mechanistic notebook decides its claims and records them (the README's claims table reads them)."""
    from rlgen_utils.studies import interventions as study
    from rlgen_utils.studies import verdicts
    P, _ = smoke_run
    vs = verdicts.load_all(P)
    assert {v.notebook for v in vs} == {"03_crosscoder", "04_feature_dynamics", "05_circuits", "06_interventions"}
    assert all(v.decision in verdicts.DECISIONS and v.null and v.limit for v in vs)
    claims = {v.notebook: [] for v in vs}
    for v in vs:
        claims[v.notebook].append(v)
    assert any("three-model" in v.claim for v in claims["03_crosscoder"]), "03 decides the MAS view against its nulls"
    assert all("random walks" in v.null for v in claims["04_feature_dynamics"]), "04 reads the random-walk null"
    assert any("exact-ablation" in v.claim for v in claims["05_circuits"]), "05 decides from exact ablation too"
    causal = [v for v in vs if v.notebook == "06_interventions" and v.claim.startswith("disabling")]
    sel = json.loads((study.study_dir(P) / "selection.json").read_text())
    if not sel["selected"]:
        assert causal[0].decision == "not testable at this power", "nothing selected: nothing can be called causal"


def test_random_walk_models_keep_each_checkpoints_distance_and_step(smoke_run):
    """The 04 null's models (written by the smoke run): per tensor as far from the base as each checkpoint and as
    far from the previous one, not along the real update."""
    from rlgen_utils.models import loading
    P, _ = smoke_run
    run, method = RunDir(P), P.crosscoder.sft_method
    state = lambda path: {k: v.detach().double() for k, v in loading.load_model(path, "float32").named_parameters()}
    base = state(run.model("base"))
    walk = [state(p) for p in nulls.ensure_noise_walk(P, method)]   # done: loads, trains nothing
    real = [state(run.model(f"{method}@{k}")) for k in range(1, P.posttrain.n_checkpoints + 1)]
    name = max(base, key=lambda k: (real[-1][k] - base[k]).norm())       # the tensor post-training moved most
    for k in range(len(real)):
        d_real, d_walk = real[k][name] - base[name], walk[k][name] - base[name]
        assert d_walk.norm() == pytest.approx(d_real.norm().item(), rel=1e-3)
        assert abs(torch.nn.functional.cosine_similarity(d_walk.flatten(), d_real.flatten(), 0)) < 0.5
        if k:
            step_real, step_walk = d_real - (real[k - 1][name] - base[name]), d_walk - (walk[k - 1][name] - base[name])
            assert step_walk.norm() == pytest.approx(step_real.norm().item(), rel=1e-2)


def test_l1_and_batchtopk_pairs_are_compared_on_the_smoke_run(smoke_run, tmp_path):
    from rlgen_utils.studies import crosscoder
    P, _ = _copy_run(smoke_run[0], tmp_path)   # new artifacts go to a copy, with that copy's provenance
    table = baselines.sparsity_comparison(P, (1.0,))
    assert set(table.sparsity) == {f"batchtopk k={P.crosscoder.k}", "l1 λ=1"} and len(table) == 6
    assert (table["held-out FVU (tuned slot)"] >= 0).all() and (table["alive"] > 0).all()
    assert baselines.matched_l1(table) == "l1 λ=1"
    confirmed = next(c for c in table.columns if c.startswith("tuned-only confirmed by latent scaling"))
    assert (table[confirmed] <= table["tuned-only"]).all(), "latent scaling can only confirm tuned-only latents"
    assert crosscoder.crosscoder_dir(P, ("base", "sft"), "sparsity-l1-1").is_dir(), "L1 pairs are cached apart"


def test_sae_lens_baseline_trains_on_the_base_and_reads_every_model(smoke_run, tmp_path):
    from sae_lens import SAE

    P, _ = _copy_run(smoke_run[0], tmp_path)
    table = baselines.sae_baseline(P)
    assert list(table.model) == ["base", "sft", "grpo"]
    assert (table["held-out FVU (base's SAE)"] > 0).all() and (table["mean L0"] > 0).all()
    sae = SAE.load_from_disk(str(baselines.ensure_sae_baseline(P)))   # done: loads, trains nothing
    assert sae.cfg.d_sae == P.crosscoder.n_latents


def test_sae_lens_baseline_reads_a_given_sae_of_the_base_and_trains_none(smoke_run, tmp_path):
    """One base SAE serves several runs of that base (the instrument validation's pairs): read from ``sae_dir``,
    the table is the one the run's own SAE gives, and nothing is trained in the run."""
    P, _ = _copy_run(smoke_run[0], tmp_path)
    own = baselines.ensure_sae_baseline(P)
    table = baselines.sae_baseline(P)
    shared = tmp_path / "shared-sae"
    shutil.copytree(own, shared)
    shutil.rmtree(own)
    pd.testing.assert_frame_equal(baselines.sae_baseline(P, sae_dir=shared), table)
    assert not own.exists(), "a given SAE is read, not retrained in the run folder"


def test_post_training_moves_weights_exactly_when_there_is_a_learning_signal(smoke_run):
    """SFT and DPO always have a gradient; GRPO/RLOO only when some group of samples had mixed rewards (with
    beta 0, all-equal rewards give zero advantages and must leave the weights untouched)."""
    P, _ = smoke_run
    for m in P.posttrain.methods:
        start, final = _weights(train.start_dir(P, m, P.seed)), _weights(RunDir(P).checkpoints(m, P.seed)[-1])
        changed = any(not torch.equal(start[k], final[k]) for k in start)
        if posttrain.ALGORITHM[m] in ("grpo", "rloo"):
            steps = [h for s in posttrain.training_log(RunDir(P).method(m, P.seed), 5) for h in s["log"]]
            signal = any(h["frac_reward_zero_std"] < 1 for h in steps)
            assert changed == signal, f"{m}: weights changed={changed} but mixed-reward groups={signal}"
        else:
            assert changed, f"{m} did not change its starting model"
    assert train.start_dir(P, "sft_grpo", P.seed) == RunDir(P).model("sft", P.seed), "SFT → X starts from the chosen"
    c = RunDir(P).sft_choice()
    assert (c["lr"], c["checkpoint"]) == tuple(train.choose(train.sft_validation(P)).values())[:2]


def test_rerun_with_unchanged_params_trains_nothing(smoke_run, monkeypatch):
    P, _ = smoke_run
    def no_training(*a, **k):
        raise AssertionError("a finished stage was trained again")
    monkeypatch.setattr(posttrain, "build_trainer", no_training)
    monkeypatch.setattr(train.pretrain, "pretrain", no_training)
    train.ensure_base(P)
    train.ensure_posttrained(P)


def test_same_seed_gives_identical_checkpoint_weights(smoke_run, tmp_path):
    P, _ = smoke_run
    Q = config.load_params(smoke_params_file(tmp_path, posttrain={"methods": ["sft", "grpo", "dpo"]}))
    train.ensure_posttrained(Q)
    _assert_same_weights(train.base_dir(P), train.base_dir(Q))
    for m in Q.posttrain.methods:
        for a, b in zip(RunDir(P).checkpoints(m, P.seed), RunDir(Q).checkpoints(m, Q.seed)):
            _assert_same_weights(a, b)


def test_training_seeds_give_separate_reproducible_runs(smoke_run, tmp_path):
    """A second training seed trains into its own folders; the first seed's checkpoints stay those of P."""
    P, _ = smoke_run
    Q = config.load_params(smoke_params_file(tmp_path, posttrain={"methods": ["sft"], "seeds": [P.seed, 7]}))
    train.ensure_posttrained(Q)
    _assert_same_weights(RunDir(P).checkpoints("sft", P.seed)[-1], RunDir(Q).checkpoints("sft", P.seed)[-1])
    a, b = (_weights(RunDir(Q).checkpoints("sft", s)[-1]) for s in (P.seed, 7))
    assert any(not torch.equal(a[k], b[k]) for k in a), "another training seed must give another model"


def test_trajectories_cover_every_training_seed(smoke_run, tmp_path):
    from rlgen_utils.studies import dynamics
    P, _ = smoke_run
    Q = config.load_params(smoke_params_file(tmp_path, posttrain={"methods": ["sft", "grpo"], "seeds": [0, 3]},
                                        dynamics={"crosscoder_seeds": [0]}))
    train.ensure_posttrained(Q)
    ccs = dynamics.ensure_all(Q)
    assert set(ccs) == {(0, 0), (3, 0)}
    a, b = (ccs[k].W_dec_LMD for k in sorted(ccs))
    assert not torch.equal(a, b), "another training seed's checkpoints must give another crosscoder"
    table = dynamics.overlap_table(Q, ccs)
    assert set(table.method) == {"sft", "grpo"} and (table.fvl_lo <= table.fvl_hi).all()


def test_killed_during_post_training_resumes_to_the_same_weights(smoke_run, tmp_path):
    P, _ = smoke_run
    path = smoke_params_file(tmp_path, posttrain={"methods": ["grpo"], "sft_sweep": []})
    Q = config.load_params(path)
    marker = RunDir(Q).checkpoints("grpo", Q.seed)[1] / "DONE.json"
    code = ("from rlgen_utils.run import config, session; from rlgen_utils.studies import train; "
            f"P = config.load_params({str(path)!r}); session.init(P); "
            "train.ensure_posttrained(P)")
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 300
    while not marker.is_file() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert marker.is_file(), "the run never reached its second checkpoint"
    ckpts = RunDir(Q).checkpoints("grpo", Q.seed)
    assert not all((c / "DONE.json").is_file() for c in ckpts), "killed too late: nothing left to resume"
    first_done = (ckpts[0] / "DONE.json").stat().st_mtime_ns
    train.ensure_posttrained(Q)
    assert (ckpts[0] / "DONE.json").stat().st_mtime_ns == first_done, "a finished segment was retrained"
    for a, b in zip(RunDir(P).checkpoints("grpo", P.seed), ckpts):
        _assert_same_weights(a, b)


# ------------------------------------------------------------------------------------------------ issue 8
def _copy_run(P, tmp_path, **overrides):
    """A copy of the smoke run folder under ``tmp_path`` and params pointing at it."""
    import shutil
    shutil.copytree(P.run_dir, tmp_path / "runs" / P.name)
    path = smoke_params_file(tmp_path, **overrides)
    P2 = config.load_params(path)
    session.init(P2)
    return P2, path


def test_every_artifact_records_params_hash_and_commit(smoke_run):
    import pyarrow.parquet as pq
    P, _ = smoke_run
    markers = list(P.run_dir.rglob("DONE.json"))
    assert len(markers) > 20
    for m in markers:
        prov = json.loads(m.read_text())["provenance"]
        assert prov["params_hash"] == keys.params_hash(P) and prov["commit"], m
    for f in (P.run_dir / "eval").rglob("*.parquet"):
        prov = json.loads(pq.read_schema(f).metadata[b"rlgen_provenance"])
        assert prov["params_hash"] == keys.params_hash(P), f


def test_changed_crosscoder_params_retrain_the_crosscoder_and_nothing_upstream(smoke_run, tmp_path, monkeypatch):
    from rlgen_utils.method import activations
    from rlgen_utils.studies import crosscoder
    P, _ = smoke_run
    P2, _ = _copy_run(P, tmp_path, crosscoder={"steps": P.crosscoder.steps + 5})
    trio = ("base", "sft", "grpo")
    before = json.loads((crosscoder.crosscoder_dir(P2, trio) / "DONE.json").read_text())["key"]
    monkeypatch.setattr(activations, "collect", lambda *a, **k: pytest.fail("activations were recollected"))
    monkeypatch.setattr(posttrain, "build_trainer", lambda *a, **k: pytest.fail("post-training ran again"))
    train.ensure_posttrained(P2)
    cc = crosscoder.ensure_crosscoder(P2, trio)
    after = json.loads((crosscoder.crosscoder_dir(P2, trio) / "DONE.json").read_text())["key"]
    assert after != before and len(crosscoder.training_log(P2, trio)) > 0 and cc.cfg.n_models == 3


KILL_SCRIPT = """
import os, signal, sys
import importlib
from rlgen_utils.run import session
target = importlib.import_module("rlgen_utils.{module}")
stage = importlib.import_module("rlgen_utils.{stage_module}")
calls = {{"n": 0}}
original = target.{function}
def killer(*a, **k):
    out = original(*a, **k)
    calls["n"] += 1
    if calls["n"] >= {after}:
        os.kill(os.getpid(), signal.SIGKILL)
    return out
target.{function} = killer
P = session.start(sys.argv[1])
{call}
"""


def _run_killed(path, **fmt):
    r = subprocess.run([sys.executable, "-c", KILL_SCRIPT.format(**fmt), str(path)], cwd=ROOT, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == -signal.SIGKILL, r.stderr[-2000:]


def test_killed_during_activation_caching_resumes_to_identical_shards(smoke_run, tmp_path):
    import shutil

    from rlgen_utils.studies import crosscoder
    P, _ = smoke_run
    P2, path = _copy_run(P, tmp_path, crosscoder={"collect_batch_size": 32})   # several shards
    trio = ("base", "sft", "grpo")
    done = crosscoder.ensure_activations(P2, trio)
    reference = {f.name: load_file(str(f)) for f in done.glob("shard-*.safetensors")}
    assert len(reference) >= 2, "the smoke corpus must span several shards for this test to mean anything"
    shutil.rmtree(done)
    _run_killed(path, module="method.activations", stage_module="studies.crosscoder", function="_flush", after=1,
                call="stage.ensure_activations(P, ('base', 'sft', 'grpo'))")
    assert not (done / "DONE.json").exists() and len(list(done.glob("shard-*.safetensors"))) == 1
    resumed = crosscoder.ensure_activations(P2, trio)
    got = {f.name: load_file(str(f)) for f in resumed.glob("shard-*.safetensors")}
    assert got.keys() == reference.keys()
    for name in got:
        for k in got[name]:
            assert torch.equal(got[name][k], reference[name][k]), f"{name}:{k} differs after resuming"


def test_killed_during_evaluation_resumes_to_identical_scores(smoke_run, tmp_path):
    import shutil

    import pandas as pd

    from rlgen_utils.studies import evaluate
    P, _ = smoke_run
    P2, path = _copy_run(P, tmp_path)
    reference = pd.read_parquet(P2.run_dir / "eval" / "per_sample.parquet")
    shutil.rmtree(P2.run_dir / "eval")
    _run_killed(path, module="studies.evaluate", stage_module="studies.evaluate", function="write_parquet", after=3,
                call="stage.ensure_scores(P)")
    assert len(list((P2.run_dir / "eval").rglob("*.parquet"))) == 3
    resumed = evaluate.ensure_scores(P2)
    pd.testing.assert_frame_equal(resumed.reset_index(drop=True), reference.reset_index(drop=True))


def test_two_fresh_runs_give_identical_metrics(smoke_run, smoke_twin):
    """Every notebook again on the same params in a fresh run folder: the same numbers, bit for bit."""
    import pandas as pd

    from rlgen_utils.studies import circuits, crosscoder
    from rlgen_utils.studies import interventions as study
    P, _ = smoke_run
    P2 = smoke_twin
    a, b = (pd.read_parquet(p.run_dir / "eval" / "per_sample.parquet") for p in (P, P2))
    pd.testing.assert_frame_equal(a, b)
    trio = ("base", "sft", "grpo")
    wa, wb = (load_file(str(crosscoder.crosscoder_dir(p, trio) / "crosscoder.safetensors")) for p in (P, P2))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    ka, kb = circuits.circuits_key(P), circuits.circuits_key(P2)
    assert ka == kb
    for f in (P.run_dir / "circuits" / ka).rglob("*.safetensors"):
        twin = P2.run_dir / "circuits" / kb / f.relative_to(P.run_dir / "circuits" / ka)
        a, b = load_file(str(f)), load_file(str(twin))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), f.name
    for f in (study.study_dir(P) / "conditions").glob("*.parquet"):
        pd.testing.assert_frame_equal(pd.read_parquet(f), pd.read_parquet(study.study_dir(P2) / "conditions" / f.name))


def test_run_report_gathers_every_notebook(smoke_run, tmp_path):
    P, _ = smoke_run
    html = (P.run_dir / "report" / "report.html").read_text()
    md = (P.run_dir / "report" / "report.md").read_text()
    for nb in ("01_train", "02_evaluate", "03_crosscoder", "04_feature_dynamics", "05_circuits",
               "06_interventions"):
        assert f"{nb}.ipynb" in html and f"{nb}.ipynb" in md
    assert keys.params_hash(P) in md and "| torch |" in md and "commit `" in md
    assert "Static figures were not written" in md, "the runner was asked for --no-png: the report must say so"
    assert html.count("<div id='fig") == md.count("report.html#fig") > 5


def test_report_writes_pngs_when_chromium_is_there(smoke_run, tmp_path):
    from rlgen_utils.run import report
    ok, why = report.png_available()
    if not ok:
        pytest.skip(f"no static export here: {why}")
    P, _ = smoke_run
    P2, path = _copy_run(P, tmp_path)
    out = report.build(path, ROOT)
    md = (out / "report.md").read_text()
    assert len(list((out / "figures").glob("*.png"))) == md.count("](figures/") > 5
