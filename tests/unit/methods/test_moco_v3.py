"""MoCo v3: the 2t-scaled contrastive loss against a hand computation, the heads, the momentum
encoder and its cosine schedule, and both backbone families (ResNet and ViT)."""

from __future__ import annotations

import math

import pytest
import torch

from labelless.backbones import create_backbone
from labelless.errors import ConfigError
from labelless.methods import create_method
from labelless.nn.losses import moco_v3

SMALL = {"proj_hidden_dim": 32, "proj_dim": 16, "pred_hidden_dim": 32}


def test_loss_matches_a_hand_computed_cross_entropy():
    queries = torch.tensor([[2.0, 0.0], [1.0, 1.0], [0.0, -1.0]])
    keys = torch.tensor([[1.0, 0.0], [0.0, 3.0], [1.0, -1.0]])
    t = 0.5
    q = [[1.0, 0.0], [2**-0.5, 2**-0.5], [0.0, -1.0]]
    k = [[1.0, 0.0], [0.0, 1.0], [2**-0.5, -(2**-0.5)]]
    total = 0.0
    for i in range(3):
        logits = [(q[i][0] * k[j][0] + q[i][1] * k[j][1]) / t for j in range(3)]
        total += -(logits[i] - math.log(sum(math.exp(x) for x in logits)))
    expected = 2 * t * total / 3
    got = moco_v3(queries, keys, t)
    assert got.item() == pytest.approx(expected, rel=1e-5)


def test_keys_get_no_gradient_and_queries_do():
    queries = torch.randn(5, 4, requires_grad=True)
    keys = torch.randn(5, 4, requires_grad=True)
    moco_v3(queries, keys).backward()
    assert keys.grad is None
    assert queries.grad is not None and queries.grad.abs().sum() > 0


@pytest.mark.parametrize("t", [0.1, 0.2, 1.0])
def test_two_tau_scaling(t):
    """At a perfect alignment every logit gap is 1/t; the 2t factor keeps the loss bounded."""
    queries, keys = torch.randn(4, 8), torch.randn(4, 8)
    plain = torch.nn.functional.cross_entropy(
        torch.nn.functional.normalize(queries, dim=1)
        @ torch.nn.functional.normalize(keys, dim=1).T
        / t,
        torch.arange(4),
    )
    assert moco_v3(queries, keys, t).item() == pytest.approx(2 * t * plain.item(), rel=1e-5)


def test_contract_heads_and_symmetrised_loss(backbone, views, check_contract):
    method = create_method("moco_v3", backbone, **SMALL)
    assert method.default_views == "byol" and method.temperature == 0.2
    out = check_contract(method, views)
    with torch.no_grad():  # same train-mode BatchNorm statistics as in the forward
        q0, q1 = (method.predictor(method.projector(method.backbone(v))) for v in views)
        k0, k1 = (method.key_encoder(v) for v in views)
    expected = moco_v3(q0, k1, 0.2) + moco_v3(q1, k0, 0.2)
    assert torch.allclose(out["loss"], expected, rtol=1e-5)
    assert all(p.grad is None for p in method.key_encoder.parameters())
    default = create_method("moco_v3", backbone)
    projector = [m.out_features for m in default.projector if isinstance(m, torch.nn.Linear)]
    predictor = [m.out_features for m in default.predictor if isinstance(m, torch.nn.Linear)]
    assert projector == [4096, 4096, 256] and predictor == [4096, 256]
    assert isinstance(default.projector[-1], torch.nn.BatchNorm1d)  # affine-free output BN
    assert not isinstance(default.predictor[-1], torch.nn.BatchNorm1d)


def test_key_encoder_is_an_ema_on_a_cosine_schedule(backbone, views):
    method = create_method("moco_v3", backbone, **SMALL)
    method(views, {})["loss"].backward()
    online = method.backbone.conv1.weight
    key = method.key_encoder.target[0].conv1.weight
    before = key.detach().clone()
    with torch.no_grad():
        online.add_(1.0)
    method.on_step_end(0.5)  # halfway: 1 - 0.01 * (cos(pi / 2) + 1) / 2 = 0.995
    assert method.current_momentum == pytest.approx(0.995)
    assert torch.allclose(key, 0.995 * before + 0.005 * online.detach(), atol=1e-6)
    method.on_step_end(1.0)
    assert method.current_momentum == pytest.approx(1.0)


def test_vit_backbone_and_frozen_patch_projection():
    vit = create_backbone(
        "vit_tiny", in_channels=1, image_size=8, patch_size=4, depth=2, embed_dim=48
    )
    method = create_method("moco_v3", vit, freeze_patch_embed=True, **SMALL)
    views = [torch.randn(6, 1, 8, 8), torch.randn(6, 1, 8, 8)]
    out = method(views, {})
    assert out["embedding"].shape == (6, 48) and not out["embedding"].requires_grad
    out["loss"].backward()
    assert all(p.grad is None for p in method.backbone.patch_embed.parameters())
    assert method.backbone.blocks[0].attn.qkv.weight.grad.abs().sum() > 0
    before = method.backbone.patch_embed.weight.detach().clone()
    method.on_step_end(0.0)
    assert torch.allclose(method.key_encoder.target[0].patch_embed.weight, before, atol=1e-7)


def test_freezing_a_resnet_patch_projection_is_a_config_error(backbone):
    with pytest.raises(ConfigError, match="freeze_patch_embed needs a ViT"):
        create_method("moco_v3", backbone, freeze_patch_embed=True)
