"""``freematch``: self-adaptive global and class thresholds, and a fairness term."""

from __future__ import annotations

import torch
from torch import Tensor

from labelless.nn.distributed import all_reduce_mean
from labelless.semi.algorithms.base import register_algorithm
from labelless.semi.algorithms.fixmatch import FixMatch
from labelless.semi.losses import confidence_mask, ema_, freematch_fairness, freematch_thresholds


@register_algorithm("freematch")
class FreeMatch(FixMatch):
    """FreeMatch (Wang et al. 2023, "FreeMatch: Self-adaptive Thresholding for Semi-supervised
    Learning").

    The global threshold ``tau_t`` is the EMA (momentum ``lambda``, 0.999) of the mean
    confidence of the weak predictions; the class thresholds are ``MaxNorm(p_t)(c) * tau_t``
    with ``p_t`` the EMA of the mean class probabilities; both start at ``1 / C``. The
    self-adaptive fairness term (weight ``fairness_weight``) keeps the masked strong-view
    predictions from collapsing onto a few classes. Statistics are averaged over processes.
    """

    summary = "self-adaptive thresholds and a fairness term (Wang et al. 2023)"

    def __init__(
        self,
        backbone,
        num_classes,
        state,
        *,
        momentum: float = 0.999,
        fairness_weight: float = 0.01,
        **kwargs,
    ):
        kwargs.setdefault("threshold", 0.0)  # unused: thresholds are self-adaptive
        super().__init__(backbone, num_classes, state, **kwargs)
        self.momentum = float(momentum)
        self.fairness_weight = float(fairness_weight)
        uniform = torch.full((num_classes,), 1.0 / num_classes)
        self.register_buffer("global_threshold", torch.tensor(1.0 / num_classes))
        self.register_buffer("class_probs", uniform.clone())
        self.register_buffer("class_hist", uniform.clone())

    def weights(self, probs: Tensor, unlabelled: dict) -> tuple[Tensor, Tensor]:
        confidence, pseudo = probs.max(dim=-1)
        hist = torch.bincount(pseudo, minlength=self.num_classes).float() / len(pseudo)
        ema_(self.global_threshold, all_reduce_mean(confidence.mean()), self.momentum)
        ema_(self.class_probs, all_reduce_mean(probs.mean(dim=0)), self.momentum)
        ema_(self.class_hist, all_reduce_mean(hist), self.momentum)
        thresholds = freematch_thresholds(self.global_threshold, self.class_probs)
        mask, pseudo, _ = confidence_mask(probs, thresholds)
        return mask, pseudo

    def extra_losses(self, logits_strong, mask, probs, unlabelled):
        probs_strong = torch.softmax(logits_strong.float(), dim=-1)
        fairness = freematch_fairness(probs_strong, mask, self.class_probs, self.class_hist)
        return self.fairness_weight * fairness
