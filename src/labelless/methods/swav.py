"""SwAV: Caron, Misra, Mairal, Goyal, Bojanowski, Joulin. "Unsupervised Learning of Visual Features
by Contrasting Cluster Assignments", NeurIPS 2020."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from labelless.errors import ConfigError
from labelless.methods.base import (
    Method,
    check_positive_options,
    forward_grouped,
    register_method,
)
from labelless.methods.queue import EmbeddingQueue
from labelless.nn.heads import mlp
from labelless.nn.losses import sinkhorn, sinkhorn_with_queue, swav


@register_method("swav")
class SwAV(Method):
    """Swapped prediction of online cluster codes over multi-crop views (Caron et al. 2020, eq. 3).

    Every crop goes through backbone -> projector -> L2-normalisation -> prototypes (a bias-free
    linear layer whose rows are kept on the unit sphere), giving scores ``z^T c [B, K]``. The
    codes of the ``num_global_crops`` global crops come from Sinkhorn-Knopp (equipartition over
    the batch, no gradient); each global crop's code is predicted by every other crop, global or
    local, and the cross-entropies are averaged over those pairs. The prototypes take no gradient
    during the first ``freeze_prototypes_steps`` optimiser steps (the paper freezes them for the
    first epoch so that a random start cannot be collapsed into a few clusters), or, when
    ``freeze_prototypes_fraction`` is set, during that fraction of the run's progress: a budget
    run of a few hundred steps would otherwise spend most of them against fixed prototypes.

    On an accelerator crops of one size go through the backbone in one concatenated batch
    (``forward_grouped``), as in the authors' multi-crop code; a BatchNorm backbone normalises
    over the crops of a size together. On a CPU, where that is slower, each crop is its own call.
    """

    default_views = "swav"
    summary = "clustering: swapped prediction of Sinkhorn codes over multi-crop (Caron 2020)"

    def __init__(
        self,
        backbone: nn.Module,
        *,
        proj_hidden_dim: int = 2048,
        proj_dim: int = 128,
        num_prototypes: int = 3000,
        temperature: float = 0.1,
        epsilon: float = 0.05,
        sinkhorn_iterations: int = 3,
        freeze_prototypes_steps: int = 313,
        freeze_prototypes_fraction: float | None = None,
        num_global_crops: int = 2,
        queue_size: int = 0,
        queue_start_fraction: float = 0.1,
    ) -> None:
        super().__init__(backbone)
        check_positive_options(
            "method.kwargs", type(self), temperature=temperature, epsilon=epsilon
        )
        if num_global_crops < 1 or num_prototypes < 1:
            raise ConfigError("swav needs num_global_crops >= 1 and num_prototypes >= 1")
        if freeze_prototypes_fraction is not None and not 0 <= freeze_prototypes_fraction < 1:
            raise ConfigError(
                "swav freeze_prototypes_fraction must be in [0, 1) (a fraction of the run), "
                f"got {freeze_prototypes_fraction}"
            )
        self.projector = mlp([self.embed_dim, proj_hidden_dim, proj_dim], norm="bn")
        self.prototypes = nn.Linear(proj_dim, num_prototypes, bias=False)
        self.temperature = temperature
        self.epsilon = epsilon
        self.sinkhorn_iterations = sinkhorn_iterations
        self.freeze_prototypes_steps = freeze_prototypes_steps
        self.freeze_prototypes_fraction = freeze_prototypes_fraction
        self.num_global_crops = num_global_crops
        if queue_size < 0 or not 0 <= queue_start_fraction <= 1:
            raise ConfigError(
                "swav needs queue_size >= 0 (0: no queue) and queue_start_fraction in [0, 1], "
                f"got {queue_size} and {queue_start_fraction}"
            )
        self.queue_start_fraction = queue_start_fraction
        queues = num_global_crops if queue_size else 0
        self.queues = nn.ModuleList(EmbeddingQueue(queue_size, proj_dim) for _ in range(queues))
        self.register_buffer("step", torch.zeros((), dtype=torch.long))
        # Run progress after the last step (0 before the first); a buffer, so resuming keeps it.
        self.register_buffer("progress", torch.zeros(()))
        self._normalise_prototypes()

    @torch.no_grad()
    def _normalise_prototypes(self) -> None:
        weight = self.prototypes.weight
        weight.copy_(F.normalize(weight, dim=1))

    @property
    def prototypes_frozen(self) -> bool:
        if self.freeze_prototypes_fraction is not None:
            return bool(self.progress < self.freeze_prototypes_fraction)
        return bool(self.step < self.freeze_prototypes_steps)

    def _project(self, features: torch.Tensor) -> torch.Tensor:
        """Backbone ``features [B, E]`` -> L2-normalised projections ``[B, D]``."""
        return F.normalize(self.projector(features), dim=1)

    def _scores(self, z: torch.Tensor) -> torch.Tensor:
        """Cosine scores of normalised projections ``z [B, D]`` with the prototypes: ``[B, K]``."""
        prototypes = self.prototypes.weight
        if self.prototypes_frozen:
            prototypes = prototypes.detach()
        return z @ prototypes.T

    def _codes(self, scores: torch.Tensor, crop: int) -> torch.Tensor:
        """Sinkhorn codes of global crop ``crop``'s scores, with its queue once it is in use."""
        in_use = self.queues and self.progress >= self.queue_start_fraction
        queued = self.queues[crop].filled() if in_use else scores[:0]
        if len(queued) == 0:
            return sinkhorn(scores, self.epsilon, self.sinkhorn_iterations)
        with torch.no_grad():
            queued_scores = queued.to(scores.dtype) @ self.prototypes.weight.T
        return sinkhorn_with_queue(scores, queued_scores, self.epsilon, self.sinkhorn_iterations)

    def forward(self, views, batch, *, generator=None):
        if len(views) <= self.num_global_crops:
            raise ConfigError(
                f"swav needs more than {self.num_global_crops} views (global crops + others), "
                f"got {len(views)}; use the 'swav' view recipe"
            )
        if self.training:
            self._normalise_prototypes()  # rows back on the unit sphere after the last step
        features = forward_grouped(self.backbone, views)
        projections = [self._project(f) for f in features]
        scores = [self._scores(z) for z in projections]
        codes = [self._codes(scores[i], i) for i in range(self.num_global_crops)]
        if self.training:
            for queue, z in zip(self.queues, projections, strict=False):
                queue.push(z)
        losses = [
            swav(scores[j], codes[i], self.temperature)
            for i in range(self.num_global_crops)
            for j in range(len(views))
            if j != i
        ]
        loss = torch.stack(losses).mean()
        return {"loss": loss, "embedding": features[0].detach()}

    def on_step_end(self, progress: float) -> None:
        self.step += 1
        self.progress.fill_(progress)
