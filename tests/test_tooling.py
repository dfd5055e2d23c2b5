"""The package's shape holds: ruff and pyright (basic) are clean, layers import only downwards, nobody imports a
private name from another module, and notebooks import only studies and viz."""
import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PKG = ROOT / "rlgen_utils"
BIN = Path(sys.executable).parent

# what each layer may import from the package (besides itself); run's runner/report/session drive the rest lazily
ALLOWED = {"run": set(), "world": {"run"}, "models": {"run", "world"}, "method": {"run", "models", "world"},
           "studies": {"run", "world", "models", "method"}, "viz": {"run", "world", "models", "method"}}
RUN_DRIVERS = {"runner.py", "report.py", "session.py", "__main__.py"}


def _imports(path: Path, runtime_only: bool = False) -> list[tuple[str, list[str]]]:
    """(absolute module, imported names) of every import in ``path`` (relative imports resolved); with
    ``runtime_only``, leaving out imports under ``if TYPE_CHECKING:`` (annotations only)."""
    tree = ast.parse(path.read_text())
    skip = {id(n) for node in ast.walk(tree) if runtime_only and isinstance(node, ast.If)
            and "TYPE_CHECKING" in ast.unparse(node.test) for stmt in node.body for n in ast.walk(stmt)}
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    pkg = parts[:-1]
    out = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.ImportFrom):
            base = pkg[: len(pkg) - node.level + 1] if node.level else []
            mod = ".".join(base + ([node.module] if node.module else []))
            out.append((mod, [a.name for a in node.names]))
        elif isinstance(node, ast.Import):
            out += [(a.name, []) for a in node.names]
    return out


def _modules():
    return [p for p in PKG.rglob("*.py") if "__pycache__" not in p.parts]


def test_layers_import_only_downwards():
    wrong = []
    for path in _modules():
        rel = path.relative_to(PKG).parts
        if len(rel) < 2 or (rel[0] == "run" and rel[1] in RUN_DRIVERS):
            continue
        layer = rel[0]
        for mod, names in _imports(path):
            if not mod.startswith("rlgen_utils"):
                continue
            targets = [mod.split(".")[1]] if mod.count(".") >= 1 else names
            for t in targets:
                if t != layer and t in ALLOWED and t not in ALLOWED[layer]:
                    wrong.append(f"{path.relative_to(ROOT)} imports {mod} ({layer} -> {t})")
    assert not wrong, "\n".join(wrong)


def test_no_module_imports_a_private_name_from_another():
    wrong = []
    for path in _modules():
        for mod, names in _imports(path):
            if mod.startswith("rlgen_utils"):
                wrong += [f"{path.relative_to(ROOT)}: from {mod} import {n}" for n in names
                          if n.startswith("_") and not n.startswith("__")]
                if mod.rsplit(".", 1)[-1].startswith("_") and not mod.endswith("__main__"):
                    wrong.append(f"{path.relative_to(ROOT)}: imports private module {mod}")
    assert not wrong, "\n".join(wrong)


def test_notebooks_import_only_studies_and_viz():
    wrong = []
    for nb in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.py")):
        for mod, names in re.findall(r"^from (rlgen_utils[\w.]*) import ([^\n]+)", nb.read_text(), flags=re.M):
            layer = mod.split(".")[1] if "." in mod else None
            if layer not in ("studies", "viz"):
                wrong.append(f"{nb.name}: from {mod} import {names}")
        if re.search(r"^import rlgen_utils", nb.read_text(), flags=re.M):
            wrong.append(f"{nb.name}: import rlgen_utils")
    assert not wrong, "\n".join(wrong)


def test_ruff_is_clean():
    r = subprocess.run([str(BIN / "ruff"), "check", "--no-cache", "."], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]


@pytest.mark.slow
def test_pyright_basic_is_clean():
    exe = BIN / "basedpyright"
    if not exe.exists():
        pytest.fail("basedpyright is pinned in requirements.txt but not installed: run `make setup`")
    r = subprocess.run([str(exe)], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0 and "0 errors" in r.stdout, r.stdout[-6000:]


def test_the_shape_legend_gives_each_letter_one_meaning():
    """Every shape suffix used in the package uses letters the legend (rlgen_utils/__init__.py) defines."""
    import rlgen_utils
    legend = rlgen_utils.__doc__ or ""
    letters = set(re.findall(r"^([A-Z])\s{2,}", legend, flags=re.M)) | set(re.findall(r"\s{2}([A-Z])\s{2,}\S", legend))
    assert {"B", "T", "D", "M", "L", "N", "X", "Z", "K", "E", "H", "S", "R"} <= letters, letters
    used = set()
    for path in _modules():
        for name in re.findall(r"\b[a-z][a-z0-9]*(?:_[a-z0-9]+)*_([A-Z][A-Za-z]{0,3})\b", path.read_text()):
            used |= {c for c in name if c.isupper()}
    assert used <= letters, f"shape letters without a legend entry: {sorted(used - letters)}"


def test_every_method_citation_names_a_section_of_docs_method():
    """Notebooks and docstrings cite ``docs/METHOD.md §A2``; each cited section must exist in the repository."""
    text = (ROOT / "docs" / "METHOD.md").read_text()
    sections = set(re.findall(r"^#+ §([A-C]\d?)\b", text, flags=re.M))
    cited, bare = set(), []
    for path in [*PKG.rglob("*.py"), *(ROOT / "notebooks").glob("*.py"), ROOT / "README.md"]:
        src = path.read_text()
        for ref in re.findall(r"METHOD\.md §([A-C]\d?(?:–[A-C]?\d)?)", src):
            first, _, last = ref.partition("–")
            cited.add(first)
            if last:
                cited.add(first[0] + last.lstrip(first[0]))
        bare += [str(path.relative_to(ROOT)) for _ in re.findall(r"(?<!docs/)METHOD\.md", src)]
    assert not bare, f"cite docs/METHOD.md (the file in this repository), not METHOD.md: {bare}"
    assert cited and cited <= sections, f"cited sections missing from docs/METHOD.md: {sorted(cited - sections)}"


def test_outputs_made_while_exploring_never_reach_git(tmp_path):
    """JupyterLab autosaves outputs into the paired .ipynb; the nbstripout clean filter (set up by `make setup`,
    named in .gitattributes) strips them, so git sees the tracked notebook unchanged."""
    import json
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    attr = subprocess.run(["git", "check-attr", "filter", "notebooks/03_crosscoder.ipynb"], cwd=ROOT,
                          capture_output=True, text=True).stdout
    assert attr.strip().endswith("nbstripout"), f".gitattributes does not route notebooks through nbstripout: {attr}"
    clean = subprocess.run(["git", "config", "--get", "filter.nbstripout.clean"], cwd=ROOT, capture_output=True,
                           text=True).stdout.strip()
    assert clean, "the nbstripout filter is not configured in this clone: `make setup` configures it"
    tracked = (ROOT / "notebooks" / "03_crosscoder.ipynb").read_text()
    nb = json.loads(tracked)
    code = next(c for c in nb["cells"] if c["cell_type"] == "code")
    code["execution_count"] = 7
    code["outputs"] = [{"output_type": "stream", "name": "stdout", "text": ["explored\n"]}]
    explored = json.dumps(nb, indent=1)

    def run_filter(text: str) -> str:
        return subprocess.run(clean, shell=True, input=text, capture_output=True, text=True, check=True).stdout

    assert "explored" not in run_filter(explored)
    assert run_filter(explored) == run_filter(tracked)


def test_paths_and_modules_named_in_the_docs_exist():
    """README, docs and docstrings name files (`rlgen_utils/world/tasks.py`) and entry points
    (`python -m rlgen_utils.run.report`); after a move, a stale name is the likely mistake."""
    texts = {p: p.read_text() for p in [ROOT / "README.md", *(ROOT / "docs").glob("*.md"), ROOT / "data" / "README.md",
                                         ROOT / "Makefile", *PKG.rglob("*.py"), *(ROOT / "notebooks").glob("*.py")]
             if p.is_file()}
    missing = []
    for path, text in texts.items():
        for rel in re.findall(r"\b((?:rlgen_utils|tests|benchmarks|notebooks|params|docs)/[\w/.-]+\.(?:py|yaml|md))",
                              text):
            if Path(rel).stem not in ("X", "x", "FILE") and not (ROOT / rel).exists():
                missing.append(f"{path.relative_to(ROOT)}: {rel}")
        for mod in re.findall(r"-m (rlgen_utils(?:\.\w+)*)", text):
            as_path = ROOT / mod.replace(".", "/")
            if not (as_path.with_suffix(".py").is_file() or (as_path / "__main__.py").is_file()):
                missing.append(f"{path.relative_to(ROOT)}: python -m {mod}")
    assert not missing, "\n".join(missing)


def _resolves(dotted: str) -> bool:
    """Whether ``rlgen_utils.a.b.c`` names a module, or an attribute reached from the longest importable prefix."""
    import importlib
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for name in parts[cut:]:
            if not hasattr(obj, name):
                return False
            obj = getattr(obj, name)
        return True
    return False


def test_every_dotted_rlgen_utils_name_resolves():
    """Code, notebooks, tests, benchmarks and docs name things as ``rlgen_utils.studies.results`` or
    ``rlgen_utils.method.crosscoder.Crosscoder``; after a move the likely mistake is a name that no longer exists
    (an error message telling the user to edit a module that moved is worse than none)."""
    files = [ROOT / "README.md", *(ROOT / "docs").glob("*.md"), ROOT / "data" / "README.md", *PKG.rglob("*.py"),
             *(ROOT / "notebooks").glob("*.py"), *(ROOT / "tests").glob("*.py"), *(ROOT / "benchmarks").glob("*.py")]
    bad = []
    for path in files:
        if path == Path(__file__) or not path.is_file():
            continue
        for name in sorted(set(re.findall(r"\brlgen_utils(?:\.[A-Za-z_]\w*)+", path.read_text()))):
            if not _resolves(name):
                bad.append(f"{path.relative_to(ROOT)}: {name}")
    assert not bad, "names that resolve to nothing:\n" + "\n".join(bad)


# the notebook each studies module belongs to (0: shared by all); None: a driver above every notebook
NOTEBOOK = {"verdicts": 0, "findings": 0, "render": 0, "train": 1, "evaluate": 2, "forgetting": 2, "prereg": 2,
            "offpolicy": 2, "matched": 2, "bases": 2,
            "crosscoder": 3, "difflens": 3, "known_causes": 3, "nulls": 3, "baselines": 3, "crosscoder_claims": 3, "dynamics": 4,
            "dynamics_claims": 4, "known_dating": 4, "circuits": 5, "circuits_exact": 5, "circuit_claims": 5, "known_edges": 5,
            "interventions": 6,
            "intervention_claims": 6, "explorer_inputs": 6, "known_ablation": 6, "known_selection": 6, "results": None,
            "train_method": None,
            "shard_stage": None}
STAGES = {"train", "evaluate", "crosscoder", "dynamics", "circuits", "interventions"}


def _studies_imports(path: Path) -> set[str]:
    out = set()
    for mod, names in _imports(path):
        if mod == "rlgen_utils.studies":
            out |= {n for n in names if n in NOTEBOOK}
        elif mod.startswith("rlgen_utils.studies."):
            out.add(mod.split(".")[2])
    return out


def test_the_front_door_and_the_studies_modules_stay_small():
    """Issue 27: a README that is a front door (≤ 250 lines) and one job per studies module (≤ 450 lines each)."""
    assert len((ROOT / "README.md").read_text().splitlines()) <= 250
    big = {p.name: n for p in (PKG / "studies").glob("*.py") if (n := len(p.read_text().splitlines())) > 450}
    assert not big, f"split these studies modules: {big}"


def test_studies_import_only_earlier_notebooks_and_claims_only_from_results():
    """The rule stated in ``rlgen_utils/studies/__init__.py``: notebook order downwards, stages never import the
    modules built on them, claims are leaves read by ``results`` alone."""
    modules = {p.stem: p for p in (PKG / "studies").glob("*.py") if p.stem != "__init__"}
    assert set(modules) == set(NOTEBOOK), f"give each studies module its notebook here: {set(modules) ^ set(NOTEBOOK)}"
    wrong = []
    for name, path in modules.items():
        for dep in _studies_imports(path) - {name}:
            mine, theirs = NOTEBOOK[name], NOTEBOOK[dep]
            if theirs is None:
                wrong.append(f"{name} imports the driver {dep}")
            elif dep.endswith("_claims") and name != "results":
                wrong.append(f"{name} imports the claims module {dep} (only results may)")
            elif mine is not None and theirs > mine:
                wrong.append(f"{name} (notebook {mine:02d}) imports {dep} of a later notebook ({theirs:02d})")
            elif name in STAGES and theirs == mine and dep not in STAGES:
                wrong.append(f"the stage module {name} imports {dep}, which builds on it")
    assert not wrong, "\n".join(wrong)


def _runtime_imports(path: Path) -> set[str]:
    """Package modules ``path`` imports at run time — at its top or inside functions, not under TYPE_CHECKING;
    ``from pkg import mod`` counts as importing ``pkg.mod``."""
    known = {".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__") for p in _modules()}
    me = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
    out = {f"{mod}.{n}" if f"{mod}.{n}" in known else mod for mod, names in _imports(path, runtime_only=True)
           for n in (names or [""])}
    return {m for m in out if m in known and m != me}


def test_the_package_has_no_import_circles():
    """A circle hidden by a function-local import works until someone moves the import to the top (or imports the
    modules in another order); the likely mistake after a move is a new one."""
    graph = {".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"): _runtime_imports(p)
             for p in _modules()}
    state: dict[str, int] = {}
    circles: list[str] = []

    def visit(m: str, trail: list[str]) -> None:
        state[m] = 1
        for dep in sorted(graph.get(m, ())):
            if state.get(dep) == 1:
                circles.append(" -> ".join([*trail[trail.index(dep):], dep]))
            elif dep not in state:
                visit(dep, [*trail, dep])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    assert not circles, "import circles:\n" + "\n".join(circles)


def _late_imports(path: Path) -> list[tuple[int, str]]:
    """(line, top-level module) of every import inside a function of ``path`` (relative ones as ``.``)."""
    out = []
    for fn in ast.walk(ast.parse(path.read_text())):
        if isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
            for n in ast.walk(fn):
                if isinstance(n, ast.ImportFrom):
                    out.append((n.lineno, "." if n.level else (n.module or "").split(".")[0]))
                elif isinstance(n, ast.Import):
                    out += [(n.lineno, a.name.split(".")[0]) for a in n.names]
    return out


def test_imports_are_at_the_top_unless_a_measured_cost_keeps_them_late():
    """The rule of ``rlgen_utils/run/imports.py``: a library imported inside a function is one of its ``LAZY``
    libraries (each measured in ``docs/import_cost.md``), and the module says so in a comment; the standard
    library, numpy, pandas and rlgen's own modules are imported at the top (the launch entry points excepted)."""
    from rlgen_utils.run.imports import LAZY
    wrong = []
    for path in _modules():
        late = _late_imports(path)
        rel = path.relative_to(ROOT)
        for line, mod in late:
            if mod == ".":
                if rel.stem not in {"train_method", "shard_stage"}:
                    wrong.append(f"{rel}:{line}: a package import inside a function")
            elif mod not in LAZY:
                wrong.append(f"{rel}:{line}: {mod} imported inside a function (not in run/imports.LAZY)")
        if late and "rlgen_utils.run.imports" not in path.read_text() and rel.name != "imports.py":
            wrong.append(f"{rel}: imports late without a comment naming rlgen_utils.run.imports")
    assert not wrong, "\n".join(wrong)
    doc = (ROOT / "docs" / "import_cost.md").read_text()
    assert all(f"`{lib}`" in doc for lib in LAZY), "every LAZY library's cost is measured in docs/import_cost.md"
