"""Graph views: what each op keeps, its drop rates, and that it draws only from the generator."""

from __future__ import annotations

import pytest
import torch

from labelless.augment.graph import (
    GraphView,
    GraphViews,
    drop_edges,
    drop_nodes,
    mask_features,
    subgraph,
)
from labelless.data.graph import Graph, collate_graphs
from labelless.errors import ConfigError


def _random_graph(nodes: int, pairs: int, seed: int, features: int = 3) -> Graph:
    """An undirected graph with ``pairs`` distinct node pairs (no self loops), both directions
    stored; features ``x[i] = (i, i, ...)`` so that a view's rows can be traced back."""
    generator = torch.Generator().manual_seed(seed)
    ends = torch.randint(nodes, (2, 3 * pairs), generator=generator)
    ends = ends[:, ends[0] != ends[1]]
    low, high = ends.min(0).values, ends.max(0).values
    unique = torch.unique(low * nodes + high)[:pairs]
    low, high = unique // nodes, unique % nodes
    edge_index = torch.cat([torch.stack([low, high]), torch.stack([high, low])], dim=1)
    x = torch.arange(nodes, dtype=torch.float32)[:, None].repeat(1, features)
    return Graph(x=x, edge_index=edge_index)


def _batch(seed: int = 0) -> Graph:
    graphs = [_random_graph(n, e, seed + i) for i, (n, e) in enumerate([(6, 7), (1, 0), (9, 15)])]
    batch = collate_graphs(graphs)
    return Graph(
        x=torch.arange(batch.num_nodes, dtype=torch.float32)[:, None].repeat(1, 3),
        edge_index=batch.edge_index,
        batch=batch.batch,
        num_graphs=batch.num_graphs,
        y=torch.arange(batch.num_nodes),  # node labels
    )


def _edge_set(edge_index: torch.Tensor) -> set[tuple[int, int]]:
    return {(int(u), int(v)) for u, v in edge_index.T}


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_drop_edges_never_adds_and_keeps_both_directions():
    graph = _batch()
    for seed in range(5):
        view = drop_edges(graph, 0.4, _gen(seed))
        kept = _edge_set(view.edge_index)
        assert kept <= _edge_set(graph.edge_index)
        assert all((v, u) in kept for u, v in kept)
        assert view.x is graph.x and view.batch is graph.batch


def test_drop_edges_fraction_on_a_big_graph():
    # 20000 undirected pairs, p = 0.3: the dropped fraction has std sqrt(0.21 / 20000) = 0.0032;
    # tolerance 0.015 (about 4.6 std).
    graph = _random_graph(3000, 20000, seed=1)
    view = drop_edges(graph, 0.3, _gen(0))
    dropped = 1 - view.num_edges / graph.num_edges
    assert abs(dropped - 0.3) < 0.015
    assert view.num_edges % 2 == 0
    directed = drop_edges(graph, 0.3, _gen(0), undirected=False)
    assert abs(1 - directed.num_edges / graph.num_edges - 0.3) < 0.015


def test_mask_features_masks_the_fraction_per_graph():
    # 2000 columns, p = 0.25: per-graph fraction std sqrt(0.1875 / 2000) = 0.0097; tolerance 0.04.
    no_edges = torch.zeros(2, 0, dtype=torch.long)
    batch = collate_graphs(
        [Graph(x=torch.ones(n, 2000), edge_index=no_edges) for n in (3, 5, 2, 4)]
    )
    view = mask_features(batch, 0.25, _gen(0))
    assert set(view.x.unique().tolist()) <= {0.0, 1.0}
    for g in range(batch.num_graphs):
        rows = view.x[batch.batch == g]
        assert torch.equal(rows, rows[:1].expand_as(rows))  # one mask per graph
        assert abs(float((rows[0] == 0).float().mean()) - 0.25) < 0.04
    masks = [view.x[batch.batch == g][0] for g in range(batch.num_graphs)]
    assert not torch.equal(masks[0], masks[1])
    per_node = mask_features(batch, 0.25, _gen(0), per="node")
    assert abs(float((per_node.x == 0).float().mean()) - 0.25) < 0.02
    assert not torch.equal(per_node.x[0], per_node.x[1])
    shared = mask_features(batch, 0.25, _gen(0), per="batch").x
    assert torch.equal(shared, shared[:1].expand_as(shared))


def test_mask_features_keeps_unmasked_values():
    graph = _batch()
    x = torch.randn(graph.num_nodes, 50, generator=_gen(3))
    view = mask_features(Graph(x=x, edge_index=graph.edge_index), 0.5, _gen(1))
    assert torch.equal(view.x[view.x != 0], x[view.x != 0])


def _check_induced(graph: Graph, view: Graph) -> torch.Tensor:
    """The view is the subgraph induced by its nodes; returns their original ids."""
    view.check()
    old = view.x[:, 0].long()
    assert torch.all(old[1:] > old[:-1])  # original order kept
    assert torch.equal(view.batch, graph.batch[old])
    assert torch.equal(view.y, graph.y[old])
    mapped = _edge_set(old[view.edge_index])
    kept = set(old.tolist())
    induced = {(u, v) for u, v in _edge_set(graph.edge_index) if u in kept and v in kept}
    assert mapped == induced
    return old


def test_drop_nodes_keeps_indices_valid_and_graph_ids_consistent():
    graph = _batch()
    for seed in range(5):
        view = drop_nodes(graph, 0.5, _gen(seed))
        _check_induced(graph, view)
        assert view.num_graphs == graph.num_graphs
    nearly_all = drop_nodes(graph, 1.0, _gen(0))
    assert torch.equal(nearly_all.batch, torch.arange(3))  # one node left in every graph


def test_drop_nodes_fraction_on_a_big_graph():
    # 20000 nodes, p = 0.2: std 0.0028; tolerance 0.015.
    graph = _random_graph(20000, 10, seed=2, features=1)
    view = drop_nodes(graph, 0.2, _gen(0))
    assert abs(1 - view.num_nodes / graph.num_nodes - 0.2) < 0.015


def _connected(nodes: set[int], edges: set[tuple[int, int]]) -> bool:
    start = next(iter(nodes))
    seen, todo = {start}, [start]
    while todo:
        u = todo.pop()
        for a, b in edges:
            if a == u and b in nodes and b not in seen:
                seen.add(b)
                todo.append(b)
    return seen == nodes


def test_subgraph_keeps_the_fraction_connected_and_induced():
    ring = torch.arange(12)
    ring_edges = torch.stack([ring, (ring + 1) % 12])
    ring_graph = Graph(
        x=torch.zeros(12, 1), edge_index=torch.cat([ring_edges, ring_edges.flip(0)], 1)
    )
    isolated = Graph(x=torch.zeros(5, 1), edge_index=torch.zeros(2, 0, dtype=torch.long))
    batch = collate_graphs([ring_graph, isolated, _random_graph(1, 0, 0, features=1)])
    batch = Graph(
        x=torch.arange(batch.num_nodes, dtype=torch.float32)[:, None],
        edge_index=batch.edge_index,
        batch=batch.batch,
        num_graphs=3,
        y=torch.tensor([7, 8, 9]),  # graph labels stay as they are
    )
    for seed in range(5):
        view = subgraph(batch, 0.5, _gen(seed))
        view.check()
        assert torch.equal(torch.bincount(view.batch, minlength=3), torch.tensor([6, 2, 1]))
        assert torch.equal(view.y, batch.y)
        old = view.x[:, 0].long()
        ring_nodes = {int(i) for i in old if i < 12}
        assert _connected(ring_nodes, _edge_set(old[view.edge_index]))
    graph = _batch()
    _check_induced(graph, subgraph(graph, 0.6, _gen(0)))


@pytest.mark.parametrize(
    "make",
    [
        lambda g, gen: drop_edges(g, 0.5, gen).edge_index,
        lambda g, gen: mask_features(g, 0.5, gen).x,
        lambda g, gen: drop_nodes(g, 0.5, gen).x,
        lambda g, gen: subgraph(g, 0.5, gen).x,
    ],
    ids=["drop_edges", "mask_features", "drop_nodes", "subgraph"],
)
def test_same_seed_same_view_other_seed_other_view(make):
    graph = _random_graph(200, 600, seed=4, features=40)
    graph = Graph(x=torch.randn(200, 40, generator=_gen(9)), edge_index=graph.edge_index)
    assert torch.equal(make(graph, _gen(5)), make(graph, _gen(5)))
    assert not torch.equal(make(graph, _gen(5)), make(graph, _gen(6)))


def test_grace_views_use_their_own_probabilities():
    graph = _random_graph(3000, 20000, seed=1, features=400)
    graph = Graph(x=torch.ones(3000, 400), edge_index=graph.edge_index)
    first, second = GraphViews.grace(pe1=0.1, pf1=0.2, pe2=0.5, pf2=0.6)(graph, _gen(0))
    assert abs(1 - first.num_edges / graph.num_edges - 0.1) < 0.015
    assert abs(1 - second.num_edges / graph.num_edges - 0.5) < 0.015
    assert abs(float((first.x[0] == 0).float().mean()) - 0.2) < 0.08
    assert abs(float((second.x[0] == 0).float().mean()) - 0.6) < 0.08
    again = GraphViews.grace(0.1, 0.2, 0.5, 0.6)(graph, _gen(0))
    assert torch.equal(again[1].edge_index, second.edge_index)
    assert GraphView()(graph) is graph


def test_bad_probabilities_are_config_errors():
    graph = _batch()
    with pytest.raises(ConfigError, match="probability"):
        drop_edges(graph, 1.5)
    with pytest.raises(ConfigError, match="keep fraction"):
        subgraph(graph, 0.0)
    with pytest.raises(ConfigError, match="per"):
        mask_features(graph, 0.1, per="edge")
