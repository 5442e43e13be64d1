"""The data of a run (``pretrain``, ``semi``): its splits, its eval split and its training
loader, read from the run's config."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from labelless.config import DataConfig, RunConfig, build_config, load_yaml
from labelless.data import Dataset, DataSplits, load_dataset
from labelless.runfiles import RunFiles


def data_options(data: DataConfig) -> dict[str, Any]:
    """Keyword arguments of ``load_dataset`` from the data section: the image folder load size,
    and for data files the target column and the loader's own options."""
    options: dict[str, Any] = {"load_size": data.load_size, **data.options}
    if data.target is not None:
        options["target"] = data.target
    return options


def eval_split(data: DataConfig, splits: DataSplits) -> Dataset | None:
    """The labelled data scored at the end: ``data.eval`` (its test split, else its train split)
    or the data's own test split."""
    if data.eval:
        other = load_dataset(data.eval, **data_options(data))
        return other.test or other.train
    return splits.test


def is_lazy_folder(config: RunConfig) -> bool:
    from labelless.data import BUILTINS

    return config.data.lazy and config.data.name not in BUILTINS


def load_splits(config: RunConfig) -> DataSplits:
    """The data; a lazy folder or a shard set (``stream:``) gives only ``data.sample_size``
    samples here (statistics, monitors, final metrics) and streams the rest through
    ``train_loader``."""
    from labelless.data import image_folder
    from labelless.data.stream import is_stream, read_stream

    if config.data.subset is not None:
        return subset_splits(config)
    if is_stream(config.data.name):
        return read_stream(config.data.name, max_samples=config.data.sample_size, seed=config.seed)
    if is_lazy_folder(config):
        sample = image_folder(
            config.data.name,
            load_size=config.data.load_size,
            max_samples=config.data.sample_size,
            seed=config.seed,
        )
        return DataSplits(sample)
    return load_dataset(config.data.name, **data_options(config.data))


def subset_splits(config: RunConfig) -> DataSplits:
    """The data with its training split cut to the samples ``data.subset`` lists (a subset file
    of ``labelless curate``, ``labelless.data.subsets``); the test split is kept whole."""
    from labelless.data.stream import is_stream
    from labelless.data.subsets import apply_subset
    from labelless.errors import ConfigError

    if is_stream(config.data.name) or is_lazy_folder(config):
        raise ConfigError(
            "data.subset (--subset) selects samples of data loaded into memory; it does not "
            "work with stream: shard sets or data.lazy folders: drop one of them"
        )
    splits = load_dataset(config.data.name, **data_options(config.data))
    train = apply_subset(splits.train, config.data.subset, config.data.name)
    return DataSplits(train, splits.test)


def train_loader(config: RunConfig, train: Dataset, in_memory: bool):
    """Batches of the training split: the resumable in-memory loader, for a lazy folder a
    DataLoader whose workers decode the files, for a shard set (``stream:``) litdata's loader,
    made in the loader hook (``train.stream.StreamData``)."""
    from labelless.data.files import file_loader, scan_folder
    from labelless.data.stream import is_stream
    from labelless.train.loader import train_loader as memory_loader

    if not in_memory and is_stream(config.data.name):
        from labelless.train.stream import StreamData

        return StreamData(
            config.data.name, config.optim.batch_size, seed=config.seed, workers=config.data.workers
        )
    if in_memory or not is_lazy_folder(config):
        from labelless.data.checks import warn_if_batch_exceeds_data

        warn_if_batch_exceeds_data(config.optim.batch_size, len(train))
        return memory_loader(train, config.optim.batch_size, seed=config.seed)
    files, labels, _ = scan_folder(config.data.name)
    return file_loader(
        files,
        labels,
        load_size=config.data.load_size,
        batch_size=config.optim.batch_size,
        workers=config.data.workers,
        seed=config.seed,
        grayscale=train.in_channels == 1,
    )


def load_run_config(run_dir: str | Path) -> RunConfig:
    """The pretraining config of ``run_dir`` (its ``config.yaml``)."""
    path = RunFiles(Path(run_dir)).config_file
    return build_config(load_yaml(path), str(path))
