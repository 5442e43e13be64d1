"""Selection of unlabelled data from its embeddings (``labelless curate``): near-duplicate
removal, coverage (k-centre greedy), balanced sampling over k-means clusters, typicality, SAS
(augmentation similarity within approximate latent classes) and SimCore (open-set coreset
towards a target set), with the diversity measures (Vendi score, cluster balance) recorded
before and after. Pure PyTorch over ``[N, D]`` embeddings: no Lightning, no files. Also
dataset distillation: KRR-ST (``krrst``) learns a small synthetic set of images with a
teacher's target representations, and ``synthetic`` pretrains an encoder on such a set and
saves / loads it."""

from __future__ import annotations

from labelless.curate.coverage import balanced_kmeans, k_center_greedy, typical_subset
from labelless.curate.dedup import DuplicateGroups, near_duplicates
from labelless.curate.diversity import cluster_balance, vendi_score
from labelless.curate.kmeans import KMeansResult, kmeans
from labelless.curate.krrst import KRRSTOptions, distill_dataset, krr_predict, teacher_targets
from labelless.curate.opensets import simcore
from labelless.curate.sas import augmentation_similarity, sas_subset, view_embeddings
from labelless.curate.synthetic import (
    SyntheticSet,
    load_synthetic,
    pretrain_on_synthetic,
    save_synthetic,
)
from labelless.curate.typicality import typicality

__all__ = [
    "DuplicateGroups",
    "KMeansResult",
    "KRRSTOptions",
    "SyntheticSet",
    "augmentation_similarity",
    "balanced_kmeans",
    "cluster_balance",
    "distill_dataset",
    "k_center_greedy",
    "kmeans",
    "krr_predict",
    "load_synthetic",
    "near_duplicates",
    "pretrain_on_synthetic",
    "sas_subset",
    "save_synthetic",
    "simcore",
    "teacher_targets",
    "typical_subset",
    "typicality",
    "vendi_score",
    "view_embeddings",
]
