"""TS2Vec: Yue, Wang, Duan, Yang, Huang, Tong, Xu. "TS2Vec: Towards Universal Representation of
Time Series", AAAI 2022."""

from __future__ import annotations

import torch
from torch import nn

from labelless.backbones.timeseries import instance_pool, valid_steps
from labelless.methods.base import Method, register_method
from labelless.nn.losses_timeseries import hierarchical_contrastive_loss


def overlap_slices(
    z1: torch.Tensor, z2: torch.Tensor, overlap: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The representations of the shared timestamps of two crops: ``z1 [B, L1, D]``,
    ``z2 [B, L2, D]`` and the recipe's ``overlap [B, 3]`` rows ``(start1, start2, length)``
    -> two ``[B, length, D]`` tensors."""
    start1, start2, length = (int(v) for v in overlap[0].tolist())
    return z1[:, start1 : start1 + length], z2[:, start2 : start2 + length]


@register_method("ts2vec")
class TS2Vec(Method):
    """Hierarchical contrast of two overlapping crops: instance-wise and temporal at every
    max-pooling level, on the timestamps the crops share (contextual consistency)."""

    default_views = "ts2vec"
    summary = (
        "time series: hierarchical instance + temporal contrast of overlapping crops (Yue 2022)"
    )
    modality = "timeseries"

    def __init__(self, backbone: nn.Module, *, alpha: float = 0.5, temporal_unit: int = 0) -> None:
        super().__init__(backbone)
        self.alpha = alpha
        self.temporal_unit = temporal_unit

    def forward(self, views, batch, *, generator=None):
        view1, view2, overlap = views[:3]
        z1 = self.backbone.forward_sequence(view1)
        z2 = self.backbone.forward_sequence(view2)
        shared1, shared2 = overlap_slices(z1, z2, overlap)
        loss = hierarchical_contrastive_loss(shared1, shared2, self.alpha, self.temporal_unit)
        embedding = instance_pool(z1.detach(), valid_steps(view1))
        return {"loss": loss, "embedding": embedding}
