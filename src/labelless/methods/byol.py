"""BYOL: Grill et al. "Bootstrap Your Own Latent: A New Approach to Self-Supervised Learning",
NeurIPS 2020."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from labelless.methods.base import Method, register_method
from labelless.nn.ema import EMA
from labelless.nn.heads import mlp
from labelless.nn.losses import byol


@register_method("byol")
class BYOL(Method):
    """An online network (backbone, projector, predictor) regresses an EMA target's projection.

    The target's momentum rises from ``momentum[0]`` to ``momentum[1]`` on a cosine (sec. 3.2).
    Each view goes through the backbone on its own, as in the authors' code (per-view
    BatchNorm statistics)."""

    default_views = "byol"
    summary = "non-contrastive: predictor + EMA target, no negatives (Grill et al. 2020)"

    def __init__(
        self,
        backbone: nn.Module,
        *,
        proj_hidden_dim: int = 4096,
        proj_dim: int = 256,
        pred_hidden_dim: int = 4096,
        momentum: Sequence[float] = (0.99, 1.0),
    ) -> None:
        super().__init__(backbone)
        self.projector = mlp([self.embed_dim, proj_hidden_dim, proj_dim], norm="bn")
        self.predictor = mlp([proj_dim, pred_hidden_dim, proj_dim], norm="bn")
        self.target = EMA(self._online(), momentum, schedule="cosine")
        self.current_momentum = self.target.current_momentum

    def forward(self, views, batch, *, generator=None):
        v0, v1 = views[:2]
        features0 = self.backbone(v0)
        p0 = self.predictor(self.projector(features0))
        p1 = self.predictor(self.projector(self.backbone(v1)))
        with torch.no_grad():
            t0, t1 = self.target(v0), self.target(v1)
        loss = (byol(p0, t1) + byol(p1, t0)) / 2
        return {"loss": loss, "embedding": features0.detach()}

    def on_step_end(self, progress: float) -> None:
        self.current_momentum = self.target.step(self._online(), progress)

    def _online(self) -> nn.Module:
        # A view of the online path (no copy): the EMA pairs its parameters with the target's.
        return nn.Sequential(self.backbone, self.projector)
