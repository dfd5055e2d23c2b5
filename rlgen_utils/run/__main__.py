"""``python -m rlgen_utils.run --params FILE``: run the study's notebooks (see :mod:`rlgen_utils.run.runner`)."""
import sys

from .runner import main

sys.exit(main())
