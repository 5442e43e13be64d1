"""Sample adaptive augmentation (SAA) for the FixMatch family.

Gui et al. 2023, "Enhancing Sample Utilization through Sample Adaptive Augmentation in
Semi-Supervised Learning" (ICCV): samples whose strong view is already predicted with a loss
near zero ("naive samples") teach the model nothing more; SAA finds them from their historical
loss and augments them more diversely. Here:

- sample selection: each unlabelled sample's historical loss is an EMA of its per-visit
  unlabelled loss (cross-entropy of the strong view against its pseudo-label, kept in
  ``SampleState``), ``momentum * old + (1 - momentum) * loss`` from 0; after every pass over the
  labelled set, once ``start`` passes are done, Otsu's threshold on the historical losses of all
  unlabelled samples (unvisited ones at 0) splits them: below it a sample becomes naive, above
  it not naive, at it unchanged;
- sample augmentation: a naive sample's strong view is ``half_mix`` of two independent draws of
  the ``naive`` pipeline (the strong recipe, plus ``views.naive`` on top): the left or the top
  half (a fair coin per sample) of the second draw pasted onto the first.

Defaults are the authors' code (GuanGui-nju/SAA, ``datasets/dataset.py``: ``update_loss`` keeps
0.001 of the old value, ``update_mask`` uses skimage's ``threshold_otsu`` over every unlabelled
sample; ``models/flexmatch/flexmatch.py``: ``update_mask`` after each pass of the outer loop over
the labelled and unlabelled loaders once ``epoch_i > 400``).
"""

from __future__ import annotations

import torch
from torch import Tensor

from labelless.augment.common import select
from labelless.semi.state import SampleState

LOSS, SEEN, NAIVE = "saa_loss", "saa_seen", "saa_naive"


def otsu_threshold(values: Tensor, bins: int = 256) -> float:
    """Otsu's threshold of 1-D ``values``: the centre of the last bin below the cut of a
    ``bins``-bin histogram that maximises the between-class variance (Otsu 1979), computed for
    every cut at once; the value scikit-image's ``threshold_otsu`` returns (what SAA's code
    calls)."""
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
    return float(centres[cut])


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
    """Bookkeeping of SAA on a ``SampleState``; the training module asks ``naive(index)``,
    ``record``s each step's per-sample losses and calls ``step_end(steps)`` after each step.

    ``momentum``: the share of the old historical loss kept (0.001, the authors'); ``start``:
    passes over the labelled set before the first selection (400, the authors' ``epoch_i >
    400``); ``every``: training steps per pass over the labelled set (the labelled loader's
    length; one selection per pass)."""

    def __init__(
        self, state: SampleState, momentum: float = 0.001, *, start: int = 400, every: int = 1
    ) -> None:
        if every < 1 or start < 0:
            raise ValueError(f"SAA needs every >= 1 and start >= 0, got {every}, {start}")
        self.state, self.momentum = state, float(momentum)
        self.start, self.every = int(start), int(every)
        state.add(LOSS, fill=0.0)
        state.add(SEEN, fill=0, dtype=torch.bool)
        state.add(NAIVE, fill=0, dtype=torch.bool)

    def naive(self, index: Tensor) -> Tensor:
        return self.state[NAIVE][index.to(self.state[NAIVE].device)]

    def record(self, index: Tensor, losses: Tensor) -> None:
        """Fold this visit's per-sample losses into the historical losses (from 0)."""
        device = self.state[LOSS].device
        index, losses = index.to(device), losses.detach().float().to(device)
        old = self.state[LOSS][index]
        self.state.write(LOSS, index, self.momentum * old + (1 - self.momentum) * losses)
        self.state.write(SEEN, index, torch.ones_like(index, dtype=torch.bool))

    def step_end(self, steps: int) -> dict[str, float]:
        """After ``steps`` training steps: select when a labelled pass just ended and its
        0-based index is above ``start``."""
        if steps % self.every or steps // self.every - 1 <= self.start:
            return {}
        return self.select()

    def select(self) -> dict[str, float]:
        """Otsu's threshold over the unlabelled samples' historical losses: below it naive,
        above it not, at it unchanged."""
        unlabelled = self.state.unlabelled
        if int(unlabelled.sum()) < 2:
            return {}
        losses = self.state[LOSS]
        threshold = otsu_threshold(losses[unlabelled].cpu())
        naive = self.state[NAIVE]
        naive = torch.where(losses < threshold, True, torch.where(losses > threshold, False, naive))
        naive = naive & unlabelled
        self.state[NAIVE].copy_(naive)
        fraction = float(naive.sum() / unlabelled.sum())
        return {"saa/threshold": threshold, "saa/naive_fraction": fraction}
