"""Exponential moving average targets (momentum encoders) and their momentum schedule."""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence

import torch
from torch import nn

from labelless.errors import ConfigError

SCHEDULES = ("constant", "cosine", "linear", "warmup")


def cosine_momentum(progress: float, start: float, end: float = 1.0) -> float:
    """Momentum rising from ``start`` to ``end`` on a half cosine over training (BYOL, sec. 3.2):
    ``end - (end - start) * (cos(pi * progress) + 1) / 2``; ``progress`` in [0, 1]."""
    progress = min(max(progress, 0.0), 1.0)
    return end - (end - start) * (math.cos(math.pi * progress) + 1.0) / 2.0


def linear_momentum(progress: float, start: float, end: float) -> float:
    """A target momentum linear from ``start`` to ``end`` over training (I-JEPA sec. 4, T-JEPA);
    ``progress`` is clamped to [0, 1]."""
    return start + (end - start) * min(max(progress, 0.0), 1.0)


def warmup_momentum(updates: int, momentum: float) -> float:
    """``min(m, (1 + n) / (10 + n))`` after ``n`` updates, as TensorFlow's
    ExponentialMovingAverage with ``num_updates``: a short run's average is not stuck at init."""
    return min(momentum, (1.0 + updates) / (10.0 + updates))


class EMA(nn.Module):
    """A frozen copy of ``online`` updated as ``target = m * target + (1 - m) * online``.

    Parameters are averaged; buffers (BatchNorm statistics) are copied. The copy never receives
    gradient. Every process applies the same update to identical weights, so targets stay in sync
    under data parallelism without communication.

    The EMA owns its momentum schedule: ``momentum`` is one value or ``(start, end)``, and
    ``schedule`` one of ``"constant"`` (``start`` throughout), ``"cosine"`` (``cosine_momentum``,
    BYOL), ``"linear"`` (``linear_momentum``, I-JEPA) or ``"warmup"`` (``warmup_momentum`` of the
    updates so far, counted in the buffer ``updates``, so a checkpoint keeps the count).
    ``step(online, progress)`` after each optimiser step sets ``current_momentum`` and updates.

    Sharded (FSDP2, ``nn.sharding.shard_method``): target and online parameters are DTensors
    sharded alike (checked when sharding, against ``online``: the module the target was copied
    from, kept unregistered since its parameters belong to the method), and the update runs on
    each process's local shards: no all-gather per step.
    """

    def __init__(
        self,
        online: nn.Module,
        momentum: float | Sequence[float] = 0.999,
        schedule: str = "constant",
    ) -> None:
        super().__init__()
        if schedule not in SCHEDULES:
            raise ConfigError(
                f"EMA schedule must be one of {', '.join(SCHEDULES)}, got {schedule!r}"
            )
        values = [float(momentum)] if isinstance(momentum, (int, float)) else list(momentum)
        if len(values) not in (1, 2):
            raise ConfigError(f"EMA momentum must be a number or (start, end), got {momentum!r}")
        self.momentum = (float(values[0]), float(values[-1]))
        self.schedule = schedule
        self.current_momentum = self.momentum[0]
        self.target = copy.deepcopy(online)
        object.__setattr__(self, "online", online)  # a reference, not a submodule
        for param in self.target.parameters():
            param.requires_grad_(False)
        if schedule == "warmup":
            self.register_buffer("updates", torch.zeros((), dtype=torch.long))

    def momentum_at(self, progress: float) -> float:
        """The schedule's momentum at ``progress`` in [0, 1] of the run."""
        start, end = self.momentum
        if self.schedule == "cosine":
            return cosine_momentum(progress, start, end)
        if self.schedule == "linear":
            return linear_momentum(progress, start, end)
        if self.schedule == "warmup":
            return warmup_momentum(int(self.updates), start)
        return start

    @torch.no_grad()
    def step(self, online: nn.Module, progress: float) -> float:
        """One scheduled update towards ``online``; returns the momentum it used."""
        self.current_momentum = self.momentum_at(progress)
        self.update(online, self.current_momentum)
        if self.schedule == "warmup":
            self.updates += 1
        return self.current_momentum

    @torch.no_grad()
    def update(self, online: nn.Module, momentum: float) -> None:
        """One update with an explicit ``momentum`` (no schedule)."""
        target_params = [_local(param) for param in self.target.parameters()]
        online_params = [_local(param) for param in online.parameters()]
        torch._foreach_mul_(target_params, momentum)
        torch._foreach_add_(target_params, online_params, alpha=1.0 - momentum)
        for target_buffer, online_buffer in zip(
            self.target.buffers(), online.buffers(), strict=True
        ):
            target_buffer.copy_(online_buffer)

    def forward(self, *args, **kwargs):
        return self.target(*args, **kwargs)


def _local(tensor: torch.Tensor) -> torch.Tensor:
    """A DTensor's local shard (a view: updating it updates the DTensor); a tensor itself."""
    return tensor.to_local() if hasattr(tensor, "to_local") else tensor
