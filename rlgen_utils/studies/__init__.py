"""The studies, notebook by notebook. Each notebook 01–06 has one **stage** module — ``train`` (01), ``evaluate``
(02), ``crosscoder`` (03), ``dynamics`` (04), ``circuits`` (05), ``interventions`` (06): its ``ensure_*`` stages
(keyed, cached in the run folder, resumable) and the tables it shows — and beside it modules of one job each:

==========================  =============================================================================
``forgetting``, ``prereg``  02: how far each model moved (KL, changed parameters, fits); the pre-registration
``offpolicy``               02: how far SFT's gold lies off the base's policy; answer styles and error kinds
``matched``                 02: SFT against RL at matched KL and matched gain, inside the range both cover
``bases``                   02 over several bases: the pre-registration over bases × seeds × samples
``nulls``                   03, 04: identical-copy, random-update and random-walk null models
``baselines``               03: detection power, the L1 crosscoder, the sae-lens SAE baseline
``difflens``                03: the activation difference lens on unrelated text, against its null
``circuits_exact``          05: exact ablation of every edge, against the first-order scores
``explorer_inputs``         06: the latent sets and prompts the intervention explorer offers
``known_*``                 03–06: fine-tunes and weight edits whose cause is known, for the validation
                            benches (``known_causes``, ``known_dating``, ``known_edges``, ``known_ablation``,
                            ``known_selection``)
``<stage>_claims``          03–06: typed findings and verdicts (``crosscoder_claims`` …)
``verdicts``                the typed verdict and its decision rule, shared by every claims module
``findings``                the typed findings paragraph (statements with their values), recorded per run
``render``                  the one renderer: findings, verdicts and tables as Markdown
``results``                 the generated results pages, from finished run folders
``train_method``,           what each rank of an ``accelerate launch`` runs (one method's training; one
``shard_stage``             shard of a stage)
==========================  =============================================================================

**Import rule** (``tests/test_tooling.py`` checks it): a module imports studies of its own notebook or of earlier
ones, and the shared ``verdicts``, ``findings`` and ``render``; a stage module never imports its notebook's other
modules (they build on it); a claims module is imported by ``results`` alone; ``results``, ``train_method`` and
``shard_stage`` sit above everything.
:func:`start` is every notebook's first call.
"""
from ..run.session import start

__all__ = ["start"]
