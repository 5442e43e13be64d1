"""The method contract: registry, output dict, gradients and EMA targets."""

from __future__ import annotations

import pytest
import torch

from labelless.backbones import create_backbone
from labelless.errors import ConfigError
from labelless.methods import create_method, list_methods


def _backbone():
    return create_backbone("resnet18_cifar", in_channels=1, width=0.125, input_size=8)


def _views(n=6):
    return [torch.randn(n, 1, 8, 8), torch.randn(n, 1, 8, 8)]


def test_registry_lists_methods_with_summaries():
    methods = list_methods()
    assert {"simclr", "byol"} <= set(methods)
    assert all(len(summary) > 20 for summary in methods.values())


def test_unknown_method_and_option():
    with pytest.raises(ConfigError, match="unknown method 'simclrr'"):
        create_method("simclrr", _backbone())
    with pytest.raises(ConfigError, match="invalid options for method 'simclr'"):
        create_method("simclr", _backbone(), temprature=0.1)


@pytest.mark.parametrize("name", ["simclr", "byol"])
def test_forward_contract_and_gradient(name):
    method = create_method(name, _backbone(), proj_hidden_dim=32, proj_dim=16)
    out = method(_views(), {})
    assert out["loss"].ndim == 0 and torch.isfinite(out["loss"])
    assert out["embedding"].shape == (6, method.embed_dim)
    assert not out["embedding"].requires_grad
    out["loss"].backward()
    grads = [p.grad for p in method.backbone.parameters()]
    assert all(g is not None for g in grads) and sum(g.abs().sum() for g in grads) > 0


def test_byol_target_is_an_ema_without_gradient():
    method = create_method("byol", _backbone(), proj_hidden_dim=32, proj_dim=16, pred_hidden_dim=32)
    out = method(_views(), {})
    out["loss"].backward()
    assert all(p.grad is None for p in method.target.parameters())
    online = method.backbone.conv1.weight
    target = method.target.target[0].conv1.weight
    before = target.detach().clone()
    with torch.no_grad():
        online.add_(1.0)
    method.on_step_end(0.0)  # momentum 0.99 at the start of training
    assert method.current_momentum == pytest.approx(0.99)
    assert torch.allclose(target, 0.99 * before + 0.01 * online.detach(), atol=1e-6)
    method.on_step_end(1.0)
    assert method.current_momentum == pytest.approx(1.0)


def test_byol_state_dict_has_no_duplicate_backbone():
    method = create_method("byol", _backbone(), proj_hidden_dim=32, proj_dim=16, pred_hidden_dim=32)
    keys = method.state_dict().keys()
    assert not any(k.startswith("online.") for k in keys)
    assert any(k.startswith("target.target.0.") for k in keys)
