"""Data: the Dataset container, built-in datasets, folders and arrays."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from labelless.data.arrays import from_arrays
from labelless.data.builtin import BUILTINS, BuiltinDataset, register_builtin
from labelless.data.checks import check_splits, warn_if_batch_exceeds_data
from labelless.data.dataset import UNLABELLED, Dataset, DataSplits, channel_stats
from labelless.data.folder import image_folder
from labelless.data.paths import cache_dir, data_root
from labelless.errors import ConfigError, DataError, did_you_mean, unknown_name

__all__ = [
    "BUILTINS",
    "UNLABELLED",
    "BuiltinDataset",
    "DataSplits",
    "Dataset",
    "cache_dir",
    "channel_stats",
    "data_root",
    "from_arrays",
    "image_folder",
    "load_dataset",
    "register_builtin",
    "register_file_loader",
    "warn_if_batch_exceeds_data",
]

# File suffix (lower case, e.g. ".csv.gz") -> loader(path, **options) -> DataSplits, added by
# the modality modules (data/tabular.py, data/timeseries.py) when they are imported below.
FILE_LOADERS: dict[str, Callable[..., DataSplits]] = {}
# File suffix -> the option names its loader takes (None: no options).
FILE_LOADER_OPTIONS: dict[str, tuple[str, ...]] = {}


def register_file_loader(
    *suffixes: str, options: list[str] | tuple[str, ...] = ()
) -> Callable[[Callable[..., DataSplits]], Callable[..., DataSplits]]:
    """Route files whose name ends with one of ``suffixes`` to the decorated loader, which takes
    the keyword ``options`` (``data.target`` and ``data.options``); others are a ConfigError."""

    def add(loader: Callable[..., DataSplits]) -> Callable[..., DataSplits]:
        for suffix in suffixes:
            if suffix.lower() in FILE_LOADERS:
                raise ValueError(f"file suffix {suffix!r} has two loaders")
            FILE_LOADERS[suffix.lower()] = loader
            FILE_LOADER_OPTIONS[suffix.lower()] = tuple(options)
        return loader

    return add


def _check_options(path: Path, suffix: str, options: dict[str, Any]) -> None:
    """Options the loader of ``suffix`` files does not take: a ConfigError with a did-you-mean."""
    known = FILE_LOADER_OPTIONS.get(suffix, ())
    for name in sorted(options):
        if name in known:
            continue
        hint = did_you_mean(name, known)
        valid = f"; {suffix} files take: {', '.join(known)}" if known else ""
        raise ConfigError(
            f"unknown data option {name!r} for {path.name!r}{hint}{valid}: fix or drop "
            f"data.options.{name}"
        )


def _check_builtin_options(builtin: BuiltinDataset, options: dict[str, Any]) -> None:
    for name in sorted(options):
        if name not in builtin.options:
            hint = did_you_mean(name, builtin.options)
            raise ConfigError(
                f"unknown data option {name!r} for {builtin.name!r}{hint}; it takes: "
                f"{', '.join(builtin.options)}: fix or drop data.options.{name}"
            )


def _no_options(source: str, options: dict[str, Any]) -> None:
    if options:
        raise ConfigError(
            f"loader options {sorted(options)} apply to data files (CSV, parquet, .ts), not to "
            f"{source!r}: drop them (the flags --target / --test-fraction, or the config keys "
            "data.target / data.options)"
        )


def _file_suffix(path: Path) -> str | None:
    name = path.name.lower()
    matches = [s for s in FILE_LOADERS if name.endswith(s)]
    return max(matches, key=len) if matches else None


def _file_loader(path: Path) -> Callable[..., DataSplits] | None:
    suffix = _file_suffix(path)
    return FILE_LOADERS[suffix] if suffix else None


def load_dataset(source: str | Path, *, load_size: int = 64, **options: Any) -> DataSplits:
    """Resolve a built-in name (``digits``, ``mnist``, ...) or a path to a folder of images.

    A folder gives a train split only (labels from class subfolders, else unlabelled). A file
    goes to the loader registered for its suffix (tables: ``.csv``, ``.csv.gz``, ``.parquet``;
    time series: see ``labelless.data.timeseries``), with ``options`` (e.g. ``target="income"``)
    passed to that loader. Fewer than 2 training samples is a DataError and tiny splits get a
    warning (``data.checks.check_splits``).
    """
    splits = _load(str(source), load_size, options)
    check_splits(splits, str(source))
    return splits


def _load(text: str, load_size: int, options: dict[str, Any]) -> DataSplits:
    if text.startswith("stream:"):  # a shard set (labelless convert), read whole
        from labelless.data.stream import read_stream

        _no_options(text, options)
        return read_stream(text)
    if text in BUILTINS:
        builtin = BUILTINS[text]
        if not builtin.options:
            _no_options(text, options)
            return builtin.loader()
        _check_builtin_options(builtin, options)
        return builtin.loader(**options)
    path = Path(text).expanduser()
    loader = _file_loader(path)
    if loader is not None and not path.is_dir():
        if not path.is_file():
            raise DataError(f"data file {text!r} not found; check the path")
        _check_options(path, _file_suffix(path), options)
        return loader(path, **options)
    if "/" in text or "\\" in text or Path(text).expanduser().exists():
        _no_options(text, options)
        return DataSplits(image_folder(text, load_size=load_size))
    raise unknown_name(
        "dataset",
        text,
        [*BUILTINS, "<path to an image folder>", *(f"<*{s} file>" for s in FILE_LOADERS)],
    )


from labelless.data import graph_dataset as graph_dataset  # noqa: E402  (registers graphs)
from labelless.data import tabular as tabular  # noqa: E402  (registers loaders)
from labelless.data import timeseries as timeseries  # noqa: E402  (registers loaders)

# isort: split
# last: the forecasting built-ins come after the UCR sets in the listing
from labelless.data import forecasting as forecasting  # noqa: E402  (registers built-ins)
