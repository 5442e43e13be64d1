"""Batches straight from memory (uint8 images, float tables or series): one fancy-index per batch,
no per-sample Python."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader

from labelless.data import Dataset


class InMemorySamples(torch.utils.data.Dataset):
    """Serves ``{"inputs": samples [B, ...], "index": [B], "label": [B]}`` per batch of indices.

    ``__getitems__`` lets the DataLoader fetch a whole batch with one indexing operation; the
    DataLoader (and Lightning's distributed sampler) still decide the order.
    """

    def __init__(self, dataset: Dataset) -> None:
        self.samples = torch.from_numpy(np.ascontiguousarray(dataset.samples))
        labels = dataset.labels if dataset.labels is not None else np.full(len(dataset), -1)
        self.labels = torch.from_numpy(np.asarray(labels, dtype=np.int64))

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return self.__getitems__([index])

    def __getitems__(self, indices: list[int]) -> dict[str, torch.Tensor]:
        index = torch.as_tensor(indices, dtype=torch.long)
        return {"inputs": self.samples[index], "index": index, "label": self.labels[index]}


def _keep_batch(batch):
    return batch


def train_loader(dataset: Dataset, batch_size: int, *, seed: int = 0) -> DataLoader:
    """Shuffled loader over an in-memory dataset; the last incomplete batch is dropped.

    The batch size is capped at the dataset size so that tiny datasets still train.
    """
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(
        InMemorySamples(dataset),
        batch_size=min(batch_size, len(dataset)),
        shuffle=True,
        drop_last=True,
        collate_fn=_keep_batch,
        generator=generator,
        num_workers=0,
    )
