"""Keeping a run's CSV log whole across resumes.

Lightning's CSV logger deletes an existing ``metrics.csv`` when it starts; a resumed run first sets
the old file aside and afterwards merges both into one file (union of the columns).
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

from labelless.config import write_text_atomic

PREVIOUS = "metrics.previous.csv"


def set_aside(log_dir: Path) -> None:
    current = log_dir / "metrics.csv"
    if current.is_file():
        os.replace(current, log_dir / PREVIOUS)


def merge_previous(log_dir: Path) -> None:
    previous, current = log_dir / PREVIOUS, log_dir / "metrics.csv"
    if not previous.is_file():
        return
    rows: list[dict[str, str]] = []
    for path in (previous, current):
        if path.is_file():
            with path.open(newline="") as handle:
                rows += list(csv.DictReader(handle))
    columns = sorted({key for row in rows for key in row})
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(current, buffer.getvalue())
    previous.unlink()
