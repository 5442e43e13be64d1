"""Barlow Twins: Zbontar, Jing, Misra, LeCun, Deny. "Barlow Twins: Self-Supervised Learning via
Redundancy Reduction", ICML 2021."""

from __future__ import annotations

from torch import nn

from labelless.methods.base import Method, register_method
from labelless.nn.heads import mlp
from labelless.nn.losses import barlow_twins


@register_method("barlow_twins")
class BarlowTwins(Method):
    """Drive the cross-correlation matrix of the two views' projections towards the identity.

    Each view goes through the backbone on its own, as in the authors' code (per-view
    BatchNorm statistics, like the per-view normalisation of the loss)."""

    default_views = "barlow_twins"
    summary = "redundancy reduction: cross-correlation of two views -> identity (Zbontar 2021)"

    def __init__(
        self,
        backbone: nn.Module,
        *,
        proj_hidden_dim: int = 8192,
        proj_dim: int = 8192,
        lambd: float = 5e-3,
    ) -> None:
        super().__init__(backbone)
        # Three linear layers, BatchNorm + ReLU after the first two (sec. 2, "Implementation").
        self.projector = mlp([self.embed_dim, proj_hidden_dim, proj_hidden_dim, proj_dim])
        self.lambd = lambd

    def forward(self, views, batch, *, generator=None):
        features = [self.backbone(view) for view in views[:2]]
        z0, z1 = (self.projector(f) for f in features)
        loss = barlow_twins(z0, z1, lambd=self.lambd)
        return {"loss": loss, "embedding": features[0].detach()}
