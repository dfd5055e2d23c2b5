"""Progress under the runner is plain lines on stderr; interactively it is tqdm (rlgen_utils.run.progress)."""
from rlgen_utils.run import progress


def test_lines_mode_prints_start_and_end_with_counts(monkeypatch, capsys):
    monkeypatch.setenv("RLGEN_PROGRESS", "lines")
    monkeypatch.setenv("RLGEN_PROGRESS_EVERY", "1000")
    assert list(progress.progress(range(5), desc="evaluate")) == [0, 1, 2, 3, 4]
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[0].startswith("[progress] evaluate: 0/5 (0%)") and lines[-1].startswith("[progress] evaluate: 5/5")
    assert len(lines) == 2, "a line per item would flood the log; only the start, throttled updates and the end"


def test_resumed_loops_count_from_initial_and_unsized_loops_count_up(monkeypatch, capsys):
    monkeypatch.setenv("RLGEN_PROGRESS", "lines")
    list(progress.progress(range(2), desc="segments", total=5, initial=3))
    assert "[progress] segments: 5/5 (100%)" in capsys.readouterr().err
    list(progress.progress(iter([1, 2]), desc="gen"))
    assert "[progress] gen: 2 done" in capsys.readouterr().err


def test_eta_in_a_line():
    assert progress.line("x", 2, 4, 10.0) == "[progress] x: 2/4 (50%) 0:10 elapsed, ~0:10 left"
    assert progress.line("x", 0, None, 0.0) == "[progress] x: 0 done, 0:00 elapsed"


def test_disabled_or_interactive_is_not_lines(monkeypatch):
    monkeypatch.delenv("RLGEN_PROGRESS", raising=False)
    items = [1, 2]
    assert progress.progress(items, desc="x", disable=True) is items
    bar = progress.progress(items, desc="x")
    assert list(bar) == items and hasattr(bar, "update"), "interactively the loop is a tqdm bar"
