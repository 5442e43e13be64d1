"""nn/losses_tabular.py against hand computations."""

from __future__ import annotations

import math

import pytest
import torch

from labelless.nn.losses_tabular import (
    feature_reconstruction_loss,
    latent_prediction_loss,
    mask_estimation_loss,
    scarf_info_nce,
)


def test_scarf_info_nce_by_hand():
    anchors = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    positives = torch.tensor([[3.0, 4.0], [0.0, -1.0]])
    t = 0.5
    # Unit vectors: a0=(1,0), a1=(0,1); p0=(0.6,0.8), p1=(0,-1). Cosines: a0.p0=0.6, a0.p1=0,
    # a1.p0=0.8, a1.p1=-1.
    l0 = -math.log(math.exp(0.6 / t) / (math.exp(0.6 / t) + math.exp(0.0 / t)))
    l1 = -math.log(math.exp(-1.0 / t) / (math.exp(0.8 / t) + math.exp(-1.0 / t)))
    expected = (l0 + l1) / 2
    assert scarf_info_nce(anchors, positives, t).item() == pytest.approx(expected, rel=1e-6)


def test_mask_estimation_loss_by_hand():
    logits = torch.tensor([[0.0, 2.0], [-1.0, 0.5]])
    mask = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    sig = lambda v: 1 / (1 + math.exp(-v))  # noqa: E731
    terms = [
        -math.log(sig(0.0)),
        -math.log(1 - sig(2.0)),
        -math.log(1 - sig(-1.0)),
        -math.log(sig(0.5)),
    ]
    assert mask_estimation_loss(logits, mask).item() == pytest.approx(sum(terms) / 4, rel=1e-6)


def test_feature_reconstruction_loss_by_hand():
    numeric_prediction = torch.tensor([[1.0], [0.0]])
    numeric_target = torch.tensor([[0.0], [2.0]])
    logits = torch.tensor([[[0.0, 1.0, float("-inf")]], [[2.0, 0.0, 0.0]]])  # 1 column, 3 codes
    codes = torch.tensor([[1], [2]])
    ce0 = -math.log(math.e / (1 + math.e))  # row 0: code 1 among the 2 valid codes
    ce1 = -math.log(1 / (math.e**2 + 2))
    expected = ((1.0 + ce0) + (4.0 + ce1)) / 2 / 2  # rows averaged, divided by 2 columns
    loss = feature_reconstruction_loss(numeric_prediction, numeric_target, logits, codes)
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    numeric_only = feature_reconstruction_loss(numeric_prediction, numeric_target)
    assert numeric_only.item() == pytest.approx((1.0 + 4.0) / 2)


def test_latent_prediction_loss_by_hand():
    prediction = torch.tensor([[[1.0, 2.0], [0.0, 0.0]]])
    target = torch.tensor([[[0.0, 0.0], [1.0, -1.0]]])
    assert latent_prediction_loss(prediction, target).item() == pytest.approx((1 + 4 + 1 + 1) / 4)
