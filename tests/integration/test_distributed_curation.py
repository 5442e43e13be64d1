"""Dynamic curation on two processes: every process samples with rank 0's clusters and weights,
even when their encoders embed differently (BatchNorm statistics are per process)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from ..unit.train.test_curation import Flatten, curation_of, planted_images
from .spawn import run_ranks

pytestmark = pytest.mark.distributed


def _on_two_ranks(rank: int) -> dict:
    """The callback on rank ``rank`` of 2, whose encoder differs per rank (as BatchNorm
    statistics do): after an update both hold rank 0's clusters and weights."""
    from lightning.pytorch.strategies import DDPStrategy

    images, _ = planted_images()
    curation = curation_of(images, clusters=3 + rank)
    backbone = Flatten()
    backbone.scale.data.fill_(1.0 + rank)
    trainer = SimpleNamespace(
        current_epoch=0, max_epochs=3, should_stop=False, world_size=2, strategy=DDPStrategy()
    )
    module = SimpleNamespace(method=SimpleNamespace(backbone=backbone), log=lambda *a, **k: None)
    curation.on_train_epoch_end(trainer, module)
    return {"weights": curation.source.weights, "centroids": curation.centroids}


def test_both_processes_sample_with_rank_zeros_weights():
    first, second = run_ranks(_on_two_ranks)
    assert torch.equal(first["weights"], second["weights"])
    assert torch.equal(first["centroids"], second["centroids"])
    assert len(first["centroids"]) == 3  # rank 0's 3 clusters, not rank 1's 4
