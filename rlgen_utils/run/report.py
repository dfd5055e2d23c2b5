"""The run report: every table, figure and findings paragraph of the executed notebooks, in one HTML file and in
Markdown with PNG figures, headed by the params, the package versions and the git commit.

    python -m rlgen_utils.run.report --params params/default.yaml      # also run by ``rlgen_utils.run`` at the end

Reads ``runs/<name>/notebooks/*.ipynb`` (papermill's executed copies) and writes ``runs/<name>/report/``:
``report.html`` (self-contained: plotly.js inlined once, figures interactive), ``report.md`` and
``figures/*.png``. PNGs need kaleido and a Chromium binary (``make reproduce`` installs Debian's ``chromium``
where it can); without one the Markdown links to the HTML report's figures instead and the report says so.
Progress-bar and explorer widgets are left out (they need a live kernel: open the notebook).
"""
from __future__ import annotations

import argparse
import html
import json
import shutil
import sys
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import plotly.graph_objects as go
import plotly.io as pio
import yaml

from .artifacts import atomic_write_text, git_commit
from .config import Params, load_params
from .keys import params_hash
from .rundir import REPO, RunDir

# imported inside functions, for their import cost (rlgen_utils.run.imports): kaleido, mistune



PACKAGES = ("torch", "transformers", "trl", "nnsight", "sae-lens", "safetensors", "numpy", "pandas", "plotly",
            "kaleido", "papermill", "pydantic")
WIDGET = "application/vnd.jupyter.widget-view+json"
PLOTLY = "application/vnd.plotly.v1+json"


def versions() -> dict[str, str]:
    out = {"python": sys.version.split()[0]}
    for p in PACKAGES:
        try:
            out[p] = version(p)
        except PackageNotFoundError:
            out[p] = "not installed"
    return out


def png_available() -> tuple[bool, str]:
    """Whether plotly can write PNGs here (kaleido + a Chromium binary), and why not."""
    try:
        import kaleido  # noqa: F401
    except ImportError:
        return False, "kaleido is not installed"
    if not any(shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome", "chrome")):
        return False, "no Chromium binary on PATH (install Debian's `chromium`)"
    return True, ""


def _markdown_to_html(text: str) -> str:
    try:
        import mistune
        return str(mistune.html(text))
    except ImportError:  # still readable without a renderer
        return f"<pre>{html.escape(text)}</pre>"


def _text(o: dict, mime: str) -> str:
    v = o.get("data", {}).get(mime, "")
    return "".join(v) if isinstance(v, list) else v


class Report:
    """Accumulates HTML and Markdown side by side."""

    def __init__(self, out: Path, pngs: bool):
        self.out, self.pngs, self.html, self.md, self.n_fig = out, pngs, [], [], 0
        self.plotlyjs_done = False
        self.pending: list[tuple] = []   # (figure, path, height): PNGs written together by write_pngs()

    def markdown(self, text: str):
        self.html.append(_markdown_to_html(text))
        self.md.append(text)

    def raw_html(self, fragment: str):  # pandas tables: raw HTML is valid Markdown too
        self.html.append(fragment)
        self.md.append(fragment)

    def pre(self, text: str):
        self.html.append(f"<pre>{html.escape(text)}</pre>")
        self.md.append("```\n" + text.rstrip() + "\n```")

    def figure(self, spec: dict):
        fig = go.Figure(spec)
        self.n_fig += 1
        anchor = f"fig{self.n_fig}"
        self.html.append(f"<div id='{anchor}'>" + pio.to_html(fig, include_plotlyjs=not self.plotlyjs_done,
                                                             full_html=False) + "</div>")
        self.plotlyjs_done = True
        if self.pngs:
            path = self.out / "figures" / f"{anchor}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            self.pending.append((fig, path, fig.layout.height or 450))
            self.md.append(f"![figure {self.n_fig}](figures/{anchor}.png)")
        else:
            self.md.append(f"*Figure {self.n_fig}: see [report.html](report.html#{anchor}).*")

    def write_pngs(self) -> None:
        """Every figure's PNG in one Chromium session (one ``write_image`` per figure starts a browser each
        time: ~3 s a figure)."""
        if self.pending:
            figs, paths, heights = zip(*self.pending)
            pio.write_images(list(figs), [str(p) for p in paths], width=1000, height=list(heights))
            self.pending = []

    def add_notebook(self, nb_path: Path):
        nb = json.loads(nb_path.read_text())
        self.html.append(f"<hr><p class='source'>{html.escape(nb_path.name)}</p>")
        self.md.append(f"---\n*{nb_path.name}*")
        for cell in nb["cells"]:
            if cell["cell_type"] == "markdown":
                self.markdown("".join(cell["source"]))
            elif cell["cell_type"] == "code":
                for o in cell.get("outputs", []):
                    self.add_output(o)

    def add_output(self, o: dict):
        data = o.get("data", {})
        if o["output_type"] == "error":
            self.pre(f"ERROR {o.get('ename')}: {o.get('evalue')}")
        elif o["output_type"] == "stream" and o.get("name") == "stdout":
            self.pre("".join(o["text"]) if isinstance(o["text"], list) else o["text"])
        elif PLOTLY in data:
            self.figure(data[PLOTLY])
        elif "text/markdown" in data:
            self.markdown(_text(o, "text/markdown"))
        elif "text/html" in data:
            self.raw_html(_text(o, "text/html"))
        elif WIDGET in data:
            return
        elif "text/plain" in data:
            self.pre(_text(o, "text/plain"))


STYLE = ("<style>body{font-family:sans-serif;max-width:1100px;margin:auto;padding:1em}"
         "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:2px 6px}"
         "pre{background:#f6f6f6;padding:6px;overflow-x:auto}.source{color:#888}</style>")


def header(P: Params, params_path: Path, commit: str, pngs: bool, why: str) -> str:

    vers = versions()
    lines = [f"# rlgen run report: `{P.name}`", "",
             f"Generated {datetime.now(UTC):%Y-%m-%d %H:%M UTC} from `{params_path}` "
             f"(params hash `{params_hash(P)}`), commit `{commit}`.", "",
             "| package | version |", "|---|---|"] + [f"| {k} | {v} |" for k, v in vers.items()]
    if not pngs:
        lines += ["", f"**Static figures were not written**: {why}. The HTML report has every figure."]
    lines += ["", "<details><summary>params</summary>", "", "```yaml",
              yaml.safe_dump(P.model_dump(mode="json"), sort_keys=False).rstrip(), "```", "", "</details>"]
    return "\n".join(lines)


def build(params_path: str | Path, root: Path | None = None, pngs: bool = True) -> Path:
    """Write the report of the run of ``params_path`` and return its folder (``pngs=False``: HTML figures only)."""

    root = root or REPO
    P = load_params(params_path)
    run = RunDir(P)
    nbs = sorted(run.notebooks.glob("[0-9][0-9]_*.ipynb"))
    if not nbs:
        raise FileNotFoundError(f"{run.notebooks}: no executed notebooks; run the study first")
    can, why = png_available()
    pngs, why = (can, why) if pngs else (False, "static figures were switched off (--no-png)")
    out = run.report
    rep = Report(out, pngs)
    rep.markdown(header(P, Path(params_path), git_commit(root), pngs, why))
    for nb in nbs:
        rep.add_notebook(nb)
    rep.write_pngs()
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>rlgen {html.escape(P.name)}</title>{STYLE}"
            f"</head><body>{''.join(rep.html)}</body></html>")
    atomic_write_text(out / "report.html", page)
    atomic_write_text(out / "report.md", "\n\n".join(rep.md) + "\n")
    if not pngs:
        print(f"[rlgen] report: HTML only — {why}", file=sys.stderr)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Build the run report from the executed notebooks.")
    ap.add_argument("--params", required=True)
    ap.add_argument("--no-png", action="store_true", help="skip the static PNG figures")
    args = ap.parse_args(argv)
    out = build(args.params, pngs=not args.no_png)
    print(f"[rlgen] report: {out / 'report.html'} and {out / 'report.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
