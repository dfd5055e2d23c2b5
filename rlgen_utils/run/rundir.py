"""The run folder: the one place that turns params into paths under ``<run_root>/<name>/``.

Layout (each stage's module documents its own files)::

    <run_root>/<name>/
        base/                      the organism's base model (a local HF model is used where it is)
        pretrain/<key>/step-*/     resumable pretraining checkpoints        pretrain_log.json, base_eval.json
        posttrain/<method>/seed-<s>/checkpoint-{1..N}/                      notebook 01
        posttrain/sft-lr<rate>/…   SFT's grid; posttrain/sft/choice.json the rate and checkpoint that are sft
        eval/                      per-model score Parquets, per_sample.parquet, pools.json, movement/   notebook 02
        acts/<key>/                activation shards                         notebook 03
        crosscoders/<models>/      crosscoders                               notebooks 03, 04
        circuits/<key>/            selections, edge scores, metrics          notebook 05
        interventions/<key>/       pool, selection, conditions               notebook 06
        verdicts/<notebook>.json   typed verdicts of notebooks 03–06 (the README's claims table)
        findings/<notebook>.<topic>.json   typed findings paragraphs of notebooks 02–06 (docs/RESULTS.md)
        notebooks/                 the executed notebooks                    report/   the run report

**Containment.** A run writes only inside its own folder, and that folder lies directly inside the run root:
a ``name`` that is ``.``, ``..``, absolute, has a path separator, or resolves elsewhere through a symbolic link
is refused, and so is a run root that is the repository itself, contains it, or lies inside one of its source
folders (where executed notebooks would overwrite tracked ones). :func:`check` raises :class:`RunDirError`
naming the key; ``load_params`` turns it into a one-line params error before any compute.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from .modelid import ModelId

if TYPE_CHECKING:
    from .config import Params

REPO = Path(__file__).resolve().parents[2]
SOURCE_DIRS = (".git", ".ci", "benchmarks", "data", "docs", "notebooks", "params", "rlgen_utils", "tests")
"""Folders of the repository that hold tracked sources: no run root may lie inside them."""




def repo_path(name: str | Path) -> Path:
    """A path named in params: absolute as written, else relative to the repository."""
    return Path(name) if Path(name).is_absolute() else REPO / name


def sft_run_name(lr: float) -> str:
    """The folder name of SFT trained at ``lr`` (one rate of ``posttrain.sft_sweep``): ``sft-lr0.001``."""
    return f"sft-lr{lr:g}"


def checkpoint_dirs(method_dir: Path, n: int) -> list[Path]:
    """``checkpoint-1 … checkpoint-n`` of one post-training run (the names post-training writes)."""
    return [method_dir / f"checkpoint-{i + 1}" for i in range(n)]


class RunDirError(ValueError):
    """Params whose run folder would lie outside its run root (or over the repository's sources)."""


def run_root(P: Params) -> Path:
    """The run root, absolute: a relative ``run_root`` is relative to the repository, wherever the process runs."""
    return repo_path(Path(P.run_root).expanduser()).resolve()


def check(P: Params) -> Path:
    """The run folder of ``P``, after checking that it lies directly inside the run root; else RunDirError."""
    root, name = run_root(P), P.name
    if name in ("", ".", "..") or "/" in name or "\\" in name or Path(name).is_absolute():
        raise RunDirError(f"name: {name!r} must be a plain folder name inside run_root")
    if root == REPO or REPO.is_relative_to(root):
        raise RunDirError(f"run_root: {P.run_root!r} resolves to {root}, which is or contains the repository; "
                          f"use a folder such as 'runs'")
    if root.is_relative_to(REPO) and root.relative_to(REPO).parts[0] in SOURCE_DIRS:
        raise RunDirError(f"run_root: {P.run_root!r} lies inside the repository's source folder "
                          f"{root.relative_to(REPO).parts[0]!r}; use a folder such as 'runs'")
    path = (root / name).resolve()
    if path.parent != root:
        raise RunDirError(f"name: {name!r} resolves to {path}, outside run_root {root} (a symbolic link?)")
    return path


class RunDir:
    """Every path of one run (containment is checked when it is made)."""

    def __init__(self, P: Params):
        self.P = P
        self.path = check(P)

    # ---------------------------------------------------------------------------------------- notebook 01
    @property
    def organism_base(self) -> Path:
        return self.path / "base"

    def base(self) -> Path:
        """Folder of the base model: the organism's under the run folder, else the HF model's own folder."""
        return self.organism_base if self.P.model.is_organism else Path(self.P.model.name_or_path)

    def pretrain(self, key: str) -> Path:
        return self.path / "pretrain" / key

    @property
    def pretrain_log(self) -> Path:
        return self.path / "pretrain_log.json"

    @property
    def base_eval(self) -> Path:
        return self.path / "base_eval.json"

    def method(self, method: str, seed: int) -> Path:
        """Folder of one (method, training seed); ``sft`` is the run of the learning rate that in-domain
        validation chose (:attr:`sft_choice_path`), ``sft-lr<rate>`` any rate of the grid."""
        if method == "sft" and method not in self.P.models:
            method = sft_run_name(self.sft_choice()["lr"])
        return self.path / "posttrain" / method / f"seed-{seed}"

    @property
    def sft_choice_path(self) -> Path:
        return self.path / "posttrain" / "sft" / "choice.json"

    def sft_choice(self) -> dict:
        """The SFT learning rate and checkpoint chosen by in-domain validation (written by notebook 01)."""
        if not self.sft_choice_path.is_file():
            raise FileNotFoundError(f"{self.sft_choice_path}: SFT's learning rate and checkpoint are chosen by "
                                    f"in-domain validation in notebook 01; run it first")
        return json.loads(self.sft_choice_path.read_text())

    def final_checkpoint(self, method: str) -> int:
        """Which checkpoint (1 … N) stands for ``method``: the last, or for ``sft`` the one validation chose."""
        if method == "sft" and method not in self.P.models:
            return int(self.sft_choice()["checkpoint"])
        return self.P.posttrain.n_checkpoints

    def checkpoints(self, method: str, seed: int) -> list[Path]:
        """``checkpoint-1 … checkpoint-N`` of one (method, training seed), whether trained yet or not; for a method
        trained elsewhere (``models:`` in params), the folders named there."""
        if method in self.P.models:
            return [Path(f) for f in self.P.external_checkpoints[method]]
        return checkpoint_dirs(self.method(method, seed), self.P.posttrain.n_checkpoints)

    def check_model(self, name: ModelId | str) -> ModelId:
        """``name`` as an id, if these params make that model; else a ValueError naming the keys to change."""
        m = ModelId.parse(name)
        if m != "base" and m.method not in self.P.posttrain.methods:
            raise ValueError(f"model {name!r}: method {m.method!r} is not in posttrain.methods "
                             f"(set crosscoder.sft_method / crosscoder.rl_method to trained methods)")
        return m

    def model(self, name: ModelId | str, train_seed: int | None = None) -> Path:
        """Folder of a model (:class:`~rlgen_utils.run.modelid.ModelId`, or its name): ``base``, a method (its final
        checkpoint), ``<method>@<k>`` (checkpoint k), ``noise+<model>`` (its random-update null, written by
        notebook 03) or ``line+<method>@<k>`` (its fixed-direction null, notebook 04), post-trained with ``train_seed``
        (default the first training seed). A method that these params do not train is a ValueError naming the
        keys to change."""
        m = self.check_model(name)
        if m == "base":
            return self.base()
        if m.null:     # a null of a model: random update (notebooks 03, 04) or fixed direction (04)
            self.model(m.tuned, train_seed)      # the tuned model must be one these params train
            seed = self.P.train_seeds[0] if train_seed is None else train_seed
            return self.path / "nulls" / m.slug / f"seed-{seed}"
        method, ckpt = m.method, m.checkpoint
        ckpts = self.checkpoints(method, self.P.train_seeds[0] if train_seed is None else train_seed)
        return ckpts[(ckpt or self.final_checkpoint(method)) - 1]

    # ---------------------------------------------------------------------------------------- notebooks 02–06
    @property
    def eval(self) -> Path:
        return self.path / "eval"

    def acts(self, key: str) -> Path:
        return self.path / "acts" / key

    def crosscoder(self, folder_name: str) -> Path:
        return self.path / "crosscoders" / folder_name

    def circuits(self, key: str) -> Path:
        return self.path / "circuits" / key

    def interventions(self, key: str) -> Path:
        return self.path / "interventions" / key

    @property
    def verdicts(self) -> Path:
        """``verdicts/<notebook>.json``: each notebook's typed verdicts (:mod:`rlgen_utils.studies.verdicts`)."""
        return self.path / "verdicts"

    @property
    def findings(self) -> Path:
        """``findings/<notebook>.<topic>.json``: each notebook's typed findings (:mod:`rlgen_utils.studies.findings`)."""
        return self.path / "findings"

    # ---------------------------------------------------------------------------------------- runner
    @property
    def notebooks(self) -> Path:
        return self.path / "notebooks"

    @property
    def report(self) -> Path:
        return self.path / "report"
