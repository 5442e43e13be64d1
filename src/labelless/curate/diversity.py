"""How diverse a set of embeddings is: the Vendi score and the balance over clusters."""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from labelless.curate.kmeans import check_embeddings


def vendi_score(z) -> float:
    """Vendi score (Friedman & Dieng 2023, "The Vendi score: a diversity evaluation metric for
    machine learning") of ``z [N, D]`` with the cosine kernel: ``exp(-sum_i l_i log l_i)`` over
    the eigenvalues ``l_i`` of ``K / N``, ``K = Z Z^T`` (rows L2-normalised). The non-zero
    eigenvalues of ``Z Z^T / N`` are those of ``Z^T Z / N`` (``[D, D]``), which is what is
    decomposed: O(N D^2), never an ``[N, N]`` matrix. 1 for N identical points, N for N
    orthogonal ones: the effective number of distinct samples."""
    z = F.normalize(check_embeddings(z).double(), dim=1)
    eigenvalues = torch.linalg.eigvalsh(z.T @ z / len(z)).clamp_min(0)
    eigenvalues = eigenvalues[eigenvalues > 1e-12]
    eigenvalues = eigenvalues / eigenvalues.sum()
    return float(torch.exp(-(eigenvalues * eigenvalues.log()).sum()))


def cluster_balance(assignment, clusters: int) -> dict[str, Any]:
    """How evenly samples spread over ``clusters`` clusters (``assignment [N]`` cluster ids):
    ``entropy`` normalised to [0, 1] (1 = every cluster equally full), ``max_min_ratio`` (the
    fullest cluster's count over the emptiest's; None when a cluster is empty), ``empty``
    (clusters without a sample) and ``counts``."""
    counts = torch.bincount(torch.as_tensor(assignment).long(), minlength=clusters)[:clusters]
    share = counts.double() / max(int(counts.sum()), 1)
    present = share[share > 0]
    entropy = float(-(present * present.log()).sum()) / math.log(clusters) if clusters > 1 else 1.0
    entropy = max(entropy, 0.0)  # no -0.0
    low = int(counts.min())
    return {
        "clusters": clusters,
        "entropy": round(entropy, 6),
        "max_min_ratio": round(int(counts.max()) / low, 6) if low > 0 else None,
        "empty": int((counts == 0).sum()),
        "counts": [int(c) for c in counts],
    }
