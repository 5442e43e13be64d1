"""What the evaluation verbs (evaluate, prune, finetune) share: the encoder they read, the
labelled data they score on, and the folder they write into.

Every verb checks its inputs (encoder, data, output folder) before computing, and writes its
files atomically (a temporary name, then a rename) only once everything succeeded.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from labelless.atomic import check_can_create, write_text_atomic
from labelless.data import Dataset, DataSplits, load_dataset
from labelless.encoders import Preprocessing, is_run_dir, load_any_encoder
from labelless.errors import CheckpointError, ConfigError, DataError
from labelless.modalities import modality_of
from labelless.runfiles import RunFiles


@dataclass
class Target:
    """Where a verb writes: a run directory (merged into) or a fresh output folder."""

    directory: Path
    is_run: bool

    @property
    def files(self) -> RunFiles:
        return RunFiles(self.directory)


def data_label(data: str | Path) -> str:
    """The dataset's short name: a built-in name, or a folder's last component."""
    return Path(str(data)).name or str(data)


def labelled_splits(data: str | Path, **options: Any) -> DataSplits:
    """Train and test splits with labels (or, for regression tables, targets); ``options`` go to
    the loader of a data file (e.g. ``target="label", test=0.25`` for a CSV)."""
    splits = load_dataset(data, **options)
    targets = splits.test is not None and splits.train.targets is not None
    if targets and splits.test.targets is not None:
        return splits
    if not splits.train.has_labels:
        raise DataError(
            f"{str(data)!r} has no labels, and this measures accuracy against labels: "
            f"{modality_of(splits.train).labels_hint}; or measure the encoder without labels "
            "(`labelless select RUN --measure rankme`)"
        )
    if splits.test is None:
        raise DataError(
            f"{str(data)!r} has no test split to score on: for a data file hold out a share "
            "with --test-fraction 0.2, or evaluate on a dataset with train and test splits "
            "(a built-in one such as digits)"
        )
    if not splits.test.has_labels:
        raise DataError(
            f"the test split of {str(data)!r} has no labels: give labelled test data (a CSV "
            "with the --target column filled in, a labelled image folder) or --test-fraction "
            "0.2 to hold out labelled rows of train"
        )
    return splits


def check_data_fits(model: nn.Module, train: Dataset, data: str | Path) -> None:
    """The data must be of the encoder's modality and shape (channels; a table's columns)."""
    modality = modality_of(model)
    if train.modality != modality.name:
        raise DataError(
            f"the encoder takes {modality.name} data but {str(data)!r} is {train.modality}: "
            "evaluate it on data of the kind it was trained on"
        )
    modality.check_data(model.meta, train, str(data))


def resolve_target(spec, out: str | Path | None, verb: str) -> Target:
    """The run directory when ``spec`` is one (and no ``out``), else ``out``, which must then be
    given. Checked before any work is done, after the encoder path itself."""
    from labelless.backbones.registry import TIMM_PREFIX

    text = str(spec)
    is_path = not isinstance(spec, nn.Module) and not text.startswith(TIMM_PREFIX)
    if is_path and not Path(text).exists():
        raise CheckpointError(
            f"{text!r} does not exist; pass a run directory, an encoder.safetensors (with "
            "encoder.json beside it) or timm:NAME --weights FILE"
        )
    if is_path:
        _check_encoder_path(Path(text))
    if out is not None:
        out = Path(out)
        if out.exists() and not out.is_dir():
            raise ConfigError(f"--out {str(out)!r} is a file; pass a folder for the results")
        check_can_create(out, "--out")
        return Target(out, is_run_dir(out))
    if not isinstance(spec, nn.Module) and is_run_dir(Path(str(spec))):
        return Target(Path(str(spec)), True)
    raise ConfigError(
        f"{verb} of {str(spec)!r} needs --out DIR to write its results into (only a run "
        "directory is written into in place)"
    )


def _check_encoder_path(path: Path) -> None:
    """``path`` must be a run directory, an encoder folder or an encoder file (.safetensors /
    encoder.json), else a CheckpointError naming what to pass instead."""
    from labelless.backbones.io import META_FILE, WEIGHTS_FILE

    if path.is_dir():
        if is_run_dir(path) or (path / WEIGHTS_FILE).is_file() or (path / META_FILE).is_file():
            return
        what = "folder"
    elif path.suffix in (".safetensors", ".json"):
        return
    else:
        what = "file"
    raise CheckpointError(
        f"{str(path)!r} is not a labelless run directory (no config.yaml, {WEIGHTS_FILE} or "
        f"{META_FILE}) nor an encoder file ({what}): pass the --out folder of a `labelless "
        f"pretrain` or `labelless semi` run, an {WEIGHTS_FILE} with {META_FILE} beside it, or "
        "timm:NAME --weights FILE"
    )


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object from ``path``; {} when absent. A corrupt file is an error, never lost."""
    if not path.is_file():
        return {}
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise ConfigError(
            f"cannot read {str(path)!r} ({error}); fix or remove it, then run again"
        ) from error
    if not isinstance(record, dict):
        raise ConfigError(f"{str(path)!r} is not a JSON object; fix or remove it")
    return record


def write_json(path: Path, record: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, json.dumps(record, indent=2, default=float) + "\n")
    return path


def check_verb_out(out: str | Path, record_file: str, verb: str, what: str) -> Path:
    """``out`` must be new, empty, or a folder an earlier ``labelless VERB`` wrote (its
    ``record_file`` says ``"labelless": verb``); else a ConfigError, nothing changed."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {str(out)!r} is a file; pass a folder for the {what}")
    ours = out.is_dir() and read_json(out / record_file).get("labelless") == verb
    if out.is_dir() and any(out.iterdir()) and not ours:
        raise ConfigError(
            f"--out {str(out)!r} holds files that `labelless {verb}` did not write; choose a new "
            "or empty folder (nothing was changed)"
        )
    check_can_create(out, "--out")
    return out


def same_encoder(record: dict[str, Any], source: dict[str, Any]) -> bool:
    theirs = (record.get("encoder") or {}).get("weights_sha256")
    return theirs is None or theirs == source.get("weights_sha256")


def load_for(spec, weights, train: Dataset, data) -> tuple[nn.Module, dict[str, Any]]:
    """The encoder ``spec`` names, checked against ``train``; and its source record."""
    if isinstance(spec, nn.Module):
        if getattr(spec, "meta", None) is None:
            raise ConfigError("the encoder module has no .meta; build it with create_backbone")
        model, source = spec, {"kind": "module", "name": type(spec).__name__}
    else:
        channels = modality_of(train).encoder_channels(train)
        model, source = load_any_encoder(spec, weights=weights, in_channels=channels)
    check_data_fits(model, train, data)
    return model, {**source, **model.meta.to_dict()}


def embed_with(model: nn.Module, images: np.ndarray, pre: Preprocessing) -> torch.Tensor:
    from labelless.evaluate import embed

    return embed(model, images, input_size=pre.input_size, mean=pre.mean, std=pre.std)


def knn_k_for(spec, model: nn.Module, k: int | None) -> int:
    """kNN's k for the encoder ``spec``: ``k`` when given, else the k its run used (the
    ``monitor.knn_k`` of the ``config.yaml`` of a run directory, or of the run folder holding
    an encoder file), so that one encoder gets one kNN number; else its modality's
    (``Modality.knn_k``)."""
    if k is not None:
        return k
    from labelless.backbones.registry import TIMM_PREFIX

    path = Path(str(spec))
    if not isinstance(spec, nn.Module) and not str(spec).startswith(TIMM_PREFIX) and path.exists():
        folder = path if path.is_dir() else path.parent
        if is_run_dir(folder):
            from labelless.config import load_yaml

            monitor = load_yaml(RunFiles(folder).config_file).get("monitor")
            recorded = monitor.get("knn_k") if isinstance(monitor, dict) else None
            if isinstance(recorded, int) and not isinstance(recorded, bool) and recorded > 0:
                return recorded
    return modality_of(model).knn_k


def default_data(spec, data: str | Path | None) -> str | Path:
    """``data`` or, for a run directory, the labelled data its config names."""
    if data is not None:
        return data
    from labelless.verbs.rundata import load_run_config

    if not isinstance(spec, nn.Module) and is_run_dir(Path(str(spec))):
        config = load_run_config(spec)
        return config.data.eval or config.data.name
    raise ConfigError("pass --data NAME: a labelled dataset with train and test splits")


def run_data_options(spec, data: str | Path) -> dict[str, Any]:
    """The ``data.options`` of ``spec``'s run when ``data`` is the data that run trained on (an
    encoder is scored on data loaded as it saw it: row-normalised graph features, a table's
    scaling); ``{}`` for anything else."""
    from labelless.verbs.rundata import load_run_config

    if isinstance(spec, nn.Module) or not is_run_dir(Path(str(spec))):
        return {}
    config = load_run_config(spec)
    return dict(config.data.options) if str(data) == config.data.name else {}
