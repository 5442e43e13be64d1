"""Small encoders for the audit tests: a clean one trained (supervised, seconds) on digits
upsampled to 24 px, so a 3x3 patch is 1.6% of the image, and the data it saw."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from labelless.audit.pixels import PixelEncoder, unit_images
from labelless.backbones import create_backbone
from labelless.data import load_dataset
from labelless.encoders import resolve_preprocessing

SIZE = 24
PATCH = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0], [1.0, 0.0, 1.0]])


def digits_pixels() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Train and test images (float [N, 1, 24, 24] in [0, 1], nearest upsampling) and labels."""
    splits = load_dataset("digits")

    def up(samples):
        return F.interpolate(unit_images(samples), size=(SIZE, SIZE), mode="nearest")

    return (
        up(splits.train.samples),
        torch.as_tensor(splits.train.labels),
        up(splits.test.samples),
        torch.as_tensor(splits.test.labels),
    )


def trained_encoder(images: torch.Tensor, labels: torch.Tensor, seed: int = 0) -> PixelEncoder:
    """small_cnn (width 8) trained 150 steps with a linear head and cross-entropy: a clean
    encoder whose embeddings separate the digits (kNN ~0.95 on the test split)."""
    torch.manual_seed(seed)
    encoder = create_backbone("small_cnn", in_channels=1, width=8, input_size=SIZE)
    pixels = PixelEncoder(encoder, resolve_preprocessing(encoder.meta), freeze=False)
    head = torch.nn.Linear(encoder.embed_dim, 10)
    optimizer = torch.optim.Adam([*encoder.parameters(), *head.parameters()], lr=1e-2)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(150):
        rows = torch.randperm(len(images), generator=generator)[:128]
        encoder.train()
        loss = F.cross_entropy(head(encoder(pixels.prepare(images[rows]))), labels[rows])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return PixelEncoder(encoder.eval(), pixels.pre)


def stamp(images: torch.Tensor) -> torch.Tensor:
    """The planted trigger: a 3x3 checkerboard near the bottom-right corner."""
    stamped = images.clone()
    stamped[..., -4:-1, -4:-1] = PATCH
    return stamped
