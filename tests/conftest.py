import os
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
if os.environ.get("PYTEST_XDIST_WORKER"):
    # `make test` runs two workers on two cores: one torch thread each, here and in every run they start
    # (rlgen_utils.run.session.THREADS_ENV), else spin-waiting OpenMP threads oversubscribe the cores
    os.environ.setdefault("RLGEN_THREADS", "1")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch
    torch.set_num_threads(int(os.environ["RLGEN_THREADS"]))
# runs made by the tests must not become the run a person's JupyterLab opens (rlgen_utils.run.session)
os.environ["RLGEN_STATE"] = str(Path(os.environ.get("PYTEST_STATE_DIR", "/tmp")) / f"rlgen-test-state-{os.getpid()}")


@pytest.fixture
def write_params(tmp_path):
    """Write a params file derived from smoke.yaml with ``overrides`` (nested dicts merge) into tmp_path."""
    def _write(overrides: dict | None = None, name: str = "p.yaml", base: str = "smoke.yaml") -> Path:
        raw = yaml.safe_load((ROOT / "params" / base).read_text())
        raw["run_root"] = str(tmp_path / "runs")
        _merge(raw, overrides or {})
        path = tmp_path / name
        path.write_text(yaml.safe_dump(raw))
        return path
    return _write


def _merge(dst: dict, src: dict) -> None:
    for k, v in src.items():
        if v == "__delete__":
            dst.pop(k, None)
        elif isinstance(v, dict) and isinstance(dst.get(k), dict):
            _merge(dst[k], v)
        else:
            dst[k] = v


# ------------------------------------------------------------------------------------------ shared smoke runs
# Two full smoke pipelines serve every test that only reads one: `smoke_run` (the runner with the report) for the
# smoke tests, and `smoke_twin`, a second fresh run of the same params, for the determinism test and — as a copy,
# so its notebook re-execution writes nowhere another test reads — the browser test. Each is built once per test
# session even across xdist workers: the first worker to need it builds it under a file lock in the session's shared
# temporary folder, the others wait and read it (pytest-xdist's documented pattern; its `loadgroup` scheduling does
# not group tests under pytest 9, whose nodes no longer keep the `_nodeid` it rewrites).
def smoke_params_file(folder: Path, **overrides) -> Path:
    """smoke.yaml with ``run_root`` under ``folder`` (and top-level sections updated by ``overrides``)."""
    raw = yaml.safe_load((ROOT / "params" / "smoke.yaml").read_text())
    raw["run_root"] = str(folder / "runs")
    for section, values in overrides.items():
        raw[section].update(values) if isinstance(values, dict) else raw.__setitem__(section, values)
    path = folder / "smoke.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _built_once(tmp_path_factory, name: str, *flags: str) -> Path:
    """A folder holding a finished runner call on smoke params (``smoke.yaml``, ``runs/``, ``runner.log``), built
    by one process of this test session; a failed build leaves no marker, so the next asker rebuilds (and fails)."""
    import subprocess

    from filelock import FileLock
    root = tmp_path_factory.getbasetemp()
    root = root.parent if os.environ.get("PYTEST_XDIST_WORKER") else root   # shared by the session's workers
    folder = root / f"shared-{name}"
    with FileLock(str(folder) + ".lock"):
        if not (folder / "DONE").is_file():
            folder.mkdir(exist_ok=True)
            path = smoke_params_file(folder)
            r = subprocess.run([sys.executable, "-m", "rlgen_utils.run", "--params", str(path), *flags], cwd=ROOT,
                               capture_output=True, text=True, timeout=900)
            assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
            (folder / "runner.log").write_text(r.stdout)
            (folder / "DONE").write_text("")
    return folder


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory):
    """Notebooks 01_train … 06_interventions executed by the runner (papermill) on smoke params, once per test
    session, with the run report (HTML only); returns the params and 01_train's wall time."""
    from rlgen_utils.run import config
    folder = _built_once(tmp_path_factory, "smoke", "--no-png")
    log = (folder / "runner.log").read_text()
    seconds = float(log.split("[rlgen] 01_train done in ")[1].split(" s")[0])
    return config.load_params(folder / "smoke.yaml"), seconds


@pytest.fixture(scope="session")
def smoke_twin(tmp_path_factory):
    """Every notebook again on the same params in a fresh run folder (no report): the params of that run."""
    from rlgen_utils.run import config
    return config.load_params(_built_once(tmp_path_factory, "twin", "--no-report") / "smoke.yaml")
