"""Time series: numpy arrays, UCR/UEA ``.ts`` files and the bundled UCR/UEA npz sets; forecasting
CSV (ETT, Weather) is in ``labelless.data.forecasting``.

A time-series ``Dataset`` holds ``samples: float32 [N, C, T]``; a series shorter than T is padded
at the end with NaN and its true length is in ``meta["lengths"]`` (``int64 [N]``; also
recoverable from the padding with ``labelless.augment.timeseries.series_lengths``). Labels are
int64 class indices into ``meta["class_names"]``; regression sets carry ``targets`` (float32)
and no labels.

Built-ins (files under the data root, ``$LABELLESS_DATA``):

- ``ucr:<Name>`` for each bundled UCR/UEA set (``ucr_uea/<Name>.npz``, official train/test).
- ``etth1``, ``etth2``, ``ettm1``, ``ettm2``, ``weather``: see ``labelless.data.forecasting``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from labelless.data import register_file_loader
from labelless.data.builtin import BuiltinDataset, register_builtin
from labelless.data.dataset import Dataset, DataSplits
from labelless.data.paths import data_root
from labelless.errors import DataError

MODALITY = "timeseries"


# ---------------------------------------------------------------------------------------------
# Arrays


def _pad(series: Sequence[np.ndarray], channels: int, length: int) -> np.ndarray:
    out = np.full((len(series), channels, length), np.nan, dtype=np.float32)
    for index, values in enumerate(series):
        out[index, :, : values.shape[-1]] = values
    return out


def _as_series_array(x: Any) -> np.ndarray:
    """``[N, T]`` / ``[N, C, T]`` arrays, or a list of ``[T]`` / ``[C, T]`` arrays of different
    lengths (padded with NaN) -> float32 ``[N, C, T]``."""
    if isinstance(x, np.ndarray) and x.dtype != object:
        array = x
    else:
        try:
            items = [np.asarray(item, dtype=np.float64) for item in x]
        except (TypeError, ValueError) as error:
            raise DataError(
                f"time series must be numbers ({error}); convert the values to float first"
            ) from error
        if not items:
            raise DataError("no series given: pass at least one series")
        items = [item.reshape(1, -1) if item.ndim == 1 else item for item in items]
        if any(item.ndim != 2 for item in items) or len({i.shape[0] for i in items}) != 1:
            raise DataError(
                "each series must be [T] or [C, T] with the same channel count C; got shapes "
                f"{sorted({i.shape for i in items})[:4]}"
            )
        return _pad(items, items[0].shape[0], max(i.shape[1] for i in items))
    if not np.issubdtype(array.dtype, np.number) and array.dtype != bool:
        raise DataError(
            f"time series must be numbers, got dtype {array.dtype}; convert the values to float"
        )
    if array.ndim == 2:
        array = array[:, None, :]
    if array.ndim != 3:
        raise DataError(
            f"time series must be [N, T] (univariate) or [N, C, T] (channels first), got shape "
            f"{array.shape}"
        )
    return np.asarray(array, dtype=np.float32)


def _valid_lengths(samples: np.ndarray) -> np.ndarray:
    valid = ~np.isnan(samples).any(axis=1)  # [N, T]
    steps = np.arange(1, samples.shape[-1] + 1)
    return (valid * steps).max(axis=1).astype(np.int64)


def _check_values(samples: np.ndarray, name: str) -> None:
    if samples.size == 0 or samples.shape[-1] == 0:
        raise DataError(f"{name}: the series are empty (shape {samples.shape})")
    if np.isinf(samples).any():
        where = np.argwhere(np.isinf(samples))[0]
        raise DataError(
            f"{name}: series {where[0]} has an infinite value at channel {where[1]}, step "
            f"{where[2]}; replace it (NaN marks a missing value)"
        )
    empty = np.isnan(samples).all(axis=(1, 2))
    if empty.any():
        raise DataError(
            f"{name}: series {np.flatnonzero(empty)[:5].tolist()} are all NaN; drop them"
        )


def _encode_labels(y: Any, class_names: Sequence[str] | None) -> tuple[np.ndarray, list[str]]:
    y = np.asarray(y)
    if y.dtype.kind in "iub":
        labels = y.astype(np.int64)
        names = list(class_names) if class_names is not None else None
        if names is None:
            names = [str(i) for i in range(int(labels.max()) + 1 if labels.size else 0)]
        return labels, [str(n) for n in names]
    if y.dtype.kind == "f" and np.all(np.isnan(y) | (y == np.round(y))):
        return _encode_labels(np.where(np.isnan(y), -1, y).astype(np.int64), class_names)
    text = y.astype(str)
    names = list(class_names) if class_names is not None else sorted(set(text.tolist()))
    lookup = {str(n): i for i, n in enumerate(names)}
    unknown = sorted(set(text.tolist()) - set(lookup))
    if unknown:
        raise DataError(f"labels {unknown[:5]} are not in class_names {names[:10]}")
    return np.array([lookup[t] for t in text], dtype=np.int64), [str(n) for n in names]


def from_series(
    x: Any,
    y: Any = None,
    *,
    targets: Any = None,
    class_names: Sequence[str] | None = None,
    name: str = "series",
) -> Dataset:
    """A time-series ``Dataset`` from numpy: ``x`` is ``[N, T]``, ``[N, C, T]`` (NaN = padding or
    missing) or a list of ``[T]`` / ``[C, T]`` arrays of different lengths. ``y``: class labels
    (ints, -1 = unlabelled, or strings, mapped through ``class_names`` or their sorted set);
    ``targets``: float regression targets."""
    samples = _as_series_array(x)
    _check_values(samples, name)
    meta: dict[str, Any] = {"lengths": _valid_lengths(samples), "channels": samples.shape[1]}
    labels = None
    if y is not None:
        if len(np.asarray(y)) != len(samples):
            raise DataError(f"{name}: {len(samples)} series but {len(np.asarray(y))} labels")
        labels, meta["class_names"] = _encode_labels(y, class_names)
    return Dataset(samples, labels, MODALITY, name, meta, targets)


# ---------------------------------------------------------------------------------------------
# UCR/UEA .ts files (the sktime / aeon text format)


def _parse_values(text: str, where: str) -> np.ndarray:
    cells = [c.strip() for c in text.split(",")]
    try:
        return np.array([np.nan if c in ("?", "") else float(c) for c in cells], np.float64)
    except ValueError as error:
        raise DataError(f"{where}: {error}; every value must be a number or '?'") from error


def _header(lines: list[tuple[int, str]], path: Path) -> tuple[dict[str, list[str]], int]:
    header: dict[str, list[str]] = {}
    for position, (number, line) in enumerate(lines):
        if not line.startswith("@"):
            raise DataError(f"{path}:{number}: expected a @header line before @data, got data")
        key, *values = line[1:].split()
        key = key.lower()
        if key == "data":
            return header, position + 1
        header[key] = values
    raise DataError(f"{path}: no @data line; this is not a .ts file (see the sktime .ts format)")


def _flag(header: dict[str, list[str]], key: str) -> bool:
    values = header.get(key)
    return bool(values) and values[0].lower() == "true"


def _check_label(label: str, declared: Sequence[str], where: str, header_of: str) -> None:
    if declared and label not in declared:
        raise DataError(
            f"{where}: label {label!r} is not one of the labels the @classLabel line of "
            f"{header_of} declares ({' '.join(declared)}): fix the label, or add it to that "
            "@classLabel line"
        )


def read_ts(
    path: str | Path, declared: Sequence[str] | None = None, header_of: str | None = None
) -> tuple[np.ndarray, np.ndarray | None, dict[str, list[str]]]:
    """Parse a ``.ts`` file: ``(samples float32 [N, C, T] NaN-padded, raw labels (str or float
    array) or None, header)``. Univariate, multivariate (dimensions separated by ``:``),
    unequal length and ``?`` missing values; ``@timestamps true`` files are not supported.

    Class labels must be among those the ``@classLabel true ...`` line declares (when it lists
    any), or among ``declared`` (e.g. a TEST file checked against its TRAIN file's header, named
    ``header_of``): a DataError names the file, the line and the label otherwise."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as error:
        raise DataError(f"cannot read {str(path)!r}: {error}") from error
    lines = [
        (n, s.strip())
        for n, s in enumerate(text.splitlines(), 1)
        if s.strip() and not s.strip().startswith("#")
    ]
    header, start = _header(lines, path)
    if _flag(header, "timestamps"):
        raise DataError(f"{path}: @timestamps true is not supported; export without timestamps")
    labelled = _flag(header, "classlabel") or _flag(header, "targetlabel")
    if declared is None and _flag(header, "classlabel"):
        declared, header_of = header.get("classlabel", [])[1:], str(path)
    series, raw, channels = [], [], None
    for number, line in lines[start:]:
        parts = line.split(":")
        if labelled:
            if len(parts) < 2:
                raise DataError(f"{path}:{number}: no label after the last ':'")
            raw.append(parts.pop().strip())
            if _flag(header, "classlabel"):
                _check_label(raw[-1], declared or [], f"{path}:{number}", header_of or str(path))
        if channels is None:
            channels = len(parts)
        elif len(parts) != channels:
            raise DataError(
                f"{path}:{number}: {len(parts)} dimensions, earlier lines have {channels}; "
                "every series needs the same number of ':'-separated dimensions"
            )
        dims = [_parse_values(p, f"{path}:{number}") for p in parts]
        length = max(len(d) for d in dims)
        values = np.full((channels, length), np.nan)
        for index, d in enumerate(dims):
            values[index, : len(d)] = d
        series.append(values)
    if not series:
        raise DataError(f"{path}: no series after @data")
    samples = _pad(series, channels, max(s.shape[1] for s in series))
    _check_values(samples, str(path))
    if not labelled:
        return samples, None, header
    if _flag(header, "targetlabel"):
        try:
            return samples, np.array(raw, dtype=np.float32), header
        except ValueError as error:
            raise DataError(f"{path}: a regression target is not a number: {error}") from error
    return samples, np.array(raw), header


def _class_names(header: dict[str, list[str]], raw: Sequence[np.ndarray]) -> list[str]:
    declared = header.get("classlabel", [])[1:]
    names = declared or sorted(set(np.concatenate(raw).tolist()))
    try:  # numeric labels sort numerically, as in the bundled npz files
        return sorted(names, key=float)
    except ValueError:
        return list(names)


def _to_dataset(samples, raw, header, name: str, names: list[str] | None) -> Dataset:
    lengths = _valid_lengths(samples)
    meta: dict[str, Any] = {"lengths": lengths, "channels": samples.shape[1]}
    if raw is None:
        return Dataset(samples, None, MODALITY, name, meta)
    if raw.dtype.kind == "f":
        return Dataset(samples, None, MODALITY, name, meta, targets=raw)
    labels, meta["class_names"] = _encode_labels(raw, names)
    return Dataset(samples, labels, MODALITY, name, meta)


@register_file_loader(".ts")
def load_ts(path: str | Path, **options: Any) -> DataSplits:
    """A ``.ts`` file as a train split; a ``<Name>_TRAIN.ts`` finds ``<Name>_TEST.ts`` next to it
    as the test split. Both are padded to the same length and share the class names."""
    if options:
        raise DataError(f".ts files take no loader options, got {sorted(options)}")
    path = Path(path)
    samples, raw, header = read_ts(path)
    test_path = None
    if path.stem.upper().endswith("_TRAIN"):
        candidate = path.with_name(path.stem[: -len("_TRAIN")] + "_TEST" + path.suffix)
        test_path = candidate if candidate.is_file() else None
    stem = path.stem[: -len("_TRAIN")] if test_path else path.stem
    if test_path is None:
        names = _class_names(header, [raw]) if raw is not None and raw.dtype.kind != "f" else None
        return DataSplits(_to_dataset(samples, raw, header, stem, names))
    declared = header.get("classlabel", [])[1:] if _flag(header, "classlabel") else None
    test_samples, test_raw, _ = read_ts(test_path, declared or None, str(path))
    if samples.shape[1] != test_samples.shape[1]:
        raise DataError(f"{path} and {test_path} have different numbers of dimensions")
    length = max(samples.shape[-1], test_samples.shape[-1])
    samples, test_samples = (_pad(list(s), s.shape[1], length) for s in (samples, test_samples))
    names = None
    if raw is not None and raw.dtype.kind != "f":
        names = _class_names(header, [raw, test_raw])
    return DataSplits(
        _to_dataset(samples, raw, header, f"{stem}/train", names),
        _to_dataset(test_samples, test_raw, header, f"{stem}/test", names),
    )


# ---------------------------------------------------------------------------------------------
# The bundled UCR/UEA sets (ucr_uea/<Name>.npz under the data root)

UCR_SETS = {
    "ACSF1": "appliance power consumption, 1,460 steps, 10 classes",
    "ArrowHead": "arrow-head outlines, 251 steps, 3 classes",
    "BasicMotions": "accelerometer + gyroscope, 6 channels x 100 steps, 4 classes",
    "Coffee": "coffee spectrograms, 286 steps, 2 classes",
    "GunPoint": "hand motion, 150 steps, 2 classes",
    "ItalyPowerDemand": "daily power demand, 24 steps, 2 classes",
    "JapaneseVowels": "speech LPC, 12 channels x 7-29 steps (unequal), 9 classes",
    "OSULeaf": "leaf outlines, 427 steps, 6 classes",
    "PLAID": "appliance current, 100-1,344 steps (unequal), 11 classes",
    "PickupGestureWiimoteZ": "Wii remote gesture, 29-361 steps (unequal), 10 classes",
    "PigCVP": "pig central venous pressure, 2,000 steps, 52 classes",
    "Trace": "nuclear plant transients, 275 steps, 4 classes",
    "CardanoSentiment": "crypto price + sentiment, 2 channels x 24 steps, regression",
    "Covid3Month": "Covid deaths, 84 steps, regression",
    "Tecator": "meat spectra, 100 steps, fat-content regression",
}


def load_ucr(name: str) -> DataSplits:
    """A bundled UCR/UEA set (official train/test split) from ``<data root>/ucr_uea/<name>.npz``."""
    path = data_root() / "ucr_uea" / f"{name}.npz"
    if not path.is_file():
        raise DataError(
            f"UCR/UEA set {name!r} not found at {str(path)!r}: set LABELLESS_DATA to the folder "
            "holding ucr_uea/ (the shared offline data)"
        )
    with np.load(path) as d:
        names = [str(c) for c in d["class_names"]] if "class_names" in d.files else None
        splits = []
        for split in ("train", "test"):
            samples = np.asarray(d[f"X_{split}"], dtype=np.float32)
            y = d[f"y_{split}"]
            meta: dict[str, Any] = {
                "lengths": d[f"len_{split}"].astype(np.int64),
                "channels": samples.shape[1],
            }
            full = f"ucr:{name}/{split}"
            if names is None:
                splits.append(Dataset(samples, None, MODALITY, full, meta, targets=y))
            else:
                meta["class_names"] = names
                splits.append(Dataset(samples, y.astype(np.int64), MODALITY, full, meta))
    return DataSplits(*splits)


for _name, _description in UCR_SETS.items():
    register_builtin(
        BuiltinDataset(
            f"ucr:{_name}",
            f"UCR/UEA {_name}: {_description}",
            lambda n=_name: load_ucr(n),
            (f"ucr_uea/{_name}.npz",),
            modality="timeseries",
        )
    )
