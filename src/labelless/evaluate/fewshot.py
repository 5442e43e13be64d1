"""Few-shot evaluation: N labelled training samples per class, averaged over seeded draws.

Each draw picks exactly ``shots`` labelled training samples of every class (stratified, seeded),
fits a classifier on them alone and scores it on the whole test split; the protocol reports the
mean and the standard deviation over draws, as in the low-shot evaluations of self-supervised
models (e.g. MSN, Assran et al. 2022, 1-5 images per class over several splits).

Classifiers:
- ``"centroid"``: nearest class mean in cosine similarity after centring the features with the
  mean of the drawn support set (SimpleShot, Wang et al. 2019, "CL2N"); no hyperparameters.
- ``"logistic"``: the multinomial logistic regression of the linear probe on standardised
  features with a fixed weight decay (too few labels to hold out a validation split).
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F

from labelless.errors import ConfigError, DataError
from labelless.evaluate.knn import ArrayLike, as_float_tensor, as_label_tensor
from labelless.evaluate.linear import LinearHead, fit_head, standardise
from labelless.progress import task

Classifier = Literal["centroid", "logistic"]


def draw_few_shot(labels: ArrayLike, shots: int, seed: int) -> np.ndarray:
    """Sorted indices of exactly ``shots`` random samples of each class of ``labels`` (< 0: skip).

    Vectorised: one seeded permutation, a stable sort by label, and the first ``shots`` of each
    label's run. A DataError names any class with fewer than ``shots`` samples.
    """
    labels = np.asarray(torch.as_tensor(labels).cpu()).reshape(-1)
    if shots < 1:
        raise ConfigError(f"shots must be at least 1, got {shots}")
    rng = np.random.default_rng(seed)
    order = rng.permutation(np.flatnonzero(labels >= 0))
    order = order[np.argsort(labels[order], kind="stable")]
    classes, starts, counts = np.unique(labels[order], return_index=True, return_counts=True)
    if len(classes) == 0:
        raise DataError("few-shot evaluation needs labelled training samples, but none has one")
    short = classes[counts < shots]
    if len(short):
        raise DataError(
            f"classes {short.tolist()} have fewer than {shots} labelled training samples: "
            "pass fewer shots"
        )
    rank = np.arange(len(order)) - np.repeat(starts, counts)
    return np.sort(order[rank < shots])


def _predict(
    support: torch.Tensor,
    support_labels: torch.Tensor,
    queries: torch.Tensor,
    num_classes: int,
    classifier: Classifier,
    weight_decay: float,
    epochs: int,
) -> torch.Tensor:
    if classifier == "centroid":
        centre = support.mean(dim=0)
        support_n = F.normalize(support - centre, dim=1)
        sums = torch.zeros(num_classes, support.shape[1], device=support.device)
        sums.index_add_(0, support_labels, support_n)
        return (F.normalize(queries - centre, dim=1) @ F.normalize(sums, dim=1).T).argmax(dim=1)
    x, mean, std = standardise(support)
    weight, bias = fit_head(x, support_labels, weight_decay, num_classes, epochs)
    with torch.no_grad():
        return LinearHead(mean, std, weight, bias).logits(queries).argmax(dim=1)


def few_shot(
    train_z: ArrayLike,
    train_y: ArrayLike,
    test_z: ArrayLike,
    test_y: ArrayLike,
    *,
    shots: tuple[int, ...] = (1, 5, 10),
    draws: int = 5,
    classifier: Classifier = "centroid",
    weight_decay: float = 1e-2,
    epochs: int = 100,
    seed: int = 0,
) -> dict[str, Any]:
    """Test accuracy with ``shots`` labels per class, mean and std over ``draws`` seeded draws.

    Draw ``d`` of every shot count uses seed ``seed + d``. Returns ``{"<n>_shot": {"mean",
    "std", "accuracies"}}`` per shot count and a ``protocol`` entry. The std is the population
    std over draws (0 for one draw).
    """
    if classifier not in ("centroid", "logistic"):
        raise ConfigError(f"unknown few-shot classifier {classifier!r}; use centroid or logistic")
    if draws < 1:
        raise ConfigError(f"draws must be at least 1, got {draws}")
    train = as_float_tensor(train_z, "train embeddings")
    train_labels = as_label_tensor(train_y, len(train), "train labels").to(train.device)
    test = as_float_tensor(test_z, "test embeddings").to(train.device)
    test_labels = as_label_tensor(test_y, len(test), "test labels").to(train.device)
    test, test_labels = test[test_labels >= 0], test_labels[test_labels >= 0]
    if len(test) == 0:
        raise DataError("few-shot accuracy needs labelled test samples, but every label is -1")
    num_classes = int(train_labels.max()) + 1
    results: dict[str, Any] = {}
    counts = ", ".join(str(shot) for shot in shots)
    with task(f"few-shot ({counts} labels per class)", len(shots) * draws) as bar:
        for shot in shots:
            accuracies = []
            for draw in range(draws):
                index = torch.as_tensor(draw_few_shot(train_labels, shot, seed + draw))
                index = index.to(train.device)
                predicted = _predict(
                    train[index],
                    train_labels[index],
                    test,
                    num_classes,
                    classifier,
                    weight_decay,
                    epochs,
                )
                accuracies.append(float((predicted == test_labels).float().mean()))
                bar.advance()
            values = np.asarray(accuracies)
            results[f"{shot}_shot"] = {
                "mean": float(values.mean()),
                "std": float(values.std()),
                "accuracies": accuracies,
            }
    results["protocol"] = {
        "shots": list(shots),
        "draws": draws,
        "seeds": [seed + d for d in range(draws)],
        "classifier": classifier,
        "weight_decay": weight_decay if classifier == "logistic" else None,
        "selection": "none (fixed hyperparameters); stratified draws from train only",
    }
    return results
