"""``verbs.pretrain.final_metrics`` warns at the end of a run when the encoder looks collapsed."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from labelless.backbones import create_backbone
from labelless.config import RunConfig
from labelless.data import Dataset
from labelless.verbs.pretrain import final_metrics


def _encoder(collapsed: bool):
    torch.manual_seed(0)
    backbone = create_backbone("resnet18_cifar", in_channels=1, width=0.25, input_size=8)
    if collapsed:  # every weight zero: one output for every input, RankMe ~1, std 0
        with torch.no_grad():
            for parameter in backbone.parameters():
                parameter.zero_()
    return backbone.eval()


def _data(seed: int, labelled: bool) -> Dataset:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (120, 1, 8, 8), dtype=np.uint8)
    labels = rng.integers(0, 3, 120) if labelled else None
    return Dataset(images, labels, name=f"noise{seed}")


@pytest.mark.parametrize("labelled", [True, False])
def test_collapsed_encoder_gets_a_warning_with_the_fixes(labelled):
    config = RunConfig()
    with pytest.warns(UserWarning, match=r"encoder looks collapsed on noise1 \(RankMe 1\.00"):
        metrics, _ = final_metrics(config, _encoder(True), _data(0, labelled), _data(1, labelled))
    assert metrics["rankme"] < 1.5


def test_collapsed_encoder_without_eval_split_warns_on_train():
    with pytest.warns(UserWarning, match="collapsed on noise0 .*lower learning rate"):
        final_metrics(RunConfig(), _encoder(True), _data(0, False), None)


def test_a_healthy_random_encoder_does_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        metrics, _ = final_metrics(RunConfig(), _encoder(False), _data(0, True), _data(1, True))
    assert metrics["rankme"] > 1.5
