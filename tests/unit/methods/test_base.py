"""forward_grouped: one backbone call per view shape, outputs back in order; without BatchNorm
the methods that use it compute the loss and gradients of the per-view forward."""

from __future__ import annotations

import functools

import pytest
import torch
from torch import nn

import labelless.methods.dino
import labelless.methods.simclr
import labelless.methods.swav
from labelless.backbones import create_backbone
from labelless.methods import create_method
from labelless.methods.base import forward_grouped


class CountingEncoder(nn.Module):
    """Mean over the pixels then a linear layer; counts its calls and their batch sizes."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(1, 3)
        self.batches: list[int] = []

    def forward(self, x):
        self.batches.append(len(x))
        return self.linear(x.mean(dim=(1, 2, 3))[:, None])


def test_one_call_per_shape_and_outputs_in_view_order():
    views = [torch.randn(4, 1, 8, 8), torch.randn(4, 1, 6, 6), torch.randn(4, 1, 8, 8)]
    views.append(torch.randn(4, 1, 6, 6))
    views.append(torch.randn(2, 1, 8, 8))  # a smaller batch of a shape seen before
    encoder = CountingEncoder()
    grouped = forward_grouped(encoder, views, group=True)
    assert sorted(encoder.batches) == [8, 10]  # the two 6 px views, the three 8 px ones
    separate = [encoder(view) for view in views]
    assert [g.shape for g in grouped] == [s.shape for s in separate]
    for g, s in zip(grouped, separate, strict=True):
        torch.testing.assert_close(g, s)
    encoder.batches.clear()
    forward_grouped(encoder, views[1:2], group=True)
    assert encoder.batches == [4]


def test_cpu_views_go_one_call_each_unless_grouping_is_asked():
    """On a CPU the per-view calls are the faster ones (bench/grouped_views.py)."""
    views = [torch.randn(4, 1, 8, 8), torch.randn(3, 1, 8, 8)]
    encoder = CountingEncoder()
    forward_grouped(encoder, views)
    assert encoder.batches == [4, 3]
    encoder.batches.clear()
    forward_grouped(encoder, views, group=False)
    forward_grouped(encoder, views, group=True)
    assert encoder.batches == [4, 3, 7]


def _vit():
    return create_backbone(
        "vit_tiny", in_channels=1, image_size=8, patch_size=2, depth=1, embed_dim=24
    )


def _crops(batch=4):
    return [torch.randn(batch, 1, 8, 8) for _ in range(2)] + [
        torch.randn(batch, 1, 4, 4) for _ in range(3)
    ]


CASES = {
    "simclr": (labelless.methods.simclr, {"proj_hidden_dim": 32, "proj_dim": 16}),
    "dino": (labelless.methods.dino, {"out_dim": 20, "hidden_dim": 32, "bottleneck_dim": 16}),
    "swav": (
        labelless.methods.swav,
        {"proj_hidden_dim": 32, "proj_dim": 16, "num_prototypes": 10, "freeze_prototypes_steps": 0},
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_grouped_forward_equals_the_per_view_forward_without_batchnorm(name, monkeypatch):
    """A ViT has no BatchNorm: concatenating the views changes nothing but the call count."""
    module, options = CASES[name]
    torch.manual_seed(0)
    method = create_method(name, _vit(), **options).eval()  # eval: no centre / queue updates
    views = _crops() if name != "simclr" else _crops()[:2]
    params = list(method.backbone.parameters())

    def loss_and_grads():
        loss = method(views, {})["loss"]
        return loss.detach(), torch.autograd.grad(loss, params, allow_unused=True)

    monkeypatch.setattr(module, "forward_grouped", functools.partial(forward_grouped, group=True))
    grouped = loss_and_grads()
    monkeypatch.setattr(module, "forward_grouped", functools.partial(forward_grouped, group=False))
    separate = loss_and_grads()
    torch.testing.assert_close(grouped[0], separate[0], rtol=1e-5, atol=1e-6)
    assert any(g is not None and g.abs().sum() > 0 for g in grouped[1])
    for a, b in zip(grouped[1], separate[1], strict=True):
        assert (a is None) == (b is None)
        if a is not None:
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
