"""Linear probe: a softmax classifier on frozen embeddings, weight decay chosen on train only.

The standard linear evaluation of self-supervised representations (e.g. SimCLR, Chen et al. 2020,
Appendix B.6; Kolesnikov et al. 2019): standardise the features, fit a multinomial logistic
regression with full-batch L-BFGS, choose the L2 penalty on a validation split carved out of the
training set, refit on the whole training set and report test accuracy once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from labelless.errors import ConfigError, DataError
from labelless.evaluate.knn import ArrayLike, as_float_tensor, as_label_tensor

DEFAULT_WEIGHT_DECAYS = (0.0, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2)


@dataclass
class LinearProbeResult:
    """Test accuracy of the refitted probe, the chosen weight decay and how it was chosen."""

    accuracy: float
    weight_decay: float
    val_accuracy: float
    protocol: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Probe:
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


def _fit(x: torch.Tensor, y: torch.Tensor, weight_decay: float, num_classes: int, epochs: int):
    """Multinomial logistic regression on standardised ``x``; loss = CE + wd/2 * ||W||^2."""
    mean, std = x.mean(dim=0), x.std(dim=0).clamp_min(1e-6)
    x = (x - mean) / std
    # [C, D] as in nn.Linear: the weight gradient is then grad.T @ x, ~3x faster on CPU than
    # x.T @ grad for a [D, C] weight (x.T is a strided view).
    weight = torch.zeros(num_classes, x.shape[1], device=x.device, requires_grad=True)
    bias = torch.zeros(num_classes, device=x.device, requires_grad=True)
    optimizer = torch.optim.LBFGS(
        [weight, bias], lr=1.0, max_iter=epochs, history_size=10, line_search_fn="strong_wolfe"
    )

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = (
            F.cross_entropy(F.linear(x, weight, bias), y)
            + 0.5 * weight_decay * weight.square().sum()
        )
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(closure)
    return _Probe(mean, std, weight.detach(), bias.detach())


def _score(probe: _Probe, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    logits = probe.logits(x)
    accuracy = float((logits.argmax(dim=1) == y).float().mean())
    return accuracy, float(F.cross_entropy(logits, y))


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
        epochs: L-BFGS iterations, each one full-batch pass over the training features.
        seed: seed of the validation split (the fit itself is deterministic: zero init).

    Features are standardised with the mean / std of the data each fit sees. The number of
    classes is ``max(label) + 1`` over the labelled train and test samples.
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
    num_classes = int(max(train_labels.max(), test_labels.max())) + 1

    val_accuracies: dict[str, float] = {}
    chosen, val_accuracy = float(weight_decays[0]), float("nan")
    if len(weight_decays) > 1:
        fit_index, val_index = stratified_split(train_labels.cpu().numpy(), val_fraction, seed)
        if len(val_index) == 0 or len(fit_index) == 0:
            raise DataError(
                f"{len(train)} labelled train samples are too few to hold out a validation split: "
                "label more samples or pass a single weight decay"
            )
        fit_index = torch.as_tensor(fit_index, device=train.device)
        val_index = torch.as_tensor(val_index, device=train.device)
        best = None
        for weight_decay in weight_decays:
            probe = _fit(
                train[fit_index], train_labels[fit_index], weight_decay, num_classes, epochs
            )
            accuracy, loss = _score(probe, train[val_index], train_labels[val_index])
            val_accuracies[repr(float(weight_decay))] = accuracy
            if best is None or (accuracy, -loss) > best:
                best, chosen, val_accuracy = (accuracy, -loss), float(weight_decay), accuracy

    probe = _fit(train, train_labels, chosen, num_classes, epochs)
    test_accuracy, _ = _score(probe, test, test_labels)
    protocol = {
        "classifier": "linear softmax on standardised features",
        "optimizer": "lbfgs (full batch, strong Wolfe line search)",
        "epochs": epochs,
        "weight_decays": [float(w) for w in weight_decays],
        "selection": "best accuracy on a stratified validation split of train; refit on all train",
        "val_fraction": val_fraction,
        "val_accuracies": val_accuracies,
        "seed": seed,
        "num_classes": num_classes,
        "num_train": len(train),
        "num_test": len(test),
    }
    return LinearProbeResult(test_accuracy, chosen, val_accuracy, protocol)
