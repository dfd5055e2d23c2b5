"""One module per notebook — ``train`` (01), ``evaluate`` (02), ``crosscoder`` (03), ``dynamics`` (04),
``circuits`` (05), ``interventions`` (06): the ``ensure_*`` stages (keyed, cached in the run folder, resumable),
the tables and the computed findings each notebook shows. :func:`start` is every notebook's first call."""
from ..run.session import start

__all__ = ["start"]
