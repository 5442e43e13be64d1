"""backbones/tabular.py: mlp and ft_transformer, rebuilt from their metadata."""

from __future__ import annotations

import json

import pytest
import torch

from labelless.backbones import create_backbone, list_backbones
from labelless.backbones.registry import DEFAULT_BACKBONE, backbone_modality
from labelless.errors import ConfigError

LAYOUT = {"num_numeric": 3, "cardinalities": [4, 3]}


def _rows(n=6):
    return torch.cat(
        [torch.randn(n, 3), torch.randint(0, 4, (n, 1)), torch.randint(0, 3, (n, 1))], 1
    )


def test_registered_for_tables():
    assert {"mlp", "ft_transformer"} <= set(list_backbones("tabular"))
    assert DEFAULT_BACKBONE["tabular"] == "mlp" and backbone_modality("ft_transformer") == "tabular"


@pytest.mark.parametrize("name", ["mlp", "ft_transformer"])
def test_rebuilds_from_meta_with_the_same_outputs(name):
    model = create_backbone(name, in_channels=5, **LAYOUT).eval()
    meta = model.meta
    assert meta.modality == "tabular" and meta.in_channels == meta.input_size == 5
    assert meta.kwargs["cardinalities"] == [4, 3] and meta.mean == meta.std == []
    json.dumps(meta.to_dict())
    rebuilt = create_backbone(meta.architecture, in_channels=meta.in_channels, **meta.kwargs)
    rebuilt.load_state_dict(model.state_dict())
    x = _rows()
    out = model(x)
    assert out.shape == (6, model.embed_dim) and torch.allclose(rebuilt.eval()(x), out)


def test_unseen_codes_embed_as_code_zero():
    model = create_backbone("mlp", in_channels=5, **LAYOUT).eval()
    x = _rows(2)
    x[:, 3] = torch.tensor([0.0, 99.0])  # 99 is beyond the 4 codes of that column
    y = x.clone()
    y[:, 3] = 0
    assert torch.allclose(model(x), model(y))


def test_ft_transformer_tokens_with_a_kept_subset():
    model = create_backbone(
        "ft_transformer", in_channels=5, reg_tokens=2, dim=16, heads=2, **LAYOUT
    )
    assert model.num_prefix_tokens == 3
    assert model.tokens(_rows()).shape == (6, 3 + 5, 16)
    keep = torch.tensor([[0, 4]] * 6)
    assert model.tokens(_rows(), keep).shape == (6, 3 + 2, 16)


def test_layout_mismatch_is_a_config_error():
    with pytest.raises(ConfigError, match="num_numeric \\+ len\\(cardinalities\\) == 5"):
        create_backbone("mlp", in_channels=5, num_numeric=4, cardinalities=[2, 2])
    all_numeric = create_backbone("mlp", in_channels=5)  # no categorical columns
    assert all_numeric.meta.kwargs["num_numeric"] == 5
