"""Retrieval quality of embeddings: MAP@R, R-precision and precision@1.

Musgrave, Belongie & Lim 2020, "A Metric Learning Reality Check", Section 3.2: for a query with
``R`` relevant references (same label), retrieve its ``R`` nearest neighbours and score

    AP@R = (1 / R) * sum_{i=1..R} P(i) * rel(i),

where ``rel(i)`` is 1 when the i-th neighbour is relevant and ``P(i)`` the precision of the first
``i`` neighbours. MAP@R is the mean over queries; unlike recall@1 it rewards the whole ranking of
the relevant set, and unlike plain mAP it does not depend on the ordering far down the list.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from labelless.errors import DataError
from labelless.evaluate.knn import ArrayLike, as_float_tensor, as_label_tensor
from labelless.evaluate.neighbours import Backend, top_k_similar
from labelless.progress import task

RESULT_BYTES = 128 * 2**20  # bound on the [queries, R_max] neighbour lists held at once


def _labelled(z: ArrayLike, y: ArrayLike, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    features = as_float_tensor(z, f"{name} embeddings")
    labels = as_label_tensor(y, len(features), f"{name} labels").to(features.device)
    keep = labels >= 0
    if not bool(keep.any()):
        raise DataError(f"retrieval needs labelled {name} samples, but every label is -1")
    return F.normalize(features[keep], dim=1), labels[keep]


def _scores(relevant: torch.Tensor, num_relevant: torch.Tensor) -> torch.Tensor:
    """``[M, 3]``: AP@R, R-precision and precision@1 of each query's ranked relevance list."""
    positions = torch.arange(1, relevant.shape[1] + 1, device=relevant.device)
    within_r = positions.unsqueeze(0) <= num_relevant.unsqueeze(1)
    hits = (relevant & within_r).float()
    precision_at_i = hits.cumsum(dim=1) / positions
    r = num_relevant.float()
    average_precision = (precision_at_i * hits).sum(dim=1) / r
    r_precision = hits.sum(dim=1) / r
    return torch.stack([average_precision, r_precision, relevant[:, 0].float()], dim=1)


def retrieval_metrics(
    query_z: ArrayLike,
    query_y: ArrayLike,
    reference_z: ArrayLike | None = None,
    reference_y: ArrayLike | None = None,
    *,
    backend: Backend = "auto",
) -> dict[str, float]:
    """MAP@R (Musgrave et al. 2020), R-precision and precision@1 under cosine similarity.

    Args:
        query_z, query_y: ``[M, D]`` embeddings and ``[M]`` labels (-1: unlabelled, dropped).
        reference_z, reference_y: the searched set; None searches the queries themselves,
            leaving each query out of its own list (the paper's protocol on a test split).
        backend: neighbour search (``evaluate.neighbours``): ``auto``, ``torch`` or ``faiss``.

    ``R`` of a query is the number of references with its label (excluding itself); queries
    with ``R = 0`` are skipped and counted in ``num_queries_skipped``.
    """
    queries, query_labels = _labelled(query_z, query_y, "query")
    same = reference_z is None
    if same:
        references, reference_labels = queries, query_labels
    else:
        if reference_y is None:
            raise DataError("reference_z was given without reference_y: pass both, or neither")
        references, reference_labels = _labelled(reference_z, reference_y, "reference")
        references = references.to(queries.device)
        reference_labels = reference_labels.to(queries.device)
        if references.shape[1] != queries.shape[1]:
            raise DataError("query and reference embeddings differ in dimension: same encoder?")
    counts = torch.bincount(reference_labels, minlength=int(query_labels.max()) + 1)
    num_relevant = counts[query_labels] - int(same)
    max_k = len(references) - int(same)
    num_relevant = num_relevant.clamp(max=max_k)
    keep = num_relevant > 0
    if not bool(keep.any()):
        raise DataError("no query has a relevant reference (same label): retrieval is undefined")

    k = int(num_relevant.max())
    chunk = max(1, RESULT_BYTES // (12 * k))
    totals = torch.zeros(3, dtype=torch.float64)
    starts = range(0, len(queries), chunk)
    with task("retrieval (MAP@R)", len(starts)) as bar:
        for start in starts:
            stop = min(start + chunk, len(queries))
            _, index = top_k_similar(
                queries[start:stop],
                references,
                k,
                self_offset=start if same else None,
                backend=backend,
            )
            index = index.to(queries.device)
            rows = keep[start:stop]
            relevant = reference_labels[index[rows]] == query_labels[start:stop][rows].unsqueeze(1)
            totals += _scores(relevant, num_relevant[start:stop][rows]).double().sum(dim=0).cpu()
            bar.advance()
    count = int(keep.sum())
    map_r, r_precision, precision_1 = (totals / count).tolist()
    return {
        "map_at_r": map_r,
        "r_precision": r_precision,
        "precision_at_1": precision_1,
        "num_queries": count,
        "num_queries_skipped": int((~keep).sum()),
    }


def map_at_r(
    query_z: ArrayLike,
    query_y: ArrayLike,
    reference_z: ArrayLike | None = None,
    reference_y: ArrayLike | None = None,
    **kwargs,
) -> float:
    """MAP@R alone; see :func:`retrieval_metrics` for the arguments."""
    return retrieval_metrics(query_z, query_y, reference_z, reference_y, **kwargs)["map_at_r"]
