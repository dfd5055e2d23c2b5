"""Which libraries rlgen imports inside functions rather than at the top of a module, and why.

Every other import is at the top of its module, where the import graph can be read (``tests/test_tooling.py``
checks both halves). A library is imported late only where its import costs enough to matter to an entry point
that does not need it; ``benchmarks/import_cost.py`` measures each one cold, and the entry points with and without
them, in ``docs/import_cost.md``. The entry points kept light:

* ``python -m rlgen_utils.run --params FILE`` validates the params and prints the plan before any notebook
  starts — a bad value is one line, not a wait for torch and papermill;
* ``rlgen_utils.world`` builds task families and prompts (the planner and the runner read it);
* ``rlgen_utils.models`` is imported by ``run`` and ``world`` code paths that never touch a tensor;
* the stages that need an optional heavy library alone (sae-lens, nnsight, trl) load it when they run.

A module that imports one of these inside functions says so with a comment naming this module.
"""
from __future__ import annotations

LAZY: dict[str, str] = {
    "torch": "run, world and models stay importable without it (params validation, the planner, the world)",
    "transformers": "the tokenizer and model loaders; run and world paths import models without loading one",
    "safetensors": "its torch half imports torch (models' checkpoint helpers)",
    "trl": "post-training only (01)",
    "datasets": "post-training only (01); session silences its progress bars when it is already loaded",
    "papermill": "the runner validates params and prints the plan before it executes a notebook",
    "nbformat": "the runner validates params before it reads a notebook",
    "kaleido": "the report's static PNGs, optional (needs Chromium)",
    "mistune": "optional Markdown renderer of the report (plain text without it)",
    "nnsight": "tracing only where activations are read or edited (03, 06)",
    "sae_lens": "the sae-lens export and baseline only (the slowest import of all)",
}
"""Library (top-level import name) → why it is imported late."""
