"""The one renderer: typed results — :class:`~rlgen_utils.studies.findings.Findings`,
:class:`~rlgen_utils.studies.verdicts.Verdict` and tables — as Markdown, for notebooks, the run report and the
generated pages under ``docs/`` alike. Nothing else in rlgen formats a finding or a verdict.

    render.markdown(findings)            # str
    render.show(findings)                # an IPython Markdown object, for a notebook cell
    render.table(df, floatfmt=".3f")     # a Markdown table
"""
from __future__ import annotations

import pandas as pd
from IPython.display import Markdown

from .findings import Finding, Findings
from .verdicts import Verdict

_PREFIX = {"bullet": "- ", "sub": "  - ", "paragraph": "\n", "line": ""}


def verdict_line(v: Verdict) -> str:
    """A verdict as one bullet: claim, decision, the numbers, its null and its detection limit."""
    return f"- **{v.claim}**: **{v.decision}** — {v.detail} (null: {v.null}; limit: {v.limit})."


def finding_line(f: Finding) -> str:
    return _PREFIX[f.style] + f.text


def markdown(x: Findings | Verdict | list[Verdict] | pd.DataFrame) -> str:
    """Markdown for a findings paragraph (its statements and verdicts, one per line), a verdict, a list of
    verdicts, or a table."""
    if isinstance(x, Findings):
        return "\n".join(verdict_line(i) if isinstance(i, Verdict) else finding_line(i) for i in x.items)
    if isinstance(x, Verdict):
        return verdict_line(x)
    if isinstance(x, pd.DataFrame):
        return table(x)
    if isinstance(x, list) and all(isinstance(v, Verdict) for v in x):
        return "\n".join(map(verdict_line, x))
    raise TypeError(f"render.markdown cannot render a {type(x).__name__}")


def show(x: Findings | Verdict | list[Verdict]) -> Markdown:
    """``markdown(x)`` as a notebook output (``text/markdown``, which the run report keeps)."""
    return Markdown(markdown(x))


def table(df: pd.DataFrame, floatfmt: str = ".3f", index: bool = True) -> str:
    """A Markdown table (pandas' own needs the ``tabulate`` package, which rlgen does not install)."""
    df = df.reset_index() if index else df

    def fmt(v) -> str:
        if isinstance(v, float):
            return "" if pd.isna(v) else format(v, floatfmt)
        return "" if v is None else str(v).replace("|", "\\|")
    lines = ["| " + " | ".join(map(str, df.columns)) + " |", "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines)
