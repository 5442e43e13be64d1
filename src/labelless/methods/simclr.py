"""SimCLR: Chen, Kornblith, Norouzi, Hinton. "A Simple Framework for Contrastive Learning of Visual
Representations", ICML 2020."""

from __future__ import annotations

from torch import nn

from labelless.methods.base import (
    Method,
    check_positive_options,
    forward_grouped,
    register_method,
)
from labelless.nn.heads import mlp
from labelless.nn.losses import info_nce


@register_method("simclr")
class SimCLR(Method):
    """Two views, an MLP projector and NT-Xent with in-batch and cross-process negatives.

    On an accelerator both views go through the backbone in one concatenated batch
    (``forward_grouped``), as in the authors' code: a BatchNorm backbone normalises over both
    views together. On a CPU, where that is slower, each view is its own call."""

    default_views = "simclr"
    summary = "contrastive: NT-Xent over two views, negatives from the whole batch (Chen 2020)"

    def __init__(
        self,
        backbone: nn.Module,
        *,
        proj_hidden_dim: int = 2048,
        proj_dim: int = 256,
        temperature: float = 0.2,
    ) -> None:
        super().__init__(backbone)
        check_positive_options("method.kwargs", type(self), temperature=temperature)
        self.projector = mlp([self.embed_dim, proj_hidden_dim, proj_dim], norm="bn")
        self.temperature = temperature

    def forward(self, views, batch, *, generator=None):
        features = forward_grouped(self.backbone, views[:2])
        z0, z1 = (self.projector(f) for f in features)
        loss = info_nce(z0, z1, self.temperature)
        return {"loss": loss, "embedding": features[0].detach()}
