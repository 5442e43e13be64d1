"""The standard frozen-embedding protocol: kNN, linear probe and RankMe, with the protocol recorded
next to every number."""

from __future__ import annotations

from typing import Any

import torch

from labelless.evaluate.knn import knn_accuracy
from labelless.evaluate.linear import linear_probe
from labelless.evaluate.rankme import embedding_std, rankme


def evaluate_embeddings(
    train_z: torch.Tensor,
    train_y,
    test_z: torch.Tensor,
    test_y,
    *,
    k: int = 200,
    temperature: float = 0.1,
    linear: bool = True,
    seed: int = 0,
) -> dict[str, Any]:
    """kNN and linear-probe top-1 on ``test`` (fit on ``train``), RankMe and embedding std of the
    test embeddings; ``protocol`` says how each number was made."""
    train_y = torch.as_tensor(train_y)
    test_y = torch.as_tensor(test_y)
    results: dict[str, Any] = {
        "knn_top1": knn_accuracy(train_z, train_y, test_z, test_y, k=k, temperature=temperature),
        "rankme": rankme(test_z),
        "embedding_std": embedding_std(test_z),
    }
    protocol: dict[str, Any] = {
        "knn": {"k": k, "temperature": temperature, "similarity": "cosine", "votes": "weighted"},
        "rankme": {"rows": int(min(len(test_z), 25_600)), "split": "test"},
        "train_samples": int((train_y >= 0).sum()),
        "test_samples": len(test_y),
    }
    if linear:
        probe = linear_probe(train_z, train_y, test_z, test_y, seed=seed)
        results["linear_top1"] = probe.accuracy
        protocol["linear"] = dict(probe.protocol, weight_decay=probe.weight_decay)
    results["protocol"] = protocol
    return results
