"""Open-set coreset sampling towards a target set: SimCore (Kim et al. 2023, "Coreset sampling
from open-set for fine-grained self-supervised learning", CVPR).

The target set (a small fine-grained dataset) is summarised by k-means centroids of its
L2-normalised embeddings (the target samples themselves when there are fewer samples than
centroids); then, round after round, every centroid takes the pool sample most similar to it
(cosine) that no earlier round took: the greedy solution of their facility-location objective,
as in the authors' code. The last round is trimmed to the budget by a seeded random draw. The
authors' optional stop (when the mean similarity of a round falls below a fraction of an early
round's) is not applied: the budget decides.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from labelless.curate.coverage import check_count
from labelless.curate.kmeans import check_embeddings, kmeans
from labelless.errors import ConfigError

SIMCORE_CENTROIDS = 100  # Kim et al. 2023


def simcore(
    z_pool, z_target, keep: int, *, centroids: int = SIMCORE_CENTROIDS, seed: int = 0
) -> torch.Tensor:
    """``keep`` indices of ``z_pool [N, D]`` (in the order taken) nearest to the target set
    ``z_target [M, D]`` by SimCore's round-robin over the target's k-means centroids."""
    pool = F.normalize(check_embeddings(z_pool, "pool embeddings"), dim=1)
    target = F.normalize(check_embeddings(z_target, "target embeddings"), dim=1)
    if pool.shape[1] != target.shape[1]:
        raise ConfigError(
            f"pool embeddings have {pool.shape[1]} dimensions and target ones {target.shape[1]}: "
            "embed both with the same encoder"
        )
    keep = check_count(keep, len(pool))
    if len(target) > centroids:
        centres = F.normalize(kmeans(target, centroids, seed=seed).centroids, dim=1)
    else:
        centres = target
    depth = min(len(pool), 2 * keep + 1)  # a pointer stays below taken rows + own picks
    order = torch.topk(centres @ pool.T, depth, dim=1).indices  # [K, depth], best first
    pointer = torch.zeros(len(centres), dtype=torch.long)
    taken = torch.zeros(len(pool), dtype=torch.bool)
    chosen: list[torch.Tensor] = []
    count = 0
    generator = torch.Generator().manual_seed(int(seed))
    while count < keep:
        candidate = order.gather(1, pointer.clamp(max=depth - 1)[:, None]).squeeze(1)
        while bool(taken[candidate].any()):  # skip rows taken in earlier rounds
            pointer += taken[candidate].long()
            candidate = order.gather(1, pointer.clamp(max=depth - 1)[:, None]).squeeze(1)
        picked = torch.unique(candidate)  # centroids may share a row within a round
        if count + len(picked) > keep:
            draw = torch.randperm(len(picked), generator=generator)[: keep - count]
            picked = picked[draw.sort().values]
        taken[picked] = True
        chosen.append(picked)
        count += len(picked)
        pointer += 1
    return torch.cat(chosen)
