"""Evaluation of embeddings: kNN, linear probe, label-free RankMe / std, and embedding itself."""

from __future__ import annotations

from labelless.evaluate.embed import embed
from labelless.evaluate.knn import knn_accuracy, knn_predict
from labelless.evaluate.linear import LinearProbeResult, linear_probe
from labelless.evaluate.rankme import embedding_std, rankme

__all__ = [
    "LinearProbeResult",
    "embed",
    "embedding_std",
    "knn_accuracy",
    "knn_predict",
    "linear_probe",
    "rankme",
]
