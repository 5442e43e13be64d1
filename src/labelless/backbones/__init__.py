"""Encoders: ``create_backbone(name)`` with metadata attached, and their export format."""

from __future__ import annotations

from labelless.backbones.io import load_encoder, save_encoder
from labelless.backbones.meta import EncoderMeta
from labelless.backbones.registry import (
    DEFAULT_BACKBONE,
    backbone_modality,
    create_backbone,
    list_backbones,
    register_backbone,
)
from labelless.backbones.resnet_cifar import resnet18_cifar

__all__ = [
    "DEFAULT_BACKBONE",
    "EncoderMeta",
    "backbone_modality",
    "create_backbone",
    "list_backbones",
    "load_encoder",
    "register_backbone",
    "resnet18_cifar",
    "save_encoder",
]
from labelless.backbones import graph as graph  # registers gcn, gat, gin (graph encoders)
from labelless.backbones import small_cnn as small_cnn  # registers small_cnn
from labelless.backbones import tabular as tabular  # registers mlp, ft_transformer
from labelless.backbones import timeseries as timeseries  # registers ts_cnn, ts_transformer
