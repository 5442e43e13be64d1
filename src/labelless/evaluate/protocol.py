"""The standard frozen-embedding protocol, with the protocol recorded next to every number.

Labelled protocols (fit on train, scored once on test, nothing chosen on test): weighted kNN,
linear probe, few-shot, k-means clustering (NMI / ARI) and retrieval (MAP@R). Label-free
measures of the test embeddings: RankMe, embedding std, alpha-ReQ and uniformity.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from labelless.errors import DataError
from labelless.evaluate.catalog import declare_metric
from labelless.evaluate.clustering import kmeans_clustering
from labelless.evaluate.fewshot import few_shot
from labelless.evaluate.knn import knn_evaluate
from labelless.evaluate.labelfree import alpha_req, uniformity
from labelless.evaluate.linear import linear_probe
from labelless.evaluate.rankme import RANKME_MAX_SAMPLES, embedding_std, rankme
from labelless.evaluate.retrieval import retrieval_metrics

DEFAULT_SHOTS = (1, 5, 10)

# The metrics of ``evaluate_embeddings`` (and of a run's label-free final metrics), in the order
# readers show them; see ``evaluate.catalog``.
# kNN: how the neighbours were searched (``search``: backend, index, an IVF index's measured
# recall) is a record, not a setting; an approximate (IVF) search adds the setting
# ``approximate``, so its numbers are never compared with exact ones unflagged.
declare_metric("knn_top1", "kNN top-1 accuracy", "knn", charted=True, fitted=("search",))
declare_metric(
    "linear_top1",
    "linear probe top-1 accuracy",
    "linear",
    charted=True,
    fitted=("val_accuracies", "val_losses", "iterations", "weight_decay", "val_accuracy"),
)
declare_metric(
    "few_shot_{shots}_top1",
    "{shots}-shot top-1 accuracy (mean over draws)",
    "few_shot",
    fitted=("skipped_shots",),
)
declare_metric(
    "few_shot_{shots}_top1_std",
    "{shots}-shot top-1 accuracy, std over draws",
    "few_shot",
    shown=False,
    fitted=("skipped_shots",),
)
declare_metric("kmeans_nmi", "k-means NMI", "kmeans")
declare_metric("kmeans_ari", "k-means ARI", "kmeans")
declare_metric("map_at_r", "MAP@R (retrieval)", "retrieval", fitted=("r_precision",))
declare_metric("precision_at_1", "precision@1 (retrieval)", "retrieval", fitted=("r_precision",))
declare_metric("rankme", "RankMe (effective rank)", "rankme", charted=True)
declare_metric("alpha_req", "alpha-ReQ (eigenspectrum decay)", "alpha_req", best_at=1.0)
declare_metric("uniformity", "uniformity (t=2)", "uniformity", higher_is_better=False)
declare_metric("embedding_std", "std of the L2-normalised embeddings", "embedding_std")


def _few_shot(train_z, train_y, test_z, test_y, shots, draws, seed):
    counts = torch.bincount(train_y[train_y >= 0])
    smallest = int(counts[counts > 0].min())
    usable = tuple(shot for shot in shots if shot <= smallest)
    results: dict[str, Any] = {}
    protocol: dict[str, Any] = {"shots": [], "skipped_shots": [s for s in shots if s > smallest]}
    if usable:
        scores = few_shot(train_z, train_y, test_z, test_y, shots=usable, draws=draws, seed=seed)
        protocol = dict(scores.pop("protocol"), skipped_shots=protocol["skipped_shots"])
        for shot in usable:
            results[f"few_shot_{shot}_top1"] = scores[f"{shot}_shot"]["mean"]
            results[f"few_shot_{shot}_top1_std"] = scores[f"{shot}_shot"]["std"]
    return results, protocol


def _label_free(test_z) -> tuple[dict[str, Any], dict[str, Any]]:
    try:
        alpha: float | None = alpha_req(test_z)
    except DataError:  # collapsed: fewer than two positive eigenvalues
        alpha = None
    value = uniformity(test_z)
    rows = int(min(len(test_z), RANKME_MAX_SAMPLES))
    results = {
        "rankme": rankme(test_z),
        "embedding_std": embedding_std(test_z),
        "alpha_req": alpha,
        "uniformity": value if math.isfinite(value) else None,
    }
    protocol = {
        "rankme": {"rows": rows, "split": "test"},
        "alpha_req": {"rows": rows, "split": "test", "fit": "all ranks above 1e-10 * lambda_1"},
        "uniformity": {"t": 2.0, "rows": int(min(len(test_z), 10_000)), "split": "test"},
    }
    return results, protocol


def evaluate_embeddings(
    train_z: torch.Tensor,
    train_y,
    test_z: torch.Tensor,
    test_y,
    *,
    k: int = 200,
    temperature: float = 0.1,
    linear: bool = True,
    shots: tuple[int, ...] = DEFAULT_SHOTS,
    few_shot_draws: int = 5,
    clustering: bool = True,
    retrieval: bool = True,
    seed: int = 0,
    knn_search: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Every frozen-embedding metric of ``test`` (classifiers fit on ``train``) in one dict.

    Keys: ``knn_top1``, ``linear_top1`` (``linear=True``), ``few_shot_<n>_top1`` and
    ``..._std`` (mean / std over ``few_shot_draws`` draws of ``n`` labels per class; shot counts
    above the smallest train class are skipped), ``kmeans_nmi`` / ``kmeans_ari``
    (``clustering=True``; k-means on the test embeddings, k = number of classes),
    ``map_at_r`` / ``precision_at_1`` (``retrieval=True``; leave-one-out over test), and the
    label-free ``rankme``, ``embedding_std``, ``alpha_req``, ``uniformity`` of the test
    embeddings. ``protocol`` says how each number was made.

    ``knn_search`` goes to the kNN's neighbour search (``evaluate.knn_predict``: ``backend``
    auto / torch / faiss, ``nprobe``, ``ivf_min_rows``); ``protocol["knn"]["search"]`` records
    the backend, the index and, for faiss's IVF index, its recall@k against the exact search.
    Retrieval searches with the same backend, always exactly.
    """
    train_y = torch.as_tensor(train_y).long()
    test_y = torch.as_tensor(test_y).long()
    knn_search = {"seed": seed, **(knn_search or {})}
    accuracy, search = knn_evaluate(
        train_z, train_y, test_z, test_y, k=k, temperature=temperature, **knn_search
    )
    results: dict[str, Any] = {"knn_top1": accuracy}
    protocol: dict[str, Any] = {
        "knn": {"k": k, "temperature": temperature, "similarity": "cosine", "votes": "weighted"},
        "train_samples": int((train_y >= 0).sum()),
        "test_samples": len(test_y),
    }
    protocol["knn"]["search"] = search
    if search["index"] == "ivf":
        protocol["knn"]["approximate"] = {"index": "faiss ivf", "nprobe": search["nprobe"]}
    if linear:
        probe = linear_probe(train_z, train_y, test_z, test_y, seed=seed)
        results["linear_top1"] = probe.accuracy
        protocol["linear"] = dict(probe.protocol, weight_decay=probe.weight_decay)
    if shots:
        scores, protocol["few_shot"] = _few_shot(
            train_z, train_y, test_z, test_y, shots, few_shot_draws, seed
        )
        results.update(scores)
    if clustering:
        scores = kmeans_clustering(test_z, test_y, seed=seed)
        results["kmeans_nmi"], results["kmeans_ari"] = scores["nmi"], scores["ari"]
        protocol["kmeans"] = {
            "split": "test",
            "num_clusters": scores["num_clusters"],
            "features": "L2-normalised",
            "init": "k-means++, 3 restarts (lowest inertia)",
            "seed": seed,
        }
    if retrieval:
        scores = retrieval_metrics(test_z, test_y, backend=knn_search.get("backend", "auto"))
        results["map_at_r"] = scores["map_at_r"]
        results["precision_at_1"] = scores["precision_at_1"]
        protocol["retrieval"] = {
            "split": "test, each query against the rest (leave-one-out)",
            "similarity": "cosine",
            "r": "number of other test samples of the query's class",
            "r_precision": scores["r_precision"],
            "num_queries": scores["num_queries"],
        }
    label_free, label_free_protocol = _label_free(test_z)
    results.update(label_free)
    protocol.update(label_free_protocol)
    results["protocol"] = protocol
    return results
