"""``labelless semi`` as a person types it: a short run (a fresh interpreter), and one-line errors
with exit code 2 (in-process)."""

from __future__ import annotations

import json

from .cli import one_line_error, run_cli, run_in_process


def test_semi_short_run(tmp_path):
    out = tmp_path / "run"
    result = run_cli(
        "semi",
        "--method",
        "fixmatch",
        "--data",
        "digits",
        "--labels-per-class",
        "2",
        "--epochs",
        "1",
        "--width",
        "0.25",
        "--batch-size",
        "16",
        "--mu",
        "2",
        "--set",
        "report=false",
        "--set",
        "trainer.progress_bar=false",
        "--out",
        str(out),
    )
    assert result.returncode == 0, result.stderr
    assert "test_top1" in result.stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["split"]["labelled"] == 20 and 0.0 <= metrics["test_top1"] <= 1.0


def test_semi_user_errors(tmp_path):
    message = one_line_error(
        run_in_process("semi", "--method", "fixmatchh", "--out", str(tmp_path / "a"))
    )
    assert "unknown semi-supervised method 'fixmatchh'" in message and "flexmatch" in message
    message = one_line_error(
        run_in_process(
            "semi", "--data", "digits", "--labels-per-class", "1000", "--out", str(tmp_path / "b")
        )
    )
    assert "lower it" in message
    assert not (tmp_path / "b").exists()
    message = one_line_error(
        run_in_process("semi", "--method", "mixmatch", "--saa", "--out", str(tmp_path / "c"))
    )
    assert "FixMatch family" in message
