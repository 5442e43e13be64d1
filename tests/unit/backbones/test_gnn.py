"""GNN layers against hand computations on a 4-node graph, readouts per graph, permutation
equivariance, gradients, the registry round trip, and (when installed) PyG's layers."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from labelless.backbones import create_backbone, load_encoder, save_encoder
from labelless.backbones.gnn import (
    Adjacency,
    GATConv,
    GCNConv,
    GINConv,
    GNNEncoder,
    GraphEncoder,
    gin_mlp,
    pool,
    segment_softmax,
)
from labelless.data.graph import Graph, collate_graphs
from labelless.errors import ConfigError

# Undirected edges 0-1, 0-2, 1-2, 2-3, both directions stored.
PAIRS = [(0, 1), (0, 2), (1, 2), (2, 3)]
EDGES = torch.tensor(
    [[a for a, _ in PAIRS] + [b for _, b in PAIRS], [b for _, b in PAIRS] + [a for a, _ in PAIRS]]
)
A = torch.tensor([[0, 1, 1, 0], [1, 0, 1, 0], [1, 1, 0, 1], [0, 0, 1, 0]], dtype=torch.float32)
X = torch.tensor([[1.0, 0.0], [0.0, 1.0], [2.0, 0.0], [-1.0, 1.0]])
# Degrees of A + I: 3, 3, 4, 2; entry (i, j) = 1 / sqrt(d_i d_j) where j is i or a neighbour.
S12, S8 = 1 / math.sqrt(12), 1 / math.sqrt(8)
GCN_MATRIX = torch.tensor(
    [
        [1 / 3, 1 / 3, S12, 0.0],
        [1 / 3, 1 / 3, S12, 0.0],
        [S12, S12, 1 / 4, S8],
        [0.0, 0.0, S8, 1 / 2],
    ]
)


def _graph(x: torch.Tensor = X, edges: torch.Tensor = EDGES) -> Graph:
    return Graph(x=x, edge_index=edges)


def test_gcn_is_the_normalised_adjacency_times_x_w():
    conv = GCNConv(2, 3)
    with torch.no_grad():
        conv.linear.weight.copy_(torch.tensor([[1.0, 2.0], [0.0, -1.0], [0.5, 0.5]]))
        conv.bias.copy_(torch.tensor([0.1, 0.2, 0.3]))
    adjacency = Adjacency(EDGES, 4)
    assert torch.allclose(adjacency.gcn.dense(), GCN_MATRIX)
    expected = GCN_MATRIX @ X @ conv.linear.weight.T + conv.bias
    assert torch.allclose(conv(X, adjacency), expected, atol=1e-6)
    # Node 3 by hand: (x2 / sqrt8 + x3 / 2) W + b, with x2 W = (2, 0, 1), x3 W = (1, -1, 0).
    by_hand = torch.tensor([2.0, 0.0, 1.0]) * S8 + torch.tensor([1.0, -1.0, 0.0]) / 2
    assert torch.allclose(conv(X, EDGES)[3], by_hand + conv.bias, atol=1e-6)
    # Widening (propagate first) gives the same product.
    wide = GCNConv(2, 5)
    assert torch.allclose(wide(X, EDGES), GCN_MATRIX @ X @ wide.linear.weight.T, atol=1e-6)


def _dense_gat(conv: GATConv, x: torch.Tensor, adjacency: torch.Tensor) -> torch.Tensor:
    """[heads, N, N] attention from the formula, masked to A + I."""
    h = (x @ conv.linear.weight.T).view(x.shape[0], conv.heads, conv.head_dim)
    source = (h * conv.att_source).sum(-1).T  # [heads, N]
    target = (h * conv.att_target).sum(-1).T
    scores = nn.functional.leaky_relu(target[:, :, None] + source[:, None, :], 0.2)
    mask = (adjacency + torch.eye(x.shape[0])) > 0
    return scores.masked_fill(~mask, float("-inf")).softmax(dim=-1)


def test_gat_attention_by_hand_and_against_a_dense_computation():
    conv = GATConv(2, 2, heads=1)
    with torch.no_grad():
        conv.linear.weight.copy_(torch.eye(2))
        conv.att_source.copy_(torch.tensor([[1.0, 0.0]]))
        conv.att_target.copy_(torch.tensor([[0.0, 1.0]]))
    _, alpha = conv.attention(X, EDGES)
    source, target = Adjacency(EDGES, 4).looped
    dense = torch.zeros(4, 4).index_put_((target, source), alpha[:, 0].detach())
    # Node 3 attends to 2 and itself: e_32 = LeakyReLU(x2[0] + x3[1]) = 3,
    # e_33 = LeakyReLU(x3[0] + x3[1]) = 0, so alpha_32 = sigmoid(3).
    assert dense[3, 2] == pytest.approx(1 / (1 + math.exp(-3)), abs=1e-6)
    # Node 0: e_00 = LeakyReLU(1 + 0) = 1, e_01 = LeakyReLU(0) = 0, e_02 = 2.
    assert dense[0, :3].tolist() == pytest.approx(torch.tensor([1.0, 0.0, 2.0]).softmax(0).tolist())
    out = conv(X, EDGES)
    assert torch.allclose(out, dense @ X + conv.bias, atol=1e-6)


@pytest.mark.parametrize("concat", [True, False])
def test_gat_heads_match_the_dense_formula_and_sum_to_one(concat):
    torch.manual_seed(0)
    conv = GATConv(2, 3, heads=4, concat=concat)
    _, alpha = conv.attention(X, EDGES)
    source, target = Adjacency(EDGES, 4).looped
    sums = torch.zeros(4, 4).index_add_(0, target, alpha)
    assert torch.allclose(sums, torch.ones(4, 4), atol=1e-6)
    dense = _dense_gat(conv, X, A)  # [heads, N, N]
    assert torch.allclose(alpha, dense[:, target, source].T, atol=1e-6)
    h = (X @ conv.linear.weight.T).view(4, 4, 3).transpose(0, 1)  # [heads, N, C]
    per_head = dense @ h  # [heads, N, C]
    expected = per_head.transpose(0, 1).flatten(1) if concat else per_head.mean(0)
    assert torch.allclose(conv(X, EDGES), expected + conv.bias, atol=1e-6)
    assert conv.out_dim == (12 if concat else 3)


def test_segment_softmax_is_stable_for_large_scores():
    scores = torch.tensor([[1000.0], [1001.0], [-5.0]])
    out = segment_softmax(scores, torch.tensor([0, 0, 1]), 2)
    assert torch.allclose(out[:, 0], torch.tensor([1 / (1 + math.e), math.e / (1 + math.e), 1.0]))


def test_gin_sums_neighbours_with_one_plus_eps_of_the_node():
    conv = GINConv(nn.Identity(), eps=0.5)
    assert torch.allclose(conv(X, EDGES), (1.5 * torch.eye(4) + A) @ X)
    # Node 3 by hand: 1.5 * (-1, 1) + x2 = (0.5, 1.5).
    assert conv(X, EDGES)[3].tolist() == pytest.approx([0.5, 1.5])
    learnt = GINConv(gin_mlp(2, 4), train_eps=True)
    learnt(X, EDGES).sum().backward()
    assert learnt.eps.grad is not None and learnt.eps.grad.abs() > 0
    assert "eps" in dict(conv.named_buffers())


def test_directed_edges_flow_from_source_to_target():
    edges = torch.tensor([[0], [1]])  # 0 -> 1 only: node 1 hears node 0, node 0 hears nobody
    out = GINConv(nn.Identity())(X[:2], edges)
    assert torch.allclose(out, torch.tensor([[1.0, 0.0], [1.0, 1.0]]))
    gcn = Adjacency(edges, 2).gcn.dense()  # in-degrees of A + I: 1 and 2
    assert torch.allclose(gcn, torch.tensor([[1.0, 0.0], [1 / math.sqrt(2), 0.5]]))


def test_pool_per_graph_of_a_batch():
    second = Graph(x=torch.tensor([[3.0, -2.0], [1.0, 4.0]]), edge_index=torch.tensor([[0], [1]]))
    empty = Graph(x=torch.zeros(0, 2), edge_index=torch.zeros(2, 0, dtype=torch.long))
    batch = collate_graphs([_graph(), second, empty])
    emb = batch.x
    assert pool(emb, batch, "sum").tolist() == [[2.0, 2.0], [4.0, 2.0], [0.0, 0.0]]
    assert pool(emb, batch, "mean").tolist() == [[0.5, 0.5], [2.0, 1.0], [0.0, 0.0]]
    assert pool(emb, batch, "max").tolist() == [[2.0, 1.0], [3.0, 4.0], [0.0, 0.0]]
    assert pool(_graph().x, _graph(), "sum").tolist() == [[2.0, 2.0]]
    with pytest.raises(ConfigError, match="sum"):
        pool(emb, batch, "median")


def _random_graph(num_nodes: int, num_pairs: int, features: int, seed: int) -> Graph:
    generator = torch.Generator().manual_seed(seed)
    pairs = torch.randint(0, num_nodes, (2, num_pairs), generator=generator)
    pairs = pairs[:, pairs[0] != pairs[1]]
    x = torch.randn(num_nodes, features, generator=generator)
    return Graph(x=x, edge_index=torch.cat([pairs, pairs.flip(0)], dim=1))


@pytest.mark.parametrize(
    ("kind", "options"),
    [
        ("gcn", {"norm": "batch"}),
        ("gat", {"heads": 2, "norm": "layer", "residual": True}),
        ("gin", {"train_eps": True, "activation": "relu"}),
    ],
)
def test_encoders_are_permutation_equivariant_and_every_parameter_learns(kind, options):
    torch.manual_seed(0)
    graph = _random_graph(10, 20, 5, seed=1)
    encoder = GNNEncoder(5, kind=kind, hidden_dim=8, out_dim=6, num_layers=3, **options)
    encoder.eval()
    perm = torch.randperm(10)
    new_id = torch.empty_like(perm).scatter_(0, perm, torch.arange(10))
    permuted = Graph(x=graph.x[perm], edge_index=new_id[graph.edge_index])
    out = encoder(graph)
    assert out.shape == (10, encoder.embed_dim) == (10, 6)
    assert torch.allclose(encoder(permuted), out[perm], atol=1e-5)
    encoder.train()
    encoder(graph).square().sum().backward()
    for name, parameter in encoder.named_parameters():
        assert parameter.grad is not None and torch.isfinite(parameter.grad).all(), name
        assert parameter.grad.abs().sum() > 0, name


def test_graph_encoder_concatenates_per_layer_sum_readouts():
    torch.manual_seed(0)
    graphs = [_random_graph(n, 2 * n, 3, seed=n) for n in (4, 7, 5)]
    batch = collate_graphs(graphs)
    nodes = GNNEncoder(3, kind="gin", hidden_dim=8, num_layers=3, norm="batch").eval()
    encoder = GraphEncoder(nodes, readout="sum", concat_layers=True).eval()
    out = encoder(batch)
    assert out.shape == (3, 24) and encoder.embed_dim == 24
    layers = nodes.forward_layers(batch)
    assert torch.allclose(out, torch.cat([pool(h, batch, "sum") for h in layers], 1), atol=1e-5)
    # Graph embeddings do not depend on how graphs are batched.
    alone = torch.cat([encoder(g) for g in graphs])
    assert torch.allclose(out, alone, atol=1e-4)


def test_the_adjacency_is_built_once_per_graph():
    encoder = GNNEncoder(2, hidden_dim=4)
    graph = _graph()
    first = encoder.adjacency(graph)
    assert encoder.adjacency(Graph(x=X * 2, edge_index=graph.edge_index)) is first
    assert encoder.adjacency(_graph(edges=EDGES.clone())) is not first
    edges = EDGES.clone()
    kept = encoder.adjacency(_graph(edges=edges))
    edges[1, 0] = 3  # changed in place: rebuilt
    assert encoder.adjacency(_graph(edges=edges)) is not kept


def test_registered_encoders_round_trip(tmp_path):
    graph = _random_graph(6, 10, 3, seed=0)
    model = create_backbone("gin", in_channels=3, hidden_dim=8, readout="sum", concat_layers=True)
    assert model.embed_dim == 16 and model.meta.modality == "graph"
    save_encoder(model, tmp_path)
    loaded = load_encoder(tmp_path)
    with torch.no_grad():
        assert torch.allclose(loaded.eval()(graph), model.eval()(graph))
    gat = create_backbone("gat", in_channels=3, hidden_dim=8, heads=2)
    assert gat(graph).shape == (6, 8)
    with pytest.raises(ConfigError, match="heads"):
        create_backbone("gcn", in_channels=3, heads=2)
    with pytest.raises(ConfigError, match="multiples of heads"):
        create_backbone("gat", in_channels=3, hidden_dim=6, heads=4)


def _pyg():
    return pytest.importorskip(
        "torch_geometric.nn", reason="torch_geometric is not installed (optional reference)"
    )


def test_layers_equal_pyg_given_the_same_weights():
    pyg = _pyg()
    torch.manual_seed(0)
    graph = _random_graph(12, 30, 4, seed=3)
    extra = torch.tensor([[0, 5, 5], [7, 2, 2]])  # directed, one duplicated
    edges = torch.cat([graph.edge_index, extra], dim=1)
    x = graph.x
    ours, theirs = GCNConv(4, 3), pyg.GCNConv(4, 3)
    with torch.no_grad():
        theirs.lin.weight.copy_(ours.linear.weight)
        theirs.bias.copy_(torch.randn(3))
        ours.bias.copy_(theirs.bias)
    assert torch.allclose(ours(x, edges), theirs(x, edges), atol=1e-5)
    ours, theirs = GATConv(4, 3, heads=2), pyg.GATConv(4, 3, heads=2)
    with torch.no_grad():
        lin = getattr(theirs, "lin", None) or theirs.lin_src
        lin.weight.copy_(ours.linear.weight)
        theirs.att_src.copy_(ours.att_source.view(1, 2, 3))
        theirs.att_dst.copy_(ours.att_target.view(1, 2, 3))
        theirs.bias.copy_(torch.randn(6))
        ours.bias.copy_(theirs.bias)
    assert torch.allclose(ours(x, edges), theirs(x, edges), atol=1e-5)
    mlp = gin_mlp(4, 5)
    ours, theirs = GINConv(mlp, eps=0.3), pyg.GINConv(mlp, eps=0.3)
    assert torch.allclose(ours(x, edges), theirs(x, edges), atol=1e-5)
