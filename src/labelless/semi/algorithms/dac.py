"""``dac``: open-set semi-supervised learning from the disagreement of diverse heads."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from labelless.errors import ConfigError
from labelless.semi.algorithms.base import SemiAlgorithm, register_algorithm
from labelless.semi.losses import check_threshold, confidence_mask, cross_entropy, head_disagreement

OPEN_SCORE = "open_score"


class MultiHeadNet(nn.Module):
    """Backbone + main classifier + ``num_heads`` extra linear heads; ``forward`` returns
    ``(main [N, K], heads [N, H, K])`` (``forward_all`` splits along N; callers transpose)."""

    def __init__(self, backbone: nn.Module, num_classes: int, num_heads: int) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = nn.Linear(int(backbone.embed_dim), num_classes)
        self.heads_layer = nn.Linear(int(backbone.embed_dim), num_heads * num_classes)
        self.num_heads, self.num_classes = num_heads, num_classes

    def heads(self, z: Tensor) -> tuple[Tensor, Tensor]:
        extra = self.heads_layer(z).view(len(z), self.num_heads, self.num_classes)
        return self.head(z), extra

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor]:
        return self.heads(self.backbone(images))


@register_algorithm("dac")
class DAC(SemiAlgorithm):
    """Diversify and Conquer (Kong et al. 2025, "Diversify and Conquer: Open-set Disagreement
    for Robust Semi-supervised Learning with Outliers", IEEE TNNLS; arXiv 2505.24443).

    Several heads on one backbone are trained to agree on inliers and to be differently biased
    on the rest of the unlabelled data; their disagreement then marks unknown classes. Our
    implementation of that idea: every head learns the labelled data and the confident
    pseudo-labels of the main classifier (consistent on inliers); on the other unlabelled samples
    the mutual information between head and prediction, ``H(mean_h p_h) - mean_h H(p_h)``, is
    maximised (weight ``diversity_weight``), which drives the heads apart where the labels say
    nothing. The main classifier is trained FixMatch-style on samples that are confident and
    whose disagreement (normalised by its maximum ``log min(H, K)``) is below
    ``disagreement_threshold``; the disagreement of each unlabelled sample is kept in
    ``SampleState`` and scores outliers at test time. The exact losses of the paper may differ
    (see docs/methods/dac.md).
    """

    open_set = True
    target_views = ("weak",)  # read detached: forward_all skips its backward
    fixmatch_family = True
    summary = "disagreement of diverse heads marks outliers (Kong et al. 2025)"

    def __init__(
        self,
        backbone,
        num_classes,
        state,
        *,
        num_heads: int = 3,
        threshold: float = 0.95,
        diversity_weight: float = 0.1,
        disagreement_threshold: float = 0.5,
        **kwargs,
    ):
        if num_heads < 2:
            raise ConfigError(f"dac needs at least 2 heads to disagree, got num_heads={num_heads}")
        self.num_heads = int(num_heads)
        super().__init__(backbone, num_classes, state, **kwargs)
        self.threshold = check_threshold("threshold", threshold)
        self.disagreement_threshold = check_threshold(
            "disagreement_threshold", disagreement_threshold
        )
        self.diversity_weight = float(diversity_weight)
        self.max_disagreement = math.log(min(self.num_heads, num_classes))
        state.add(OPEN_SCORE, fill=0.0)

    def build_model(self, backbone):
        return MultiHeadNet(backbone, self.num_classes, self.num_heads)

    def forward(self, labelled, unlabelled, progress, *, generator=None):
        (main_l, heads_l), (main_w, heads_w), (main_s, heads_s) = self.forward_all(
            labelled, unlabelled
        )
        heads_l, heads_w, heads_s = (h.transpose(0, 1) for h in (heads_l, heads_w, heads_s))
        y = labelled["label"]
        heads_sup = cross_entropy(heads_l.flatten(0, 1), y.repeat(self.num_heads)).mean()
        sup_loss = self.supervised_loss(main_l, labelled) + heads_sup
        with torch.no_grad():
            probs = F.softmax(main_w.float(), dim=-1)
            confident, pseudo, _ = confidence_mask(probs, self.threshold)
            disagreement = head_disagreement(F.softmax(heads_w.float(), dim=-1))
            score = disagreement / self.max_disagreement
            mask = confident * (score < self.disagreement_threshold).float()
            self.state.write(OPEN_SCORE, unlabelled["index"], score)
        per_sample = cross_entropy(main_s, pseudo)
        heads_pseudo = cross_entropy(heads_s.flatten(0, 1), pseudo.repeat(self.num_heads))
        agree = (heads_pseudo.view(self.num_heads, -1) * mask).mean()
        spread = head_disagreement(F.softmax(heads_s, dim=-1))
        diversity = -((1.0 - mask) * spread).mean()
        unsup_loss = (per_sample * mask).mean() + agree + self.diversity_weight * diversity
        return self.result(
            sup_loss,
            unsup_loss,
            mask=mask,
            pseudo_labels=pseudo,
            unlabelled=unlabelled,
            unsup_per_sample=per_sample.detach(),
            outlier_fraction=(score >= self.disagreement_threshold).float().mean(),
        )

    def outlier_score_from_embeddings(self, embeddings, model):
        with torch.no_grad():
            _, heads = model.heads(embeddings)
        return head_disagreement(F.softmax(heads.transpose(0, 1), dim=-1))
