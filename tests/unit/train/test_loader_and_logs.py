"""The resumable epoch loader and the run's CSV log."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

from labelless.data import from_arrays
from labelless.train import loader as loader_module
from labelless.train.loader import EpochLoader, ShuffledBatches, train_loader
from labelless.train.logs import RunCSVLogger, truncate_log


def _data(n: int = 40):
    return from_arrays(
        np.arange(n, dtype=np.float32).reshape(n, 1), np.arange(n) % 2, modality="tabular"
    )


def _epoch(loader) -> list[list[int]]:
    return [batch["index"].tolist() for batch in loader]


def test_each_epoch_is_a_permutation_that_depends_only_on_seed_and_epoch():
    loader = train_loader(_data(), batch_size=8, seed=3)
    assert len(loader) == 5
    first = _epoch(loader)
    assert sorted(i for batch in first for i in batch) == list(range(40))
    loader.set_epoch(1)
    second = _epoch(loader)
    assert second != first
    fresh = train_loader(_data(), batch_size=8, seed=3)
    fresh.set_epoch(1)  # a new process at epoch 1 draws epoch 1's order, not epoch 0's
    assert _epoch(fresh) == second
    batch = next(iter(fresh))
    assert torch.equal(batch["inputs"][:, 0].long(), batch["index"])
    assert torch.equal(batch["label"], batch["index"] % 2)


def test_a_restored_loader_continues_the_epoch_where_the_checkpoint_was_written():
    loader = train_loader(_data(), batch_size=8, seed=0)
    loader.set_epoch(2)
    full = _epoch(loader)
    iterator = iter(loader)
    next(iterator), next(iterator)  # two steps trained, then the checkpoint reads the position
    state = loader.state_dict()
    assert state == {"epoch": 2, "batches_done": 2}
    resumed = train_loader(_data(), batch_size=8, seed=0)
    resumed.load_state_dict(state)
    resumed.set_epoch(2)  # Lightning sets the same epoch again: the skip stays
    assert _epoch(resumed) == full[2:]
    resumed.set_epoch(3)
    assert len(_epoch(resumed)) == 5  # the next epoch is whole


def test_processes_take_disjoint_batches(monkeypatch):
    source = ShuffledBatches(_data(), batch_size=4, seed=0)
    seen = []
    for rank in range(2):
        monkeypatch.setattr(loader_module, "_world", lambda rank=rank: (rank, 2))
        loader = EpochLoader(source)
        assert len(loader) == 5
        seen.append({i for batch in _epoch(loader) for i in batch})
    assert not seen[0] & seen[1] and len(seen[0] | seen[1]) == 40


def _rows(path):
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_log_rows_are_on_disk_at_once_and_new_columns_rewrite_the_header(tmp_path):
    logger = RunCSVLogger(tmp_path / "logs")
    logger.log_metrics({"train/loss": 1.5, "epoch": 0}, step=0)
    assert _rows(logger.path) == [{"epoch": "0", "step": "0", "train/loss": "1.5"}]
    logger.log_metrics({"train/loss": torch.tensor(1.25), "epoch": 0}, step=1)
    logger.log_metrics({"monitor/knn_top1": 0.5, "epoch": 0}, step=1)
    rows = _rows(logger.path)
    assert [row["train/loss"] for row in rows] == ["1.5", "1.25", ""]
    assert rows[2]["monitor/knn_top1"] == "0.5"
    # a new logger (a resumed session) appends to the existing file
    RunCSVLogger(tmp_path / "logs").log_metrics({"train/loss": 1.0, "epoch": 1}, step=2)
    assert len(_rows(logger.path)) == 4


def test_truncate_drops_the_rows_logged_after_the_checkpoint(tmp_path):
    logger = RunCSVLogger(tmp_path)
    for step in range(6):
        logger.log_metrics({"train/loss": float(step)}, step=step)
    assert truncate_log(logger.path, before_step=4) == 2
    assert [row["step"] for row in _rows(logger.path)] == ["0", "1", "2", "3"]
    assert truncate_log(tmp_path / "missing.csv", 3) == 0


@pytest.mark.parametrize("batch_size", [8, 64])
def test_the_batch_size_is_capped_at_the_dataset(batch_size):
    loader = train_loader(_data(20), batch_size=batch_size)
    assert sum(len(batch) for batch in _epoch(loader)) == (20 // min(batch_size, 20)) * min(
        batch_size, 20
    )


def test_the_order_is_a_seeded_dataloaders_order():
    """The training order of the shuffled DataLoader it replaced (tuned recipes keep their
    numbers), whichever epoch a process starts at."""
    from torch.utils.data import DataLoader

    data = _data(37)
    reference = DataLoader(
        list(range(37)),
        batch_size=8,
        shuffle=True,
        drop_last=True,
        generator=torch.Generator().manual_seed(5),
        collate_fn=lambda rows: rows,
    )
    expected = []
    for _ in range(3):  # Lightning stops at the loader's length: no draw past the last batch
        iterator = iter(reference)
        expected.append([next(iterator) for _ in range(len(reference))])
    loader = train_loader(data, batch_size=8, seed=5)
    for epoch in (0, 1, 2, 1, 2):
        loader.set_epoch(epoch)
        assert _epoch(loader) == expected[epoch]
