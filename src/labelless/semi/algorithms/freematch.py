"""``freematch``: self-adaptive global and class thresholds, and a fairness term."""

from __future__ import annotations

import torch
from torch import Tensor

from labelless.errors import ConfigError
from labelless.nn.distributed import all_reduce_mean
from labelless.semi.algorithms.base import register_algorithm
from labelless.semi.algorithms.fixmatch import FixMatch
from labelless.semi.losses import confidence_mask, ema_, freematch_fairness, freematch_thresholds

FAIRNESS = ("usb", "cross_entropy")


@register_algorithm("freematch")
class FreeMatch(FixMatch):
    """FreeMatch (Wang et al. 2023, "FreeMatch: Self-adaptive Thresholding for Semi-supervised
    Learning"), with the defaults of the authors' code (USB, semilearn ``algorithms/freematch``).

    The global threshold ``tau_t`` is the EMA (momentum ``lambda``, 0.999) of the mean
    confidence of the weak predictions; the class thresholds are ``MaxNorm(p_t)(c) * tau_t``
    with ``p_t`` the EMA of the mean class probabilities; both start at ``1 / C`` and are
    updated before the mask is taken (USB ``FreeMatchThresholingHook``). The self-adaptive
    fairness term (weight ``fairness_weight``, 0.001 as every USB config) is eq. 11's ``-H``,
    negative and minimised as USB's ``entropy_loss`` (``fairness="usb"``);
    ``fairness="cross_entropy"`` minimises ``+H`` instead. Statistics are averaged over
    processes.
    """

    summary = "self-adaptive thresholds and a fairness term (Wang et al. 2023)"

    def __init__(
        self,
        backbone,
        num_classes,
        state,
        *,
        momentum: float = 0.999,
        fairness_weight: float = 0.001,
        fairness: str = "usb",
        **kwargs,
    ):
        kwargs.setdefault("threshold", 0.0)  # unused: thresholds are self-adaptive
        super().__init__(backbone, num_classes, state, **kwargs)
        if fairness not in FAIRNESS:
            raise ConfigError(
                f"freematch fairness must be one of {FAIRNESS}, got {fairness!r}: 'usb' is the "
                "authors' code and eq. 11 (-H), 'cross_entropy' minimises +H"
            )
        self.momentum = float(momentum)
        self.fairness_weight = float(fairness_weight)
        self.fairness = fairness
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
        fairness = freematch_fairness(
            probs_strong,
            mask,
            self.class_probs,
            self.class_hist,
            cross_entropy=self.fairness == "cross_entropy",
        )
        return self.fairness_weight * fairness
