"""Running the command line for the e2e tests, two ways with one result type.

``run_cli``: ``labelless ARGS`` in a fresh interpreter, as a person runs it (the console script is
``sys.exit(labelless.cli:main())``, the same as ``python -m labelless.cli``): seconds of
interpreter and torch start-up each time. ``run_in_process``: the same ``main(argv)`` in this
interpreter. ``main`` is where a ``labelless.errors`` error becomes exit code 2 and one ``error:``
line, so both give the same exit code, stdout and stderr. User errors and quick listings run
in-process; every verb's happy path and one user error still run a real subprocess.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

import torch

WIDE = {"COLUMNS": "200"}  # wide enough that no message wraps


# Small runs on digits that the lifecycle and launcher tests start.
TINY = [
    "--data",
    "digits",
    "--method",
    "simclr",
    "--set",
    "backbone.width=0.125",
    "--set",
    "trainer.progress_bar=false",
    "--set",
    "monitor.every_n_epochs=100",
]
SEMI = [
    "--data",
    "digits",
    "--method",
    "fixmatch",
    "--labels-per-class",
    "4",
    "--mu",
    "1",
    "--set",
    "backbone.width=0.125",
    "--set",
    "trainer.progress_bar=false",
    "--set",
    "semi.shift_check=false",
    "--set",
    "report=false",
]

DDP_ON_CPU = ["--strategy", "ddp", "--accelerator", "cpu", "--set", "trainer.threads=1"]


def ranks_trained_together(run: Path, world: int) -> dict:
    training = json.loads((run / "metrics.json").read_text())["training"]
    assert training["world_size"] == world
    assert training["ranks_agree"] is True  # every process ended with the same weights
    return training


def _command(*args: str) -> list[str]:
    return [sys.executable, "-m", "labelless.cli", *args]


def run_cli(
    *args: str, cwd: Path | None = None, one_thread: bool = False
) -> subprocess.CompletedProcess:
    """``labelless ARGS`` in a fresh interpreter. ``one_thread``: OMP_NUM_THREADS=1, far faster
    than 2 threads for tiny models on a busy machine. No time limit of its own: a hang is the
    test run's ``--timeout``."""
    env = dict(os.environ, **WIDE, **({"OMP_NUM_THREADS": "1"} if one_thread else {}))
    return subprocess.run(_command(*args), capture_output=True, text=True, cwd=cwd, env=env)


# ``labelless ARGV`` that creates MARKER after its STEP-th optimiser step and waits there for a
# signal: SIGKILL ends it at that step, SIGINT raises KeyboardInterrupt there, as a Ctrl-C would.
_PAUSING = """
import pathlib, signal, sys
from torch.optim.optimizer import register_optimizer_step_post_hook
from labelless.cli import main
step, marker, argv = int(sys.argv[1]), pathlib.Path(sys.argv[2]), sys.argv[3:]
signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal, even if inherited off
done = 0
def pause(optimizer, args, kwargs):
    global done
    done += 1
    if done == step:
        marker.touch()
        signal.pause()
register_optimizer_step_post_hook(pause)
sys.exit(main(argv))
"""


def start_cli(*args: str, pause_after_step: int, marker: Path) -> subprocess.Popen:
    """``labelless ARGS`` started in a fresh interpreter on one thread, not waited for (stdout
    and stderr are pipes). After its ``pause_after_step``-th optimiser step it creates ``marker``
    and waits for a signal, so that a test kills or interrupts it at that step, not at some
    point that depends on the machine's speed (see ``wait_until_paused``)."""
    env = dict(os.environ, **WIDE, OMP_NUM_THREADS="1")
    command = [sys.executable, "-c", _PAUSING, str(pause_after_step), str(marker), *args]
    return subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )


def start_cli_processes(
    *args: str, pause_after_step: int, marker: Path, folder: Path
) -> subprocess.Popen:
    """As ``start_cli``, for a run that starts its own processes (``--devices 2``): the pausing
    program is a script in ``folder``, which Lightning's launcher starts again for every other
    process (so each pauses after that step), in a new session, so that ``os.killpg`` ends the
    run's every process at once."""
    script = folder / "pausing_cli.py"
    script.write_text(_PAUSING)
    env = dict(os.environ, **WIDE, OMP_NUM_THREADS="1")
    command = [sys.executable, str(script), str(pause_after_step), str(marker), *args]
    return subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
    )


def wait_until_paused(process: subprocess.Popen, marker: Path) -> None:
    """Until a ``start_cli`` process is paused at its step; fails if it ends first."""
    while not marker.exists():
        assert process.poll() is None, process.communicate()
        time.sleep(0.02)


def run_in_process(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """``labelless ARGS`` through ``labelless.cli.main`` in this interpreter, stdout and stderr
    captured, in ``cwd`` if given. What a run changes in the process is put back afterwards: the
    working directory, COLUMNS, torch's thread count (``trainer.threads``) and
    ``warnings.showwarning`` (``main`` installs its ``warning:`` printer)."""
    from labelless.cli import main

    argv = [str(arg) for arg in args]
    stdout, stderr = io.StringIO(), io.StringIO()
    threads, show_warning = torch.get_num_threads(), warnings.showwarning
    columns = os.environ.get("COLUMNS")
    os.environ.update(WIDE)
    try:
        with (
            contextlib.chdir(cwd or os.getcwd()),
            contextlib.redirect_stdout(stdout),
            contextlib.redirect_stderr(stderr),
        ):
            code = main(argv)
    finally:
        torch.set_num_threads(threads)
        warnings.showwarning = show_warning
        if columns is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = columns
    return subprocess.CompletedProcess(
        ["labelless", *argv], code, stdout.getvalue(), stderr.getvalue()
    )


def error_lines(stderr: str) -> list[str]:
    """stderr's non-blank lines other than ``warning:`` lines."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    return [line for line in lines if not line.startswith("warning:")]


def one_line_error(result: subprocess.CompletedProcess) -> str:
    """A user mistake: exit code 2, one ``error:`` line first (after any ``warning:`` lines),
    no traceback; returns stderr."""
    assert result.returncode == 2, result.stderr + result.stdout
    lines = error_lines(result.stderr)
    assert "Traceback" not in result.stderr
    assert lines and lines[0].startswith("error:")
    return result.stderr


def loss_by_step(log: Path) -> dict[str, str]:
    """``{step: train/loss}`` of a run's ``logs/metrics.csv`` (rows with a loss)."""
    import csv

    with log.open(newline="") as handle:
        return {
            row["step"]: row["train/loss"] for row in csv.DictReader(handle) if row["train/loss"]
        }
