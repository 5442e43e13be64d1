"""Link-prediction edge splits: held-out edges leave the training graph in both directions,
negatives are non-edges without self-pairs or repeats, and the split is seeded."""

from __future__ import annotations

import pytest
import torch

from labelless.data.graph import Graph
from labelless.data.graph_splits import sample_non_edges, split_edges, undirected_pairs
from labelless.errors import ConfigError, DataError


def random_graph(num_nodes=60, p=0.12, seed=0, self_loops=0) -> Graph:
    g = torch.Generator().manual_seed(seed)
    upper = torch.triu(torch.rand(num_nodes, num_nodes, generator=g) < p, diagonal=1)
    source, target = upper.nonzero().T
    edges = torch.cat([torch.stack([source, target]), torch.stack([target, source])], 1)
    loops = torch.arange(self_loops).repeat(2, 1)
    return Graph(torch.randn(num_nodes, 3), torch.cat([edges, loops], 1), None, 1, None)


def keys(pairs: torch.Tensor, n: int) -> set[int]:
    low, high = pairs.min(0).values, pairs.max(0).values
    return set((low * n + high).tolist())


def test_split_removes_held_out_edges_in_both_directions():
    graph = random_graph(self_loops=3)
    n = graph.num_nodes
    split = split_edges(graph, 0.1, 0.2, seed=1)
    train_graph, val_pos, test_pos, _, _ = split
    all_pairs = undirected_pairs(graph)
    assert val_pos.shape[1] == int(0.1 * all_pairs.shape[1])
    assert test_pos.shape[1] == int(0.2 * all_pairs.shape[1])
    train_directed = set(map(tuple, train_graph.edge_index.T.tolist()))
    for u, v in torch.cat([val_pos, test_pos], 1).T.tolist():
        assert (u, v) not in train_directed and (v, u) not in train_directed
    # Nothing else is lost: training pairs + held-out pairs = all pairs; self loops stay.
    train_pairs = keys(undirected_pairs(train_graph), n)
    held = keys(val_pos, n) | keys(test_pos, n)
    assert train_pairs | held == keys(all_pairs, n) and not train_pairs & held
    assert {(i, i) for i in range(3)} <= train_directed
    assert split.protocol["train_edges"] == len(train_pairs)
    assert torch.equal(train_graph.x, graph.x)


def test_negatives_are_distinct_non_edges_without_self_pairs():
    graph = random_graph()
    n = graph.num_nodes
    _, val_pos, test_pos, val_neg, test_neg = split_edges(graph, 0.1, 0.2, seed=2)
    assert val_neg.shape == val_pos.shape and test_neg.shape == test_pos.shape
    negatives = torch.cat([val_neg, test_neg], 1)
    assert bool((negatives[0] < negatives[1]).all())  # u < v: never a self-pair
    negative_keys = keys(negatives, n)
    assert len(negative_keys) == negatives.shape[1]  # distinct, val and test disjoint
    assert not negative_keys & keys(undirected_pairs(graph), n)  # never an edge, held out or not


def test_split_is_seeded():
    graph = random_graph()
    first, again, other = (split_edges(graph, seed=s) for s in (5, 5, 6))
    assert all(torch.equal(a, b) for a, b in zip(list(first)[1:], list(again)[1:], strict=True))
    assert not torch.equal(first.test_pos, other.test_pos)


def test_sample_non_edges_fills_a_dense_graph_exactly():
    # 6 nodes, 15 pairs, 12 edges: the 3 non-edges must all be found, nothing else.
    n = 6
    edges = torch.tensor(
        [[0, 0, 0, 0, 0, 1, 1, 1, 2, 2, 3, 2], [1, 2, 3, 4, 5, 2, 3, 4, 3, 4, 4, 5]]
    )
    pairs = sample_non_edges(n, edges[0] * n + edges[1], 3, torch.Generator().manual_seed(0))
    assert keys(pairs, n) == {1 * n + 5, 3 * n + 5, 4 * n + 5}
    with pytest.raises(DataError, match="non-adjacent pairs"):
        sample_non_edges(n, edges[0] * n + edges[1], 4, torch.Generator())


def test_bad_inputs():
    graph = random_graph()
    one_way = Graph(graph.x, torch.tensor([[0, 1], [1, 2]]), None, 1, None)
    with pytest.raises(DataError, match="one direction only"):
        split_edges(one_way)
    with pytest.raises(ConfigError, match="test_fraction"):
        split_edges(graph, 0.5, 0.5)
