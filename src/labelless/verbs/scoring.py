"""The final metrics of an encoder on a train -> test pair: one function for the end of a
pretraining run and for ``labelless evaluate``.

Labelled classes get every frozen-embedding protocol (``evaluate.evaluate_embeddings``); data
without labels gets the label-free measures; numeric targets get ridge regression
(``evaluate.regression``); the modality adds its own protocols (``Modality.protocols``: the
series' SVM, the tables' trained heads). Each protocol's settings go under its own key of
``protocol``; a collapsed-looking encoder gets a warning.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from labelless.data import Dataset
from labelless.modalities import modality_of


def label_free(z: torch.Tensor) -> dict[str, Any]:
    """The measures that need no labels, for any split."""
    from labelless.evaluate import embedding_std, rankme

    return {"rankme": rankme(z), "embedding_std": embedding_std(z), "protocol": {}}


def warn_if_collapsed(metrics: dict[str, Any], z: torch.Tensor, split: str) -> None:
    from labelless.evaluate.checks import warn_if_collapsed as warn

    if "rankme" in metrics:
        warn(metrics["rankme"], metrics["embedding_std"], z.shape[1], f"on {split}")


def score(
    encoder: nn.Module,
    train: Dataset,
    test: Dataset,
    train_z: torch.Tensor,
    test_z: torch.Tensor,
    *,
    k: int = 200,
    temperature: float = 0.1,
    seed: int = 0,
    trained_heads: bool = False,
    label: str | None = None,
    knn_search: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Every metric of the embeddings ``train_z`` / ``test_z`` of ``train`` / ``test``, with its
    protocol. ``trained_heads`` adds the modality's protocols that train networks (slower;
    ``labelless evaluate`` runs them, the end of a pretraining run does not). ``label`` names
    the test data in the collapse warning; ``knn_search`` goes to the kNN's neighbour search
    (``backend``, ``nprobe``, ``ivf_min_rows``)."""
    from labelless.evaluate.protocol import evaluate_embeddings
    from labelless.evaluate.regression import ridge_rmse

    if train.has_labels and test.has_labels:
        metrics = evaluate_embeddings(
            train_z,
            train.labels,
            test_z,
            test.labels,
            k=k,
            temperature=temperature,
            seed=seed,
            knn_search=knn_search,
        )
    else:
        metrics = label_free(test_z)
    protocol = metrics["protocol"]
    if train.targets is not None and test.targets is not None:
        ridge = ridge_rmse(train_z, train, test_z, test)
        protocol.update(ridge.pop("protocol"))
        metrics.update(ridge)
    extra, records = modality_of(encoder).protocols(
        encoder, train, test, train_z, test_z, seed=seed, trained_heads=trained_heads
    )
    metrics.update(extra)
    protocol.update(records, train_split=train.name, test_split=test.name)
    warn_if_collapsed(metrics, test_z, label or test.name)
    return metrics
