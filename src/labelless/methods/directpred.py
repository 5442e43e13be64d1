"""DirectPred: Tian, Chen, Ganguli. "Understanding self-supervised Learning Dynamics without
Contrastive Pairs", ICML 2021."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from labelless.errors import ConfigError
from labelless.methods.base import Method, register_method
from labelless.nn.ema import EMA
from labelless.nn.heads import mlp
from labelless.nn.losses import byol, directpred_predictor, update_correlation


@register_method("directpred")
class DirectPred(Method):
    """BYOL whose linear predictor is not learned but set from the eigendecomposition of a moving
    average F of the online projections' correlation matrix (sec. 5, eqs. 18-19).

    Every training forward updates ``F <- rho F + (1 - rho) E[z z^T]`` (all-reduced over
    processes) and, every ``freq`` of them, sets ``W_p = U diag(p) U^T`` with
    ``p_j = sqrt(s_j) / max sqrt(s) + eps``. ``W_p`` and ``F`` are buffers: no gradient, no
    optimiser state, saved in checkpoints. Defaults as in the authors' sample command
    (``freq=1``, ``rho=0.3``, ``eps=0.01``). As BYOL: cosine target momentum, each view
    through the backbone on its own.
    """

    default_views = "byol"
    summary = "non-contrastive: BYOL with a linear predictor set from eigenvectors (Tian 2021)"

    def __init__(
        self,
        backbone: nn.Module,
        *,
        proj_hidden_dim: int = 4096,
        proj_dim: int = 256,
        momentum: Sequence[float] = (0.99, 1.0),
        rho: float = 0.3,
        eps: float = 0.01,
        freq: int = 1,
    ) -> None:
        super().__init__(backbone)
        if not 0 <= rho < 1:
            raise ConfigError(f"directpred's rho must be in [0, 1), got {rho}; the paper uses 0.3")
        if not isinstance(freq, int) or freq < 1:
            raise ConfigError(f"directpred's freq must be a positive int, got {freq!r}; try 1")
        self.projector = mlp([self.embed_dim, proj_hidden_dim, proj_dim], norm="bn")
        self.target = EMA(self._online(), momentum, schedule="cosine")
        self.register_buffer("correlation", torch.zeros(proj_dim, proj_dim))
        self.register_buffer("predictor_weight", torch.eye(proj_dim))
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))
        self.current_momentum = self.target.current_momentum
        self.rho, self.eps, self.freq = rho, eps, freq

    def forward(self, views, batch, *, generator=None):
        v0, v1 = views[:2]
        features0 = self.backbone(v0)
        z0, z1 = self.projector(features0), self.projector(self.backbone(v1))
        if self.training:
            self._update_predictor(torch.cat([z0, z1]))
        weight = self.predictor_weight.to(z0.dtype)
        p0, p1 = z0 @ weight.T, z1 @ weight.T
        with torch.no_grad():
            t0, t1 = self.target(v0), self.target(v1)
        loss = (byol(p0, t1) + byol(p1, t0)) / 2
        return {"loss": loss, "embedding": features0.detach()}

    @torch.no_grad()
    def _update_predictor(self, z: torch.Tensor) -> None:
        correlation = update_correlation(self.correlation, z, self.rho)
        self.correlation.copy_(correlation)
        if int(self.updates) % self.freq == 0:
            self.predictor_weight.copy_(directpred_predictor(correlation, self.eps))
        self.updates += 1

    def on_step_end(self, progress: float) -> None:
        self.current_momentum = self.target.step(self._online(), progress)

    def _online(self) -> nn.Module:
        return nn.Sequential(self.backbone, self.projector)
