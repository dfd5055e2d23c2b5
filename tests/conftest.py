import os
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
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
