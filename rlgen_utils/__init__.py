"""rlgen_utils — the method behind rlgen's notebooks, in layers that import only downwards.

========  =========================================================================================
layer     what it holds
========  =========================================================================================
run       the spine: typed params (``config``), stage keys (``keys``), the run folder (``rundir``),
          atomic artifacts (``artifacts``), process set-up (``session``), progress lines
          (``progress``), library type names (``types``), the headless runner and the run report
world     what models are trained and evaluated on: the synthetic task families, local JSONL
          benchmarks, and the run's evaluation suite
models    loading any Hugging Face causal LM or building the organism, batched generation,
          pretraining and post-training (trl)
method    the science, free of run folders: activations and their store, the crosscoder, NRN/MAS,
          checkpoint overlap, edge attribution and circuit metrics, latent edits, bootstrap statistics
studies   one stage module per notebook (``train`` … ``interventions``): ``ensure_*`` stages keyed
          and cached in the run folder and the tables; beside each, modules of one job (nulls,
          baselines, findings and verdicts in ``<stage>_claims``)
viz       plotly figures and the ipywidgets inspector and explorer
========  =========================================================================================

``run`` (except the runner and report, which drive the notebooks) imports nothing above it; ``world`` and
``models`` import ``run``; ``method`` imports ``run`` and ``models``; ``studies`` import everything below them
and each other's public ``ensure_*`` stages only; notebooks import only ``studies`` and ``viz``.
``tests/test_tooling.py`` checks these rules. The method behind each module is described in ``docs/METHOD.md``.

Shape legend
------------
Tensor and array names end in their shape, one capital letter per axis, e.g. ``W_dec_LMD`` is
``[latents, models, d_model]``. Every letter means one thing across the whole package:

====  ========================================  ====  ===========================================
B     rows of a batch                           N     observations: tokens in a store, values
T     token positions                                 being averaged or bootstrapped
D     d_model (residual-stream width)           X     bootstrap draws
V     vocabulary                                Z     training seeds
M     models compared (crosscoder slots)        F     evaluation families
L     crosscoder latents                        K     questions scored in Study B
C     checkpoints                               E     edges of the graph, flattened
S     senders of the graph (block outputs)      H     histogram bins
R     receivers of the graph (block inputs)     G     base models (pretraining seeds)
====  ========================================  ====  ===========================================

A lowercase letter is a subset of its capital's axis (``pre_Bl``: the dead latents only).
"""
