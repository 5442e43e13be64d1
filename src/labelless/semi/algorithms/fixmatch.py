"""``fixmatch``: confident weak-view pseudo-labels supervise the strong view."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from labelless.semi.algorithms.base import SemiAlgorithm, register_algorithm
from labelless.semi.losses import check_threshold, confidence_mask, cross_entropy


@register_algorithm("fixmatch")
class FixMatch(SemiAlgorithm):
    """FixMatch (Sohn et al. 2020, "FixMatch: Simplifying Semi-Supervised Learning with
    Consistency and Confidence").

    ``loss = CE(labelled weak) + lambda_u * mean_b 1[max p_w >= tau] CE(argmax p_w, p_s)`` with
    ``p_w`` the (detached) prediction on the weak view and ``p_s`` on the strong view of each
    unlabelled sample (eq. 2-4; tau = 0.95, lambda_u = 1, hard pseudo-labels: the defaults of
    the authors' code, USB ``fixmatch/fixmatch.py``, ``FixedThresholdingHook``). Subclasses
    (FlexMatch, FreeMatch, SoftMatch) change the threshold / weights through ``weights``.
    """

    target_views = ("weak",)  # read detached: forward_all skips its backward
    fixmatch_family = True
    summary = "confident weak-view pseudo-labels supervise the strong view (Sohn et al. 2020)"

    def __init__(self, backbone, num_classes, state, *, threshold: float = 0.95, **kwargs):
        super().__init__(backbone, num_classes, state, **kwargs)
        self.threshold = check_threshold("threshold", threshold)

    def weights(self, probs: Tensor, unlabelled: dict) -> tuple[Tensor, Tensor]:
        """Per-sample weights of the unlabelled loss and the pseudo-labels."""
        mask, pseudo, _ = confidence_mask(probs, self.threshold)
        return mask, pseudo

    def forward(self, labelled, unlabelled, progress, *, generator=None):
        logits_l, logits_w, logits_s = self.forward_all(labelled, unlabelled)
        sup_loss = self.supervised_loss(logits_l, labelled)
        with torch.no_grad():
            probs = F.softmax(logits_w.detach().float(), dim=-1)
            mask, pseudo = self.weights(probs, unlabelled)
        per_sample = cross_entropy(logits_s, pseudo)
        extra = self.extra_losses(logits_s, mask, probs, unlabelled)
        unsup_loss = (per_sample * mask).mean() + extra
        return self.result(
            sup_loss,
            unsup_loss,
            mask=mask,
            pseudo_labels=pseudo,
            unlabelled=unlabelled,
            unsup_per_sample=per_sample.detach(),
        )

    def extra_losses(self, logits_strong: Tensor, mask: Tensor, probs: Tensor, unlabelled):
        """Further unlabelled terms (FreeMatch's fairness); none for FixMatch."""
        return logits_strong.sum() * 0.0
