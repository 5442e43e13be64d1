"""DINO: multi-crop contract, EMA teacher without gradient, centre and temperature schedules."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import labelless.methods.dino  # noqa: F401  (registers "dino")
from labelless.backbones import create_backbone
from labelless.errors import ConfigError
from labelless.methods import create_method
from labelless.methods.base import forward_grouped
from labelless.methods.dino import DINOHead, teacher_temperature
from labelless.nn.losses import dino


def _dino(backbone=None, **kwargs):
    backbone = backbone or create_backbone(
        "resnet18_cifar", in_channels=1, width=0.125, input_size=8
    )
    options = {"out_dim": 20, "hidden_dim": 32, "bottleneck_dim": 16, **kwargs}
    return create_method("dino", backbone, **options)


def _multi_crop(batch=6):
    """Two global 8 px views and two local 6 px views."""
    return [torch.randn(batch, 1, 8, 8) for _ in range(2)] + [
        torch.randn(batch, 1, 6, 6) for _ in range(2)
    ]


def test_forward_contract_gradient_and_teacher_without_gradient():
    method = _dino()
    assert method.default_views == "dino"
    out = method(_multi_crop(), {})
    assert out["loss"].ndim == 0 and torch.isfinite(out["loss"])
    assert out["embedding"].shape == (6, method.embed_dim) and not out["embedding"].requires_grad
    out["loss"].backward()
    grads = [p.grad for p in method.backbone.parameters()]
    assert all(g is not None for g in grads) and sum(g.abs().sum() for g in grads) > 0
    assert method.head.last_layer.grad.abs().sum() > 0
    teacher = list(method.teacher.parameters())
    assert teacher and all(not p.requires_grad and p.grad is None for p in teacher)


def test_works_with_a_vit_student_on_crops_of_two_sizes():
    vit = create_backbone(
        "vit_tiny", in_channels=1, image_size=8, patch_size=2, depth=1, embed_dim=24
    )
    method = _dino(vit)
    out = method([torch.randn(4, 1, 8, 8)] * 2 + [torch.randn(4, 1, 6, 6)] * 2, {})
    out["loss"].backward()
    assert out["embedding"].shape == (4, 24) and vit.patch_embed.weight.grad.abs().sum() > 0


def test_loss_averages_every_teacher_student_pair_of_different_crops():
    method = _dino().eval()  # eval: the centre stays put
    views = _multi_crop()
    with torch.no_grad():
        out = method(views, {})
        student = [method.head(method.backbone(v)) for v in views]
        teacher = [method.teacher(v) for v in views[:2]]
    pairs = [(i, j) for i in range(2) for j in range(4) if j != i]
    expected = sum(dino(student[j], teacher[i], method.center, 0.1, 0.04) for i, j in pairs)
    assert out["loss"].item() == pytest.approx((expected / len(pairs)).item(), rel=1e-5)


def test_centre_moves_toward_the_teacher_mean():
    method = _dino(center_momentum=0.9)
    views = _multi_crop()
    with torch.no_grad():
        # the global crops in one teacher batch, as the method does (BatchNorm backbone)
        teacher_mean = torch.cat(forward_grouped(method.teacher, views[:2])).mean(dim=0)
    method(views, {})
    assert torch.allclose(method.center[0], 0.1 * teacher_mean, atol=1e-6)
    before = (method.center[0] - teacher_mean).norm()
    method(views, {})
    assert (method.center[0] - teacher_mean).norm() < before


def test_teacher_temperature_warms_up_linearly():
    assert teacher_temperature(0.0, 0.04, 0.07, 0.3) == pytest.approx(0.04)
    assert teacher_temperature(0.15, 0.04, 0.07, 0.3) == pytest.approx(0.055)
    assert teacher_temperature(0.3, 0.04, 0.07, 0.3) == pytest.approx(0.07)
    assert teacher_temperature(0.9, 0.04, 0.07, 0.3) == pytest.approx(0.07)
    method = _dino(warmup_teacher_temp=0.04, teacher_temp=0.07, warmup_teacher_temp_fraction=0.5)
    assert method.current_teacher_temp == pytest.approx(0.04)
    method.on_step_end(0.25)
    assert method.current_teacher_temp == pytest.approx(0.055)
    method.on_step_end(0.75)
    assert method.current_teacher_temp == pytest.approx(0.07)


def test_teacher_follows_the_student_with_the_cosine_momentum():
    method = _dino(momentum=(0.9, 1.0))
    student = dict(method._student().named_parameters())
    teacher = dict(method.teacher.target.named_parameters())
    name = "1.last_layer"
    old_teacher = teacher[name].clone()
    with torch.no_grad():
        student[name].add_(1.0)
    method.on_step_end(0.0)  # momentum 0.9 at the start
    assert method.current_momentum == pytest.approx(0.9)
    expected = 0.9 * old_teacher + 0.1 * student[name]
    assert torch.allclose(teacher[name], expected, atol=1e-6)
    method.on_step_end(1.0)
    assert method.current_momentum == pytest.approx(1.0)


def test_head_outputs_cosines_to_unit_prototypes():
    head = DINOHead(8, 5, hidden_dim=16, bottleneck_dim=4)
    with torch.no_grad():
        head.last_layer.mul_(7.0)  # the scale of the raw weights does not matter
        x = torch.randn(3, 8)
        out = head(x)
        z = F.normalize(head.mlp(x), dim=-1)
    assert out.shape == (3, 5) and out.abs().max() <= 1 + 1e-6
    assert torch.allclose(out, z @ F.normalize(head.last_layer, dim=1).T, atol=1e-6)
    assert len([m for m in head.mlp if isinstance(m, torch.nn.Linear)]) == 3


def test_last_layer_is_frozen_for_the_first_steps():
    method = _dino(freeze_last_layer_steps=1)
    method(_multi_crop(), {})["loss"].backward()
    assert method.head.last_layer.grad is None
    method.on_step_end(0.1)
    method(_multi_crop(), {})["loss"].backward()
    assert method.head.last_layer.grad.abs().sum() > 0


def test_needs_two_views():
    with pytest.raises(ConfigError, match="dino"):
        _dino()([torch.randn(4, 1, 8, 8)], {})
