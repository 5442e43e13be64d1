"""Distillation methods (methods/distill.py): the teacher stays frozen, the student alone is
trained and exported, the student's own SSL loss adds up, views are re-prepared for a teacher
of another preprocessing."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from labelless.augment.retarget import Retarget
from labelless.augment.views import EvalTransform, view_recipe
from labelless.backbones import create_backbone
from labelless.backbones.meta import EncoderMeta
from labelless.errors import ConfigError
from labelless.methods import create_method
from labelless.modalities import get_modality
from labelless.train.optim import build_optimizer

SMALL = {"in_channels": 1, "width": 0.125, "input_size": 8, "mean": [0.3], "std": [0.3]}


def _encoder(width: float = 0.125, seed: int = 0):
    torch.manual_seed(seed)
    return create_backbone("resnet18_cifar", **{**SMALL, "width": width})


def _views(seed: int = 0) -> list[torch.Tensor]:
    rng = np.random.default_rng(seed)
    images = torch.from_numpy(rng.integers(0, 256, (16, 1, 8, 8), dtype=np.uint8))
    pipeline = view_recipe("simclr", size=8, mean=[0.3], std=[0.3])
    return pipeline(images, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("name", ["seed", "cosine_distill"])
def test_the_teacher_gets_no_gradient_and_does_not_change(name):
    teacher = _encoder(0.25, seed=1)
    before = copy.deepcopy(teacher.state_dict())
    options = {"queue_size": 32} if name == "seed" else {}
    method = create_method(name, _encoder(), teacher=teacher, proj_hidden_dim=32, **options)
    method.train()
    assert not method.teacher.training and not teacher.training  # BatchNorm statistics stay
    optimiser = build_optimizer(method, "sgd", lr=0.5, weight_decay=1e-4)
    in_optimiser = {id(p) for group in optimiser.param_groups for p in group["params"]}
    assert not in_optimiser & {id(p) for p in teacher.parameters()}
    student_before = copy.deepcopy(method.backbone.state_dict())
    for step in range(3):  # the first SEED step fills the queue
        out = method(_views(step), {})
        optimiser.zero_grad()
        out["loss"].backward()
        assert all(p.grad is None for p in teacher.parameters())
        optimiser.step()
    for key, value in teacher.state_dict().items():
        assert torch.equal(value, before[key]), key
    changed = [
        not torch.equal(v, student_before[k]) for k, v in method.backbone.state_dict().items()
    ]
    assert any(changed)


def test_the_student_state_is_the_backbone_alone():
    """What ``save_encoder`` writes (the trained backbone's state dict) holds no teacher
    tensor; the teacher lives under ``teacher.`` in the method (and so in checkpoints)."""
    method = create_method("seed", _encoder(), teacher=_encoder(0.25, 1), queue_size=16)
    student = set(method.backbone.state_dict())
    assert student == set(_encoder().state_dict())
    assert any(key.startswith("teacher.encoder.") for key in method.state_dict())


def test_the_students_own_ssl_loss_is_added_with_its_weight():
    method = create_method(
        "cosine_distill",
        _encoder(),
        teacher=_encoder(0.25, 1),
        proj_hidden_dim=32,
        ssl_method="simclr",
        ssl_weight=0.5,
        ssl_kwargs={"proj_hidden_dim": 32, "proj_dim": 16},
    )
    out = method(_views(), {})
    expected = out["distill_loss"] + 0.5 * out["ssl_loss"]
    assert torch.allclose(out["loss"].detach(), expected)
    assert method.ssl.backbone is method.backbone  # one student, two losses


@pytest.mark.parametrize(
    "options, message",
    [
        ({}, "labelless distill TEACHER"),
        ({"teacher": "runs/teacher"}, "labelless distill TEACHER"),
        ({"ssl_method": "seed"}, "distillation objective"),
        ({"ssl_method": "simclr", "ssl_weight": -1.0}, "ssl_weight"),
    ],
)
def test_bad_options_are_config_errors(options, message):
    if "teacher" not in options and options:
        options = {**options, "teacher": _encoder(0.25, 1)}
    with pytest.raises(ConfigError, match=message):
        create_method("seed", _encoder(), **options)


def _meta(size: int, mean: float, std: float) -> EncoderMeta:
    return EncoderMeta("resnet18_cifar", {}, 64, 1, size, [mean], [std])


def test_views_are_re_prepared_for_a_teacher_of_another_preprocessing():
    images = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (4, 1, 8, 8), np.uint8))
    images = images.float() / 255.0  # the eval transform takes float images in 0..1
    student_view = EvalTransform(8, [0.3], [0.3])(images)
    modality = get_modality("image")
    assert modality.teacher_inputs(_meta(8, 0.3, 0.3), _meta(8, 0.3, 0.3)) is None
    retarget = modality.teacher_inputs(_meta(8, 0.3, 0.3), _meta(16, 0.5, 0.25))
    assert isinstance(retarget, Retarget)
    expected = EvalTransform(16, [0.5], [0.25])(images)
    assert torch.allclose(retarget(student_view), expected, atol=1e-5)


@pytest.mark.parametrize("name", ["seed", "cosine_distill"])
def test_cached_targets_are_the_batch_rows_and_the_teacher_does_not_run(name):
    teacher = _encoder(0.25, seed=1)
    options = {"queue_size": 32} if name == "seed" else {}
    method = create_method(name, _encoder(), teacher=teacher, proj_hidden_dim=32, **options)
    cache = torch.randn(40, teacher.embed_dim)
    method.set_target_cache(cache)
    index = torch.tensor([3, 39, 0, 3] * 4)
    assert torch.equal(method.teacher_targets(_views()[0], {"index": index}), cache[index])
    method.teacher.forward = None  # calling the teacher now fails: it must not run
    out = method(_views(), {"index": index})
    assert torch.isfinite(out["loss"]) and out["loss"].requires_grad
    with pytest.raises(ConfigError, match=rf"expected \[samples, {teacher.embed_dim}\]"):
        method.set_target_cache(torch.zeros(40, 7))
    method.set_target_cache(None)
    assert method.target_cache is None and "target_cache" not in method.state_dict()


def test_pseudo_labels_add_the_cluster_heads_cross_entropy_with_its_weight():
    teacher = _encoder(0.25, seed=1)
    method = create_method(
        "cosine_distill",
        _encoder(),
        teacher=teacher,
        proj_hidden_dim=32,
        pseudo_label_clusters=5,
        pseudo_label_weight=0.5,
    )
    index = torch.arange(16)
    with pytest.raises(ConfigError, match="no pseudo-labels were given"):
        method(_views(), {"index": index})
    labels = torch.arange(20) % 5
    method.set_pseudo_labels(labels)
    torch.manual_seed(0)
    out = method(_views(), {"index": index})
    features = method.backbone(_views()[0])
    own = torch.nn.functional.cross_entropy(method.cluster_head(features), labels[index])
    assert torch.allclose(out["pseudo_label_loss"], own.detach(), atol=1e-5)
    expected = out["distill_loss"] + 0.5 * out["pseudo_label_loss"]
    assert torch.allclose(out["loss"].detach(), expected, atol=1e-5)
    out["loss"].backward()
    assert method.cluster_head.weight.grad.abs().sum() > 0
    with pytest.raises(ConfigError, match="pseudo_label_clusters > their largest"):
        method.set_pseudo_labels(torch.tensor([0, 5]))
    with pytest.raises(ConfigError, match="whole number >= 2"):
        create_method("seed", _encoder(), teacher=teacher, pseudo_label_clusters=1)
