"""The run's CSV log, ``logs/metrics.csv``: one row per logging call, written as it happens.

Lightning's CSV logger buffers rows for 100 steps (a killed run loses them) and deletes an
existing ``metrics.csv`` when it starts (a resumed run would lose its history). ``RunCSVLogger``
appends each row at once, keeps an existing file, and rewrites the file (atomically) only when a
new column appears. A resumed run first drops the rows logged after its checkpoint
(``truncate_log``): those steps run again, so they must not appear twice.

Columns: ``epoch``, ``step`` and the metric names, sorted; a row leaves the metrics it does not
have empty, as Lightning's CSV logger does (the report reads either).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from lightning.pytorch.loggers.logger import Logger
from lightning.pytorch.utilities import rank_zero_only

from labelless.atomic import write_text_atomic
from labelless.runfiles import METRICS_CSV


def read_rows(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    """Header and rows of a CSV log (empty when the file does not exist)."""
    if not path.is_file():
        return [], []
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        rows = list(reader)
        return list(reader.fieldnames or []), rows


def _write_all(path: Path, columns: list[str], rows: list[dict[str, Any]]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(path, buffer.getvalue())


def truncate_log(path: Path, before_step: int) -> int:
    """Keep the rows of ``path`` whose ``step`` is below ``before_step`` (the global step of the
    checkpoint a run resumes from); returns how many rows were dropped."""
    columns, rows = read_rows(path)
    kept = [row for row in rows if _step(row) < before_step]
    if len(kept) != len(rows):
        _write_all(path, columns, kept)
    return len(rows) - len(kept)


def _step(row: dict[str, str]) -> float:
    try:
        return float(row.get("step") or 0)
    except ValueError:
        return 0.0


class RunCSVLogger(Logger):
    """Appends each logged row to ``log_dir/metrics.csv`` on global rank 0 at once."""

    def __init__(self, log_dir: str | Path) -> None:
        super().__init__()
        self._log_dir = Path(log_dir)
        self._columns: list[str] | None = None

    @property
    def name(self) -> str:
        return "logs"

    @property
    def version(self) -> str:
        return ""

    @property
    def log_dir(self) -> str:
        return str(self._log_dir)

    @property
    def save_dir(self) -> str:
        return str(self._log_dir.parent)

    @property
    def path(self) -> Path:
        return self._log_dir / METRICS_CSV

    @rank_zero_only
    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        """The run's ``config.yaml`` is its record of settings."""

    @rank_zero_only
    def log_metrics(self, metrics: dict[str, Any], step: int | None = None) -> None:
        row = {key: _plain(value) for key, value in metrics.items()}
        row["step"] = step if step is not None else row.get("step", 0)
        if self._columns is None:
            self._columns = read_rows(self.path)[0]
        new = sorted(set(row) - set(self._columns))
        if new or not self.path.is_file():
            _, rows = read_rows(self.path)
            self._columns = sorted({*self._columns, *new})
            _write_all(self.path, self._columns, [*rows, row])
            return
        with self.path.open("a", newline="") as handle:
            csv.DictWriter(handle, fieldnames=self._columns, lineterminator="\n").writerow(row)


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value
