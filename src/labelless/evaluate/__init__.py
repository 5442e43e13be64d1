"""Evaluation of embeddings: labelled protocols on frozen embeddings (kNN, linear probe,
few-shot, k-means NMI/ARI, retrieval MAP@R), label-free measures (RankMe, alpha-ReQ, LiDAR,
alignment, uniformity, embedding std), embedding itself (also split over processes:
``embed_distributed``) and label-free run selection."""

from __future__ import annotations

from labelless.evaluate.clustering import cluster_scores, kmeans_clustering
from labelless.evaluate.distributed import embed_distributed, embed_shard, merge_embeddings
from labelless.evaluate.embed import embed
from labelless.evaluate.fewshot import draw_few_shot, few_shot
from labelless.evaluate.knn import knn_accuracy, knn_evaluate, knn_predict
from labelless.evaluate.labelfree import alignment, alpha_req, eigenspectrum, lidar, uniformity
from labelless.evaluate.linear import LinearProbeResult, linear_probe
from labelless.evaluate.neighbours import top_k_similar
from labelless.evaluate.protocol import evaluate_embeddings
from labelless.evaluate.rankme import effective_rank, embedding_std, rankme
from labelless.evaluate.retrieval import map_at_r, retrieval_metrics

__all__ = [
    "LinearProbeResult",
    "alignment",
    "alpha_req",
    "cluster_scores",
    "draw_few_shot",
    "effective_rank",
    "eigenspectrum",
    "embed",
    "embed_distributed",
    "embed_shard",
    "embedding_std",
    "evaluate_embeddings",
    "few_shot",
    "kmeans_clustering",
    "knn_accuracy",
    "knn_evaluate",
    "knn_predict",
    "lidar",
    "linear_probe",
    "map_at_r",
    "merge_embeddings",
    "rankme",
    "retrieval_metrics",
    "top_k_similar",
    "uniformity",
]
