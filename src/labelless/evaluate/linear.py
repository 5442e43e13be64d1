"""Linear probe: a softmax classifier on frozen embeddings, weight decay chosen on train only.

The standard linear evaluation of self-supervised representations (e.g. SimCLR, Chen et al. 2020,
Appendix B.6; Kolesnikov et al. 2019): standardise the features, fit a multinomial logistic
regression with full-batch L-BFGS, choose the L2 penalty on a validation split carved out of the
training set, refit on the whole training set and report test accuracy once. The features are
embedded once; every weight decay of the grid is fitted in the same passes over them (one head
per decay, ``evaluate.softmax``), and all heads are scored on the validation split at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from labelless.errors import ConfigError, DataError
from labelless.evaluate.knn import ArrayLike, as_float_tensor, as_label_tensor
from labelless.evaluate.softmax import fit_softmax_heads, score_heads
from labelless.progress import SILENT, Task, task

DEFAULT_WEIGHT_DECAYS = (0.0, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1)


@dataclass
class LinearProbeResult:
    """Test accuracy of the refitted probe, the chosen weight decay and how it was chosen."""

    accuracy: float
    weight_decay: float
    val_accuracy: float
    protocol: dict[str, Any] = field(default_factory=dict)


@dataclass
class LinearHead:
    mean: torch.Tensor
    std: torch.Tensor
    weight: torch.Tensor  # [C, D], nn.Linear's layout
    bias: torch.Tensor

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear((x - self.mean) / self.std, self.weight, self.bias)


def _labelled(z: ArrayLike, y: ArrayLike, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    features = as_float_tensor(z, f"{split} embeddings")
    labels = as_label_tensor(y, len(features), f"{split} labels").to(features.device)
    keep = labels >= 0
    if not bool(keep.any()):
        raise DataError(f"the linear probe needs labelled {split} samples, but every label is -1")
    return features[keep], labels[keep]


def stratified_split(labels: np.ndarray, val_fraction: float, seed: int):
    """Indices ``(fit, val)``: a seeded ``val_fraction`` of every class goes to ``val``."""
    rng = np.random.default_rng(seed)
    fit, val = [], []
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        num_val = round(val_fraction * len(members))
        val.append(members[:num_val])
        fit.append(members[num_val:])
    return np.sort(np.concatenate(fit)), np.sort(np.concatenate(val))


def standardise(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    mean, std = x.mean(dim=0), x.std(dim=0).clamp_min(1e-6)
    return (x - mean).div_(std), mean, std


def fit_head(
    x: torch.Tensor,
    y: torch.Tensor,
    weight_decay: float,
    num_classes: int,
    epochs: int,
    start: tuple[torch.Tensor, torch.Tensor] | None = None,
    *,
    bar: Task = SILENT,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Multinomial logistic regression on standardised ``x [N, D]``: loss = CE + wd/2 ||W||^2.

    Full-batch L-BFGS (``evaluate.softmax``, one head) in float32 for at most ``epochs``
    iterations, from zero or from ``start = (weight, bias)`` (a warm start); returns
    ``(weight [C, D], bias [C])``. ``bar`` advances once per pass over the rows.
    """
    if start is not None:
        start = (start[0].unsqueeze(0), start[1].unsqueeze(0))
    fit = fit_softmax_heads(x, y, [weight_decay], num_classes, epochs, start, bar=bar)
    return fit.weight[0], fit.bias[0]


def _score(probe: LinearHead, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """Accuracy and mean cross-entropy of ``probe`` on raw features ``x``."""
    weight, bias = probe.weight.unsqueeze(0), probe.bias.unsqueeze(0)
    accuracies, losses = score_heads(x, y, weight, bias, probe.mean, probe.std)
    return accuracies[0], losses[0]


def validation_curve(
    train: torch.Tensor,
    labels: torch.Tensor,
    weight_decays: tuple[float, ...],
    num_classes: int,
    epochs: int,
    val_fraction: float,
    seed: int,
    bar: Task = SILENT,
) -> dict[str, Any]:
    """Every weight decay fitted at once on a seeded stratified split of train and scored on
    the rest (the test set is never seen).

    Returns ``chosen`` (the decay with the best validation accuracy; ties: the lower validation
    loss, then the larger decay), ``val_accuracy`` (its accuracy), ``val_accuracies`` and
    ``val_losses`` (the curve, keyed by ``repr(decay)``), ``params`` (the chosen fit's
    ``(weight, bias)`` in the fit split's standardisation), ``iterations`` (L-BFGS iterations
    of each head) and ``passes`` (passes over the fit split, all heads together).
    """
    fit_index, val_index = stratified_split(labels.cpu().numpy(), val_fraction, seed)
    if len(val_index) == 0 or len(fit_index) == 0:
        raise DataError(
            f"{len(train)} labelled train samples are too few to hold out a validation split: "
            "label more samples or pass a single weight decay"
        )
    fit_index = torch.as_tensor(fit_index, device=train.device)
    val_index = torch.as_tensor(val_index, device=train.device)
    fit_x, mean, std = standardise(train[fit_index])
    decays = sorted((float(w) for w in weight_decays), reverse=True)
    fit = fit_softmax_heads(fit_x, labels[fit_index], decays, num_classes, epochs, bar=bar)
    del fit_x
    # Every head scored in the same products over the validation rows.
    val_x, val_y = train[val_index], labels[val_index]
    accuracies, losses = score_heads(val_x, val_y, fit.weight, fit.bias, mean, std)
    # Ties: the lower validation loss, then the larger decay (met first).
    best = max(range(len(decays)), key=lambda h: (accuracies[h], -losses[h], -h))
    return {
        "chosen": decays[best],
        "val_accuracy": accuracies[best],
        "val_accuracies": {repr(w): a for w, a in zip(decays, accuracies, strict=True)},
        "val_losses": {repr(w): v for w, v in zip(decays, losses, strict=True)},
        "params": (fit.weight[best], fit.bias[best]),
        "iterations": {repr(w): int(i) for w, i in zip(decays, fit.iterations, strict=True)},
        "passes": fit.passes,
    }


def linear_probe(
    train_z: ArrayLike,
    train_y: ArrayLike,
    test_z: ArrayLike,
    test_y: ArrayLike,
    *,
    weight_decays: tuple[float, ...] = DEFAULT_WEIGHT_DECAYS,
    val_fraction: float = 0.2,
    epochs: int = 100,
    seed: int = 0,
) -> LinearProbeResult:
    """Linear-probe test accuracy of frozen embeddings; nothing is chosen on the test set.

    Args:
        train_z, test_z: ``[N, D]`` and ``[M, D]`` embeddings (numpy or torch, any device).
        train_y, test_y: ``[N]`` and ``[M]`` integer labels; -1 entries are dropped.
        weight_decays: L2 penalties tried; the one with the best accuracy (ties: lower loss) on
            a seeded, stratified ``val_fraction`` of the training set is used for the refit.
        epochs: most L-BFGS iterations of each fit, each one or more full-batch passes over
            the training features (the line search); every decay of the grid is fitted in the
            same passes.
        seed: seed of the validation split (the fits are deterministic: zero init; the refit
            starts from the chosen fit).

    Features are standardised with the mean / std of the training data each fit sees. The
    number of classes is ``max(train label) + 1``: test labels are read only to score the
    final probe (a test class absent from train counts as an error).
    """
    if not weight_decays:
        raise ConfigError("weight_decays is empty: give at least one value, e.g. (0.0, 1e-4)")
    if not 0.0 < val_fraction < 1.0 and len(weight_decays) > 1:
        raise ConfigError(
            f"val_fraction must be in (0, 1) to choose weight decay, got {val_fraction}"
        )
    train, train_labels = _labelled(train_z, train_y, "train")
    test, test_labels = _labelled(test_z, test_y, "test")
    test, test_labels = test.to(train.device), test_labels.to(train.device)
    num_classes = int(train_labels.max()) + 1

    curve: dict[str, Any] = {"chosen": float(weight_decays[0]), "val_accuracy": float("nan")}
    with task("linear probe") as bar:
        if len(weight_decays) > 1:
            curve = validation_curve(
                train, train_labels, weight_decays, num_classes, epochs, val_fraction, seed, bar
            )
        x, mean, std = standardise(train)
        chosen = curve["chosen"]
        fitted = fit_head(
            x, train_labels, chosen, num_classes, epochs, curve.get("params"), bar=bar
        )
    probe = LinearHead(mean, std, *fitted)
    del x
    test_accuracy, _ = _score(probe, test, test_labels)  # the one use of the test split
    protocol = {
        "classifier": "linear softmax on standardised features",
        "optimizer": "lbfgs (full batch, float32, Armijo backtracking; one head per weight "
        "decay, fitted together in the same passes)",
        "warm_start": "every decay from zero; refit on all train from the chosen fit",
        "epochs": epochs,
        "weight_decays": [float(w) for w in weight_decays],
        "selection": "best accuracy (ties: lower loss) on a stratified validation split of "
        "train; refit on all train; test scored once",
        "val_fraction": val_fraction,
        "val_accuracies": curve.get("val_accuracies", {}),
        "val_losses": curve.get("val_losses", {}),
        "iterations": curve.get("iterations", {}),
        "seed": seed,
        "num_classes": num_classes,
        "num_train": len(train),
        "num_test": len(test),
    }
    return LinearProbeResult(test_accuracy, chosen, curve["val_accuracy"], protocol)
