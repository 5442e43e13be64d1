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


def _help(capsys, *argv: str) -> str:
    """``labelless ARGV`` (a help or version request) run in-process: exit 0, its stdout with the
    help panels' borders and line breaks taken out."""
    assert main(list(argv)) == 0
    out = capsys.readouterr().out
    return " ".join(out.replace("│", " ").split())


def test_version_and_h_are_there(capsys):
    from importlib.metadata import version

    assert _help(capsys, "--version") == f"labelless {version('labelless')}"
    assert "--version" in _help(capsys, "-h")
    assert "Usage: labelless pretrain" in _help(capsys, "pretrain", "-h")


def test_pretrain_and_semi_help_state_the_effective_defaults(capsys):
    """Every flag left unset in the code says what the run does without it, from the config
    schemas: method, data, epochs, batch size, learning rate, how --out is named, the kNN k."""
    from labelless.backbones import DEFAULT_BACKBONE
    from labelless.config import KNN_K, RunConfig
    from labelless.methods import METHODS
    from labelless.semi.config import SemiRunConfig

    pretrain, semi = RunConfig(), SemiRunConfig()
    text = _help(capsys, "pretrain", "--help")
    assert "…" not in text  # nothing cut off at 80 columns
    for expected in (
        f"(default: {pretrain.method.name}, or the --init run's)",
        f"(default: {pretrain.data.name})",
        f"(default: {pretrain.trainer.max_epochs}, or the --config file's)",
        f"(default: {pretrain.optim.batch_size}, or the --config file's)",
        f"(default: {pretrain.optim.name}, or the --config file's)",
        "(default: runs/<method>-<data name>, e.g. runs/simclr-digits, runs/ts2vec-ucr-GunPoint;",
        f"images: {DEFAULT_BACKBONE['image']}",
        f"mae, ijepa: {METHODS['mae'].default_backbone}",
        "a run directory also gives its method, method options, backbone, views and optimiser",
    ):
        assert expected in text, expected
    assert METHODS["ijepa"].default_backbone == METHODS["mae"].default_backbone
    text = _help(capsys, "semi", "--help")
    assert "…" not in text  # nothing cut off at 80 columns
    for expected in (
        f"(default: {semi.semi.method})",
        f"(default: {semi.trainer.max_epochs}, or the --config file's)",
        f"(default: {semi.optim.batch_size})",
        "(default: semi-<method>-<data name> in runs/, e.g. semi-fixmatch-digits)",
    ):
        assert expected in text, expected
    for verb in ("evaluate", "prune"):
        assert f"(default: the k the encoder's run used, else {KNN_K})" in _help(
            capsys, verb, "--help"
        )


def test_each_verbs_metrics_table_says_what_it_shows(monkeypatch, capsys, tmp_path):
    """``evaluate`` prints an evaluation's metrics, not "final metrics (last epoch)"."""
    from labelless import api

    preprocessing = {"input_size_overridden": False, "normalize_overridden": False}
    record = {"knn_top1": 0.5, "protocol": {"preprocessing": preprocessing}}
    monkeypatch.setattr(api, "evaluate", lambda *args, **kwargs: record)
    assert main(["evaluate", str(tmp_path / "run"), "--data", "digits"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "evaluation on digits: frozen embeddings" in out and "last epoch" not in out
