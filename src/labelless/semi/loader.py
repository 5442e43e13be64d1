"""Batches of labelled + mu x unlabelled uint8 images, one whole batch per loader item.

Item ``i`` of epoch ``e`` slices fixed-seed permutations of both pools (the labelled pool is
repeated as often as needed), so each step gets ``B`` labelled and ``mu * B`` unlabelled samples
with one fancy-index each and no per-sample Python. An epoch is one pass over the unlabelled pool
(``len(unlabelled) // (mu * B)`` steps). ``semi_loader`` serves the items through the resumable
``EpochLoader`` (``train/loader.py``): under data parallelism each process takes different items,
hence different samples, and a resumed run continues the epoch where its checkpoint was written.
"""

from __future__ import annotations

import numpy as np
import torch

from labelless.data import Dataset
from labelless.semi.splits import LabelSplit
from labelless.train.loader import EpochLoader


def _tiled_permutation(size: int, length: int, rng: np.random.Generator) -> np.ndarray:
    repeats = -(-length // size)
    return np.concatenate([rng.permutation(size) for _ in range(repeats)])[:length]


class SemiBatches:
    """``{"labelled": {images, label, index}, "unlabelled": {images, label, index}}`` per item.

    ``label`` of the unlabelled batch is the hidden true label (-1 if none), used only for the
    pseudo-label accuracy; ``batch(e, i)`` is item ``i`` of epoch ``e`` (the permutations are
    redrawn from ``(seed, e)`` when the epoch changes).
    """

    def __init__(self, train: Dataset, split: LabelSplit, batch_size: int, mu: int, seed: int):
        self.images = torch.from_numpy(np.ascontiguousarray(train.samples))
        labels = train.labels if train.labels is not None else np.full(len(train), -1)
        labels = np.asarray(labels, dtype=np.int64)
        hidden = np.where(labels < split.num_classes, labels, -2)  # -2: an outlier's true class
        self.labels = torch.from_numpy(hidden)
        self.labelled = torch.from_numpy(split.labelled)
        self.unlabelled = torch.from_numpy(split.unlabelled)
        self.batch_size = int(batch_size)
        self.unlabelled_batch = min(int(mu) * self.batch_size, len(split.unlabelled))
        self.steps = max(1, len(split.unlabelled) // self.unlabelled_batch)
        self.seed = int(seed)
        self.num_batches = self.steps
        self._epoch = -1

    def _draw(self, epoch: int) -> None:
        self._epoch = int(epoch)
        rng = np.random.default_rng([self.seed, int(epoch)])
        need_l, need_u = self.steps * self.batch_size, self.steps * self.unlabelled_batch
        self._order_l = self.labelled[_tiled_permutation(len(self.labelled), need_l, rng)]
        self._order_u = self.unlabelled[_tiled_permutation(len(self.unlabelled), need_u, rng)]

    def __len__(self) -> int:
        return self.steps

    def _part(self, order: torch.Tensor, step: int, size: int) -> dict[str, torch.Tensor]:
        index = order[step * size : (step + 1) * size]
        label = self.labels[index]
        return {"inputs": self.images[index], "label": label, "index": index}

    def batch(self, epoch: int, step: int) -> dict[str, dict[str, torch.Tensor]]:
        if epoch != self._epoch:
            self._draw(epoch)
        labelled = self._part(self._order_l, step, self.batch_size)
        unlabelled = self._part(self._order_u, step, self.unlabelled_batch)
        index = torch.cat([labelled["index"], unlabelled["index"]])  # read by Throughput
        return {"labelled": labelled, "unlabelled": unlabelled, "index": index}


def semi_loader(batches: SemiBatches) -> EpochLoader:
    return EpochLoader(batches)
