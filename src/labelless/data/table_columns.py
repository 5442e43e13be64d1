"""Reading tables into typed columns, and the preprocessing fitted on the training rows.

``read_columns`` turns CSV (``.csv``, ``.csv.gz``; the ``csv`` module, no pandas needed),
parquet (pyarrow), pandas DataFrames and dicts into ``{name: 1-D array}``; the column helpers type
them (numbers as float64 with NaN for missing cells, text as object arrays); ``TablePreprocessor``
maps them to ``float32 [N, F]`` (quantile-normal or standardised numerics, then category codes
with 0 for missing / unseen) and round-trips through JSON. ``labelless.data.tabular`` builds
datasets from them.
"""

from __future__ import annotations

import csv
import difflib
import gzip
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from labelless.errors import CheckpointError, ConfigError, DataError

# Cell texts read as missing (compared after stripping spaces, case-insensitively).
MISSING_TOKENS = ("", "?", "na", "n/a", "nan", "null", "none")
SCALINGS = ("quantile", "standard")
MAX_QUANTILES = 1000
# A text column whose non-missing cells are at least this share numbers is numeric: the few
# other cells are typos that raise a DataError, not a reason to treat the column as categories.
NUMERIC_SHARE = 0.99
Columns = dict[str, np.ndarray]


# ---------------------------------------------------------------------------------------------
# Reading: every source becomes {name: 1-D array}, numbers as float64 or text as object arrays.


def _read_csv(path: Path) -> Columns:
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    try:
        with opener(path, "rt", newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle, skipinitialspace=True)
            header = [h.strip() for h in next(reader, [])]
            rows = [row for row in reader if any(cell.strip() for cell in row)]
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise DataError(f"cannot read CSV {str(path)!r}: {error}; check the file") from error
    if not header:
        raise DataError(f"CSV {str(path)!r} is empty: it needs a header row and data rows")
    if not rows:
        raise DataError(f"CSV {str(path)!r} has a header but no data rows")
    short = [i for i, row in enumerate(rows) if len(row) != len(header)]
    if short:
        raise DataError(
            f"CSV {str(path)!r}: data row {short[0] + 1} has {len(rows[short[0]])} fields but "
            f"the header has {len(header)} ({len(short)} such rows); fix the file's quoting"
        )
    table = np.array(rows, dtype=object)
    return {name: table[:, j] for j, name in enumerate(header)}


def _read_parquet(path: Path) -> Columns:
    try:
        import pyarrow.parquet as pq
    except ImportError as error:
        raise DataError("reading parquet needs pyarrow: pip install 'labelless[tables]'") from error
    try:
        table = pq.read_table(path)
    except Exception as error:  # pyarrow raises its own error types for corrupt files
        raise DataError(f"cannot read parquet {str(path)!r}: {error}") from error
    return {
        name: np.asarray(table.column(name).to_numpy(zero_copy_only=False))
        for name in table.column_names
    }


def read_columns(source: Any) -> Columns:
    """The columns of a CSV / parquet path, a pandas DataFrame or a dict of column -> array."""
    if isinstance(source, (str, Path)):
        path = Path(source).expanduser()
        if not path.is_file():
            raise DataError(f"table file {str(source)!r} not found; check the path")
        lower = path.name.lower()
        if lower.endswith(".parquet"):
            return _read_parquet(path)
        if lower.endswith((".csv", ".csv.gz")):
            return _read_csv(path)
        raise DataError(f"{str(source)!r} is not a .csv, .csv.gz or .parquet file")
    if hasattr(source, "columns") and hasattr(source, "to_numpy"):  # a pandas DataFrame
        return {str(name): np.asarray(source[name].to_numpy()) for name in source.columns}
    if isinstance(source, Mapping):
        columns = {str(k): np.asarray(v).reshape(-1) for k, v in source.items()}
        lengths = {len(v) for v in columns.values()}
        if len(lengths) > 1:
            raise DataError(f"the columns have different lengths {sorted(lengths)}; align them")
        if not columns or lengths == {0}:
            raise DataError("the table is empty: give at least one column with rows")
        return columns
    raise DataError(
        f"cannot read a table from {type(source).__name__}: give a CSV or parquet path, a "
        "pandas DataFrame or a dict of column name -> array"
    )


def is_text(values: np.ndarray) -> bool:
    return values.dtype.kind not in "biuf"


def text_cells(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Stripped strings (object array) and the missing mask of a text column."""
    out = np.empty(len(values), dtype=object)
    missing = np.zeros(len(values), dtype=bool)
    for i, value in enumerate(values):
        if value is None or (isinstance(value, float) and value != value):
            missing[i] = True
            continue
        text = str(value).strip()
        out[i] = text
        missing[i] = text.lower() in MISSING_TOKENS or text == "<NA>"
    return out, missing


def as_float(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(float64 values with NaN where missing, mask of cells that are not numbers)."""
    if not is_text(values):
        return values.astype(np.float64), np.zeros(len(values), dtype=bool)
    text, missing = text_cells(values)
    text[missing] = "nan"
    try:
        return text.astype(np.float64), np.zeros(len(values), dtype=bool)
    except ValueError:
        pass
    numbers = np.full(len(values), np.nan)
    bad = np.zeros(len(values), dtype=bool)
    for i, cell in enumerate(text):
        try:
            numbers[i] = float(cell)
        except ValueError:
            bad[i] = True
    return numbers, bad


def looks_numeric(values: np.ndarray) -> bool:
    if not is_text(values):
        return True
    numbers, bad = as_float(values)
    present = (~np.isnan(numbers)).sum() + bad.sum()
    return present > 0 and bad.sum() <= (1.0 - NUMERIC_SHARE) * present


def numeric_column(name: str, values: np.ndarray, how: str = "declared numeric") -> np.ndarray:
    numbers, bad = as_float(values)
    if bad.any():
        rows = np.flatnonzero(bad)
        raise DataError(
            f"column {name!r} is {how} but holds {len(rows)} non-numeric value(s), e.g. "
            f"{str(values[rows[0]]).strip()!r} in data row {rows[0] + 1}; fix the value(s), write "
            f"them as an empty cell to mark them missing, or declare categorical=[{name!r}]"
        )
    if np.isinf(numbers).any():
        raise DataError(f"column {name!r} holds infinite values; replace them or mark missing")
    return numbers


def categorical_column(values: np.ndarray) -> np.ndarray:
    """Object array of category strings, None where missing."""
    if not is_text(values):
        numbers = values.astype(np.float64)
        out = np.array(
            [
                None if v != v else (str(int(v)) if float(v).is_integer() else str(v))
                for v in numbers
            ],
            dtype=object,
        )
        return out
    text, missing = text_cells(values)
    text[missing] = None
    return text


def missing_mask(values: np.ndarray) -> np.ndarray:
    if values.dtype == object:
        return np.array([v is None for v in values], dtype=bool)
    return np.isnan(values)


# ---------------------------------------------------------------------------------------------
# Preprocessing, fitted on the training rows only.


def _quantile_normal(x: np.ndarray, quantiles: np.ndarray) -> np.ndarray:
    """Map values to a standard normal through the training quantiles (as scikit-learn's
    ``QuantileTransformer(output_distribution="normal")``): interpolate the quantile level,
    averaging the forward and backward interpolation so that tied quantiles (a column that is
    mostly 0) map to the middle of their range, clip to [1e-7, 1 - 1e-7], then the normal
    inverse CDF."""
    from scipy.special import ndtri

    levels = np.linspace(0.0, 1.0, len(quantiles))
    forward = np.interp(x, quantiles, levels)
    backward = -np.interp(-x, -quantiles[::-1], -levels[::-1])
    return ndtri(np.clip(0.5 * (forward + backward), 1e-7, 1.0 - 1e-7))


class TablePreprocessor:
    """Column typing, imputation, scaling and category codes, fitted on training rows.

    ``transform`` returns ``float32 [N, F]``: the numeric columns (missing -> the training
    median, then quantile-normal or standard scaling) followed by the categorical codes (the
    training categories sorted, coded 1..K; 0 = missing or unseen). ``to_dict`` / ``from_dict``
    make it JSON-ready for ``EncoderMeta.preprocessing``.
    """

    def __init__(
        self, numeric: Sequence[str], categorical: Sequence[str], scaling: str = "quantile"
    ) -> None:
        if scaling not in SCALINGS:
            raise ConfigError(f"scaling must be one of {', '.join(SCALINGS)}, got {scaling!r}")
        self.numeric, self.categorical, self.scaling = list(numeric), list(categorical), scaling
        self.medians: list[float] = []
        self.quantiles: list[list[float]] = []
        self.mean: list[float] = []
        self.std: list[float] = []
        self.vocabularies: list[list[str]] = []

    @property
    def cardinalities(self) -> list[int]:
        """Codes per categorical column, including the reserved 0."""
        return [len(v) + 1 for v in self.vocabularies]

    declared: frozenset[str] = frozenset()  # numeric columns the user named (for messages)

    def _how(self, name: str) -> str:
        if name in self.declared:
            return "declared numeric"
        return "numeric (its other values are numbers)"

    @property
    def columns(self) -> list[str]:
        return self.numeric + self.categorical

    def parse(self, source: Any) -> Columns:
        """Typed columns of ``source``: numerics as float64 (NaN = missing), categories as
        strings (None = missing). Missing feature columns raise a DataError."""
        columns = source if isinstance(source, dict) else read_columns(source)
        require_columns(columns, self.columns, "feature")
        typed = {n: numeric_column(n, columns[n], self._how(n)) for n in self.numeric}
        typed.update({n: categorical_column(columns[n]) for n in self.categorical})
        return typed

    def fit(self, source: Any) -> TablePreprocessor:
        typed = self.parse(source)
        self.medians, self.quantiles, self.mean, self.std = [], [], [], []
        for name in self.numeric:
            values = typed[name][~np.isnan(typed[name])]
            if len(values) == 0:
                raise DataError(all_missing_message(name, len(typed[name])))
            self.medians.append(float(np.median(values)))
            levels = np.linspace(0.0, 1.0, min(MAX_QUANTILES, len(values)))
            self.quantiles.append([float(q) for q in np.quantile(values, levels)])
            std = float(values.std())
            self.mean.append(float(values.mean()))
            self.std.append(std if std > 1e-12 else 1.0)
        self.vocabularies = []
        for name in self.categorical:
            present = [v for v in typed[name] if v is not None]
            if not present:
                raise DataError(all_missing_message(name, len(typed[name])))
            self.vocabularies.append(sorted(set(present)))
        return self

    def transform(self, source: Any) -> np.ndarray:
        typed = self.parse(source)
        n = len(next(iter(typed.values()))) if typed else 0
        out = np.empty((n, len(self.columns)), dtype=np.float32)
        for j, name in enumerate(self.numeric):
            x = np.where(np.isnan(typed[name]), self.medians[j], typed[name])
            if self.scaling == "quantile":
                out[:, j] = _quantile_normal(x, np.asarray(self.quantiles[j]))
            else:
                out[:, j] = (x - self.mean[j]) / self.std[j]
        for k, name in enumerate(self.categorical):
            codes = {category: code + 1 for code, category in enumerate(self.vocabularies[k])}
            out[:, len(self.numeric) + k] = [codes.get(v, 0) for v in typed[name]]
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "table",
            "version": 1,
            "numeric": list(self.numeric),
            "categorical": list(self.categorical),
            "scaling": self.scaling,
            "medians": list(self.medians),
            "quantiles": [list(q) for q in self.quantiles],
            "mean": list(self.mean),
            "std": list(self.std),
            "vocabularies": [list(v) for v in self.vocabularies],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TablePreprocessor:
        try:
            if data.get("kind") != "table":
                raise KeyError("kind")
            out = cls(data["numeric"], data["categorical"], data["scaling"])
            out.medians = [float(v) for v in data["medians"]]
            out.quantiles = [[float(v) for v in q] for q in data["quantiles"]]
            out.mean = [float(v) for v in data["mean"]]
            out.std = [float(v) for v in data["std"]]
            out.vocabularies = [[str(v) for v in vocab] for vocab in data["vocabularies"]]
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise CheckpointError(
                f"table preprocessing metadata is incomplete or malformed ({error!r}); "
                "re-export the encoder"
            ) from error
        if len(out.medians) != len(out.numeric) or len(out.vocabularies) != len(out.categorical):
            raise CheckpointError("table preprocessing metadata has mismatched column counts")
        return out


def all_missing_message(name: str, count: int) -> str:
    return (
        f"column {name!r} has no values in the training rows (all {count} missing); drop the "
        "column or fill it"
    )


def require_columns(columns: Mapping[str, Any], names: Sequence[str], what: str) -> None:
    for name in names:
        if name not in columns:
            close = difflib.get_close_matches(str(name), list(columns), n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise DataError(
                f"{what} column {name!r} is not in the table; {hint}the columns are: "
                f"{', '.join(columns)}"
            )
