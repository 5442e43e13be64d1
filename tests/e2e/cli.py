"""Running the command line in a subprocess, as a person does, for the e2e tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def run_cli(
    *args: str, cwd: Path | None = None, timeout: int = 600, one_thread: bool = False
) -> subprocess.CompletedProcess:
    """``labelless ARGS`` in a fresh interpreter; wide columns so that messages stay on one line.
    ``one_thread``: OMP_NUM_THREADS=1, far faster than 2 threads for tiny models on a busy
    machine."""
    env = dict(os.environ, COLUMNS="200", **({"OMP_NUM_THREADS": "1"} if one_thread else {}))
    return subprocess.run(
        [sys.executable, "-m", "labelless.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=timeout,
    )


def one_line_error(result: subprocess.CompletedProcess) -> str:
    """A user mistake: exit code 2, one ``error:`` line first (after any ``warning:`` lines),
    no traceback; returns stderr."""
    assert result.returncode == 2, result.stderr + result.stdout
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    lines = [line for line in lines if not line.startswith("warning:")]
    assert "Traceback" not in result.stderr
    assert lines and lines[0].startswith("error:")
    return result.stderr
