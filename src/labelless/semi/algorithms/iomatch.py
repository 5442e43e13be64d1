"""``iomatch``: open-set semi-supervised learning using inliers and outliers together.

Li et al. 2023, "IOMatch: Simplifying Open-Set Semi-Supervised Learning with Joint Inliers and
Outliers Utilization" (ICCV). Defaults follow the authors' code, nukezil/IOMatch
``semilearn/algorithms/iomatch/`` (``IOMatch.get_argument``); docs/methods/iomatch.md lists
what differs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from labelless.errors import ConfigError
from labelless.nn.distributed import gather
from labelless.semi.algorithms.base import SemiAlgorithm, register_algorithm
from labelless.semi.losses import (
    check_threshold,
    confidence_mask,
    cross_entropy,
    one_vs_all_loss,
    open_set_targets,
)

OPEN_SCORE = "open_score"
#: IOMatch's fixed cut on the outlier probability ``q_{K+1}`` for the closed-set loss.
OUTLIER_CUT = 0.5


class IOMatchNet(nn.Module):
    """IOMatch's ``IOMatchNet``: backbone + closed-set head (K) on the features; a projection
    MLP ``D -> D -> proj_dim`` feeding K one-vs-all pairs (no bias) and the open-set head
    (K + 1), both Xavier-normal initialised. ``forward`` returns ``(closed [N, K], binary
    [N, 2, K], open [N, K + 1])``; ``binary[:, 0]`` is "not class k", ``binary[:, 1]`` "class
    k"."""

    def __init__(self, backbone: nn.Module, num_classes: int, proj_dim: int = 128) -> None:
        super().__init__()
        dim = int(backbone.embed_dim)
        self.backbone = backbone
        self.head = nn.Linear(dim, num_classes)
        self.proj = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, proj_dim))
        self.binary = nn.Linear(proj_dim, 2 * num_classes, bias=False)
        self.open = nn.Linear(proj_dim, num_classes + 1)
        nn.init.xavier_normal_(self.binary.weight)
        nn.init.xavier_normal_(self.open.weight)
        nn.init.zeros_(self.open.bias)
        self.num_classes = num_classes

    def heads(self, z: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        projection = self.proj(z)
        binary = self.binary(projection).view(len(z), 2, self.num_classes)
        return self.head(z), binary, self.open(projection)

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        return self.heads(self.backbone(images))


@register_algorithm("iomatch")
class IOMatch(SemiAlgorithm):
    """IOMatch (Li et al. 2023, ICCV), as the authors' ``IOMatch.train_step``.

    From the weak view: closed-set probabilities ``p`` (K classes), distribution-aligned to a
    uniform prior over a queue of the last ``alignment_length`` batch means
    (``distribution_alignment``), and from K one-vs-all binary classifiers the inlier
    probability ``o_k`` of each class give open-set targets ``q = [p_1 o_1, ..., p_K o_K,
    sum_k p_k (1 - o_k)]``. Losses: labelled cross-entropy plus ``binary_weight`` times the
    one-vs-all loss; closed-set soft cross-entropy between ``p`` and the strong view's
    prediction on samples with ``max p >= threshold`` and ``q_{K+1} < 0.5``; ``open_weight``
    times the soft cross-entropy between ``q`` and the open-set head on the strong view where
    ``max q >= open_threshold`` (switched off during ``open_warmup``, a fraction of the run).
    ``q_{K+1}`` of each unlabelled sample is kept in ``SampleState``; at test time the open-set
    head's "outlier" probability scores unknown classes.
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
        open_threshold: float = 0.5,
        binary_weight: float = 1.0,
        open_weight: float = 1.0,
        distribution_alignment: bool = True,
        alignment_length: int = 128,
        open_warmup: float = 1.0 / 256,
        proj_dim: int = 128,
        **kwargs,
    ):
        self.proj_dim = int(proj_dim)
        super().__init__(backbone, num_classes, state, **kwargs)
        self.threshold = check_threshold("threshold", threshold)
        self.open_threshold = check_threshold("open_threshold", open_threshold)
        self.binary_weight, self.open_weight = float(binary_weight), float(open_weight)
        self.distribution_alignment = bool(distribution_alignment)
        self.open_warmup = float(open_warmup)
        if alignment_length < 1:
            raise ConfigError(f"alignment_length must be >= 1, got {alignment_length}")
        self.register_buffer("class_probs_queue", torch.zeros(alignment_length, num_classes))
        self.register_buffer("queue_pointer", torch.zeros((), dtype=torch.long))
        state.add(OPEN_SCORE, fill=0.0)

    def build_model(self, backbone):
        return IOMatchNet(backbone, self.num_classes, self.proj_dim)

    def forward(self, labelled, unlabelled, progress, *, generator=None):
        (closed_l, binary_l, _), (closed_w, binary_w, _), (closed_s, _, open_s) = self.forward_all(
            labelled, unlabelled
        )
        sup_loss = self.supervised_loss(closed_l, labelled)
        sup_loss = sup_loss + self.binary_weight * one_vs_all_loss(binary_l, labelled["label"])
        terms = self.unlabelled_terms(closed_w, binary_w, closed_s, open_s, progress)
        self.state.write(OPEN_SCORE, unlabelled["index"], terms["open_targets"][:, -1])
        open_loss = self.open_weight * terms["open_loss"]
        out = self.result(
            sup_loss,
            terms["unsup_loss"],
            mask=terms["mask"],
            pseudo_labels=terms["pseudo_labels"],
            unlabelled=unlabelled,
            unsup_per_sample=terms["unsup_per_sample"],
            outlier_fraction=1.0 - terms["inlier_mask"].mean(),
            open_loss=open_loss.detach(),
            open_mask_ratio=terms["open_mask"].mean(),
        )
        out["loss"] = out["loss"] + open_loss
        return out

    def unlabelled_terms(self, closed_w, binary_w, closed_s, open_s, progress) -> dict:
        """Targets, masks and unlabelled losses from the weak view's closed ``[B, K]`` and
        binary ``[B, 2, K]`` logits and the strong view's closed and open ``[B, K + 1]`` logits,
        as the authors' ``train_step``."""
        with torch.no_grad():
            probs = F.softmax(closed_w.detach().float(), dim=-1)
            if self.distribution_alignment:
                probs = self.align(probs)
            inlier = F.softmax(binary_w.detach().float(), dim=1)[:, 1, :]
            targets = open_set_targets(probs, inlier)
            inlier_mask = (targets[:, -1] < OUTLIER_CUT).float()
            confident, pseudo, _ = confidence_mask(probs, self.threshold)
            open_mask, _, _ = confidence_mask(targets, self.open_threshold)
        per_sample = cross_entropy(closed_s, probs)  # soft targets, as the authors' ce_loss
        mask = inlier_mask * confident
        open_loss = (cross_entropy(open_s, targets) * open_mask).mean()
        if progress < self.open_warmup:  # the authors: ``op_loss *= 0`` in epoch 0
            open_loss = open_loss * 0.0
        return {
            "unsup_loss": (per_sample * mask).mean(),
            "unsup_per_sample": per_sample.detach(),
            "open_loss": open_loss,
            "mask": mask,
            "inlier_mask": inlier_mask,
            "open_mask": open_mask,
            "pseudo_labels": pseudo,
            "open_targets": targets,
        }

    @torch.no_grad()
    def align(self, probs: Tensor) -> Tensor:
        """USB's ``DistAlignQueueHook`` (uniform target): the batch mean of ``probs`` (from
        every process) enters a queue of ``alignment_length`` rows (zeros at the start), then
        ``p * (1/K + 1e-6) / (mean queue + 1e-6)``, renormalised."""
        mean = gather(probs).mean(dim=0)
        pointer = int(self.queue_pointer)
        self.class_probs_queue[pointer] = mean.to(self.class_probs_queue.dtype)
        self.queue_pointer.fill_((pointer + 1) % len(self.class_probs_queue))
        prior = self.class_probs_queue.mean(dim=0).to(probs.dtype)
        aligned = probs * (1.0 / self.num_classes + 1e-6) / (prior + 1e-6)
        return aligned / aligned.sum(dim=-1, keepdim=True)

    def outlier_score_from_embeddings(self, embeddings, model):
        with torch.no_grad():
            _, _, open_logits = model.heads(embeddings)
        return F.softmax(open_logits, dim=-1)[:, -1]
