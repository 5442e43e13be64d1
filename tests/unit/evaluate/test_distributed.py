"""Embedding split over processes: DistributedSampler's shards, one part file per process, and
the merge that drops the padding and returns the single-process embeddings in sample order."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DistributedSampler

from labelless.errors import ConfigError, DataError
from labelless.evaluate import embed, embed_shard, merge_embeddings
from labelless.evaluate.distributed import part_path, shard_indices

PREPROCESSING = {"input_size": 8, "mean": (0.5, 0.5, 0.5), "std": (0.25, 0.25, 0.25)}


def images(count: int) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (count, 3, 8, 8), dtype=np.uint8)


def encoder() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(144, 5))


@pytest.mark.parametrize(("count", "world"), [(11, 2), (10, 3), (2, 3), (7, 1)])
def test_shards_are_the_distributed_samplers(count, world):
    for rank in range(world):
        sampler = DistributedSampler(range(count), num_replicas=world, rank=rank, shuffle=False)
        np.testing.assert_array_equal(shard_indices(count, rank, world), list(sampler))


@pytest.mark.parametrize(("count", "world"), [(11, 2), (10, 3), (2, 3)])
def test_merged_parts_equal_one_process_embedding(tmp_path, count, world):
    """Every process writes its padded shard; the merge drops the repeats (11 samples on 2
    processes: 12 rows written, 11 returned) and equals ``embed`` of all samples."""
    data, model = images(count), encoder()
    paths = [
        embed_shard(model, data, tmp_path, rank=r, world_size=world, batch_size=3, **PREPROCESSING)
        for r in range(world)
    ]
    assert paths == [part_path(tmp_path, r, world) for r in range(world)]
    merged = merge_embeddings(tmp_path)
    assert merged.shape == (count, 5)
    torch.testing.assert_close(merged, embed(model, data, **PREPROCESSING))


def test_merge_refuses_incomplete_or_mixed_parts(tmp_path):
    data, model = images(11), encoder()
    embed_shard(model, data, tmp_path, rank=0, world_size=2, **PREPROCESSING)
    with pytest.raises(DataError, match=r"lacks the embedding parts of ranks \[1\] of 2"):
        merge_embeddings(tmp_path)
    embed_shard(model, data[:9], tmp_path, rank=1, world_size=2, **PREPROCESSING)
    with pytest.raises(DataError, match="datasets of different sizes"):
        merge_embeddings(tmp_path)
    embed_shard(model, data, tmp_path, rank=0, world_size=1, **PREPROCESSING)
    with pytest.raises(DataError, match=r"world sizes \[1, 2\]: pass world_size"):
        merge_embeddings(tmp_path)
    torch.testing.assert_close(
        merge_embeddings(tmp_path, world_size=1), embed(model, data, **PREPROCESSING)
    )
    with pytest.raises(ConfigError, match="pass both rank and world_size"):
        embed_shard(model, data, tmp_path, rank=0, **PREPROCESSING)
    with pytest.raises(ConfigError, match="not a process"):
        shard_indices(11, 2, 2)
