"""DINO: Caron, Touvron, Misra, Jégou, Mairal, Bojanowski, Joulin. "Emerging Properties in
Self-Supervised Vision Transformers", ICCV 2021."""

from __future__ import annotations

from collections.abc import Sequence

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
from labelless.nn.ema import EMA
from labelless.nn.heads import mlp
from labelless.nn.losses import dino, update_center


class DINOHead(nn.Module):
    """DINO's projection head (Caron et al. 2021, sec. 3.1 and appendix):

    ``x [N, D] -> MLP (3 layers, GELU, hidden_dim) -> bottleneck_dim -> L2-normalise ->
    weight-normalised linear (no bias) -> [N, out_dim]``. The last layer's rows are unit vectors
    (weight normalisation with the gain fixed at 1), so its outputs are cosines to ``out_dim``
    prototypes. ``norm="bn"`` adds BatchNorm to the MLP (the paper's choice for ResNets).
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        *,
        hidden_dim: int = 2048,
        bottleneck_dim: int = 256,
        norm: str = "none",
    ) -> None:
        super().__init__()
        self.mlp = mlp(
            [in_dim, hidden_dim, hidden_dim, bottleneck_dim], norm=norm, activation=nn.GELU
        )
        self.last_layer = nn.Parameter(torch.empty(out_dim, bottleneck_dim))
        nn.init.trunc_normal_(self.last_layer, std=0.02)
        self.freeze_last_layer = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = F.normalize(self.mlp(x), dim=-1)
        weight = F.normalize(self.last_layer, dim=1)
        if self.freeze_last_layer:
            weight = weight.detach()
        return z @ weight.T


def teacher_temperature(progress: float, start: float, end: float, warmup_fraction: float) -> float:
    """DINO's teacher temperature: linear from ``start`` to ``end`` over the first
    ``warmup_fraction`` of training, then constant (Caron et al. 2021, appendix)."""
    if warmup_fraction <= 0 or progress >= warmup_fraction:
        return end
    return start + (end - start) * max(progress, 0.0) / warmup_fraction


@register_method("dino")
class DINO(Method):
    """Self-distillation with no labels: a student matches an EMA teacher's sharpened, centred
    output distribution across crops (Caron et al. 2021, Algorithm 1).

    The teacher (EMA of backbone + head, momentum ``momentum[0] -> momentum[1]`` on a cosine)
    sees the ``num_global_crops`` global crops; the student sees every crop. The loss is
    ``H(P_t(view i), P_s(view j))`` averaged over all pairs with ``j != i``. The centre is an EMA
    (``center_momentum``) of the teacher's mean output; the teacher temperature warms up linearly
    from ``warmup_teacher_temp`` to ``teacher_temp`` over ``warmup_teacher_temp_fraction`` of the
    run. The last layer takes no gradient during the first ``freeze_last_layer_steps`` steps.

    On an accelerator crops of one size go through the backbone (student and teacher) in one
    concatenated batch (``forward_grouped``: one call for the global crops, one for the local
    ones), as in the authors' multi-crop code; a BatchNorm backbone normalises over the crops of
    a size together. On a CPU, where that is slower, each crop is its own call.
    """

    default_views = "dino"
    summary = "self-distillation: EMA teacher, centring + sharpening, multi-crop (Caron 2021)"

    def __init__(
        self,
        backbone: nn.Module,
        *,
        out_dim: int = 65536,
        hidden_dim: int = 2048,
        bottleneck_dim: int = 256,
        head_norm: str = "none",
        student_temp: float = 0.1,
        teacher_temp: float = 0.04,
        warmup_teacher_temp: float = 0.04,
        warmup_teacher_temp_fraction: float = 0.1,
        center_momentum: float = 0.9,
        momentum: Sequence[float] = (0.996, 1.0),
        freeze_last_layer_steps: int = 0,
        num_global_crops: int = 2,
    ) -> None:
        super().__init__(backbone)
        check_positive_options(
            "method.kwargs",
            type(self),
            student_temp=student_temp,
            teacher_temp=teacher_temp,
            warmup_teacher_temp=warmup_teacher_temp,
        )
        if num_global_crops < 1:
            raise ConfigError(f"dino needs num_global_crops >= 1, got {num_global_crops}")
        self.head = DINOHead(
            self.embed_dim,
            out_dim,
            hidden_dim=hidden_dim,
            bottleneck_dim=bottleneck_dim,
            norm=head_norm,
        )
        self.teacher = EMA(self._student(), momentum, schedule="cosine")
        self.student_temp = student_temp
        self.teacher_temps = (warmup_teacher_temp, teacher_temp, warmup_teacher_temp_fraction)
        self.current_teacher_temp = teacher_temperature(0.0, *self.teacher_temps)
        self.center_momentum = center_momentum
        self.current_momentum = self.teacher.current_momentum
        self.freeze_last_layer_steps = freeze_last_layer_steps
        self.num_global_crops = num_global_crops
        self.register_buffer("center", torch.zeros(1, out_dim))
        self.register_buffer("step", torch.zeros((), dtype=torch.long))

    def forward(self, views, batch, *, generator=None):
        num_global = self.num_global_crops
        if len(views) < max(2, num_global):
            raise ConfigError(
                f"dino needs at least {max(2, num_global)} views, got {len(views)}; "
                "use the 'dino' view recipe"
            )
        self.head.freeze_last_layer = bool(self.step < self.freeze_last_layer_steps)
        features = forward_grouped(self.backbone, views)
        student = [self.head(f) for f in features]
        with torch.no_grad():
            teacher = forward_grouped(self.teacher, views[:num_global])
        losses = [
            dino(student[j], teacher[i], self.center, self.student_temp, self.current_teacher_temp)
            for i in range(num_global)
            for j in range(len(views))
            if j != i
        ]
        if self.training:
            self.center.copy_(update_center(self.center, torch.cat(teacher), self.center_momentum))
        loss = torch.stack(losses).mean()
        return {"loss": loss, "embedding": features[0].detach()}

    def on_step_end(self, progress: float) -> None:
        self.step += 1
        self.current_teacher_temp = teacher_temperature(progress, *self.teacher_temps)
        self.current_momentum = self.teacher.step(self._student(), progress)

    def _student(self) -> nn.Module:
        # A view of the student path (no copy): the EMA pairs its parameters with the teacher's.
        return nn.Sequential(self.backbone, self.head)
