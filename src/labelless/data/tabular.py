"""Tables: CSV (``.csv``, ``.csv.gz``), parquet, pandas DataFrames and dicts of columns.

``load_table`` reads a table, types its columns (numeric or categorical, inferred unless named),
handles missing values by an explicit policy and fits a ``TablePreprocessor`` on the training
rows only: numerics are quantile-normalised (or standardised), categories become integer codes
with 0 reserved for missing / unseen values. The rows become ``float32 [N, F]``, numerics first,
then the categorical codes. The fitted preprocessor is ``meta["preprocessing"]`` (JSON-ready), so
an exported encoder prepares new rows exactly as it was trained.

pandas is optional: CSV is parsed with the ``csv`` module; parquet needs pyarrow.
"""

from __future__ import annotations

import contextlib
import csv
import difflib
import gzip
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from labelless.data import register_file_loader
from labelless.data.builtin import BuiltinDataset, register_builtin
from labelless.data.dataset import UNLABELLED, Dataset, DataSplits
from labelless.data.paths import data_root
from labelless.errors import CheckpointError, ConfigError, DataError

# Cell texts read as missing (compared after stripping spaces, case-insensitively).
MISSING_TOKENS = ("", "?", "na", "n/a", "nan", "null", "none")
MISSING_POLICIES = ("report", "impute", "reject")
SCALINGS = ("quantile", "standard")
TASKS = ("auto", "classification", "regression")
MAX_QUANTILES = 1000
# A text column whose non-missing cells are at least this share numbers is numeric: the few
# other cells are typos that raise a DataError, not a reason to treat the column as categories.
NUMERIC_SHARE = 0.99
MAX_CLASSES_FOR_AUTO = 20
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


def _is_text(values: np.ndarray) -> bool:
    return values.dtype.kind not in "biuf"


def _text(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
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


def _as_float(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(float64 values with NaN where missing, mask of cells that are not numbers)."""
    if not _is_text(values):
        return values.astype(np.float64), np.zeros(len(values), dtype=bool)
    text, missing = _text(values)
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


def _looks_numeric(values: np.ndarray) -> bool:
    if not _is_text(values):
        return True
    numbers, bad = _as_float(values)
    present = (~np.isnan(numbers)).sum() + bad.sum()
    return present > 0 and bad.sum() <= (1.0 - NUMERIC_SHARE) * present


def _numeric_column(name: str, values: np.ndarray, how: str = "declared numeric") -> np.ndarray:
    numbers, bad = _as_float(values)
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


def _categorical_column(values: np.ndarray) -> np.ndarray:
    """Object array of category strings, None where missing."""
    if not _is_text(values):
        numbers = values.astype(np.float64)
        out = np.array(
            [
                None if v != v else (str(int(v)) if float(v).is_integer() else str(v))
                for v in numbers
            ],
            dtype=object,
        )
        return out
    text, missing = _text(values)
    text[missing] = None
    return text


def _missing(values: np.ndarray) -> np.ndarray:
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
        _require_columns(columns, self.columns, "feature")
        typed = {n: _numeric_column(n, columns[n], self._how(n)) for n in self.numeric}
        typed.update({n: _categorical_column(columns[n]) for n in self.categorical})
        return typed

    def fit(self, source: Any) -> TablePreprocessor:
        typed = self.parse(source)
        self.medians, self.quantiles, self.mean, self.std = [], [], [], []
        for name in self.numeric:
            values = typed[name][~np.isnan(typed[name])]
            if len(values) == 0:
                raise DataError(_all_missing(name, len(typed[name])))
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
                raise DataError(_all_missing(name, len(typed[name])))
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


# ---------------------------------------------------------------------------------------------
# load_table


def _all_missing(name: str, count: int) -> str:
    return (
        f"column {name!r} has no values in the training rows (all {count} missing); drop the "
        "column or fill it"
    )


def _require_columns(columns: Mapping[str, Any], names: Sequence[str], what: str) -> None:
    for name in names:
        if name not in columns:
            close = difflib.get_close_matches(str(name), list(columns), n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise DataError(
                f"{what} column {name!r} is not in the table; {hint}the columns are: "
                f"{', '.join(columns)}"
            )


def _feature_types(
    columns: Columns, features: list[str], numeric: Sequence[str], categorical: Sequence[str]
) -> tuple[list[str], list[str]]:
    both = sorted(set(numeric) & set(categorical))
    if both:
        raise ConfigError(f"columns {both} are declared both numeric and categorical; pick one")
    num = [
        n for n in features if n in numeric or (n not in categorical and _looks_numeric(columns[n]))
    ]
    return num, [n for n in features if n not in num]


def _missing_report(typed: Columns, policy: str, split: str) -> dict[str, int]:
    counts = {name: int(_missing(values).sum()) for name, values in typed.items()}
    counts = {name: c for name, c in counts.items() if c}
    if counts and policy == "reject":
        listing = ", ".join(f"{name!r}: {c}" for name, c in counts.items())
        raise DataError(
            f"the {split} rows have missing values ({listing}); fill them, or pass "
            "missing='impute' (training median / a 'missing' category)"
        )
    return counts


def _infer_task(values: np.ndarray) -> str:
    """Text, or integers with at most 20 distinct values: classification; else regression."""
    if not _looks_numeric(values):
        return "classification"
    numbers = _as_float(values)[0]
    present = numbers[~np.isnan(numbers)]
    integral = bool(np.all(present == np.round(present)))
    few = len(np.unique(present)) <= MAX_CLASSES_FOR_AUTO
    return "classification" if integral and few else "regression"


def _target(
    values: np.ndarray, task: str, class_names: list[str] | None
) -> tuple[str, np.ndarray | None, np.ndarray | None, list[str] | None]:
    """(task, labels, targets, class_names) of a target column."""
    if task == "auto":
        task = _infer_task(values)
    if task == "regression":
        return (
            task,
            None,
            _numeric_column("target", values, "a regression target").astype(np.float32),
            None,
        )
    strings = _categorical_column(values)
    if class_names is None:
        present = sorted({v for v in strings if v is not None})
        with contextlib.suppress(ValueError):
            present.sort(key=float)
        class_names = present
    codes = {name: i for i, name in enumerate(class_names)}
    unseen = sorted({v for v in strings if v is not None and v not in codes})
    if unseen:
        raise DataError(
            f"the test rows have classes {unseen[:5]} that the training rows lack; the training "
            f"classes are {class_names[:20]}"
        )
    labels = np.array([UNLABELLED if v is None else codes[v] for v in strings], dtype=np.int64)
    return task, labels, None, class_names


def _split(columns: Columns, fraction: float, stratify_by: str | None, seed: int = 0):
    """A seeded random split of the rows, stratified by the column ``stratify_by`` if given."""
    from sklearn.model_selection import train_test_split

    if not 0.0 < fraction < 1.0:
        raise ConfigError(f"test as a fraction must be in (0, 1), got {fraction}")
    index = np.arange(len(next(iter(columns.values()))))
    stratify = None
    if stratify_by is not None:
        stratify = _categorical_column(columns[stratify_by]).astype(str)
    try:
        train, test = train_test_split(
            index, test_size=fraction, random_state=seed, stratify=stratify
        )
    except ValueError:  # a class with one member cannot be stratified
        train, test = train_test_split(index, test_size=fraction, random_state=seed)
    train, test = np.sort(train), np.sort(test)
    return {k: v[train] for k, v in columns.items()}, {k: v[test] for k, v in columns.items()}


def _source_name(source: Any) -> str:
    if isinstance(source, (str, Path)):
        name = Path(source).name
        for suffix in (".csv.gz", ".csv", ".parquet"):
            if name.lower().endswith(suffix):
                return name[: -len(suffix)]
        return name
    return "dataframe" if hasattr(source, "columns") else "table"


def load_table(
    source: Any,
    *,
    target: str | None = None,
    test: Any = None,
    task: str = "auto",
    numeric: Sequence[str] | None = None,
    categorical: Sequence[str] | None = None,
    missing: str = "report",
    scaling: str = "quantile",
    name: str | None = None,
) -> DataSplits:
    """Load a table as ``DataSplits`` of ``float32 [N, F]`` rows (numerics, then category codes).

    Args:
        source: a ``.csv`` / ``.csv.gz`` (header row; ``""``, ``?``, ``NA``, ``N/A``, ``nan``,
            ``null``, ``none`` read as missing) or ``.parquet`` path, a pandas DataFrame or a
            dict of column name -> array.
        target: the label / regression target column; ``None``: unlabelled rows. Rows with a
            missing target are unlabelled (label -1, or NaN target for regression).
        test: a held-out table of the same kinds, or a fraction in (0, 1) split off ``source``
            (seed 0; stratified by the target for classification), or ``None``.
        task: ``"classification"``, ``"regression"`` or ``"auto"`` (text targets and integer
            targets with at most 20 values are classes, other numbers regression).
        numeric, categorical: columns whose type you fix; the others are inferred (numbers ->
            numeric, text -> categorical; a column of numbers with under 1% other text is
            numeric, and those cells raise a DataError).
        missing: ``"report"`` (default: impute and warn with the counts), ``"impute"`` (the
            same without the warning) or ``"reject"`` (DataError naming columns and counts).
            Imputation uses the training median for numerics and code 0 for categories; the
            counts are in ``meta["missing"]``.
        scaling: ``"quantile"`` (to a standard normal through the training quantiles) or
            ``"standard"`` (training mean / std).
        name: the dataset name (default: the file name).

    Everything is fitted on the training rows only. ``meta`` holds ``numeric``, ``categorical``,
    ``cardinalities`` (codes per categorical column, including the reserved 0),
    ``preprocessing`` (``TablePreprocessor.to_dict()``), ``task``, ``class_names``
    (classification), ``missing`` and ``target``.
    """
    for option, value, choices in (
        ("task", task, TASKS),
        ("missing", missing, MISSING_POLICIES),
        ("scaling", scaling, SCALINGS),
    ):
        if value not in choices:
            raise ConfigError(f"{option} must be one of {', '.join(choices)}, got {value!r}")
    train = read_columns(source)
    if target is not None:
        _require_columns(train, [target], "target")
    if isinstance(test, float):
        classes = target is not None and task != "regression"
        classes = classes and (
            task == "classification" or _infer_task(train[target]) != "regression"
        )
        train, test_columns = _split(train, test, target if classes else None)
    else:
        test_columns = None if test is None else read_columns(test)
    return build_splits(
        train,
        test_columns,
        target=target,
        task=task,
        numeric=numeric or (),
        categorical=categorical or (),
        missing=missing,
        scaling=scaling,
        name=name or _source_name(source),
    )


def build_splits(
    train: Columns,
    test: Columns | None,
    *,
    target: str | None,
    task: str,
    numeric: Sequence[str],
    categorical: Sequence[str],
    missing: str,
    scaling: str,
    name: str,
) -> DataSplits:
    """``load_table`` on columns already read (``read_columns``)."""
    _require_columns(train, [*([target] if target else []), *numeric, *categorical], "named")
    features = [n for n in train if n != target]
    if not features:
        raise DataError("the table has no feature columns besides the target")
    num, cat = _feature_types(train, features, numeric, categorical)
    preprocessor = TablePreprocessor(num, cat, scaling)
    preprocessor.declared = frozenset(numeric)
    typed_train = preprocessor.parse(train)
    report = {"policy": missing, "train": _missing_report(typed_train, missing, "training")}
    preprocessor.fit(typed_train)
    meta: dict[str, Any] = {
        "numeric": num,
        "categorical": cat,
        "cardinalities": preprocessor.cardinalities,
        "preprocessing": preprocessor.to_dict(),
        "task": None,
        "target": target,
        "missing": report,
    }
    labels = targets = None
    if target is not None:
        task, labels, targets, class_names = _target(train[target], task, None)
        meta["task"] = task
        if class_names is not None:
            meta["class_names"] = class_names
    datasets = [
        Dataset(
            preprocessor.transform(typed_train), labels, "tabular", f"{name}/train", meta, targets
        )
    ]
    if test is not None:
        typed_test = preprocessor.parse(test)
        report["test"] = _missing_report(typed_test, missing, "test")
        test_labels = test_targets = None
        if target is not None and target in test:
            _, test_labels, test_targets, _ = _target(
                test[target], meta["task"], meta.get("class_names")
            )
        datasets.append(
            Dataset(
                preprocessor.transform(typed_test),
                test_labels,
                "tabular",
                f"{name}/test",
                dict(meta),
                test_targets,
            )
        )
    if missing == "report" and (report["train"] or report.get("test")):
        warnings.warn(
            f"{name}: imputed missing values (numeric: training median, categorical: code 0) "
            f"in training rows {report['train']} and test rows {report.get('test', {})}; pass "
            "missing='impute' to silence this or missing='reject' to refuse them",
            stacklevel=3,
        )
    return DataSplits(*datasets)


@register_file_loader(".csv", ".csv.gz", ".parquet")
def load_table_file(path: str | Path, **options: Any) -> DataSplits:
    """The file loader behind ``load_dataset("table.csv", target=...)``: ``load_table``."""
    return load_table(path, **options)


# ---------------------------------------------------------------------------------------------
# Built-in tables from the data root.

ADULT_COLUMNS = [
    "age",
    "workclass",
    "fnlwgt",
    "education",
    "education_num",
    "marital_status",
    "occupation",
    "relationship",
    "race",
    "sex",
    "capital_gain",
    "capital_loss",
    "hours_per_week",
    "native_country",
    "income",
]


def _adult_file(path: Path) -> Columns:
    with gzip.open(path, "rt") as handle:
        rows = [[v.strip() for v in r] for r in csv.reader(handle) if len(r) == len(ADULT_COLUMNS)]
    table = np.array(rows, dtype=object)
    columns = {name: table[:, j] for j, name in enumerate(ADULT_COLUMNS)}
    columns["income"] = np.array([v.rstrip(".") for v in columns["income"]], dtype=object)
    return columns


def _require_files(name: str, *paths: Path) -> None:
    for path in paths:
        if not path.is_file():
            raise DataError(
                f"built-in table {name!r} needs {str(path)!r}; set LABELLESS_DATA to the folder "
                "that holds the offline datasets"
            )


def load_adult() -> DataSplits:
    """UCI Adult: the official 32,561 train and 16,281 test rows, target ``income``."""
    folder = data_root() / "adult"
    train, test = folder / "adult.data.gz", folder / "adult.test.gz"
    _require_files("adult", train, test)
    return build_splits(
        _adult_file(train),
        _adult_file(test),
        target="income",
        task="classification",
        numeric=(),
        categorical=(),
        missing="impute",
        scaling="quantile",
        name="adult",
    )


def load_california_housing() -> DataSplits:
    """California housing (Géron's CSV): regression of ``median_house_value`` in dollars,
    seeded (0) random 80/20 split; 207 missing ``total_bedrooms`` imputed by the median."""
    path = data_root() / "california_housing" / "housing.csv.gz"
    _require_files("california_housing", path)
    train, test = _split(read_columns(path), 0.2, None)
    return build_splits(
        train,
        test,
        target="median_house_value",
        task="regression",
        numeric=(),
        categorical=(),
        missing="impute",
        scaling="quantile",
        name="california_housing",
    )


def load_covertype() -> DataSplits:
    """The 100,000-row Covertype sample, 7 classes, stratified seeded (0) 80/20 split;
    ``Wilderness_Area`` and ``Soil_Type`` are categorical."""
    path = data_root() / "covertype_sample" / "covertype_100k.csv.gz"
    _require_files("covertype", path)
    train, test = _split(read_columns(path), 0.2, "Cover_Type")
    return build_splits(
        train,
        test,
        target="Cover_Type",
        task="classification",
        numeric=(),
        categorical=("Wilderness_Area", "Soil_Type"),
        missing="impute",
        scaling="quantile",
        name="covertype",
    )


for _builtin in (
    BuiltinDataset(
        "adult",
        "UCI Adult income, 32,561 train + 16,281 test rows, 6 numeric + 8 categorical, 2 classes",
        load_adult,
        ("adult/adult.data.gz", "adult/adult.test.gz"),
    ),
    BuiltinDataset(
        "california_housing",
        "California housing, 20,640 rows (80/20 split), 9 numeric + 1 categorical, regression",
        load_california_housing,
        ("california_housing/housing.csv.gz",),
    ),
    BuiltinDataset(
        "covertype",
        "Covertype 100k sample (80/20 split), 10 numeric + 2 categorical, 7 classes",
        load_covertype,
        ("covertype_sample/covertype_100k.csv.gz",),
    ),
):
    register_builtin(_builtin)
