"""What a run builds when the config leaves the backbone unset: the method's own default backbone,
sized to the data (MAE and I-JEPA need a ViT whose patch grid fits the views)."""

from __future__ import annotations

import pytest
import yaml

from labelless.backbones.vit import default_patch_size
from labelless.config import build_config, dump_yaml
from labelless.verbs.components import build_components, record_resolved


@pytest.mark.parametrize(
    ("image_size", "patch_size"),
    [(8, 2), (16, 2), (28, 2), (32, 4), (64, 8), (96, 12), (224, 16), (7, 1), (1, 1)],
)
def test_default_patch_size(image_size, patch_size):
    assert default_patch_size(image_size) == patch_size


@pytest.mark.parametrize("method", ["mae", "ijepa"])
def test_masked_methods_build_a_vit_sized_to_the_views(method, digits):
    config = build_config({"method": {"name": method}})
    backbone, built, _ = build_components(config, digits.train)
    assert backbone.meta.architecture == "vit_tiny"
    assert backbone.meta.kwargs == {"pool": "mean", "image_size": 8, "patch_size": 2}
    assert backbone.patch_size == 2 and backbone.grid_size == 4  # 16 patches of the 8 px digits
    assert built.backbone is backbone
    wider = build_config({"method": {"name": method}, "views": {"size": 32}})
    assert build_components(wider, digits.train)[0].patch_size == 4


def test_config_options_win_over_the_method_defaults(digits):
    config = build_config(
        {"method": {"name": "mae"}, "backbone": {"kwargs": {"patch_size": 4, "depth": 1}}}
    )
    backbone, _, _ = build_components(config, digits.train)
    assert backbone.meta.kwargs["patch_size"] == 4 and len(backbone.blocks) == 1
    assert backbone.meta.kwargs["image_size"] == 8  # the rest still follows the views
    named = build_config({"method": {"name": "simclr"}})  # no default of its own: the modality's
    assert build_components(named, digits.train)[0].meta.architecture == "resnet18_cifar"


def _rebuilt_from_the_record(config, train):
    """The backbone that ``config.yaml`` (``config`` dumped and read back) builds."""
    again = build_config(yaml.safe_load(dump_yaml(config)))
    return build_components(again, train)[0]


@pytest.mark.parametrize(
    ("method", "backbone", "width", "kwargs"),
    [
        ("simclr", "resnet18_cifar", 1.0, {}),
        ("mae", "vit_tiny", None, {"pool": "mean", "image_size": 8, "patch_size": 2}),
    ],
)
def test_the_record_holds_what_the_build_resolved(method, backbone, width, kwargs, digits):
    config = build_config({"method": {"name": method}})
    assert config.backbone.name is None and config.views.size is None
    built, _, _ = build_components(config, digits.train)
    record_resolved(config, built, digits.train)
    assert (config.backbone.name, config.backbone.width) == (backbone, width)
    assert config.backbone.kwargs == kwargs
    assert config.views.size == 8 and config.views.recipe == method  # native size, own views
    rebuilt = _rebuilt_from_the_record(config, digits.train)
    assert rebuilt.meta.to_dict() == built.meta.to_dict()


def test_a_tables_record_keeps_the_options_but_not_the_columns(tmp_path):
    from labelless.data import load_dataset

    rows = "".join(f"{i % 7},{(i * 3) % 11},{'ab'[i % 2]},{i % 2}\n" for i in range(60))
    (tmp_path / "rows.csv").write_text("a,b,c,y\n" + rows)
    train = load_dataset(tmp_path / "rows.csv", target="y").train
    config = build_config({"method": {"name": "scarf"}, "data": {"name": "rows.csv"}})
    built, _, _ = build_components(config, train)
    record_resolved(config, built, train)
    assert config.backbone.name == "mlp" and config.views.size is None  # no view side
    assert "cardinalities" not in config.backbone.kwargs  # the data sets those
    assert config.backbone.kwargs["hidden_dim"] == built.meta.kwargs["hidden_dim"]
    assert _rebuilt_from_the_record(config, train).meta.to_dict() == built.meta.to_dict()
