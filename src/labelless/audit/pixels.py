"""The encoder as a function of pixels: what every attack and check in ``labelless.audit`` works
on, with the same resize and normalisation as training and evaluation.

Attacks perturb images in ``[0, 1]`` at the data's own resolution (an L-inf epsilon of 8/255 means
8 grey levels); ``PixelEncoder`` resizes them to the encoder's input size (bilinear, antialiased,
as ``EvalTransform``) and normalises with the encoder's statistics, differentiably, so gradients
reach the pixels the user would feed.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from labelless.errors import DataError

EMBED_BATCH = 256


class PixelEncoder(nn.Module):
    """``encoder(normalise(resize(x)))`` for ``x``: float ``[N, C, H, W]`` in ``[0, 1]``;
    ``pre``: the encoder's ``encoders.Preprocessing`` (``input_size``, ``mean``, ``std``).

    The encoder is kept in eval mode (BatchNorm statistics never move) and, with ``freeze``
    (the default), gets no parameter gradients: gradients flow to the input only.
    """

    def __init__(self, encoder: nn.Module, pre: Any, *, freeze: bool = True):
        super().__init__()
        self.encoder = encoder.eval()
        self.pre = pre
        if freeze:
            for parameter in self.encoder.parameters():
                parameter.requires_grad_(False)
        self.size = int(pre.input_size)
        channels = len(pre.mean)
        self.register_buffer("mean", torch.tensor(pre.mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(pre.std, dtype=torch.float32).view(1, -1, 1, 1))
        self.channels = channels

    def prepare(self, x: Tensor) -> Tensor:
        """Resize to the encoder's input size and normalise (differentiable)."""
        if x.shape[1] != self.channels:
            raise DataError(
                f"the encoder takes {self.channels}-channel images, these have {x.shape[1]}: "
                "audit it on data of the kind it was trained on"
            )
        if tuple(x.shape[-2:]) != (self.size, self.size):
            x = F.interpolate(
                x, size=(self.size, self.size), mode="bilinear", align_corners=False,
                antialias=True,
            )  # fmt: skip
        x = (x - self.mean) / self.std
        return x.contiguous(memory_format=torch.channels_last)

    def forward(self, x: Tensor) -> Tensor:
        return self.encoder(self.prepare(x))

    def train(self, mode: bool = True) -> PixelEncoder:
        """The wrapped encoder stays in eval mode (BatchNorm statistics never move)."""
        super().train(mode)
        self.encoder.eval()
        return self


def unit_images(samples: np.ndarray | Tensor) -> Tensor:
    """uint8 ``[N, C, H, W]`` images (numpy or torch) as float32 in ``[0, 1]``."""
    images = torch.as_tensor(np.asarray(samples) if not isinstance(samples, Tensor) else samples)
    if images.ndim != 4:
        raise DataError(f"expected images as [N, C, H, W], got shape {tuple(images.shape)}")
    if images.dtype == torch.uint8:
        return images.float().div_(255.0)
    return images.float().clamp(0.0, 1.0)


def to_uint8(images: Tensor) -> np.ndarray:
    """float ``[0, 1]`` images back to uint8 ``[N, C, H, W]`` (rounded), for pages and files."""
    return images.detach().clamp(0, 1).mul(255).round().to(torch.uint8).cpu().numpy()


def embed_pixels(model: PixelEncoder, images: Tensor, batch_size: int = EMBED_BATCH) -> Tensor:
    """Embeddings ``[N, D]`` of ``images`` (float, ``[0, 1]``), batched, without gradients."""
    with torch.inference_mode():
        parts = [model(images[i : i + batch_size]) for i in range(0, len(images), batch_size)]
    return torch.cat(parts).float()
