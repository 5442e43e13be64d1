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
import gzip
import inspect
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from labelless.data import register_file_loader
from labelless.data.builtin import BuiltinDataset, register_builtin
from labelless.data.dataset import UNLABELLED, Dataset, DataSplits
from labelless.data.paths import data_root
from labelless.data.table_columns import (
    SCALINGS,
    Columns,
    TablePreprocessor,
    as_float,
    categorical_column,
    looks_numeric,
    missing_mask,
    numeric_column,
    read_columns,
    require_columns,
)
from labelless.errors import ConfigError, DataError

MISSING_POLICIES = ("report", "impute", "reject")
TASKS = ("auto", "classification", "regression")
MAX_CLASSES_FOR_AUTO = 20


# ---------------------------------------------------------------------------------------------
# load_table


def _feature_types(
    columns: Columns, features: list[str], numeric: Sequence[str], categorical: Sequence[str]
) -> tuple[list[str], list[str]]:
    both = sorted(set(numeric) & set(categorical))
    if both:
        raise ConfigError(f"columns {both} are declared both numeric and categorical; pick one")
    num = [
        n for n in features if n in numeric or (n not in categorical and looks_numeric(columns[n]))
    ]
    return num, [n for n in features if n not in num]


def _missing_report(typed: Columns, policy: str, split: str) -> dict[str, int]:
    counts = {name: int(missing_mask(values).sum()) for name, values in typed.items()}
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
    if not looks_numeric(values):
        return "classification"
    numbers = as_float(values)[0]
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
            numeric_column("target", values, "a regression target").astype(np.float32),
            None,
        )
    strings = categorical_column(values)
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
        stratify = categorical_column(columns[stratify_by]).astype(str)
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
        require_columns(train, [target], "target")
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
    require_columns(train, [*([target] if target else []), *numeric, *categorical], "named")
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


def load_table_file(path: str | Path, **options: Any) -> DataSplits:
    """The file loader behind ``load_dataset("table.csv", target=...)``: ``load_table``."""
    return load_table(path, **options)


register_file_loader(
    ".csv",
    ".csv.gz",
    ".parquet",
    options=[name for name in inspect.signature(load_table).parameters if name != "source"],
)(load_table_file)


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
        modality="tabular",
    ),
    BuiltinDataset(
        "california_housing",
        "California housing, 20,640 rows (80/20 split), 9 numeric + 1 categorical, regression",
        load_california_housing,
        ("california_housing/housing.csv.gz",),
        modality="tabular",
    ),
    BuiltinDataset(
        "covertype",
        "Covertype 100k sample (80/20 split), 10 numeric + 2 categorical, 7 classes",
        load_covertype,
        ("covertype_sample/covertype_100k.csv.gz",),
        modality="tabular",
    ),
):
    register_builtin(_builtin)
