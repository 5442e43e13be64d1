"""``labelless report``: rebuild a run's ``report.html`` by re-embedding its data; and the
report's inputs at the end of a run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from labelless.data import Dataset
from labelless.encoders import is_run_dir
from labelless.errors import ConfigError
from labelless.modalities import modality_of
from labelless.verbs.rundata import eval_split, load_run_config, load_splits

# Training rows embedded for the report's map when a run has no eval split.
MAP_ROWS = 10_000


def report_inputs(config, train: Dataset, eval_data: Dataset | None, train_z, test_z):
    """Keyword arguments of ``write_report`` for a run: test embeddings and labels, the kNN
    predictions (the run's k and temperature) and the modality's extras (``Modality.
    report_inputs``: a retrieval grid for images)."""
    from labelless.evaluate import knn_predict

    if eval_data is None or test_z is None:
        return {}
    inputs: dict[str, Any] = {
        "embeddings": test_z,
        "labels": eval_data.labels,
        "class_names": eval_data.meta.get("class_names"),
    }
    if train_z is None:
        return inputs
    if train.has_labels and eval_data.has_labels:
        inputs["predictions"] = knn_predict(
            train_z,
            torch.as_tensor(train.labels),
            test_z,
            k=config.monitor.knn_k or modality_of(train).knn_k,
            temperature=config.monitor.knn_temperature,
        ).cpu()
    if train.modality == eval_data.modality:
        modality = modality_of(train)
        inputs.update(modality.report_inputs(train, eval_data, train_z, test_z, config.seed))
    return inputs


def rebuild_report(run_dir: str | Path, *, map_method: str = "auto") -> Path:
    """Re-embed the run's train and eval data with its exported encoder and rebuild
    ``report.html`` (the data and k / temperature are the ones named in ``config.yaml``)."""
    from labelless.backbones import load_encoder
    from labelless.evaluate import embed
    from labelless.report import write_report
    from labelless.report.plots import MAP_METHODS

    run_dir = Path(run_dir)
    if not is_run_dir(run_dir):
        raise ConfigError(
            f"{str(run_dir)!r} is not a run directory (no config.yaml); pass the --out folder "
            "of a `labelless pretrain` run"
        )
    if map_method not in MAP_METHODS:
        raise ConfigError(f"unknown --map {map_method!r}; choose one of {', '.join(MAP_METHODS)}")
    config = load_run_config(run_dir)
    encoder = load_encoder(run_dir)
    splits = load_splits(config)
    train, eval_data = splits.train, eval_split(config.data, splits)
    test_z = embed(encoder, eval_data.samples) if eval_data is not None else None
    train_z = embed(encoder, train.samples) if eval_data is not None else None
    inputs = report_inputs(config, train, eval_data, train_z, test_z)
    if not inputs:  # no eval split: map a sample of the training embeddings
        inputs = {"embeddings": embed(encoder, train.sample_rows(MAP_ROWS))}
    return write_report(run_dir, map_method=map_method, **inputs)
