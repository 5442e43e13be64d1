"""augment.common.select: torch.where's result, bit for bit, through lerp."""

from __future__ import annotations

import torch

from labelless.augment.common import select


def test_select_equals_where_bit_for_bit_with_broadcasting():
    g = torch.Generator().manual_seed(0)
    images = torch.randn(16, 3, 8, 8, generator=g) * 3  # negative and > 1 values too
    other = torch.randn(16, 3, 8, 8, generator=g) * 1e-3
    fill = torch.tensor([0.5, -2.0, 7.25]).view(1, 3, 1, 1)
    masks = [
        torch.rand(16, 3, 8, 8, generator=g) < 0.5,  # same shape
        torch.rand(16, 1, 8, 8, generator=g) < 0.5,  # broadcast over channels
        torch.rand(16, 1, 1, 1, generator=g) < 0.5,  # per sample
    ]
    for mask in masks:
        assert torch.equal(select(mask, other, images), torch.where(mask, other, images))
        assert torch.equal(select(mask, fill, images), torch.where(mask, fill, images))
        assert torch.equal(select(mask, 0.25, images), torch.where(mask, 0.25, images))
    # the scalar branch keeps the dtype of if_false
    assert select(masks[0], 1.0, images.double()).dtype == torch.float64
