"""Every shipped YAML recipe is a valid config whose method accepts its options.

A typo in a recipe (an unknown key, a method option that does not exist) would otherwise only
show when someone runs it, possibly after a 15-minute track-A run has been queued.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from labelless.backbones import DEFAULT_BACKBONE, create_backbone
from labelless.config import build_config, load_yaml
from labelless.methods import METHODS, create_method

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
# Pretraining recipes (RunConfig); configs/semi holds semi-supervised recipes, tested with them.
RECIPES = sorted([*CONFIGS.glob("digits/*.yaml"), *CONFIGS.glob("cifar10/*.yaml")])


def test_recipes_exist():
    folders = {path.parent.name for path in RECIPES}
    assert {"digits", "cifar10"} <= folders


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_recipe_builds(path):
    config = build_config(load_yaml(path), str(path))
    assert config.method.name in METHODS, path
    assert path.stem == config.method.name, "one recipe per method, named after it"
    in_channels = 1 if config.data.name == "digits" else 3
    kwargs = dict(config.backbone.kwargs)
    if config.backbone.width is not None:
        kwargs["width"] = config.backbone.width
    backbone = create_backbone(
        config.backbone.name or DEFAULT_BACKBONE["image"],
        in_channels=in_channels,
        input_size=config.views.size,
        mean=[0.5] * in_channels,
        std=[0.25] * in_channels,
        **kwargs,
    )
    method = create_method(config.method.name, backbone, **config.method.kwargs)
    assert method.embed_dim == backbone.embed_dim


GRAPH_RECIPES = sorted(CONFIGS.glob("graphs/*.yaml"))


@pytest.mark.parametrize("path", GRAPH_RECIPES, ids=lambda p: f"graphs/{p.stem}")
def test_graph_recipe_builds(path):
    """``<method>_<data>.yaml``: a valid config whose encoder (the method's default for the
    level, updated by the recipe), method and views build on a graph of 8 features."""
    from labelless.augment.graph import graph_views
    from labelless.data.graph_dataset import GRAPH_OPTIONS

    config = build_config(load_yaml(path), str(path))
    assert path.stem.split("_")[0] == config.method.name
    assert set(config.data.options) <= set(GRAPH_OPTIONS)
    assert config.optim.name == "adamw" and config.optim.warmup_epochs == 0
    cls = METHODS[config.method.name]
    level = "graph" if config.data.name.startswith("tu:") else "node"
    kind, defaults = cls.graph_backbones[level]
    backbone = create_backbone(
        config.backbone.name or kind, in_channels=8, **{**defaults, **config.backbone.kwargs}
    )
    method = create_method(config.method.name, backbone, **config.method.kwargs)
    assert method.embed_dim == backbone.embed_dim
    graph_views(config.views.recipe or cls.default_views, **config.views.overrides)
