"""NNCLR: the positive is the support-queue neighbour; the queue holds view-0 projections."""

from __future__ import annotations

import pytest
import torch

from labelless.methods import create_method
from labelless.nn.losses import info_nce

SMALL = {"proj_hidden_dim": 32, "proj_dim": 16, "pred_hidden_dim": 32, "queue_size": 8}


def test_contract_and_support_queue(backbone, views, check_contract):
    method = create_method("nnclr", backbone, **SMALL)
    assert method.default_views == "byol"
    check_contract(method, views)  # the first step: empty support, each view its own neighbour
    assert int(method.support.count) == 6 and int(method.support.pointer) == 6
    method.zero_grad()
    check_contract(method, views)
    assert int(method.support.count) == 8 and int(method.support.pointer) == 4


def test_positive_is_the_nearest_support_projection(backbone, views):
    method = create_method("nnclr", backbone, **SMALL)
    support = torch.randn(8, 16)
    method.support.push(support)
    method.eval()  # BatchNorm running statistics: the manual pass below sees the same numbers
    loss = method(views, {})["loss"]
    assert int(method.support.count) == 8  # evaluation does not enqueue
    with torch.no_grad():
        z0, z1 = (method.projector(method.backbone(v)) for v in views)
        p0, p1 = method.predictor(z0), method.predictor(z1)

        def nearest(z):
            cos = torch.nn.functional.cosine_similarity(z[:, None], support[None], dim=-1)
            return support[cos.argmax(dim=1)]

        expected = (info_nce(nearest(z0), p1, 0.1) + info_nce(nearest(z1), p0, 0.1)) / 2
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
