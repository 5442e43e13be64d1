"""Views made for one encoder, prepared for another: distillation feeds the student's augmented
views to a teacher that was pretrained at another resolution and normalisation."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


class Retarget(nn.Module):
    """``[N, C, h, w]`` views normalised with ``source_mean`` / ``source_std`` -> the same pixels
    at ``size`` x ``size`` (bilinear, antialiased when shrinking) normalised with ``mean`` /
    ``std``: the inputs an encoder with that recorded preprocessing expects (``encoder.json``).

    The statistics are non-persistent buffers: they follow the module's device and stay out of
    checkpoints (they are rebuilt from the two encoders' metadata)."""

    def __init__(
        self,
        source_mean: Sequence[float],
        source_std: Sequence[float],
        *,
        size: int,
        mean: Sequence[float],
        std: Sequence[float],
    ) -> None:
        super().__init__()
        self.size = int(size)
        for name, values in (
            ("source_mean", source_mean),
            ("source_std", source_std),
            ("mean", mean),
            ("std", std),
        ):
            tensor = torch.tensor([float(v) for v in values]).view(1, -1, 1, 1)
            self.register_buffer(name, tensor, persistent=False)

    def forward(self, views: torch.Tensor) -> torch.Tensor:
        pixels = views * self.source_std + self.source_mean
        if pixels.shape[-2:] != (self.size, self.size):
            shrink = pixels.shape[-1] > self.size or pixels.shape[-2] > self.size
            pixels = F.interpolate(
                pixels, size=(self.size, self.size), mode="bilinear", antialias=shrink
            )
        return (pixels - self.mean) / self.std

    def extra_repr(self) -> str:
        return f"size={self.size}"
