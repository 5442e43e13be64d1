"""Sample adaptive augmentation (SAA) for the FixMatch family.

Gui et al. 2023, "Enhancing Sample Utilization through Sample Adaptive Augmentation in
Semi-Supervised Learning" (ICCV): samples whose strong view is already predicted with a loss
near zero ("naive samples") teach the model nothing more; SAA finds them from their historical
loss and augments them more diversely. Here:

- sample selection: each unlabelled sample's historical loss is an EMA (``momentum``) of its
  per-visit unlabelled loss (cross-entropy of the strong view against its pseudo-label, kept in
  ``SampleState``); at each epoch end the samples seen so far are split in two by Otsu's
  threshold on the historical losses, and the low-loss side is naive;
- sample augmentation: a naive sample's strong view is ``half_mix`` of two independent draws of
  the ``naive`` pipeline (the strong recipe, plus ``views.naive`` on top): the left or the top
  half (a fair coin per sample) of the second draw pasted onto the first, as the authors' code
  (GuanGui-nju/SAA) does.

Historical-loss momentum: 0.7 of the old value by default (``semi.saa_momentum``); the authors'
code keeps almost only the latest loss (0.001 of the old value), which ``saa_momentum: 0.001``
reproduces. It also starts selecting only after 400 iterations of its outer loop; here selection
starts at the first epoch end.
"""

from __future__ import annotations

import torch
from torch import Tensor

from labelless.augment.common import select
from labelless.semi.state import SampleState

LOSS, SEEN, NAIVE = "saa_loss", "saa_seen", "saa_naive"


def otsu_threshold(values: Tensor, bins: int = 256) -> float:
    """Otsu's threshold of 1-D ``values``: the cut of a ``bins``-bin histogram that maximises
    the between-class variance (Otsu 1979), computed for every cut at once."""
    values = values.float()
    low, high = float(values.min()), float(values.max())
    if high - low < 1e-12:
        return high
    hist = torch.histc(values, bins=bins, min=low, max=high)
    centres = low + (torch.arange(bins, dtype=torch.float32) + 0.5) * (high - low) / bins
    weight = hist.cumsum(0)  # samples at or below each cut
    total = weight[-1]
    mass = (hist * centres).cumsum(0)
    w0, w1 = weight[:-1], total - weight[:-1]
    mean0 = mass[:-1] / w0.clamp_min(1e-12)
    mean1 = (mass[-1] - mass[:-1]) / w1.clamp_min(1e-12)
    between = w0 * w1 * (mean0 - mean1) ** 2
    cut = int(between.argmax())
    return float(low + (cut + 1) * (high - low) / bins)


def half_mix(first: Tensor, second: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """SAA's augmentation of naive samples: per sample, the left or the top half (a fair coin)
    of ``second`` pasted onto ``first`` (both ``[N, C, H, W]``, e.g. two independent strong views
    of the same images). Other shapes ``[N, ..., L]`` take the first half of the last axis from
    ``second``. One batched selection, no per-sample loop."""
    if first.shape != second.shape:
        raise ValueError(
            f"half_mix needs two views of one shape, got {first.shape} and {second.shape}"
        )
    device = first.device
    if first.ndim == 4:
        n, _, h, w = first.shape
        left = (torch.rand(n, generator=generator, device=device) < 0.5).view(n, 1, 1, 1)
        cols = (torch.arange(w, device=device) < w // 2).view(1, 1, 1, w)
        rows = (torch.arange(h, device=device) < h // 2).view(1, 1, h, 1)
        mask = (left & cols) | (~left & rows)  # [N, 1, H, W]
    else:
        length = first.shape[-1]
        mask = torch.arange(length, device=device) < length // 2
    return select(mask, second, first)


class SampleAdaptiveAugmentation:
    """Bookkeeping of SAA on a ``SampleState``; the training module asks ``naive(index)``."""

    def __init__(self, state: SampleState, momentum: float = 0.7) -> None:
        self.state, self.momentum = state, float(momentum)
        state.add(LOSS, fill=0.0)
        state.add(SEEN, fill=0, dtype=torch.bool)
        state.add(NAIVE, fill=0, dtype=torch.bool)

    def naive(self, index: Tensor) -> Tensor:
        return self.state[NAIVE][index.to(self.state[NAIVE].device)]

    def record(self, index: Tensor, losses: Tensor) -> None:
        """Fold this visit's per-sample losses into the historical losses."""
        device = self.state[LOSS].device
        index, losses = index.to(device), losses.detach().float().to(device)
        seen, old = self.state[SEEN][index], self.state[LOSS][index]
        updated = torch.where(seen, self.momentum * old + (1 - self.momentum) * losses, losses)
        self.state.write(LOSS, index, updated)
        self.state.write(SEEN, index, torch.ones_like(seen))

    def select(self) -> dict[str, float]:
        """Epoch end: mark as naive the seen samples below Otsu's threshold."""
        seen = self.state[SEEN] & self.state.unlabelled
        if int(seen.sum()) < 2:
            return {}
        losses = self.state[LOSS][seen]
        threshold = otsu_threshold(losses.cpu())
        naive = seen & (self.state[LOSS] < threshold)
        self.state[NAIVE].copy_(naive)
        return {"saa/threshold": threshold, "saa/naive_fraction": float(naive.sum() / seen.sum())}
