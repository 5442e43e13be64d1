"""TS-TCC: Eldele, Ragab, Chen, Wu, Kwoh, Li, Guan. "Time-Series Representation Learning via
Temporal and Contextual Contrasting", IJCAI 2021."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from labelless.backbones.timeseries import instance_pool, valid_steps
from labelless.errors import DataError
from labelless.methods.base import Method, check_positive_options, register_method
from labelless.nn import sampling
from labelless.nn.heads import mlp
from labelless.nn.losses import info_nce
from labelless.nn.losses_timeseries import future_prediction_nce


class ContextSummary(nn.Module):
    """TS-TCC's autoregressive model: a transformer over ``z_1..z_t`` with a learnable context
    token prepended; the token's output is the context ``c_t`` ``[B, hidden_dim]``."""

    def __init__(self, input_dim: int, hidden_dim: int, depth: int, num_heads: int) -> None:
        super().__init__()
        self.project = nn.Linear(input_dim, hidden_dim)
        self.token = nn.Parameter(torch.randn(1, 1, hidden_dim) * 0.02)
        layer = nn.TransformerEncoderLayer(
            hidden_dim, num_heads, 2 * hidden_dim, 0.1, batch_first=True, norm_first=True
        )
        self.layers = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.project(z)
        h = torch.cat([self.token.expand(len(h), -1, -1), h], dim=1)
        return self.layers(h)[:, 0]


@register_method("tstcc")
class TSTCC(Method):
    """A weak (jitter + scale) and a strong (permutation + jitter) view. Temporal contrasting: the
    context of one view's past predicts the other view's next K timestamps (InfoNCE against the
    other series). Contextual contrasting: NT-Xent between the projected contexts of the views.
    Loss = lambda_tc (L_TC^s + L_TC^w) + lambda_cc L_CC (1 and 0.7 in the paper). The split
    timestamp is drawn from the step's ``generator``."""

    default_views = "tstcc"
    summary = (
        "time series: temporal (cross-view future prediction) + contextual contrast (Eldele 2021)"
    )
    modality = "timeseries"

    def __init__(
        self,
        backbone: nn.Module,
        *,
        timesteps: int = 6,
        max_steps: int = 32,
        hidden_dim: int = 64,
        depth: int = 1,
        num_heads: int = 4,
        temperature: float = 0.2,
        lambda_tc: float = 1.0,
        lambda_cc: float = 0.7,
    ) -> None:
        super().__init__(backbone)
        check_positive_options("method.kwargs", type(self), temperature=temperature)
        self.timesteps = timesteps
        self.max_steps = max_steps
        self.temperature = temperature
        self.lambda_tc = lambda_tc
        self.lambda_cc = lambda_cc
        self.context = ContextSummary(self.embed_dim, hidden_dim, depth, num_heads)
        self.predictors = nn.Linear(hidden_dim, timesteps * self.embed_dim)
        self.projector = mlp([hidden_dim, hidden_dim // 2, hidden_dim // 4], norm="bn")

    def _steps(self, view: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-timestamp features ``[B, T, D]`` and the same max-pooled to at most
        ``max_steps`` timestamps."""
        z = self.backbone.forward_sequence(view)
        kernel = math.ceil(z.shape[1] / self.max_steps)
        if kernel == 1:
            return z, z
        return z, F.max_pool1d(z.transpose(1, 2), kernel, ceil_mode=True).transpose(1, 2)

    def _temporal(self, context: torch.Tensor, future: torch.Tensor) -> torch.Tensor:
        steps = future.shape[1]
        predictions = self.predictors(context).view(len(context), self.timesteps, -1)
        return future_prediction_nce(predictions[:, :steps], future)

    def forward(self, views, batch, *, generator=None):
        weak, strong = views[:2]
        full_weak, z_weak = self._steps(weak)
        _, z_strong = self._steps(strong)
        length = z_weak.shape[1]
        if length < 2:
            raise DataError("tstcc needs series of at least 2 timestamps")
        steps = min(self.timesteps, length - 1)
        # the last timestamp of the past
        t = int(sampling.randint(0, length - steps, (1,), generator=generator).item())
        c_weak = self.context(z_weak[:, : t + 1])
        c_strong = self.context(z_strong[:, : t + 1])
        temporal = self._temporal(c_strong, z_weak[:, t + 1 : t + 1 + steps]) + self._temporal(
            c_weak, z_strong[:, t + 1 : t + 1 + steps]
        )
        contextual = info_nce(self.projector(c_weak), self.projector(c_strong), self.temperature)
        loss = self.lambda_tc * temporal + self.lambda_cc * contextual
        return {
            "loss": loss,
            "embedding": instance_pool(full_weak.detach(), valid_steps(weak)),
            "temporal_loss": temporal.detach(),
            "contextual_loss": contextual.detach(),
        }
