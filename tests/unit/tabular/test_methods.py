"""scarf, vime and tjepa: the method contract on table rows; T-JEPA's masks and target."""

from __future__ import annotations

import pytest
import torch

from labelless.augment.tabular import tabular_views
from labelless.backbones import create_backbone
from labelless.errors import ConfigError
from labelless.methods import METHODS, create_method
from labelless.methods.tjepa import feature_masks

META = {"numeric": ["a", "b", "c"], "categorical": ["d", "e"]}
LAYOUT = {"num_numeric": 3, "cardinalities": [4, 3]}


def _rows(n=16):
    torch.manual_seed(0)
    return torch.cat(
        [torch.randn(n, 3), torch.randint(0, 4, (n, 1)), torch.randint(0, 3, (n, 1))], 1
    )


def _backbone(name="mlp"):
    if name == "mlp":
        return create_backbone("mlp", in_channels=5, hidden_dim=32, depth=2, **LAYOUT)
    return create_backbone(
        "ft_transformer", in_channels=5, dim=16, depth=1, heads=2, reg_tokens=2, **LAYOUT
    )


@pytest.mark.parametrize(
    ("method", "backbone"),
    [("scarf", "mlp"), ("vime", "mlp"), ("tjepa", "ft_transformer"), ("scarf", "ft_transformer")],
)
def test_contract_on_tables(method, backbone):
    torch.manual_seed(0)
    model = create_method(method, _backbone(backbone))
    assert type(model).modality == "tabular" and model.default_views == method
    rows = _rows()
    views = tabular_views(model.default_views, reference=rows, meta=META)
    out = model(views(rows, torch.Generator().manual_seed(0)), {})
    assert out["loss"].ndim == 0 and torch.isfinite(out["loss"])
    assert out["embedding"].shape == (16, model.embed_dim) and not out["embedding"].requires_grad
    out["loss"].backward()
    grads = [p.grad for p in model.backbone.parameters()]
    assert all(g is not None for g in grads) and sum(g.abs().sum() for g in grads) > 0
    model.on_step_end(0.5)
    assert len(METHODS[method].summary) > 20


def test_tjepa_needs_feature_tokens():
    with pytest.raises(ConfigError, match="tjepa needs an encoder with per-feature tokens"):
        create_method("tjepa", _backbone("mlp"))
    with pytest.warns(UserWarning, match="no regularisation tokens"):
        create_method("tjepa", create_backbone("ft_transformer", in_channels=5, dim=16, **LAYOUT))


def test_feature_masks_are_disjoint_and_sized():
    torch.manual_seed(0)
    for _ in range(20):
        context, targets = feature_masks(8, 10, 3, (0.15, 0.4), (0.15, 0.6), "cpu")
        assert context.shape[0] == 8 and 2 <= context.shape[1] <= 4
        assert targets.shape[:2] == (8, 3) and 1 <= targets.shape[2] <= 10 - context.shape[1]
        hit = (targets[:, :, :, None] == context[:, None, None, :]).any()
        assert not hit  # no target feature is in the context
        assert (targets.diff(dim=2) > 0).all()  # distinct features within a target


def test_tjepa_target_is_an_ema_of_the_backbone():
    model = create_method("tjepa", _backbone("ft_transformer"), momentum=(0.9, 1.0))
    out = model([_rows()], {})
    out["loss"].backward()
    assert all(p.grad is None for p in model.target.parameters())
    online, target = model.backbone.feature_bias, model.target.target.feature_bias
    before = target.detach().clone()
    with torch.no_grad():
        online.add_(1.0)
    model.on_step_end(0.0)
    assert torch.allclose(target, 0.9 * before + 0.1 * online.detach(), atol=1e-6)
