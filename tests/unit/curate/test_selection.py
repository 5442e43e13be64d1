"""labelless.curate: each strategy against planted structure and hand-checked values."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from labelless.curate import (
    augmentation_similarity,
    balanced_kmeans,
    cluster_balance,
    k_center_greedy,
    kmeans,
    near_duplicates,
    sas_subset,
    simcore,
    typical_subset,
    typicality,
    vendi_score,
)
from labelless.curate.coverage import covering_radius
from labelless.errors import ConfigError


@pytest.fixture(scope="module")
def digits() -> tuple[torch.Tensor, torch.Tensor]:
    """scikit-learn digits as centred pixel features ``[1797, 64]`` and labels."""
    from sklearn.datasets import load_digits

    data = load_digits()
    x = torch.tensor(data.data, dtype=torch.float32)
    return x - x.mean(dim=0), torch.tensor(data.target)


def _pairs(groups) -> set[tuple[int, int]]:
    return {(int(a), int(b)) for m in groups for a, b in itertools.combinations(sorted(m), 2)}


def test_dedup_finds_planted_exact_and_augmented_copies(digits):
    """500 distinct digits + 100 exact copies + 100 augmented copies (brightness x1.1, pixel
    noise of std 0.3 on a 0..16 scale): at cosine 0.97 every planted pair is found and nothing
    else (precision 1.0, recall 1.0); at 0.95 recall stays 1.0 and precision is 0.92 (genuine
    look-alike digits join); at 0.90 precision falls to 0.14, which is why 0.95 is the default."""
    x, _ = digits
    base = x[:500]
    noise = torch.randn(100, 64, generator=torch.Generator().manual_seed(0))
    pool = torch.cat([base, base[:100], base[100:200] * 1.1 + 0.3 * noise])
    planted = {(i, 500 + i) for i in range(100)} | {(100 + i, 600 + i) for i in range(100)}
    found = near_duplicates(pool, 0.97)
    pairs = _pairs(found.groups)
    assert len(pairs & planted) / len(planted) == 1.0  # recall
    assert len(pairs & planted) / len(pairs) == 1.0  # precision
    assert found.removed == 200 and len(found.groups) == 200
    assert (found.representatives < 500).all()  # the smallest index of a group is kept
    assert found.keep.sum() == 500 and found.keep[:500].all()
    loose = _pairs(near_duplicates(pool, 0.95).groups)
    assert planted <= loose and len(planted) / len(loose) > 0.9


def test_dedup_groups_are_connected_components():
    z = torch.tensor([[1.0, 0.0], [0.999, 0.045], [0.996, 0.09], [0.0, 1.0]])
    # 0-1 and 1-2 are above 0.998 but 0-2 is not: one chain, one group
    found = near_duplicates(z, 0.998)
    assert [m.tolist() for m in found.groups] == [[0, 1, 2]]
    assert found.keep.tolist() == [True, False, False, True]
    with pytest.raises(ConfigError, match="in \\(0, 1\\]"):
        near_duplicates(z, 1.5)


def test_k_center_greedy_is_within_twice_the_optimum():
    """On 12 points in the plane the optimal 3-centre radius is found by brute force over all
    220 centre triples; greedy's radius is at most twice it, from every start."""
    points = torch.tensor(
        [[0, 0], [1, 0], [0, 1], [10, 0], [11, 0], [10, 1], [0, 10], [1, 10], [0, 11],
         [5, 5], [6, 5], [20, 20]], dtype=torch.float32,
    )  # fmt: skip
    optimum = min(covering_radius(points, list(c)) for c in itertools.combinations(range(12), 3))
    assert optimum == pytest.approx(np.sqrt(61), rel=1e-5)  # e.g. centres (1,0), (0,10), (20,20)
    for seed in range(12):
        chosen, radius = k_center_greedy(points, 3, seed=seed)
        assert len(set(chosen.tolist())) == 3
        assert radius == pytest.approx(covering_radius(points, chosen))
        assert optimum <= radius <= 2 * optimum + 1e-5


def test_balanced_sampling_equalises_planted_unequal_clusters():
    """Clusters of 400, 200, 100 and 20 points: 200 kept = 60 from each big cluster and the 20
    of the small one (the water-filling quota), where a uniform draw keeps about 111/56/28/6."""
    generator = torch.Generator().manual_seed(0)
    centres = torch.tensor([[8.0, 0], [0, 8.0], [-8.0, 0], [0, -8.0]])
    sizes = [400, 200, 100, 20]
    z = torch.cat(
        [c + torch.randn(n, 2, generator=generator) for c, n in zip(centres, sizes, strict=True)]
    )
    truth = torch.repeat_interleave(torch.arange(4), torch.tensor(sizes))
    kept, result = balanced_kmeans(z, 200, 4, seed=0)
    assert len(kept) == len(set(kept.tolist())) == 200
    assert sorted(torch.bincount(truth[kept], minlength=4).tolist()) == [20, 60, 60, 60]
    assert cluster_balance(result.assignment[kept], 4)["max_min_ratio"] == 3.0
    before = cluster_balance(result.assignment, 4)
    assert before["max_min_ratio"] == 20.0 and sorted(before["counts"]) == [20, 100, 200, 400]


def test_kmeans_recovers_separated_blobs_deterministically():
    generator = torch.Generator().manual_seed(1)
    z = torch.cat([torch.randn(50, 3, generator=generator) + 10 * i for i in range(3)])
    first, second = kmeans(z, 3, seed=5), kmeans(z, 3, seed=5)
    assert torch.equal(first.assignment, second.assignment)
    groups = first.assignment.view(3, 50)
    assert all(len(set(row.tolist())) == 1 for row in groups)
    assert len(set(groups[:, 0].tolist())) == 3


def test_vendi_score_counts_distinct_points():
    assert vendi_score(torch.ones(9, 4)) == pytest.approx(1.0)
    assert vendi_score(torch.eye(7)) == pytest.approx(7.0)
    two = torch.cat([torch.eye(2)[:1].repeat(5, 1), torch.eye(2)[1:].repeat(5, 1)])
    assert vendi_score(two) == pytest.approx(2.0)  # two equal halves of orthogonal points


def test_typicality_ranks_dense_points_first():
    generator = torch.Generator().manual_seed(0)
    dense = torch.randn(100, 4, generator=generator) * 0.05 + torch.tensor([1.0, 0, 0, 0])
    sparse = F.normalize(torch.randn(20, 4, generator=generator), dim=1)
    scores = typicality(torch.cat([dense, sparse]), k=10)
    assert scores[:100].min() > scores[100:].max()
    kept, _, _ = typical_subset(torch.cat([dense, sparse]), 10, 2, seed=0)
    assert len(kept) == 10


def test_simcore_prefers_pool_points_near_the_target(digits):
    """Pool: every other digit image; target: 100 images of 0s and 1s. SimCore's 180 are 82%
    0s and 1s (measured), where they are 15% of the pool."""
    x, y = digits
    target_rows = torch.nonzero(y <= 1).squeeze(1)[:100]
    pool_rows = torch.tensor(sorted(set(range(len(x))) - set(target_rows.tolist())))
    chosen = simcore(x[pool_rows], x[target_rows], 180, centroids=10, seed=0)
    assert len(set(chosen.tolist())) == 180
    share = float((y[pool_rows][chosen] <= 1).float().mean())
    assert share > 0.75
    with pytest.raises(ConfigError, match="same encoder"):
        simcore(x, x[:, :10], 5)


def test_sas_keeps_the_samples_most_similar_to_their_class(digits):
    """Two noisy 'views' of each digit, latent classes = the digit: in every class the kept
    half has a higher mean augmentation similarity to the class than the dropped half, and
    each class keeps its share (largest remainders) of the 900 places."""
    x, y = digits
    generator = torch.Generator().manual_seed(0)
    views = torch.stack([x + 2.0 * torch.randn(x.shape, generator=generator) for _ in range(2)])
    kept = sas_subset(views, y, 900)
    assert len(kept) == len(set(kept.tolist())) == 900
    mask = torch.zeros(len(x), dtype=torch.bool)
    mask[kept] = True
    for digit in range(10):
        members = torch.nonzero(y == digit).squeeze(1)
        similarity = augmentation_similarity(views[:, members]).fill_diagonal_(0)
        score = similarity.clamp_min(0).sum(dim=1)
        chosen = mask[members]
        assert abs(int(chosen.sum()) - len(members) * 900 / len(x)) <= 1
        assert score[chosen].mean() > score[~chosen].mean()


def test_augmentation_similarity_averages_cross_view_pairs():
    views = torch.tensor([[[1.0, 0.0], [0.0, 1.0]], [[0.0, 1.0], [0.0, 1.0]]])  # [V=2, n=2, D]
    # s_01 = mean(z_0^a . z_1^b, a != b) = (z_0^0.z_1^1 + z_0^1.z_1^0) / 2 = (0 + 1) / 2
    assert augmentation_similarity(views)[0, 1] == pytest.approx(0.5)
    assert augmentation_similarity(views)[0, 0] == pytest.approx(0.0)
