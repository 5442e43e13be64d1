"""k-means clustering of embeddings, scored against labels with NMI and ARI.

A label-light view of how well the classes form separate groups without any training on labels:
k-means (Lloyd 1982, k-means++ seeding, Arthur & Vassilvitskii 2007) with as many clusters as
classes on L2-normalised embeddings, as in the clustering evaluations of self-supervised models
(e.g. SCAN, Van Gansbeke et al. 2020, k-means baseline). Scores: normalised mutual information
(Strehl & Ghosh 2002, arithmetic normalisation) and the adjusted Rand index (Hubert & Arabie
1985); both are 1 for a clustering equal to the labels up to renaming and about 0 for chance.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from labelless.errors import ConfigError, DataError
from labelless.evaluate.knn import ArrayLike, as_float_tensor, as_label_tensor
from labelless.progress import task


def cluster_scores(predicted: ArrayLike, labels: ArrayLike) -> dict[str, float]:
    """NMI and ARI of a cluster assignment ``[N]`` against integer ``labels [N]``."""
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    predicted = np.asarray(torch.as_tensor(predicted).cpu()).reshape(-1)
    labels = np.asarray(torch.as_tensor(labels).cpu()).reshape(-1)
    if len(predicted) != len(labels):
        raise DataError(f"{len(predicted)} cluster ids for {len(labels)} labels: pass one each")
    return {
        "nmi": float(normalized_mutual_info_score(labels, predicted)),
        "ari": float(adjusted_rand_score(labels, predicted)),
    }


def kmeans_clustering(
    z: ArrayLike,
    y: ArrayLike,
    *,
    num_clusters: int | None = None,
    n_init: int = 3,
    max_iter: int = 100,
    normalize: bool = True,
    seed: int = 0,
) -> dict[str, Any]:
    """NMI / ARI of k-means clusters of ``z [N, D]`` against labels ``y [N]`` (-1: dropped).

    Args:
        num_clusters: clusters to fit; default the number of distinct labels.
        n_init: k-means++ restarts; the one with the lowest inertia is kept (labels unused).
        max_iter: Lloyd iterations per restart.
        normalize: L2-normalise the embeddings first (cosine geometry, as kNN uses).
        seed: seed of the k-means++ seeding.

    Returns ``{"nmi", "ari", "num_clusters", "inertia"}``.
    """
    from sklearn.cluster import KMeans

    features = as_float_tensor(z, "embeddings")
    labels = as_label_tensor(y, len(features), "labels").to(features.device)
    keep = labels >= 0
    features, labels = features[keep], labels[keep].cpu()
    num_labels = int(labels.unique().numel())
    if num_labels < 2:
        raise DataError(f"clustering scores need at least 2 labelled classes, got {num_labels}")
    num_clusters = num_labels if num_clusters is None else num_clusters
    if not 2 <= num_clusters <= len(features):
        raise ConfigError(
            f"num_clusters={num_clusters} must be between 2 and the {len(features)} samples"
        )
    if normalize:
        features = F.normalize(features, dim=1)
    kmeans = KMeans(num_clusters, n_init=n_init, max_iter=max_iter, random_state=seed)
    with task(f"k-means ({num_clusters} clusters)"):
        assigned = kmeans.fit_predict(features.cpu().numpy())
    scores = cluster_scores(assigned, labels)
    return {**scores, "num_clusters": num_clusters, "inertia": float(kmeans.inertia_)}
