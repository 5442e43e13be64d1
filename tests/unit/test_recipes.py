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


def _tiny_graph_data(level: str):
    """Training data of ``level`` ("node": a 12-node ring; "graph": 6 small rings) with 8
    features, through ``graph_splits`` as a run loads it."""
    import torch

    from labelless.data.graph import Graph
    from labelless.data.graph_dataset import graph_splits
    from labelless.data.graphs import GraphSetDataset, NodeDataset

    def ring(n: int, seed: int) -> Graph:
        nodes = torch.arange(n)
        pairs = torch.stack([nodes, (nodes + 1) % n])
        x = torch.randn(n, 8, generator=torch.Generator().manual_seed(seed))
        return Graph(x, torch.cat([pairs, pairs.flip(0)], 1), None, 1, nodes % 3)

    if level == "node":
        split = {"train": torch.tensor([0, 1]), "val": torch.tensor([2]), "test": torch.tensor([3])}
        return graph_splits(NodeDataset(ring(12, 0), [split], 3, "ring")).train
    rings = [ring(3 + i % 3, i) for i in range(6)]
    graphs = [Graph(g.x, g.edge_index, None, 1, torch.tensor([i % 2])) for i, g in enumerate(rings)]
    folds = [(torch.arange(2, 6), torch.arange(2)), (torch.arange(0, 4), torch.arange(4, 6))]
    return graph_splits(GraphSetDataset(graphs, folds, 2, "rings")).train


@pytest.mark.parametrize("path", GRAPH_RECIPES, ids=lambda p: f"graphs/{p.stem}")
def test_graph_recipe_builds(path):
    """``<method>_<data>.yaml``: a valid config whose encoder, method and views build on a graph
    of 8 features, through the run's own path (``verbs.components.build_backbone``). The encoder
    has the method's options for the level (e.g. CCA-SSG's ReLU and linear last layer) wherever
    the recipe does not set them: a recipe naming the method's backbone keeps them."""
    from labelless.augment.graph import graph_views
    from labelless.data.graph_dataset import GRAPH_OPTIONS
    from labelless.modalities import get_modality
    from labelless.verbs.components import build_backbone

    config = build_config(load_yaml(path), str(path))
    assert path.stem.split("_")[0] == config.method.name
    assert set(config.data.options) <= set(GRAPH_OPTIONS)
    assert config.optim.name == "adamw" and config.optim.warmup_epochs == 0
    cls = METHODS[config.method.name]
    level = "graph" if config.data.name.startswith("tu:") else "node"
    train = _tiny_graph_data(level)
    kind, defaults = get_modality("graph").method_backbone(cls, train, None)
    backbone = build_backbone(config.backbone, train, default=kind, default_kwargs=defaults)
    built = backbone.meta.kwargs
    for key, value in defaults.items():
        assert built[key] == config.backbone.kwargs.get(key, value), (path.name, key)
    method = create_method(config.method.name, backbone, **config.method.kwargs)
    assert method.embed_dim == backbone.embed_dim
    graph_views(config.views.recipe or cls.default_views, **config.views.overrides)
