"""Embedding under a 2-process gloo group: each process writes its DistributedSampler shard
(11 samples: the second process pads with sample 0), and every process's merge equals the
single-process embedding of all samples, in sample order."""

from __future__ import annotations

import functools

import pytest
import torch

from labelless.evaluate import embed, embed_distributed

from .spawn import run_ranks

pytestmark = pytest.mark.distributed

PREPROCESSING = {"input_size": 8, "mean": (0.5, 0.5, 0.5), "std": (0.25, 0.25, 0.25)}


def _data_and_encoder():
    images = torch.randint(0, 256, (11, 3, 8, 8), generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    encoder = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(144, 5)
    )
    return images.to(torch.uint8), encoder


def _embed_in_group(directory: str, rank: int) -> dict[str, torch.Tensor]:
    import torch.distributed as dist
    from safetensors.torch import load_file

    from labelless.evaluate.distributed import part_path

    images, encoder = _data_and_encoder()
    merged = embed_distributed(encoder, images, directory, batch_size=4, **PREPROCESSING)
    dist.barrier()  # every process has merged before the parts are read back here
    part = load_file(part_path(directory, rank, 2))
    return {"merged": merged, "index": part["index"]}


def test_two_processes_embed_what_one_does(tmp_path):
    results = run_ranks(functools.partial(_embed_in_group, str(tmp_path)), world=2)
    images, encoder = _data_and_encoder()
    expected = embed(encoder, images, **PREPROCESSING)
    assert results[0]["index"].tolist() == [0, 2, 4, 6, 8, 10]
    assert results[1]["index"].tolist() == [1, 3, 5, 7, 9, 0]  # padded with sample 0
    for result in results:
        torch.testing.assert_close(result["merged"], expected)
