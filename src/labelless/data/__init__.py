"""Data: the Dataset container, built-in datasets, folders and arrays."""

from __future__ import annotations

from pathlib import Path

from labelless.data.arrays import from_arrays
from labelless.data.builtin import BUILTINS, BuiltinDataset
from labelless.data.dataset import UNLABELLED, Dataset, DataSplits, channel_stats
from labelless.data.folder import image_folder
from labelless.data.paths import cache_dir, data_root
from labelless.errors import unknown_name

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
]


def load_dataset(source: str | Path, *, load_size: int = 64) -> DataSplits:
    """Resolve a built-in name (``digits``, ``mnist``, ...) or a path to a folder of images.

    A folder gives a train split only (labels from class subfolders, else unlabelled).
    """
    text = str(source)
    if text in BUILTINS:
        return BUILTINS[text].loader()
    if "/" in text or "\\" in text or Path(text).expanduser().exists():
        return DataSplits(image_folder(text, load_size=load_size))
    raise unknown_name("dataset", text, [*BUILTINS, "<path to an image folder>"])
