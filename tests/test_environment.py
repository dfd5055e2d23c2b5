"""environment.yml (conda) and requirements.txt (pip) must pin the same versions."""
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def _pins(lines):
    pins = {}
    for line in lines:
        line = line.split("#")[0].strip()
        if line:
            m = re.fullmatch(r"([A-Za-z0-9_.\-\[\]]+)==([^\s]+)", line)
            assert m, f"not an exact pin: {line!r}"
            pins[m.group(1).lower()] = m.group(2)
    return pins


def test_conda_and_pip_pins_agree():
    req = _pins((ROOT / "requirements.txt").read_text().splitlines())
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert _pins(pip_section) == req
    assert req["torch"] == "2.13.0", "torch must stay pinned to the local CPU wheel"


def test_installed_versions_match_the_pins():
    from importlib.metadata import PackageNotFoundError, version
    req = _pins((ROOT / "requirements.txt").read_text().splitlines())
    for name, pinned in req.items():
        try:
            got = version(name)
        except PackageNotFoundError:
            raise AssertionError(f"{name} is pinned but not installed") from None
        assert got.split("+")[0] == pinned, f"{name}: installed {got}, pinned {pinned}"


IMPORT_NAMES = {"pyyaml": "yaml", "sae-lens": "sae_lens", "transformer-lens": "transformer_lens",
                "pandas-stubs": "pandas-stubs"}


def test_every_pin_is_imported_or_says_why():
    """A pin nobody imports is dead weight unless its line says why it is there (``# why: …``); the likely
    mistake is a leftover pin such as an unused analysis library."""
    import re
    sources = "\n".join(p.read_text() for d in ("rlgen_utils", "tests", "benchmarks")
                        for p in (ROOT / d).rglob("*.py"))
    imported = set(re.findall(r"^\s*(?:from|import)\s+([A-Za-z_][\w]*)", sources, flags=re.M))
    unexplained = []
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        name = line.split("==")[0].strip().lower()
        module = IMPORT_NAMES.get(name, name.replace("-", "_"))
        if module not in imported and "# why:" not in line:
            unexplained.append(name)
    assert not unexplained, f"pinned but imported nowhere and no '# why:' on the line: {unexplained}"


def test_files_named_in_requirements_exist():
    names = re.findall(r"tests/[\w/]+\.py", (ROOT / "requirements.txt").read_text())
    assert names and all((ROOT / n).is_file() for n in names), names
