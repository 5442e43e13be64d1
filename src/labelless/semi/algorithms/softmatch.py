"""``softmatch``: truncated-Gaussian sample weights instead of a hard threshold."""

from __future__ import annotations

import torch
from torch import Tensor

from labelless.errors import ConfigError
from labelless.nn.distributed import all_reduce_mean, all_reduce_sum
from labelless.semi.algorithms.base import register_algorithm
from labelless.semi.algorithms.fixmatch import FixMatch
from labelless.semi.losses import ema_, softmatch_weights, uniform_alignment


@register_algorithm("softmatch")
class SoftMatch(FixMatch):
    """SoftMatch (Chen et al. 2023, "SoftMatch: Addressing the Quantity-Quality Trade-off in
    Semi-supervised Learning"), with the defaults of the authors' code (USB, semilearn
    ``algorithms/softmatch``).

    Every pseudo-label is used, weighted by a truncated Gaussian of its confidence: weight
    ``lambda_max`` above the running mean confidence ``mu_t``, ``lambda_max * exp(-(max p -
    mu_t)^2 / (2 sigma_t^2 / n_sigma^2))`` below it; ``mu_t`` and ``sigma_t^2`` are EMAs
    (momentum 0.999) of the batch mean and unbiased variance of the confidence, starting at
    ``1 / C`` and 1, updated before the weights are taken. ``n_sigma = 2`` is the code's
    default (a Gaussian half as wide as the paper's equation 7, ``n_sigma = 1``). Uniform
    alignment rescales the weak predictions by the inverse EMA of the mean prediction (which
    starts at the first batch's mean, as USB's ``DistAlignEMAHook``); the confidences that set
    the weights are the aligned ones, the pseudo-labels the argmax of the raw predictions, as in
    the code (``aligned_pseudo_labels=True`` takes them from the aligned predictions).
    """

    summary = "truncated-Gaussian pseudo-label weights, uniform alignment (Chen et al. 2023)"

    def __init__(
        self,
        backbone,
        num_classes,
        state,
        *,
        momentum: float = 0.999,
        max_weight: float = 1.0,
        n_sigma: float = 2.0,
        alignment: bool = True,
        aligned_pseudo_labels: bool = False,
        **kwargs,
    ):
        kwargs.setdefault("threshold", 0.0)  # unused: weights replace the threshold
        super().__init__(backbone, num_classes, state, **kwargs)
        if not n_sigma > 0:
            raise ConfigError(f"softmatch n_sigma must be > 0, got {n_sigma}: 2 (USB) or 1 (paper)")
        self.momentum, self.max_weight, self.alignment = float(momentum), max_weight, alignment
        self.n_sigma, self.aligned_pseudo_labels = float(n_sigma), bool(aligned_pseudo_labels)
        self.register_buffer("confidence_mean", torch.tensor(1.0 / num_classes))
        self.register_buffer("confidence_var", torch.tensor(1.0))
        self.register_buffer("class_probs", torch.full((num_classes,), 1.0 / num_classes))
        self.register_buffer("class_probs_started", torch.tensor(False))

    def weights(self, probs: Tensor, unlabelled: dict) -> tuple[Tensor, Tensor]:
        pseudo = probs.argmax(dim=-1)
        if self.alignment:
            batch_mean = all_reduce_mean(probs.mean(dim=0))
            if bool(self.class_probs_started):
                ema_(self.class_probs, batch_mean, self.momentum)
            else:  # USB's p_model starts as the first batch's mean prediction
                self.class_probs.copy_(batch_mean)
                self.class_probs_started.fill_(True)
            probs = uniform_alignment(probs, self.class_probs)
        confidence, aligned = probs.max(dim=-1)
        if self.aligned_pseudo_labels:
            pseudo = aligned
        mean, variance = _global_mean_var(confidence)
        ema_(self.confidence_mean, mean, self.momentum)
        ema_(self.confidence_var, variance, self.momentum)
        weights = softmatch_weights(
            confidence, self.confidence_mean, self.confidence_var, self.max_weight, self.n_sigma
        )
        return weights, pseudo


def _global_mean_var(values: Tensor) -> tuple[Tensor, Tensor]:
    """Mean and unbiased variance of ``values [N]`` over the batches of all processes (from
    all-reduced sums: the mean of per-process variances would miss the spread between them)."""
    moments = all_reduce_sum(
        torch.stack([values.new_tensor(len(values)), values.sum(), (values**2).sum()])
    )
    count, total, squares = moments.unbind()
    mean = total / count
    if count < 2:
        return mean, values.new_zeros(())
    return mean, (squares - count * mean**2).clamp_min(0) / (count - 1)
