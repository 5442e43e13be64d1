"""SimSiam: Chen & He. "Exploring Simple Siamese Representation Learning", CVPR 2021."""

from __future__ import annotations

from torch import nn

from labelless.methods.base import Method, register_method
from labelless.nn.heads import mlp
from labelless.nn.losses import negative_cosine


@register_method("simsiam")
class SimSiam(Method):
    """A predictor on one branch regresses the other branch's projection under stop-gradient.

    No negatives and no momentum encoder: the stop-gradient on the target projection is what keeps
    the representation from collapsing (Chen & He 2021, sec. 4.1). Each view goes through the
    backbone on its own, as in the authors' code (per-view BatchNorm statistics).
    """

    default_views = "moco"
    summary = "non-contrastive: predictor + stop-gradient, no negatives or EMA (Chen & He 2021)"

    def __init__(
        self,
        backbone: nn.Module,
        *,
        proj_hidden_dim: int = 2048,
        proj_dim: int = 2048,
        pred_hidden_dim: int = 512,
        constant_predictor_lr: bool = True,
    ) -> None:
        super().__init__(backbone)
        # Projector: 3 layers, BatchNorm on every layer including the output (sec. 3, "Projection").
        self.projector = mlp(
            [self.embed_dim, proj_hidden_dim, proj_hidden_dim, proj_dim], norm="bn", last_norm=True
        )
        # Predictor: a bottleneck, BatchNorm on the hidden layer only (sec. 3, "Prediction").
        self.predictor = mlp([proj_dim, pred_hidden_dim, proj_dim], norm="bn")
        # The predictor's learning rate is not decayed in the paper's baseline (sec. 4.2, Table 1:
        # "lr w/o decay" 68.1 vs 67.7 with decay): it has to keep adapting to the latest features.
        self.constant_predictor_lr = constant_predictor_lr

    def constant_lr_parameters(self) -> list[nn.Parameter]:
        return list(self.predictor.parameters()) if self.constant_predictor_lr else []

    def forward(self, views, batch, *, generator=None):
        features = [self.backbone(view) for view in views[:2]]
        z0, z1 = (self.projector(f) for f in features)
        p0, p1 = self.predictor(z0), self.predictor(z1)
        # negative_cosine detaches its target: the stop-gradient of eq. 2.
        loss = (negative_cosine(p0, z1) + negative_cosine(p1, z0)) / 2
        return {"loss": loss, "embedding": features[0].detach()}
