"""data-scan (labelless.audit.datascan): spectral signatures against a hand computation and
against a patch trigger planted in digits and seen by an encoder that responds to the patch; the
flag rules, the cluster summaries and the scan of both checks together."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from labelless.audit.datascan import scan_training_data, spectral_signatures
from labelless.audit.pixels import unit_images
from labelless.data import load_dataset
from labelless.errors import ConfigError, DataError

PATCH = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0], [1.0, 0.0, 1.0]])
PLANTED = 15  # 1% of the 1,437 training digits
TARGET = 0  # the poisoned samples' label in a dirty-label backdoor


class PatchSensitive(nn.Module):
    """A fixed "encoder" of 8x8 digits: the digit's content (average-pooled to 4x4) and a strong
    response to the 3x3 checkerboard patch (a matched filter, ReLU'd above what clean digits
    reach), mixed by a fixed random rotation so the trigger's direction is no coordinate axis."""

    def __init__(self):
        super().__init__()
        self.register_buffer("kernel", (2 * PATCH - 1).view(1, 1, 3, 3))
        rotation = torch.linalg.qr(torch.randn(17, 17, generator=torch.Generator().manual_seed(1)))
        self.register_buffer("rotation", rotation[0])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        content = F.adaptive_avg_pool2d(x, 4).flatten(1)
        response = F.relu(F.conv2d(x, self.kernel).amax(dim=(-2, -1)) - 2.0)
        return torch.cat([content, response], dim=1) @ self.rotation


@pytest.fixture(scope="module")
def poisoned():
    """Digits with the patch stamped into the bottom-right corner of 15 of them, relabelled to
    class 0; their embeddings by ``PatchSensitive``; the planted indices."""
    train = load_dataset("digits").train
    images, labels = unit_images(train.samples), torch.as_tensor(train.labels)
    planted = torch.randperm(len(images), generator=torch.Generator().manual_seed(0))[:PLANTED]
    images[planted, 0, -3:, -3:] = PATCH
    labels[planted] = TARGET
    with torch.no_grad():
        embeddings = PatchSensitive()(images)
    return images, labels, embeddings, planted


def test_spectral_signatures_rank_the_planted_samples_first_in_their_class(poisoned):
    images, labels, embeddings, planted = poisoned
    signatures = spectral_signatures(embeddings, labels=labels)
    assert signatures.source == "labels" and signatures.groups.tolist() == list(range(10))
    target = torch.nonzero(labels == TARGET).squeeze(1)
    top = target[torch.topk(signatures.score[target], PLANTED).indices]
    assert set(top.tolist()) == set(planted.tolist())
    assert signatures.z[planted].min() > 3.5  # measured 141
    scan = scan_training_data(images, embeddings, labels=labels)
    assert set(planted.tolist()) <= set(scan.flagged_spectral.tolist())
    assert len(scan.flagged_spectral) - PLANTED <= 30  # measured 19 clean of 1,422 (1.3%)
    summary = scan.clusters[TARGET]
    assert summary.flagged >= PLANTED and summary.size == int((labels == TARGET).sum())
    others = [c.spectral_gap for c in scan.clusters if c.cluster != TARGET]
    assert summary.spectral_gap > 3 * max(others)  # the trigger's direction dominates


def test_without_labels_kmeans_isolates_the_trigger_in_a_small_cluster(poisoned):
    images, _, embeddings, planted = poisoned
    scan = scan_training_data(images, embeddings, clusters=10, seed=0)
    assert scan.spectral.source == "kmeans" and len(scan.clusters) == 10
    (small,) = scan.small_clusters
    members = torch.nonzero(scan.spectral.cluster == small).squeeze(1)
    assert set(members.tolist()) == set(planted.tolist())
    summary = next(c for c in scan.clusters if c.cluster == small)
    assert summary.small and summary.relative_size < 0.25
    assert all(not c.small for c in scan.clusters if c.cluster != small)


def test_spectral_signature_of_a_hand_made_group():
    # Centred already; the top right singular vector is the x axis: scores x^2.
    z = torch.tensor([[2.0, 0.0], [-2.0, 0.0], [0.0, 0.5], [0.0, -0.5]])
    signatures = spectral_signatures(z, labels=torch.zeros(4, dtype=torch.long))
    assert torch.allclose(signatures.score, torch.tensor([4.0, 4.0, 0.0, 0.0]), atol=1e-6)
    assert torch.allclose(signatures.singular_values[0], torch.tensor([math.sqrt(8), 1 / 2**0.5]))
    scan = scan_training_data(torch.rand(4, 1, 8, 8), z, labels=torch.zeros(4, dtype=torch.long))
    assert scan.clusters[0].spectral_gap == pytest.approx(16.0)  # (8 / 0.5)
    shifted = spectral_signatures(z + 5.0, labels=torch.zeros(4, dtype=torch.long))
    assert torch.allclose(shifted.score, signatures.score, atol=1e-5)  # centring
    alone = spectral_signatures(torch.randn(3, 4), labels=torch.tensor([0, 1, 1]))
    assert alone.score[0] == 0 and alone.sizes.tolist() == [1, 2]  # a group of one scores 0
    lone = scan_training_data(torch.rand(3, 1, 8, 8), torch.randn(3, 4), labels=[0, 1, 1])
    assert lone.clusters[0].spectral_gap == 1.0 and lone.clusters[0].lowest_flagged_score is None


def test_top_fraction_flags_the_top_of_every_group_and_of_the_set(poisoned):
    images, labels, embeddings, planted = poisoned
    # Tran et al.'s rule: 1.5 x the poisoned share of the class (15 of 157 here, 0.1).
    scan = scan_training_data(images, embeddings, labels=labels, top_fraction=0.15)
    sizes = torch.bincount(labels)
    assert len(scan.flagged_spectral) == sum(math.ceil(0.15 * int(n)) for n in sizes)
    assert len(scan.flagged_frequency) == math.ceil(0.15 * len(images))
    assert set(planted.tolist()) <= set(scan.flagged_spectral.tolist())
    assert scan.thresholds == {
        "z_threshold": None,
        "top_fraction": 0.15,
        "high_frequency_cutoff": 0.5,
        "frequency_bands": 8,
        "small_cluster": None,
    }
    assert torch.equal(
        scan.flagged, torch.unique(torch.cat([scan.flagged_spectral, scan.flagged_frequency]))
    )
    assert scan.frequency.z.shape == (len(images),)
    assert scan.frequency.share.shape == (len(images), 1)


def test_bad_inputs_raise_errors_that_name_the_fix(poisoned):
    images, labels, embeddings, _ = poisoned
    with pytest.raises(DataError, match="embed every image once"):
        scan_training_data(images[:10], embeddings)
    partial = labels.clone()
    partial[:5] = -1
    with pytest.raises(DataError, match="labels=None"):
        spectral_signatures(embeddings, labels=partial)
    with pytest.raises(DataError, match="one label a sample"):
        spectral_signatures(embeddings, labels=labels[:10])
    with pytest.raises(ConfigError, match="top_fraction"):
        scan_training_data(images, embeddings, top_fraction=1.5)
    with pytest.raises(ConfigError, match="z_threshold"):
        scan_training_data(images, embeddings, z_threshold=0.0)
    with pytest.raises(ConfigError, match="at most as many clusters as samples"):
        spectral_signatures(embeddings[:5], clusters=10)
    with pytest.raises(DataError, match="NaN"):
        spectral_signatures(torch.full((4, 2), float("nan")))
