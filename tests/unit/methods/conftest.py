"""Fixtures for the method tests: a tiny backbone and two random 8 px views."""

from __future__ import annotations

import pytest
import torch

from labelless.backbones import create_backbone


@pytest.fixture
def backbone():
    return create_backbone("resnet18_cifar", in_channels=1, width=0.125, input_size=8)


@pytest.fixture
def views():
    return [torch.randn(6, 1, 8, 8), torch.randn(6, 1, 8, 8)]


def _check_contract(method, views) -> dict:
    """The output dict contract, and gradient reaching every backbone parameter."""
    method.wants_embedding = True  # as a RankMeMonitor asks
    out = method(views, {})
    assert out["loss"].ndim == 0 and torch.isfinite(out["loss"])
    assert out["embedding"].shape == (len(views[0]), method.embed_dim)
    assert not out["embedding"].requires_grad
    out["loss"].backward()
    grads = [p.grad for p in method.backbone.parameters()]
    assert all(g is not None for g in grads) and sum(g.abs().sum() for g in grads) > 0
    return out


@pytest.fixture
def check_contract():
    """``check_contract(method, views)``: the forward contract and backbone gradient."""
    return _check_contract
