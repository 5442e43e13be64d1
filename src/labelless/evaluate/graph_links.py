"""Link prediction on frozen node embeddings (GAE, Kipf & Welling 2016): the ROC AUC and
average precision with which a pair score (dot product or cosine) separates held-out edges from
sampled non-edges. The split (edges held out in both directions, negatives that are not edges)
is ``labelless.data.graph_splits.split_edges``; the embeddings must come from its training graph.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from labelless.data.graph_splits import EdgeSplit
from labelless.errors import ConfigError, DataError
from labelless.evaluate.knn import ArrayLike, as_float_tensor


@dataclass
class LinkResult:
    """ROC AUC and average precision of held-out edges against non-edges, and the protocol."""

    auc: float
    ap: float
    protocol: dict[str, Any] = field(default_factory=dict)


def pair_scores(z: torch.Tensor, pairs: torch.Tensor, score: str = "dot") -> torch.Tensor:
    """``[M]`` scores of node pairs ``[2, M]``: ``z_u . z_v`` or their cosine."""
    if score not in ("dot", "cosine"):
        raise ConfigError(f"score must be 'dot' or 'cosine', got {score!r}")
    if score == "cosine":
        z = F.normalize(z, dim=1)
    return (z[pairs[0]] * z[pairs[1]]).sum(1)


def link_auc(z: ArrayLike, pos: ArrayLike, neg: ArrayLike, *, score: str = "dot") -> LinkResult:
    """ROC AUC (and average precision) of the pair score (``pair_scores``; GAE's decoder is
    ``sigmoid(z_u . z_v)``, a monotone map of the dot product, so the same AUC) separating the
    edges ``pos [2, P]`` from the non-edges ``neg [2, M]``."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    x = as_float_tensor(z, "node embeddings")
    pos, neg = torch.as_tensor(pos).long(), torch.as_tensor(neg).long()
    if pos.ndim != 2 or neg.ndim != 2 or pos.shape[0] != 2 or neg.shape[0] != 2:
        raise DataError("pos and neg must be [2, M] node pairs")
    if pos.shape[1] == 0 or neg.shape[1] == 0:
        raise DataError("link AUC needs at least one positive and one negative pair")
    scores = torch.cat([pair_scores(x, pos, score), pair_scores(x, neg, score)]).cpu().numpy()
    truth = np.r_[np.ones(pos.shape[1]), np.zeros(neg.shape[1])]
    protocol = {
        "score": {"dot": "dot product z_u . z_v", "cosine": "cosine similarity"}[score],
        "positives": int(pos.shape[1]),
        "negatives": int(neg.shape[1]),
    }
    return LinkResult(
        float(roc_auc_score(truth, scores)), float(average_precision_score(truth, scores)), protocol
    )


def link_prediction(z: ArrayLike, split: EdgeSplit, *, score: str = "dot") -> dict[str, Any]:
    """Validation and test link AUC / AP of embeddings ``z`` computed on ``split.train_graph``
    (the encoder must never see the held-out edges): ``{"val_auc", "val_ap", "test_auc",
    "test_ap", "protocol"}`` with the split's record."""
    test = link_auc(z, split.test_pos, split.test_neg, score=score)
    result: dict[str, Any] = {"test_auc": test.auc, "test_ap": test.ap}
    if split.val_pos.shape[1]:
        val = link_auc(z, split.val_pos, split.val_neg, score=score)
        result.update(val_auc=val.auc, val_ap=val.ap)
    result["protocol"] = {
        **test.protocol,
        "split": split.protocol,
        "embeddings": "of the training graph (held-out edges removed in both directions)",
    }
    return result
