"""Dataset-shift check before semi-supervised training: are labelled and unlabelled alike?

Semi-supervised learning assumes the unlabelled pool comes from the labelled data's distribution;
when it does not (the Radio Galaxy Zoo study of Slijepcevic et al. 2022, "Radio Galaxy Zoo:
using semi-supervised learning to leverage large unlabelled data sets for radio galaxy
classification under data set shift"), the unlabelled data can hurt. The check embeds both sets
with the initial encoder and measures the Frechet distance between Gaussians fitted to them
(Heusel et al. 2017): ``|m1 - m2|^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2))``.

A distance alone has no scale, and a small labelled set has a large one by sampling noise
alone. The reference is therefore the same distance between random splits of the pooled
labelled + unlabelled set into parts of the same two sizes (``repeats`` draws, their mean):
what an unshifted pool would give. The check warns when the observed distance exceeds
``ratio`` (2 by default) times the reference. With equal sizes this is the distance between two
random halves of the pool.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from torch import Tensor


def _sqrt_psd(matrix: Tensor) -> Tensor:
    values, vectors = torch.linalg.eigh(matrix)
    return (vectors * values.clamp_min(0).sqrt()) @ vectors.T


def frechet_distance(a: Tensor, b: Tensor) -> float:
    """Frechet distance between Gaussians fitted to ``a [N, D]`` and ``b [M, D]`` (float64).

    The trace of ``(S1 S2)^(1/2)`` is computed as that of ``(S1^(1/2) S2 S1^(1/2))^(1/2)``, a
    symmetric positive semi-definite matrix, so only symmetric eigendecompositions are needed.
    """
    a, b = a.double(), b.double()
    mean_a, mean_b = a.mean(0), b.mean(0)
    cov_a = torch.cov(a.T) if len(a) > 1 else torch.zeros(a.shape[1], a.shape[1]).double()
    cov_b = torch.cov(b.T) if len(b) > 1 else torch.zeros(b.shape[1], b.shape[1]).double()
    root_a = _sqrt_psd(cov_a)
    cross = torch.linalg.eigvalsh(root_a @ cov_b @ root_a).clamp_min(0).sqrt().sum()
    value = (mean_a - mean_b).pow(2).sum() + cov_a.trace() + cov_b.trace() - 2 * cross
    return float(value.clamp_min(0))


def shift_check(
    labelled: Tensor,
    unlabelled: Tensor,
    *,
    ratio: float = 2.0,
    repeats: int = 5,
    max_unlabelled: int = 5000,
    seed: int = 0,
    warn: bool = True,
) -> dict:
    """Compare labelled and unlabelled embeddings (``[N, D]``, ``[M, D]``); see the module doc.

    Returns ``{"frechet_distance", "reference_distance", "ratio", "threshold_ratio",
    "shifted", "protocol"}``; warns when ``shifted``.
    """
    rng = np.random.default_rng(seed)
    if len(unlabelled) > max_unlabelled:
        unlabelled = unlabelled[
            torch.from_numpy(rng.choice(len(unlabelled), max_unlabelled, replace=False))
        ]
    observed = frechet_distance(labelled, unlabelled)
    pool = torch.cat([labelled, unlabelled])
    reference = []
    for _ in range(repeats):
        order = torch.from_numpy(rng.permutation(len(pool)))
        reference.append(
            frechet_distance(pool[order[: len(labelled)]], pool[order[len(labelled) :]])
        )
    baseline = float(np.mean(reference))
    observed_ratio = observed / max(baseline, 1e-12)
    shifted = observed_ratio > ratio
    result = {
        "frechet_distance": observed,
        "reference_distance": baseline,
        "ratio": observed_ratio,
        "threshold_ratio": ratio,
        "shifted": bool(shifted),
        "protocol": {
            "labelled": len(labelled),
            "unlabelled": len(unlabelled),
            "reference": f"mean over {repeats} random splits of the pool into the same sizes",
            "encoder": "initial (before semi-supervised training)",
        },
    }
    if shifted and warn:
        warnings.warn(
            f"the unlabelled pool looks shifted from the labelled data: Frechet distance "
            f"{observed:.3g} is {observed_ratio:.1f}x that of random splits ({baseline:.3g}); "
            "unlabelled samples from another distribution can hurt semi-supervised learning: "
            "check where the pool comes from, or compare with --method supervised",
            stacklevel=2,
        )
    return result
