"""MoCo v2: queue InfoNCE against a hand computation, EMA key encoder, queue updates."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from labelless.methods import create_method
from labelless.methods.moco import queue_info_nce

SMALL = {"proj_hidden_dim": 32, "proj_dim": 16, "queue_size": 10, "momentum": 0.9}


def test_queue_info_nce_matches_a_hand_computation():
    queries = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    keys = torch.tensor([[1.0, 1.0], [0.0, 1.0]])
    negatives = torch.tensor([[-1.0, 0.0], [0.0, -3.0], [1.0, 0.0]])
    t = 0.5
    # query 0: cos with key 1/sqrt(2); with negatives -1, 0, 1. query 1: 1; 0, -1, 0.
    row0 = -math.log(math.exp(2**-0.5 / t) / sum(math.exp(c / t) for c in [2**-0.5, -1, 0, 1]))
    row1 = -math.log(math.exp(1 / t) / sum(math.exp(c / t) for c in [1, 0, -1, 0]))
    got = queue_info_nce(queries, keys, negatives, t)
    assert got.item() == pytest.approx((row0 + row1) / 2, rel=1e-5)
    # an empty queue leaves only the positive: loss 0
    assert queue_info_nce(queries, keys, negatives[:0], t).item() == pytest.approx(0.0)


def test_contract_key_encoder_and_queue(backbone, views, check_contract):
    method = create_method("moco_v2", backbone, **SMALL)
    assert method.default_views == "moco" and method.temperature == 0.2
    method(views, {})  # the first step fills the queue with 6 keys (pointer 6)
    assert int(method.queue.pointer) == 6 and int(method.queue.count) == 6
    keys = method.queue.filled()
    assert torch.allclose(keys.norm(dim=1), torch.ones(6))  # normalised keys
    check_contract(method, views)  # 6 more: slots 6..9 then 0, 1
    assert int(method.queue.pointer) == 2 and int(method.queue.count) == 10
    assert all(p.grad is None for p in method.key_encoder.parameters())
    assert not any(p.requires_grad for p in method.key_encoder.parameters())
    # the key encoder is an EMA of backbone + projector at the given momentum
    online = method.backbone.conv1.weight
    target = method.key_encoder.target[0].conv1.weight
    before = target.detach().clone()
    with torch.no_grad():
        online.add_(1.0)
    method.on_step_end(0.5)
    assert torch.allclose(target, 0.9 * before + 0.1 * online.detach(), atol=1e-6)


def test_keys_come_from_the_key_encoder_and_are_not_their_own_negatives(backbone, views):
    method = create_method("moco_v2", backbone, **{**SMALL, "queue_size": 100})
    out = method(views, {})
    assert out["loss"].item() == pytest.approx(0.0)  # empty queue at the first step
    with torch.no_grad():
        expected = F.normalize(method.key_encoder(views[1]), dim=1)
    assert torch.allclose(method.queue.filled(), expected, atol=1e-5)
    method.eval()
    method(views, {})
    assert int(method.queue.count) == 6  # evaluation does not enqueue


def test_symmetric_uses_both_views_and_enqueues_both(backbone, views):
    method = create_method("moco_v2", backbone, **{**SMALL, "queue_size": 100, "symmetric": True})
    method(views, {})
    assert int(method.queue.count) == 12
    assert "queue.rows" in method.state_dict()  # the queue travels with the checkpoint
