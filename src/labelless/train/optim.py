"""Optimisers (SGD, LARS, AdamW), the peak learning rate scaled by the global batch, and the
learning-rate schedules (warm-up + cosine, infinite) as pure functions of run progress in [0, 1]."""

from __future__ import annotations

import math

import torch
from torch import nn

from labelless.errors import unknown_name


class LARS(torch.optim.Optimizer):
    """SGD with momentum and layer-wise adaptive rate scaling (You, Gitman, Ginsburg 2017).

    For each parameter tensor the step is scaled by the trust ratio
    ``eta * ||w|| / (||g|| + weight_decay * ||w||)``; parameter groups with ``lars=False`` (biases
    and normalisation weights) take plain SGD steps without weight decay, as in SimCLR and BYOL.
    """

    def __init__(
        self, params, lr: float, momentum: float = 0.9, weight_decay: float = 0.0, eta: float = 0.02
    ) -> None:
        defaults = {
            "lr": lr,
            "momentum": momentum,
            "weight_decay": weight_decay,
            "eta": eta,
            "lars": True,
        }
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for param in group["params"]:
                if param.grad is None:
                    continue
                grad = param.grad
                if group["lars"]:
                    grad = grad.add(param, alpha=group["weight_decay"])
                    param_norm = torch.linalg.vector_norm(param)
                    grad_norm = torch.linalg.vector_norm(grad)
                    trust = torch.where(
                        (param_norm > 0) & (grad_norm > 0),
                        group["eta"] * param_norm / grad_norm,
                        torch.ones_like(param_norm),
                    )
                    grad = grad.mul(trust)
                state = self.state[param]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = grad.clone()
                else:
                    state["momentum_buffer"].mul_(group["momentum"]).add_(grad)
                param.add_(state["momentum_buffer"], alpha=-group["lr"])
        return loss


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Weights of linear/conv layers (decayed), and biases + norm weights (not).

    Parameters the model lists in ``constant_lr_parameters()`` (e.g. SimSiam's predictor) go to
    groups of their own marked ``constant_lr=True``: the schedule leaves their learning rate at
    the base value.
    """
    listed = getattr(model, "constant_lr_parameters", None)
    constant = {id(p) for p in listed()} if callable(listed) else set()
    buckets: dict[tuple[bool, bool], list] = {}
    for param in model.parameters():
        if not param.requires_grad:
            continue
        buckets.setdefault((param.ndim <= 1, id(param) in constant), []).append(param)
    groups = []
    for is_constant in (False, True):
        for no_decay in (False, True):
            params = buckets.get((no_decay, is_constant), [])
            if is_constant and not params:
                continue
            group = {"params": params, "weight_decay": 0.0 if no_decay else weight_decay}
            if no_decay:
                group["lars"] = False
            if is_constant:
                group["constant_lr"] = True
            groups.append(group)
    return groups


def build_optimizer(
    model: nn.Module, name: str, *, lr: float, weight_decay: float, momentum: float = 0.9
) -> torch.optim.Optimizer:
    groups = parameter_groups(model, weight_decay)
    if name == "lars":
        return LARS(groups, lr=lr, momentum=momentum, weight_decay=weight_decay)
    for group in groups:
        group.pop("lars", None)
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr, weight_decay=weight_decay)
    raise unknown_name("optimizer", name, ["sgd", "lars", "adamw"])


LR_SCALINGS = ("none", "linear", "sqrt")


def scaled_lr(lr: float, scaling: str, global_batch: int, reference_batch: int = 256) -> float:
    """The peak learning rate for ``global_batch`` samples per optimiser step (batch per
    process x processes x accumulated batches), given ``lr`` stated for ``reference_batch``.

    - ``"linear"``: ``lr * global_batch / reference_batch``, the linear scaling rule (Goyal et
      al. 2017, "Accurate, Large Minibatch SGD"), the form SimCLR, BYOL, Barlow Twins, VICReg,
      MoCo v3, DINO and MAE state their LR in ("lr x batch / 256").
    - ``"sqrt"``: ``lr * sqrt(global_batch / reference_batch)`` (Krizhevsky 2014, "One weird
      trick"; SimCLR's appendix B.1 for small batches and long runs, ``0.075 * sqrt(batch)``;
      You et al. 2020, LAMB).
    - ``"none"``: ``lr`` whatever the batch.
    """
    if scaling not in LR_SCALINGS:
        raise unknown_name("learning-rate scaling", scaling, LR_SCALINGS)
    if global_batch < 1 or reference_batch < 1:
        raise ValueError(
            f"batch sizes must be >= 1, got global {global_batch}, reference {reference_batch}"
        )
    ratio = global_batch / reference_batch
    if scaling == "linear":
        return lr * ratio
    if scaling == "sqrt":
        return lr * math.sqrt(ratio)
    return lr


def _warmup(progress: float, warmup: float) -> float | None:
    """The linear warm-up ramp ``progress / warmup`` while ``progress < warmup``, else None."""
    if warmup > 0 and progress < warmup:
        return max(0.0, progress) / warmup
    return None


def _decay_position(progress: float, warmup: float) -> float:
    """Where ``progress`` lies in the decay part of the run, after the warm-up: 0 at its start,
    1 at the end of the run."""
    if progress >= 1.0:
        return 1.0
    return min(1.0, max(0.0, (progress - warmup) / max(1e-12, 1.0 - warmup)))


def _half_cosine(position: float, start: float, end: float) -> float:
    return end + (start - end) * 0.5 * (1.0 + math.cos(math.pi * position))


def warmup_cosine(progress: float, warmup: float = 0.0, min_ratio: float = 0.0) -> float:
    """LR multiplier at run ``progress`` in [0, 1]: a linear warm-up from 0 to 1 over the first
    ``warmup`` fraction of the run, then a half cosine down to ``min_ratio`` at progress 1
    (Loshchilov & Hutter 2017, SGDR; Goyal et al. 2017 for the warm-up).

    With ``progress = step / (total_steps - 1)`` and ``warmup = warmup_steps / (total_steps - 1)``
    the first step has multiplier 0 and the last ``min_ratio``.
    """
    ramp = _warmup(progress, warmup)
    if ramp is not None:
        return ramp
    return _half_cosine(_decay_position(progress, warmup), 1.0, min_ratio)


def infinite_schedule(
    progress: float,
    warmup: float = 0.0,
    *,
    constant_ratio: float = 0.5,
    cooldown: float = 0.2,
    anneal: float = 0.1,
    min_ratio: float = 0.0,
) -> float:
    """LR multiplier of the infinite learning-rate schedule (Ibrahim et al. 2024, "Simple and
    Scalable Strategies to Continually Pre-train Large Language Models"; Singh et al. 2025,
    "Beyond Cosine Decay: On the effectiveness of Infinite Learning Rate Schedule for Continual
    Pre-training").

    Phases over run ``progress`` in [0, 1]; ``cooldown`` and ``anneal`` are fractions of the
    part of the run after the warm-up (position ``q`` in [0, 1]):

    1. warm-up: linear from 0 to 1 over the first ``warmup`` of the run;
    2. cooldown (``q < cooldown``): half cosine from 1 down to ``constant_ratio``;
    3. constant (``cooldown <= q < 1 - anneal``): ``constant_ratio``, the phase a continual
       pretraining run can stay in for as long as new data comes;
    4. annealing (``q >= 1 - anneal``): exponential decay from ``constant_ratio`` to
       ``min_ratio``, ``constant_ratio * (min_ratio / constant_ratio) ** s`` for ``s`` in [0, 1]
       (Ibrahim et al.); an exponential never reaches 0, so with ``min_ratio == 0`` it is linear.

    Continuous at every phase boundary and non-increasing after the warm-up when
    ``min_ratio <= constant_ratio <= 1``.
    """
    ramp = _warmup(progress, warmup)
    if ramp is not None:
        return ramp
    position = _decay_position(progress, warmup)
    if position >= 1.0:  # without an annealing phase the run ends at the constant LR
        return min_ratio if anneal > 0 else constant_ratio
    anneal_start = 1.0 - anneal
    if position >= anneal_start:
        fraction = (position - anneal_start) / anneal
        if min_ratio > 0:
            return constant_ratio * (min_ratio / constant_ratio) ** fraction
        return constant_ratio * (1.0 - fraction)
    if position < cooldown:
        return _half_cosine(position / cooldown, 1.0, constant_ratio)
    return constant_ratio


SCHEDULES = ("cosine", "infinite")


def lr_multiplier(name: str, progress: float, warmup: float, **params: float) -> float:
    """The multiplier of schedule ``name`` (``"cosine"`` or ``"infinite"``) at ``progress``.

    ``params`` are ``min_ratio`` and, for ``"infinite"``, ``constant_ratio``, ``cooldown`` and
    ``anneal``.
    """
    if name == "cosine":
        return warmup_cosine(progress, warmup, params.get("min_ratio", 0.0))
    if name == "infinite":
        return infinite_schedule(progress, warmup, **params)
    raise unknown_name("learning-rate schedule", name, SCHEDULES)
