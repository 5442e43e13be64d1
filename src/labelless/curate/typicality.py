"""Typicality: how dense the embedding space is around a sample.

Hacohen, Dekel & Weinshall 2022, "Active learning on a budget: opposite strategies suit high and
low budgets" (TypiClust): ``typicality(x) = 1 / mean_{x_i in kNN(x)} ||x - x_i||_2`` with k = 20,
on L2-normalised self-supervised embeddings. The neighbours come from
``labelless.evaluate.neighbours.search`` (chunked torch, or faiss's exact flat index when
installed), leave-one-out.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from labelless.curate.kmeans import check_embeddings
from labelless.errors import ConfigError

TYPICALITY_K = 20  # Hacohen et al. 2022


def typicality(z, k: int = TYPICALITY_K) -> torch.Tensor:
    """``[N]`` typicality of each row of ``z [N, D]`` (cosine geometry: rows L2-normalised, so
    ``||x - y|| = sqrt(2 - 2 cos)``) over its ``k`` nearest other rows (fewer when N <= k)."""
    from labelless.evaluate.neighbours import search

    z = F.normalize(check_embeddings(z), dim=1)
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ConfigError(f"typicality k must be a whole number >= 1, got {k!r}")
    if len(z) < 2:
        return torch.ones(len(z))
    k = min(k, len(z) - 1)
    similarity, _, _ = search(z, z, k, self_offset=0, backend="auto")
    distance = (2 - 2 * similarity.clamp(max=1)).clamp_min(0).sqrt()
    return 1.0 / distance.mean(dim=1).clamp_min(1e-6)
