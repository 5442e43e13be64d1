"""VICReg: Bardes, Ponce, LeCun. "VICReg: Variance-Invariance-Covariance Regularization for
Self-Supervised Learning", ICLR 2022."""

from __future__ import annotations

from torch import nn

from labelless.methods.base import Method, register_method
from labelless.nn.heads import mlp
from labelless.nn.losses import vicreg


@register_method("vicreg")
class VICReg(Method):
    """Invariance between views, plus variance and covariance terms on each view's embeddings.

    Each view goes through the backbone on its own, as in the authors' code: the variance and
    covariance terms are per view, and so are a BatchNorm backbone's batch statistics."""

    default_views = "vicreg"
    summary = "regularised: invariance + variance + covariance terms, no negatives (Bardes 2022)"

    def __init__(
        self,
        backbone: nn.Module,
        *,
        proj_hidden_dim: int = 8192,
        proj_dim: int = 8192,
        sim_weight: float = 25.0,
        var_weight: float = 25.0,
        cov_weight: float = 1.0,
    ) -> None:
        super().__init__(backbone)
        # The expander: 3 linear layers, BatchNorm + ReLU after the first two (sec. 4.1).
        self.projector = mlp([self.embed_dim, proj_hidden_dim, proj_hidden_dim, proj_dim])
        self.weights = {
            "sim_weight": sim_weight,
            "var_weight": var_weight,
            "cov_weight": cov_weight,
        }

    def forward(self, views, batch, *, generator=None):
        features = [self.backbone(view) for view in views[:2]]
        z0, z1 = (self.projector(f) for f in features)
        loss = vicreg(z0, z1, **self.weights)
        return {"loss": loss, "embedding": features[0].detach()}
