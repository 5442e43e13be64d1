"""What a run builds when the config leaves the backbone unset: the method's own default backbone,
sized to the data (MAE and I-JEPA need a ViT whose patch grid fits the views)."""

from __future__ import annotations

import pytest

from labelless.backbones.vit import default_patch_size
from labelless.config import build_config
from labelless.verbs.components import build_components


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
