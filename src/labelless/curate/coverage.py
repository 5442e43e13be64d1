"""Subsets that cover the embedding space: k-centre greedy, balanced sampling over k-means
clusters, and the most typical samples of each cluster (TypiClust)."""

from __future__ import annotations

import torch

from labelless.curate.kmeans import KMeansResult, check_embeddings, kmeans
from labelless.curate.typicality import TYPICALITY_K, typicality
from labelless.errors import ConfigError


def check_count(keep: int, pool: int) -> int:
    """A number of samples to keep: a whole number in [1, pool]."""
    if isinstance(keep, bool) or not isinstance(keep, int) or not 1 <= keep <= pool:
        raise ConfigError(f"the number of samples to keep must be between 1 and {pool}, got {keep}")
    return keep


def k_center_greedy(z, k: int, *, seed: int = 0) -> tuple[torch.Tensor, float]:
    """Greedy k-centre (Sener & Savarese 2018, "Active learning for convolutional neural
    networks: a core-set approach"; Gonzalez 1985): start at a seeded random row of ``z [N, D]``,
    then repeatedly add the row farthest (Euclidean) from its nearest chosen centre. Returns
    ``(indices [k] in the order chosen, covering radius)``; the radius, the largest distance of
    a row to its nearest centre, is at most twice the optimal k-centre radius. O(N D k), one
    ``[N]`` distance update per centre."""
    z = check_embeddings(z)
    k = check_count(k, len(z))
    generator = torch.Generator().manual_seed(int(seed))
    first = int(torch.randint(len(z), (1,), generator=generator))
    chosen = torch.empty(k, dtype=torch.long)
    chosen[0] = first
    nearest = (z - z[first]).norm(dim=1)
    for step in range(1, k):
        farthest = int(nearest.argmax())
        chosen[step] = farthest
        torch.minimum(nearest, (z - z[farthest]).norm(dim=1), out=nearest)
    return chosen, float(nearest.max())


def covering_radius(z, centres) -> float:
    """The largest distance of a row of ``z [N, D]`` to its nearest row of ``z[centres]``."""
    z = check_embeddings(z)
    return float(torch.cdist(z, z[torch.as_tensor(centres)]).min(dim=1).values.max())


def _within_rank(cluster: torch.Tensor, key: torch.Tensor, clusters: int) -> torch.Tensor:
    """Each sample's rank inside its cluster by ascending ``key`` (0 = first chosen)."""
    order = torch.sort(key, stable=True).indices
    order = order[torch.sort(cluster[order], stable=True).indices]  # by cluster, then key
    starts = torch.cumsum(torch.bincount(cluster, minlength=clusters), 0) - torch.bincount(
        cluster, minlength=clusters
    )
    rank = torch.empty_like(cluster)
    rank[order] = torch.arange(len(cluster)) - starts[cluster[order]]
    return rank


def quota_select(
    cluster: torch.Tensor, clusters: int, keep: int, within: torch.Tensor, leftover: torch.Tensor
) -> torch.Tensor:
    """``keep`` indices spread as evenly as possible over the clusters: the largest quota ``q``
    with ``sum_c min(size_c, q) <= keep`` is taken from every cluster (its first samples by
    ascending ``within``), and the few places left go to the next sample of the clusters that
    still have one, by ascending ``leftover``. Sorted indices."""
    sizes = torch.bincount(cluster, minlength=clusters)
    low, high = 0, int(sizes.max())
    while low < high:  # the largest q whose total fits
        middle = (low + high + 1) // 2
        if int(sizes.clamp(max=middle).sum()) <= keep:
            low = middle
        else:
            high = middle - 1
    rank = _within_rank(cluster, within, clusters)
    selected = rank < low
    missing = keep - int(selected.sum())
    if missing > 0:
        candidates = torch.nonzero(rank == low).squeeze(1)
        best = torch.sort(leftover[candidates], stable=True).indices[:missing]
        selected[candidates[best]] = True
    return torch.nonzero(selected).squeeze(1)


def balanced_kmeans(
    z, keep: int, clusters: int, *, seed: int = 0, within: str = "random"
) -> tuple[torch.Tensor, KMeansResult]:
    """``keep`` rows of ``z [N, D]`` with an equal quota from each of ``clusters`` k-means
    clusters (a cluster smaller than the quota gives all it has, the rest is shared among the
    others), leftovers by distance to the centroid. Inside a cluster the rows are a seeded random
    draw (``within="random"``, as the balanced sampling of Vo et al. 2024, "Automatic data
    curation for self-supervised learning: a clustering-based approach") or the nearest to the
    centroid (``"nearest"``). Returns ``(sorted indices, the k-means result)``."""
    z = check_embeddings(z)
    keep = check_count(keep, len(z))
    if within not in ("random", "nearest"):
        raise ConfigError(f"within must be random or nearest, got {within!r}")
    result = kmeans(z, clusters, seed=seed)
    if within == "random":
        key = torch.rand(len(z), generator=torch.Generator().manual_seed(int(seed) + 1))
    else:
        key = result.distance
    return quota_select(result.assignment, clusters, keep, key, result.distance), result


def typical_subset(
    z, keep: int, clusters: int, *, seed: int = 0, k: int = TYPICALITY_K
) -> tuple[torch.Tensor, KMeansResult, torch.Tensor]:
    """The most typical rows of each k-means cluster, ``keep`` in all with equal quotas:
    TypiClust (Hacohen et al. 2022) picks the most typical sample of each of ``budget``
    clusters; with fewer clusters than places each cluster gives its quota of most typical
    samples. Returns ``(sorted indices, k-means result, typicality [N])``."""
    z = check_embeddings(z)
    keep = check_count(keep, len(z))
    result = kmeans(z, clusters, seed=seed)
    scores = typicality(z, k)
    return quota_select(result.assignment, clusters, keep, -scores, -scores), result, scores
