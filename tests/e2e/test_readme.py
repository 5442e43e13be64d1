"""Every command in README.md runs as written, in order, on a fresh working directory.

The README's ```bash blocks are read line by line (``\\`` continues a line). A command whose comment
says ``needs LABELLESS_DATA``, ``needs local weights`` or ``needs two machines`` is not run (the
README says there how to get what it needs); ``make`` lines are the suite itself and the demo
(``tests/integration/test_demo.py``); ``source`` activates the environment the test runs in. The
rest run through ``labelless.cli.main`` in a temporary folder that holds the repository's
``configs/`` and stand-ins for the user's own files the README names (``photos/``,
``new_photos/``, ``rows.csv``, ``Wafer_TRAIN.ts`` + ``_TEST.ts``), with one change: epochs are
divided by 25 (at least 1), and training verbs without ``--epochs`` get 1, so the walk takes
minutes. A command with ``--devices 2`` runs in a fresh interpreter (Lightning launches its
processes from the command line). The ```python block runs with the same epoch scaling.
"""

from __future__ import annotations

import contextlib
import csv
import math
import os
import re
import shlex
import time
from pathlib import Path

import numpy as np
import pytest

from .cli import run_cli, run_in_process

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
NOT_RUN = ("needs LABELLESS_DATA", "needs local weights", "needs two machines")
TRAINING_VERBS = ("pretrain", "semi", "finetune", "distill")
NUMBER = re.compile(r"\b\d+\.\d+\b")


def readme_blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README.read_text(), flags=re.S)


def readme_commands() -> list[tuple[str, str]]:
    """``(command, comment)`` for every line of the README's bash blocks, in order."""
    commands = []
    for block in readme_blocks("bash"):
        for line in block.replace("\\\n", " ").splitlines():
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            command, _, comment = line.partition("  #")
            commands.append((" ".join(command.split()), comment.strip()))
    return commands


def is_run(command: str, comment: str) -> bool:
    if command.startswith(("make ", "source ")):
        return False
    return not any(marker.lower() in comment.lower() for marker in NOT_RUN)


def shrink(argv: list[str]) -> list[str]:
    """Epochs / 25 (at least 1); a training verb without ``--epochs`` trains 1."""
    argv = list(argv)
    if "--epochs" in argv:
        at = argv.index("--epochs") + 1
        argv[at] = str(max(1, math.ceil(int(argv[at]) / 25)))
    elif argv and argv[0] in TRAINING_VERBS:
        argv += ["--epochs", "1"]
    return argv


def test_the_readme_commands_are_checked_and_marked():
    """The walk below covers the README: it finds its commands, and every one it does not run
    carries a reason a reader sees."""
    commands = readme_commands()
    labelless = [c for c, _ in commands if c.startswith("labelless ")]
    assert len(labelless) >= 20, labelless
    skipped = [(c, why) for c, why in commands if c.startswith("labelless") and not is_run(c, why)]
    for command, why in skipped:
        assert any(marker in why for marker in NOT_RUN), (command, why)
    assert len(skipped) <= len(labelless) // 4, skipped  # most of the README runs on a fresh clone
    for command, _ in commands:
        assert command.startswith(("labelless ", "make ", "source ", "torchrun ")), command


def _images(folder: Path, count: int, seed: int) -> None:
    """``count`` 40x48 RGB PNGs: a coloured rectangle on noise (stand-ins for a user's photos)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    folder.mkdir()
    for i in range(count):
        pixels = rng.integers(0, 80, (40, 48, 3), dtype=np.uint8)
        top, left = rng.integers(0, 20, 2)
        pixels[top : top + 20, left : left + 24] = rng.integers(120, 256, 3, dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"img_{i:03d}.png")


def _rows(path: Path) -> None:
    """300 rows of 6 numeric features and a ``label`` column of two classes."""
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 300)
    features = rng.standard_normal((300, 6)) + labels[:, None] * 1.5
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([*(f"x{i}" for i in range(6)), "label"])
        for row, label in zip(features, labels, strict=True):
            writer.writerow([*(f"{v:.4f}" for v in row), f"class_{label}"])


def _series(path: Path, count: int, seed: int) -> None:
    """UCR ``.ts``: two classes of noisy sines at different frequencies."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0, 1, 64)
    labels = rng.integers(0, 2, count)
    freq = np.where(labels == 0, 3.0, 7.0)[:, None]
    series = np.sin(2 * np.pi * freq * t + rng.uniform(0, 6, (count, 1)))
    series += 0.1 * rng.standard_normal((count, 64))
    lines = ["@problemName Wafer", "@timeStamps false", "@univariate true"]
    lines += ["@classLabel true 1 2", "@data"]
    pairs = zip(series, labels, strict=True)
    lines += [",".join(f"{v:.5f}" for v in s) + f":{y + 1}" for s, y in pairs]
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture
def fresh_clone(tmp_path, monkeypatch):
    """A working directory as the README assumes: the repository's configs, the user's files."""
    (tmp_path / "configs").symlink_to(ROOT / "configs")
    _images(tmp_path / "photos", 64, seed=0)
    _images(tmp_path / "new_photos", 32, seed=1)
    _rows(tmp_path / "rows.csv")
    _series(tmp_path / "Wafer_TRAIN.ts", 60, seed=0)
    _series(tmp_path / "Wafer_TEST.ts", 40, seed=1)
    monkeypatch.setenv("LABELLESS_DATA", str(tmp_path / "no-data-here"))  # a fresh machine's
    return tmp_path


def _problem(argv: list[str], result) -> str | None:
    if result.returncode != 0:
        return f"exit code {result.returncode}: {result.stderr[-1500:]}"
    if not result.stdout.strip():
        return "printed nothing"
    results = argv[0] in ("pretrain", "semi", "evaluate", "finetune", "prune", "select")
    if results and "--devices" not in argv and not NUMBER.search(result.stdout):
        return f"printed no result: {result.stdout[-1500:]}"
    return None


def test_every_readme_command_runs_as_written(fresh_clone, one_thread):
    """All of them run (a failure does not stop the walk, so one run reports every broken line)."""
    ran, problems = [], []
    for command, comment in readme_commands():
        if not is_run(command, comment):
            continue
        argv = shrink(shlex.split(command)[1:])
        start = time.perf_counter()
        if "--devices" in argv:
            result = run_cli(*argv, cwd=fresh_clone, one_thread=True)
        else:
            result = run_in_process(*argv, cwd=fresh_clone)
        problem = _problem(argv, result)
        print(f"{time.perf_counter() - start:7.1f} s  {command}", flush=True)
        if problem:
            problems.append(f"{command}\n    {problem}")
        ran.append(command)
    assert not problems, "\n".join(problems)
    assert len(ran) >= 18, ran


def test_the_readme_python_block_runs(fresh_clone, one_thread):
    (block,) = readme_blocks("python")
    code = re.sub(r"epochs=(\d+)", lambda m: f"epochs={max(1, int(m[1]) // 25)}", block)
    with contextlib.chdir(fresh_clone), contextlib.redirect_stdout(open(os.devnull, "w")):
        exec(compile(code, "README.md", "exec"), {"__name__": "readme"})
    assert (fresh_clone / "runs" / "py-simclr" / "metrics.json").exists()
