"""Exponential moving average targets (momentum encoders) and their momentum schedule."""

from __future__ import annotations

import copy
import math

import torch
from torch import nn


def cosine_momentum(progress: float, start: float, end: float = 1.0) -> float:
    """Momentum rising from ``start`` to ``end`` on a half cosine over training (BYOL, sec. 3.2):
    ``end - (end - start) * (cos(pi * progress) + 1) / 2``; ``progress`` in [0, 1]."""
    progress = min(max(progress, 0.0), 1.0)
    return end - (end - start) * (math.cos(math.pi * progress) + 1.0) / 2.0


def linear_momentum(progress: float, start: float, end: float) -> float:
    """A target momentum linear from ``start`` to ``end`` over training (I-JEPA sec. 4, T-JEPA);
    ``progress`` is clamped to [0, 1]."""
    return start + (end - start) * min(max(progress, 0.0), 1.0)


class EMA(nn.Module):
    """A frozen copy of ``online`` updated as ``target = m * target + (1 - m) * online``.

    Parameters are averaged; buffers (BatchNorm statistics) are copied. The copy never receives
    gradient. Every process applies the same update to identical weights, so targets stay in sync
    under data parallelism without communication.
    """

    def __init__(self, online: nn.Module) -> None:
        super().__init__()
        self.target = copy.deepcopy(online)
        for param in self.target.parameters():
            param.requires_grad_(False)

    @torch.no_grad()
    def update(self, online: nn.Module, momentum: float) -> None:
        target_params = list(self.target.parameters())
        online_params = list(online.parameters())
        torch._foreach_mul_(target_params, momentum)
        torch._foreach_add_(target_params, online_params, alpha=1.0 - momentum)
        for target_buffer, online_buffer in zip(
            self.target.buffers(), online.buffers(), strict=True
        ):
            target_buffer.copy_(online_buffer)

    def forward(self, *args, **kwargs):
        return self.target(*args, **kwargs)
