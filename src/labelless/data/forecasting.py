"""Forecasting series: one long multivariate series in a CSV (a date column + numeric columns),
cut into the standard train / val / test segments and into fixed-length windows.

Built-ins (files under the data root, ``$LABELLESS_DATA``): ``etth1``, ``etth2``, ``ettm1``,
``ettm2``, ``weather``: windows of 512 steps with stride 64, standardised with the training
segment's statistics: the train split holds the windows of the training segment, the test split
those of the test segment (the standard splits of ``load_forecasting``). For the full series and
the validation segment use ``load_forecasting(name)``.
"""

from __future__ import annotations

import gzip
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from labelless.data.builtin import BuiltinDataset, register_builtin
from labelless.data.dataset import Dataset, DataSplits
from labelless.data.paths import data_root
from labelless.data.timeseries import MODALITY
from labelless.errors import DataError

FORECAST_FILES = {
    "etth1": "ett/ETTh1.csv.gz",
    "etth2": "ett/ETTh2.csv.gz",
    "ettm1": "ett/ETTm1.csv.gz",
    "ettm2": "ett/ETTm2.csv.gz",
    "weather": "ett/weather.csv.gz",
}
_MONTH_HOURS = 30 * 24
DATE_COLUMNS = ("date", "time", "timestamp", "datetime")


@dataclass
class ForecastSeries:
    """One long multivariate series with its standard train/val/test segments.

    ``values: float32 [T, C]`` standardised per column with the training segment's ``mean`` and
    ``std``; ``borders = (train_end, val_end, test_end)``: train is ``values[:train_end]``, val
    ``values[train_end:val_end]``, test ``values[val_end:test_end]``."""

    name: str
    values: np.ndarray
    columns: list[str]
    borders: tuple[int, int, int]
    mean: np.ndarray
    std: np.ndarray

    def split(self, which: str) -> np.ndarray:
        """``values`` of the ``"train"``, ``"val"`` or ``"test"`` segment, ``[T_split, C]``."""
        starts = {"train": 0, "val": self.borders[0], "test": self.borders[1]}
        if which not in starts:
            raise DataError(f"unknown split {which!r}; choose train, val or test")
        end = self.borders[("train", "val", "test").index(which)]
        return self.values[starts[which] : end]


def read_forecast_csv(path: str | Path) -> tuple[np.ndarray, list[str]]:
    """``(values float64 [T, C], column names)`` of a CSV (or ``.csv.gz``) with a header row; a
    leading date/time column is dropped. Ragged rows, empty or non-numeric cells raise
    DataError naming the line and column."""
    path = Path(path)
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    try:
        with opener(path, "rt", encoding="latin-1") as handle:
            lines = handle.read().splitlines()
    except (OSError, EOFError) as error:
        raise DataError(f"cannot read {str(path)!r}: {error}; check the file") from error
    if len(lines) < 2:
        raise DataError(f"{path}: needs a header row and at least one data row")
    header = [h.strip() for h in lines[0].split(",")]
    skip = 1 if header[0].lower() in DATE_COLUMNS else 0
    rows = []
    for number, line in enumerate(lines[1:], 2):
        if not line.strip():
            continue
        cells = line.split(",")
        if len(cells) != len(header):
            raise DataError(
                f"{path}:{number}: {len(cells)} fields but the header has {len(header)}; fix "
                "the ragged row"
            )
        rows.append(cells[skip:])
    try:
        values = np.array(rows, dtype=np.float64)
    except ValueError:
        for number, cells in enumerate(rows, 2):
            for column, cell in zip(header[skip:], cells, strict=True):
                try:
                    float(cell)
                except ValueError:
                    raise DataError(
                        f"{path}:{number}: column {column!r} holds {cell.strip()!r}, not a "
                        "number; fix or remove that row"
                    ) from None
        raise
    if not np.isfinite(values).all():
        row, column = np.argwhere(~np.isfinite(values))[0]
        raise DataError(f"{path}:{row + 2}: column {header[skip + column]!r} is NaN or infinite")
    return values, header[skip:]


def _borders(name: str, length: int, splits: Sequence[float] | None) -> tuple[int, int, int]:
    key = name.lower()
    if splits is None and key.startswith(("etth", "ettm")):
        step = _MONTH_HOURS * (4 if key.startswith("ettm") else 1)
        borders = (12 * step, 16 * step, 20 * step)
        if borders[2] > length:
            raise DataError(f"{name}: {length} rows, the ETT split needs {borders[2]}")
        return borders
    train, _, test = splits or (0.7, 0.1, 0.2)
    train_end = int(length * train)
    test_start = length - int(length * test)
    if not 0 < train_end < test_start <= length:
        raise DataError(f"{name}: splits {splits} leave an empty segment of {length} rows")
    return train_end, test_start, length


def load_forecasting(
    source: str | Path,
    *,
    columns: Sequence[str] | None = None,
    splits: Sequence[float] | None = None,
) -> ForecastSeries:
    """A forecasting series from a built-in name (``etth1``, ``etth2``, ``ettm1``, ``ettm2``,
    ``weather``) or a CSV path. Standard splits: ETTh 12/4/4 months of hours, ETTm the same
    months of 15-min steps, anything else 70/10/20 % (``splits`` = fractions train, val, test).
    Standardised per column with the training segment's mean and std only."""
    key = str(source).lower()
    path = data_root() / FORECAST_FILES[key] if key in FORECAST_FILES else Path(source)
    if not path.is_file():
        raise DataError(
            f"forecasting data {str(source)!r} not found at {str(path)!r}: give a CSV path or set "
            "LABELLESS_DATA to the folder holding ett/"
        )
    values, names = read_forecast_csv(path)
    if columns is not None:
        missing = [c for c in columns if c not in names]
        if missing:
            raise DataError(f"{path}: no columns {missing}; the columns are {names}")
        values = values[:, [names.index(c) for c in columns]]
        names = list(columns)
    name = key if key in FORECAST_FILES else path.name.split(".")[0]
    borders = _borders(name, len(values), splits)
    train = values[: borders[0]]
    mean, std = train.mean(axis=0), train.std(axis=0)
    std = np.where(std < 1e-8, 1.0, std)
    scaled = ((values[: borders[2]] - mean) / std).astype(np.float32)
    return ForecastSeries(name, scaled, names, borders, mean, std)


def sliding_windows(values: np.ndarray, window: int, stride: int) -> np.ndarray:
    """``values [T, C]`` -> ``float32 [N, C, window]``, windows starting every ``stride`` steps."""
    if len(values) < window:
        raise DataError(f"a segment of {len(values)} steps is shorter than the window {window}")
    starts = np.arange(0, len(values) - window + 1, stride)
    index = starts[:, None] + np.arange(window)
    return np.ascontiguousarray(values[index].transpose(0, 2, 1), dtype=np.float32)


def forecasting_splits(
    source: str | Path, *, window: int = 512, stride: int = 64, **options: Any
) -> DataSplits:
    """``load_forecasting(source, **options)`` as unlabelled windows: train = windows of the
    training segment, test = windows of the test segment, ``[N, C, window]``."""
    series = load_forecasting(source, **options)
    meta = {
        "columns": series.columns,
        "mean": series.mean.tolist(),
        "std": series.std.tolist(),
        "borders": list(series.borders),
        "window": window,
        "stride": stride,
        "channels": len(series.columns),
    }

    def windows(split: str) -> Dataset:
        samples = sliding_windows(series.split(split), window, stride)
        lengths = np.full(len(samples), window, dtype=np.int64)
        return Dataset(
            samples, None, MODALITY, f"{series.name}/{split}", {**meta, "lengths": lengths}
        )

    return DataSplits(windows("train"), windows("test"))


for _name, _file in FORECAST_FILES.items():
    register_builtin(
        BuiltinDataset(
            _name,
            f"{_name} forecasting series (windows of 512 steps, stride 64; standard splits)",
            lambda n=_name: forecasting_splits(n),
            (_file,),
            modality="timeseries",
        )
    )
