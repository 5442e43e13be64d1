"""The modality registry: every registered modality answers the descriptor's questions, and a
new modality plugs in with its own files and registrations only (a toy ``vectors`` modality,
registered here, goes through the same builders, embedding and scoring as the real ones)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from labelless.backbones import DEFAULT_BACKBONE, create_backbone
from labelless.backbones.meta import EncoderMeta
from labelless.backbones.registry import _BUILDERS, _MODALITY, register_backbone
from labelless.config import BackboneConfig, ViewsConfig
from labelless.data import Dataset
from labelless.data.formats import FORMATS, SampleFormat, register_format
from labelless.errors import DataError
from labelless.evaluate import embed
from labelless.modalities import MODALITIES, Modality, get_modality, register_modality
from labelless.verbs.components import build_backbone, build_views
from labelless.verbs.scoring import score
from labelless.verbs.targets import check_data_fits


def test_every_modality_has_a_format_a_default_backbone_and_views():
    assert {"image", "tabular", "timeseries"} <= set(MODALITIES)
    for name, modality in MODALITIES.items():
        assert modality.name == name
        assert name in FORMATS, f"{name} has no data.formats entry"
        assert name in DEFAULT_BACKBONE, f"{name} has no default backbone"
        assert type(modality).views is not Modality.views, f"{name} defines no views"


def test_an_unknown_modality_is_a_clear_error():
    with pytest.raises(DataError, match=r"no modality 'sound'.*image"):
        get_modality("sound")


class _Linear(nn.Module):
    def __init__(self, in_channels: int, width: int = 8):
        super().__init__()
        self.layer = nn.Linear(in_channels, width)
        self.embed_dim = width
        self.meta = EncoderMeta(
            "toy_linear", {"width": width}, width, in_channels, 1, modality="vectors"
        )

    def forward(self, x):
        return self.layer(x)


class _Noise(nn.Module):
    """Two views: the rows plus seeded Gaussian noise."""

    def forward(self, x, generator=None):
        return [x + 0.1 * torch.randn(x.shape, generator=generator) for _ in range(2)]


class _Vectors(Modality):
    name = "vectors"
    labels_hint = "pass labels= to from_arrays"

    def views(self, recipe, train, backbone, views):
        return _Noise()


@pytest.fixture
def vectors():
    """The toy modality's registrations (format, backbone, descriptor), removed afterwards."""
    register_format(SampleFormat("vectors", 2, description="float32 [N, F]"))
    register_backbone("toy_linear", "vectors", default=True)(_Linear)
    modality = register_modality(_Vectors())
    yield modality
    for registry, key in ((FORMATS, "vectors"), (MODALITIES, "vectors"), (_BUILDERS, "toy_linear")):
        registry.pop(key)
    _MODALITY.pop("toy_linear")
    DEFAULT_BACKBONE.pop("vectors")


def _data(seed: int, n: int = 120) -> Dataset:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, n)
    samples = (rng.normal(size=(n, 6)) + labels[:, None]).astype(np.float32)
    return Dataset(samples, labels, modality="vectors", name=f"vectors{seed}")


def test_a_new_modality_goes_through_the_same_builders(vectors):
    train, test = _data(0), _data(1)
    assert train.in_channels == 0 and train.format.ndim == 2
    backbone = build_backbone(BackboneConfig(), train)
    assert backbone.meta.architecture == "toy_linear" and backbone.meta.in_channels == 6
    views = build_views("any", train, backbone, ViewsConfig())
    first, second = views(torch.from_numpy(train.samples), torch.Generator().manual_seed(0))
    assert first.shape == (120, 6) and not torch.equal(first, second)
    train_z, test_z = embed(backbone, train.samples), embed(backbone, test.samples)
    metrics = score(backbone, train, test, train_z, test_z, k=10)
    assert metrics["knn_top1"] > 0.5  # separable classes, random linear map keeps them apart
    assert metrics["protocol"]["test_split"] == "vectors1"
    check_data_fits(backbone, train, "vectors0")


def test_a_new_modality_gets_the_shared_checks(vectors):
    backbone = create_backbone("toy_linear", in_channels=5)
    with pytest.raises(DataError, match="takes 5 input channels/columns but 'v' has 6"):
        check_data_fits(backbone, _data(0), "v")
    image_encoder = create_backbone("resnet18_cifar", in_channels=1, width=0.125, input_size=8)
    with pytest.raises(DataError, match="takes image data but 'v' is vectors"):
        check_data_fits(image_encoder, _data(0), "v")
