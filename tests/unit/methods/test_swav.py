"""SwAV: multi-crop contract, prototypes on the sphere and frozen at first, swapped targets."""

from __future__ import annotations

import pytest
import torch

import labelless.methods.swav  # noqa: F401  (registers "swav")
from labelless.backbones import create_backbone
from labelless.errors import ConfigError
from labelless.methods import create_method
from labelless.methods.base import forward_grouped
from labelless.nn.losses import sinkhorn, swav


def _swav(**kwargs):
    backbone = create_backbone("resnet18_cifar", in_channels=1, width=0.125, input_size=8)
    options = {"proj_hidden_dim": 32, "proj_dim": 16, "num_prototypes": 10, **kwargs}
    return create_method("swav", backbone, **options)


def _multi_crop(batch=6):
    """Two global 8 px views and two local 6 px views."""
    return [torch.randn(batch, 1, 8, 8) for _ in range(2)] + [
        torch.randn(batch, 1, 6, 6) for _ in range(2)
    ]


def test_forward_contract_and_gradient_on_multi_crop():
    method = _swav(freeze_prototypes_steps=0)
    assert method.default_views == "swav"
    views = _multi_crop()
    out = method(views, {})
    assert out["loss"].ndim == 0 and torch.isfinite(out["loss"])
    assert out["embedding"].shape == (6, method.embed_dim) and not out["embedding"].requires_grad
    out["loss"].backward()
    grads = [p.grad for p in method.backbone.parameters()]
    assert all(g is not None for g in grads) and sum(g.abs().sum() for g in grads) > 0
    assert method.prototypes.weight.grad.abs().sum() > 0


def test_loss_is_the_swapped_prediction_over_all_other_crops():
    method = _swav(freeze_prototypes_steps=0).eval()
    views = _multi_crop()
    with torch.no_grad():
        out = method(views, {})
        scores = [method._scores(method._project(method.backbone(v))) for v in views]
    codes = [sinkhorn(scores[i], 0.05, 3) for i in range(2)]
    pairs = [(i, j) for i in range(2) for j in range(4) if j != i]
    expected = sum(swav(scores[j], codes[i], 0.1) for i, j in pairs) / len(pairs)
    assert len(pairs) == 6
    assert out["loss"].item() == pytest.approx(expected.item(), rel=1e-5)


def test_prototypes_are_renormalised_every_training_step():
    method = _swav(freeze_prototypes_steps=0)
    norms = method.prototypes.weight.norm(dim=1)
    assert torch.allclose(norms, torch.ones(10))  # normalised at construction
    with torch.no_grad():
        method.prototypes.weight.mul_(3.0)  # as an optimiser step would move them off the sphere
    method(_multi_crop(), {})
    assert torch.allclose(method.prototypes.weight.norm(dim=1), torch.ones(10), atol=1e-6)


def test_prototypes_are_frozen_for_the_first_steps():
    method = _swav(freeze_prototypes_steps=2)
    for step in range(3):
        method.zero_grad()
        method(_multi_crop(), {})["loss"].backward()
        grad = method.prototypes.weight.grad
        if step < 2:
            assert grad is None, step
            assert method.projector[0].weight.grad.abs().sum() > 0  # the rest still learns
        else:
            assert grad is not None and grad.abs().sum() > 0
        method.on_step_end(progress=step / 3)
    assert method.step.item() == 3  # a buffer: saved with checkpoints, so resume keeps the count
    assert "step" in method.state_dict()


def test_budget_runs_freeze_the_prototypes_for_a_fraction_of_the_run():
    # steps 0..3 of a 4-step run: progress after each step 0, 1/3, 2/3, 1
    method = _swav(freeze_prototypes_steps=10_000, freeze_prototypes_fraction=0.3)
    frozen = []
    for step in range(4):
        method.zero_grad()
        method(_multi_crop(), {})["loss"].backward()
        frozen.append(method.prototypes.weight.grad is None)
        method.on_step_end(progress=step / 3)
    assert frozen == [True, True, False, False]  # the fraction wins over the step count
    restored = _swav(freeze_prototypes_fraction=0.3)
    restored.load_state_dict(method.state_dict())  # progress is a buffer: resume stays unfrozen
    assert not restored.prototypes_frozen
    with pytest.raises(ConfigError, match="freeze_prototypes_fraction"):
        _swav(freeze_prototypes_fraction=1.5)


def test_queue_joins_the_codes_from_its_start_fraction():
    method = _swav(freeze_prototypes_steps=0, queue_size=12, queue_start_fraction=0.5)

    @torch.no_grad()
    def by_hand(views, use_queue):
        # crops of one size in one backbone batch, as the method does (BatchNorm backbone)
        z = [method._project(f) for f in forward_grouped(method.backbone, views)]
        scores = [method._scores(zi) for zi in z]
        codes = []
        for i in range(2):
            if use_queue:  # the queued samples share the equipartition; only the batch's rows
                queued = method.queues[i].filled() @ method.prototypes.weight.T
                codes.append(sinkhorn(torch.cat([scores[i], queued]))[: len(scores[i])])
            else:
                codes.append(sinkhorn(scores[i]))
        losses = [swav(scores[j], codes[i]) for i in range(2) for j in range(4) if j != i]
        return torch.stack(losses).mean(), z

    views = _multi_crop()
    plain, z = by_hand(views, use_queue=False)
    assert torch.allclose(method(views, {})["loss"], plain, atol=1e-6)  # before the start: no queue
    assert int(method.queues[0].count) == 6  # but it is filled from the first step
    assert torch.allclose(method.queues[1].filled(), z[1], atol=1e-6)
    method.on_step_end(progress=0.6)
    views = _multi_crop()  # new samples: the queue holds the previous batch
    queued, _ = by_hand(views, use_queue=True)
    plain, _ = by_hand(views, use_queue=False)
    got = method(views, {})["loss"]
    assert torch.allclose(got, queued, atol=1e-6) and not torch.allclose(got, plain, atol=1e-4)
    assert "queues.0.rows" in method.state_dict()  # checkpoints carry the queue
    with pytest.raises(ConfigError, match="queue_size"):
        _swav(queue_size=-1)


def test_needs_more_views_than_global_crops():
    with pytest.raises(ConfigError, match="swav"):
        _swav()([torch.randn(4, 1, 8, 8)] * 2, {})
