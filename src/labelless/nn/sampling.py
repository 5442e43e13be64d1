"""Random draws inside a training step, through the step's generator.

The training module hands every method and semi-supervised algorithm its checkpointed
augmentation generator (``forward(..., generator=)``); drawing masks, crops of time and mixing
coefficients from it makes a resumed run draw what the uninterrupted run would have drawn.
torch samples a generator only on its own device, so each draw happens there and the result
moves to ``device``. ``generator=None`` draws from the global RNG on ``device`` (plain loops,
tests).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


def _draw_device(
    generator: torch.Generator | None, device: torch.device | str | None
) -> torch.device | str | None:
    return generator.device if generator is not None else device


def _moved(values: Tensor, device: torch.device | str | None) -> Tensor:
    return values if device is None else values.to(device)


def rand(
    shape: tuple[int, ...],
    *,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> Tensor:
    """Uniform ``[0, 1)`` values of ``shape`` on ``device``."""
    values = torch.rand(shape, generator=generator, device=_draw_device(generator, device))
    return _moved(values, device)


def randint(
    low: int,
    high: int,
    shape: tuple[int, ...],
    *,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> Tensor:
    """Integers uniform in ``[low, high)`` of ``shape`` on ``device``."""
    values = torch.randint(
        low, high, shape, generator=generator, device=_draw_device(generator, device)
    )
    return _moved(values, device)


def randperm(
    n: int,
    *,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> Tensor:
    """A uniformly random permutation of ``0..n-1`` on ``device``."""
    values = torch.randperm(n, generator=generator, device=_draw_device(generator, device))
    return _moved(values, device)


def beta(alpha: float, generator: torch.Generator | None = None) -> float:
    """One draw of ``Beta(alpha, alpha)`` (mixup's mixing coefficient).

    torch's Beta sampler takes no generator, so with one a seed is drawn from it and NumPy
    samples the Beta: the same generator state gives the same coefficient."""
    if generator is None:
        concentration = torch.tensor(float(alpha))
        return float(torch.distributions.Beta(concentration, concentration).sample())
    seed = int(torch.randint(2**31 - 1, (1,), generator=generator, device=generator.device))
    return float(np.random.default_rng(seed).beta(alpha, alpha))
