from __future__ import annotations

import pytest
import torch
from torch import nn


class TinyEncoder(nn.Module):
    """A BatchNorm-free encoder so that two identical forwards give identical graphs."""

    def __init__(self, in_features: int = 12, embed_dim: int = 8) -> None:
        super().__init__()
        self.embed_dim = embed_dim
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(in_features, embed_dim), nn.Tanh())

    def forward(self, x):
        return self.net(x)


@pytest.fixture
def tiny_batches():
    """``make(batch=4, mu=2, classes=3)``: labelled and unlabelled dicts with views."""

    def make(batch=4, mu=2, classes=3, num_views=2):
        generator = torch.Generator().manual_seed(0)
        labelled = {
            "views": [torch.randn(batch, 3, 2, 2, generator=generator)],
            "label": torch.arange(batch) % classes,
            "index": torch.arange(batch),
        }
        n = batch * mu
        unlabelled = {
            "views": [torch.randn(n, 3, 2, 2, generator=generator) for _ in range(num_views)],
            "label": torch.arange(n) % classes,
            "index": torch.arange(batch, batch + n),
        }
        return labelled, unlabelled

    return make
