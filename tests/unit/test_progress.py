"""labelless.progress: silent unless shown, one finished line per outer task on stderr, nested
tasks gone when done, nothing left behind by a failed task or while hidden."""

from __future__ import annotations

import pytest

from labelless import progress


def test_silent_unless_shown(capsys):
    assert not progress.is_shown()
    with progress.task("embedding", 3) as bar:
        assert bar is progress.SILENT
        bar.advance()
        bar.update(description="ignored")
    assert capsys.readouterr() == ("", "")


def test_outer_tasks_leave_one_finished_line_on_stderr(capsys):
    with progress.shown():
        with progress.task("pruning 2 sparsity levels", 2) as levels:
            for _ in range(2):
                with progress.task("embedding 10 samples", 5) as batches:
                    for _ in range(5):
                        batches.advance()
                levels.advance()
        with progress.task("k-means"):  # not counted: a pulsing bar, then full
            pass
    out, err = capsys.readouterr()
    lines = err.splitlines()
    assert out == ""  # stdout stays clean for piped results
    assert len(lines) == 2, err
    assert lines[0].startswith("pruning 2 sparsity levels") and "2/2" in lines[0]
    assert "embedding" not in err  # a nested task disappears when done
    assert lines[1].startswith("k-means") and "/" not in lines[1]
    assert not progress.is_shown()  # the previous setting is back


def test_an_early_finish_fills_the_bar(capsys):
    with progress.shown(), progress.task("linear probe", 700) as bar:
        bar.advance(300)  # L-BFGS converged before its iteration limit
    assert "700/700" in capsys.readouterr().err


def test_a_failed_task_leaves_no_line(capsys):
    with progress.shown(), pytest.raises(ValueError), progress.task("kNN", 4) as bar:
        bar.advance()
        raise ValueError("bad input")
    assert capsys.readouterr().err == ""


def test_hidden_inside_shown(capsys):
    with progress.shown(), progress.hidden():
        assert not progress.is_shown()
        with progress.task("embedding", 1) as bar:
            assert bar is progress.SILENT
    assert capsys.readouterr().err == ""
