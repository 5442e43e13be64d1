"""NNCLR: Dwibedi, Aytar, Tompson, Sermanet, Zisserman. "With a Little Help from My Friends:
Nearest-Neighbor Contrastive Learning of Visual Representations", ICCV 2021."""

from __future__ import annotations

import torch
from torch import nn

from labelless.methods.base import (
    Method,
    check_positive_options,
    forward_grouped,
    register_method,
)
from labelless.methods.queue import EmbeddingQueue, nearest_neighbours
from labelless.nn.heads import mlp
from labelless.nn.losses import info_nce


@register_method("nnclr")
class NNCLR(Method):
    """SimCLR whose positive for a view is the nearest neighbour of its projection in a support
    queue of earlier projections, predicted from the other view through a predictor.

    Built on SimCLR's setup (sec. 4.1): on an accelerator the two views share one backbone call
    (``forward_grouped``)."""

    default_views = "byol"
    summary = "contrastive: nearest neighbour from a support queue as the positive (Dwibedi 2021)"

    def __init__(
        self,
        backbone: nn.Module,
        *,
        proj_hidden_dim: int = 2048,
        proj_dim: int = 256,
        pred_hidden_dim: int = 4096,
        temperature: float = 0.1,
        queue_size: int = 98304,
    ) -> None:
        super().__init__(backbone)
        check_positive_options("method.kwargs", type(self), temperature=temperature)
        # Projector 3 layers with BatchNorm on every layer, predictor 2 layers (sec. 4.1).
        self.projector = mlp(
            [self.embed_dim, proj_hidden_dim, proj_hidden_dim, proj_dim], last_norm=True
        )
        self.predictor = mlp([proj_dim, pred_hidden_dim, proj_dim])
        self.support = EmbeddingQueue(queue_size, proj_dim)
        self.temperature = temperature

    def forward(self, views, batch, *, generator=None):
        features = forward_grouped(self.backbone, views[:2])
        z0, z1 = (self.projector(f) for f in features)
        p0, p1 = self.predictor(z0), self.predictor(z1)
        neighbours = [self._neighbour(z) for z in (z0, z1)]
        # Symmetrised eq. 4: each view's neighbour against the other view's prediction.
        loss = (
            info_nce(neighbours[0], p1, self.temperature)
            + info_nce(neighbours[1], p0, self.temperature)
        ) / 2
        if self.training:
            self.support.push(z0)
        return {"loss": loss, "embedding": features[0].detach()}

    def _neighbour(self, z: torch.Tensor) -> torch.Tensor:
        support = self.support.filled()
        if len(support) == 0:  # the first step: the queue is empty, the view is its own neighbour
            return z.detach()
        return nearest_neighbours(z, support)
