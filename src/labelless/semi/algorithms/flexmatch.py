"""``flexmatch``: FixMatch with class-wise curriculum thresholds."""

from __future__ import annotations

import torch
from torch import Tensor

from labelless.semi.algorithms.base import register_algorithm
from labelless.semi.algorithms.fixmatch import FixMatch
from labelless.semi.losses import confidence_mask, flexmatch_thresholds

STATUS = "flexmatch_status"


@register_algorithm("flexmatch")
class FlexMatch(FixMatch):
    """FlexMatch (Zhang et al. 2021, "FlexMatch: Boosting Semi-Supervised Learning with
    Curriculum Pseudo Labeling").

    Each class ``c`` gets the threshold ``T_c = M(beta_c) * tau`` where ``beta_c`` is its
    normalised learning effect: the number of unlabelled samples whose last prediction was ``c``
    with confidence above ``tau`` (the learning status, kept per sample in ``SampleState``),
    divided by the largest such count, or by the number of still unused samples while that is
    larger (threshold warm-up); ``M(x) = x / (2 - x)``. Hard-to-learn classes get lower
    thresholds, so more of their pseudo-labels are used.

    As USB's ``FlexMatchThresholdingHook`` (``flexmatch/utils.py``): the mask of a step uses the
    thresholds of the status left by the previous steps; a sample's status becomes its
    pseudo-label when its confidence is ``>= tau`` (0.95), after the mask is taken.
    """

    summary = "FixMatch with class-wise curriculum thresholds (Zhang et al. 2021)"

    def __init__(self, backbone, num_classes, state, *, warmup: bool = True, **kwargs):
        super().__init__(backbone, num_classes, state, **kwargs)
        self.warmup = bool(warmup)
        state.add(STATUS, fill=-1, dtype=torch.long)

    def class_thresholds(self) -> Tensor:
        status = self.state[STATUS][self.state.unlabelled]
        return flexmatch_thresholds(status, self.num_classes, self.threshold, warmup=self.warmup)

    def weights(self, probs: Tensor, unlabelled: dict) -> tuple[Tensor, Tensor]:
        thresholds = self.class_thresholds().to(probs.device)
        mask, pseudo, confidence = confidence_mask(probs, thresholds)
        index = unlabelled["index"]
        previous = self.state[STATUS][index.to(self.state[STATUS].device)].to(pseudo.device)
        self.state.write(STATUS, index, torch.where(confidence >= self.threshold, pseudo, previous))
        return mask, pseudo
