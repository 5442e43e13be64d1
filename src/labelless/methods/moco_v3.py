"""MoCo v3: Chen, Xie, He. "An Empirical Study of Training Self-Supervised Vision Transformers",
ICCV 2021."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from labelless.errors import ConfigError
from labelless.methods.base import Method, check_positive_options, register_method
from labelless.nn.ema import EMA
from labelless.nn.heads import mlp
from labelless.nn.losses import moco_v3


@register_method("moco_v3")
class MoCoV3(Method):
    """Each view's prediction contrasts with the momentum encoder's key of the other view; the
    other keys of the whole (global) batch are the negatives. No queue: large batches instead.

    Works with any backbone (ResNets, and the ViT the paper studies). ``freeze_patch_embed=True``
    keeps a ViT's patch projection at its random initialisation, the paper's fix for the
    instability of ViT training (sec. 4.2, "random patch projection"). The key encoder's
    momentum rises from ``momentum[0]`` to ``momentum[1]`` on a cosine. Each view goes through
    the backbone on its own, as in the authors' code (per-view BatchNorm statistics).
    """

    default_views = "byol"
    summary = "contrastive: predictor + EMA keys, in-batch negatives, no queue (Chen 2021)"

    def __init__(
        self,
        backbone: nn.Module,
        *,
        proj_hidden_dim: int = 4096,
        proj_dim: int = 256,
        pred_hidden_dim: int = 4096,
        temperature: float = 0.2,
        momentum: Sequence[float] = (0.99, 1.0),
        freeze_patch_embed: bool = False,
    ) -> None:
        super().__init__(backbone)
        check_positive_options("method.kwargs", type(self), temperature=temperature)
        if freeze_patch_embed:
            if not hasattr(backbone, "patch_embed"):
                raise ConfigError(
                    "freeze_patch_embed needs a ViT backbone (one with .patch_embed); use a "
                    "vit_* backbone or set freeze_patch_embed: false"
                )
            backbone.patch_embed.requires_grad_(False)
        # Sec. 3 / appendix: 3-layer projector, 2-layer predictor, 4096 hidden, 256 out, BN on
        # the hidden layers; the projector's output has an affine-free BN as in the authors'
        # release, the predictor's output none.
        self.projector = mlp(
            [self.embed_dim, proj_hidden_dim, proj_hidden_dim, proj_dim], norm="bn", last_norm=True
        )
        self.predictor = mlp([proj_dim, pred_hidden_dim, proj_dim], norm="bn")
        self.key_encoder = EMA(self._online(), momentum, schedule="cosine")
        self.temperature = temperature
        self.current_momentum = self.key_encoder.current_momentum

    def forward(self, views, batch, *, generator=None):
        v0, v1 = views[:2]
        features0 = self.backbone(v0)
        q0 = self.predictor(self.projector(features0))
        q1 = self.predictor(self.projector(self.backbone(v1)))
        with torch.no_grad():
            k0, k1 = self.key_encoder(v0), self.key_encoder(v1)
        # Algorithm 1: ctr(q1, k2) + ctr(q2, k1), a sum of the two directions.
        loss = moco_v3(q0, k1, self.temperature) + moco_v3(q1, k0, self.temperature)
        return {"loss": loss, "embedding": features0.detach()}

    def on_step_end(self, progress: float) -> None:
        self.current_momentum = self.key_encoder.step(self._online(), progress)

    def _online(self) -> nn.Module:
        # A view of the online path (no copy): the EMA pairs its parameters with the key encoder's.
        return nn.Sequential(self.backbone, self.projector)
