"""``labelless.semi`` on a node graph: the modality's own methods run in the run lifecycle."""

from __future__ import annotations

import json

import pytest
import torch

import labelless
from labelless.data.graph import Graph
from labelless.data.graph_dataset import graph_splits
from labelless.data.graphs import NodeDataset
from labelless.errors import ConfigError


def _planted(n_per: int = 40, classes: int = 3, seed: int = 0) -> NodeDataset:
    """Communities with dense inside edges, features weakly informative."""
    g = torch.Generator().manual_seed(seed)
    n = n_per * classes
    y = torch.arange(n) // n_per
    same = y[:, None] == y[None, :]
    p = torch.where(same, torch.tensor(0.15), torch.tensor(0.005))
    upper = torch.triu(torch.rand(n, n, generator=g) < p, diagonal=1)
    src, dst = torch.nonzero(upper, as_tuple=True)
    edges = torch.cat([torch.stack([src, dst]), torch.stack([dst, src])], 1)
    x = torch.randn(n, 8, generator=g) + 0.3 * torch.nn.functional.one_hot(y, 8).float()
    order = torch.randperm(n, generator=g)
    split = {"train": order[:15], "val": order[15:45], "test": order[45:]}
    return NodeDataset(Graph(x, edges, None, 1, y), [split], classes, "planted")


def test_semi_on_a_node_graph_writes_a_run(tmp_path):
    splits = graph_splits(_planted())
    result = labelless.semi(splits, "selftask", epochs=40, lr=0.01, out=str(tmp_path / "run"))
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert (tmp_path / "run" / "encoder.safetensors").is_file()
    assert metrics["test_top1"] == pytest.approx(result.metrics["test_top1"])
    assert metrics["split"]["labelled"] == 15 and metrics["split"]["test"] == 75
    assert metrics["protocol"]["selection"].startswith("epoch with the best validation")
    assert metrics["test_top1"] > 0.6  # planted communities: chance is 1/3


def test_graph_and_batch_methods_do_not_mix(tmp_path):
    splits = graph_splits(_planted())
    with pytest.raises(ConfigError, match="does not train on graph data"):
        labelless.semi(splits, "fixmatch", epochs=1, out=str(tmp_path / "a"))
    with pytest.raises(ConfigError, match="trains on other data"):
        labelless.semi("digits", "selftask", epochs=1, out=str(tmp_path / "b"))
    with pytest.raises(ConfigError, match="not options of the graph method"):
        labelless.semi(
            splits, "gcn", epochs=1, out=str(tmp_path / "c"), overrides=["semi.kwargs.tasks=x"]
        )
