"""Dynamic curation: weighted epoch orders in the in-memory loader, balanced weights over
planted clusters, the callback's state through a checkpoint (two processes: tests/integration/
test_distributed_curation.py; kill -9 and --resume: tests/e2e/test_dynamic_curation.py)."""

from __future__ import annotations

import io
from types import SimpleNamespace

import lightning as L
import numpy as np
import pytest
import torch
from torch import nn

from labelless.data import from_arrays
from labelless.errors import ConfigError
from labelless.train.curation import (
    DynamicCuration,
    balanced_weights,
    expected_shares,
    share_balance,
)
from labelless.train.loader import EpochLoader, ShuffledBatches

SIZES = (900, 60, 40)  # 90% of the samples in one tight cluster


def _rows(source: ShuffledBatches, epoch: int) -> torch.Tensor:
    return torch.cat([source.batch(epoch, i)["index"] for i in range(source.num_batches)])


def _source(n: int = 40, batch_size: int = 8, seed: int = 0) -> ShuffledBatches:
    data = from_arrays(np.arange(n * 2, dtype=np.float32).reshape(n, 2), modality="tabular")
    return ShuffledBatches(data, batch_size, seed=seed)


def test_weighted_orders_depend_only_on_seed_epoch_and_weights():
    weights = torch.linspace(0.1, 4.0, 40)
    first, again, other_seed = _source(), _source(), _source(seed=1)
    for source in (first, again, other_seed):
        source.set_weights(weights)
    assert torch.equal(_rows(first, 3), _rows(again, 3))
    assert torch.equal(_rows(first, 3), _rows(first, 3))  # asked again, after other epochs
    assert not torch.equal(_rows(first, 3), _rows(first, 4))
    assert not torch.equal(_rows(first, 3), _rows(other_seed, 3))
    again.set_weights(weights.flip(0))
    assert not torch.equal(_rows(first, 3), _rows(again, 3))
    assert len(_rows(first, 0)) == 40  # the epoch keeps its length (with replacement)


def test_without_weights_the_order_is_the_seeded_permutation_untouched():
    plain, reweighted = _source(), _source()
    reweighted.set_weights(torch.ones(40))
    _rows(reweighted, 2)
    reweighted.set_weights(None)  # back to the permutation, for any epoch
    for epoch in (0, 3, 1):
        assert torch.equal(_rows(plain, epoch), _rows(reweighted, epoch))
        assert sorted(_rows(plain, epoch).tolist()) == list(range(40))


def test_bad_weights_are_refused():
    source = _source()
    for weights in (torch.ones(39), torch.zeros(40), torch.full((40,), float("nan"))):
        with pytest.raises(ValueError):
            source.set_weights(weights)


def planted_images(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``uint8 [1000, 1, 8, 8]`` images in three clusters of ``SIZES`` (distinct patterns, a
    little noise) and each image's cluster."""
    rng = np.random.default_rng(seed)
    patterns = np.zeros((3, 64))
    patterns[0, :32], patterns[1, 32:], patterns[2, ::2] = 220, 220, 220
    cluster = np.repeat(np.arange(3), SIZES)
    rng.shuffle(cluster)
    pixels = patterns[cluster] + 20 + rng.integers(0, 12, size=(len(cluster), 64))
    return pixels.reshape(-1, 1, 8, 8).astype(np.uint8), cluster


class Flatten(nn.Module):
    """An encoder that embeds the normalised pixels as they are."""

    def __init__(self):
        super().__init__()
        self.meta = SimpleNamespace(input_size=8, mean=(0.5,), std=(0.25,))
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, x):
        return x.flatten(1) * self.scale


def curation_of(images, strength: float = 1.0, **options) -> DynamicCuration:
    source = ShuffledBatches(from_arrays(images), 100, seed=0)
    options = {"every_n_epochs": 1, "clusters": 3, "sample": 512, **options}
    preprocess = {"input_size": 8, "mean": (0.5,), "std": (0.25,)}
    return DynamicCuration(source, strength=strength, **preprocess, **options)


def test_balanced_weights_give_each_planted_cluster_an_equal_share_of_the_draws():
    images, planted = planted_images()
    curation = curation_of(images)
    record = curation.apply(*curation.cluster(Flatten(), epoch=0), 0)
    found = curation.assignment.numpy()
    assert all(len(set(found[planted == c])) == 1 for c in range(3))  # the planted clusters
    assert len(set(found)) == 3
    # before: shares 0.9 / 0.06 / 0.04; after: 1/3 each, in expectation
    assert record["largest_share_before"] == pytest.approx(0.9)
    assert record["entropy_before"] == pytest.approx(
        share_balance(torch.tensor([0.9, 0.06, 0.04]))["entropy"], abs=1e-6
    )
    assert record["entropy_after"] == pytest.approx(1.0) and record[
        "largest_share_after"
    ] == pytest.approx(1 / 3)
    drawn = torch.cat([_rows(curation.source, epoch) for epoch in range(10)])  # 10,000 draws
    shares = np.bincount(planted[drawn.numpy()], minlength=3) / len(drawn)
    np.testing.assert_allclose(shares, 1 / 3, atol=0.02)
    assert len(set(drawn.tolist())) > 0.95 * len(planted)  # the big cluster stays reachable


def test_strength_tempers_the_shares_between_the_data_and_equal():
    assignment = torch.tensor([0] * 900 + [1] * 100)
    assert torch.allclose(
        expected_shares(assignment, balanced_weights(assignment, 0.0)),
        torch.tensor([0.9, 0.1], dtype=torch.float64),
    )
    assert share_balance(torch.tensor([1.0, 0.0])) == {"entropy": 1.0, "largest_share": 1.0}
    half = expected_shares(assignment, balanced_weights(assignment, 0.5))
    assert torch.allclose(half, torch.tensor([30.0, 10.0], dtype=torch.float64) / 40)  # sqrt(size)
    images, _ = planted_images()
    measured_only = curation_of(images, strength=0.0)
    measured_only.apply(*measured_only.cluster(Flatten(), epoch=0), 0)
    assert measured_only.source.weights is None  # strength 0: measured, the permutation kept


def test_the_state_survives_a_checkpoint_round_trip():
    images, _ = planted_images()
    curation = curation_of(images)
    curation.apply(*curation.cluster(Flatten(), epoch=4), 4)
    buffer = io.BytesIO()
    torch.save({"callbacks": {"DynamicCuration": curation.state_dict()}}, buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)["callbacks"]["DynamicCuration"]
    resumed = curation_of(images)
    resumed.load_state_dict(state)
    assert torch.equal(resumed.source.weights, curation.source.weights)
    assert torch.equal(resumed.centroids, curation.centroids) and resumed.epoch == 4
    assert resumed.history == curation.history
    assert torch.equal(_rows(resumed.source, 5), _rows(curation.source, 5))


def test_what_it_cannot_curate_is_a_config_error():
    images, _ = planted_images()
    with pytest.raises(ConfigError, match="in memory"):
        DynamicCuration(object(), every_n_epochs=1)
    with pytest.raises(ConfigError, match=r"curation\.clusters"):
        curation_of(images, clusters=600)


class FakeTraining(L.LightningModule):
    """A training whose encoder stays as it is (the clusters stay the planted ones)."""

    def __init__(self):
        super().__init__()
        self.method = nn.Module()
        self.method.backbone = Flatten()
        self.weight = nn.Parameter(torch.zeros(()))

    def training_step(self, batch, batch_idx):
        return (self.weight - batch["inputs"].float().mean() / 255).square()

    def configure_optimizers(self):
        return torch.optim.SGD([self.weight], lr=0.1)


def test_updates_every_n_epochs_but_not_after_the_last(tmp_path):
    images, planted = planted_images()
    curation = curation_of(images, every_n_epochs=2)
    seen: list[torch.Tensor] = []

    class Record(L.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            seen.append(batch["index"])

    trainer = L.Trainer(
        max_epochs=6,
        callbacks=[curation, Record()],
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(FakeTraining(), EpochLoader(curation.source))
    assert [update["epoch"] for update in curation.history] == [1, 3]  # none after epoch 5
    by_epoch = torch.stack(seen).view(6, -1)
    small = np.isin(planted, [1, 2])
    share_small = [float(small[rows.numpy()].mean()) for rows in by_epoch]
    assert max(share_small[:2]) < 0.15 < 0.55 < min(share_small[2:])  # balanced from epoch 2
    record = curation.training_record()["dynamic_curation"]
    assert record["every_n_epochs"] == 2 and len(record["updates"]) == 2
