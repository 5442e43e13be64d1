"""Command-line usage errors (unknown command or option) exit with code 2 and click's usage
message, in process: typer >= 0.2x vendors click, and its errors once escaped as a traceback."""

from __future__ import annotations

import pytest

from labelless.cli import main


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["nosuch"], "No such command 'nosuch'"),
        (["pretrain", "--nosuch"], "No such option: --nosuch"),
        (["semi", "--labels-per-class", "two"], "Invalid value for '--labels-per-class'"),
    ],
)
def test_usage_errors_exit_2_with_a_message(argv, message, capsys):
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert message in captured.err and "Traceback" not in captured.err + captured.out
