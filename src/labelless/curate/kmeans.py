"""k-means in torch (k-means++ seeding, Lloyd iterations), chunked so that no ``[N, K]`` block
exceeds ``BLOCK_BYTES``; the clusters every curation strategy and summary reads."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from labelless.errors import ConfigError, DataError

BLOCK_BYTES = 64 * 2**20  # float32 distance block of the assignment step


@dataclass
class KMeansResult:
    """``centroids [K, D]``, ``assignment [N]`` (int64) and ``distance [N]`` (Euclidean, to the
    assigned centroid)."""

    centroids: torch.Tensor
    assignment: torch.Tensor
    distance: torch.Tensor


def check_embeddings(z, what: str = "embeddings") -> torch.Tensor:
    """``z`` as a float32 ``[N, D]`` tensor with N >= 1 and finite values, else a DataError."""
    z = torch.as_tensor(z)
    if z.ndim != 2 or len(z) == 0:
        raise DataError(f"{what} must be a non-empty [N, D] array, got shape {tuple(z.shape)}")
    z = z.float()
    if not torch.isfinite(z).all():
        raise DataError(f"{what} hold NaN or infinite values: check the encoder and the data")
    return z


def nearest_centroid(z: torch.Tensor, centroids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(index [N], Euclidean distance [N])`` of each row's nearest centroid."""
    rows = max(1, BLOCK_BYTES // (4 * len(centroids)))
    squared = (centroids * centroids).sum(dim=1)
    index = torch.empty(len(z), dtype=torch.long)
    distance = torch.empty(len(z))
    for start in range(0, len(z), rows):
        block = z[start : start + rows]
        d2 = (block * block).sum(dim=1, keepdim=True) - 2 * block @ centroids.T + squared
        values, found = d2.min(dim=1)
        index[start : start + rows] = found
        distance[start : start + rows] = values.clamp_min(0).sqrt()
    return index, distance


def _plus_plus(z: torch.Tensor, clusters: int, generator: torch.Generator) -> torch.Tensor:
    """Greedy k-means++ seeding (Arthur & Vassilvitskii 2007; the greedy variant of
    scikit-learn): each next centre is the best, by the resulting potential, of ``2 + log k``
    candidates drawn with probability proportional to the squared distance to the nearest
    centre so far."""
    trials = 2 + int(math.log(clusters))
    first = int(torch.randint(len(z), (1,), generator=generator))
    centres = [first]
    d2 = ((z - z[first]) ** 2).sum(dim=1)
    for _ in range(clusters - 1):
        total = float(d2.sum())
        if total <= 0:  # fewer distinct points than clusters: any row
            candidates = torch.randint(len(z), (trials,), generator=generator)
        else:
            candidates = torch.multinomial(
                d2 / total, trials, replacement=True, generator=generator
            )
        options = torch.minimum(d2, torch.cdist(z[candidates], z).square())  # [trials, N]
        best = int(options.sum(dim=1).argmin())
        centres.append(int(candidates[best]))
        d2 = options[best]
    return z[centres].clone()


def kmeans(z, clusters: int, *, seed: int = 0, iterations: int = 50) -> KMeansResult:
    """Lloyd's k-means (1982) of ``z [N, D]`` into ``clusters`` groups, k-means++ seeded from
    ``seed``; stops when no assignment changes. An empty cluster is re-seeded at the row
    farthest from its centroid. Deterministic for a seed."""
    z = check_embeddings(z)
    if isinstance(clusters, bool) or not isinstance(clusters, int) or clusters < 1:
        raise ConfigError(f"clusters must be a whole number >= 1, got {clusters!r}")
    if clusters > len(z):
        raise ConfigError(
            f"{clusters} clusters for {len(z)} samples: use at most as many clusters as samples"
        )
    generator = torch.Generator().manual_seed(int(seed))
    centroids = _plus_plus(z, clusters, generator)
    assignment, distance = nearest_centroid(z, centroids)
    for _ in range(iterations):
        sums = torch.zeros_like(centroids).index_add_(0, assignment, z)
        counts = torch.bincount(assignment, minlength=clusters)
        empty = counts == 0
        centroids = torch.where(empty[:, None], centroids, sums / counts.clamp_min(1)[:, None])
        if empty.any():  # re-seed empty clusters at the worst-served rows
            worst = torch.topk(distance, int(empty.sum())).indices
            centroids[empty] = z[worst]
        previous = assignment
        assignment, distance = nearest_centroid(z, centroids)
        if torch.equal(previous, assignment) and not empty.any():
            break
    return KMeansResult(centroids, assignment, distance)
