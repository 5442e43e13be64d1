"""Graphs as Dataset: node ids that carry their graph, graph sets, their embedding and training
batches, random-walk subgraphs and the full-batch memory check."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from labelless.backbones import create_backbone
from labelless.data import load_dataset
from labelless.data.graph import Graph, collate_graphs
from labelless.data.graph_dataset import (
    GraphSetBatches,
    NodeIds,
    graph_splits,
    select_graphs,
)
from labelless.data.graph_sampling import SubgraphBatches, memory_check
from labelless.data.graphs import GraphSetDataset, NodeDataset
from labelless.errors import ConfigError, DataError
from labelless.evaluate import embed
from labelless.train.loader import train_loader


def _ring(n: int = 12, features: int = 4, seed: int = 0) -> Graph:
    ring = torch.arange(n)
    pairs = torch.stack([ring, (ring + 1) % n])
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 3
    return Graph(
        torch.randn(n, features, generator=g), torch.cat([pairs, pairs.flip(0)], 1), None, 1, y
    )


def _node_data() -> NodeDataset:
    split = {
        "train": torch.tensor([0, 1, 2]),
        "val": torch.tensor([3, 4]),
        "test": torch.tensor([6, 7, 8, 9]),
    }
    return NodeDataset(_ring(), [split], 3, "ring")


def _graph_set(count: int = 10) -> GraphSetDataset:
    graphs = []
    for i in range(count):
        g = _ring(3 + i % 4, seed=i)
        graphs.append(Graph(g.x, g.edge_index, None, 1, torch.tensor([i % 2])))
    folds = [
        (torch.arange(2, count), torch.arange(2)),
        (torch.arange(0, count - 2), torch.arange(count - 2, count)),
    ]
    return GraphSetDataset(graphs, folds, 2, "set")


def test_node_splits_hide_every_label_but_the_training_nodes():
    splits = graph_splits(_node_data())
    train, test = splits.train, splits.test
    assert len(train) == 12 and train.meta["level"] == "node"
    assert np.array_equal(np.flatnonzero(train.labels >= 0), [0, 1, 2])
    assert np.array_equal(np.asarray(test.samples), [6, 7, 8, 9])
    assert np.array_equal(test.labels, [0, 1, 2, 0])
    subset = test.subset(np.array([1, 3]))
    assert isinstance(subset.samples, NodeIds) and subset.samples.graph is train.samples.graph
    copy = pickle.loads(pickle.dumps(subset.samples))
    assert copy.graph.num_nodes == 12 and np.array_equal(copy, [7, 9])


def test_graph_set_splits_hide_the_test_fold_labels():
    splits = graph_splits(_graph_set(), split=1)
    assert np.array_equal(np.flatnonzero(splits.train.labels < 0), [8, 9])
    assert len(splits.test) == 2 and splits.train.meta["level"] == "graph"
    assert torch.equal(splits.train.meta["all_labels"], torch.arange(10) % 2)
    with pytest.raises(DataError, match=r"split must be 0\.\.1"):
        graph_splits(_graph_set(), split=5)


def test_node_embedding_is_one_forward_over_the_whole_graph():
    splits = graph_splits(_node_data())
    encoder = create_backbone("gcn", in_channels=4, hidden_dim=8)
    graph = splits.train.samples.graph
    with torch.no_grad():
        expected = encoder(graph)[torch.tensor([6, 7, 8, 9])]
    assert torch.allclose(embed(encoder, splits.test), expected, atol=1e-6)
    pooled = create_backbone("gcn", in_channels=4, hidden_dim=8, readout="sum")
    with pytest.raises(DataError, match="pools whole graphs"):
        embed(pooled, splits.test)


def test_graph_set_embedding_matches_graph_by_graph():
    data = _graph_set()
    splits = graph_splits(data)
    encoder = create_backbone("gin", in_channels=4, hidden_dim=8, readout="sum")
    z = embed(encoder, splits.train, batch_size=3)
    with torch.no_grad():
        one_by_one = torch.cat([encoder(collate_graphs([g])) for g in data.graphs])
    assert torch.allclose(z, one_by_one, atol=1e-5)


def test_graph_set_batches_are_collated_graphs_and_a_function_of_seed_and_epoch():
    data = _graph_set()
    splits = graph_splits(data)
    source = GraphSetBatches(splits.train, 4, seed=3)
    first, again = source.batch(2, 1), GraphSetBatches(splits.train, 4, seed=3).batch(2, 1)
    assert torch.equal(first["index"], again["index"]) and source.num_batches == 2
    expected = collate_graphs([data.graphs[i] for i in first["index"].tolist()])
    assert torch.equal(first["inputs"].x, expected.x)
    assert torch.equal(first["inputs"].edge_index, expected.edge_index)
    assert torch.equal(first["inputs"].batch, expected.batch)
    orders = {tuple(source.batch(epoch, 0)["index"].tolist()) for epoch in range(6)}
    assert len(orders) > 1


def test_select_graphs_renumbers_nodes_and_graphs():
    data = _graph_set(5)
    batch = collate_graphs(data.graphs)
    picked = select_graphs(batch, torch.tensor([1, 3]))
    expected = collate_graphs([data.graphs[1], data.graphs[3]])
    assert picked.num_graphs == 2
    assert torch.equal(picked.edge_index, expected.edge_index) and torch.equal(
        picked.batch, expected.batch
    )


def test_node_training_batch_is_the_whole_graph_with_training_labels_only():
    splits = graph_splits(_node_data())
    batches = list(train_loader(splits.train, 256, seed=0))
    assert len(batches) == 1
    graph = batches[0]["inputs"]
    assert graph.num_nodes == 12 and torch.equal(graph.y, batches[0]["label"])
    assert torch.equal(torch.nonzero(graph.y >= 0).flatten(), torch.tensor([0, 1, 2]))


def test_random_walk_subgraphs_keep_only_edges_among_their_nodes():
    n = 200
    src = torch.randint(n, (800,), generator=torch.Generator().manual_seed(0))
    dst = torch.randint(n, (800,), generator=torch.Generator().manual_seed(1))
    keep = src != dst
    edges = torch.cat([torch.stack([src[keep], dst[keep]]), torch.stack([dst[keep], src[keep]])], 1)
    graph = Graph(torch.randn(n, 3), edges, None, 1, torch.arange(n) % 4)
    source = SubgraphBatches(graph, graph.y, 50, seed=1)
    out = source.batch(0, 0)
    nodes, sub = out["index"], out["inputs"]
    assert source.num_batches == 4 and 10 <= len(nodes) <= 50
    assert torch.equal(sub.x, graph.x[nodes]) and torch.equal(out["label"], graph.y[nodes])
    original = set(map(tuple, edges.t().tolist()))
    mapped = {(int(nodes[a]), int(nodes[b])) for a, b in sub.edge_index.t().tolist()}
    assert mapped <= original
    inside = set(nodes.tolist())
    assert mapped == {(a, b) for a, b in original if a in inside and b in inside}
    assert torch.equal(SubgraphBatches(graph, graph.y, 50, seed=1).batch(0, 0)["index"], nodes)


def test_memory_check_names_the_sampling_option():
    graph = _ring(1000)
    memory_check(graph, [512, 512], free=2**40)  # fits
    with pytest.raises(DataError, match=r"data\.options\.subgraph_nodes="):
        memory_check(graph, [512, 512], free=2**20)


def test_graph_files_and_their_options_through_load_dataset(tmp_path):
    edges = tmp_path / "net.edges.csv"
    edges.write_text("source,target\n0,1\n1,2\n2,3\n3,0\n")
    labels = tmp_path / "labels.csv"
    labels.write_text("0\n1\n-1\n1\n")
    with pytest.warns(UserWarning, match="only 4 training samples"):
        splits = load_dataset(str(edges), labels=str(labels), subgraph_nodes=64)
    assert splits.train.modality == "graph" and splits.train.meta["subgraph_nodes"] == 64
    assert splits.train.samples.graph.num_edges == 8
    assert np.array_equal(splits.train.labels, [0, 1, -1, 1])
    with pytest.raises(ConfigError, match="unknown data option"):
        load_dataset(str(edges), label=str(labels))


def test_row_normalise_option_divides_features_by_their_sum_and_says_so():
    data = _node_data()
    counts = data.graph.x.abs()
    from dataclasses import replace

    data = replace(data, graph=replace(data.graph, x=counts), meta={"features": "counts"})
    graph = graph_splits(data, row_normalise=True).train.samples.graph
    assert torch.allclose(graph.x.sum(1), torch.ones(graph.num_nodes))
    assert torch.allclose(graph.x * counts.sum(1, keepdim=True), counts)
    assert graph_splits(data, row_normalise=True).train.meta["features"].startswith("counts, row")
    assert graph_splits(data).train.samples.graph.x is counts
    signed = replace(data, graph=replace(data.graph, x=-counts))
    with pytest.raises(ConfigError, match="non-negative"):
        graph_splits(signed, row_normalise=True)
    with pytest.raises(ConfigError, match="true or false"):
        graph_splits(data, row_normalise="yes")
    with pytest.raises(DataError, match=r"data\.options\.row_normalise applies to node-level"):
        graph_splits(_graph_set(), row_normalise=True)
