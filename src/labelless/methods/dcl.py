"""DCL and DCLW: Yeh, Hong, Hsu, Liu, Chen, LeCun. "Decoupled Contrastive Learning", ECCV 2022."""

from __future__ import annotations

from torch import nn

from labelless.methods.base import (
    Method,
    check_positive_options,
    forward_grouped,
    register_method,
)
from labelless.nn.heads import mlp
from labelless.nn.losses import dcl


@register_method("dcl")
class DCL(Method):
    """SimCLR with the positive pair removed from the InfoNCE denominator (Yeh et al. 2022, eq. 6),
    which removes the negative-positive coupling that makes small batches learn slowly. As
    SimCLR, the two views share one backbone call on an accelerator (``forward_grouped``)."""

    default_views = "simclr"
    summary = "contrastive: InfoNCE without the positive in the denominator (Yeh et al. 2022)"
    weighted = False

    def __init__(
        self,
        backbone: nn.Module,
        *,
        proj_hidden_dim: int = 2048,
        proj_dim: int = 256,
        temperature: float = 0.1,
        sigma: float = 0.5,
    ) -> None:
        super().__init__(backbone)
        check_positive_options("method.kwargs", type(self), temperature=temperature)
        self.projector = mlp([self.embed_dim, proj_hidden_dim, proj_dim], norm="bn")
        self.temperature = temperature
        self.sigma = sigma

    def forward(self, views, batch, *, generator=None):
        features = forward_grouped(self.backbone, views[:2])
        z0, z1 = (self.projector(f) for f in features)
        loss = dcl(z0, z1, self.temperature, weighted=self.weighted, sigma=self.sigma)
        return {"loss": loss, "embedding": features[0].detach()}


@register_method("dclw")
class DCLW(DCL):
    """DCL whose positive term is weighted by a von Mises-Fisher kernel (Yeh et al. 2022, eq. 7):
    harder positive pairs (less similar views) get a larger weight."""

    summary = "contrastive: DCL with vMF-weighted positives, harder pairs count more (Yeh 2022)"
    weighted = True
