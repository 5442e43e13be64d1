"""Time-series backbones and methods: shapes, padding, metadata, the method contract."""

from __future__ import annotations

import pytest
import torch

from labelless.augment.timeseries import timeseries_views
from labelless.backbones import DEFAULT_BACKBONE, backbone_modality, create_backbone
from labelless.errors import ConfigError
from labelless.methods import METHODS, create_method

SMALL = {
    "ts_cnn": {"hidden_dim": 16, "embed_dim": 24, "depth": 3},
    "ts_transformer": {"hidden_dim": 16, "embed_dim": 24, "depth": 1, "num_heads": 2},
}


@pytest.mark.parametrize("name", ["ts_cnn", "ts_transformer"])
def test_backbone_shapes_meta_and_rebuild(name):
    encoder = create_backbone(name, in_channels=3, **SMALL[name])
    x = torch.randn(4, 3, 50)
    assert encoder(x).shape == (4, 24) and encoder.forward_sequence(x).shape == (4, 50, 24)
    meta = encoder.meta
    assert meta.modality == "timeseries" and meta.in_channels == 3 and meta.embed_dim == 24
    rebuilt = create_backbone(meta.architecture, in_channels=meta.in_channels, **meta.kwargs)
    rebuilt.load_state_dict(encoder.state_dict())
    encoder.eval(), rebuilt.eval()
    assert torch.allclose(encoder(x), rebuilt(x))
    assert backbone_modality(name) == "timeseries"


@pytest.mark.parametrize("name", ["ts_cnn", "ts_transformer"])
def test_padding_does_not_change_the_embedding(name):
    encoder = create_backbone(name, in_channels=2, **SMALL[name]).eval()
    x = torch.randn(3, 2, 30)
    padded = torch.cat([x, torch.full((3, 2, 20), float("nan"))], dim=2)
    assert torch.allclose(encoder(x), encoder(padded), atol=1e-5)
    assert torch.isfinite(encoder(padded)).all()


def test_timestamp_masking_only_while_training():
    encoder = create_backbone("ts_cnn", in_channels=1, dropout=0.0, **SMALL["ts_cnn"])
    x = torch.randn(2, 1, 40)
    encoder.eval()
    assert torch.equal(encoder(x), encoder(x))
    encoder.train()
    assert not torch.equal(encoder.forward_sequence(x), encoder.forward_sequence(x))
    assert torch.equal(
        encoder.forward_sequence(x, mask=False), encoder.forward_sequence(x, mask=False)
    )


def test_default_backbone_and_bad_options():
    assert DEFAULT_BACKBONE["timeseries"] == "ts_cnn"
    with pytest.raises(ConfigError, match="takes only"):
        create_backbone("ts_cnn", in_channels=1, width=2)


@pytest.mark.parametrize(
    ("method", "options"),
    [
        ("ts2vec", {}),
        ("tstcc", {"timesteps": 3, "hidden_dim": 16, "num_heads": 2}),
        ("ts_forecast", {"horizon": 8}),
    ],
)
@pytest.mark.parametrize("backbone", ["ts_cnn", "ts_transformer"])
def test_method_contract(method, options, backbone):
    encoder = create_backbone(backbone, in_channels=2, **SMALL[backbone])
    model = create_method(method, encoder, **options)
    assert model.modality == "timeseries" and METHODS[method].default_views == model.default_views
    x = torch.randn(6, 2, 48)
    x[0, :, 40:] = float("nan")
    views = timeseries_views(model.default_views)(x, generator=torch.Generator().manual_seed(0))
    out = model(views, {})
    assert out["loss"].ndim == 0 and torch.isfinite(out["loss"])
    assert out["embedding"].shape == (6, 24) and not out["embedding"].requires_grad
    out["loss"].backward()
    grads = [p.grad for p in model.backbone.parameters() if p.requires_grad]
    assert sum(g.abs().sum() for g in grads if g is not None) > 0


def test_forecast_predicts_the_horizon():
    encoder = create_backbone("ts_cnn", in_channels=3, **SMALL["ts_cnn"])
    model = create_method("ts_forecast", encoder, horizon=5).eval()
    assert model.predict(torch.randn(2, 3, 20)).shape == (2, 3, 5)
