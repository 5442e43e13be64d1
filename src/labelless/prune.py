"""One-shot global magnitude pruning of an encoder, and where its accuracy starts to fall.

Jaiswal et al. 2023, "The emergence of essential sparsity in large pre-trained models: the
weights that matter": removing the smallest-magnitude weights of a pre-trained model in one shot,
without retraining, leaves its downstream performance almost unchanged up to a sparsity (the
"essential sparsity"), beyond which it drops quickly. Here the pruned weights are those of every
``nn.Conv*`` and ``nn.Linear`` layer (not biases, not normalisation layers), ranked together by
absolute value (global, not per layer, magnitude pruning as in Han et al. 2015).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import nn

from labelless.errors import ConfigError

KNEE_TOLERANCE = 0.01  # one accuracy point


def prunable_weights(module: nn.Module) -> list[tuple[str, torch.Tensor]]:
    """``(name, weight)`` of every convolution and linear layer of ``module``."""
    kinds = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)
    return [
        (f"{name}.weight" if name else "weight", layer.weight)
        for name, layer in module.named_modules()
        if isinstance(layer, kinds) and getattr(layer, "weight", None) is not None
    ]


def parse_sparsities(text: str | Sequence[float]) -> list[float]:
    """Sorted, distinct sparsity levels in [0, 1) from ``"0.1,0.2,..."`` or a sequence."""
    try:
        values = (
            [float(v) for v in text.split(",") if v.strip()]
            if isinstance(text, str)
            else [float(v) for v in text]
        )
    except ValueError as error:
        raise ConfigError(
            f"--sparsity {text!r} is not a comma-separated list of numbers; write e.g. "
            "--sparsity 0.1,0.3,0.5,0.7,0.9"
        ) from error
    if not values or any(not 0.0 <= v < 1.0 for v in values):
        raise ConfigError(
            f"--sparsity levels must be fractions in [0, 1), got {values}; e.g. 0.5 zeroes half "
            "of the conv/linear weights"
        )
    return sorted(set(values))


def global_magnitude_prune(encoder: nn.Module, sparsity: float) -> nn.Module:
    """A copy of ``encoder`` whose conv/linear weights of smallest absolute value, pooled over
    all layers, are set to zero: exactly ``round(sparsity * total)`` of them (ties broken by
    position), so the level is reached even when many weights share a magnitude."""
    pruned = copy.deepcopy(encoder)
    weights = [weight for _, weight in prunable_weights(pruned)]
    if not weights:
        raise ConfigError("the encoder has no convolution or linear weights to prune")
    magnitudes = torch.cat([w.detach().abs().reshape(-1).float() for w in weights])
    count = round(sparsity * magnitudes.numel())
    if count == 0:
        return pruned
    order = torch.argsort(magnitudes, stable=True)
    keep = torch.ones_like(magnitudes, dtype=torch.bool)
    keep[order[:count]] = False
    with torch.no_grad():
        start = 0
        for weight in weights:
            size = weight.numel()
            weight.mul_(keep[start : start + size].view_as(weight).to(weight.dtype))
            start += size
    return pruned


def weight_sparsity(encoder: nn.Module) -> float:
    """Fraction of the conv/linear weights of ``encoder`` that are exactly zero."""
    weights = [weight for _, weight in prunable_weights(encoder)]
    zeros = sum(int((w == 0).sum()) for w in weights)
    return zeros / max(sum(w.numel() for w in weights), 1)


def essential_sparsity(
    sparsities: Sequence[float],
    accuracies: Sequence[float],
    dense_accuracy: float,
    tolerance: float = KNEE_TOLERANCE,
) -> float | None:
    """The knee: the largest sparsity ``s`` such that the accuracy at ``s`` and at every smaller
    measured level is at least ``dense_accuracy - tolerance`` (default one point, absolute).

    This is Jaiswal et al.'s "essential sparsity" made precise on the measured grid: the end of
    the flat part of the accuracy-against-sparsity curve. Returns None when even the smallest
    level falls more than ``tolerance`` below dense.
    """
    knee = None
    for sparsity, accuracy in sorted(zip(sparsities, accuracies, strict=True)):
        if accuracy < dense_accuracy - tolerance:
            break
        knee = float(sparsity)
    return knee
