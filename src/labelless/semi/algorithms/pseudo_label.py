"""``pseudo_label``: the network's own confident predictions as targets."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from labelless.semi.algorithms.base import SemiAlgorithm, register_algorithm
from labelless.semi.losses import check_threshold, confidence_mask, cross_entropy, linear_rampup


@register_algorithm("pseudo_label")
class PseudoLabel(SemiAlgorithm):
    """Pseudo-Label (Lee 2013, "Pseudo-Label: The Simple and Efficient Semi-Supervised Learning
    Method for Deep Neural Networks").

    Each unlabelled sample is trained towards the class the network currently predicts for it
    (the same weak view; the target is detached), with a weight ``alpha(t)`` ramped up linearly
    over the first ``rampup`` of the run (Lee's deterministic annealing, eq. 16). Lee takes
    every argmax (``threshold=0``); the default 0.95 keeps only confident ones, as in the
    baseline of Oliver et al. 2018 and the authors' code of the benchmark (USB
    ``pseudolabel/pseudolabel.py``: ``p_cutoff`` 0.95, linear ``unsup_warm_up`` 0.4, weight 1).
    """

    unlabelled_views = ("weak",)
    summary = "train on the network's own confident predictions (Lee 2013)"

    def __init__(self, backbone, num_classes, state, *, threshold=0.95, rampup=0.4, **kwargs):
        super().__init__(backbone, num_classes, state, **kwargs)
        self.threshold = check_threshold("threshold", threshold)
        self.rampup = float(rampup)

    def forward(self, labelled, unlabelled, progress, *, generator=None):
        logits_l, logits_u = self.forward_all(labelled, unlabelled)
        sup_loss = self.supervised_loss(logits_l, labelled)
        with torch.no_grad():
            probs = F.softmax(logits_u.detach().float(), dim=-1)
            mask, pseudo, _ = confidence_mask(probs, self.threshold)
        unsup_loss = (cross_entropy(logits_u, pseudo) * mask).mean()
        weight = self.unsup_weight * linear_rampup(progress, self.rampup)
        return self.result(
            sup_loss,
            unsup_loss,
            mask=mask,
            pseudo_labels=pseudo,
            unlabelled=unlabelled,
            weight=weight,
        )
