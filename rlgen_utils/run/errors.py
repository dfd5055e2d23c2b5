"""The one error type a params or pre-registration file raises, and the one-line message naming its key. It sits
below :mod:`rlgen_utils.run.config` and :mod:`rlgen_utils.run.preregistration`, which both raise it."""
from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError


class ParamsError(ValueError):
    """A params file that cannot be used; ``str(err)`` is one line naming the key."""


def one_line_error(path: Path, err: ValidationError) -> str:
    e = err.errors()[0]
    loc, msg = [str(p) for p in e["loc"]], e["msg"].removeprefix("Value error, ")
    if e["type"] == "value_error" and ": " in msg:  # a cross-field check names its own key first
        field, msg = msg.split(": ", 1)
        loc.append(field)
    key = ".".join(loc) or "(top level)"
    got = f" (got {e['input']!r})" if e["type"] not in ("missing", "value_error") and not isinstance(
        e.get("input"), dict) else ""
    return f"{path}: {key}: {msg}{got}"
