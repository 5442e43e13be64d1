"""``iomatch``: open-set semi-supervised learning using inliers and outliers together."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from labelless.semi.algorithms.base import SemiAlgorithm, register_algorithm
from labelless.semi.losses import (
    check_threshold,
    confidence_mask,
    cross_entropy,
    one_vs_all_loss,
    open_set_targets,
)

OPEN_SCORE = "open_score"


class IOMatchNet(nn.Module):
    """Backbone + closed-set head (K) + multi-binary head (K one-vs-all pairs) + projection and
    open-set head (K + 1). ``forward`` returns ``(closed [N, K], binary [N, 2, K], open
    [N, K + 1])``."""

    def __init__(self, backbone: nn.Module, num_classes: int, proj_dim: int = 128) -> None:
        super().__init__()
        dim = int(backbone.embed_dim)
        self.backbone = backbone
        self.head = nn.Linear(dim, num_classes)
        self.binary = nn.Linear(dim, 2 * num_classes)
        self.open = nn.Sequential(
            nn.Linear(dim, dim),
            nn.ReLU(),
            nn.Linear(dim, proj_dim),
            nn.ReLU(),
            nn.Linear(proj_dim, num_classes + 1),
        )
        self.num_classes = num_classes

    def heads(self, z: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        binary = self.binary(z).view(len(z), 2, self.num_classes)
        return self.head(z), binary, self.open(z)

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        return self.heads(self.backbone(images))


@register_algorithm("iomatch")
class IOMatch(SemiAlgorithm):
    """IOMatch (Li et al. 2023, "IOMatch: Simplifying Open-Set Semi-Supervised Learning with
    Joint Inliers and Outliers Utilization", ICCV).

    From the weak view: closed-set probabilities ``p`` (K classes) and, from K one-vs-all binary
    classifiers, the inlier probability ``o_k`` of each class give open-set targets
    ``q = [p_1 o_1, ..., p_K o_K, sum_k p_k (1 - o_k)]`` where the last entry is "outlier".
    Losses: labelled cross-entropy and one-vs-all loss; closed-set FixMatch loss on samples that
    pass both filters (``max p >= threshold`` and outlier probability ``q_{K+1} < 0.5``);
    open-set loss, the cross-entropy between ``q`` and the open-set head's prediction on the
    strong view, over every unlabelled sample (inliers and outliers alike) whose ``max q``
    reaches ``open_threshold``. The outlier score (``q_{K+1}``) of each unlabelled sample is
    kept in ``SampleState``; at test time the open-set head's "outlier" probability scores
    unknown classes.
    """

    open_set = True
    target_views = ("weak",)  # read detached: forward_all skips its backward
    fixmatch_family = True
    summary = "open-set targets from multi-binary classifiers (Li et al. 2023)"

    def __init__(
        self,
        backbone,
        num_classes,
        state,
        *,
        threshold: float = 0.95,
        open_threshold: float = 0.0,
        open_weight: float = 1.0,
        **kwargs,
    ):
        super().__init__(backbone, num_classes, state, **kwargs)
        self.threshold = check_threshold("threshold", threshold)
        self.open_threshold = check_threshold("open_threshold", open_threshold)
        self.open_weight = float(open_weight)
        state.add(OPEN_SCORE, fill=0.0)

    def build_model(self, backbone):
        return IOMatchNet(backbone, self.num_classes)

    def forward(self, labelled, unlabelled, progress, *, generator=None):
        (closed_l, binary_l, _), (closed_w, binary_w, _), (closed_s, _, open_s) = self.forward_all(
            labelled, unlabelled
        )
        sup_loss = self.supervised_loss(closed_l, labelled)
        sup_loss = sup_loss + one_vs_all_loss(binary_l, labelled["label"])
        with torch.no_grad():
            probs = F.softmax(closed_w.float(), dim=-1)
            inlier = F.softmax(binary_w.float(), dim=1)[:, 1, :]
            targets = open_set_targets(probs, inlier)
            confident, pseudo, _ = confidence_mask(probs, self.threshold)
            mask = confident * (targets[:, -1] < 0.5).float()
            open_mask = (targets.max(dim=-1).values >= self.open_threshold).float()
            self.state.write(OPEN_SCORE, unlabelled["index"], targets[:, -1])
        per_sample = cross_entropy(closed_s, pseudo)
        open_loss = (cross_entropy(open_s, targets) * open_mask).mean()
        unsup_loss = (per_sample * mask).mean() + self.open_weight * open_loss
        return self.result(
            sup_loss,
            unsup_loss,
            mask=mask,
            pseudo_labels=pseudo,
            unlabelled=unlabelled,
            unsup_per_sample=per_sample.detach(),
            outlier_fraction=(targets[:, -1] >= 0.5).float().mean(),
        )

    def outlier_score_from_embeddings(self, embeddings, model):
        with torch.no_grad():
            _, _, open_logits = model.heads(embeddings)
        return F.softmax(open_logits, dim=-1)[:, -1]
