"""The README's results section: Markdown tables and the marked block it replaces."""
import pandas as pd
import pytest

from rlgen_utils.studies import results


def test_markdown_table_formats_floats_and_escapes_pipes():
    df = pd.DataFrame({"a": [0.12345, float("nan")], "b": ["x|y", None]}, index=pd.Index(["r1", "r2"], name="row"))
    assert results.markdown_table(df).splitlines() == ["| row | a | b |", "|---|---|---|", "| r1 | 0.123 | x\\|y |",
                                            "| r2 |  |  |"]


def test_write_between_markers_replaces_only_the_block(tmp_path):
    f = tmp_path / "README.md"
    f.write_text(f"intro\n{results.BEGIN}\nold numbers\n{results.END}\noutro\n")
    results.write_between_markers(f, "new numbers")
    assert f.read_text() == f"intro\n{results.BEGIN}\nnew numbers\n{results.END}\noutro\n"
    f.write_text("no markers")
    with pytest.raises(SystemExit, match="markers"):
        results.write_between_markers(f, "x")
