"""Selection of unlabelled data from its embeddings (``labelless curate``): near-duplicate
removal, coverage (k-centre greedy), balanced sampling over k-means clusters, typicality, SAS
(augmentation similarity within approximate latent classes) and SimCore (open-set coreset
towards a target set), with the diversity measures (Vendi score, cluster balance) recorded
before and after. Pure PyTorch over ``[N, D]`` embeddings: no Lightning, no files."""

from __future__ import annotations

from labelless.curate.coverage import balanced_kmeans, k_center_greedy, typical_subset
from labelless.curate.dedup import DuplicateGroups, near_duplicates
from labelless.curate.diversity import cluster_balance, vendi_score
from labelless.curate.kmeans import KMeansResult, kmeans
from labelless.curate.opensets import simcore
from labelless.curate.sas import augmentation_similarity, sas_subset, view_embeddings
from labelless.curate.typicality import typicality

__all__ = [
    "DuplicateGroups",
    "KMeansResult",
    "augmentation_similarity",
    "balanced_kmeans",
    "cluster_balance",
    "k_center_greedy",
    "kmeans",
    "near_duplicates",
    "sas_subset",
    "simcore",
    "typical_subset",
    "typicality",
    "vendi_score",
    "view_embeddings",
]
