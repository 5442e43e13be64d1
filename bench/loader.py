"""Loader speed: the resumable ``EpochLoader`` (issue 16) vs the shuffled ``DataLoader`` it
replaced, on CIFAR-10-shaped uint8 images held in memory (generated; no data needed).

Measures batches per second over whole epochs (the loader alone, no model) and the cost of a
resume at a late epoch (``set_epoch`` replays one ``randperm`` per earlier epoch). Both loaders
give the same order, so the comparison is of the machinery only.

    .venv/bin/python bench/loader.py [--samples 50000] [--batch-size 256] [--epochs 3]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import append_result, environment

from labelless.data import from_arrays
from labelless.train.loader import train_loader


class _InMemorySamples(torch.utils.data.Dataset):
    """The dataset behind the previous loader: one fancy-index per batch via ``__getitems__``."""

    def __init__(self, samples: np.ndarray) -> None:
        self.samples = torch.from_numpy(samples)
        self.labels = torch.full((len(samples),), -1, dtype=torch.long)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitems__(self, indices: list[int]) -> dict[str, torch.Tensor]:
        index = torch.as_tensor(indices, dtype=torch.long)
        return {"inputs": self.samples[index], "index": index, "label": self.labels[index]}


def _previous(samples: np.ndarray, batch_size: int, seed: int) -> DataLoader:
    return DataLoader(
        _InMemorySamples(samples),
        batch_size=batch_size,
        shuffle=True,
        drop_last=True,
        collate_fn=lambda batch: batch,
        generator=torch.Generator().manual_seed(seed),
    )


def _batches_per_second(loader, epochs: int, set_epoch: bool) -> float:
    count, start = 0, time.perf_counter()
    for epoch in range(epochs):
        if set_epoch:
            loader.set_epoch(epoch)
        for batch in loader:
            count += int(batch["inputs"].shape[0] > 0)
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=50_000)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--resume-epoch", type=int, default=200)
    args = parser.parse_args()
    torch.set_num_threads(2)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (args.samples, 3, 32, 32), dtype=np.uint8)

    ours = train_loader(from_arrays(images), args.batch_size, seed=0)
    theirs = _previous(images, args.batch_size, seed=0)
    first_ours = [b["index"] for b in ours]
    first_theirs = [b["index"] for b in theirs]
    same_order = all(torch.equal(a, b) for a, b in zip(first_ours, first_theirs, strict=True))
    rates = {
        "epoch_loader_batches_per_s": _batches_per_second(ours, args.epochs, True),
        "dataloader_batches_per_s": _batches_per_second(theirs, args.epochs, False),
    }
    resumed = train_loader(from_arrays(images), args.batch_size, seed=0)
    start = time.perf_counter()
    resumed.set_epoch(args.resume_epoch)
    next(iter(resumed))
    record = {
        **environment(),
        "samples": args.samples,
        "batch_size": args.batch_size,
        "epochs": args.epochs,
        "same_order": same_order,
        **{key: round(value, 1) for key, value in rates.items()},
        "ratio": round(rates["epoch_loader_batches_per_s"] / rates["dataloader_batches_per_s"], 3),
        "resume_epoch": args.resume_epoch,
        "resume_seconds": round(time.perf_counter() - start, 3),
    }
    print(record)
    append_result("loader", record)


if __name__ == "__main__":
    main()
