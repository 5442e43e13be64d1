"""The one container every loader returns and every trainer consumes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from labelless.data.formats import SampleFormat, sample_format
from labelless.errors import DataError

UNLABELLED = -1


@dataclass
class Dataset:
    """Samples of one modality, optional labels (-1 = unlabelled) and metadata.

    Images are stored as ``uint8 [N, C, H, W]``; ``meta`` holds ``class_names``, per-channel
    ``mean`` / ``std`` on the 0..1 scale, the native ``image_size`` and, for folders, the count of
    ``skipped`` unreadable files. Tables are ``float32 [N, F]`` and time series
    ``float32 [N, C, T]`` (see their loaders); ``targets`` holds float regression targets where
    the task is regression. Nothing in labelless sizes a classifier from ``len(dataset)``:
    the number of classes comes from ``meta["class_names"]`` or the labels themselves.
    """

    samples: np.ndarray
    labels: np.ndarray | None = None
    modality: str = "image"
    name: str = "arrays"
    meta: dict[str, Any] = field(default_factory=dict)
    targets: np.ndarray | None = None

    def __post_init__(self) -> None:
        if len(self.samples) == 0:
            raise DataError(f"dataset {self.name!r} is empty: give it at least one sample")
        if self.labels is not None:
            labels = np.asarray(self.labels).astype(np.int64).reshape(-1)
            if len(labels) != len(self.samples):
                raise DataError(
                    f"dataset {self.name!r} has {len(self.samples)} samples but {len(labels)} "
                    "labels: pass one label per sample (-1 for unlabelled)"
                )
            self.labels = labels
        if self.targets is not None:
            targets = np.asarray(self.targets, dtype=np.float32)
            if len(targets) != len(self.samples):
                raise DataError(
                    f"dataset {self.name!r} has {len(self.samples)} samples but {len(targets)} "
                    "regression targets: pass one target per sample (NaN for unknown)"
                )
            self.targets = targets
        if self.format.pixels:
            if "mean" not in self.meta:
                self.meta.update(channel_stats(self.samples))
            self.meta.setdefault("image_size", int(self.samples.shape[-1]))

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def has_labels(self) -> bool:
        """True when at least one sample carries a label."""
        return self.labels is not None and bool((self.labels >= 0).any())

    @property
    def num_classes(self) -> int:
        """Number of classes, from ``class_names`` when known, else from the labels (0 if none)."""
        names = self.meta.get("class_names")
        if names is not None:
            return len(names)
        if not self.has_labels:
            return 0
        return int(self.labels.max()) + 1

    @property
    def format(self) -> SampleFormat:
        """How this modality's samples are stored (``data.formats``)."""
        return sample_format(self.modality)

    @property
    def in_channels(self) -> int:
        """Image channels; 0 for data that is not pixels."""
        return int(self.samples.shape[1]) if self.format.pixels else 0

    def subset(self, index: np.ndarray, name: str | None = None) -> Dataset:
        """The samples at ``index`` (and their labels), sharing this dataset's metadata."""
        labels = None if self.labels is None else self.labels[index]
        targets = None if self.targets is None else self.targets[index]
        return Dataset(
            self.samples[index],
            labels,
            self.modality,
            name or self.name,
            self._meta_at(index),
            targets,
        )

    def _meta_at(self, index: np.ndarray) -> dict[str, Any]:
        """``meta`` for a subset: per-sample arrays (e.g. series ``lengths``) follow ``index``."""
        count = len(self)
        return {
            key: value[index]
            if isinstance(value, np.ndarray) and value.shape[:1] == (count,)
            else value
            for key, value in self.meta.items()
        }

    def sample_rows(self, count: int, seed: int = 0) -> np.ndarray:
        """At most ``count`` samples, a fixed seeded random subset when there are more (never the
        first rows: built-in files such as CIFAR-10 are sorted by class)."""
        if len(self) <= count:
            return self.samples
        index = np.sort(np.random.default_rng(seed).choice(len(self), count, replace=False))
        return self.samples[index]

    def describe(self) -> str:
        labelled = int((self.labels >= 0).sum()) if self.labels is not None else 0
        shape = "x".join(str(s) for s in self.samples.shape[1:])
        return f"{self.name}: {len(self)} {self.modality} samples of {shape}, {labelled} labelled"


@dataclass
class DataSplits:
    """A training split (labels optional) and an optional held-out test split with labels."""

    train: Dataset
    test: Dataset | None = None


def channel_stats(images: np.ndarray, max_samples: int = 10_000) -> dict[str, list[float]]:
    """Per-channel mean and std on the 0..1 scale over (at most ``max_samples``) uint8 images."""
    step = max(1, len(images) // max_samples)
    sample = images[::step].astype(np.float64) / 255.0
    mean = sample.mean(axis=(0, 2, 3))
    std = sample.std(axis=(0, 2, 3))
    std = np.where(std < 1e-6, 1.0, std)
    return {"mean": [float(m) for m in mean], "std": [float(s) for s in std]}
